"""Inputs (folders, paths, PIL, arrays, tensors, text) and the labelled xarray output."""
