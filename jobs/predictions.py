"""The prediction table both jobs write: one row per image, no feature vectors.

Columns: ``path``, ``label`` (the true label; null for unlabelled tiles), ``predicted_label``,
``probability`` (of the predicted label), ``reject_reason``; rejected images have null
predictions and a reason.
"""

from __future__ import annotations

from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def top_probability(predictions: DataFrame, col: str = "probability") -> Column:
    """The largest class probability; null where the prediction was masked, or where the
    classifier gives no probabilities (one-vs-rest GBT)."""
    if col not in predictions.columns:
        return F.lit(None).cast("double").alias(col)
    return F.when(F.col(col).isNotNull(), F.array_max(vector_to_array(col))).alias(col)


def prediction_table(predictions: DataFrame, *extra: Column) -> DataFrame:
    return predictions.select("path", "label", "predicted_label", top_probability(predictions), "reject_reason", *extra)
