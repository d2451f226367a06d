"""Classifiers over features: the Spark ML estimators and their grids (:mod:`.estimators`), the fitted
head (:mod:`.head`), its numpy form (:mod:`.portable`) and the Spark Connect rebuild (:mod:`.connect`)."""
