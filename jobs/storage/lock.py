"""A run lock in storage, so that two scheduled scoring runs never write the same output.

The lock is a small JSON file (run id, host, pid, a token, a heartbeat) created only if absent.
Its holder is known alive, and its lock is never taken over, while

* on Azure Blob Storage: the run holds a lease on the lock blob and renews it (Azure's own
  mechanism; a lease lapses :data:`LEASE_S` seconds after its run dies, whatever killed it);
* elsewhere: the holder's process exists, when it runs on this host; or, from another host,
  its heartbeat (rewritten every ``timeout_s / 5``) is younger than ``timeout_s``.

A dead holder's lock is taken over at once. Fencing: a run checks that it still holds its lock
(:meth:`RunLock.check`) before it commits an output (the ``_SUCCESS`` of a table), and stops
with :class:`LockLostError` if another run has taken it. A lock that cannot be released (storage
gone at the end of a run) is left for liveness to clear; the run says so and still succeeds.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jobs.runtime.spark import say
from jobs.storage.base import Storage, StorageError

LEASE_S = 60  # Azure leases last 15..60 s or forever; renewed every LEASE_S / 4


class LockedError(RuntimeError):
    """Another live run holds the lock; the message says which and since when."""


class LockLostError(LockedError):
    """This run's lock was taken over (it was thought dead): it must not commit."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """One run's hold on ``parts`` of ``storage``; see the module doc."""

    def __init__(self, storage: Storage, parts: tuple[str, ...], run_id: str, timeout_s: float) -> None:
        self.storage, self.parts, self.run_id, self.timeout_s = storage, parts, run_id, timeout_s
        self.token = uuid.uuid4().hex
        self.lease = storage.lease(*parts)  # None where storage has no leases
        self.lost = False
        self._since = time.time()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self) -> bytes:
        now = time.time()
        holder = {"run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid(), "token": self.token}
        return json.dumps({**holder, "since": self._since, "heartbeat": now}).encode()

    def _holder(self) -> dict[str, Any] | None:
        try:
            holder = dict(json.loads(self.storage.read_bytes(*self.parts)))
            float(holder.get("heartbeat", holder.get("since", 0)))
            return holder
        except Exception:  # vanished, half-written between two calls, or garbage
            return None

    def _unreadable_holder(self) -> dict[str, Any]:
        """What an unreadable lock (empty: a run killed between create and write; garbage) is
        taken for: a holder whose heartbeat is the file's own age where storage tells it, so that
        it is stale once older than the timeout; a run writing it now gets a second to finish."""
        time.sleep(1.0)
        holder = self._holder()
        if holder is not None:
            return holder
        written = self.storage.modified(*self.parts)
        return {"run_id": "? (unreadable lock)", "since": written or 0.0, "heartbeat": written or 0.0}

    def _alive(self, holder: dict[str, Any]) -> bool:
        """The heartbeat decides (a holder renews it every timeout / 5); on this host a dead pid
        also frees the lock at once. A live pid with an old heartbeat is another process that reused it."""
        fresh = time.time() - float(holder.get("heartbeat", holder.get("since", 0))) < self.timeout_s
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
            return fresh and pid_alive(holder["pid"])
        return fresh

    def acquire(self) -> None:
        self._since = time.time()
        where = self.storage.uri(*self.parts)
        if self.storage.create_exclusive(self._body(), *self.parts):
            if self.lease is not None and not self.lease.acquire(LEASE_S):
                raise LockedError(f"{where} was leased by another run as it was created")
        else:
            holder = self._holder() or self._unreadable_holder()
            if self.lease is not None:
                # A lease we can take is one its holder stopped renewing: the holder is dead.
                if not self.lease.acquire(LEASE_S):
                    raise LockedError(f"{where} is held by run {holder.get('run_id')} (its lease is renewed)")
                self.lease.delete()  # under our lease: no other run can delete or take it meanwhile
            else:
                if self._alive(holder):
                    age = time.time() - float(holder.get("since", time.time()))
                    raise LockedError(
                        f"{where} is held by run {holder.get('run_id')} on {holder.get('host')}, "
                        f"pid {holder.get('pid')}, for {age:.0f} s (alive)"
                    )
                self.storage.delete(*self.parts)
            say("lock", f"took over {where} from run {holder.get('run_id')}, which is no longer alive")
            if not self.storage.create_exclusive(self._body(), *self.parts):
                raise LockedError(f"{where} was taken by another run")
            if self.lease is not None and not self.lease.acquire(LEASE_S):
                raise LockedError(f"{where} was leased by another run as it was created")
        self._renewer = threading.Thread(target=self._renew_loop, name="run-lock", daemon=True)
        self._renewer.start()

    def _renew_once(self) -> None:
        if self.lease is not None:
            self.lost = self.lost or not self.lease.renew()
            return
        holder = self._holder()
        if holder is None or holder.get("token") != self.token:
            self.lost = True
            return
        self.storage.write_bytes(self._body(), *self.parts)

    def _renew_loop(self) -> None:
        every = LEASE_S / 4 if self.lease is not None else max(0.05, self.timeout_s / 5)
        while not self._stop.wait(every) and not self.lost:
            try:
                self._renew_once()
            except Exception as exc:  # storage briefly unreachable: try again next time
                say("lock", f"warning: could not renew {self.storage.uri(*self.parts)}: {type(exc).__name__}")

    def check(self) -> None:
        """Fencing: raises :class:`LockLostError` unless this run still holds its lock."""
        if not self.lost:
            try:
                if self.lease is not None:
                    self.lost = not self.lease.renew()
                else:
                    holder = self._holder()
                    self.lost = holder is None or holder.get("token") != self.token
            except StorageError:
                self.lost = True
        if self.lost:
            raise LockLostError(
                f"{self.storage.uri(*self.parts)}: this run's lock was taken over by another run; "
                "stopped before committing its output"
            )

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        if self.lost:
            return
        try:
            if self.lease is not None:
                self.lease.delete()
            elif (self._holder() or {}).get("token") == self.token:
                self.storage.delete(*self.parts)
        except Exception as exc:
            say(
                "lock",
                f"warning: {self.storage.uri(*self.parts)} not released ({type(exc).__name__}); liveness clears it",
            )


@contextmanager
def held(storage: Storage, parts: tuple[str, ...], run_id: str, timeout_s: float) -> Iterator[RunLock]:
    lock = RunLock(storage, parts, run_id, timeout_s)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
