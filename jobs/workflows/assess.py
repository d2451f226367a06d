"""A scoring run's maps against a reference: what ``landuse-assess`` runs.

The map's windows come from the run's prediction table (the class each map shows: the smoothed
one where the run smoothed); scene headers from its ``scene_index``. Executors compute each
window's reference (:mod:`jobs.maps.reference`), one task per scene; the driver gets the
confusion counts (classes x classes) and the mapped area per class, and estimates accuracy and
area (:mod:`jobs.maps.assessment`). Written to ``assessments/<model>/<run>/<reference>/``:
``assessment.json`` (with ``by_confidence``: agreement by the map's own probability),
``assessment.png`` (confusion matrix, area with intervals, agreement by probability),
``windows/`` (Parquet: each window's map class, probability, reference and water share) and,
for ``ndwi``, ``<scene>.tif``: each window's water share on the class raster's grid, which
``landuse-change`` pairs across dates.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.datasets import DatasetError
from jobs.datasets.landcover import Crosswalk
from jobs.maps import assessment, figures, reference
from jobs.maps.palette import is_water
from jobs.maps.writer import grid_profile, value_grid
from jobs.predictions import calibration
from jobs.records import history
from jobs.runtime.spark import say
from jobs.scenes import grids
from jobs.scenes import labels as labels_io
from jobs.storage import ASSESSMENTS, MAPS, PREDICTIONS, SUCCESS, Storage, StorageError, open_storage

JOB = "assess"
NDWI = "ndwi"
HA = 10_000.0


def map_windows(spark: SparkSession, storage: Storage, model: str, run: str) -> tuple[DataFrame, pd.DataFrame]:
    """The run's scored windows (``scene_id, row, col, map_label, probability``) and its scene headers."""
    if not storage.exists(MAPS, model, run, SUCCESS):
        raise StorageError(f"no complete maps for run {run} of model {model} in {storage.uri(MAPS, model)}")
    scenes = storage.read_frame(MAPS, model, run, "scene_index")
    scenes = scenes[scenes["scene_reject"].isna()].reset_index(drop=True)
    table = storage.read_table(spark, PREDICTIONS, model, run)
    label = F.col("smoothed_label") if "smoothed_label" in table.columns else F.col("predicted_label")
    windows = table.where(label.isNotNull()).select("scene_id", "row", "col", label.alias("map_label"), "probability")
    return windows, scenes


def cell_area(scene: pd.Series) -> tuple[float, str]:
    """One window's area: hectares in a projected CRS; else 1 (a window), unit ``windows``."""
    from rasterio.crs import CRS

    if not scene["crs"]:
        return 1.0, "windows"
    crs = CRS.from_wkt(scene["crs"])
    if not crs.is_projected:
        return 1.0, "windows"
    unit = crs.linear_units_factor[1]
    pixel = abs(grids.scene_transform(scene["transform"]).determinant) * unit**2
    return pixel * int(scene["tile_px"]) ** 2 / HA, "ha"


def assess_run(
    spark: SparkSession,
    storage: Storage,
    model: str,
    run: str,
    spec: str,
    crosswalk: Crosswalk | None,
    water_classes: Sequence[str] | None,
    green_band: int = 2,
    nir_band: int = 4,
) -> dict[str, Any]:
    """Assesses scoring run ``run`` (an id, or the date of its scenes) against ``spec``, and
    records the assessment in the run history."""
    started = time.time()
    run = history.resolve_run(storage, model, run)
    windows, scenes = map_windows(spark, storage, model, run)
    legend = storage.read_json(MAPS, model, run, "legend.json")["labels"]
    about = storage.read_json(MAPS, model, run, "run.json") if storage.exists(MAPS, model, run, "run.json") else {}
    areas = {str(s["scene_id"]): cell_area(s) for _, s in scenes.iterrows()}
    units = {u for _, u in areas.values()}
    unit = "ha" if units == {"ha"} else "windows"
    info = F.broadcast(
        spark.createDataFrame(
            scenes[["scene_id", "scene_path", "crs", "tile_px", "width", "height"]].assign(
                transform=[[float(v) for v in t] for t in scenes["transform"]],
                cell=[areas[str(s)][0] if unit == "ha" else 1.0 for s in scenes["scene_id"]],
            )
        )
    )
    rows = windows.join(info, "scene_id")
    if spec == NDWI:
        water = list(water_classes) if water_classes else [c for c in legend if is_water(c)]
        unknown = sorted(set(water) - set(legend))
        if unknown or not water:
            raise DatasetError(
                f"water classes {', '.join(unknown) or '(none)'}: not among the model's classes ({', '.join(legend)})"
            )
        short = [s["scene_id"] for _, s in scenes.iterrows() if int(s["band_count"]) < max(green_band, nir_band)]
        if short:
            raise DatasetError(f"scene {short[0]} has no band {max(green_band, nir_band)}: NDWI needs green and NIR")
        reader = _reader(str(scenes["scene_path"].iloc[0]), spark)
        fn = reference.ndwi_reference(reader, green_band, nir_band)
        name, kind = NDWI, {"kind": "ndwi", "green_band": green_band, "nir_band": nir_band, "water_classes": water}
        collapse = F.when(F.col("map_label").isin(water), reference.WATER).otherwise(reference.LAND)
        rows = rows.withColumn("map_label", collapse)
        labels = [reference.LAND, reference.WATER]
    elif crosswalk is not None:
        label_uri, label_reader, _ = labels_io.open_label_raster(spec, spark)
        common = set(crosswalk.names) & set(legend)
        if not common:
            raise DatasetError(
                f"reference {spec} ({crosswalk.title}) shares no class with the map: "
                f"its {', '.join(crosswalk.names[:6])} against the map's {', '.join(legend[:6])}"
            )
        fn = reference.raster_reference(label_uri, label_reader, crosswalk)
        name = f"raster-{Path(spec).stem}"
        kind = {"kind": "raster", "uri": label_uri, "classes": crosswalk.to_json()}
        labels = sorted(set(legend) | set(crosswalk.names))
    else:
        points = _assess_points(spark, storage, model, run, spec, windows, scenes, areas, unit, legend, about)
        return history.recorded(storage, "assess", points, started)
    judged = rows.groupBy("scene_id").applyInPandas(
        lambda w: fn(w).assign(cell=w["cell"].to_numpy(), probability=w["probability"].to_numpy()),
        reference.WINDOWS + ", cell double, probability double",
    )
    folder = (ASSESSMENTS, model, run, name)
    storage.write_table(judged, *folder, "windows")
    table = storage.read_frame(*folder, "windows")
    if spec == NDWI:
        _write_share_rasters(storage, folder, table, scenes)
    result = _summarize(table, labels, unit)
    result["by_confidence"] = by_confidence(table)
    result |= {"model": model, "run": run, "reference": kind, "dates": about.get("dates", [])}
    result["warnings"] = about.get("warnings", []) + result["warnings"] + _surer_than_right(result)
    if spec == NDWI:
        result["ndwi"] = ndwi_figures(table, unit)
    storage.write_json(result, *folder, "assessment.json")
    storage.write_bytes(picture(result), *folder, "assessment.png")
    say(JOB, f"overall accuracy {result['overall_accuracy']['value']:.3f} on {result['n']} windows")
    return history.recorded(storage, "assess", _brief(result, storage.uri(*folder)), started)


def _summarize(table: pd.DataFrame, labels: list[str], unit: str) -> dict[str, Any]:
    index = {c: i for i, c in enumerate(labels)}
    mapped = np.zeros(len(labels))
    for cls, area in table.groupby("map_label")["cell"].sum().items():
        mapped[index[cls]] += area
    judged = table[table["reference"].notna() & table["reference"].isin(labels)]
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for (m, r), n in judged.groupby(["map_label", "reference"]).size().items():
        counts[index[m], index[r]] += n
    result = assessment.estimate(labels, counts, mapped, unit)
    result["n_windows"] = len(table)
    result["n_without_reference"] = int(len(table) - len(judged))
    result["area_unit"] = unit
    return result


def by_confidence(table: pd.DataFrame) -> dict[str, Any] | None:
    """The map's agreement with the reference among windows grouped by the map's own
    probability (of each window's prediction): whether "how sure" reads as "how right" on this
    scene, where the training split's calibration may not carry."""
    judged = table[table["reference"].notna()]
    return calibration.frame_reliability(judged["probability"], judged["map_label"] == judged["reference"])


def _surer_than_right(result: dict[str, Any]) -> list[str]:
    """The warning, if any, that the map's probability overstates its agreement here."""
    advice = "on these scenes the confidence raster says how sure the model is, not how right the map is"
    said = calibration.overconfidence(result["by_confidence"], "windows mapped", "agree with the reference in", advice)
    return [said] if said else []


def ndwi_figures(table: pd.DataFrame, unit: str) -> dict[str, Any]:
    """The checks any 4-band scene gives of its own map: water recall on windows at least half
    water, false water on windows with almost none, and the water area NDWI itself measures."""
    ok = table[table["water_share"].notna()]
    mapped_water = ok["map_label"] == reference.WATER
    wet = ok["water_share"] >= reference.NDWI_WATER_SHARE
    dry = ok["water_share"] < reference.ALMOST_DRY
    return {
        "windows_at_least_half_water": int(wet.sum()),
        "water_recall_at_least_half_water": round(float(mapped_water[wet].mean()), 4) if wet.any() else None,
        "windows_almost_no_water": int(dry.sum()),
        "almost_dry_share": reference.ALMOST_DRY,
        "false_water_almost_no_water": round(float(mapped_water[dry].mean()), 4) if dry.any() else None,
        f"ndwi_water_{unit}": round(float((ok["water_share"] * ok["valid"] * ok["cell"]).sum()), 4),
        f"mapped_water_{unit}": round(float(ok.loc[mapped_water, "cell"].sum()), 4),
    }


def _write_share_rasters(storage: Storage, folder: tuple[str, ...], table: pd.DataFrame, scenes: pd.DataFrame) -> None:
    from rasterio.io import MemoryFile

    for _, s in scenes.iterrows():
        grid = value_grid(table[table["scene_id"] == s["scene_id"]], s, "water_share")
        with MemoryFile() as mem:
            with mem.open(**grid_profile(grid, s, np.nan)) as dst:
                dst.write(grid, 1)
                dst.set_band_description(1, "NDWI water share of each window (NDWI > 0)")
            storage.write_bytes(bytes(mem.read()), *folder, f"{s['scene_id']}.tif")


def _assess_points(
    spark: SparkSession,
    storage: Storage,
    model: str,
    run: str,
    spec: str,
    windows: DataFrame,
    scenes: pd.DataFrame,
    areas: dict[str, tuple[float, str]],
    unit: str,
    legend: list[str],
    about: dict[str, Any],
) -> dict[str, Any]:
    points = read_points(spec)
    common = set(points["class"].astype(str)) & set(legend)
    if not common:
        raise DatasetError(
            f"reference {spec} shares no class with the map: its {', '.join(sorted(set(points['class']))[:6])} "
            f"against the map's {', '.join(legend[:6])}"
        )
    located = pd.DataFrame(
        list(reference.points_reference(points, scenes.to_dict("records"))),
        columns=["scene_id", "row", "col", "reference"],
    )
    # Points are few (a sample); the map's windows stay in Spark: only per-class sums come back.
    cells = spark.createDataFrame(
        [(sid, float(a if unit == "ha" else 1.0)) for sid, (a, _) in areas.items()], "scene_id string, cell double"
    )
    mapped = windows.join(F.broadcast(cells), "scene_id")
    area_rows = mapped.groupBy("map_label").agg(F.sum("cell").alias("cell")).toPandas()  # one row a class
    hits = spark.createDataFrame(located, "scene_id string, row int, col int, reference string")
    units = hits.join(mapped, ["scene_id", "row", "col"]).select("map_label", "reference", "probability", "cell")
    units = units.toPandas()
    labels = sorted(set(legend) | set(points["class"].astype(str)))
    # Area from the whole map (area_rows) only; each point counts once in the matrix.
    result = _summarize(pd.concat([units.assign(cell=0.0), area_rows.assign(reference=None)]), labels, unit)
    result["n_windows"] = int(windows.count())
    result["n_without_reference"] = result["n_windows"] - len(units)
    result["n_points"] = len(points)
    result["n_points_off_the_map"] = len(points) - len(units)
    result["by_confidence"] = by_confidence(units)
    folder = (ASSESSMENTS, model, run, f"points-{Path(spec).stem}")
    result |= {"model": model, "run": run, "reference": {"kind": "points", "uri": spec}}
    result |= {"dates": about.get("dates", [])}
    result["warnings"] = about.get("warnings", []) + result["warnings"] + _surer_than_right(result)
    storage.write_json(result, *folder, "assessment.json")
    storage.write_bytes(picture(result), *folder, "assessment.png")
    return _brief(result, storage.uri(*folder))


def read_points(spec: str) -> pd.DataFrame:
    """Labelled points: GeoParquet (point geometry, ``class``), or CSV/Parquet with ``x``, ``y``,
    ``crs`` and ``class``."""
    try:
        if spec.endswith(".csv"):
            frame = pd.read_csv(spec)
        else:
            import geopandas as gpd

            try:
                geo = gpd.read_parquet(spec)
                frame = pd.DataFrame(
                    {"x": geo.geometry.x, "y": geo.geometry.y, "crs": geo.crs.to_wkt(), "class": geo["class"]}
                )
            except (ValueError, KeyError):
                frame = pd.read_parquet(spec)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"reference points {spec}: {str(exc)[:200]}") from None
    missing = {"x", "y", "crs", "class"} - set(frame.columns)
    if missing:
        raise DatasetError(f"reference points {spec}: missing columns {', '.join(sorted(missing))}")
    return frame


def picture(result: dict[str, Any]) -> bytes:
    """The confusion matrix (counts) beside each class's mapped and estimated area with its
    interval, and the agreement by the map's own probability where the map has one."""
    plt = figures.pyplot()
    labels = result["labels"]
    counts = np.asarray(result["confusion"]["counts"])
    unit = result.get("area_unit", "ha")
    sure = result.get("by_confidence")
    fig, axes = plt.subplots(1, 3 if sure else 2, figsize=(19 if sure else 13, 5.5), dpi=100)
    left, right = axes[0], axes[1]
    left.imshow(counts, cmap="Blues")
    for (i, j), v in np.ndenumerate(counts):
        left.text(j, i, str(v), ha="center", va="center", color="w" if v > counts.max() / 2 else "k", fontsize=8)
    ticks = np.arange(len(labels))
    left.set_xticks(ticks, labels, rotation=45, ha="right")
    left.set_yticks(ticks, labels)
    left.set_xlabel("reference")
    left.set_ylabel("map")
    oa = result["overall_accuracy"]
    ci = f" ± {oa['ci95']:.3f}" if oa["ci95"] is not None else ""
    left.set_title(f"overall accuracy {oa['value']:.3f}{ci} (n = {result['n']})")
    mapped = [result["per_class"][c][f"mapped_area_{unit}"] for c in labels]
    est = [result["per_class"][c][f"estimated_area_{unit}"] for c in labels]
    right.barh(ticks - 0.2, mapped, 0.4, label="mapped", color="#999")
    right.barh(
        ticks + 0.2,
        [e["value"] for e in est],
        0.4,
        xerr=[e["ci95"] or 0 for e in est],
        label="estimated (95% interval)",
        color="#3570b0",
    )
    right.set_yticks(ticks, labels)
    right.invert_yaxis()
    right.set_xlabel(unit)
    right.legend(fontsize=8)
    dates = ", ".join(result.get("dates") or []) or "date unknown"
    right.set_title(f"area per class, {dates}")
    if sure:
        _confidence_panel(axes[2], sure)
    fig.suptitle(f"{result['model']} against {result['reference']['kind']}")
    fig.tight_layout()
    return figures.png(fig)


def _confidence_panel(ax: Any, sure: dict[str, Any]) -> None:
    """Agreement with the reference in each probability group (Wilson 95 % interval), against the
    group's mean probability: where the bars fall short of the marks, "sure" is not "right"."""
    bins = sure["bins"]
    x = np.arange(len(bins))
    acc = [b.get("accuracy", 0.0) for b in bins]
    low = [a - b["accuracy_ci95"][0] if b["n"] else 0.0 for a, b in zip(acc, bins, strict=True)]
    high = [b["accuracy_ci95"][1] - a if b["n"] else 0.0 for a, b in zip(acc, bins, strict=True)]
    ax.bar(x, acc, 0.6, yerr=[low, high], color="#3570b0", capsize=3, label="agreement (95% interval)")
    mean = [(i, b["mean_probability"]) for i, b in enumerate(bins) if b["n"]]
    ax.scatter([i for i, _ in mean], [m for _, m in mean], marker="_", s=500, color="k", label="mean probability")
    for i, b in enumerate(bins):
        ax.text(i, 0.02, f"n={b['n']}", ha="center", va="bottom", color="w" if acc[i] > 0.1 else "k", fontsize=8)
    ax.set_xticks(x, [f"{b['from']:g}-{b['to']:g}" for b in bins])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("the map's probability")
    ax.set_ylabel("share agreeing with the reference")
    ax.set_title(f"how sure against how right (ECE {sure['ece']:.2f})")
    ax.legend(fontsize=8, loc="upper left")


def _brief(result: dict[str, Any], uri: str) -> dict[str, Any]:
    out = {
        "model": result["model"],
        "run": result["run"],
        "reference": result["reference"]["kind"],
        "dates": result.get("dates", []),
        "n": result["n"],
        "overall_accuracy": result["overall_accuracy"],
        "per_class": {
            k: {"users": v["users_accuracy"]["value"], "producers": v["producers_accuracy"]["value"]}
            for k, v in result["per_class"].items()
        },
        "warnings": result["warnings"],
        "assessment_uri": uri,
    }
    if "ndwi" in result:
        out["ndwi"] = result["ndwi"]
    if result.get("by_confidence"):
        out["by_confidence"] = [
            {k: b.get(k) for k in ("from", "to", "n", "accuracy")} for b in result["by_confidence"]["bins"]
        ]
    return out


def _reader(uri: str, spark: SparkSession) -> Any:
    parent = uri.rsplit("/", 1)[0] if "/" in uri else "."
    return open_storage(parent or "/", spark).reader()
