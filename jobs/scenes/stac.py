"""Scenes from STAC: an Item or an ItemCollection file (``.json``/``.geojson``), read with pystac,
or a STAC API item search (``https://…/search?collections=naip&bbox=…&datetime=…``) run with
pystac-client, as Planetary Computer or Earth Search answer it.

Each item gives one scene: the href of its ``asset`` (``image`` for NAIP on Planetary Computer
and Earth Search; relative hrefs resolve against the item's own location), its id as the scene
id, and its acquisition date (``datetime``, else ``start_datetime``), which the scene's maps,
the change and the run history then carry. Items without that asset are counted as skipped
(``no_asset``); an item id seen again, as ``duplicate``.

A search URL is the API's ``/search`` endpoint with the parameters of a GET search
(``collections``, ``bbox``, ``datetime``, ``ids``, ``intersects``, ``query``, ``filter``,
``sortby``, ``limit`` per page, and ``max_items`` for the whole search); pystac-client follows
the pages. Planetary Computer's assets need a SAS token: a search there signs its items with the
``planetary-computer`` package (``pip install '.[planetary-computer]'``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl, urlparse, urlunparse

from jobs.datasets import DatasetError

SUFFIXES = (".json", ".geojson")
SEARCH_TIMEOUT_S = 60.0  # per request: an API that stops answering is an error, not a hang
SIGNED_HOSTS = ("planetarycomputer.microsoft.com",)  # whose asset hrefs need a token
SEARCH_KEYS = ("collections", "bbox", "datetime", "ids", "intersects", "query", "filter", "sortby", "limit")


def is_stac(spec: str) -> bool:
    return is_search(spec) or spec.lower().endswith(SUFFIXES)


def is_search(spec: str) -> bool:
    """A STAC API item search: an http(s) URL whose path ends in ``/search``."""
    url = urlparse(spec)
    return url.scheme in ("http", "https") and url.path.rstrip("/").endswith("/search")


def items(spec: str, asset: str, skipped: Counter[str] | None = None) -> list[tuple[str, str, str | None]]:
    """``(href, item id, date)`` of every item that ``spec`` (a file or a search) yields with ``asset``."""
    search = is_search(spec)
    found = _search(spec) if search else _read(spec)
    where = "STAC search" if search else "STAC file"
    skipped = Counter() if skipped is None else skipped
    out, seen, names = [], set(), set()
    for item in found:
        names |= set(item.assets)
        if asset not in item.assets:
            skipped["no_asset"] += 1
            continue
        if item.id in seen:
            skipped["duplicate"] += 1
            continue
        seen.add(item.id)
        out.append((item.assets[asset].get_absolute_href() or "", item.id, _date(item)))
    if not found:
        raise DatasetError(f"{where} {_shown(spec)}: no items")
    if not out:
        have = ", ".join(sorted(names)) or "none"
        raise DatasetError(
            f"{where} {_shown(spec)}: no item has an asset {asset!r} (their assets: {have}); give --asset"
        )
    return out


def _read(spec: str) -> list[Any]:
    import pystac

    try:
        with open(spec, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"STAC file {spec}: {getattr(exc, 'strerror', None) or exc}") from None
    kind = doc.get("type") if isinstance(doc, dict) else None
    try:
        if kind == "Feature":
            found = [pystac.Item.from_dict(doc)]
        elif kind == "FeatureCollection":
            found = list(pystac.ItemCollection.from_dict(doc))
        else:
            raise DatasetError(f"STAC file {spec}: not an Item or an ItemCollection (type {kind!r})")
    except (KeyError, ValueError, pystac.STACError) as exc:
        raise DatasetError(f"STAC file {spec}: not valid STAC ({type(exc).__name__}: {exc})") from None
    for item in found:
        if item.get_self_href() is None:
            item.set_self_href(os.path.abspath(spec))  # relative asset hrefs resolve against the file
    return found


def search_parameters(spec: str) -> tuple[str, dict[str, Any]]:
    """The API's root URL and pystac-client's search arguments from a GET search URL."""
    url = urlparse(spec)
    root = urlunparse(url._replace(path=url.path.rstrip("/").removesuffix("/search") or "/", query=""))
    args: dict[str, Any] = {}
    for key, value in parse_qsl(url.query, keep_blank_values=False):
        if key in ("limit", "max_items"):
            try:
                args[key] = int(value)
            except ValueError:
                raise DatasetError(f"STAC search {_shown(spec)}: {key}={value!r} is not a whole number") from None
        elif key in ("collections", "ids", "bbox", "sortby"):
            args[key] = value.split(",")
        elif key in ("intersects", "query", "filter"):
            try:
                args[key] = json.loads(value)
            except ValueError:
                raise DatasetError(f"STAC search {_shown(spec)}: {key} is not JSON") from None
        elif key == "datetime":
            args[key] = value
        else:
            known = ", ".join((*SEARCH_KEYS, "max_items"))
            raise DatasetError(f"STAC search {_shown(spec)}: unknown parameter {key!r} (known: {known})")
    if "bbox" in args:
        try:
            args["bbox"] = [float(v) for v in args["bbox"]]
        except ValueError:
            raise DatasetError(f"STAC search {_shown(spec)}: bbox needs four numbers (west,south,east,north)") from None
    return root, args


def _search(spec: str) -> list[Any]:
    from pystac_client import Client
    from pystac_client.exceptions import APIError
    from requests import RequestException

    root, args = search_parameters(spec)
    modifier = _signer(spec)
    try:
        client = Client.open(root, modifier=modifier, timeout=SEARCH_TIMEOUT_S)
        # GET, as the URL was written; pystac-client follows the "next" links.
        return list(client.search(method="GET", **args).items())
    except (APIError, RequestException, NotImplementedError, ValueError) as exc:
        message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"STAC search {_shown(spec)}: {message}") from None


def _signer(spec: str) -> Any:
    if urlparse(spec).hostname not in SIGNED_HOSTS:
        return None
    try:
        import planetary_computer
    except ImportError:
        raise DatasetError(
            f"STAC search {_shown(spec)}: Planetary Computer's assets need signing: pip install '.[planetary-computer]'"
        ) from None
    return planetary_computer.sign_inplace


def _shown(spec: str) -> str:
    """The URL without its query's secrets (a signed or keyed search URL is never printed)."""
    url = urlparse(spec)
    if not url.query:
        return spec
    safe = [(k, v) for k, v in parse_qsl(url.query) if k in (*SEARCH_KEYS, "max_items")]
    return urlunparse(url._replace(query="&".join(f"{k}={v}" for k, v in safe)))


def _date(item: Any) -> str | None:
    when = item.datetime or item.common_metadata.start_datetime
    return when.date().isoformat() if when else None
