"""Metrics against scikit-learn on the same predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from jobs.predictions import calibration
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


def test_splits_too_small_to_trust_or_to_choose_are_warned_with_the_images_needed():
    from jobs.predictions.metrics import images_needed, small_split_warnings, wilson

    low, high = wilson(11, 11)
    assert (round(low, 3), high) == (0.741, 1.0)  # 11 of 11: the truth may be 74 %
    assert images_needed(1.0) == images_needed(0.95) == 73 and images_needed(0.9) == 139
    tuning = [{"validation_accuracy": 0.8571}] * 3
    test_warning, val_warning = small_split_warnings(1.0, 11, tuning, 7)
    assert test_warning.startswith("test accuracy 1.0000 on 11 images: its 95% interval is 0.741-1.000")
    assert "about 73 test images" in test_warning
    assert val_warning.startswith("validation split of 7 images is too small to choose settings (3 settings tied")
    assert small_split_warnings(0.95, 2000, [{"validation_accuracy": a} for a in (0.95, 0.9)], 2000) == []


def test_a_tie_on_a_validation_split_large_enough_is_not_called_too_small():
    """The AID demo's 315 validation images, three regParam values tied at 0.9937: the interval is
    0.977-0.998, so the split is not too small (it had said so, and that 73 images would do)."""
    from jobs.predictions.metrics import small_split_warnings

    tuning = [{"validation_accuracy": 313 / 315}] * 3
    assert small_split_warnings(0.9905, 526, tuning, 315) == []


def test_calibration_error_matches_a_case_worked_by_hand():
    # Ten predictions at 0.95 (9 right) and ten at 0.55 (6 right): each bin is 0.05 off, so ECE 0.05.
    # Its edges: 0.5 falls in [0.5, 0.6), 1.0 in the last bin.
    prob = [0.95] * 10 + [0.55] * 10 + [0.5, 1.0]
    right = [True] * 9 + [False] + [True] * 6 + [False] * 4 + [False, True]
    got = calibration.frame_reliability(prob[:20], right[:20], calibration.TEST_EDGES)
    assert got is not None and got["n"] == 20 and got["ece"] == pytest.approx(0.05)
    by_bin = {round(b["from"], 1): b for b in got["bins"] if b["n"]}
    assert set(by_bin) == {0.5, 0.9}
    assert (by_bin[0.9]["mean_probability"], by_bin[0.9]["accuracy"]) == (0.95, 0.9)
    assert (by_bin[0.5]["mean_probability"], by_bin[0.5]["accuracy"]) == (0.55, 0.6)
    assert by_bin[0.9]["accuracy_ci95"][0] < 0.9 < by_bin[0.9]["accuracy_ci95"][1]
    assert calibration.bin_of(np.asarray([0.0, 0.5, 0.8, 0.95, 1.0]), calibration.MAP_EDGES).tolist() == [0, 1, 2, 3, 3]
    assert calibration.frame_reliability([np.nan], [True]) is None  # no probabilities (e.g. one-vs-rest GBT)


def test_overconfidence_is_named_only_where_the_interval_falls_below_the_probability():
    # On a map's groups: 20 windows at 0.99 with 8 agreeing (Wilson 95 %: 0.22-0.61, short of 0.99 by
    # 0.59 x 20 = 11.8 windows), 40 at 0.9 with 20 agreeing (0.35-0.65, short by 0.4 x 40 = 16: named),
    # 10 at 0.6 with 5 agreeing (0.24-0.76 holds 0.6: not short).
    prob = [0.99] * 20 + [0.9] * 40 + [0.6] * 10
    right = [True] * 8 + [False] * 12 + [True] * 20 + [False] * 20 + [True] * 5 + [False] * 5
    rel = calibration.frame_reliability(prob, right)
    low, high = rel["bins"][3]["accuracy_ci95"]
    assert (round(low, 2), round(high, 2)) == (0.22, 0.61)
    said = calibration.overconfidence(rel, "windows mapped", "agree in", "read it as how sure")
    assert said == (
        "windows mapped at probability 0.8-0.95 agree in 50% (95 % interval 35%-65%, n 40) "
        "against a mean probability of 0.90: read it as how sure"
    )
    # 19 of 20 right at 0.97 (0.76-0.99 holds 0.97) promises no more than it keeps; nor does no model.
    fine = calibration.frame_reliability([0.97] * 20, [True] * 19 + [False])
    assert calibration.overconfidence(fine, "x", "right", "") is None
    assert calibration.overconfidence(None, "x", "right", "") is None


def test_drift_is_warned_when_half_a_run_is_less_sure_than_nine_in_ten_test_images():
    test = {"n": 526, "p10": 0.97, "median": 0.999, "share_below_0_5": 0.0}
    run = {"n": 192, "p10": 0.5, "median": 0.91, "share_below_0_5": 0.1}
    assert calibration.drift(run, test, "windows") == (
        "half the windows are less sure than nine in ten of the model's test images (median probability "
        "0.910 against the test split's 10th percentile 0.970): this imagery is unlike the training imagery; "
        "assess the map before relying on it"
    )
    assert calibration.drift(run | {"median": 0.97}, test, "tiles") is None  # at the percentile: not below
    assert calibration.drift(run | {"n": 9}, test, "tiles") is None  # too few to say
    assert calibration.drift(None, test, "tiles") is None and calibration.drift(run, None, "tiles") is None


def test_calibration_on_spark_bins_as_numpy_does(spark):
    rng = np.random.default_rng(5)
    prob = np.concatenate([rng.uniform(0.3, 1.0, 200), [0.5, 0.6, 1.0]]).round(3)
    right = rng.random(len(prob)) < prob
    rows = [("a", "a" if ok else "b", float(p)) for p, ok in zip(prob, right, strict=True)]
    rows += [("a", None, None)]  # a reject: no prediction, no probability
    df = spark.createDataFrame(rows, "label string, predicted_label string, probability double")
    got = calibration.calibration(df)
    assert got == calibration.frame_reliability(prob, right, calibration.TEST_EDGES)
    assert got is not None and got["n"] == len(prob) and 0 <= got["ece"] <= 1
