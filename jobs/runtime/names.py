"""Names that become parts of storage paths (models, runs): checked as names, never used as paths.

A name is 1-128 characters of letters, digits, ``.``, ``_`` and ``-``, starting with a letter
or digit: no ``/`` or ``\\``, no ``..``, nothing empty, hidden or absolute. Anything else is a
one-line error (exit 2) before any file is touched.
"""

from __future__ import annotations

import re

from jobs.runtime.errors import UserInputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class NameError_(UserInputError, ValueError):
    """A model or run name that is not a plain name."""


def check_name(kind: str, value: object) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        rule = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        raise NameError_(f"{kind} {value!r} is not a name: use {rule}")
    return value
