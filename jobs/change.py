"""Land-use change between two scene scoring runs: area per class at each date and the
from → to transition matrix, in hectares.

    python -m jobs.change RUN_A RUN_B --model NAME [--storage ROOT]

Each class raster of run A (``maps/<model>/<run_a>/<scene>.tif``) is paired with every class
raster of run B in the same CRS whose footprint intersects it; B's classes are resampled onto
A's grid (``rasterio.warp.reproject``, nearest), so scenes of different dates, extents or grids
compare cell by cell. Cells that are nodata (rejected windows) at either date are left out of
the matrix and counted. Areas come from the grid's affine transform and the CRS's linear unit
(a projected CRS is needed: degrees have no fixed area; other scenes are skipped, and listed).
Writes ``change.json`` and
``change.png`` to ``changes/<model>/<run_a>__<run_b>/`` and prints one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from typing import Any

import numpy as np

from jobs import cli
from jobs.datasets import DatasetError
from jobs.maps.writer import NODATA
from jobs.names import check_name
from jobs.storage import CHANGES, MAPS, Storage, StorageError, open_storage

JOB = "change"


def class_rasters(storage: Storage, model: str, run: str) -> dict[str, bytes]:
    """The class rasters of a completed scene run, by scene."""
    if not storage.exists(MAPS, model, run, "_SUCCESS"):
        raise StorageError(f"no complete maps for run {run} of model {model} in {storage.uri(MAPS, model)}")
    names = [f for f in storage.list_files(MAPS, model, run) if "/" not in f and f.endswith(".tif")]
    return {n[: -len(".tif")]: storage.read_bytes(MAPS, model, run, n) for n in names}


def _open(data: bytes) -> tuple[np.ndarray, Any, Any, list[str]]:
    from rasterio.io import MemoryFile

    with MemoryFile(data) as mem, mem.open() as ds:
        return ds.read(1), ds.transform, ds.crs, json.loads(ds.tags()["CLASS_NAMES"])


def compare(a: dict[str, bytes], b: dict[str, bytes]) -> dict[str, Any]:
    """Areas and transitions over every overlapping (A scene, B scene) pair."""
    from rasterio.coords import BoundingBox, disjoint_bounds
    from rasterio.transform import array_bounds
    from rasterio.warp import Resampling, reproject

    opened_b = {k: _open(v) for k, v in b.items()}
    labels: list[str] = []
    area_a: dict[str, float] = {}
    area_b: dict[str, float] = {}
    moves: dict[tuple[str, str], float] = {}
    pairs, unpaired_ha, skipped = [], 0.0, []
    for scene_a, data in sorted(a.items()):
        grid_a, t_a, crs_a, labels_a = _open(data)
        if crs_a is None or not crs_a.is_projected:
            skipped.append({"scene": scene_a, "reason": f"areas need a projected CRS, the map has {crs_a or 'none'}"})
            continue
        cell_ha = abs(t_a.determinant) * crs_a.linear_units_factor[1] ** 2 / 10_000.0
        box_a = BoundingBox(*array_bounds(*grid_a.shape, t_a))
        for scene_b, (grid_b, t_b, crs_b, labels_b) in sorted(opened_b.items()):
            if crs_b != crs_a or disjoint_bounds(box_a, BoundingBox(*array_bounds(*grid_b.shape, t_b))):
                continue
            on_a = np.full(grid_a.shape, NODATA, dtype=np.uint8)
            reproject(grid_b, on_a, src_transform=t_b, src_crs=crs_b, dst_transform=t_a, dst_crs=crs_a,
                      src_nodata=NODATA, dst_nodata=NODATA, resampling=Resampling.nearest)  # fmt: skip
            both = (grid_a != NODATA) & (on_a != NODATA)
            pairs.append({"a": scene_a, "b": scene_b, "cells": int(both.sum()), "cell_ha": cell_ha})
            unpaired_ha += float(((grid_a != NODATA) & ~both).sum()) * cell_ha
            for i, j in zip(grid_a[both].tolist(), on_a[both].tolist(), strict=True):
                key = (labels_a[i], labels_b[j])
                moves[key] = moves.get(key, 0.0) + cell_ha
            for lab in (*labels_a, *labels_b):
                if lab not in labels:
                    labels.append(lab)
    if not pairs:
        why = "; ".join(f"{x['scene']}: {x['reason']}" for x in skipped[:3])
        raise DatasetError(
            f"the two runs share no ground: no class rasters in the same CRS overlap{'; ' + why if why else ''}"
        )
    labels.sort()
    for (fa, fb), ha in moves.items():
        area_a[fa] = area_a.get(fa, 0.0) + ha
        area_b[fb] = area_b.get(fb, 0.0) + ha
    matrix = [[round(moves.get((fa, fb), 0.0), 4) for fb in labels] for fa in labels]
    total = sum(area_a.values())
    return {
        "labels": labels,
        "area_ha": {
            "a": {k: round(area_a.get(k, 0.0), 4) for k in labels},
            "b": {k: round(area_b.get(k, 0.0), 4) for k in labels},
        },
        "transitions_ha": matrix,  # rows: class at A, columns: class at B
        "changed_ha": round(total - sum(moves.get((k, k), 0.0) for k in labels), 4),
        "compared_ha": round(total, 4),
        "nodata_at_either_date_ha": round(unpaired_ha, 4),
        "pairs": pairs,
        "skipped": skipped,
    }


def picture(result: dict[str, Any], run_a: str, run_b: str) -> bytes:
    """Area per class at both dates, and the transition matrix, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    labels = result["labels"]
    used = [i for i, k in enumerate(labels) if result["area_ha"]["a"][k] or result["area_ha"]["b"][k]]
    names = [labels[i] for i in used]
    m = np.asarray(result["transitions_ha"])[np.ix_(used, used)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6), dpi=100, gridspec_kw={"width_ratios": [1, 1.2]})
    y = np.arange(len(names))
    left.barh(y - 0.2, [result["area_ha"]["a"][k] for k in names], 0.4, label=run_a)
    left.barh(y + 0.2, [result["area_ha"]["b"][k] for k in names], 0.4, label=run_b)
    left.set_yticks(y, names)
    left.invert_yaxis()
    left.set_xlabel("hectares")
    left.legend(fontsize=8)
    left.set_title("area per class")
    right.imshow(m, cmap="viridis")
    right.set_xticks(y, names, rotation=60, ha="right")
    right.set_yticks(y, names)
    right.set_xlabel(f"class in {run_b}")
    right.set_ylabel(f"class in {run_a}")
    right.set_title(f"from → to (ha); changed {result['changed_ha']:.0f} of {result['compared_ha']:.0f} ha")
    for (i, j), v in np.ndenumerate(m):
        if v > 0:
            right.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="w" if v < m.max() / 2 else "k")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--model", required=True, help="the model both runs scored with")
    p.add_argument("--storage", default="data")

    def go() -> dict[str, Any]:
        args = p.parse_args(argv)
        for kind, value in (("model", args.model), ("run", args.run_a), ("run", args.run_b)):
            check_name(kind, value)
        storage = open_storage(args.storage)
        result = compare(class_rasters(storage, args.model, args.run_a), class_rasters(storage, args.model, args.run_b))
        result |= {"model": args.model, "run_a": args.run_a, "run_b": args.run_b}
        folder = (CHANGES, args.model, f"{args.run_a}__{args.run_b}")
        json_uri = storage.write_json(result, *folder, "change.json")
        png_uri = storage.write_bytes(picture(result, args.run_a, args.run_b), *folder, "change.png")
        return {
            "run_a": args.run_a,
            "run_b": args.run_b,
            "compared_ha": result["compared_ha"],
            "changed_ha": result["changed_ha"],
            "change_uri": json_uri,
            "picture_uri": png_uri,
        }

    return cli.run(JOB, go)


if __name__ == "__main__":
    sys.exit(main())
