"""Scenes from STAC: an Item or an ItemCollection (``.json``/``.geojson``), as Planetary Computer
or Earth Search return them for a search, read with pystac.

Each item gives one scene: the href of its ``asset`` (``image`` for NAIP on Planetary Computer
and Earth Search; relative hrefs resolve against the item's own location), its id as the scene
id, and its acquisition date (``datetime``, else ``start_datetime``), which the scene's maps,
the change and the run history then carry. Items without that asset are counted as skipped
(``no_asset``); an item id seen again, as ``duplicate``. Planetary Computer's assets need a SAS
token: sign the items first (``planetary_computer.sign``, its own package) and save them.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

from jobs.datasets import DatasetError

SUFFIXES = (".json", ".geojson")


def is_stac(spec: str) -> bool:
    return spec.lower().endswith(SUFFIXES)


def items(spec: str, asset: str, skipped: Counter[str] | None = None) -> list[tuple[str, str, str | None]]:
    """``(href, item id, date)`` of every item in the file ``spec`` that has ``asset``."""
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
    skipped = Counter() if skipped is None else skipped
    out, seen, names = [], set(), set()
    for item in found:
        if item.get_self_href() is None:
            item.set_self_href(os.path.abspath(spec))  # relative asset hrefs resolve against the file
        names |= set(item.assets)
        if asset not in item.assets:
            skipped["no_asset"] += 1
            continue
        if item.id in seen:
            skipped["duplicate"] += 1
            continue
        seen.add(item.id)
        out.append((item.assets[asset].get_absolute_href() or "", item.id, _date(item)))
    if not out:
        have = ", ".join(sorted(names)) or "none"
        raise DatasetError(f"STAC file {spec}: no item has an asset {asset!r} (their assets: {have}); give --asset")
    return out


def _date(item: Any) -> str | None:
    when = item.datetime or item.common_metadata.start_datetime
    return when.date().isoformat() if when else None
