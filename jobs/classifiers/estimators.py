"""The classifiers a train run can fit on CNN features, their defaults and their tuning grids.

* ``logisticregression``: multinomial logistic regression (L-BFGS / OWL-QN).
* ``randomforest``: Spark's random forest.
* ``gbt``: gradient-boosted trees, one binary GBT per class (Spark's ``OneVsRest``); it gives
  no class probabilities, so its predictions carry a null ``probability``.

Hyperparameters come from the conf file's table named after the classifier and from the flags
``--maxIter --regParam --elasticNetParam --numTrees --maxDepth --stepSize``; a parameter the
classifier does not have is an error. ``--tune`` searches :data:`GRIDS` with
TrainValidationSplit on Spark and keeps the best.
"""

from __future__ import annotations

from typing import Any

from pyspark.ml import Estimator
from pyspark.ml.classification import GBTClassifier, LogisticRegression, OneVsRest, RandomForestClassifier
from pyspark.ml.param import Param

from jobs.runtime.errors import UserInputError

NAMES = ("logisticregression", "randomforest", "gbt")


class ClassifierSettingsError(UserInputError, ValueError):
    """A classifier parameter that does not exist, or a value it cannot take."""


FLAGS = ("maxIter", "regParam", "elasticNetParam", "numTrees", "maxDepth", "stepSize")
# What each flag means, for --help (pyspark.ml's own parameter names; the defaults are DEFAULTS').
FLAG_HELP = {
    "maxIter": "logisticregression: optimizer iterations (200); gbt: boosting rounds (20)",
    "regParam": "logisticregression: regularization strength (0.01; --tune chooses it on validation)",
    "elasticNetParam": "logisticregression: L1 share of the penalty, 0 = L2 only (0)",
    "numTrees": "randomforest: trees (50)",
    "maxDepth": "randomforest (10), gbt (5): deepest tree",
    "stepSize": "gbt: learning rate, shrinking each tree's step (0.1)",
}

FLAG_TYPES = {flag: float if flag in ("regParam", "elasticNetParam", "stepSize") else int for flag in FLAGS}

__all__ = ["DEFAULTS", "FLAGS", "FLAG_HELP", "FLAG_TYPES", "GRIDS", "NAMES", "ClassifierSettingsError", "build", "grid"]

DEFAULTS: dict[str, dict[str, Any]] = {
    # regParam 0 overfits 1280-d CNN features (measured: train 1.00, test 0.948 on MNIST).
    "logisticregression": {"maxIter": 200, "regParam": 0.01},
    "randomforest": {"numTrees": 50, "maxDepth": 10},
    "gbt": {"maxIter": 20, "maxDepth": 5},
}

GRIDS: dict[str, dict[str, list[Any]]] = {
    "logisticregression": {"regParam": [0.001, 0.01, 0.1]},
    "randomforest": {"numTrees": [20, 50], "maxDepth": [5, 10]},
    "gbt": {"maxIter": [10, 20], "maxDepth": [3, 5]},
}

_COLUMNS = {"featuresCol": "features", "labelCol": "label_index", "predictionCol": "prediction"}


def build(name: str, params: dict[str, Any], seed: int) -> tuple[Estimator, Estimator]:
    """``(estimator, inner)``: what to fit, and the estimator whose params the grid names."""
    merged = {**DEFAULTS[name], **params}
    if name == "logisticregression":
        est: Estimator = LogisticRegression(**_COLUMNS, probabilityCol="probability", rawPredictionCol="raw_prediction")
        _set(est, merged, name)
        return est, est
    if name == "randomforest":
        est = RandomForestClassifier(
            **_COLUMNS, probabilityCol="probability", rawPredictionCol="raw_prediction", seed=seed
        )
        _set(est, merged, name)
        return est, est
    # OneVsRest keeps Spark's default "rawPrediction" name: renaming it does not survive a reload.
    gbt = GBTClassifier(featuresCol="features", labelCol="label_index", seed=seed)
    _set(gbt, merged, name)
    return OneVsRest(classifier=gbt, **_COLUMNS), gbt


def _set(est: Estimator, params: dict[str, Any], name: str) -> None:
    for key, value in params.items():
        if not est.hasParam(key):
            raise ClassifierSettingsError(f"{name} has no parameter {key!r}")
        try:
            est._set(**{key: value})
        except (TypeError, ValueError):
            raise ClassifierSettingsError(f"[{name}] {key} = {value!r}: not a valid value for this parameter") from None


def grid(name: str, inner: Estimator) -> list[dict[Param, Any]]:
    """Every combination of :data:`GRIDS` ``[name]`` as pyspark.ml param maps."""
    maps: list[dict[Param, Any]] = [{}]
    for key, values in GRIDS[name].items():
        maps = [{**m, inner.getParam(key): v} for m in maps for v in values]
    return maps
