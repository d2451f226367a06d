"""UC Merced Land Use: 21 land-use classes x 100 aerial scenes, 256 x 256 px RGB at 0.3 m.

Yang and Newsam, "Bag-Of-Visual-Words and Spatial Extensions for Land-Use Classification",
ACM SIGSPATIAL 2010. Imagery from the USGS National Map Urban Area Imagery (public domain).

The official release is one zip, ``UCMerced_LandUse.zip``, holding
``UCMerced_LandUse/Images/<class>/<class>NN.tif``. There is no official split: published
frozen-feature baselines use a random 80 % / 20 % split per class, which
:mod:`jobs.datasets.splits` makes (seeded, stratified). 44 images are slightly off-size, as
released; the featurizer resizes every image anyway.

Reading: ``--dataset ucmerced --data ROOT`` takes ROOT as the unpacked release, its ``Images``
folder, or any folder whose sub-folders are the class names (a re-encoded JPEG copy reads the
same way). Online machines fetch and verify the release with
``python -m jobs.datasets.ucmerced download DIR``.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

from jobs.datasets import DatasetError, downloads
from jobs.datasets.downloads import ChecksumError, fetch

__all__ = ["CLASSES", "GSD_M", "MD5", "TILE_PX", "URL", "ChecksumError", "download", "locate"]

URL = "http://weegee.vision.ucmerced.edu/datasets/UCMerced_LandUse.zip"
MD5 = "5b7ec56793786b6dc8a908e8854ac0e4"  # of the zip, as torchgeo records it
ARCHIVE = "UCMerced_LandUse.zip"
IMAGES = ("UCMerced_LandUse", "Images")  # the class folders' parent inside the zip
IMAGES_PER_CLASS = 100
TILE_PX = 256
GSD_M = 0.3  # ground sampling distance of the imagery: 256 px cover 76.8 m
CLASSES = (
    "agricultural",
    "airplane",
    "baseballdiamond",
    "beach",
    "buildings",
    "chaparral",
    "denseresidential",
    "forest",
    "freeway",
    "golfcourse",
    "harbor",
    "intersection",
    "mediumresidential",
    "mobilehomepark",
    "overpass",
    "parkinglot",
    "river",
    "runway",
    "sparseresidential",
    "storagetanks",
    "tenniscourt",
)


def locate(root: str) -> str:
    """The folder below ``root`` whose sub-folders are the 21 classes (a local path).

    Accepts the unpacked release (``UCMerced_LandUse/Images``), its ``Images`` folder, or the
    class folders' parent itself (e.g. a JPEG copy's ``images``).
    """
    base = Path(root)
    for candidate in (base, base.joinpath(*IMAGES), base / "Images", base / "images"):
        if candidate.is_dir() and all((candidate / c).is_dir() for c in CLASSES):
            return str(candidate)
    if not base.is_dir():
        raise DatasetError(f"UC Merced not found at {root}: run `python -m jobs.datasets.ucmerced download {root}`")
    found = sorted(p.name for p in base.iterdir() if p.is_dir())
    missing = [c for c in CLASSES if c not in found]
    raise DatasetError(
        f"{root} does not hold UC Merced's class folders (missing {', '.join(missing[:5])}"
        f"{'…' if len(missing) > 5 else ''}); expected {'/'.join(IMAGES)}/<class>/ or <class>/"
    )


def download(root: str, url: str = URL, md5: str = MD5) -> str:
    """Fetches the release into ``root`` (unless a verified copy is there), checks its MD5,
    unpacks it; returns :func:`locate`'s folder."""
    archive = fetch(url, Path(root) / ARCHIVE, "md5", md5)
    with zipfile.ZipFile(archive) as z:
        z.extractall(root)
    return locate(root)


def main(argv: list[str] | None = None) -> int:
    return downloads.main("ucmerced", download, argv)


if __name__ == "__main__":
    sys.exit(main())
