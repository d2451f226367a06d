"""The storage error: one line a user can act on (exit 2)."""

from __future__ import annotations

from jobs.runtime.errors import UserInputError


class StorageError(UserInputError, RuntimeError):
    """A storage location that cannot be used; the message names it (never its secrets)."""


class NotAFileError(OSError):
    """A listed path that is no longer a regular file (a FIFO or a device swapped in after the
    listing): read as one, it could block forever, so it is a reject, not a read."""
