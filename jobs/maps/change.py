"""Land-use change between two scene scoring runs: area per class at each date, the from → to
matrix in hectares, and, where both runs were assessed against NDWI, how sure the water change is.

The two runs are compared on one grid: the CRS most of run A's class rasters
(``maps/<model>/<run_a>/<scene>.tif``) are in, their cell size and the union of their footprints.
Each run's rasters are resampled onto it (``rasterio.warp.reproject``, nearest; B's in any CRS),
the first scene in name order winning where two of one run overlap (for B, those in the
grid's CRS first). So every piece of ground is
compared once, however many scenes cover it, the compared area never exceeds the ground, and a
run compared with itself changes nothing. Cells inside both runs' footprints that are nodata
(rejected windows) at either date are left out of the matrix and counted; ground mapped at one
date only is counted apart. Areas come from the grid's affine transform and the CRS's linear
unit (a projected CRS is needed: degrees have no fixed area; A's maps in a geographic or another
CRS are skipped, and listed).

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


def _grid(opened: dict[str, tuple[np.ndarray, Any, Any, list[str]]]) -> tuple[Any, Any, tuple[int, int], list]:
    """The common grid: the CRS most of A's maps are in (a projected one), the first such map's
    cell size, and the union of those maps' footprints. A's maps in another CRS are skipped and
    listed, so that no ground is compared twice and the grid stays the size of the ground."""
    from collections import Counter

    from rasterio.transform import array_bounds, from_origin

    skipped = [
        {"scene": s, "reason": f"areas need a projected CRS, the map has {crs or 'none'}"}
        for s, (_, _, crs, _) in opened.items()
        if crs is None or not crs.is_projected
    ]
    projected = {s: o for s, o in opened.items() if o[2] is not None and o[2].is_projected}
    if not projected:
        why = "; ".join(f"{x['scene']}: {x['reason']}" for x in skipped[:3])
        raise DatasetError(f"the two runs share no ground that can be measured: {why}")
    crs = Counter(o[2].to_string() for o in projected.values()).most_common(1)[0][0]
    skipped += [
        {"scene": s, "reason": f"compared on one grid in {crs}; this map is in {o[2].to_string()}"}
        for s, o in projected.items()
        if o[2].to_string() != crs
    ]
    members = [o for o in projected.values() if o[2].to_string() == crs]
    boxes = np.array([array_bounds(*g.shape, t) for g, t, _, _ in members])  # west, south, east, north
    res_x, res_y = abs(members[0][1].a), abs(members[0][1].e)
    west, south, east, north = boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()
    shape = (max(1, round((north - south) / res_y)), max(1, round((east - west) / res_x)))
    return members[0][2], from_origin(west, north, res_x, res_y), shape, skipped


def _mosaic(
    rasters: list[tuple[np.ndarray, Any, Any]], grid: tuple[Any, Any, tuple[int, int]], nodata: float
) -> tuple[np.ndarray, np.ndarray]:
    """``rasters`` resampled onto ``grid`` (nearest), the first valid value winning where they
    overlap, and the cells that any of them covers (nodata cells included)."""
    from rasterio.warp import Resampling, reproject

    crs, transform, shape = grid
    dtype = np.float32 if np.isnan(nodata) else np.uint8
    out = np.full(shape, nodata, dtype=dtype)
    covered = np.zeros(shape, dtype=bool)
    for values, t, c in rasters:
        on = np.full(shape, nodata, dtype=dtype)
        reproject(values, on, src_transform=t, src_crs=c, dst_transform=transform, dst_crs=crs,
                  src_nodata=nodata, dst_nodata=nodata, resampling=Resampling.nearest)  # fmt: skip
        inside = np.zeros(shape, dtype=np.uint8)
        reproject(np.ones(values.shape, dtype=np.uint8), inside, src_transform=t, src_crs=c, dst_transform=transform,
                  dst_crs=crs, src_nodata=0, dst_nodata=0, resampling=Resampling.nearest)  # fmt: skip
        valid = ~np.isnan(on) if np.isnan(nodata) else on != nodata
        fill = valid & (np.isnan(out) if np.isnan(nodata) else out == nodata)
        out[fill] = on[fill]
        covered |= inside.astype(bool)
    return out, covered


def _labelled(opened: dict[str, tuple[np.ndarray, Any, Any, list[str]]], labels: list[str]) -> list[tuple]:
    """Each map's cells as indices into the common ``labels`` (runs may list classes apart)."""
    out = []
    for values, t, crs, names in opened.values():
        lookup = np.full(256, NODATA, dtype=np.uint8)
        lookup[: len(names)] = [labels.index(n) for n in names]
        out.append((lookup[values], t, crs))
    return out


def compare(
    a: dict[str, bytes],
    b: dict[str, bytes],
    shares_a: dict[str, bytes] | None = None,
    shares_b: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Areas and transitions on one grid over the ground both runs mapped; the water check when
    both runs' NDWI shares are given.

    Each run's maps are first laid onto one common grid (see :func:`_grid`), so ground that two
    overlapping scenes of one run both cover is compared once, and a run compared with itself
    changes nothing."""
    opened_a = {k: _open(v) for k, v in sorted(a.items())}
    opened_b = {k: _open(v) for k, v in sorted(b.items())}
    crs, transform, shape, skipped = _grid(opened_a)
    grid = (crs, transform, shape)
    kept_a = {k: o for k, o in opened_a.items() if o[2] == crs}
    skipped += [
        {"scene": k, "reason": "no CRS: cannot be laid on the grid"} for k, o in opened_b.items() if o[2] is None
    ]
    # B's maps in the grid's own CRS first: where B's scenes overlap, the one not resampled wins.
    opened_b = dict(
        sorted(((k, o) for k, o in opened_b.items() if o[2] is not None), key=lambda kv: (kv[1][2] != crs, kv[0]))
    )
    labels = sorted({n for o in (*kept_a.values(), *opened_b.values()) for n in o[3]})
    map_a, in_a = _mosaic(_labelled(kept_a, labels), grid, NODATA)
    map_b, in_b = _mosaic(_labelled(opened_b, labels), grid, NODATA)
    both = (map_a != NODATA) & (map_b != NODATA)
    if not both.any():
        raise DatasetError(
            f"the two runs share no ground: run A's maps cover {_box(transform, shape)} in {crs}, "
            "and no map of run B has a scored window there"
        )
    cell_ha = abs(transform.determinant) * crs.linear_units_factor[1] ** 2 / 10_000.0
    k = len(labels)
    moves = np.bincount(map_a[both].astype(np.int64) * k + map_b[both], minlength=k * k).reshape(k, k) * cell_ha
    check = None
    if shares_a is not None and shares_b is not None:
        share_a, _ = _mosaic([_open(shares_a[s])[:3] for s in kept_a if s in shares_a], grid, np.nan)
        share_b, _ = _mosaic([_open(shares_b[s])[:3] for s in opened_b if s in shares_b], grid, np.nan)
        water = np.array([is_water(x) for x in labels] + [False] * (256 - k))
        ok = both & np.isfinite(share_a) & np.isfinite(share_b)
        if ok.any():
            area = np.full(int(ok.sum()), cell_ha)
            check = water_check([(water[map_a[ok]], water[map_b[ok]], share_a[ok], share_b[ok], area)])
    footprint = in_a & in_b
    return {
        "labels": labels,
        "area_ha": {
            "a": {lab: round(float(moves[i].sum()), 4) for i, lab in enumerate(labels)},
            "b": {lab: round(float(moves[:, i].sum()), 4) for i, lab in enumerate(labels)},
        },
        "transitions_ha": np.round(moves, 4).tolist(),
        "changed_ha": round(float(moves.sum() - np.trace(moves)), 4),
        "compared_ha": round(float(moves.sum()), 4),
        "nodata_at_either_date_ha": round(float((footprint & ~both).sum()) * cell_ha, 4),
        "mapped_at_one_date_only_ha": {
            "a": round(float(((map_a != NODATA) & ~in_b).sum()) * cell_ha, 4),
            "b": round(float(((map_b != NODATA) & ~in_a).sum()) * cell_ha, 4),
        },
        "grid": {"crs": crs.to_string(), "cell_ha": cell_ha, "shape": list(shape)},
        "scenes": {"a": list(kept_a), "b": list(opened_b)},
        "skipped": skipped,
        "water_check": check,
    }


def _box(transform: Any, shape: tuple[int, int]) -> str:
    from rasterio.transform import array_bounds

    west, south, east, north = array_bounds(*shape, transform)
    return f"({west:.0f}, {south:.0f}) - ({east:.0f}, {north:.0f})"


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
