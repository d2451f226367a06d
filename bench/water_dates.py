"""Does a water decision learnt from RGB features carry across acquisition dates? (issue #23)

    python bench/water_dates.py [--storage data] [--model aid_demo] [--out bench/out/water_dates.json]

After ``make demo``: the demo's model featurizes every 300 m window of the ten NAIP dates in
``DATA_MIRROR/naip`` (2009-2020), and each window's NDWI water share is measured as
``landuse-assess --reference ndwi`` measures it. Then, for each date held out in turn, three
water decisions are scored on it: the map's own (Pond or River), and logistic regressions on the
CNN features trained on the *other* dates' windows (at least half water vs under 5 %), on the
features as they are and centred and scaled per scene. Nothing is chosen here: it measures
whether the targets (water recall >= 0.85, false water <= 0.05) are within reach of RGB features.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the executors' Python: this venv's

WET, DRY = 0.5, 0.05  # the assessment's "at least half water" and "almost no water"


def windows(storage: str, model_name: str, scenes: str, tile_m: float) -> pd.DataFrame:
    """Features, class probabilities and NDWI water share of every window of ``scenes``."""
    from pyspark.ml.feature import StringIndexerModel
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from jobs.maps.reference import ndwi_reference
    from jobs.scenes import windows as cut
    from jobs.storage import LocalStorage

    spark = SparkSession.builder.master("local[*]").config("spark.driver.memory", "6g").getOrCreate()
    root = LocalStorage(storage)
    model = root.load_model("trainedmodels", model_name)
    labels = next(s.labels for s in model.stages if isinstance(s, StringIndexerModel))  # probability order
    opts = cut.SceneOptions(bands=(1, 2, 3), tile_m=tile_m).check()
    listed, reader = cut.list_scenes(spark, scenes)
    table = cut.scene_table(spark, listed, reader, opts).cache()
    n = table.agg(F.sum(F.col("n_rows") * F.col("n_cols"))).first()[0]
    grid = cut.window_table(table, n).join(F.broadcast(table.select("scene_id", "tile_px", "lo", "hi")), "scene_id")
    read = cut.window_reader(reader, opts)(F.struct("scene_path", "row", "col", "tile_px", "lo", "hi"))
    grid = grid.withColumn("_r", read).select("scene_id", "scene_path", "row", "col", "tile_px", "_r.*")
    out = model.transform(grid.where(F.col("read_reject").isNull()).drop("read_reject"))
    frame = out.select(
        "scene_id", "scene_path", "row", "col", "tile_px",
        vector_to_array("features").alias("features"), vector_to_array("probability").alias("probability"),
    ).toPandas()  # fmt: skip
    spark.stop()
    # The water share as landuse-assess --reference ndwi measures it (green 2, NIR 4), a scene at a time.
    share = ndwi_reference(reader, 2, 4)
    measured = pd.concat([share(g.assign(map_label=None)) for _, g in frame.groupby("scene_id")])
    frame = frame.merge(measured[["scene_id", "row", "col", "water_share"]], on=["scene_id", "row", "col"])
    frame["date"] = frame["scene_id"].str.extract(r"_(\d{8})")[0]
    frame.attrs["labels"] = labels
    return frame


def rates(decided: np.ndarray, share: np.ndarray) -> dict[str, float | int]:
    wet, dry = share >= WET, share < DRY
    return {
        "n_wet": int(wet.sum()),
        "recall": round(float(decided[wet].mean()), 3) if wet.any() else None,
        "n_dry": int(dry.sum()),
        "false_water": round(float(decided[dry].mean()), 3) if dry.any() else None,
    }


def held_out(frame: pd.DataFrame, water_classes: list[int]) -> list[dict]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.stack(frame["features"].to_numpy()).astype(np.float64)
    centred = x.copy()
    for date in frame["date"].unique():
        m = (frame["date"] == date).to_numpy()
        centred[m] = (x[m] - x[m].mean(0)) / (x[m].std(0) + 1e-6)
    share = frame["water_share"].to_numpy()
    graded = (share >= WET) | (share < DRY)
    probs = np.stack(frame["probability"].to_numpy())
    rows = []
    for date in sorted(frame["date"].unique()):
        test = (frame["date"] == date).to_numpy()
        train = graded & ~test
        row = {"date": date, "map": rates(np.isin(probs[test].argmax(1), water_classes), share[test])}
        for name, feats in (("head", x), ("head_centred_per_scene", centred)):
            head = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
            head.fit(feats[train], share[train] >= WET)
            row[name] = rates(head.predict(feats[test]), share[test])
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--storage", default="data")
    p.add_argument("--model", default="aid_demo")
    p.add_argument("--scenes", default=os.path.join(os.environ.get("DATA_MIRROR", "../shared/datasets"), "naip"))
    p.add_argument("--tile_m", type=float, default=300.0)
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "water_dates.json"))
    args = p.parse_args()
    frame = windows(args.storage, args.model, args.scenes, args.tile_m)
    water = [i for i, name in enumerate(frame.attrs["labels"]) if name in ("Pond", "River", "Water")]
    rows = held_out(frame, water)
    report = {"model": args.model, "tile_m": args.tile_m, "windows": len(frame), "held_out_dates": rows}
    Path(args.out).write_text(json.dumps(report, indent=1))
    for r in rows:
        ways = ("map", "head", "head_centred_per_scene")
        print(r["date"], *(f"{k}: recall {r[k]['recall']} false {r[k]['false_water']}" for k in ways))


if __name__ == "__main__":
    main()
