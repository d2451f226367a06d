"""Entry point: how right a scoring run's maps are, and how much of each class there is.

    landuse-assess --output_model_name aid_demo --run RUN_ID --reference ndwi
    landuse-assess --output_model_name naip_nlcd --run RUN_ID --reference /data/nlcd_2019.tif --classes nlcd6
    landuse-assess --output_model_name naip_nlcd --run RUN_ID --reference /data/samples.gpkg.parquet

``--reference`` is ``ndwi`` (water / not water from the scenes' own green and near-infrared
bands), a land-cover raster with ``--classes`` (a crosswalk, as ``landuse-label`` takes), or a
table of labelled points (GeoParquet with a ``class`` column, or CSV/Parquet with x, y, crs,
class). Prints the confusion matrix's summary as one JSON line and writes
``assessments/<model>/<run>/<reference>/``: see jobs/workflows/assess.py and
jobs/maps/assessment.py (Olofsson et al. 2014's stratified estimators).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jobs.config import absolute, add_summary_flag, plain
from jobs.datasets import landcover
from jobs.runtime.names import check_name
from jobs.runtime.spark import get_spark
from jobs.storage import open_storage
from jobs.workflows import command
from jobs.workflows.assess import JOB, NDWI, assess_run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_summary_flag(p)
    p.add_argument("--output_model_name", required=True, help="the model the run scored with")
    p.add_argument(
        "--run", required=True, help="the scoring run: its id, or its scenes' date (2009, 2020-08, 2020-08-31)"
    )
    p.add_argument("--reference", required=True, help="ndwi, a land-cover raster (with --classes), or a points table")
    p.add_argument("--classes", help=f"crosswalk for a raster reference ({', '.join(landcover.builtin())} or a TOML)")
    p.add_argument("--water_classes", help="the map's classes that are water, comma-separated (default: by name)")
    p.add_argument("--green_band", type=int, default=2, help="NDWI's green band (default 2, NAIP's)")
    p.add_argument("--nir_band", type=int, default=4, help="NDWI's near-infrared band (default 4, NAIP's)")
    p.add_argument("--storage", default="data", help="storage root (default ./data)")

    def go() -> dict[str, Any]:
        a = p.parse_args(argv)
        check_name("model", a.output_model_name)
        check_name("run", a.run)
        spec = a.reference if a.reference == NDWI else absolute(a.reference)
        if a.reference != NDWI and a.reference.endswith((".tif", ".tiff", ".vrt")) and not a.classes:
            p.error("a land-cover raster reference needs --classes (the crosswalk from its codes)")
        crosswalk = landcover.load(a.classes) if a.classes and a.reference != NDWI else None
        water = [c.strip() for c in a.water_classes.split(",")] if a.water_classes else None
        spark = get_spark(f"{JOB}-{a.output_model_name}")
        storage = open_storage(absolute(a.storage), spark)
        return assess_run(spark, storage, a.output_model_name, a.run, spec, crosswalk, water, a.green_band, a.nir_band)

    return command.run(JOB, go, argv)


if __name__ == "__main__":
    sys.exit(main())
