"""Training and evaluation of the emotion classifiers (datasets, architectures, recipes, metrics)."""
