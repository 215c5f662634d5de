"""Data: dataset loaders and input binarisers."""
