"""What did a trained model learn? Attributions scored against the known mathematics.

Datasets that know what matters declare it (spec.ground_truth in words, the datamodule's
relevant_inputs(split, modality) as a boolean mask broadcastable to (N, K, *layout)); this
package computes attributions of a trained model on a split, scores how well they rank the
relevant inputs first, keeps the weights so that nothing retrains, and draws heat maps.

    attribute(model, spec, inputs, target, method, *, baseline=None, n_samples=None,
              batch_size=128, seed=0) -> Tensor (N, K, *layout)      attribute.py
        methods "saliency", "ig", "shap", "permutation" (METHODS); layout per view in
        attribute.py's docstring; attribution_layout(spec, inputs) gives it
    score_attributions(attr, relevant_mask) -> dict                  score.py
        auroc, precision_at_k (means over (row, output) pairs), per output, and counts;
        top_inputs(attr, count) -> the inputs a global ranking puts first
    save_weights(module, path) / read_weights(path) / load_weights(module, path)
        weights only (safetensors or a torch.save'd state dict); never runs code   weights.py
    heatmap(attr, spec, mask, graphs=None) -> matplotlib Figure      heatmap.py

Captum, scikit-learn, safetensors and matplotlib are imported by the functions that use
them. Example (a trained backbone on the test split of its view):

    spec = dm.spec.for_view(view)
    attr = attribute(backbone, spec, dm.inputs("test", view), dm.target("test"), "ig")
    score = score_attributions(attr, dm.relevant_inputs("test", view))
"""

from .attribute import DEFAULT_SAMPLES, METHODS, attribute, attribution_layout, pad_nodes
from .heatmap import heatmap
from .score import precision_at_k, score_attributions, top_inputs
from .weights import load_weights, read_weights, save_weights

__all__ = [
    "DEFAULT_SAMPLES", "METHODS", "attribute", "attribution_layout", "heatmap", "load_weights",
    "pad_nodes", "precision_at_k", "read_weights", "save_weights", "score_attributions",
    "top_inputs",
]
