"""Image folders: labelled ``<split>/<label>/<image>`` trees and flat, unlabelled tile sets.

Labelled layout (the aerial sample's ``train``/``test`` containers)::

    <root>/train/Barren/tile_001.png
    <root>/train/Forest/…
    <root>/test/Barren/…

Any label names work (the original's six NLCD classes are Barren, Cultivated, Developed,
Forest, Herbaceous, Shrub); a file's label is the first folder below the split, so deeper
sub-folders are allowed. Images may be PNG, JPEG, TIFF or anything Pillow opens, of any size.
Every file is read: a file that is not an image becomes a reject row downstream, never a silent
drop. (Spark itself skips names starting with ``_`` or ``.``, as Hadoop tools do.)

Unlabelled tile sets are read recursively from one folder; ``label`` is null.
"""

from __future__ import annotations

import os
import re

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.datasets import DatasetError, sample


class LayoutError(DatasetError):
    """A folder that is not laid out as ``<split>/<label>/<image>``."""


def label_folders(split_root: str) -> list[str]:
    """The label folder names under ``split_root``; raises :class:`LayoutError` if the layout is off."""
    if not os.path.isdir(split_root):
        raise LayoutError(f"folder not found: {split_root}")
    entries = [e for e in os.scandir(split_root) if not e.name.startswith((".", "_"))]
    stray = sorted(e.name for e in entries if e.is_file())
    labels = sorted(e.name for e in entries if e.is_dir())
    if stray:
        raise LayoutError(
            f"{split_root}: files directly under the split ({', '.join(stray[:3])}…); "
            "expected <split>/<label>/<image>"
        )
    if not labels:
        raise LayoutError(f"{split_root}: no label folders; expected <split>/<label>/<image>")
    return labels


def _read_files(spark: SparkSession, root: str) -> DataFrame:
    return (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(root)
        .select("path", F.col("content").alias("image"))
    )


def load_labelled(
    spark: SparkSession, root: str, split: str, fraction: float = 1.0, seed: int = 42
) -> DataFrame:
    """Image rows for ``<root>/<split>/<label>/…``."""
    split_root = os.path.abspath(os.path.join(root, split))
    label_folders(split_root)  # fails early, with a clear message, on a wrong layout
    pattern = rf"/{re.escape(os.path.basename(split_root))}/([^/]+)/"
    rows = _read_files(spark, split_root).withColumn("label", F.regexp_extract("path", pattern, 1))
    return sample(rows.select("path", "label", "image"), fraction, seed)


def load_unlabelled(spark: SparkSession, root: str, fraction: float = 1.0, seed: int = 42) -> DataFrame:
    """Image rows for every file under ``root``, with a null ``label``."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise LayoutError(f"tile folder not found: {root}")
    rows = _read_files(spark, root).withColumn("label", F.lit(None).cast("string"))
    return sample(rows.select("path", "label", "image"), fraction, seed)
