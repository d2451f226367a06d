"""Entry point: label scene windows from a land-cover raster, as a training set.

    landuse-label --scenes '/data/naip/*.tif' --labels /data/nlcd_2019.tif --classes nlcd6 \\
        --tile_m 150 --out /data/naip_nlcd
    spark-submit jobs/label.py …   (the same flags)

Writes OUT/<class>/<scene>_r<row>_c<col>.tif (georeferenced RGB windows, what
``train --dataset aerial --data OUT`` reads), OUT/_manifest/<scene>.parquet (GeoParquet, every
window with its class, purity, code histogram and drop reason) and OUT/_label_summary.json;
prints the summary as one JSON line. See jobs/workflows/label.py and jobs/scenes/labels.py.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jobs.config import absolute, add_summary_flag, plain
from jobs.datasets import landcover
from jobs.runtime.spark import get_spark
from jobs.workflows import command
from jobs.workflows.label import JOB, LabelOptions, label_scenes


def parse_args(argv: list[str] | None) -> LabelOptions:
    p = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_summary_flag(p)
    p.add_argument("--scenes", required=True, help="a scene file, folder, glob or .txt list (as score takes)")
    p.add_argument("--labels", required=True, help="the land-cover raster (GeoTIFF/COG, one band of codes, any CRS)")
    p.add_argument(
        "--classes",
        required=True,
        help=f"crosswalk from codes to classes: a TOML file or a shipped one ({', '.join(landcover.builtin())})",
    )
    p.add_argument("--out", required=True, help="the training set's root (local folder or Blob URI)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--tile_px", type=int, help="window side in scene pixels")
    size.add_argument("--tile_m", type=float, help="window side in metres")
    p.add_argument("--min_purity", type=float, default=0.75, help="keep windows whose majority class holds this share")
    p.add_argument("--max_nodata", type=float, default=0.05, help="drop windows with more nodata than this (0.05)")
    p.add_argument("--bands", default="1,2,3", help="scene bands written as R,G,B (default 1,2,3)")
    a = p.parse_args(argv)
    try:
        bands = tuple(int(b) for b in a.bands.split(","))
    except ValueError:
        p.error(f"--bands {a.bands!r}: give band numbers such as 1,2,3")
    scenes = a.scenes if a.scenes.endswith((".txt", ".lst")) else absolute(a.scenes)
    return LabelOptions(
        scenes=scenes,
        labels=absolute(a.labels),
        classes=a.classes,
        out=absolute(a.out),
        tile_px=a.tile_px,
        tile_m=a.tile_m,
        min_purity=a.min_purity,
        max_nodata=a.max_nodata,
        bands=bands,
    ).check()


def main(argv: list[str] | None = None) -> int:
    def go() -> dict[str, Any]:
        opts = parse_args(argv)
        crosswalk = landcover.load(opts.classes)
        return label_scenes(get_spark(JOB), opts, crosswalk)

    return command.run(JOB, go, argv)


if __name__ == "__main__":
    sys.exit(main())
