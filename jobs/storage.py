"""Storage: where inputs are read and models, predictions, metrics and the run index are written.

The storage root is laid out like the original sample's storage account:

``<root>/pretrainedmodels/``  exported ONNX networks and their model cards
``<root>/trainedmodels/<name>/``  saved PipelineModels (featurizer + classifier + labels) with ``card.json``
``<root>/predictions/<name>/<run_id>/``  scored tile sets (Parquet parts, then ``_SUCCESS``)
``<root>/maps/<name>/<run_id>/``  land-use maps of scored scenes (jobs/maps/writer.py)
``<root>/assessments/<name>/<run_id>/<reference>/``  a map's accuracy and area estimates (jobs/assess.py)
``<root>/changes/<name>/<run_a>__<run_b>/``  change between two scene runs (jobs/change.py)
``<root>/runs/<run_id>/``  one run's ``metrics.json`` and its test-set predictions
``<root>/runs/index.jsonl``  the run history, one record per training run (jobs/runs.py)
``<root>/features/<key>/<split>/``  featurized splits kept by ``--cache_features``

Three kinds of location share one interface (:class:`Storage`):

* a local folder or ``file://`` URI (the default, ``./data``): :class:`LocalStorage`;
* Azure Blob Storage and ADLS Gen2 (``wasbs://``, ``abfss://``, ``https://<account>.blob|dfs.core.windows.net/``,
  ``az://``): :class:`jobs.blob.BlobStorage`, through azure-storage-blob;
* any other Hadoop URI (``hdfs://``, ``s3a://``, ``gs://``): :class:`HadoopStorage`, handed
  to Spark as is; executors read its files from Python through fsspec (:mod:`jobs.fsspec_reader`).

Visibility: small files are written whole (a reader never sees half of one); a table becomes
visible when its ``_SUCCESS`` is written, after every part; a saved model when it is complete.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import shutil
import stat
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession

from jobs.redact import redact_obj

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


class StorageError(RuntimeError):
    """A storage location that cannot be used; the message names it (never its secrets)."""


class Reader:
    """Reads whole files by the URI a listing gave; picklable, so executors carry it."""

    def read(self, uri: str) -> bytes:
        with open(uri, "rb") as f:
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

    @abstractmethod
    def save_model(
        self, model: PipelineModel, *parts: str, card: dict[str, Any], record: Callable[[], None] | None = None
    ) -> str:
        """Saves ``model`` with its ``card`` (``card.json`` inside the model folder) so that both
        become visible at once, replacing any model of that name; then calls ``record`` (e.g.
        the run-index line). If ``record`` fails, the previous model (or none) is put back and
        the error raised: a model is never live without its card and its run record."""

    @abstractmethod
    def load_model(self, *parts: str) -> PipelineModel:
        """The saved model; its stages are checked first (see :func:`check_stage_classes`)."""

    @abstractmethod
    def load_card(self, *parts: str) -> dict[str, Any]:
        """The card saved with the model; StorageError if there is no model."""

    def writer(self) -> Storage | Any:
        """A picklable object whose ``write_bytes(data, *parts)`` executors call to write whole
        files below this root (maps); raises StorageError where Python cannot write."""
        raise StorageError(f"{self.uri()}: executors write maps to a local folder or Azure Blob Storage only")

    def lease(self, *parts: str) -> Any:
        """A lease on a file, where storage has them (Azure Blob: see ``jobs.blob.BlobLease``);
        None elsewhere. Locks use it to know their holder alive (:mod:`jobs.lock`)."""
        return None

    def check(self) -> None:
        """Fails early, with one line, when the location cannot be used (remote kinds check)."""
        return None

    def credential(self) -> str:
        """How this root is reached, for the start line and records (never a secret)."""
        return "local file system"

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


class LocalStorage(SparkTables):
    """A folder on the local file system (or a mount every executor shares)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        text = str(root)
        if text.startswith("file:"):
            text = urlparse(text).path
        self.root = Path(text).resolve()

    def uri(self, *parts: str) -> str:
        return str(self._path(*parts))

    def _path(self, *parts: str) -> Path:
        """``parts`` below the root; a path that would leave the root is refused, whatever made it."""
        path = self.root.joinpath(*parts)
        if any(p in ("", ".", "..") for part in parts for p in part.split("/")) or not path.is_relative_to(self.root):
            raise StorageError(f"{path}: not a path inside the storage root {self.root}")
        return path

    def exists(self, *parts: str) -> bool:
        return self._path(*parts).exists()

    def is_file(self, *parts: str) -> bool:
        return self._path(*parts).is_file()

    def read_bytes(self, *parts: str) -> bytes:
        path = self._path(*parts)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise StorageError(f"not found: {path}") from None

    def write_bytes(self, data: bytes, *parts: str) -> str:
        path = self._path(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            os.fchmod(fd, FILE_MODE)  # mkstemp's 0600 would hide records and models from other users
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(path)

    def head(self, n: int, *parts: str) -> bytes:
        try:
            with open(self._path(*parts), "rb") as f:
                return f.read(n)
        except FileNotFoundError:
            raise StorageError(f"not found: {self.uri(*parts)}") from None

    def size(self, *parts: str) -> int:
        return self._path(*parts).stat().st_size

    def create_exclusive(self, data: bytes, *parts: str) -> bool:
        path = self._path(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True

    def delete(self, *parts: str) -> None:
        self._path(*parts).unlink(missing_ok=True)

    def append_line(self, line: str, *parts: str) -> None:
        path = self._path(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.write(line.rstrip("\n") + "\n")
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def iter_files(self, *parts: str, skipped: Counter[str] | None = None) -> Iterator[str]:
        top = self._path(*parts)
        if not top.is_dir():
            raise StorageError(f"folder not found: {top}")
        skipped = Counter() if skipped is None else skipped
        seen = {_identity(top)}  # folders listed, by device and inode: links may loop
        folders = [""]  # scandir, not os.walk: walk holds a whole folder's names in a list
        while folders:
            rel = folders.pop()
            with os.scandir(top / rel if rel else top) as entries:
                for entry in entries:
                    if entry.name.startswith(HIDDEN):
                        skipped["hidden"] += 1
                        continue
                    name = f"{rel}/{entry.name}" if rel else entry.name
                    try:
                        st = entry.stat()  # follows links
                    except OSError:
                        skipped["broken_link"] += 1
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        if (st.st_dev, st.st_ino) in seen:
                            skipped["link_loop"] += 1
                            continue
                        seen.add((st.st_dev, st.st_ino))
                        folders.append(name)
                    elif stat.S_ISREG(st.st_mode):
                        yield name
                    else:
                        skipped["not_a_file"] += 1

    def list_folders(self, *parts: str) -> list[str]:
        top = self._path(*parts)
        if not top.is_dir():
            return []
        with os.scandir(top) as entries:
            return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith(HIDDEN))

    def reader(self) -> Reader:
        return Reader()

    def writer(self) -> Storage:
        return self  # only a path: pickles as is

    def read_table(self, spark: SparkSession, *parts: str) -> DataFrame:
        if not self.table_complete(*parts):
            raise StorageError(f"no complete table at {self.uri(*parts)}")
        return spark.read.parquet(self.uri(*parts))

    def read_frame(self, *parts: str) -> pd.DataFrame:
        return pd.read_parquet(self.uri(*parts))

    def save_model(
        self, model: PipelineModel, *parts: str, card: dict[str, Any], record: Callable[[], None] | None = None
    ) -> str:
        # Saved beside under a fresh name, then renamed into place: a reader never loads half a
        # model, and what a killed save leaves (hidden, unique names) never blocks the next one.
        target = self._path(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(target.parent, f".{target.name}.")
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        model.write().overwrite().save(str(staging / "model"))
        (staging / "model" / CARD).write_text(json.dumps(redact_obj(card), indent=2, sort_keys=True))
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        had_old = target.exists()
        if had_old:
            os.replace(target, old)
        os.replace(staging / "model", target)
        try:
            if record is not None:
                record()
        except BaseException:
            os.replace(target, staging / "failed")  # put the previous model back
            if had_old:
                os.replace(old, target)
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        return str(target)

    def load_model(self, *parts: str) -> PipelineModel:
        if not self.is_file(*parts, CARD):
            raise StorageError(f"no saved model at {self.uri(*parts)}")
        check_stage_classes(self, *parts)
        return PipelineModel.load(self.uri(*parts))

    def load_card(self, *parts: str) -> dict[str, Any]:
        if not self.is_file(*parts, CARD):
            raise StorageError(f"no saved model at {self.uri(*parts)}")
        return dict(self.read_json(*parts, CARD))


class HadoopStorage(SparkTables):
    """Any URI Spark's Hadoop FileSystem opens (hdfs://, s3a://, gs://, …), passed as is.

    Small files go through the JVM from the driver, and tile sets are read by Spark's binaryFile
    source. Where Python on the executors must read files itself (scene windows, idx files),
    it goes through fsspec (:class:`jobs.fsspec_reader.FsspecReader`).
    """

    def __init__(self, root: str, spark: SparkSession) -> None:
        from featurizers.hadoop_io import _fs_and_path

        self.spark = spark
        fs, path = _fs_and_path(spark, root.rstrip("/"))
        # Qualified once (file:///x -> file:/x), so URIs built here match those Spark lists.
        self.root = fs.makeQualified(path).toString().rstrip("/")

    def uri(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _fs(self, *parts: str) -> tuple[Any, Any]:
        from featurizers.hadoop_io import _fs_and_path

        return _fs_and_path(self.spark, self.uri(*parts))

    def exists(self, *parts: str) -> bool:
        fs, path = self._fs(*parts)
        return bool(fs.exists(path))

    def is_file(self, *parts: str) -> bool:
        fs, path = self._fs(*parts)
        return bool(fs.isFile(path))

    def read_bytes(self, *parts: str) -> bytes:
        from featurizers.hadoop_io import read_bytes

        if not self.exists(*parts):
            raise StorageError(f"not found: {self.uri(*parts)}")
        return read_bytes(self.spark, self.uri(*parts))

    def write_bytes(self, data: bytes, *parts: str) -> str:
        from featurizers.hadoop_io import write_bytes

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
        from jobs.fsspec_reader import FsspecReader

        return FsspecReader.for_uri(self.root)

    def read_table(self, spark: SparkSession, *parts: str) -> DataFrame:
        return spark.read.parquet(self.uri(*parts))

    def read_frame(self, *parts: str) -> pd.DataFrame:
        return self.read_table(self.spark, *parts).toPandas()

    def save_model(
        self, model: PipelineModel, *parts: str, card: dict[str, Any], record: Callable[[], None] | None = None
    ) -> str:
        # As LocalStorage: staged under a fresh hidden name, then renamed (one rename on HDFS
        # and ADLS Gen2 with a hierarchical namespace).
        *parent, name = parts
        tag = uuid.uuid4().hex[:8]
        staging, old = (*parent, f".{name}.staging-{tag}"), (*parent, f".{name}.old-{tag}")
        model.write().overwrite().save(self.uri(*staging))
        self.write_bytes(json.dumps(redact_obj(card), indent=2, sort_keys=True).encode(), *staging, CARD)
        fs, target = self._fs(*parts)
        had_old = bool(fs.exists(target))
        if had_old:
            fs.rename(target, self._fs(*old)[1])
        fs.rename(self._fs(*staging)[1], target)
        try:
            if record is not None:
                record()
        except BaseException:
            fs.delete(target, True)
            if had_old:
                fs.rename(self._fs(*old)[1], target)
            raise
        if had_old:
            fs.delete(self._fs(*old)[1], True)
        return self.uri(*parts)

    def load_model(self, *parts: str) -> PipelineModel:
        if not self.exists(*parts, CARD):
            raise StorageError(f"no saved model at {self.uri(*parts)}")
        check_stage_classes(self, *parts)
        return PipelineModel.load(self.uri(*parts))

    def load_card(self, *parts: str) -> dict[str, Any]:
        if not self.exists(*parts, CARD):
            raise StorageError(f"no saved model at {self.uri(*parts)}")
        return dict(self.read_json(*parts, CARD))


# Files and folders as the process's umask makes them (Spark's own are made so), not mkstemp's
# 0600: run records, model cards and exported networks are read by other users of a shared root.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def _write_parts(df: DataFrame, uri: str, fmt: str) -> None:
    """The table's parts through Spark's committer, without its ``_SUCCESS``: ours comes after
    the caller's fence."""
    writer = df.write.mode("overwrite").format(fmt).option("header", True)
    writer.option("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false").save(uri)


CARD = "card.json"  # a saved model's card, inside its folder: saved and replaced with it
# Stage classes a saved model may name. Loading a PipelineModel imports the module its metadata
# names, so a model folder is trusted like code; anything else is refused before loading.
TRUSTED_STAGES = ("org.apache.spark.ml.", "pyspark.ml.", "featurizers.", "jobs.")
STALE_S = 3600.0  # a hidden staging folder older than this is left by a killed save


def stage_metadata(storage: Storage, *parts: str) -> dict[str, Any]:
    """The metadata line Spark ML (and pyspark's DefaultParamsWriter) saves for a model or stage."""
    text = storage.read_bytes(*parts, "metadata", "part-00000").decode()
    return dict(json.loads(text.splitlines()[0]))


def check_stage_classes(storage: Storage, *parts: str) -> None:
    """Refuses a saved model that lists a stage it does not hold, or names a stage class outside
    this project and Spark ML (one line, before any module it names is imported)."""
    where = storage.uri(*parts)

    def metadata(*folder: str) -> dict[str, Any]:
        return stage_metadata(storage, *parts, *folder)

    try:
        uids = list(metadata()["paramMap"]["stageUids"])
        stages = storage.list_folders(*parts, "stages")
    except (StorageError, ValueError, KeyError, IndexError, TypeError):
        raise StorageError(f"{where}: not a saved model (its metadata is missing or unreadable)") from None
    for i, uid in enumerate(uids):
        folder = f"{i}_{uid}"
        if folder not in stages:
            raise StorageError(f"{where}: incomplete saved model, stage {folder} is missing")
        try:
            cls = str(metadata("stages", folder)["class"])
        except (StorageError, ValueError, KeyError, IndexError, TypeError):
            raise StorageError(f"{where}: stage {folder} has no readable metadata") from None
        if not cls.startswith(TRUSTED_STAGES):
            raise StorageError(
                f"{where}: stage {folder} is of class {cls}, outside this project and Spark ML: refused "
                "(a model folder is trusted like code)"
            )


def _remove_stale(folder: Path, prefix: str) -> None:
    """Removes hidden leftovers of killed saves (``prefix``…) older than :data:`STALE_S`."""
    now = time.time()
    for entry in folder.iterdir():
        if entry.name.startswith(prefix):
            try:
                if now - entry.lstat().st_mtime > STALE_S:
                    shutil.rmtree(entry, ignore_errors=True)
            except OSError:
                pass


def open_storage(root: str, spark: SparkSession | None = None) -> Storage:
    """The storage at ``root``: local path or ``file://``, an Azure Blob URI, or a Hadoop URI."""
    from jobs import blob

    scheme = urlparse(root).scheme
    if scheme in ("", "file"):
        return LocalStorage(root)
    if blob.is_blob_uri(root):
        return blob.BlobStorage(root)
    from jobs.spark import is_connect

    if spark is None or is_connect(spark):
        raise StorageError(f"{root}: a Hadoop URI needs a Spark session with a SparkContext (not Spark Connect)")
    return HadoopStorage(root, spark)


def reader_for(uri: str) -> Reader:
    """What Python reads the file at ``uri`` with, on the driver or an executor, with no JVM:
    local paths directly, Azure Blob/ADLS through the Blob API, other schemes (``file:`` too)
    through fsspec."""
    from jobs import blob
    from jobs.fsspec_reader import FsspecReader

    if urlparse(uri).scheme == "":
        return Reader()
    if blob.is_blob_uri(uri):
        return blob.BlobStorage(uri).reader()
    return FsspecReader.for_uri(uri)


_TEMP_DIRS: list[str] = []
_LOCAL_COPIES: dict[str, str] = {}


def cached_copy(uri: str, name: str, download: Callable[[str], None]) -> str:
    """A local copy of ``uri`` (file ``name`` in a temp folder), made once per process by
    ``download(path)``: what remote readers give for files read by range (idx files)."""
    path = _LOCAL_COPIES.get(uri)
    if path is None:
        path = os.path.join(temp_dir("copy-"), name)
        download(path)
        _LOCAL_COPIES[uri] = path
    return path


def temp_dir(prefix: str) -> str:
    """A local folder that lives as long as this process (models loaded from remote storage)."""
    path = tempfile.mkdtemp(prefix=prefix)
    if not _TEMP_DIRS:
        atexit.register(lambda: [shutil.rmtree(p, ignore_errors=True) for p in _TEMP_DIRS])
    _TEMP_DIRS.append(path)
    return path
