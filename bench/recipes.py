"""The named recipes side by side (issue #25): accuracy, training time and scoring speed, one run.

    python bench/recipes.py [--data .cache/demo/ucmerced] [--scene NAIP.tif] [--out bench/out/recipes.json]

For each recipe (``one-pass``, ``frozen``, ``frozen-d4``; ``jobs/config/recipes.py``):

1. **Train** with ``spark-submit jobs/train.py --dataset ucmerced --data DIR --recipe NAME`` on the
   seeded 80/20 split: test accuracy, macro-F1 and the training run's wall time. Nothing here
   chooses a setting; the recipes were fixed before this ran (validation inside train only).
2. **Tiles**: the saved model scores the split's 420 test images as a tile set (``score.py
   --tiles``); the rate is score.py's own "featurize, predict and write" timer.
3. **Scene**: the saved model maps a NAIP scene in 64 px windows (``score.py --scenes``); the rate
   is its "read windows, featurize and predict" timer.

All on the same cores, one after another. ``ratios`` sets the one-pass model's rates against the
16-pass model's (``default_vs_frozen_d4_images_per_s``) and each model's scene rate against its
tile rate. ``docs/img/recipes.png`` is the accuracy-throughput chart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from scale import submit  # noqa: E402

from jobs.config.recipes import PASSES  # noqa: E402

WORK = ROOT / ".cache" / "bench" / "recipes"
RECIPES = ("one-pass", "frozen", "frozen-d4")
DEFAULT = "one-pass"


def copy_test_split(storage: Path, run_id: str, data: Path, out: Path) -> int:
    """The training run's test images, copied into one folder (score.py follows no link out of it)."""
    record = json.loads((storage / "runs" / run_id / "metrics.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    images = data / "images" if (data / "images").is_dir() else data
    for key in record["split"]["test_files"]:
        shutil.copyfile(images / key, out / key.replace("/", "__"))
    return len(record["split"]["test_files"])


def measure(name: str, data: Path, scene: Path, storage: Path, keep: bool) -> dict:
    model = "ucm_" + name.replace("-", "_")
    card = storage / "trainedmodels" / model / "card.json"
    reused = keep and card.is_file()
    if reused:  # trained by an earlier invocation into this storage: its record holds the figures
        run_id = json.loads(card.read_text())["run_id"]
        record = json.loads((storage / "runs" / run_id / "metrics.json").read_text())
        counts = record["counts"]
        trained = {
            "run_id": run_id,
            "accuracy": round(record["accuracy"], 4),
            "macro_f1": round(record["macro_f1"], 4),
            "n_train": counts["train"]["featurized"] + counts["val"]["featurized"],
            "n_test": counts["test"]["featurized"],
            "finetune": record.get("finetune"),
        }
        train_s = record["seconds"]
    else:
        started = time.time()
        trained, _ = submit(
            "train.py", "--dataset", "ucmerced", "--data", str(data), "--recipe", name,
            "--storage", str(storage), "--output_model_name", model,
        )  # fmt: skip
        train_s = time.time() - started
        record = json.loads((storage / "runs" / trained["run_id"] / "metrics.json").read_text())
    n = copy_test_split(storage, trained["run_id"], data, WORK / f"tiles_{model}")
    tiles, _ = submit("score.py", "--output_model_name", model, "--tiles", str(WORK / f"tiles_{model}"),
                      "--storage", str(storage))  # fmt: skip
    assert tiles["n_scored"] == n, tiles
    scene_run, _ = submit("score.py", "--output_model_name", model, "--scenes", str(scene), "--tile_px", "64",
                          "--storage", str(storage))  # fmt: skip
    row = {
        "recipe": name,
        "forward_passes_a_tile": PASSES[name],
        "test_accuracy": trained["accuracy"],
        "macro_f1": trained["macro_f1"],
        "n_train": trained["n_train"],
        "n_test": trained["n_test"],
        "train_wall_s": round(train_s, 1),
        "trained_in_this_run": not reused,
        "finetune": trained.get("finetune"),
        "precision": record["precision"],  # the one-pass recipe's auto: int8 where validation allows
        "precision_check": record.get("precision_check"),
        "tiles_images_per_s": tiles["images_per_s"],
        "scene_windows_per_s": scene_run["images_per_s"],
        "scene_windows": scene_run["n_tiles"],
    }
    print(json.dumps(row), flush=True)
    return row


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def chart(rows: list[dict], machine: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for r in rows:
        ax.scatter(r["tiles_images_per_s"], r["test_accuracy"], s=60, color="C3" if r["recipe"] == DEFAULT else "C0")
        label = f"{r['recipe']} ({r['forward_passes_a_tile']} pass{'es' if r['forward_passes_a_tile'] > 1 else ''})"
        ax.annotate(label, (r["tiles_images_per_s"], r["test_accuracy"]), textcoords="offset points", xytext=(6, 4))
    ax.set_xscale("log")
    rates = [r["tiles_images_per_s"] for r in rows]
    ax.set_xlim(min(rates) / 1.6, max(rates) * 2.2)  # room for the labels
    ticks = [t for t in (2, 5, 10, 20, 50, 100, 200, 500, 1000) if min(rates) / 1.6 <= t <= max(rates) * 2.2]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("images/s scored (featurize + predict), log scale")
    ax.set_ylabel("UC Merced test accuracy (seeded 80/20)")
    ax.set_title(f"Accuracy against scoring speed\n{machine}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT / ".cache" / "demo" / "ucmerced")
    p.add_argument("--scene", type=Path, default=ROOT / ".cache" / "demo" / "naip" / "m_4709963_se_14_1_20200831.tif")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    p.add_argument(
        "--keep",
        action="store_true",
        help="reuse models an earlier invocation trained into the bench's storage (their records give the "
        "training figures, marked trained_in_this_run false); scoring is always measured anew",
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "recipes.json")
    p.add_argument("--chart", type=Path, default=ROOT / "docs" / "img" / "recipes.png")
    args = p.parse_args()
    storage = WORK / "storage"
    if not args.keep:
        shutil.rmtree(storage, ignore_errors=True)  # one run: every figure from this run's models
    rows = [measure(name, args.data, args.scene, storage, args.keep) for name in args.recipes]
    by = {r["recipe"]: r for r in rows}
    ratios = {}
    if DEFAULT in by and "frozen-d4" in by:
        ratios["default_vs_frozen_d4_images_per_s"] = round(
            by[DEFAULT]["tiles_images_per_s"] / by["frozen-d4"]["tiles_images_per_s"], 3
        )
        ratios["default_vs_frozen_d4_scene_windows_per_s"] = round(
            by[DEFAULT]["scene_windows_per_s"] / by["frozen-d4"]["scene_windows_per_s"], 3
        )
    for r in rows:
        ratios[f"{r['recipe']}_scene_vs_tiles"] = round(r["scene_windows_per_s"] / r["tiles_images_per_s"], 3)
    machine = f"{os.cpu_count()} cores, {cpu_model()}, no GPU"
    report = {"machine": machine, "date": time.strftime("%Y-%m-%d"), "rows": rows, "ratios": ratios}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    chart(rows, machine, args.chart)
    print(json.dumps(ratios), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
