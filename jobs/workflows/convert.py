"""Data conversions: MNIST idx files to image folders, and image folders up to any storage root."""

from __future__ import annotations

import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from pathlib import Path

from jobs.datasets import mnist
from jobs.runtime.errors import JobFailedError
from jobs.storage import LocalStorage, open_storage

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


class CountMismatchError(JobFailedError):
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
