"""UC Merced → land-use maps of a real NAIP scene, end to end as a user runs it: spark-submit, then cron."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import rasterio
from conftest import DEMO, require, submit, summary_of
from test_aerial import mirror

from jobs.datasets import ucmerced
from jobs.storage import LocalStorage


def test_train_on_a_uc_merced_sample_then_map_a_naip_scene(tmp_path):
    naip = require(DEMO / "naip" / "m_4709963_se_14_1_20090818.tif")
    storage = tmp_path / "storage"
    common = ["--storage", str(storage), "--output_model_name", "uc"]
    trained = submit(
        "train.py",
        "--dataset",
        "ucmerced",
        "--data",
        str(mirror()),
        "--sample_frac",
        "0.1",
        "--pretrained_model_type",
        "mobilenet_v2",
        "--no-d4",
        "--no_finetune",  # frozen features: the one-pass default is trained through spark-submit in test_finetune
        "--image_size",
        "128",
        *common,
    )
    root = LocalStorage(storage)
    metrics = root.read_json("runs", trained["run_id"], "metrics.json")
    assert metrics["split"]["method"].startswith("seeded stratified") and metrics["split"]["train_ratio"] == 0.8
    assert len(metrics["split"]["test_files"]) == trained["n_test"] > 0
    assert all(f.split("/", 1)[0] in ucmerced.CLASSES for f in metrics["split"]["test_files"])
    assert metrics["tuning"] and {c["params"]["regParam"] for c in metrics["tuning"]} == {0.001, 0.01, 0.1}
    assert trained["accuracy"] > 0.5  # 21 classes from ~10 images each: far above chance (0.05)
    card = root.load_card("trainedmodels", "uc")
    assert (card["gsd_m"], card["image_px"]) == (0.3, 256) and abs(card["tile_m"] - 76.8) < 1e-9

    # Scored as the README's cron line runs it: the installed command under a bare environment
    # (`env -i`: no PATH, PYSPARK_PYTHON or JAVA_HOME), starting Spark itself with quiet logging.
    command = Path(sys.executable).parent / "landuse-score"
    args = [
        *common,
        "--scenes",
        str(naip),
        "--tile_px",
        "64",
        "--top_k",
        "3",
        "--summary_file",
        str(tmp_path / "s.json"),
    ]
    done = subprocess.run(["env", "-i", str(command), *args], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    scored = summary_of(done.stdout)
    assert scored == json.loads((tmp_path / "s.json").read_text()) and " INFO " not in done.stderr
    assert scored["n_scenes"] == 1 and scored["n_tiles"] == 15 * 12
    assert any("ground resolution" in w for w in scored["warnings"])  # 5 m NAIP vs 0.3 m UC Merced
    maps = scored["maps_uri"]
    with rasterio.open(naip) as src, rasterio.open(f"{maps}/m_4709963_se_14_1_20090818.tif") as out:
        assert out.crs == src.crs and out.transform == src.transform @ src.transform.scale(64)
        assert set(json.loads(out.tags()["CLASS_NAMES"])) <= set(ucmerced.CLASSES)
    tiles = gpd.read_parquet(f"{maps}/m_4709963_se_14_1_20090818.parquet")
    assert tiles.crs.to_epsg() == 26914 and len(tiles) == 180
    assert tiles["predicted_label"].notna().sum() == scored["n_scored"]
