"""Fetching a published file and checking it against its published checksum, once."""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from pathlib import Path

from jobs.datasets import DatasetError


class ChecksumError(DatasetError):
    """A downloaded file whose checksum is not the published one."""


def digest(path: str | Path, algorithm: str) -> str:
    h = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(url: str, dest: Path, algorithm: str, expected: str) -> Path:
    """``dest``, downloaded from ``url`` unless a file with the expected checksum is already there.

    A partial or corrupt download never takes ``dest``'s name.
    """
    if dest.exists() and digest(dest, algorithm) == expected:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)
    got = digest(partial, algorithm)
    if got != expected:
        partial.unlink()
        raise ChecksumError(
            f"{url}: {algorithm} {got}, expected {expected}; the download is corrupt or the file changed"
        )
    partial.replace(dest)
    return dest
