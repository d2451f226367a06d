"""Accuracy on the full real data sets, in one run.

    python bench/accuracy.py [--only NAME …] [--out FILE]

Each run is a real ``spark-submit jobs/train.py`` on every image of the set, with features
cached so classifiers share one featurization. ``ucmerced_defaults`` passes nothing but the data
set and its folder: it measures the aerial defaults (seeded stratified 80/20 split); at 50 %
train it stands in for the other aerial sets the defaults must carry to. Published baselines:
UC Merced with ImageNet-CNN features and a linear SVM about 0.94-0.95 at 80 % train (Xia et al.,
"AID", IEEE TGRS 2017); Fashion-MNIST raw pixels LR 0.842, RF 0.873 (the data set's benchmark
table); MNIST raw pixels LR 0.9204 (the Azure ML tutorial). Writes a JSON report and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STORAGE = ROOT / "data" / "accuracy"

MIRROR = Path(os.environ.get("DATA_MIRROR", ROOT.parent / "shared" / "datasets"))
UCMERCED = ["--dataset", "ucmerced", "--data", str(MIRROR / "ucmerced")]

RUNS = {
    "ucmerced_defaults": UCMERCED,
    "ucmerced_defaults_train50": [*UCMERCED, "--train_ratio", "0.5"],
    # The defaults with the network quantized to int8 (calibrated on 64 training images).
    "ucmerced_defaults_int8": [*UCMERCED, "--precision", "int8"],
    "ucmerced_demo_conf": ["--conf", "conf/ucmerced_demo.toml", *UCMERCED[2:]],
    "mnist_defaults": ["--dataset", "mnist", "--data", ".cache/demo/mnist"],
    "mnist_lite0_lr": [
        "--conf",
        "conf/mnist_demo.toml",
        "--pretrained_model_type",
        "efficientnet_lite0",
        "--pool_grid",
        "1",
    ],
    "mnist_lite0grid2_lr": ["--conf", "conf/mnist_demo.toml", "--pool_grid", "2"],
    "mnist_lite0grid2_lr_int8": ["--conf", "conf/mnist_demo.toml", "--pool_grid", "2", "--precision", "int8"],
    "mnist_pixels_lr": ["--conf", "conf/mnist_demo.toml", "--pretrained_model_type", "pixels"],
    "fashion_lite0_lr": ["--conf", "conf/fashion_mnist.toml"],
    "fashion_lite0_rf": ["--conf", "conf/fashion_mnist.toml", "--mmlspark_model_type", "randomforest"],
    "fashion_pixels_lr": ["--conf", "conf/fashion_mnist.toml", "--pretrained_model_type", "pixels"],
    "fashion_pixels_rf": [
        "--conf",
        "conf/fashion_mnist.toml",
        "--pretrained_model_type",
        "pixels",
        "--mmlspark_model_type",
        "randomforest",
    ],
}
PUBLISHED = {
    "fashion_pixels_lr": 0.842,
    "fashion_pixels_rf": 0.873,
    "mnist_pixels_lr": 0.9204,
    "ucmerced_defaults": 0.95,  # upper end of 0.94-0.95
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=sorted(RUNS))
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "accuracy.json")
    args = p.parse_args()
    submit = Path(sys.executable).parent / "spark-submit"
    log4j = f"-Dlog4j2.configurationFile={ROOT / 'jobs' / 'log4j2.properties'}"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    # --only reruns some: the others keep their last results in the report.
    results = json.loads(args.out.read_text()) if args.only and args.out.exists() else {}
    for name in args.only or RUNS:
        flags = [*RUNS[name], "--output_model_name", name, "--storage", str(STORAGE), "--sample_frac", "1.0"]
        flags += ["--train_sample_frac", "1.0", "--test_sample_frac", "1.0", "--cache_features"]
        cmd = [str(submit), "--driver-memory", "8g", "--driver-java-options", log4j, "jobs/train.py", *flags]
        start = time.time()
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
            return done.returncode
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        summary["wall_seconds"] = round(time.time() - start, 1)
        summary["published_baseline"] = PUBLISHED.get(name)
        results[name] = summary
        print(json.dumps({name: summary}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\n{'run':<20} {'accuracy':>9} {'macro-F1':>9} {'n_train':>8} {'n_test':>7} {'published':>10}")
    for name, r in results.items():
        pub = "" if r["published_baseline"] is None else f"{r['published_baseline']:.4f}"
        print(f"{name:<20} {r['accuracy']:>9.4f} {r['macro_f1']:>9.4f} {r['n_train']:>8} {r['n_test']:>7} {pub:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
