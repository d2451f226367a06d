"""The one place that picks a storage backend for a root or a reader for a file."""

from __future__ import annotations

from urllib.parse import urlparse

from pyspark.sql import SparkSession

from jobs.runtime.spark import is_connect
from jobs.storage import blob
from jobs.storage.base import Reader, Storage, StorageError
from jobs.storage.fsspec_files import FsspecReader
from jobs.storage.hadoop import HadoopStorage
from jobs.storage.local import LocalStorage


def open_storage(root: str, spark: SparkSession | None = None) -> Storage:
    """The storage at ``root``: local path or ``file://``, an Azure Blob URI, or a Hadoop URI."""
    scheme = urlparse(root).scheme
    if scheme in ("", "file"):
        return LocalStorage(root)
    if blob.is_blob_uri(root):
        return blob.BlobStorage(root)
    if spark is None or is_connect(spark):
        raise StorageError(f"{root}: a Hadoop URI needs a Spark session with a SparkContext (not Spark Connect)")
    return HadoopStorage(root, spark)


def reader_for(uri: str) -> Reader:
    """What Python reads the file at ``uri`` with, on the driver or an executor, with no JVM:
    local paths directly, Azure Blob/ADLS through the Blob API, other schemes (``file:`` too)
    through fsspec."""
    if urlparse(uri).scheme == "":
        return Reader()
    if blob.is_blob_uri(uri):
        return blob.BlobStorage(uri).reader()
    return FsspecReader.for_uri(uri)
