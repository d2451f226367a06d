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
