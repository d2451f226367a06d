"""The storage root, laid out like the original sample's storage account.

``<root>/pretrainedmodels/``  exported ONNX networks and their model cards
``<root>/trainedmodels/<name>/``  saved PipelineModels (featurizer + classifier + labels)
``<root>/predictions/<name>/<run_id>/``  scored tile sets (Parquet, ``_SUCCESS`` written last)
``<root>/runs/<run_id>/``  one run's ``metrics.json`` and its test-set predictions

The root is a local folder by default (``./data``). Small files (metrics, cards) are written
whole and atomically (temp file, then rename) so a reader never sees half a file; Spark writes
the large outputs itself through its Hadoop FileSystem.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

PRETRAINED = "pretrainedmodels"
TRAINED = "trainedmodels"
PREDICTIONS = "predictions"
RUNS = "runs"


class StorageError(RuntimeError):
    """A storage location that cannot be used; the message names it."""


class LocalStorage:
    """A storage root on the local file system (or any mount the executors share)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        text = str(root)
        if text.startswith("file://"):
            text = urlparse(text).path
        self.root = Path(text).resolve()

    def uri(self, *parts: str) -> str:
        """An absolute path that Spark and this process both open."""
        return str(self.root.joinpath(*parts))

    def exists(self, *parts: str) -> bool:
        return self.root.joinpath(*parts).exists()

    def read_bytes(self, *parts: str) -> bytes:
        path = self.root.joinpath(*parts)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise StorageError(f"not found: {path}") from None

    def write_bytes(self, data: bytes, *parts: str) -> str:
        path = self.root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(path)

    def read_json(self, *parts: str) -> Any:
        return json.loads(self.read_bytes(*parts))

    def write_json(self, obj: Any, *parts: str) -> str:
        return self.write_bytes(json.dumps(obj, indent=2, sort_keys=True).encode(), *parts)


def open_storage(root: str) -> LocalStorage:
    """The storage at ``root``: a local path or ``file://`` URI."""
    scheme = urlparse(root).scheme
    if scheme in ("", "file"):
        return LocalStorage(root)
    raise StorageError(f"storage root {root!r}: only local folders are supported as a storage root")
