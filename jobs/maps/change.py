"""Land-use change between two scene scoring runs: area per class at each date, the from → to
matrix in hectares, and, where both runs were assessed against NDWI, how sure the water change is.

Each class raster of run A (``maps/<model>/<run_a>/<scene>.tif``) is paired with every class
raster of run B in the same CRS whose footprint intersects it; B's classes are resampled onto
A's grid (``rasterio.warp.reproject``, nearest), so scenes of different dates, extents or grids
compare cell by cell. Cells that are nodata (rejected windows) at either date are left out of
the matrix and counted. Areas come from the grid's affine transform and the CRS's linear unit
(a projected CRS is needed: degrees have no fixed area; other scenes are skipped, and listed).

The water check: ``landuse-assess --reference ndwi`` leaves each window's NDWI water share as a
raster on the class raster's grid (``assessments/<model>/<run>/ndwi/<scene>.tif``). When both
runs have one, B's is resampled onto A's grid as its classes are, and every compared cell gets
a map change stratum (water → water, land → water, water → land, land → land: the map's water
classes at each date) and a reference one (NDWI water at each date). The stratified estimators
(:mod:`jobs.maps.assessment`) then give the area of each reference change with its 95 %
interval, and the net water change (gain − loss) with its interval, beside the mapped and the
NDWI-measured (pixel shares) net change.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from jobs.datasets import DatasetError
from jobs.maps import assessment, figures
from jobs.maps.palette import is_water, palette
from jobs.maps.writer import NODATA
from jobs.storage import ASSESSMENTS, MAPS, Storage, StorageError

STRATA = ("land → land", "land → water", "water → land", "water → water")
GAIN, LOSS = STRATA[1], STRATA[2]


def class_rasters(storage: Storage, model: str, run: str) -> dict[str, bytes]:
    """The class rasters of a completed scene run, by scene."""
    if not storage.exists(MAPS, model, run, "_SUCCESS"):
        raise StorageError(f"no complete maps for run {run} of model {model} in {storage.uri(MAPS, model)}")
    names = [f for f in storage.list_files(MAPS, model, run) if "/" not in f and f.endswith(".tif")]
    return {n[: -len(".tif")]: storage.read_bytes(MAPS, model, run, n) for n in names}


def water_shares(storage: Storage, model: str, run: str) -> dict[str, bytes] | None:
    """The NDWI water-share rasters of an assessed run, by scene; None when it was not assessed."""
    folder = (ASSESSMENTS, model, run, "ndwi")
    if not storage.exists(*folder, "assessment.json"):
        return None
    names = [f for f in storage.list_files(*folder) if "/" not in f and f.endswith(".tif")]
    return {n[: -len(".tif")]: storage.read_bytes(*folder, n) for n in names}


def run_about(storage: Storage, model: str, run: str) -> dict[str, Any]:
    """The scoring run's ``run.json`` (dates, warnings), or what little is known without it."""
    if storage.exists(MAPS, model, run, "run.json"):
        return storage.read_json(MAPS, model, run, "run.json")
    return {"run_id": run, "dates": [], "warnings": []}


def _open(data: bytes) -> tuple[np.ndarray, Any, Any, list[str]]:
    from rasterio.io import MemoryFile

    with MemoryFile(data) as mem, mem.open() as ds:
        tags = ds.tags()
        return ds.read(1), ds.transform, ds.crs, json.loads(tags["CLASS_NAMES"]) if "CLASS_NAMES" in tags else []


def compare(
    a: dict[str, bytes],
    b: dict[str, bytes],
    shares_a: dict[str, bytes] | None = None,
    shares_b: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Areas and transitions over every overlapping (A scene, B scene) pair; the water check
    when both runs' NDWI shares are given."""
    from rasterio.coords import BoundingBox, disjoint_bounds
    from rasterio.transform import array_bounds
    from rasterio.warp import Resampling, reproject

    opened_b = {k: _open(v) for k, v in b.items()}
    check = shares_a is not None and shares_b is not None
    labels: list[str] = []
    moves: dict[tuple[str, str], float] = {}
    pairs, unpaired_ha, skipped = [], 0.0, []
    cells: list[tuple[np.ndarray, ...]] = []  # per pair: water at A/B (map), shares at A/B, cell area
    for scene_a, data in sorted(a.items()):
        grid_a, t_a, crs_a, labels_a = _open(data)
        if crs_a is None or not crs_a.is_projected:
            skipped.append({"scene": scene_a, "reason": f"areas need a projected CRS, the map has {crs_a or 'none'}"})
            continue
        cell_ha = abs(t_a.determinant) * crs_a.linear_units_factor[1] ** 2 / 10_000.0
        box_a = BoundingBox(*array_bounds(*grid_a.shape, t_a))
        share_a = _open(shares_a[scene_a])[0] if check and scene_a in shares_a else None  # type: ignore[index]
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
            if share_a is not None and scene_b in (shares_b or {}):
                grid_sb, t_sb, _, _ = _open(shares_b[scene_b])  # type: ignore[index]
                share_b = np.full(grid_a.shape, np.nan, dtype=np.float32)
                reproject(grid_sb, share_b, src_transform=t_sb, src_crs=crs_b, dst_transform=t_a, dst_crs=crs_a,
                          src_nodata=np.nan, dst_nodata=np.nan, resampling=Resampling.nearest)  # fmt: skip
                water_a = np.isin(grid_a, [i for i, x in enumerate(labels_a) if is_water(x)])
                water_b = np.isin(on_a, [i for i, x in enumerate(labels_b) if is_water(x)])
                ok = both & np.isfinite(share_a) & np.isfinite(share_b)
                cells.append((water_a[ok], water_b[ok], share_a[ok], share_b[ok], np.full(int(ok.sum()), cell_ha)))
    if not pairs:
        why = "; ".join(f"{x['scene']}: {x['reason']}" for x in skipped[:3])
        raise DatasetError(
            f"the two runs share no ground: no class rasters in the same CRS overlap{'; ' + why if why else ''}"
        )
    labels.sort()
    area_a: dict[str, float] = {}
    area_b: dict[str, float] = {}
    for (fa, fb), ha in moves.items():
        area_a[fa] = area_a.get(fa, 0.0) + ha
        area_b[fb] = area_b.get(fb, 0.0) + ha
    total = sum(area_a.values())
    return {
        "labels": labels,
        "area_ha": {
            "a": {k: round(area_a.get(k, 0.0), 4) for k in labels},
            "b": {k: round(area_b.get(k, 0.0), 4) for k in labels},
        },
        "transitions_ha": [[round(moves.get((fa, fb), 0.0), 4) for fb in labels] for fa in labels],
        "changed_ha": round(total - sum(moves.get((k, k), 0.0) for k in labels), 4),
        "compared_ha": round(total, 4),
        "nodata_at_either_date_ha": round(unpaired_ha, 4),
        "pairs": pairs,
        "skipped": skipped,
        "water_check": water_check(cells) if cells else None,
    }


def water_check(cells: list[tuple[np.ndarray, ...]]) -> dict[str, Any]:
    """The water change, assessed against NDWI at both dates (see the module doc)."""
    water_a, water_b, share_a, share_b, area = (np.concatenate(parts) for parts in zip(*cells, strict=True))
    mapped = 2 * water_a.astype(int) + water_b.astype(int)  # index into STRATA
    ref = 2 * (share_a >= 0.5).astype(int) + (share_b >= 0.5).astype(int)
    counts = np.zeros((4, 4), dtype=np.int64)
    np.add.at(counts, (mapped, ref), 1)
    mapped_area = np.bincount(mapped, weights=area, minlength=4)
    estimate = assessment.estimate(list(STRATA), counts, mapped_area, "ha")
    net = assessment.contrast(list(STRATA), counts, mapped_area, {GAIN: 1.0, LOSS: -1.0})
    water_ha_a = assessment.contrast(list(STRATA), counts, mapped_area, {STRATA[2]: 1.0, STRATA[3]: 1.0})
    water_ha_b = assessment.contrast(list(STRATA), counts, mapped_area, {STRATA[1]: 1.0, STRATA[3]: 1.0})
    ndwi_a, ndwi_b = float((share_a * area).sum()), float((share_b * area).sum())
    map_a, map_b = float(area[water_a].sum()), float(area[water_b].sum())
    ndwi_net = ndwi_b - ndwi_a
    return {
        "reference": "NDWI > 0 at both dates (landuse-assess --reference ndwi)",
        "strata": list(STRATA),
        "confusion": estimate["confusion"],
        "overall_accuracy": estimate["overall_accuracy"],
        "per_stratum": estimate["per_class"],
        "water_ha": {
            "mapped": {"a": round(map_a, 4), "b": round(map_b, 4)},
            "ndwi_measured": {"a": round(ndwi_a, 4), "b": round(ndwi_b, 4)},
            "estimated": {"a": water_ha_a, "b": water_ha_b},
        },
        "net_water_change_ha": {
            "mapped": round(map_b - map_a, 4),
            "ndwi_measured": round(ndwi_net, 4),
            "estimated": net,
            "mapped_vs_ndwi": round((map_b - map_a) / ndwi_net, 4) if ndwi_net else None,
        },
        "warnings": estimate["warnings"],
    }


def picture(result: dict[str, Any], name_a: str, name_b: str) -> bytes:
    """Area per class at both dates, the transition matrix and, with a water check, the water
    area at both dates with its intervals, as one PNG."""
    plt = figures.pyplot()
    labels = result["labels"]
    used = [i for i, k in enumerate(labels) if result["area_ha"]["a"][k] or result["area_ha"]["b"][k]]
    names = [labels[i] for i in used]
    colours = palette(labels)
    m = np.asarray(result["transitions_ha"])[np.ix_(used, used)]
    check = result.get("water_check")
    panels = 3 if check else 2
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 6), dpi=100)
    left, right = axes[0], axes[1]
    y = np.arange(len(names))
    rgb = [np.asarray(colours[k]) / 255 for k in names]
    left.barh(y - 0.2, [result["area_ha"]["a"][k] for k in names], 0.4, color=rgb, alpha=0.5, label=name_a)
    left.barh(y + 0.2, [result["area_ha"]["b"][k] for k in names], 0.4, color=rgb, label=name_b)
    left.set_yticks(y, names)
    left.invert_yaxis()
    left.set_xlabel("hectares")
    left.legend(fontsize=8)
    left.set_title(f"area per class: {name_a} (pale), {name_b}")
    right.imshow(m, cmap="viridis")
    right.set_xticks(y, names, rotation=60, ha="right")
    right.set_yticks(y, names)
    right.set_xlabel(f"class in {name_b}")
    right.set_ylabel(f"class in {name_a}")
    right.set_title(f"from → to (ha); changed {result['changed_ha']:.0f} of {result['compared_ha']:.0f} ha")
    for (i, j), v in np.ndenumerate(m):
        if v > 0:
            right.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="w" if v < m.max() / 2 else "k")
    if check:
        ax = axes[2]
        w = check["water_ha"]
        x = np.arange(2)
        ax.bar(x - 0.25, [w["mapped"]["a"], w["mapped"]["b"]], 0.25, label="mapped", color="#9ab")
        est = [w["estimated"]["a"], w["estimated"]["b"]]
        ax.bar(x, [e["value"] for e in est], 0.25, yerr=[e["ci95"] or 0 for e in est], capsize=4,
               label="estimated, 95% interval", color="#3570b0")  # fmt: skip
        ax.bar(x + 0.25, [w["ndwi_measured"]["a"], w["ndwi_measured"]["b"]], 0.25, label="NDWI", color="#123")
        ax.set_xticks(x, [name_a, name_b])
        ax.set_ylabel("hectares of open water")
        ax.legend(fontsize=8)
        net = check["net_water_change_ha"]
        ci = net["estimated"]["ci95"]
        ax.set_title(
            f"water {net['estimated']['value']:+.0f} ha{f' ± {ci:.0f}' if ci is not None else ''} (95%); "
            f"NDWI {net['ndwi_measured']:+.0f}, map {net['mapped']:+.0f}"
        )
    notes = result.get("warnings") or []
    if notes:
        fig.suptitle("\n".join(f"warning: {n}" for n in notes[:3]), color="#b00", fontsize=9)
    fig.tight_layout()
    return figures.png(fig)
