"""Exit codes, and the one base class of every error that is the user's to fix (exit 2)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # anything unexpected: Spark, the JVM, the machine
EXIT_BAD_INPUT = 2  # configuration, data or storage that the user must fix
EXIT_LOCKED = 3  # another run holds the output's lock: try again later


class UserInputError(Exception):
    """Input the user must fix: a flag, a conf file, data, a storage location, a missing extra.

    Every job prints its message as one line and exits 2 (:data:`EXIT_BAD_INPUT`). Each stage
    derives its own errors from it, so that no list of error classes has to be kept by hand."""


class JobFailedError(RuntimeError):
    """A failure that is not the user's input but says in one line what happened (exit 1, no trace)."""
