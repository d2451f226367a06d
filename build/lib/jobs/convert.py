"""Data conversions: MNIST idx files to image folders, and image folders up to Blob Storage.

    python -m jobs.convert mnist-to-folders --data DIR --out DIR [--class_names A B …]
    python -m jobs.convert upload SRC_DIR DEST_URI [--workers 16]

``mnist-to-folders`` writes ``<out>/train/<label>/<index>.png`` and ``<out>/test/…`` (the
folder-per-label layout that ``--dataset aerial`` reads), in parallel processes. ``upload``
copies every file under SRC_DIR to DEST_URI (any storage URI, e.g. ``wasbs://…``), as AzCopy
did for the original sample, with parallel uploads. Both show progress on stderr and end by
counting what was written against what was expected; a mismatch is an error (exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from pathlib import Path

from jobs.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from jobs.datasets import mnist
from jobs.storage import LocalStorage, StorageError, open_storage

CHUNK = 2000  # images per worker task


class Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, what: str, total: int) -> None:
        self.what, self.total, self.done, self.shown = what, total, 0, 0.0

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.shown > 0.1 or self.done == self.total:
            self.shown = now
            width = 30
            filled = width * self.done // max(self.total, 1)
            bar = "#" * filled + "." * (width - filled)
            print(f"\r{self.what} [{bar}] {self.done}/{self.total}", end="", file=sys.stderr, flush=True)
            if self.done == self.total:
                print(file=sys.stderr)


class CountMismatchError(RuntimeError):
    """Fewer files arrived than were sent."""


def _write_chunk(
    idx_images: str, idx_labels: str, start: int, stop: int, out: str, split: str, names: list[str]
) -> int:
    images = mnist.read_header(idx_images, mnist.IMAGES_MAGIC)
    labels = mnist.read_header(idx_labels, mnist.LABELS_MAGIC)
    pixels = mnist.read_records(images, start, stop)
    values = mnist.read_records(labels, start, stop)
    for i, (p, v) in enumerate(zip(pixels, values, strict=True)):
        folder = Path(out, split, names[int(v)])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{start + i:05d}.png").write_bytes(mnist.png_bytes(p))
    return stop - start


def mnist_to_folders(data: str, out: str, class_names: list[str] | None, workers: int) -> dict[str, int]:
    """Writes every image of both splits as PNG; returns the count per split."""
    source = LocalStorage(data)
    names = class_names or [str(d) for d in range(10)]
    counts: dict[str, int] = {}
    with ProcessPoolExecutor(workers) as pool:
        for split in ("train", "test"):
            images, labels = mnist.check_split(source, split)
            progress = Progress(f"{split:5}", images.count)
            jobs = [
                pool.submit(_write_chunk, images.path, labels.path, s, min(s + CHUNK, images.count), out, split, names)
                for s in range(0, images.count, CHUNK)
            ]
            for job in as_completed(jobs):
                progress.add(job.result())
            written = len(LocalStorage(out).list_files(split))
            if written != images.count:
                raise CountMismatchError(f"{out}/{split}: {written} files written, expected {images.count}")
            counts[split] = written
    return counts


def upload(src: str, dest: str, workers: int) -> dict[str, int]:
    """Copies every file under ``src`` to ``dest`` in parallel; checks the count at the end.
    What the listing leaves out (hidden names, FIFOs, …: see ``Storage.iter_files``) is counted."""
    source, target = LocalStorage(src), open_storage(dest)
    target.check()
    skipped: Counter[str] = Counter()
    files = sorted(source.iter_files(skipped=skipped))
    progress = Progress("upload", len(files))
    with ThreadPoolExecutor(workers) as pool:
        jobs = [pool.submit(target.write_bytes, source.read_bytes(*f.split("/")), *f.split("/")) for f in files]
        for job in as_completed(jobs):
            job.result()
            progress.add(1)
    present = set(target.list_files()) if files else set()
    missing = sorted(set(files) - present)
    if missing:
        raise CountMismatchError(f"{len(missing)} of {len(files)} files missing at {target.uri()} after upload")
    return {
        "files": len(files),
        "bytes": sum(source.size(*f.split("/")) for f in files),
        "skipped_by_reason": dict(sorted(skipped.items())),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("mnist-to-folders")
    m.add_argument("--data", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--class_names", nargs="+")
    m.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    u = sub.add_parser("upload")
    u.add_argument("src")
    u.add_argument("dest")
    u.add_argument("--workers", type=int, default=16)
    args = p.parse_args(argv)
    try:
        if args.command == "mnist-to-folders":
            result = mnist_to_folders(args.data, args.out, args.class_names, args.workers)
        else:
            result = upload(args.src, args.dest, args.workers)
    except (mnist.MnistFormatError, StorageError) as exc:
        print(f"convert: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CountMismatchError as exc:
        print(f"convert: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(result))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
