"""Model sources: one module per library behind one contract (see `base.py`)."""
