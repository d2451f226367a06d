"""The README's pictures, from the latest `make demo` outputs in the storage root.

    python bench/figures.py [--storage data] [--model aid_demo] [--out docs/img]

Writes ``<model>_confusion.png`` (the latest training run's test confusion matrix), and for
each of the model's last two scene runs ``naip_<year>_quicklook.png`` and
``naip_<year>_ndwi.png`` (its NDWI assessment), then ``naip_change.png`` (the latest change).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def confusion_picture(metrics: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    labels, m = metrics["labels"], np.asarray(metrics["confusion"], dtype=float)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(9, 8), dpi=100)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=70, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for (i, j), v in np.ndenumerate(m):
        if v:
            ax.text(j, i, int(v), ha="center", va="center", fontsize=6, color="w" if share[i, j] > 0.5 else "k")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(
        f"{metrics['model']} test split: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}"
    )
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main() -> int:
    from jobs.records import history as runs
    from jobs.storage import ASSESSMENTS, CHANGES, MAPS, RUNS, LocalStorage

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--storage", default="data")
    p.add_argument("--model", default="aid_demo")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = p.parse_args()
    root = LocalStorage(args.storage)
    args.out.mkdir(parents=True, exist_ok=True)
    trained = runs.select(runs.load(root), "train", args.model)
    confusion_picture(
        root.read_json(RUNS, trained[-1]["run_id"], "metrics.json"), args.out / f"{args.model}_confusion.png"
    )
    scene_runs = sorted(r for r in root.list_folders(MAPS, args.model) if root.exists(MAPS, args.model, r, "_SUCCESS"))
    for run in scene_runs[-2:]:
        year = (root.read_json(MAPS, args.model, run, "run.json").get("dates") or [run])[0][:4]
        quick = [f for f in root.list_files(MAPS, args.model, run) if f.endswith(".png") and "/" not in f]
        shutil.copy(root.uri(MAPS, args.model, run, quick[0]), args.out / f"naip_{year}_quicklook.png")
        if root.exists(ASSESSMENTS, args.model, run, "ndwi", "assessment.png"):
            shutil.copy(
                root.uri(ASSESSMENTS, args.model, run, "ndwi", "assessment.png"), args.out / f"naip_{year}_ndwi.png"
            )
    latest_change = sorted(root.list_folders(CHANGES, args.model))[-1]
    shutil.copy(root.uri(CHANGES, args.model, latest_change, "change.png"), args.out / "naip_change.png")
    print("\n".join(str(p) for p in sorted(args.out.glob("*.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
