"""Scenes + a land-cover raster → a labelled training set: what ``landuse-label`` runs.

The driver lists the scenes, reads the label raster's header (it must be one band of class codes
with a CRS) and checks that some scene overlaps it; executors read the scene headers, then each
window's label codes and, for a window kept (:mod:`jobs.scenes.labels`), its pixels, and write
it as a georeferenced GeoTIFF (RGB, the scene's CRS, the window's transform) under
``OUT/<class>/<scene>_r<row>_c<col>.tif``: the layout ``train --dataset aerial --data OUT``
reads. Beside them, in names that training skips (``_``):

* ``_manifest/<scene>.parquet``: GeoParquet, one row per window, kept or not: footprint (scene
  CRS), ``scene``, ``row``, ``col``, ``label``, ``purity``, ``codes`` (JSON histogram of label
  pixels per code), ``reason`` (null when kept), ``detail``, ``file``;
* ``_label_summary.json``: the run's summary (also printed): kept per class, dropped by reason,
  unmapped codes with their pixel counts.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from jobs.datasets import DatasetError
from jobs.datasets.landcover import Crosswalk
from jobs.runtime.spark import say, timed
from jobs.scenes import grids, labels, windows
from jobs.storage import Reader, open_storage

JOB = "label"
MANIFEST = "_manifest"
SUMMARY_FILE = "_label_summary.json"
RESULT = StructType(
    [
        StructField("scene_id", StringType(), False),
        StructField("row", IntegerType(), False),
        StructField("col", IntegerType(), False),
        StructField("label", StringType(), True),
        StructField("purity", DoubleType(), True),
        StructField("codes", StringType(), True),
        StructField("reason", StringType(), True),
        StructField("detail", StringType(), True),
        StructField("file", StringType(), True),
    ]
)
MANIFEST_COUNTS = "scene string, windows long, kept long"


@dataclass(frozen=True)
class LabelOptions:
    scenes: str
    labels: str
    classes: str
    out: str
    tile_px: int | None = None
    tile_m: float | None = None
    min_purity: float = 0.75
    max_nodata: float = 0.05  # share of nodata (scene or label) past which a window is dropped
    bands: tuple[int, ...] = (1, 2, 3)

    def check(self) -> LabelOptions:
        if not 0.0 < self.min_purity <= 1.0:
            raise DatasetError(f"min_purity {self.min_purity} is not in (0, 1]")
        return self


def label_scenes(spark: SparkSession, opts: LabelOptions, crosswalk: Crosswalk) -> dict[str, Any]:
    started = time.time()
    timings: dict[str, float] = {}
    out = open_storage(opts.out, spark)
    writer = out.writer()  # fails now where executors cannot write
    scene_opts = windows.SceneOptions(
        bands=opts.bands, tile_px=opts.tile_px, tile_m=opts.tile_m, max_nodata=opts.max_nodata, out_px=1 << 16
    ).check()
    label_uri, label_reader, label_meta = labels.open_label_raster(opts.labels, spark)
    skipped: Counter[str] = Counter()
    listed, reader = windows.list_scenes(spark, opts.scenes, skipped)
    with timed(JOB, "read scene headers", timings):
        table = windows.scene_table(spark, listed, reader, scene_opts).persist(StorageLevel.MEMORY_AND_DISK)
        header = ("scene_id", "crs", "transform", "width", "height", "scene_reject", "n_rows", "n_cols", "tile_px")
        heads = table.select(*header)
        scenes = heads.collect()  # one small row a scene
    if not scenes:
        raise DatasetError(f"no scenes found at {opts.scenes}")
    usable = [s for s in scenes if s["scene_reject"] is None]
    if not usable:
        reasons = Counter(s["scene_reject"].split(":", 1)[0] for s in scenes)
        raise DatasetError(f"no scene at {opts.scenes} could be read: {dict(reasons)}")
    _check_overlap(usable, label_meta, opts.labels)
    n_windows = sum(int(s["n_rows"]) * int(s["n_cols"]) for s in usable)
    say(JOB, f"{len(usable)} scenes, {n_windows} windows; labels from {label_uri} ({crosswalk.title})")

    grid = windows.window_table(table, n_windows).join(
        F.broadcast(table.select("scene_id", "tile_px", "lo", "hi", "crs", "transform", "nodata")), "scene_id"
    )
    work = _labeller(writer, reader, label_reader, label_uri, crosswalk, opts, scene_opts)
    with timed(JOB, "label and write windows", timings, spark, n_windows):
        results = grid.mapInPandas(work, RESULT).persist(StorageLevel.MEMORY_AND_DISK)
        results.count()
    with timed(JOB, "write the manifest", timings):
        geo = results.join(F.broadcast(table.select("scene_id", "crs", "transform", "tile_px")), "scene_id")
        geo.groupBy("scene_id").applyInPandas(_manifest_writer(writer), MANIFEST_COUNTS).collect()
    verdicts = results.groupBy("label", "reason").count().collect()  # one row a class or a reason
    kept = {r["label"]: int(r["count"]) for r in verdicts if r["reason"] is None}
    dropped = {r["reason"]: int(r["count"]) for r in verdicts if r["reason"] is not None}
    unmapped = _unmapped_codes(results, crosswalk)
    results.unpersist()
    table.unpersist()
    summary = {
        "out": out.uri(),
        "labels": label_uri,
        "classes": crosswalk.to_json(),
        "n_scenes": len(scenes),
        "n_scenes_rejected": len(scenes) - len(usable),
        "n_windows": n_windows,
        "n_kept": sum(kept.values()),
        "kept_by_class": dict(sorted(kept.items())),
        "dropped_by_reason": {r: 0 for r in labels.REASONS} | dict(sorted(dropped.items())),
        "unmapped_codes": unmapped,
        "min_purity": opts.min_purity,
        "tile_px": sorted({int(s["tile_px"]) for s in usable}),
        "skipped_by_reason": dict(sorted(skipped.items())),
        "manifest_uri": out.uri(MANIFEST),
        "options": asdict(opts),
        "timings_s": timings,
        "seconds": round(time.time() - started, 2),
    }
    out.write_json(summary, SUMMARY_FILE)
    if not kept:
        raise DatasetError(
            f"no window kept: dropped by reason {summary['dropped_by_reason']}"
            + (f", unmapped codes {sorted(unmapped)[:8]}" if unmapped else "")
            + " (see "
            + out.uri(MANIFEST)
            + ")"
        )
    return summary


def _check_overlap(scenes: list[Any], label_meta: dict[str, Any], spec: str) -> None:
    """Exit 2 (one line naming both footprints) when no scene overlaps the label raster."""
    from rasterio.coords import BoundingBox, disjoint_bounds
    from rasterio.crs import CRS
    from rasterio.transform import array_bounds
    from rasterio.warp import transform_bounds

    box = BoundingBox(*label_meta["bounds"])
    first = None
    for s in scenes:
        if s["crs"] is None:
            continue
        west, south, east, north = array_bounds(
            int(s["height"]), int(s["width"]), grids.scene_transform(s["transform"])
        )
        there = BoundingBox(*transform_bounds(CRS.from_wkt(s["crs"]), label_meta["crs"], west, south, east, north))
        if not disjoint_bounds(box, there):
            return
        first = first or (s["scene_id"], there)
    crs = label_meta["crs"].to_string()
    if first is None:
        raise DatasetError("no scene has a CRS: windows cannot be placed on the label raster")

    def show(b: BoundingBox) -> str:
        return f"({b.left:.0f}, {b.bottom:.0f}, {b.right:.0f}, {b.top:.0f})"

    raise DatasetError(
        f"no scene overlaps the label raster {spec}: it covers {show(box)} in {crs}, "
        f"scene {first[0]} covers {show(first[1])} there"
        + (f" (and {len(scenes) - 1} more scenes, none overlapping)" if len(scenes) > 1 else "")
    )


def _labeller(
    writer: Any,
    reader: Reader,
    label_reader: Reader,
    label_uri: str,
    crosswalk: Crosswalk,
    opts: LabelOptions,
    scene_opts: windows.SceneOptions,
) -> Any:
    """The function ``mapInPandas`` runs over window rows: verdicts, and the kept windows' files."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from rasterio.crs import CRS

        from featurizers.image_featurizer import task_started

        task_started()
        ds = labels.open_labels(label_uri, label_reader)
        crs_cache: dict[str, Any] = {}
        for batch in batches:
            rows = []
            for w in batch.itertuples(index=False):
                tile = int(w.tile_px)
                crs = crs_cache.setdefault(w.crs, CRS.from_wkt(w.crs))
                transform = grids.window_transform(w.transform, tile, int(w.row), int(w.col))
                codes = labels.window_codes(ds, crs, transform, tile)
                verdict = labels.decide(codes, crosswalk, ds.nodata, opts.min_purity, opts.max_nodata)
                file, reason, detail = None, verdict.reason, verdict.detail
                if reason is None:
                    rgb, why = windows.read_window_rgb(
                        w.scene_path, int(w.row), int(w.col), tile, w.lo, w.hi, reader, scene_opts
                    )
                    if rgb is None:  # the scene's own nodata (or an unreadable window)
                        reason, detail = (why or "read_error").split(":", 1)[0], why
                    else:
                        folder = labels.folder_name(verdict.label or "")
                        file = f"{folder}/{w.scene_id}_r{w.row}_c{w.col}.tif"
                        writer.write_bytes(tile_tiff(rgb, crs, transform, tile), *file.split("/"))
                rows.append(
                    {
                        "scene_id": w.scene_id,
                        "row": int(w.row),
                        "col": int(w.col),
                        "label": verdict.label if reason is None else None,
                        "purity": verdict.purity,
                        "codes": verdict.codes_json(),
                        "reason": reason,
                        "detail": detail,
                        "file": file,
                    }
                )
            yield pd.DataFrame(rows, columns=RESULT.fieldNames())

    return run


def tile_tiff(rgb: np.ndarray, crs: Any, transform: Any, tile: int) -> bytes:
    """A window as a GeoTIFF: RGB, deflate, the scene's CRS and the window's transform (scaled
    when the window was read smaller than its ground size)."""
    from affine import Affine
    from rasterio.io import MemoryFile

    height, width = rgb.shape[:2]
    if width != tile:
        transform = transform @ Affine.scale(tile / width, tile / height)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 3, "dtype": "uint8"}
    profile |= {"crs": crs, "transform": transform, "compress": "deflate", "photometric": "RGB"}
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
        return bytes(mem.read())


def _manifest_writer(writer: Any) -> Any:
    def write(rows: pd.DataFrame) -> pd.DataFrame:
        import geopandas as gpd

        rows = rows.sort_values(["row", "col"]).reset_index(drop=True)
        first = rows.iloc[0]
        geometry = grids.footprints(rows["row"], rows["col"], first["transform"], int(first["tile_px"]))
        table = rows.rename(columns={"scene_id": "scene"})[
            ["scene", "row", "col", "label", "purity", "codes", "reason", "detail", "file"]
        ]
        frame = gpd.GeoDataFrame(table, geometry=geometry, crs=first["crs"] or None)
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        writer.write_bytes(buf.getvalue(), MANIFEST, f"{first['scene_id']}.parquet")
        kept = int(rows["reason"].isna().sum())
        return pd.DataFrame({"scene": [str(first["scene_id"])], "windows": [len(rows)], "kept": [kept]})

    return write


def _unmapped_codes(results: DataFrame, crosswalk: Crosswalk) -> dict[str, int]:
    """Label pixels per code that the crosswalk neither names nor calls nodata, over every window."""
    known = set(crosswalk.classes) | set(crosswalk.nodata) | {labels.OUTSIDE}
    codes = F.from_json("codes", "map<string,long>")
    exploded = results.select(F.explode(codes)).groupBy("key").agg(F.sum("value").alias("n")).collect()
    return {r["key"]: int(r["n"]) for r in sorted(exploded, key=lambda r: int(r["key"])) if int(r["key"]) not in known}
