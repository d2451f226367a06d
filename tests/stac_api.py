"""A minimal STAC API on 127.0.0.1 for offline tests: a landing page that conforms to core and
item-search, and ``GET /search`` that pages its items two at a time (``next`` links), recording
each query it was asked. Bounded: it serves until the ``with`` block ends."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

CONFORMS = ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"]
PAGE = 2


@contextmanager
def serving(items: list[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    """``(root URL, queries seen)`` while a STAC API serves ``items`` (dicts, as pystac writes them)."""
    queries: list[dict[str, list[str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet test output
            pass

        def _send(self, doc: dict[str, Any], kind: str = "application/json") -> None:
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            root = f"http://127.0.0.1:{self.server.server_address[1]}"
            if url.path in ("", "/"):
                links = [{"rel": r, "href": root + "/"} for r in ("self", "root")]
                search = {"rel": "search", "href": root + "/search", "method": "GET", "type": "application/geo+json"}
                links.append(search)
                doc = {"type": "Catalog", "id": "test-api", "stac_version": "1.0.0", "description": "tests"}
                self._send(doc | {"conformsTo": CONFORMS, "links": links})
            elif url.path == "/search":
                query = parse_qs(url.query)
                queries.append(query)
                start = int(query.pop("token", ["0"])[0])
                page = items[start : start + PAGE]
                links = []
                if start + PAGE < len(items):
                    flat = {k: v[0] for k, v in query.items()}
                    links.append({"rel": "next", "href": f"{root}/search?{urlencode(flat | {'token': start + PAGE})}"})
                self._send({"type": "FeatureCollection", "features": page, "links": links}, "application/geo+json")
            else:
                self.send_error(404)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", queries
    finally:
        server.shutdown()
        server.server_close()
