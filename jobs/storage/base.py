"""The storage interface: where inputs are read and models, predictions, metrics and the run
index are written.

The storage root is laid out like the original sample's storage account:

``<root>/pretrainedmodels/``  exported ONNX networks and their model cards
``<root>/trainedmodels/<name>/``  saved PipelineModels (featurizer + classifier + labels) with ``card.json``
``<root>/predictions/<name>/<run_id>/``  scored tile sets (Parquet parts, then ``_SUCCESS``)
``<root>/maps/<name>/<run_id>/``  land-use maps of scored scenes (jobs/maps/writer.py)
``<root>/assessments/<name>/<run_id>/<reference>/``  a map's accuracy and area estimates (jobs/assess.py)
``<root>/changes/<name>/<run_a>__<run_b>/``  change between two scene runs (jobs/change.py)
``<root>/runs/<run_id>/``  one run's ``metrics.json`` and its test-set predictions
``<root>/runs/index.jsonl``  the run history, one record per run (jobs/records/history.py)
``<root>/features/<key>/<split>/``  featurized splits kept by ``--cache_features``

Three kinds of location share this interface: a local folder (:mod:`jobs.storage.local`),
Azure Blob Storage and ADLS Gen2 (:mod:`jobs.storage.blob`), and any other Hadoop URI
(:mod:`jobs.storage.hadoop`); :func:`jobs.storage.factory.open_storage` picks one.

Visibility: small files are written whole (a reader never sees half of one); a table becomes
visible when its ``_SUCCESS`` is written, after every part; a saved model when it is complete.
"""

from __future__ import annotations

import json
import os
import stat
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession

from jobs.runtime.redact import redact_obj
from jobs.storage.errors import NotAFileError, StorageError
from jobs.storage.models import CARD, ModelCommit, check_stage_classes

__all__ = ["Reader", "SparkTables", "Storage", "StorageError"]

PRETRAINED = "pretrainedmodels"
TRAINED = "trainedmodels"
PREDICTIONS = "predictions"
RUNS = "runs"
FEATURES = "features"
MAPS = "maps"
CHANGES = "changes"
ASSESSMENTS = "assessments"
HIDDEN = (".", "_")  # names that are not data (_SUCCESS, .DS_Store), as Hadoop tools treat them
SUCCESS = "_SUCCESS"


class Reader:
    """Reads whole files by the URI a listing gave; picklable, so executors carry it."""

    def read(self, uri: str) -> bytes:
        # Non-blocking open and the kind checked on the opened descriptor: a FIFO swapped in
        # after the listing would otherwise block this task forever.
        fd = os.open(uri, os.O_RDONLY | os.O_NONBLOCK)
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise NotAFileError(f"not a regular file: {uri}")
            return f.read()

    def local_copy(self, uri: str) -> str:
        """A local path holding the file (itself, for local files)."""
        return uri

    def opener(self) -> Any:
        """What ``rasterio.open(uri, opener=…)`` reads through; None: GDAL opens ``uri`` itself."""
        return None


class Storage(ABC):
    """A root folder somewhere; ``parts`` name paths below it."""

    @abstractmethod
    def uri(self, *parts: str) -> str:
        """A URI naming ``parts``, for people and records."""

    @abstractmethod
    def exists(self, *parts: str) -> bool: ...

    def is_file(self, *parts: str) -> bool:
        """A file (for blobs: a blob, never a name prefix)."""
        return self.exists(*parts)

    @abstractmethod
    def read_bytes(self, *parts: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, data: bytes, *parts: str) -> str:
        """Writes a whole file so that readers see all of it or none of it; returns its URI."""

    @abstractmethod
    def head(self, n: int, *parts: str) -> bytes:
        """The first ``n`` bytes of a file (headers are checked without fetching the file)."""

    @abstractmethod
    def size(self, *parts: str) -> int: ...

    @abstractmethod
    def append_line(self, line: str, *parts: str) -> None:
        """Appends one line to a file, whole, even when runs append at the same time."""

    @abstractmethod
    def create_exclusive(self, data: bytes, *parts: str) -> bool:
        """Creates a file only if none exists; False if one does (locks)."""

    @abstractmethod
    def delete(self, *parts: str) -> None:
        """Removes one file; no error if it is already gone."""

    @abstractmethod
    def iter_files(self, *parts: str, skipped: Counter[str] | None = None) -> Iterator[str]:
        """Paths (relative to ``parts``, '/'-separated) of every file below, recursively, as listed.

        A generator, so that a listing of millions of tiles never sits in memory whole. What is
        left out is counted by reason in ``skipped``: names starting with ``.`` or ``_``
        (``hidden``: not data, as Hadoop tools treat them); locally also FIFOs, sockets and
        devices (``not_a_file``: reading one would hang), dangling links (``broken_link``) and
        folders reached a second time through a link (``link_loop``). Raises
        :class:`StorageError` (when first advanced) if ``parts`` is not a folder.
        """

    @abstractmethod
    def list_folders(self, *parts: str) -> list[str]:
        """Names of the folders directly below ``parts`` (not data: hidden names left out), sorted;
        empty if ``parts`` is no folder."""

    def list_files(self, *parts: str) -> list[str]:
        """:meth:`iter_files`, sorted, for listings known to be small."""
        return sorted(self.iter_files(*parts))

    @abstractmethod
    def reader(self) -> Reader:
        """What executors use to read the files that :meth:`iter_files` finds."""

    @abstractmethod
    def write_table(
        self, df: DataFrame, *parts: str, fmt: str = "parquet", before_commit: Callable[[], None] | None = None
    ) -> str:
        """Writes ``df`` from the executors as Parquet (or ``fmt="csv"``, with a header), then
        calls ``before_commit`` (a lock's fence: it may raise), then writes ``_SUCCESS``; returns
        the URI. Only Parquet tables are read back by :meth:`read_table`."""

    @abstractmethod
    def read_table(self, spark: SparkSession, *parts: str) -> DataFrame: ...

    @abstractmethod
    def read_frame(self, *parts: str) -> pd.DataFrame:
        """A (small) written table as pandas, for notebooks."""

    def save_model(
        self, model: PipelineModel, *parts: str, card: dict[str, Any], record: Callable[[], None] | None = None
    ) -> str:
        """Saves ``model`` with its ``card`` (``card.json`` inside the model folder) so that both
        become visible at once, replacing any model of that name; then calls ``record`` (e.g.
        the run-index line). If ``record`` fails, the previous model (or none) is put back and
        the error raised: a model is never live without its card and its run record."""
        commit = self.model_commit(*parts)
        model.write().overwrite().save(commit.staging)
        commit.put(CARD, json.dumps(redact_obj(card), indent=2, sort_keys=True).encode())
        commit.publish()
        try:
            if record is not None:
                record()
        except BaseException:
            commit.rollback()
            raise
        finally:
            commit.finish()
        return self.uri(*parts)

    @abstractmethod
    def model_commit(self, *parts: str) -> ModelCommit:
        """How this backend stages a model and makes it visible in one step (see :class:`ModelCommit`)."""

    def model_folder(self, *parts: str) -> tuple[str, ...]:
        """The parts of the folder holding the saved model's files; StorageError if there is none."""
        if not self.is_file(*parts, CARD):
            raise StorageError(f"no saved model at {self.uri(*parts)}")
        return parts

    def loadable(self, *folder: str) -> str:
        """Where ``PipelineModel.load`` reads the model in ``folder`` (a local copy, for Blob)."""
        return self.uri(*folder)

    def load_model(self, *parts: str) -> PipelineModel:
        """The saved model; its stages are checked first (see :func:`check_stage_classes`)."""
        folder = self.model_folder(*parts)
        check_stage_classes(self, *folder)
        try:
            return PipelineModel.load(self.loadable(*folder))
        except Exception as exc:  # a file edited behind its checksum, or cut short: damaged, not a crash
            text = str(exc)
            if "ChecksumException" not in text and "EOFException" not in text:
                raise
            detail = next((ln.strip() for ln in text.splitlines() if "Exception" in ln), text[:200])
            raise StorageError(f"{self.uri(*parts)}: damaged saved model ({detail[:300]})") from None

    def load_card(self, *parts: str) -> dict[str, Any]:
        """The card saved with the model; StorageError if there is no model."""
        return dict(self.read_json(*self.model_folder(*parts), CARD))

    def writer(self) -> Storage | Any:
        """A picklable object whose ``write_bytes(data, *parts)`` executors call to write whole
        files below this root (maps); raises StorageError where Python cannot write."""
        raise StorageError(f"{self.uri()}: executors write maps to a local folder or Azure Blob Storage only")

    def lease(self, *parts: str) -> Any:
        """A lease on a file, where storage has them (Azure Blob: see ``jobs.storage.blob.BlobLease``);
        None elsewhere. Locks use it to know their holder alive (:mod:`jobs.storage.lock`)."""
        return None

    def check(self) -> None:
        """Fails early, with one line, when the location cannot be used (remote kinds check)."""
        return None

    def credential(self) -> str:
        """How this root is reached, for the start line and records (never a secret)."""
        return "local file system"

    def modified(self, *parts: str) -> float | None:
        """When a file was last written (epoch seconds), where this storage tells it cheaply; else None."""
        return None

    def read_json(self, *parts: str) -> Any:
        return json.loads(self.read_bytes(*parts))

    def write_json(self, obj: Any, *parts: str) -> str:
        """Writes ``obj`` as JSON, secrets redacted (records must never hold a SAS signature)."""
        return self.write_bytes(json.dumps(redact_obj(obj), indent=2, sort_keys=True).encode(), *parts)

    def table_complete(self, *parts: str) -> bool:
        return self.exists(*parts, SUCCESS)


class SparkTables(Storage):
    """Tables written by Spark itself, to a path Spark's Hadoop FileSystem opens."""

    def write_table(
        self, df: DataFrame, *parts: str, fmt: str = "parquet", before_commit: Callable[[], None] | None = None
    ) -> str:
        _write_parts(df, self.uri(*parts), fmt)
        if before_commit is not None:
            before_commit()
        self.write_bytes(b"", *parts, SUCCESS)
        return self.uri(*parts)


def _write_parts(df: DataFrame, uri: str, fmt: str) -> None:
    """The table's parts through Spark's committer, without its ``_SUCCESS``: ours comes after
    the caller's fence."""
    writer = df.write.mode("overwrite").format(fmt).option("header", True)
    writer.option("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false").save(uri)
