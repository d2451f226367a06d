"""Metrics against scikit-learn on the same predictions."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from jobs.predictions.metrics import evaluate, report


def _pairs(true, pred):
    counts: dict[tuple[str, str], int] = {}
    for t, p in zip(true, pred, strict=True):
        counts[(t, p)] = counts.get((t, p), 0) + 1
    return [(t, p, c) for (t, p), c in counts.items()]


def test_matches_scikit_learn_including_a_never_predicted_class():
    rng = np.random.default_rng(3)
    labels = ["Barren", "Cultivated", "Developed", "Forest", "Herbaceous", "Shrub"]
    true = rng.choice(labels, size=500).tolist()
    pred = [t if rng.random() < 0.7 else rng.choice(labels[:5]) for t in true]  # "Shrub" rarely right
    pred = [p if p != "Shrub" else "Forest" for p in pred]  # ... and never predicted
    r = report(_pairs(true, pred), labels)
    p, rc, f1, support = precision_recall_fscore_support(true, pred, labels=labels, zero_division=0)
    assert np.isclose(r.accuracy, accuracy_score(true, pred))
    assert np.allclose([c.precision for c in r.per_class], p)
    assert np.allclose([c.recall for c in r.per_class], rc)
    assert np.allclose([c.f1 for c in r.per_class], f1)
    assert [c.support for c in r.per_class] == support.tolist()
    assert np.isclose(r.macro_f1, f1.mean())
    assert r.confusion == confusion_matrix(true, pred, labels=labels).tolist()
    assert r.per_class[-1].precision == 0.0 and r.n == 500


def test_evaluate_on_spark_skips_rows_without_prediction(spark):
    rows = [("a", "a"), ("a", "b"), ("b", "b"), ("b", None), ("c", "a")]
    df = spark.createDataFrame(rows, "label string, predicted_label string")
    r = evaluate(df, ["a", "b", "c"])
    assert r.n == 4
    assert r.confusion == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    assert np.isclose(r.accuracy, 0.5)
