"""Secrets out of everything shown or recorded: SAS signatures, account keys, passwords in URIs.

A user may paste a SAS URL (``https://…/container/path?sv=…&sig=…``) or a connection string
where a URI is expected; logs, summaries, run records and error lines then carry it unless each
of them passes through :func:`redact`. What is kept (the account, the container, the path, the
SAS's expiry) is what a reader needs to tell one location from another.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "REDACTED"
# sig: a SAS signature; AccountKey / SharedAccessSignature: connection strings; user:pass@ in URLs.
_SECRET = re.compile(r"(?i)\b(sig|AccountKey|SharedAccessSignature|SharedAccessKey|client_secret)=([^&;\s\"']+)")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/@\s:]+):([^/@\s]+)@")


def redact(text: str) -> str:
    """``text`` with every secret value replaced by ``REDACTED``."""
    return _USERINFO.sub(rf"\1:{REDACTED}@", _SECRET.sub(rf"\1={REDACTED}", text))


def redact_obj(obj: Any) -> Any:
    """A JSON-like value with :func:`redact` applied to every string in it (keys too)."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact_obj(k): redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj
