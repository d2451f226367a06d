"""AID, the Aerial Image Dataset: 30 scene classes of Google Earth imagery from many countries.

Xia, Hu, Hu, Shi, Bai, Zhong, Zhang and Lu, "AID: A Benchmark Data Set for Performance
Evaluation of Aerial Scene Classification", IEEE TGRS 55(7), 2017; Wuhan University,
https://captain-whu.github.io/AID/. The release is 10,000 images of 600 x 600 px at about 0.5
to 8 m a pixel (the ground size varies by image), one folder per class.

The demo's copy (``DATA_MIRROR/aid``) holds the eight classes of the prairie landscapes the NAIP
demo scenes show (``CLASSES``), re-saved at 150 x 150 px, so about 2 to 32 m a pixel: near the
NAIP clips' 5 m, which UC Merced's 0.3 m is not. Layout ``<Class>/<class>_<n>.jpg``, read as any
``<label>/`` folder (``--dataset aid`` or ``aerial``); no official split (published baselines
train on 50 % or 20 % per class).

The release is shared through the page above (cloud-drive links, no stable file URL or
published checksum), so ``download`` cannot fetch it: it says where to get it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jobs.datasets import DatasetError, downloads

__all__ = ["ALL_CLASSES", "CLASSES", "GSD_M", "GSD_RANGE_M", "IMAGE_PX", "PAGE", "download", "locate"]

PAGE = "https://captain-whu.github.io/AID/"
IMAGE_PX = 150  # the mirror's copy; the release's images are 600 px
GSD_RANGE_M = (2.0, 32.0)  # metres a pixel at 150 px (0.5-8 m at the release's 600 px)
GSD_M = 8.0  # the range's geometric middle: what the model card records as the imagery's resolution
# The smallest ground an image covers (150 px at 2 m): scene windows smaller than this show less
# context than any training image had, so it is the tile size a map made with an AID model takes.
MIN_GROUND_M = IMAGE_PX * GSD_RANGE_M[0]
CLASSES = (
    "BareLand",
    "Farmland",
    "Forest",
    "Meadow",
    "MediumResidential",
    "Pond",
    "River",
    "SparseResidential",
)
WATER = ("Pond", "River")
ALL_CLASSES = (
    "Airport",
    "BareLand",
    "BaseballField",
    "Beach",
    "Bridge",
    "Center",
    "Church",
    "Commercial",
    "DenseResidential",
    "Desert",
    "Farmland",
    "Forest",
    "Industrial",
    "Meadow",
    "MediumResidential",
    "Mountain",
    "Park",
    "Parking",
    "Playground",
    "Pond",
    "Port",
    "RailwayStation",
    "Resort",
    "River",
    "School",
    "SparseResidential",
    "Square",
    "Stadium",
    "StorageTanks",
    "Viaduct",
)


def locate(root: str) -> str:
    """``root`` itself, once it holds class folders that are AID classes (at least two)."""
    base = Path(root)
    if not base.is_dir():
        raise DatasetError(f"AID not found at {root}: get it from {PAGE} and unpack it there")
    found = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    known = [name for name in found if name in ALL_CLASSES]
    if len(known) < 2:
        raise DatasetError(f"{root} does not hold AID's class folders (found {', '.join(found[:5]) or 'none'})")
    return str(base)


def download(root: str) -> str:
    raise DatasetError(f"AID has no file URL to fetch from here: download it from {PAGE} and unpack it into {root}")


def main(argv: list[str] | None = None) -> int:
    return downloads.main("aid", download, argv)


if __name__ == "__main__":
    sys.exit(main())
