"""Seeded, stratified train / validation / test splits of labelled image rows, made on Spark.

Folder-per-class sets (UC Merced, RSSCN7, AID, EuroSAT, NWPU-RESISC45) ship without a split.
Within each class, files are ordered by a seeded hash of their path *relative to the data
root* (so the same files land in the same split whether the root is a laptop folder or a
Blob container). The last ``round(n * (1 - train_ratio))`` in that order are the test split;
of the rest, the last ``round(n_train * val_ratio)`` are the validation split that model
selection uses, and the others train. Every class keeps at least one image on each side. The
split never depends on partitioning, the number of executors, or the listing's order.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.datasets import DatasetError, hash_unit

TRAIN, VAL, TEST = "train", "val", "test"


class SplitError(DatasetError):
    """A split that cannot be made: a ratio outside (0, 1), or a class too small to split."""


def check_ratio(name: str, value: float, allow_zero: bool = False) -> None:
    low_ok = value >= 0.0 if allow_zero else value > 0.0
    if not (low_ok and value < 1.0):
        raise SplitError(f"{name} {value} is not in {'[0' if allow_zero else '(0'}, 1)")


def assign(rows: DataFrame, key: Column, train_ratio: float, val_ratio: float, seed: int) -> DataFrame:
    """``rows`` (``label``, …) with a ``split`` column: ``train``, ``val`` or ``test``.

    ``key`` names each image stably (a path relative to the data root): the hash orders by it.
    """
    check_ratio("train_ratio", train_ratio)
    return carve_val(_tail(rows, key, 1.0 - train_ratio, seed, TEST), key, val_ratio, seed)


def carve_val(rows: DataFrame, key: Column, val_ratio: float, seed: int) -> DataFrame:
    """Marks ``val_ratio`` of each class's ``train`` rows (a ``split`` column) as ``val``."""
    check_ratio("val_ratio", val_ratio, allow_zero=True)
    if val_ratio == 0.0:
        return rows
    train = rows.where(F.col("split") == TRAIN)
    return rows.where(F.col("split") != TRAIN).unionByName(_tail(train.drop("split"), key, val_ratio, seed, VAL))


def _tail(rows: DataFrame, key: Column, ratio: float, seed: int, name: str) -> DataFrame:
    """``split`` = ``name`` for the last ``round(n * ratio)`` of each class in seeded-hash order
    (at least one where the class has two images, never all of them), ``train`` for the rest."""
    # Partitioned by label first, as few partitions as the rows came in: the window then needs
    # no shuffle of its own (200 near-empty partitions, by default).
    rows = rows.repartition(max(1, rows.rdd.getNumPartitions()), "label")
    by_class = Window.partitionBy("label")
    n = F.count(F.lit(1)).over(by_class)
    rank = F.row_number().over(by_class.orderBy(hash_unit(key, seed), key))
    k = F.least(n - 1, F.greatest(F.lit(1), F.round(n * F.lit(ratio)).cast("int")))
    return rows.withColumn("split", F.when(rank > n - k, F.lit(name)).otherwise(F.lit(TRAIN)))


def check_class_sizes(counts: dict[str, int], where: str) -> None:
    """Every class needs two images to be split into train and test."""
    small = sorted(label for label, n in counts.items() if n < 2)
    if small:
        raise SplitError(f"{where}: classes with fewer than 2 images cannot be split: {', '.join(small)}")
