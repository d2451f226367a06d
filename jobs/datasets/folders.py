"""Image folders: labelled ``<split>/<label>/<image>`` trees and flat, unlabelled tile sets.

Labelled layout (the aerial sample's ``train``/``test`` containers)::

    <root>/train/Barren/tile_001.png
    <root>/train/Forest/…
    <root>/test/Barren/…

Any label names work (the original's six NLCD classes are Barren, Cultivated, Developed,
Forest, Herbaceous, Shrub); a file's label is the first folder below the split, so deeper
sub-folders are allowed. Images may be PNG, JPEG, TIFF or anything Pillow opens, of any size.
Every file is read: a file that is not an image, or an empty one, becomes a reject row
downstream, never a silent drop. Names starting with ``.`` or ``_`` (``.DS_Store``, ``_SUCCESS``)
are not data and are skipped, as Hadoop tools do.

Unlabelled tile sets are read recursively from one folder; ``label`` is null.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import BinaryType, StringType, StructField, StructType

from jobs.datasets import DatasetError, sample

HIDDEN = (".", "_")
FILES_PER_PARTITION = 256
NAMES = StructType([StructField("path", StringType(), False), StructField("label", StringType(), True)])
ROWS = StructType([*NAMES.fields, StructField("image", BinaryType(), False)])


class LayoutError(DatasetError):
    """A folder that is not laid out as ``<split>/<label>/<image>``."""


def label_folders(split_root: str) -> list[str]:
    """The label folder names under ``split_root``; raises :class:`LayoutError` if the layout is off."""
    if not os.path.isdir(split_root):
        raise LayoutError(f"folder not found: {split_root}")
    entries = [e for e in os.scandir(split_root) if not e.name.startswith(HIDDEN)]
    stray = sorted(e.name for e in entries if e.is_file())
    labels = sorted(e.name for e in entries if e.is_dir())
    if stray:
        raise LayoutError(
            f"{split_root}: files directly under the split ({', '.join(stray[:3])}…); expected <split>/<label>/<image>"
        )
    if not labels:
        raise LayoutError(f"{split_root}: no label folders; expected <split>/<label>/<image>")
    return labels


def list_files(root: str) -> list[str]:
    """Every file under ``root``, recursively, sorted; names starting with ``.`` or ``_`` are skipped."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(HIDDEN)]
        found.extend(os.path.join(folder, f) for f in files if not f.startswith(HIDDEN))
    return sorted(found)


def read_files(
    spark: SparkSession, paths: list[str], labels: list[str | None], fraction: float, seed: int
) -> DataFrame:
    """Image rows for ``paths``: the driver holds names only, executors read the bytes.

    Spark's ``binaryFile`` source is not used because it skips zero-length files without a
    word; here an empty file becomes a row with empty bytes, which the featurizer rejects.
    """
    n_parts = max(spark.sparkContext.defaultParallelism, -(-len(paths) // FILES_PER_PARTITION))
    names = spark.sparkContext.parallelize(list(zip(paths, labels, strict=True)), n_parts).toDF(NAMES)
    names = sample(names, fraction, seed)

    def read(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            batch["image"] = [Path(p).read_bytes() for p in batch["path"]]
            yield batch

    return names.mapInPandas(read, ROWS)


def load_labelled(spark: SparkSession, root: str, split: str, fraction: float = 1.0, seed: int = 42) -> DataFrame:
    """Image rows for ``<root>/<split>/<label>/…``."""
    split_root = os.path.abspath(os.path.join(root, split))
    paths: list[str] = []
    labels: list[str | None] = []
    for label in label_folders(split_root):
        found = list_files(os.path.join(split_root, label))
        paths.extend(found)
        labels.extend([label] * len(found))
    return read_files(spark, paths, labels, fraction, seed)


def load_unlabelled(spark: SparkSession, root: str, fraction: float = 1.0, seed: int = 42) -> DataFrame:
    """Image rows for every file under ``root``, with a null ``label``."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise LayoutError(f"tile folder not found: {root}")
    paths = list_files(root)
    return read_files(spark, paths, [None] * len(paths), fraction, seed)
