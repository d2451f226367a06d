"""Local scratch space for this process: folders removed at exit, and local copies of remote files."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable

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
