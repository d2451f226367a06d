"""What every stage may use: nothing here imports from the rest of ``jobs``."""
