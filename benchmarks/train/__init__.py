"""Training: the budget of a cell, parameter-budget widths, the shared LightningModule, the
Trainer factory, the selection and early-stopping state that the plain and the stacked
(torch.func) paths share, and the typed outcome of training or fitting one cell."""
