"""Colours that mean something: water blue, forest green, farmland yellow, built-up red.

A class name is matched, case-insensitively and at the start of its words (so ``Rice`` is no
``ice``), against the words of the conventional land-cover
colours (NLCD's legend is the model: its water, developed, barren, forest, shrub, grassland,
cultivated and wetland colours). Names that match no word take, in label order, colours that
mean none of these (purples, magentas, oranges, greys), so that no unknown class looks like
water or forest.
"""

from __future__ import annotations

import re

WATER_COLOUR = (50, 110, 200)
# First match wins: more specific words before general ones ("sparseresidential" before "residential").
MEANINGS: tuple[tuple[tuple[str, ...], tuple[int, int, int]], ...] = (
    (("water", "pond", "lake", "river", "sea", "harbor", "harbour", "reservoir"), WATER_COLOUR),
    (("wetland", "marsh", "swamp"), (110, 170, 190)),
    (("ice", "snow", "glacier"), (225, 235, 245)),
    (("dense", "high intensity", "commercial", "industrial", "buildings", "parking"), (170, 0, 0)),
    (("medium", "medium intensity"), (220, 40, 30)),
    (("sparse", "low intensity", "mobilehome"), (235, 120, 100)),
    (("open space", "golf", "park", "baseball", "tennis"), (235, 180, 170)),
    (
        ("developed", "residential", "urban", "built", "road", "freeway", "runway", "overpass", "intersection"),
        (200, 30, 30),
    ),
    (("forest", "tree", "wood"), (30, 110, 40)),
    (("shrub", "chaparral", "scrub"), (175, 150, 80)),
    (("meadow", "grass", "herbaceous", "pasture", "prairie"), (150, 200, 90)),
    (("farm", "agricultur", "cultivat", "crop", "cropland", "corn", "wheat", "soy"), (230, 200, 40)),
    (("bare", "barren", "desert", "sand", "beach", "rock", "quarry"), (200, 175, 140)),
    (("airplane", "airport", "storagetank", "storage"), (120, 120, 120)),
)
FALLBACK: tuple[tuple[int, int, int], ...] = (
    (148, 103, 189), (227, 119, 194), (255, 127, 14), (127, 127, 127), (99, 55, 125), (247, 182, 210),
    (255, 187, 120), (170, 60, 140), (197, 176, 213), (80, 80, 80), (200, 120, 0), (140, 86, 75),
)  # fmt: skip


def meaning_colour(label: str) -> tuple[int, int, int] | None:
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", label).lower()  # SparseResidential -> sparse residential
    for words, colour in MEANINGS:
        if any(re.search(rf"(?<![a-z]){re.escape(w)}", text) for w in words):
            return colour
    return None


def is_water(label: str) -> bool:
    """Whether a class name means open water (Pond, River, Open Water, harbor…; not wetlands)."""
    return meaning_colour(label) == WATER_COLOUR


def palette(labels: list[str]) -> dict[str, tuple[int, int, int]]:
    """A colour per label: its meaning's (a lighter or darker shade where two labels share one, as
    Pond and River do), else one of ``FALLBACK``."""
    out: dict[str, tuple[int, int, int]] = {}
    seen: dict[tuple[int, int, int], int] = {}
    for label in labels:
        colour = meaning_colour(label)
        if colour is not None:
            k = seen.get(colour, 0)
            seen[colour] = k + 1
            out[label] = _shade(colour, k)
    i = 0
    for label in labels:
        if label not in out:
            out[label] = FALLBACK[i % len(FALLBACK)]
            i += 1
    return {label: out[label] for label in labels}


def _shade(colour: tuple[int, int, int], k: int) -> tuple[int, int, int]:
    """The k-th label of one meaning: 0 as is, then darker and lighter by turns."""
    if k == 0:
        return colour
    step = 0.3 * ((k + 1) // 2)
    target = 0 if k % 2 else 255
    return tuple(round(v + (target - v) * min(step, 0.8)) for v in colour)  # type: ignore[return-value]
