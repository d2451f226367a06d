"""Image folders: labelled trees, pre-split or not, and flat, unlabelled tile sets.

Two labelled layouts. Pre-split (the aerial sample's ``train``/``test`` containers)::

    <root>/train/Barren/tile_001.png
    <root>/train/Forest/…
    <root>/test/Barren/…

and one folder per class, the way UC Merced, RSSCN7, AID, EuroSAT and NWPU-RESISC45 ship,
which :mod:`jobs.datasets.splits` splits (seeded, stratified)::

    <root>/forest/forest00.tif
    <root>/river/…

Any label names work (the original's six NLCD classes are Barren, Cultivated, Developed,
Forest, Herbaceous, Shrub); a file's label is the first folder below the split, so deeper
sub-folders are allowed. Images may be PNG, JPEG, TIFF or anything Pillow opens, of any size.
Every file is read: a file that is not an image, or an empty one, becomes a reject row
downstream, never a silent drop. Names starting with ``.`` or ``_`` (``.DS_Store``, ``_SUCCESS``)
are not data and are skipped, as Hadoop tools do; so are FIFOs and devices, dangling links and
folders a link loops back to. Each skip is counted by reason in the job's summary and record.

Unlabelled tile sets are read recursively from one folder; ``label`` is null.

Roots may be local, in Azure Blob Storage or behind any Hadoop URI (see :mod:`jobs.storage`).
The driver streams the listing into a file that executors read (see :func:`names_frame`), so
its memory does not grow with the number of files; executors read the bytes, so no image
passes through the driver.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator

import pandas as pd
from pyspark import SparkFiles
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, StringType, StructField, StructType

from featurizers.preprocess import NOT_A_FILE
from jobs.datasets import DatasetError, sample
from jobs.runtime.spark import is_connect, parallelism
from jobs.storage import HadoopStorage, NotAFileError, Reader, Storage, StorageError, temp_dir

FILES_PER_PARTITION = 256
NAMES = StructType([StructField("path", StringType(), False), StructField("label", StringType(), True)])
_MAX_MARKS = 4096  # offsets the driver keeps into a listing, however long it is


class LayoutError(DatasetError):
    """A folder that is not laid out as ``<split>/<label>/<image>``."""


def is_pre_split(location: Storage) -> bool:
    """Whether ``location`` holds ``train/`` and ``test/`` (else: one folder per class)."""
    return {"train", "test"} <= set(location.list_folders())


def relative_key(location: Storage) -> Column:
    """Each row's ``path`` relative to ``location``: a name for the image that does not change
    when the same tree is copied elsewhere (what seeded splits and samples hash)."""
    return F.substring(F.col("path"), len(location.uri().rstrip("/")) + 2, 1 << 30)


def class_files(location: Storage, skipped: Counter[str] | None = None) -> Iterator[tuple[str, str]]:
    """``(relative path, label)`` for each file of a ``<label>/<image>`` tree, as listed.

    Raises :class:`LayoutError`, while iterating, for a file directly under the root or a
    root with no class folders.
    """
    found = False
    try:
        for name in location.iter_files(skipped=skipped):
            if "/" not in name:
                raise LayoutError(
                    f"{location.uri(name)}: a file directly under the data root; expected <label>/<image> "
                    "(or train/<label>/ and test/<label>/)"
                )
            found = True
            yield name, name.split("/", 1)[0]
    except StorageError as exc:
        raise LayoutError(str(exc)) from None
    if not found:
        raise LayoutError(f"{location.uri()}: no class folders; expected <label>/<image> or train/ and test/")


def labelled_files(location: Storage, split: str, skipped: Counter[str] | None = None) -> Iterator[tuple[str, str]]:
    """``(relative path, label)`` for each file under ``<split>/``, as listed.

    Raises :class:`LayoutError`, while iterating, when the layout is off.
    """
    found = False
    try:
        for name in location.iter_files(split, skipped=skipped):
            if "/" not in name:
                raise LayoutError(
                    f"{location.uri(split)}: a file directly under the split ({name}); expected <split>/<label>/<image>"
                )
            found = True
            yield f"{split}/{name}", name.split("/", 1)[0]
    except StorageError as exc:
        raise LayoutError(str(exc)) from None
    if not found:
        raise LayoutError(f"{location.uri(split)}: no label folders; expected <split>/<label>/<image>")


def uris(location: Storage, files: Iterable[tuple[str, str | None]]) -> Iterator[tuple[str, str | None]]:
    """``(relative path, label)`` pairs as listed below ``location`` → ``(URI, label)``, streamed."""
    return ((location.uri(*path.split("/")), label) for path, label in files)


def names_frame(spark: SparkSession, files: Iterable[tuple[str, str | None]]) -> DataFrame:
    """A ``(path, label)`` DataFrame of ``files`` (URIs with labels), in partitions of ~256.

    The listing streams into a local file that executors fetch (``SparkContext.addFile``) and
    read by byte range; the driver keeps only a bounded number of offsets into it, so its
    memory stays flat whether a tile set has a thousand files or millions (``parallelize``
    would hold every name in the driver's Python and JVM). A Spark Connect session has no
    SparkContext: there the names travel in the query plan, held once by the client.
    """
    if is_connect(spark):  # no SparkContext to ship a file with: the names go in the plan
        rows = pd.DataFrame(list(files), columns=NAMES.names, dtype=object)
        return spark.createDataFrame(rows, NAMES).repartition(max(1, -(-len(rows) // FILES_PER_PARTITION)))
    listing = os.path.join(temp_dir("listing-"), f"names-{uuid.uuid4().hex}.jsonl")
    marks, every, n = [0], 1, 0  # a byte offset after every `every`-th line
    with open(listing, "wb") as f:
        for n, (path, label) in enumerate(files, 1):
            f.write(json.dumps([path, label]).encode() + b"\n")
            if n % every == 0:
                marks.append(f.tell())
                if len(marks) > _MAX_MARKS:  # thin out: keep every other mark
                    marks, every = marks[::2], every * 2
        end = f.tell()
    if n == 0:
        return spark.createDataFrame([], NAMES)
    if marks[-1] != end:
        marks.append(end)
    per_part = max(1, min(FILES_PER_PARTITION, -(-n // parallelism(spark))) // every)
    spans = [(marks[i], marks[min(i + per_part, len(marks) - 1)]) for i in range(0, len(marks) - 1, per_part)]
    spark.sparkContext.addFile(listing)
    fetched = os.path.basename(listing)

    def read(span: tuple[int, int]) -> Iterator[tuple[str, str | None]]:
        with open(SparkFiles.get(fetched), "rb") as f:
            f.seek(span[0])
            lines = f.read(span[1] - span[0]).splitlines()
        for line in lines:
            path, label = json.loads(line)
            yield path, label

    return spark.sparkContext.parallelize(spans, len(spans)).flatMap(read).toDF(NAMES)


def read_files(
    spark: SparkSession,
    location: Storage,
    files: Iterable[tuple[str, str | None]],
    fraction: float,
    seed: int,
    exclude: DataFrame | None = None,
    top: str | None = None,
) -> DataFrame:
    """Image rows for ``files`` (``(relative path, label)`` below ``location``); bytes read on executors.

    ``top`` is the folder the files were listed from.
    """
    names = sample(names_frame(spark, uris(location, files)), fraction, seed)
    if exclude is not None:  # e.g. tiles already scored: their bytes are never fetched
        names = names.join(exclude.select("path").distinct(), "path", "left_anti")
    return attach_images(spark, location, names, top)


def attach_images(spark: SparkSession, location: Storage, names: DataFrame, top: str | None = None) -> DataFrame:
    """``names`` (a ``path`` column of URIs below ``location``, any others) with ``image``, the
    file's bytes, read on the executors.

    Spark's ``binaryFile`` source is not used where Python can read the files, because it
    skips zero-length files without a word; here an empty file becomes a row with empty bytes,
    which the featurizer rejects. ``top`` is the folder the files were listed from.
    """
    if isinstance(location, HadoopStorage):
        files_df = (
            spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .load(location.uri(*([top] if top else [])))
            .select("path", F.col("content").alias("image"))
        )
        return names.join(files_df, "path")
    reader: Reader = location.reader()

    # A scalar-iterator pandas UDF, not mapInPandas: a featurizer UDF applied to its output is
    # chained into the same Python worker, so the bytes do not go back through the JVM and each
    # task holds one Python worker (with one network session), not two.
    def read_one(path: str) -> bytes | None:
        try:
            return reader.read(path)
        except FileNotFoundError:  # removed since the listing: a reject (vanished), not a failed run
            return None
        except NotAFileError:  # a FIFO or device swapped in since the listing: a reject, never a hang
            return NOT_A_FILE

    @F.pandas_udf(BinaryType())  # type: ignore[call-overload]
    def read(paths: Iterator[pd.Series]) -> Iterator[pd.Series]:
        for batch in paths:
            yield pd.Series([read_one(p) for p in batch])

    return names.withColumn("image", read("path"))


def load_labelled(
    spark: SparkSession, location: Storage, split: str, fraction: float = 1.0, seed: int = 42
) -> DataFrame:
    """Image rows for ``<location>/<split>/<label>/…``."""
    files = labelled_files(location, split)
    return read_files(spark, location, files, fraction, seed, top=split)


def load_unlabelled(
    spark: SparkSession,
    location: Storage,
    fraction: float = 1.0,
    seed: int = 42,
    exclude: DataFrame | None = None,
    skipped: Counter[str] | None = None,
) -> DataFrame:
    """Image rows for every file under ``location`` (less ``exclude``'s paths), with a null
    ``label``; what the listing left out is counted in ``skipped``. A folder with no file to
    score is a :class:`LayoutError`."""

    def files() -> Iterator[tuple[str, None]]:
        found = False
        try:
            for path in location.iter_files(skipped=skipped):
                found = True
                yield path, None
        except StorageError as exc:
            raise LayoutError(f"tile folder: {exc}") from None
        if not found:
            raise LayoutError(f"tile folder {location.uri()}: no files to score")

    return read_files(spark, location, files(), fraction, seed, exclude)
