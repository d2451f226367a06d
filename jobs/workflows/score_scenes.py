"""Scoring georeferenced scenes with a saved model: scenes → windows → predictions → maps.

What ``score.py --scenes URI`` runs (see :mod:`jobs.scenes` for how windows are cut and read,
:mod:`jobs.maps` for what is written). Order of writes, so that nothing half-done looks done:
windows are featurized and predicted once (kept, without their pixels, for the two writes),
the per-scene maps and the scene index go to ``maps/<model>/<run_id>/`` (its ``_SUCCESS``
last), and only then the window table ``predictions/<model>/<run_id>/`` with its ``_SUCCESS``,
which is what ``--incremental`` trusts: a scene counts as scored when its run finished both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from pyspark import StorageLevel
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurizers.image_featurizer import ImageFeaturizer
from featurizers.zoo import Preprocessing
from jobs.config import ScoreConfig
from jobs.datasets import DatasetError
from jobs.maps import writer as map_files
from jobs.maps.palette import palette
from jobs.predictions import smoothing
from jobs.predictions.calibration import how_sure
from jobs.predictions.tables import prediction_table, top_k
from jobs.runtime.spark import say, timed
from jobs.scenes import windows as scenes
from jobs.storage import MAPS, PREDICTIONS, SUCCESS, Storage

JOB = "score"
RESOLUTION_TOLERANCE = 2.0  # warn when a scene's ground resolution differs from the training imagery's by more


def options(cfg: ScoreConfig, model: PipelineModel, card: dict[str, Any]) -> scenes.SceneOptions:
    """Window options from the flags, the tile size defaulting to the model's training tiles in metres."""
    tile_m = cfg.tile_m
    if cfg.tile_px is None and tile_m is None:
        tile_m = card.get("tile_m")
        if tile_m is None:
            raise DatasetError(
                f"model {cfg.output_model_name} does not record its training imagery's tile size in metres: "
                "give --tile_m or --tile_px"
            )
    featurizer = next((s for s in model.stages if isinstance(s, ImageFeaturizer)), None)
    out_px = Preprocessing.from_json(featurizer.getOrDefault("preprocessing")).resize if featurizer else 256
    value_range = tuple(cfg.value_range) if cfg.value_range else None
    return scenes.SceneOptions(
        bands=tuple(cfg.bands),
        tile_px=cfg.tile_px,
        tile_m=None if cfg.tile_px is not None else tile_m,
        max_nodata=cfg.max_nodata,
        value_range=value_range,  # type: ignore[arg-type]
        out_px=out_px,
    ).check()


def score_scenes(
    spark: SparkSession,
    cfg: ScoreConfig,
    storage: Storage,
    model: PipelineModel,
    card: dict[str, Any],
    run_id: str,
    labels: list[str],
    done: DataFrame | None,
    timings: dict[str, float],
    fence: Callable[[], None],
) -> dict[str, Any]:
    """Scores the scenes ``cfg.scenes`` names; returns the run's counts for its summary.
    ``fence`` (the run lock's check) is called before each ``_SUCCESS`` is written."""
    name = cfg.output_model_name
    writer = storage.writer()  # fails now, not after scoring, where maps cannot be written
    opts = options(cfg, model, card)
    skipped: Counter[str] = Counter()
    listed, reader = scenes.list_scenes(spark, cfg.scenes or "", skipped, cfg.asset)
    if done is not None:  # scenes that a completed run of this model scored whole
        listed = listed.join(done.select(F.col("path")).distinct(), "path", "left_anti")
    with timed(JOB, "read scene headers", timings):
        table = scenes.scene_table(spark, listed, reader, opts).persist(StorageLevel.MEMORY_AND_DISK)
        stats = _scene_stats(table, card.get("gsd_m"), card.get("gsd_range_m"))
    if stats["scenes"] == 0:
        if done is not None:
            return {"n_scenes": 0, "n_tiles": 0, "n_scored": 0, "n_nodata": 0, "n_rejected": 0, "predictions_uri": None}
        raise DatasetError(f"no scenes found at {cfg.scenes}")
    if stats["windows"] == 0:  # every scene rejected: nothing to map, and the user must hear why
        first = table.where(F.col("scene_reject").isNotNull()).select("scene_id", "scene_reject").first()
        raise DatasetError(
            f"no scene at {cfg.scenes} could be scored: {stats['rejected']} rejected, by reason "
            f"{stats['rejected_by_reason']}; first: {first['scene_id']}: {first['scene_reject']}"
        )
    for warning in stats["warnings"]:
        say(JOB, f"warning: {warning}")
    say(JOB, f"{stats['scenes']} scenes, {stats['windows']} windows")

    windows = scenes.window_table(table, stats["windows"]).join(
        F.broadcast(table.select("scene_id", "tile_px", "lo", "hi")), "scene_id"
    )
    read = scenes.window_reader(reader, opts)
    windows = windows.withColumn("_read", read(F.struct("scene_path", "row", "col", "tile_px", "lo", "hi")))
    windows = windows.select(
        "scene_id",
        F.col("scene_path").alias("path"),
        F.lit(None).cast("string").alias("label"),
        "row",
        "col",
        F.col("_read.image").alias("image"),
        F.col("_read.read_reject").alias("read_reject"),
    )
    predicted = model.transform(windows).withColumn("reject_reason", F.coalesce("read_reject", "reject_reason"))
    out = prediction_table(
        predicted,
        F.concat_ws("", "scene_id", F.lit("_r"), "row", F.lit("_c"), "col").alias("tile"),
        "scene_id",
        "row",
        "col",
        top_k(predicted, labels, cfg.top_k),
        F.lit(name).alias("model"),
        F.lit(card["run_id"]).alias("model_version"),
        F.lit(run_id).alias("run_id"),
    )
    with timed(JOB, "read windows, featurize and predict", timings, spark, stats["windows"]):
        scored = out.persist(StorageLevel.MEMORY_AND_DISK)
        n_windows = int(scored.count())  # numpy under Spark Connect
    if cfg.smooth:
        scored = smoothing.smooth(scored)

    with timed(JOB, "write maps", timings):
        about = {"model": name, "model_version": card["run_id"], "run_id": run_id, "warnings": stats["warnings"]}
        about |= {"training_gsd_m": card.get("gsd_m"), "training_gsd_range_m": card.get("gsd_range_m")}
        parts = (MAPS, name, run_id)
        maps_uri, dates = write_maps(spark, storage, writer, scored, table, parts, labels, reader, opts, fence, about)
    with timed(JOB, "write predictions", timings):
        predictions_uri = storage.write_table(scored, PREDICTIONS, name, run_id, before_commit=fence)
    # As the scenes table counts them: nodata windows apart from rejects (unreadable windows).
    n_nodata = int(scored.where(F.col("reject_reason").startswith("nodata")).count())
    n_rejected = int(scored.where(F.col("reject_reason").isNotNull()).count()) - n_nodata
    confidence = how_sure(scored)
    scored.unpersist()
    table.unpersist()
    seconds = timings["read windows, featurize and predict"]
    return {
        "n_scenes": stats["scenes"],
        "n_scenes_rejected": stats["rejected"],
        "scenes_rejected_by_reason": stats["rejected_by_reason"],
        "scenes_without_crs": stats["without_crs"],
        "n_tiles": n_windows,
        "n_scored": n_windows - n_rejected - n_nodata,
        "n_nodata": n_nodata,
        "n_rejected": n_rejected,
        "images_per_s": round(n_windows / max(seconds, 1e-9), 2),
        "confidence": confidence,
        "tile_px": stats["tile_px"],
        "skipped_by_reason": dict(sorted(skipped.items())),
        "warnings": stats["warnings"],
        "dates": dates,
        "maps_uri": maps_uri,
        "predictions_uri": predictions_uri,
    }


def _scene_stats(table: DataFrame, gsd_m: float | None, gsd_range_m: list[float] | None = None) -> dict[str, Any]:
    """Counts over the scene headers (a handful of rows reach the driver, whatever the scene count).
    A scene is far from the training imagery when its resolution lies more than
    ``RESOLUTION_TOLERANCE`` times outside the imagery's resolution (or range of them)."""
    ok = F.col("scene_reject").isNull()
    finest, coarsest = gsd_range_m or (gsd_m, gsd_m)
    row = table.agg(
        F.count(F.lit(1)).alias("scenes"),
        F.sum(F.when(ok, F.col("n_rows") * F.col("n_cols")).otherwise(0)).alias("windows"),
        F.sum(F.when(ok & F.col("crs").isNull(), 1).otherwise(0)).alias("without_crs"),
        F.min("tile_px").alias("min_tile"),
        F.max("tile_px").alias("max_tile"),
        F.sum(
            F.when(
                F.lit(finest is not None)
                & (
                    (F.col("res_m") > F.lit(coarsest or 0) * RESOLUTION_TOLERANCE)
                    | (F.col("res_m") * RESOLUTION_TOLERANCE < F.lit(finest or 0))
                ),
                1,
            ).otherwise(0)
        ).alias("off_resolution"),
        F.min("res_m").alias("min_res"),
        F.max("res_m").alias("max_res"),
    ).first()
    reasons = {
        r["code"]: int(r["count"])
        for r in table.where(~ok).groupBy(F.substring_index("scene_reject", ":", 1).alias("code")).count().collect()
    }
    warnings = []
    if row["off_resolution"]:
        warnings.append(
            f"{row['off_resolution']} scenes have a ground resolution ({row['min_res']:.2f}-{row['max_res']:.2f} m) "
            f"more than {RESOLUTION_TOLERANCE:g}x away from the training imagery's "
            f"({f'{finest:g}-{coarsest:g}' if finest != coarsest else f'{finest:g}'} m): expect poorer labels"
        )
    if row["without_crs"]:
        warnings.append(f"{row['without_crs']} scenes have no CRS: scored in pixel space")
    return {
        "scenes": int(row["scenes"]),
        "windows": int(row["windows"] or 0),
        "without_crs": int(row["without_crs"] or 0),
        "rejected": sum(reasons.values()),
        "rejected_by_reason": reasons,
        "tile_px": None if row["min_tile"] is None else sorted({int(row["min_tile"]), int(row["max_tile"])}),
        "warnings": warnings,
    }


def write_maps(
    spark: SparkSession,
    storage: Storage,
    writer: Any,
    scored: DataFrame,
    table: DataFrame,
    parts: tuple[str, ...],
    labels: list[str],
    reader: Any,
    opts: scenes.SceneOptions,
    fence: Callable[[], None],
    about: dict[str, Any],
) -> tuple[str, list[str]]:
    """Per-scene maps (executors), the scene index, ``run.json`` (``about``: model, run, warnings,
    dates), then ``_SUCCESS``; returns the folder's URI and the scenes' dates."""
    label = F.col("smoothed_label") if "smoothed_label" in scored.columns else F.col("predicted_label")
    rows = scored.select(
        "scene_id",
        "row",
        "col",
        "predicted_label",
        label.alias("map_label"),
        "probability",
        F.to_json("top_k").alias("top_k"),
        "reject_reason",
    ).join(
        table.select(
            "scene_id",
            "scene_path",
            "width",
            "height",
            "crs",
            "transform",
            "tile_px",
            "n_rows",
            "n_cols",
            "lo",
            "hi",
            "date",
        ),
        "scene_id",
    )
    write = map_files.map_writer(writer, parts, labels, reader, opts, tuple(about["warnings"]))
    summary = rows.groupBy("scene_id").applyInPandas(write, map_files.SUMMARY)
    storage.write_table(summary, *parts, "scenes")
    storage.write_table(table.drop("lo", "hi"), *parts, "scene_index")
    storage.write_json({"labels": labels, "colours": palette(labels)}, *parts, "legend.json")
    dates = sorted({r["date"] for r in table.select("date").distinct().collect() if r["date"]})  # <= one per scene
    storage.write_json(about | {"dates": dates}, *parts, "run.json")
    fence()
    storage.write_bytes(b"", *parts, SUCCESS)
    return storage.uri(*parts), dates
