"""MNIST-format data sets (MNIST, Fashion-MNIST): IDX files in one directory.

Format (big-endian): images ``train-images-idx3-ubyte``/``t10k-images-idx3-ubyte`` hold a magic
number 2051, the image count, rows and columns (28 x 28), then one unsigned byte per pixel;
labels ``*-labels-idx1-ubyte`` hold magic 2049, the count, then one byte per label. Each file may
be gzip-compressed with a ``.gz`` suffix. Splits: ``train`` (60,000) and ``test`` (10,000).

Classes: MNIST's are the digits ``"0"`` … ``"9"``; other data sets in this format name theirs
with ``class_names`` (Fashion-MNIST: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal,
Shirt, Sneaker, Bag, Ankle boot).

The driver checks headers and lengths; executors each read their own range of records and
encode each digit as a grey PNG, so no pixel passes through the driver.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np
import pandas as pd
from PIL import Image
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import BinaryType, StringType, StructField, StructType

from jobs.datasets import DatasetError, sample

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
RECORDS_PER_PARTITION = 5000

ROWS = StructType(
    [
        StructField("path", StringType(), False),
        StructField("label", StringType(), False),
        StructField("image", BinaryType(), False),
    ]
)


class MnistFormatError(DatasetError):
    """An IDX file whose name, header or length is not what the format says."""


@dataclass(frozen=True)
class IdxFile:
    """One checked IDX file: where it is, how many records, and each record's shape."""

    path: str
    count: int
    shape: tuple[int, ...]  # (rows, cols) for images, () for labels

    @property
    def header_size(self) -> int:
        return 8 + 4 * len(self.shape)

    @property
    def record_size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1


def _open(path: str) -> IO[bytes]:
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def find(directory: str, stem: str) -> str:
    """``directory/stem`` or ``directory/stem.gz``, whichever exists."""
    for name in (stem, f"{stem}.gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise MnistFormatError(f"{directory}: missing {stem} (or {stem}.gz)")


def read_header(path: str, magic: int) -> IdxFile:
    """Checks the magic number, the dimensions and that the file holds exactly ``count`` records."""
    dims = 3 if magic == IMAGES_MAGIC else 1
    try:
        with _open(path) as f:
            head = f.read(4 + 4 * dims)
            if len(head) < 4 + 4 * dims:
                raise MnistFormatError(f"{path}: header is {len(head)} bytes, expected {4 + 4 * dims}")
            found, *sizes = struct.unpack(f">{1 + dims}I", head)
            if found != magic:
                raise MnistFormatError(f"{path}: magic number {found}, expected {magic}")
            idx = IdxFile(path, sizes[0], tuple(sizes[1:]))
            body = _body_length(f)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise MnistFormatError(f"{path}: unreadable ({exc})") from None
    expected = idx.count * idx.record_size
    if body != expected:
        raise MnistFormatError(
            f"{path}: {body} bytes of records, expected {expected} "
            f"({idx.count} records of {idx.record_size} bytes); truncated or corrupt"
        )
    return idx


def _body_length(f: IO[bytes]) -> int:
    n = 0
    while chunk := f.read(1 << 22):
        n += len(chunk)
    return n


@functools.lru_cache(maxsize=2)
def _decompressed(path: str) -> bytes:
    # gzip cannot seek without inflating everything before the offset; an executor reading
    # many small ranges inflates the file once (images and labels: two entries).
    with gzip.open(path, "rb") as f:
        return f.read()


def read_records(idx: IdxFile, start: int, stop: int) -> np.ndarray:
    """Records ``start``..``stop-1`` as uint8, shaped ``(stop-start, *idx.shape)``."""
    offset, size = idx.header_size + start * idx.record_size, (stop - start) * idx.record_size
    if idx.path.endswith(".gz"):
        data = _decompressed(idx.path)[offset : offset + size]
    else:
        with open(idx.path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    if len(data) != (stop - start) * idx.record_size:
        raise MnistFormatError(f"{idx.path}: records {start}..{stop - 1} are cut short")
    return np.frombuffer(data, dtype=np.uint8).reshape((stop - start, *idx.shape))


def check_split(directory: str, split: str) -> tuple[IdxFile, IdxFile]:
    """The split's checked image and label files; their counts must agree."""
    if split not in SPLITS:
        raise MnistFormatError(f"unknown split {split!r}; MNIST has {', '.join(SPLITS)}")
    if not os.path.isdir(directory):
        raise MnistFormatError(f"MNIST directory not found: {directory}")
    images = read_header(find(directory, SPLITS[split][0]), IMAGES_MAGIC)
    labels = read_header(find(directory, SPLITS[split][1]), LABELS_MAGIC)
    if images.count != labels.count:
        raise MnistFormatError(f"{directory}: {images.count} images but {labels.count} labels in the {split} split")
    return images, labels


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def load_split(
    spark: SparkSession,
    directory: str,
    split: str,
    fraction: float = 1.0,
    seed: int = 42,
    class_names: list[str] | None = None,
) -> DataFrame:
    """Image rows for ``split``; ``path`` is ``<images file name>#<index>``."""
    images, labels = check_split(os.path.abspath(directory), split)
    n_classes = 256 if class_names is None else len(class_names)
    names = list(class_names) if class_names is not None else [str(i) for i in range(256)]
    parts = max(spark.sparkContext.defaultParallelism, -(-images.count // RECORDS_PER_PARTITION))
    ids = spark.range(0, images.count, numPartitions=parts)
    ids = sample(ids, fraction, seed, key="id")
    stem = os.path.basename(images.path)

    def read(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            index = batch["id"].to_numpy()
            if len(index) == 0:
                continue
            lo, hi = int(index.min()), int(index.max()) + 1
            pix = read_records(images, lo, hi)[index - lo]
            lab = read_records(labels, lo, hi)[index - lo]
            if int(lab.max()) >= n_classes:
                raise MnistFormatError(f"{labels.path}: label {int(lab.max())} has no class name")
            yield pd.DataFrame(
                {
                    "path": [f"{stem}#{i}" for i in index],
                    "label": [names[int(v)] for v in lab],
                    "image": [png_bytes(p) for p in pix],
                }
            )

    return ids.mapInPandas(read, ROWS)
