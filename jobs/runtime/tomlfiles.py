"""Reading a TOML file that a user named, with one-line errors of the caller's kind."""

from __future__ import annotations

from typing import Any

import tomllib


def read_toml(path: Any, error: type[Exception], what: str, missing: str = "not found") -> dict[str, Any]:
    """``path`` parsed; any reason it cannot be is ``error(f"{what}: …")`` (``missing`` when absent)."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise error(f"{what}: {missing}") from None
    except IsADirectoryError:
        raise error(f"{what} is a folder: name a TOML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{what}: unreadable ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what}: {exc}") from None
