"""How the aerial defaults were chosen: each technique's accuracy and cost, on UC Merced's train part.

    python bench/aerial_recipe.py [--data ../shared/datasets/ucmerced] [--out bench/out/aerial_recipe.json]

The seeded, stratified 80/20 split is the one ``jobs/train.py`` makes (:mod:`jobs.datasets.splits`,
seed 42); only its *train* part is used here: every technique is scored by 5-fold stratified
cross-validation inside it (multinomial logistic regression on standardized features, its
regularization picked per technique by an inner sweep), so the test part chooses nothing.
Features come from each backbone's trunk exported to ONNX and run by onnxruntime; each variant
(input size, rotation/flip, grid) is computed once and combined afterwards, and each
technique's cost is the onnxruntime forward passes it needs per image, timed here.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BACKBONES = ("efficientnet_lite0", "mobilenet_v2")
D4 = [(k, flip) for flip in (False, True) for k in range(4)]  # rot90 k times, then (maybe) a flip


def trunk_onnx(name: str) -> bytes:
    """The backbone's last feature map (N x C x h x w) for any input size, as ONNX."""
    import torch

    from featurizers.export import _build
    from featurizers.zoo import get_entry

    module, _, _, _ = _build(get_entry(name), None)
    module.eval()
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            module,
            (torch.zeros(1, 3, 224, 224),),
            buf,
            input_names=["image"],
            output_names=["map"],
            dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "map": {0: "n", 2: "h", 3: "w"}},
            opset_version=14,
            dynamo=False,
        )
    return buf.getvalue()


def load(path: str, size: int, crop: int) -> np.ndarray:
    """RGB in [0, 1], shorter side resized to ``size`` (PIL bilinear), centre ``crop``, HWC float32."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = size / min(w, h)
    img = img.resize((round(w * s), round(h * s)), Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = round((w - crop) / 2), round((h - crop) / 2)
    return np.asarray(img.crop((left, top, left + crop, top + crop)), dtype=np.float32) / 255.0


def features(paths: list[str], cache: Path) -> dict[str, np.ndarray]:
    """Pooled features per variant ``<backbone>/<size>/<d4 index>/<grid>``: N x D arrays."""
    import onnxruntime as ort

    from featurizers.zoo import get_entry

    out: dict[str, np.ndarray] = {}
    timings: dict[str, float] = {}
    sizes = {224: (256, 224), 256: (256, 256), 320: (320, 320)}  # name: (resize, crop)
    for name in BACKBONES:
        entry = get_entry(name)
        mean = np.asarray(entry.preprocessing.mean, np.float32)
        std = np.asarray(entry.preprocessing.std, np.float32)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = os.cpu_count() or 1
        sess = ort.InferenceSession(trunk_onnx(name), opts, providers=["CPUExecutionProvider"])
        for size, (resize, crop) in sizes.items():
            variants = range(len(D4)) if size in (224, 256) else [0]
            key0 = f"{name}/{size}"
            if all((cache / f"{key0}-{v}-g1.npy").exists() for v in variants):
                for v in variants:
                    for g in (1, 2):
                        out[f"{key0}/{v}/{g}"] = np.load(cache / f"{key0}-{v}-g{g}.npy")
                timings[key0] = json.loads((cache / f"{key0}-seconds.json").read_text())["seconds_per_pass"]
                continue
            images = np.stack([(load(p, resize, crop) - mean) / std for p in paths]).transpose(0, 3, 1, 2)
            spent = 0.0
            for v in variants:
                k, flip = D4[v]
                x = np.rot90(images, k, axes=(2, 3))
                x = np.ascontiguousarray(x[:, :, :, ::-1] if flip else x)
                maps = []
                t0 = time.perf_counter()
                for i in range(0, len(x), 16):
                    maps.append(sess.run(None, {"image": x[i : i + 16]})[0])
                spent += time.perf_counter() - t0
                m = np.concatenate(maps)
                h, w = m.shape[2:]
                g1 = m.mean(axis=(2, 3))
                g2 = np.stack(
                    [m[:, :, r0:r1, c0:c1].mean(axis=(2, 3)) for r0, r1 in _cells(h) for c0, c1 in _cells(w)], axis=2
                ).reshape(len(m), -1)
                cache.joinpath(name).mkdir(parents=True, exist_ok=True)
                np.save(cache / f"{key0}-{v}-g1.npy", g1)
                np.save(cache / f"{key0}-{v}-g2.npy", g2)
                out[f"{key0}/{v}/1"], out[f"{key0}/{v}/2"] = g1, g2
                print(f"  {key0} variant {v}: {len(x) / (time.perf_counter() - t0):.1f} img/s", file=sys.stderr)
            timings[key0] = spent / len(variants) / len(paths)
            (cache / f"{key0}-seconds.json").write_text(json.dumps({"seconds_per_pass": timings[key0]}))
    out["_seconds"] = np.asarray([0.0])
    features.timings = timings  # type: ignore[attr-defined]
    return out


def _cells(n: int) -> list[tuple[int, int]]:
    return [((i * n) // 2, -(-((i + 1) * n) // 2)) for i in range(2)]


def cv_accuracy(x: np.ndarray, y: np.ndarray, seed: int, aug: np.ndarray | None = None) -> tuple[float, float]:
    """Mean 5-fold accuracy and the regularization picked (inner sweep, best mean)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = list(StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y))
    best = (-1.0, 0.0)
    for c in (0.01, 0.1, 1.0):
        accs = []
        for tr, va in folds:
            xt, yt = x[tr], y[tr]
            if aug is not None:  # D4 copies of the training images as extra rows
                xt, yt = np.concatenate([a[tr] for a in aug]), np.tile(yt, len(aug))
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=300))
            clf.fit(xt, yt)
            accs.append(float((clf.predict(x[va]) == y[va]).mean()))
        if np.mean(accs) > best[0]:
            best = (float(np.mean(accs)), c)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default="../shared/datasets/ucmerced")
    p.add_argument("--out", default="bench/out/aerial_recipe.json")
    p.add_argument("--cache", default=".cache/aerial_recipe")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()

    from jobs.datasets import folders, splits, ucmerced
    from jobs.runtime.spark import get_spark
    from jobs.storage import LocalStorage

    spark = get_spark("aerial-recipe")
    location = LocalStorage(ucmerced.locate(args.data))
    rows = splits.assign(
        folders.names_frame(spark, folders.uris(location, folders.class_files(location))),
        folders.relative_key(location),
        0.8,
        0.0,
        args.seed,
    )
    train = sorted((r["path"], r["label"]) for r in rows.where("split = 'train'").collect())  # 1,680 names
    spark.stop()
    paths = [p for p, _ in train]
    classes = sorted({lab for _, lab in train})
    y = np.asarray([classes.index(lab) for _, lab in train])
    print(f"{len(paths)} training images, {len(classes)} classes", file=sys.stderr)

    f = features(paths, Path(args.cache))
    cost = features.timings  # type: ignore[attr-defined]

    def feat(backbones: tuple[str, ...], size: int, variants: list[int], grid: int = 1) -> np.ndarray:
        return np.concatenate(
            [np.mean([f[f"{b}/{size}/{v}/{grid}"] for v in variants], axis=0) for b in backbones], axis=1
        )

    both, lite, mnv2 = BACKBONES, BACKBONES[:1], BACKBONES[1:]
    d4 = list(range(8))

    def passes(backbones: tuple[str, ...], size: int, n: int) -> float:
        return sum(cost[f"{b}/{size}"] for b in backbones) * n

    techniques = {
        "Lite0, 224 crop (zoo default)": (feat(lite, 224, [0]), passes(lite, 224, 1), None),
        "MobileNetV2, 224 crop": (feat(mnv2, 224, [0]), passes(mnv2, 224, 1), None),
        "Lite0, whole 256 image": (feat(lite, 256, [0]), passes(lite, 256, 1), None),
        "Lite0, 2x2 grid": (feat(lite, 224, [0], 2), passes(lite, 224, 1), None),
        "Lite0, multi-scale 224+320 (mean)": (
            (feat(lite, 224, [0]) + feat(lite, 320, [0])) / 2,
            passes(lite, 224, 1) + passes(lite, 320, 1),
            None,
        ),
        "Lite0, 256, D4 mean": (feat(lite, 256, d4), passes(lite, 256, 8), None),
        "Lite0 + MobileNetV2, 256": (feat(both, 256, [0]), passes(both, 256, 1), None),
        "Lite0 + MobileNetV2, 224 crop": (feat(both, 224, [0]), passes(both, 224, 1), None),
        "Lite0 + MobileNetV2, 256, D4 as train augmentation": (
            feat(both, 256, [0]),
            passes(both, 256, 1),
            [feat(both, 256, [v]) for v in d4],
        ),
        "Lite0 + MobileNetV2, 256, rot180+flip mean (4 of D4)": (
            feat(both, 256, [0, 2, 4, 6]),
            passes(both, 256, 4),
            None,
        ),
        "Lite0 + MobileNetV2, 256, D4 mean": (feat(both, 256, d4), passes(both, 256, 8), None),
        "Lite0 + MobileNetV2, 224 crop, D4 mean": (feat(both, 224, d4), passes(both, 224, 8), None),
        "Lite0, 224 crop, D4 mean": (feat(lite, 224, d4), passes(lite, 224, 8), None),
    }
    results = []
    for name, (x, seconds, aug) in techniques.items():
        acc, c = cv_accuracy(x, y, args.seed, aug)
        results.append(
            {
                "technique": name,
                "cv_accuracy": round(acc, 4),
                "C": c,
                "features": int(x.shape[1]),
                "onnx_images_per_s": round(1.0 / seconds, 1),
            }
        )
        print(f"{name:58s} {acc:.4f}  C={c:<5} {x.shape[1]:5d}-d  {1.0 / seconds:6.1f} img/s", file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "data": "UC Merced, train part of the seeded 80/20 split (seed 42): 5-fold CV",
                "n_images": len(paths),
                "machine": f"{os.cpu_count()} cores",
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
