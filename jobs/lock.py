"""A run lock in storage, so that two scheduled scoring runs never write the same output.

The lock is a small JSON file (run id, host, pid, start time) created only if absent. A lock
older than its timeout is taken to be left by a run that died, and is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from jobs.storage import Storage


class LockedError(RuntimeError):
    """Another run holds the lock; the message says which and since when."""


@contextmanager
def held(storage: Storage, parts: tuple[str, ...], run_id: str, timeout_s: float) -> Iterator[None]:
    body = json.dumps({"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})
    if not storage.create_exclusive(body.encode(), *parts):
        try:
            holder = json.loads(storage.read_bytes(*parts))
        except Exception:  # vanished or unreadable between the two calls: treat as held
            holder = {"run_id": "?", "since": time.time()}
        age = time.time() - float(holder.get("since", 0))
        if age < timeout_s:
            raise LockedError(
                f"{storage.uri(*parts)} is held by run {holder.get('run_id')} for {age:.0f} s "
                f"(taken over after {timeout_s:.0f} s)"
            )
        storage.delete(*parts)
        if not storage.create_exclusive(body.encode(), *parts):
            raise LockedError(f"{storage.uri(*parts)} was taken by another run")
    try:
        yield
    finally:
        storage.delete(*parts)
