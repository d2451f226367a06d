"""The prediction table both jobs write: one row per image, no feature vectors.

Columns: ``path``, ``label`` (the true label; null for unlabelled tiles), ``predicted_label``,
``probability`` (of the predicted label), ``reject_reason``, ``pixel_note`` (how the pixels were
changed before featurizing, e.g. an EXIF rotation: see :mod:`featurizers.preprocess`); rejected
images have null predictions and a reason.
"""

from __future__ import annotations

from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from featurizers.image_featurizer import NOTE_COL

# Reject codes that can heal: the file was half-written, moving, or briefly unreadable. An
# incremental run scores such inputs again; the others (not an image, too large…) stay done.
HEALABLE = ("vanished", "empty", "truncated", "decode_error", "read_error", "not_a_file")


def healable(col: str = "reject_reason") -> Column:
    """True where the row's reject code is one that can heal."""
    return F.substring_index(col, ":", 1).isin(*HEALABLE) & F.col(col).isNotNull()


def top_probability(predictions: DataFrame, col: str = "probability") -> Column:
    """The largest class probability; null where the prediction was masked, or where the
    classifier gives no probabilities (one-vs-rest GBT)."""
    if col not in predictions.columns:
        return F.lit(None).cast("double").alias(col)
    return F.when(F.col(col).isNotNull(), F.array_max(vector_to_array(col))).alias(col)


def prediction_table(predictions: DataFrame, *extra: Column) -> DataFrame:
    note = F.col(NOTE_COL) if NOTE_COL in predictions.columns else F.lit(None).cast("string").alias(NOTE_COL)
    return predictions.select(
        "path", "label", "predicted_label", top_probability(predictions), "reject_reason", note, *extra
    )


def counts_by_code(table: DataFrame, col: str) -> dict[str, int]:
    """Rows per code (the text before ``:``) of a reason or note column, nulls left out."""
    code = F.substring_index(col, ":", 1)
    rows = table.where(F.col(col).isNotNull()).groupBy(code.alias("code")).count().collect()  # one row a code
    return {r["code"]: int(r["count"]) for r in sorted(rows, key=lambda r: r["code"])}


def top_k(predictions: DataFrame, labels: list[str], k: int, col: str = "probability") -> Column:
    """The ``k`` most probable labels as ``array<struct<label, probability>>``, best first; null
    where there is no probability (masked rows, one-vs-rest GBT)."""
    if col not in predictions.columns or k < 1:
        return F.lit(None).cast("array<struct<label:string,probability:double>>").alias("top_k")
    names = F.array(*[F.lit(x) for x in labels])
    # Fields named by alias inside struct(): arrays_zip's names are lost under Spark Connect 3.5.
    pairs = F.transform(
        vector_to_array(col), lambda p, i: F.struct(p.alias("probability"), F.element_at(names, i + 1).alias("label"))
    )
    best = F.slice(F.sort_array(pairs, asc=False), 1, k)
    as_rows = F.transform(best, lambda p: F.struct(p["label"].alias("label"), p["probability"].alias("probability")))
    return F.when(F.col(col).isNotNull(), as_rows).alias("top_k")
