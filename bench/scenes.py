"""Scene scoring against featurizing the same windows, and driver memory as windows grow 100x.

    python bench/scenes.py [--scenes GLOB] [--out bench/out/scenes.json]

1. **Rate.** A model (EfficientNet-Lite0, random weights: speed does not depend on them) scores
   the NAIP scenes with ``score.py --scenes`` (windows read by rasterio on the executors,
   featurized, predicted, maps written); its "read windows, featurize and predict" rate is set
   beside the rate of featurizing *the same windows*, cut beforehand into PNG files, with the
   same featurizer and Spark settings. Both are first passes in a fresh application.
2. **Flat driver.** A raw-pixel model scores one scene with windows of 64, 20 and 6 px (about
   180 → 18,900 windows, 105x), on a standalone cluster (master + 2 workers on 127.0.0.1); the
   driver's peak Python and JVM resident memory are recorded, as bench/scale.py does for tiles.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from scale import CACHE, make_training_set, submit  # noqa: E402

WORK = ROOT / ".cache" / "bench" / "scenes"


def cut_windows(scenes: list[str], tile: int, out: Path) -> int:
    """The windows score.py reads, as PNG files (same grid, bands 1-3, 8-bit)."""
    import rasterio
    from rasterio.windows import Window

    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for path in scenes:
        with rasterio.open(path) as ds:
            for r in range(-(-ds.height // tile)):
                for c in range(-(-ds.width // tile)):
                    data = ds.read([1, 2, 3], window=Window(c * tile, r * tile, tile, tile), boundless=True)
                    Image.fromarray(np.ascontiguousarray(data.transpose(1, 2, 0))).save(
                        out / f"{Path(path).stem}_r{r}_c{c}.png", compress_level=1
                    )
                    n += 1
    return n


def featurize_rate(folder: Path, onnx: str) -> float:
    from featurizers.image_featurizer import ImageFeaturizer
    from jobs.datasets import folders
    from jobs.runtime.spark import get_spark
    from jobs.storage import LocalStorage

    spark = get_spark("bench-featurize-windows")
    rows = folders.load_unlabelled(spark, LocalStorage(folder))
    featurizer = ImageFeaturizer.from_zoo("efficientnet_lite0", onnx, batchSize=8)
    start = time.perf_counter()
    n = featurizer.transform(rows).where("reject_reason is null").count()
    seconds = time.perf_counter() - start
    spark.stop()
    return n / seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mirror = os.environ.get("DATA_MIRROR", str(ROOT.parent / "shared" / "datasets"))
    p.add_argument("--scenes", default=f"{mirror}/naip/*.tif")
    p.add_argument("--tile_px", type=int, default=64)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "scenes.json")
    args = p.parse_args()
    scenes = sorted(glob.glob(args.scenes))
    storage = WORK / "storage"
    for lock in storage.glob("predictions/*/_LOCK"):  # the bench owns this storage
        lock.unlink()
    labelled = str(make_training_set())
    common = ["--dataset", "aerial", "--data", labelled, "--storage", str(storage), "--val_ratio", "0", "--no_tune"]
    submit("train.py", *common, "--output_model_name", "lite0", "--pretrained_model_type", "efficientnet_lite0",
           "--weights", "random", "--no_d4", "--image_size", "0", "--no_finetune", "--precision", "fp32")  # fmt: skip
    scored, _ = submit("score.py", "--output_model_name", "lite0", "--storage", str(storage),
                       "--scenes", args.scenes, "--tile_px", str(args.tile_px))  # fmt: skip
    windows = WORK / f"windows_{args.tile_px}"
    n = cut_windows(scenes, args.tile_px, windows) if not windows.exists() else len(os.listdir(windows))
    onnx = str(storage / "pretrainedmodels" / "efficientnet_lite0-random.onnx")
    plain = featurize_rate(windows, onnx)
    rate = {
        "scenes": len(scenes),
        "windows": scored["n_tiles"],
        "window_files": n,
        "scene_scoring_images_per_s": scored["images_per_s"],
        "featurize_only_images_per_s": round(plain, 2),
        "ratio": round(scored["images_per_s"] / plain, 3),
    }
    print(json.dumps(rate), flush=True)

    sys.path.insert(0, str(ROOT / "tests"))
    from cluster import Cluster

    submit("train.py", *common, "--output_model_name", "px", "--pretrained_model_type", "pixels")
    cluster = Cluster(CACHE / "cluster")
    cluster.start()
    flat = []
    try:
        for tile in (64, 20, 6):
            summary, peaks = submit("score.py", "--output_model_name", "px", "--storage", str(storage),
                                    "--scenes", scenes[0], "--tile_px", str(tile), master=cluster.url)  # fmt: skip
            flat.append(
                {
                    "tile_px": tile,
                    "windows": summary["n_tiles"],
                    "images_per_s": summary["images_per_s"],
                    "driver_python_peak_mib": round(peaks.get("driver_python", 0) / 1024, 1),
                    "driver_jvm_peak_mib": round(peaks.get("driver_jvm", 0) / 1024, 1),
                }
            )
            print(json.dumps(flat[-1]), flush=True)
    finally:
        cluster.stop()
    report = {
        "benchmark": "scenes",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "rate": rate,
        "flat_driver": flat,
        "windows_growth": round(flat[-1]["windows"] / flat[0]["windows"], 1),
        "python_peak_ratio": round(flat[-1]["driver_python_peak_mib"] / flat[0]["driver_python_peak_mib"], 3),
        "jvm_peak_ratio": round(flat[-1]["driver_jvm_peak_mib"] / flat[0]["driver_jvm_peak_mib"], 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("windows_growth", "python_peak_ratio", "jvm_peak_ratio")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
