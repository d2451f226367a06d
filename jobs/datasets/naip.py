"""NAIP demo scenes: one quarter-quad (m_4709963_se, UTM 14N) in 2009 and 2020, 4 bands at 5 m.

USDA National Agriculture Imagery Program imagery (public domain), resampled clips of 934 x 724
pixels (red, green, blue, near-infrared; uint8; nodata 0) as the ``opengeos/data`` repository
publishes them (MIT licence), pinned to one commit and checked by SHA-256. NAIP's own
quarter-quads are 0.6-1 m; these clips are 5 m: within the range of the demo's AID imagery
(2-32 m), far coarser than UC Merced's 0.3 m (a UC Merced model labels them poorly, and the
scoring job warns). Their 4th band lets ``landuse-assess --reference ndwi`` check each map's
water against the scene itself.

    python -m jobs.datasets.naip download DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from jobs.datasets import downloads
from jobs.datasets.downloads import fetch

COMMIT = "15702be1b124db7b77a33d20df08f01e3ba0f4e9"
BASE_URL = f"https://raw.githubusercontent.com/opengeos/data/{COMMIT}/naip"
SCENES = {
    "m_4709963_se_14_1_20090818.tif": "568f0d3dc3118d6df63510361db6c627b81541ad4c65122caf54e18030fc7100",
    "m_4709963_se_14_1_20200831.tif": "e8eb18475678d16a98a44f28b1c777fd0b2c56e9c8afed302a5e071e2e237f90",
}
GSD_M = 5.0


def download(root: str, base_url: str = BASE_URL) -> list[str]:
    """Fetches the demo scenes into ``root`` (keeping verified ones); returns their paths."""
    return [str(fetch(f"{base_url}/{name}", Path(root) / name, "sha256", sha)) for name, sha in SCENES.items()]


def main(argv: list[str] | None = None) -> int:
    return downloads.main("naip", download, argv)


if __name__ == "__main__":
    sys.exit(main())
