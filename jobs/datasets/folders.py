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

Roots may be local, in Azure Blob Storage or behind any Hadoop URI (see :mod:`jobs.storage`).
The driver lists names (and samples them); executors read the bytes, so no image passes
through the driver.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, StringType, StructField, StructType

from jobs.datasets import DatasetError, sample
from jobs.storage import HadoopStorage, Reader, Storage, StorageError

FILES_PER_PARTITION = 256
NAMES = StructType([StructField("path", StringType(), False), StructField("label", StringType(), True)])
ROWS = StructType([*NAMES.fields, StructField("image", BinaryType(), False)])


class LayoutError(DatasetError):
    """A folder that is not laid out as ``<split>/<label>/<image>``."""


def labelled_files(location: Storage, split: str) -> tuple[list[str], list[str]]:
    """``(relative paths, labels)`` under ``<split>/``; raises :class:`LayoutError` if the layout is off."""
    try:
        names = location.list_files(split)
    except StorageError as exc:
        raise LayoutError(str(exc)) from None
    stray = [n for n in names if "/" not in n]
    if stray:
        raise LayoutError(
            f"{location.uri(split)}: files directly under the split ({', '.join(stray[:3])}…); "
            "expected <split>/<label>/<image>"
        )
    if not names:
        raise LayoutError(f"{location.uri(split)}: no label folders; expected <split>/<label>/<image>")
    return [f"{split}/{n}" for n in names], [n.split("/", 1)[0] for n in names]


def read_files(
    spark: SparkSession,
    location: Storage,
    paths: list[str],
    labels: list[str | None],
    fraction: float,
    seed: int,
    exclude: DataFrame | None = None,
) -> DataFrame:
    """Image rows for ``paths`` (relative to ``location``): names on the driver, bytes on executors.

    Spark's ``binaryFile`` source is not used where Python can read the files, because it
    skips zero-length files without a word; here an empty file becomes a row with empty bytes,
    which the featurizer rejects.
    """
    uris = [location.uri(*p.split("/")) for p in paths]
    if isinstance(location, HadoopStorage):
        rows = _read_with_spark(spark, location, uris, labels, fraction, seed)
        return rows if exclude is None else rows.join(exclude.select("path").distinct(), "path", "left_anti")
    reader: Reader = location.reader()
    n_parts = max(spark.sparkContext.defaultParallelism, -(-len(uris) // FILES_PER_PARTITION))
    names = spark.sparkContext.parallelize(list(zip(uris, labels, strict=True)), n_parts).toDF(NAMES)
    names = sample(names, fraction, seed)
    if exclude is not None:  # e.g. tiles already scored: their bytes are never fetched
        names = names.join(exclude.select("path").distinct(), "path", "left_anti")

    def read(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            batch["image"] = [reader.read(p) for p in batch["path"]]
            yield batch

    return names.mapInPandas(read, ROWS)


def _read_with_spark(
    spark: SparkSession, location: Storage, uris: list[str], labels: list[str | None], fraction: float, seed: int
) -> DataFrame:
    labels_df = spark.createDataFrame(list(zip(uris, labels, strict=True)), NAMES)
    files = spark.read.format("binaryFile").load(uris).select("path", F.col("content").alias("image"))
    return sample(files.join(labels_df, "path").select("path", "label", "image"), fraction, seed)


def load_labelled(
    spark: SparkSession, location: Storage, split: str, fraction: float = 1.0, seed: int = 42
) -> DataFrame:
    """Image rows for ``<location>/<split>/<label>/…``."""
    paths, labels = labelled_files(location, split)
    return read_files(spark, location, paths, list(labels), fraction, seed)


def load_unlabelled(
    spark: SparkSession, location: Storage, fraction: float = 1.0, seed: int = 42, exclude: DataFrame | None = None
) -> DataFrame:
    """Image rows for every file under ``location`` (less ``exclude``'s paths), with a null ``label``."""
    try:
        paths = location.list_files()
    except StorageError as exc:
        raise LayoutError(f"tile folder: {exc}") from None
    return read_files(spark, location, paths, [None] * len(paths), fraction, seed, exclude)
