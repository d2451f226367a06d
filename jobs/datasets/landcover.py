"""Land-cover rasters as labels: crosswalks from a raster's class codes to class names.

A crosswalk is a TOML file (``--classes FILE``) or the name of one shipped in
``jobs/datasets/legends/``:

* ``nlcd``: the NLCD legend, code by code (20 classes; CDL's non-crop codes too);
* ``nlcd6``: the original sample's six classes (Developed, Cultivated, Barren, Forest,
  Herbaceous, Shrub) plus Water, from NLCD codes;
* ``cdl6``: the same seven from the Cropland Data Layer's codes (its crop codes clash with
  NLCD's, so a CDL raster takes this one).

The file::

    title = "…"
    nodata = [0]            # codes that mean "no label here" (besides the raster's own nodata)
    [classes]
    "11" = "Water"          # one code …
    "21-24" = "Developed"   # … or an inclusive range

A code the raster holds that is neither a class nor nodata is ``unmapped``: counted and listed,
never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jobs.datasets import DatasetError
from jobs.runtime.tomlfiles import read_toml

LEGENDS = Path(__file__).with_name("legends")
MAX_CODE = 65535  # class rasters are 8- or 16-bit


class CrosswalkError(DatasetError):
    """A crosswalk file that cannot be read as one."""


@dataclass(frozen=True)
class Crosswalk:
    """Raster codes → class names; picklable, so executors take it as it is."""

    title: str
    classes: dict[int, str]
    nodata: frozenset[int]
    source: str

    @property
    def names(self) -> list[str]:
        return sorted(set(self.classes.values()))

    def lookup(self) -> np.ndarray:
        """An array over codes 0..max: the class index (into :attr:`names`), -1 unmapped, -2 nodata."""
        top = max([*self.classes, *self.nodata, 0])
        table = np.full(top + 1, -1, dtype=np.int32)
        index = {name: i for i, name in enumerate(self.names)}
        for code, name in self.classes.items():
            table[code] = index[name]
        for code in self.nodata:
            table[code] = -2
        return table

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "source": self.source, "classes": self.names, "nodata": sorted(self.nodata)}


def builtin() -> list[str]:
    return sorted(p.stem for p in LEGENDS.glob("*.toml"))


def load(spec: str) -> Crosswalk:
    """The crosswalk a ``--classes`` value names: a shipped legend's name or a TOML file."""
    path = LEGENDS / f"{spec}.toml" if spec in builtin() else Path(spec)
    missing = f"no such file, nor a shipped legend ({', '.join(builtin())})"
    raw = read_toml(path, CrosswalkError, f"classes {spec}", missing)
    table = raw.get("classes")
    if not isinstance(table, dict) or not table:
        raise CrosswalkError(f'classes {spec}: no [classes] table of code = "name" lines')
    classes: dict[int, str] = {}
    for key, name in table.items():
        if not isinstance(name, str) or not name.strip():
            raise CrosswalkError(f"classes {spec}: code {key} needs a class name, not {name!r}")
        for code in _codes(spec, key):
            if code in classes and classes[code] != name:
                raise CrosswalkError(f"classes {spec}: code {code} is both {classes[code]!r} and {name!r}")
            classes[code] = name.strip()
    nodata = raw.get("nodata", [])
    if not isinstance(nodata, list) or not all(isinstance(c, int) and 0 <= c <= MAX_CODE for c in nodata):
        raise CrosswalkError(f"classes {spec}: nodata must be a list of codes 0..{MAX_CODE}")
    both = sorted(set(nodata) & set(classes))
    if both:
        raise CrosswalkError(f"classes {spec}: code {both[0]} is both nodata and a class")
    title = raw.get("title", path.stem)
    return Crosswalk(str(title), classes, frozenset(nodata), str(path))


def _codes(spec: str, key: str) -> range:
    try:
        low, dash, high = key.partition("-")
        first, last = int(low), int(high if dash else low)
    except ValueError:
        raise CrosswalkError(f'classes {spec}: {key!r} is not a code or a range of codes (e.g. "21-24")') from None
    if not 0 <= first <= last <= MAX_CODE:
        raise CrosswalkError(f"classes {spec}: {key!r} is not within 0..{MAX_CODE}, low to high")
    return range(first, last + 1)
