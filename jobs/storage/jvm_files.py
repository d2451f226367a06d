"""Whole-file reads and writes through Spark's Hadoop FileSystem, from the driver.

Used for model files, so that a path may be anything Spark can open (a local path, ``file://``,
``wasbs://``, ``abfss://``, ``hdfs://``) without this package knowing the scheme.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pyspark.sql import SparkSession


def fs_and_path(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def local_path(uri: str) -> str | None:
    """The file-system path of a local URI (plain path or ``file:``), else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return parsed.path
    return uri if parsed.scheme == "" else None


def version(spark: SparkSession, uri: str) -> tuple[int, int]:
    """``(size, modification time)`` of a file: enough to tell that it was rewritten."""
    local = local_path(uri)
    if local is not None:
        st = Path(local).stat()
        return st.st_size, st.st_mtime_ns
    fs, path = fs_and_path(spark, uri)
    status = fs.getFileStatus(path)
    return int(status.getLen()), int(status.getModificationTime())


def read_bytes(spark: SparkSession, uri: str) -> bytes:
    # py4j moves byte arrays as base64 text: fine for kilobytes, slow for a 230 MB network.
    local = local_path(uri)
    if local is not None:
        return Path(local).read_bytes()
    fs, path = fs_and_path(spark, uri)
    stream = fs.open(path)
    try:
        jvm = spark.sparkContext._jvm
        return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
    finally:
        stream.close()


def write_bytes(spark: SparkSession, uri: str, data: bytes) -> None:
    local = local_path(uri)
    if local is not None:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        Path(local).write_bytes(data)
        return
    fs, path = fs_and_path(spark, uri)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(data))
    finally:
        stream.close()
