"""Predictions: the table every scoring run writes (:mod:`.tables`), metrics against true labels
(:mod:`.metrics`), and 3 x 3 majority smoothing on tile grids (:mod:`.smoothing`)."""
