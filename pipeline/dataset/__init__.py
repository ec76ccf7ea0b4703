"""Datasets: layouts and scanning, labels, folds, validation."""
