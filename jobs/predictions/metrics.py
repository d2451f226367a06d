"""Classification metrics from a confusion matrix: accuracy, per-class precision/recall/F1.

Spark counts (true label, predicted label) pairs; the k x k matrix is small, so the arithmetic
happens here. Definitions (as scikit-learn's, with 0 where a denominator is 0):
precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pyspark.sql import DataFrame


@dataclass(frozen=True)
class ClassMetrics:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Report:
    accuracy: float
    macro_f1: float
    per_class: list[ClassMetrics]
    labels: list[str]
    confusion: list[list[int]]  # rows: true label, columns: predicted label, in ``labels`` order
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def report(pairs: Iterable[tuple[str, str, int]], labels: Sequence[str]) -> Report:
    """A report from ``(true, predicted, count)`` triples; ``labels`` fixes the order."""
    order = {name: i for i, name in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for true, pred, count in pairs:
        cm[order[true], order[pred]] += count
    n = int(cm.sum())
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    actual = cm.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    per_class = [
        ClassMetrics(name, float(precision[i]), float(recall[i]), float(f1[i]), int(actual[i]))
        for i, name in enumerate(labels)
    ]
    return Report(
        accuracy=float(tp.sum() / n) if n else 0.0,
        macro_f1=float(f1.mean()) if len(labels) else 0.0,
        per_class=per_class,
        labels=list(labels),
        confusion=cm.tolist(),
        n=n,
    )


def evaluate(
    predictions: DataFrame, labels: Sequence[str], label_col: str = "label", predicted_col: str = "predicted_label"
) -> Report:
    """Report over the rows of ``predictions`` that have a prediction."""
    counts = (
        predictions.where(predictions[predicted_col].isNotNull())
        .groupBy(label_col, predicted_col)
        .count()
        .collect()  # at most k x k rows
    )
    return report(((r[0], r[1], int(r[2])) for r in counts), labels)


# How far a split's accuracy may be from the truth before a warning says so: ±5 points (95 %).
TRUSTED_HALF_WIDTH = 0.05
Z95 = 1.959964


def wilson(correct: float, n: int) -> tuple[float, float]:
    """The Wilson score 95 % interval of a proportion (sound at 0 and 1, unlike p ± z·se)."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def images_needed(accuracy: float, half_width: float = TRUSTED_HALF_WIDTH) -> int:
    """Images for a 95 % interval of ± ``half_width`` around ``accuracy`` (taken as at most 0.95:
    a perfect score on a few images says little)."""
    p = min(max(accuracy, 0.5), 0.95)
    return int(np.ceil(Z95**2 * p * (1 - p) / half_width**2))


def small_split_warnings(accuracy: float, n_test: int, tuning: list[dict[str, Any]] | None, n_val: int) -> list[str]:
    """Warnings when the test split is too small to trust its accuracy, or the validation split
    too small to choose between settings (its best score's 95 % interval wider than ±0.05)."""
    out = []
    low, high = wilson(accuracy * n_test, n_test)
    if high - low > 2 * TRUSTED_HALF_WIDTH:
        out.append(
            f"test accuracy {accuracy:.4f} on {n_test} images: its 95% interval is {low:.3f}-{high:.3f}; "
            f"about {images_needed(accuracy)} test images would pin it to ±{TRUSTED_HALF_WIDTH:.2f}"
        )
    if tuning and len(tuning) > 1 and n_val:
        scores = sorted((c["validation_accuracy"] for c in tuning), reverse=True)
        tied = sum(s == scores[0] for s in scores)
        low, high = wilson(scores[0] * n_val, n_val)
        # Too small when the best score's interval is wide; a tie inside a narrow interval only
        # says the tied settings are equally good (the first in order is kept).
        if high - low > 2 * TRUSTED_HALF_WIDTH:
            what = f"{tied} settings tied at {scores[0]:.4f}" if tied > 1 else f"best {scores[0]:.4f}"
            out.append(
                f"validation split of {n_val} images is too small to choose settings ({what}, 95% interval "
                f"{low:.3f}-{high:.3f}); about {images_needed(scores[0])} validation images would choose reliably"
            )
    return out
