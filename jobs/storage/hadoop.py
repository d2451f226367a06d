"""A storage root at any URI Spark's Hadoop FileSystem opens (hdfs://, s3a://, gs://, …)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from jobs.storage.base import HIDDEN, Reader, SparkTables, StorageError
from jobs.storage.fsspec_files import FsspecReader
from jobs.storage.jvm_files import fs_and_path
from jobs.storage.models import ModelCommit


class HadoopStorage(SparkTables):
    """Any URI Spark's Hadoop FileSystem opens (hdfs://, s3a://, gs://, …), passed as is.

    Small files go through the JVM from the driver, and tile sets are read by Spark's binaryFile
    source. Where Python on the executors must read files itself (scene windows, idx files),
    it goes through fsspec (:class:`jobs.storage.fsspec_files.FsspecReader`).
    """

    def __init__(self, root: str, spark: SparkSession) -> None:
        self.spark = spark
        fs, path = fs_and_path(spark, root.rstrip("/"))
        # Qualified once (file:///x -> file:/x), so URIs built here match those Spark lists.
        self.root = fs.makeQualified(path).toString().rstrip("/")

    def uri(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _fs(self, *parts: str) -> tuple[Any, Any]:
        return fs_and_path(self.spark, self.uri(*parts))

    def exists(self, *parts: str) -> bool:
        fs, path = self._fs(*parts)
        return bool(fs.exists(path))

    def is_file(self, *parts: str) -> bool:
        fs, path = self._fs(*parts)
        return bool(fs.isFile(path))

    def read_bytes(self, *parts: str) -> bytes:
        from jobs.storage.jvm_files import read_bytes

        if not self.exists(*parts):
            raise StorageError(f"not found: {self.uri(*parts)}")
        return read_bytes(self.spark, self.uri(*parts))

    def write_bytes(self, data: bytes, *parts: str) -> str:
        from jobs.storage.jvm_files import write_bytes

        write_bytes(self.spark, self.uri(*parts), data)
        return self.uri(*parts)

    def head(self, n: int, *parts: str) -> bytes:
        fs, path = self._fs(*parts)
        stream = fs.open(path)
        try:  # read on the JVM side: py4j hands Java a copy of a Python buffer, never fills it
            io = self.spark.sparkContext._jvm.org.apache.commons.io  # type: ignore[union-attr]
            return bytes(io.IOUtils.toByteArray(io.input.BoundedInputStream(stream, n)))
        finally:
            stream.close()

    def size(self, *parts: str) -> int:
        fs, path = self._fs(*parts)
        return int(fs.getFileStatus(path).getLen())

    def create_exclusive(self, data: bytes, *parts: str) -> bool:
        fs, path = self._fs(*parts)
        try:
            stream = fs.create(path, False)  # overwrite=False: fails if the file exists
        except Exception:
            return False
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()
        return True

    def delete(self, *parts: str) -> None:
        fs, path = self._fs(*parts)
        fs.delete(path, False)

    def append_line(self, line: str, *parts: str) -> None:
        # Hadoop object stores have no atomic append: read, add, rewrite (one writer at a time).
        old = self.read_bytes(*parts).decode() if self.exists(*parts) else ""
        self.write_bytes((old + line.rstrip("\n") + "\n").encode(), *parts)

    def iter_files(self, *parts: str, skipped: Counter[str] | None = None) -> Iterator[str]:
        fs, path = self._fs(*parts)
        if not fs.exists(path):
            raise StorageError(f"folder not found: {self.uri(*parts)}")
        files = fs.listFiles(path, True)
        base = fs.makeQualified(path).toString().rstrip("/") + "/"
        while files.hasNext():
            name = files.next().getPath().toString()[len(base) :]
            if not any(p.startswith(HIDDEN) for p in name.split("/")):
                yield name
            elif skipped is not None:
                skipped["hidden"] += 1

    def list_folders(self, *parts: str) -> list[str]:
        fs, path = self._fs(*parts)
        if not fs.exists(path):
            return []
        names = [st.getPath().getName() for st in fs.listStatus(path) if st.isDirectory()]
        return sorted(n for n in names if not n.startswith(HIDDEN))

    def credential(self) -> str:
        return "Hadoop configuration"

    def reader(self) -> Reader:

        return FsspecReader.for_uri(self.root)

    def read_table(self, spark: SparkSession, *parts: str) -> DataFrame:
        return spark.read.parquet(self.uri(*parts))

    def read_frame(self, *parts: str) -> pd.DataFrame:
        return self.read_table(self.spark, *parts).toPandas()

    def model_commit(self, *parts: str) -> ModelCommit:
        return _HadoopCommit(self, parts)


class _HadoopCommit(ModelCommit):
    """As the local one: staged under a fresh hidden name, then renamed (one rename on HDFS and
    on ADLS Gen2 with a hierarchical namespace)."""

    def __init__(self, storage: HadoopStorage, parts: tuple[str, ...]) -> None:
        *parent, name = parts
        tag = uuid.uuid4().hex[:8]
        self.storage, self.parts = storage, parts
        self.staged, self.old = (*parent, f".{name}.staging-{tag}"), (*parent, f".{name}.old-{tag}")
        self.staging = storage.uri(*self.staged)
        self.had_old = False

    def put(self, name: str, data: bytes) -> None:
        self.storage.write_bytes(data, *self.staged, name)

    def publish(self) -> None:
        fs, target = self.storage._fs(*self.parts)
        self.had_old = bool(fs.exists(target))
        if self.had_old:
            fs.rename(target, self.storage._fs(*self.old)[1])
        fs.rename(self.storage._fs(*self.staged)[1], target)

    def rollback(self) -> None:
        fs, target = self.storage._fs(*self.parts)
        fs.delete(target, True)
        if self.had_old:
            fs.rename(self.storage._fs(*self.old)[1], target)
            self.had_old = False

    def finish(self) -> None:
        if self.had_old:
            fs, old = self.storage._fs(*self.old)
            fs.delete(old, True)
