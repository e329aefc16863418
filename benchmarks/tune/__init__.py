"""The equal hyperparameter search: a declared space per model, searched with Optuna on
the validation split only (space.py parses spaces, search.py runs one search)."""
