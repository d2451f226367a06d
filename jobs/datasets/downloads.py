"""Fetching a published file and checking it against its published checksum, once."""

from __future__ import annotations

import argparse
import shutil
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from jobs.datasets import DatasetError
from jobs.runtime.digests import digest


class ChecksumError(DatasetError):
    """A downloaded file whose checksum is not the published one."""


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


def main(name: str, download: Callable[[str], object], argv: list[str] | None = None) -> int:
    """``python -m jobs.datasets.<name> download DIR``: fetch and verify; 2 with one line on failure."""
    p = argparse.ArgumentParser(description=f"Download and verify {name}")
    p.add_argument("command", choices=("download",))
    p.add_argument("root", help="folder to put the files in")
    args = p.parse_args(argv)
    try:
        got = download(args.root)
    except (DatasetError, OSError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(got) if isinstance(got, list) else got)
    return 0
