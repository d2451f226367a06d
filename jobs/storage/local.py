"""A storage root on the local file system (or a mount every executor shares): the default."""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from jobs.storage.base import HIDDEN, Reader, SparkTables, Storage, StorageError
from jobs.storage.models import ModelCommit

STALE_S = 3600.0  # a hidden staging folder older than this is left by a killed save


class LocalStorage(SparkTables):
    """A folder on the local file system (or a mount every executor shares)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        text = str(root)
        if text.startswith("file:"):
            text = urlparse(text).path
        self.root = Path(text).resolve()
        self._inside: set[Path] = set()  # folders whose real path is known to lie inside the root

    def uri(self, *parts: str) -> str:
        return str(self._path(*parts))

    def _path(self, *parts: str) -> Path:
        """``parts`` below the root; a path that would leave the root is refused, whatever made it."""
        path = self.root.joinpath(*parts)
        bad = any(p in ("", ".", "..") or "\0" in p for part in parts for p in part.split("/"))
        if bad or not path.is_relative_to(self.root):
            raise StorageError(f"{path}: not a path inside the storage root {self.root}")
        if parts and not self._links_inside(path):  # links are followed inside the root only
            raise StorageError(f"{path}: a link leads outside the storage root {self.root}")
        return path

    def _links_inside(self, path: Path) -> bool:
        """Whether ``path`` resolves inside the root; its folder is resolved once, not per file
        (``uri`` runs for every file a listing yields)."""
        if path.parent not in self._inside:
            if not path.parent.resolve().is_relative_to(self.root):
                return False
            if path.parent.is_dir():  # a folder not made yet could still become a link
                self._inside.add(path.parent)
        return not path.is_symlink() or path.resolve().is_relative_to(self.root)

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
                    if entry.is_symlink() and not Path(entry.path).resolve().is_relative_to(self.root):
                        skipped["link_outside"] += 1  # followed inside the root only
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

    def modified(self, *parts: str) -> float | None:
        try:
            return self._path(*parts).stat().st_mtime
        except OSError:
            return None

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

    def model_commit(self, *parts: str) -> ModelCommit:
        return _LocalCommit(self._path(*parts))


class _LocalCommit(ModelCommit):
    """Saved beside under a fresh hidden name, then renamed into place: a reader never loads half
    a model, and what a killed save leaves (hidden, unique names) never blocks the next one."""

    def __init__(self, target: Path) -> None:
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(target.parent, f".{target.name}.")
        self.work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        self.staging = str(self.work / "model")
        self.old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        self.had_old = False

    def put(self, name: str, data: bytes) -> None:
        (Path(self.staging) / name).write_bytes(data)

    def publish(self) -> None:
        self.had_old = self.target.exists()
        if self.had_old:
            os.replace(self.target, self.old)
        os.replace(self.staging, self.target)

    def rollback(self) -> None:
        os.replace(self.target, self.work / "failed")
        if self.had_old:
            os.replace(self.old, self.target)

    def finish(self) -> None:
        shutil.rmtree(self.old, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)


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
