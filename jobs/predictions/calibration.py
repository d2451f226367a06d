"""How far a model's probabilities can be taken at their word: reliability bins and the
expected calibration error (ECE) of the probability of each prediction.

Predictions are grouped by that probability into bins; in each bin the share that is right is
set against the mean probability. ECE = sum over bins of (n_b / n) |accuracy_b - confidence_b|
(Guo, Pleiss, Sun and Weinberger, "On Calibration of Modern Neural Networks", ICML 2017, with
ten equal bins as there). A model whose 0.9s are right 9 times in 10 has an ECE near 0.

Bins are counted where the rows are (Spark for a test split, pandas for a map's windows); only
one ``(bin, n, sum of probabilities, right)`` row a bin comes here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.predictions.metrics import wilson

TEST_EDGES = tuple(i / 10 for i in range(11))  # ten equal bins, as for the ECE in the literature
MAP_EDGES = (0.0, 0.5, 0.8, 0.95, 1.0)  # few, so that each holds enough of one scene's windows


def bin_of(probability: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Each probability's bin: ``[e_k, e_k+1)``, the last bin closed at 1."""
    return (np.asarray(probability, dtype=np.float64)[:, None] >= np.asarray(edges[1:-1])).sum(axis=1)


def bin_column(probability: Column, edges: Sequence[float]) -> Column:
    """:func:`bin_of` as a Spark column."""
    return sum(((probability >= e).cast("int") for e in edges[1:-1]), F.lit(0))


def reliability(counts: Iterable[tuple[int, int, float, int]], edges: Sequence[float]) -> dict[str, Any] | None:
    """Bins (range, predictions, mean probability, accuracy with its Wilson 95 % interval) and
    the ECE, from ``(bin, n, sum of probabilities, right)`` rows; None where there are none."""
    rows = {int(b): (int(n), float(s), int(r)) for b, n, s, r in counts if n}
    total = sum(n for n, _, _ in rows.values())
    if not total:
        return None
    bins, ece = [], 0.0
    for b in range(len(edges) - 1):
        n, s, right = rows.get(b, (0, 0.0, 0))
        entry: dict[str, Any] = {"from": edges[b], "to": edges[b + 1], "n": n}
        if n:
            confidence, accuracy = s / n, right / n
            ece += n / total * abs(accuracy - confidence)
            low, high = wilson(right, n)
            entry |= {"mean_probability": round(confidence, 4), "accuracy": round(accuracy, 4)}
            entry["accuracy_ci95"] = [round(low, 4), round(high, 4)]
        bins.append(entry)
    return {"ece": round(ece, 4), "n": total, "bins": bins}


def calibration(
    predictions: DataFrame, label_col: str = "label", predicted_col: str = "predicted_label"
) -> dict[str, Any] | None:
    """:func:`reliability` of a prediction table (``probability``: of the predicted label) over
    :data:`TEST_EDGES`; None where the model gives no probabilities."""
    p = F.col("probability")
    rows = (
        predictions.where(p.isNotNull() & F.col(predicted_col).isNotNull() & F.col(label_col).isNotNull())
        .groupBy(bin_column(p, TEST_EDGES).alias("bin"))
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.sum(p).alias("s"),
            F.sum((F.col(label_col) == F.col(predicted_col)).cast("int")).alias("right"),
        )
        .collect()  # at most ten rows
    )
    return reliability(((r["bin"], r["n"], r["s"], r["right"]) for r in rows), TEST_EDGES)


def frame_reliability(probability: Any, right: Any, edges: Sequence[float] = MAP_EDGES) -> dict[str, Any] | None:
    """:func:`reliability` of rows at hand (a map's judged windows)."""
    probability, right = np.asarray(probability, dtype=np.float64), np.asarray(right, dtype=bool)
    keep = np.isfinite(probability)
    probability, right = probability[keep], right[keep]
    b = bin_of(probability, edges)
    counts = [(k, int((b == k).sum()), float(probability[b == k].sum()), int(right[b == k].sum())) for k in set(b)]
    return reliability(counts, edges)


def overconfidence(rel: dict[str, Any] | None, units: str, outcome: str, advice: str) -> str | None:
    """A warning where a group's share ``outcome`` ("are right in") lies, at 95 %, below the
    group's mean probability: there the probabilities promise more than they deliver. It names
    the group that falls shortest in count of ``units``; None where every group keeps its word,
    within its interval."""
    short = [b for b in (rel or {}).get("bins", []) if b["n"] and b["accuracy_ci95"][1] < b["mean_probability"]]
    if not short:
        return None
    b = max(short, key=lambda b: b["n"] * (b["mean_probability"] - b["accuracy"]))
    low, high = b["accuracy_ci95"]
    return (
        f"{units} at probability {b['from']:g}-{b['to']:g} {outcome} {b['accuracy']:.0%} "
        f"(95 % interval {low:.0%}-{high:.0%}, n {b['n']}) against a mean probability of "
        f"{b['mean_probability']:.2f}: {advice}"
    )


def how_sure(predictions: DataFrame) -> dict[str, Any] | None:
    """A scoring run's probabilities at a glance: their 10th percentile and median, and the share
    below 0.5. Read beside the model's ``calibration``: a drop between nightly runs says the
    imagery has moved from what the model knows. None where the model gives no probabilities."""
    p = F.col("probability")
    row = (
        predictions.where(p.isNotNull())
        .agg(
            F.count(p).alias("n"),
            F.percentile_approx(p, [0.1, 0.5], 10_000).alias("q"),
            F.avg((p < 0.5).cast("double")).alias("low"),
        )
        .first()
    )
    if row is None or not row["n"]:
        return None
    p10, median = (round(float(v), 4) for v in row["q"])
    return {"n": int(row["n"]), "p10": p10, "median": median, "share_below_0_5": round(float(row["low"]), 4)}


DRIFT_MIN_N = 10  # below this a run's median says too little: 10 windows like the test split fall this low 1 in 600


def drift(run: dict[str, Any] | None, test: dict[str, Any] | None, units: str) -> str | None:
    """A warning where half of a scoring run is less sure than nine in ten of the model's own test
    images (the run's median probability below the test split's 10th percentile): imagery unlike
    the training imagery, before any reference says so. None where either is unknown (a model
    without probabilities, or saved before its test confidence was kept) or the run is small."""
    if not run or not test or run["n"] < DRIFT_MIN_N or run["median"] >= test["p10"]:
        return None
    return (
        f"half the {units} are less sure than nine in ten of the model's test images (median "
        f"probability {run['median']:.3f} against the test split's 10th percentile {test['p10']:.3f}): "
        "this imagery is unlike the training imagery; assess the map before relying on it"
    )
