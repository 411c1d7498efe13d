"""Hooks, early exit, pooling and batching: from inputs to feature arrays."""
