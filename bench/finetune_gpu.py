"""Fine-tunes on a GPU machine that has torch but no JVM: the same ``train_process`` that
``jobs/finetune.py`` hands to TorchDistributor, run as one process on one GPU.

    python bench/finetune_gpu.py manifest SPLIT.json MANIFEST.json   # here, from the seeded split
    python bench/finetune_gpu.py train MANIFEST.json OUT_DIR IMAGE_DIR [IMAGE_DIR …]   # on the GPU
    python bench/finetune_gpu.py merge OUT_DIR/finetuned.pt BASE.pth WEIGHTS.pt   # here again

SPLIT.json holds the rows of the same seeded split ``jobs/finetune.py`` makes
(``labelled.image_names``); MANIFEST names the training and validation images relative to the
image folders. OUT_DIR gets ``finetuned.pt`` (the network's state dict minus the untouched
ImageNet classifier, which ``merge`` puts back) and ``finetune.json`` (curve, best epoch,
timings). Then the ordinary pipeline runs on Spark: ``jobs/train.py --weights WEIGHTS.pt``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from featurizers.finetune import FinetuneSpec, train_process

UNUSED_HEAD = "_fc."  # EfficientNet's ImageNet classifier: not trained, not part of the features


class FolderReader:
    """Reads a manifest name from the first image folder that holds it."""

    def __init__(self, roots: list[str]) -> None:
        self.roots = roots

    def read(self, name: str) -> bytes:
        for root in self.roots:
            path = os.path.join(root, name)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    return f.read()
        raise FileNotFoundError(name)


def write_manifest(split_json: str, out: str, settings: dict[str, Any]) -> None:
    """From ``{"rows": [[path, label, split, key], …]}``: classes and (key, class index) per split."""
    rows = json.load(open(split_json))["rows"]
    classes = sorted({r[1] for r in rows if r[2] in ("train", "val")})
    index = {c: i for i, c in enumerate(classes)}
    manifest = {s: [(r[3], index[r[1]]) for r in rows if r[2] == s] for s in ("train", "val")}
    json.dump({"classes": classes, **manifest, "settings": settings}, open(out, "w"))


def merge(trunk_pt: str, base_pt: str, out: str) -> None:
    """Puts the untouched classifier back, so the file loads as a whole EfficientNet state dict."""
    import torch

    state = torch.load(trunk_pt, map_location="cpu", weights_only=True)
    base = torch.load(base_pt, map_location="cpu", weights_only=True)
    state.update({k: v for k, v in base.items() if k.startswith(UNUSED_HEAD)})
    torch.save(state, out)


SETTINGS = {"backbone": "efficientnet_lite0", "image_size": 256, "epochs": 25, "lr": 1e-3}
SETTINGS |= {"trainable_blocks": -1, "batch_size": 32, "seed": 42}  # one GPU: the 2 x 16 of the CPU default


def train(manifest: str, out_dir: str, images: list[str]) -> None:
    import torch

    m = json.load(open(manifest))
    s = m["settings"]
    spec = FinetuneSpec(
        backbone=s["backbone"],
        classes=m["classes"],
        train=[tuple(x) for x in m["train"]],
        val=[tuple(x) for x in m["val"]],
        reader=FolderReader(images),
        image_size=s["image_size"],
        epochs=s["epochs"],
        lr=s["lr"],
        trainable_blocks=s["trainable_blocks"],
        batch_size=s["batch_size"],
        seed=s["seed"],
        use_gpu=True,
    )
    out = train_process(spec)
    assert out is not None
    state = torch.load(io.BytesIO(out.pop("state")), weights_only=True)
    os.makedirs(out_dir, exist_ok=True)
    trunk = {k: v for k, v in state.items() if not k.startswith(UNUSED_HEAD)}
    torch.save(trunk, os.path.join(out_dir, "finetuned.pt"))
    out["gpu"] = torch.cuda.get_device_name(0)
    json.dump(out, open(os.path.join(out_dir, "finetune.json"), "w"), indent=1)
    print(json.dumps({k: v for k, v in out.items() if k != "curve"}))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=["manifest", "train", "merge"])
    p.add_argument("args", nargs="+")
    a = p.parse_args()
    if a.step == "manifest":
        write_manifest(a.args[0], a.args[1], SETTINGS)
    elif a.step == "train":
        train(a.args[0], a.args[1], a.args[2:])
    else:
        merge(a.args[0], a.args[1], a.args[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
