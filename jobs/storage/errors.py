"""The storage error: one line a user can act on (exit 2)."""

from __future__ import annotations

from jobs.runtime.errors import UserInputError


class StorageError(UserInputError, RuntimeError):
    """A storage location that cannot be used; the message names it (never its secrets)."""
