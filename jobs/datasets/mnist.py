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
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np
import pandas as pd
from PIL import Image
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import BinaryType, StringType, StructField, StructType

from jobs.datasets import DatasetError, sample
from jobs.runtime.spark import parallelism
from jobs.storage import LocalStorage, Storage, StorageError

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


def find(location: Storage, stem: str) -> str:
    """``stem`` or ``stem.gz``, whichever ``location`` holds."""
    for name in (stem, f"{stem}.gz"):
        if location.exists(name):
            return name
    raise MnistFormatError(f"{location.uri()}: missing {stem} (or {stem}.gz)")


def parse_header(path: str, head: bytes, magic: int) -> IdxFile:
    """The header at the start of ``head`` (already decompressed); checks magic and size."""
    dims = 3 if magic == IMAGES_MAGIC else 1
    if len(head) < 4 + 4 * dims:
        raise MnistFormatError(f"{path}: header is {len(head)} bytes, expected {4 + 4 * dims}")
    found, *sizes = struct.unpack(f">{1 + dims}I", head[: 4 + 4 * dims])
    if found != magic:
        raise MnistFormatError(f"{path}: magic number {found}, expected {magic}")
    return IdxFile(path, sizes[0], tuple(sizes[1:]))


def read_header(path: str, magic: int) -> IdxFile:
    """Checks a local file's magic number, dimensions, and that it holds exactly ``count`` records."""
    dims = 3 if magic == IMAGES_MAGIC else 1
    try:
        with _open(path) as f:
            idx = parse_header(path, f.read(4 + 4 * dims), magic)
            body = _body_length(f)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise MnistFormatError(f"{path}: unreadable ({exc})") from None
    _check_length(idx, body)
    return idx


def _check_length(idx: IdxFile, body: int) -> None:
    expected = idx.count * idx.record_size
    if body != expected:
        raise MnistFormatError(
            f"{idx.path}: {body} bytes of records, expected {expected} "
            f"({idx.count} records of {idx.record_size} bytes); truncated or corrupt"
        )


def check_file(location: Storage, name: str, magic: int) -> IdxFile:
    """Checks one idx file where it lies, fetching only its head when it is remote.

    A remote gzip file's length can only be known by inflating it all; executors check it then.
    """
    if isinstance(location, LocalStorage):
        return read_header(location.uri(name), magic)
    uri = location.uri(name)
    head = location.head(1 << 16, name)
    if name.endswith(".gz"):
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head)
        except zlib.error as exc:
            raise MnistFormatError(f"{uri}: unreadable ({exc})") from None
        return parse_header(uri, head, magic)
    idx = parse_header(uri, head, magic)
    _check_length(idx, location.size(name) - idx.header_size)
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


def check_split(location: Storage, split: str) -> tuple[IdxFile, IdxFile]:
    """The split's checked image and label files; their counts must agree."""
    if split not in SPLITS:
        raise MnistFormatError(f"unknown split {split!r}; MNIST has {', '.join(SPLITS)}")
    images = check_file(location, find(location, SPLITS[split][0]), IMAGES_MAGIC)
    labels = check_file(location, find(location, SPLITS[split][1]), LABELS_MAGIC)
    if images.count != labels.count:
        raise MnistFormatError(
            f"{location.uri()}: {images.count} images but {labels.count} labels in the {split} split"
        )
    return images, labels


def check_label_range(location: Storage, name: str, labels: IdxFile, class_names: list[str]) -> None:
    """Fails, naming the file, when a label has no entry in ``class_names``."""
    data = location.read_bytes(name)
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    values = np.frombuffer(data, dtype=np.uint8, offset=labels.header_size)
    top = int(values.max()) if len(values) else -1
    if top >= len(class_names):
        n_bad = int((values >= len(class_names)).sum())
        raise MnistFormatError(
            f"{labels.path}: {n_bad} labels of {top} or less have no class name "
            f"(class_names has {len(class_names)}: labels 0..{len(class_names) - 1})"
        )


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def load_split(
    spark: SparkSession,
    location: Storage,
    split: str,
    fraction: float = 1.0,
    seed: int = 42,
    class_names: list[str] | None = None,
) -> DataFrame:
    """Image rows for ``split``; ``path`` is ``<images file name>#<index>``."""
    try:
        images, labels = check_split(location, split)
    except StorageError as exc:
        raise MnistFormatError(str(exc)) from None
    n_classes = 256 if class_names is None else len(class_names)
    names = list(class_names) if class_names is not None else [str(i) for i in range(256)]
    if class_names is not None:  # on the driver: labels are one byte a record, small beside the images
        check_label_range(location, find(location, SPLITS[split][1]), labels, class_names)
    parts = max(parallelism(spark), -(-images.count // RECORDS_PER_PARTITION))
    ids = sample(spark.range(0, images.count, numPartitions=parts), fraction, seed, key="id")
    stem = images.path.rsplit("/", 1)[-1]
    reader = location.reader()

    def read(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        local_images = IdxFile(reader.local_copy(images.path), images.count, images.shape)
        local_labels = IdxFile(reader.local_copy(labels.path), labels.count, labels.shape)
        for batch in batches:
            index = batch["id"].to_numpy()
            if len(index) == 0:
                continue
            lo, hi = int(index.min()), int(index.max()) + 1
            pix = read_records(local_images, lo, hi)[index - lo]
            lab = read_records(local_labels, lo, hi)[index - lo]
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
