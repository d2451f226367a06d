"""spark-submit entry point: batch-score a tile set with a saved model.

    spark-submit jobs/score.py --output_model_name mnist_lite0_lr --tiles data/tiles

Storage → tile rows → saved PipelineModel → predictions → storage. Executors write their own
partitions of ``predictions/<output_model_name>/<run_id>/`` as Parquet, one row per tile: see
:mod:`jobs.predictions`, plus ``tile`` (file name), ``top_k`` (labels with probabilities),
``model``, ``model_version`` (the training run) and ``run_id``; ``_SUCCESS``, written last,
says the run is complete. No prediction passes through the driver.

For schedules: ``--incremental`` scores only tiles that no completed run of this model has
scored (an interrupted run is simply run again); a lock file ``predictions/<model>/_LOCK``
keeps two runs from overlapping (exit code 3 while another holds it); exit codes are 0 done,
2 bad input, 3 locked, 1 anything else. ``--smooth 3x3`` adds ``smoothed_label`` (see
:mod:`jobs.grid`).

Under Spark Connect (``SPARK_REMOTE=sc://host:15002``), tiles and scenes are scored with the
model rebuilt from its saved files (:mod:`jobs.connect_model`); the same tables and maps come out.

``--scenes URI`` scores georeferenced scenes instead (GeoTIFF/COG, any CRS): windows cut on
the executors, one row per window in the same table (plus ``scene_id``, ``row``, ``col``),
and land-use maps per scene under ``maps/<model>/<run_id>/``; see :mod:`jobs.scene_scoring`.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
import urllib.request
from collections import Counter
from typing import Any

from pyspark import StorageLevel
from pyspark.ml import PipelineModel
from pyspark.ml.feature import IndexToString
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurizers.image_featurizer import NOTE_COL
from featurizers.quantize import PRECISIONS
from jobs import cli, config, connect_model, grid, lock, scene_scoring
from jobs.datasets import DatasetError, folders
from jobs.predictions import counts_by_code, prediction_table, top_k
from jobs.spark import is_connect, say, timed
from jobs.storage import PREDICTIONS, TRAINED, Storage, StorageError, open_storage

JOB = "score"
LOCK = "_LOCK"


def parse_args(argv: list[str] | None = None) -> config.ScoreConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    config.add_conf_flag(p)
    cli.add_summary_flag(p)
    p.add_argument("--output_model_name", help="the trained model to score with")
    p.add_argument("--tiles", help="folder of images to score (read recursively)")
    p.add_argument("--storage", help="storage root (default ./data)")
    p.add_argument("--sample_frac", type=float, help="fraction of tiles to score")
    p.add_argument("--seed", type=int)
    p.add_argument("--incremental", action="store_true", default=None, help="score only tiles not yet scored")
    p.add_argument("--smooth", choices=("3x3",), help="add smoothed_label: 3x3 majority over grid neighbours")
    p.add_argument("--top_k", type=int, help="labels with probabilities per tile (default 3)")
    p.add_argument(
        "--lock_timeout_s", type=float, help="take over a lock not renewed for this long by a run on another host (300)"
    )
    p.add_argument("--precision", choices=PRECISIONS, help="the model's own (fp32 or int8); another is an error")
    p.add_argument("--csv", action="store_true", default=None, help="also write the predictions as CSV")
    scenes = p.add_argument_group("georeferenced scenes (GeoTIFF/COG): land-use maps instead of a tile table")
    scenes.add_argument("--scenes", help="a folder, a glob, or a .txt file of scene URIs")
    scenes.add_argument("--bands", type=_ints, help="band numbers for R,G,B (default 1,2,3), or one for grey")
    scenes.add_argument("--tile_px", type=int, help="window size in scene pixels")
    scenes.add_argument("--tile_m", type=float, help="window size in metres (default: the model's training tiles)")
    scenes.add_argument("--max_nodata", type=float, help="reject windows with more nodata than this share (0.5)")
    scenes.add_argument("--value_range", type=_floats, help="LO,HI mapped to 0..255 (default: per-scene stretch)")
    args = vars(config.show_defaults(p, config.ScoreConfig).parse_args(argv))
    args.pop("summary_file")
    return config.build(config.ScoreConfig, args.pop("conf"), args)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def score(spark: SparkSession, cfg: config.ScoreConfig, storage: Storage) -> dict[str, Any]:
    started = time.time()
    run_id = cli.new_run_id()
    name = cfg.output_model_name
    try:
        card = storage.load_card(TRAINED, name)
    except StorageError:
        raise StorageError(f"no trained model {name!r} in {storage.uri(TRAINED)}") from None
    trained_with = card.get("precision", "fp32")
    if cfg.precision not in (None, trained_with):
        raise config.ConfigError(
            f"model {name!r} was trained on {trained_with} features: its classifier fits those, "
            f"so it scores in {trained_with} (train again with --precision {cfg.precision})"
        )
    source = cfg.scenes or open_storage(cfg.tiles, spark).uri()
    with lock.held(storage, (PREDICTIONS, name, LOCK), run_id, cfg.lock_timeout_s) as run_lock:
        say(JOB, f"run {run_id}: scoring {source} with {name} (trained in run {card['run_id']})")
        model = connect_model.load(storage, TRAINED, name) if is_connect(spark) else storage.load_model(TRAINED, name)
        done = previously_scored(spark, storage, name) if cfg.incremental else None
        summary: dict[str, Any] = {"run_id": run_id, "model": name, "model_version": card["run_id"]}
        summary["precision"] = trained_with
        timings: dict[str, float] = {}
        if cfg.scenes:
            counts = scene_scoring.score_scenes(
                spark, cfg, storage, model, card, run_id, _labels(model), done, timings, run_lock.check
            )
            return {**summary, **_card_fields(card), **counts, "seconds": round(time.time() - started, 2)}
        skipped: Counter[str] = Counter()
        tiles = folders.load_unlabelled(
            spark, open_storage(cfg.tiles, spark), cfg.sample_frac, cfg.seed, exclude=done, skipped=skipped
        )
        summary["skipped_by_reason"] = dict(sorted(skipped.items()))  # listed, not data: see folders
        if cfg.incremental and tiles.isEmpty():
            say(JOB, "nothing new to score")
            return {
                **summary,
                **_card_fields(card),
                "n_tiles": 0,
                "n_scored": 0,
                "n_rejected": 0,
                "predictions_uri": None,
                "seconds": round(time.time() - started, 2),
            }
        predicted = model.transform(tiles)
        out = prediction_table(
            predicted,
            F.element_at(F.split("path", "/"), -1).alias("tile"),
            top_k(predicted, _labels(model), cfg.top_k),
            F.lit(name).alias("model"),
            F.lit(card["run_id"]).alias("model_version"),
            F.lit(run_id).alias("run_id"),
        )
        if cfg.smooth:
            # Neighbours need each other's predictions: score once, then vote.
            out = grid.smooth(out.persist(StorageLevel.MEMORY_AND_DISK))
        with timed(JOB, "featurize, predict and write", timings, spark):
            predictions_uri = storage.write_table(out, PREDICTIONS, name, run_id, before_commit=run_lock.check)
        written = storage.read_table(spark, PREDICTIONS, name, run_id)
        csv_uri = None
        if cfg.csv:  # a copy for spreadsheets; top_k as JSON text
            csv_uri = storage.write_table(
                written.withColumn("top_k", F.to_json("top_k")),
                PREDICTIONS,
                name,
                f"{run_id}.csv",
                fmt="csv",
                before_commit=run_lock.check,
            )
        n_tiles = int(written.count())  # numpy under Spark Connect
        summary["rejected_by_reason"] = counts_by_code(written, "reject_reason")
        n_rejected = sum(summary["rejected_by_reason"].values())  # every reject has a code
        summary["pixel_notes"] = counts_by_code(written, NOTE_COL)
        if n_tiles and n_rejected == n_tiles:  # recorded, but nothing was scored: not a success
            raise DatasetError(
                f"no tile in {source} could be scored: {n_tiles} rejected, by reason "
                f"{summary['rejected_by_reason']} (the rejects are in {predictions_uri})"
            )
        seconds = timings["featurize, predict and write"]
        return {
            **summary,
            **_card_fields(card),
            "n_tiles": n_tiles,
            "n_scored": n_tiles - n_rejected,
            "n_rejected": n_rejected,
            "images_per_s": round(n_tiles / max(seconds, 1e-9), 2),
            "executor_tasks": executor_tasks(spark),
            "predictions_uri": predictions_uri,
            "csv_uri": csv_uri,
            "seconds": round(time.time() - started, 2),
        }


def _card_fields(card: dict[str, Any]) -> dict[str, Any]:
    return {
        "accuracy": round(card["accuracy"], 4),
        "n_train": card["n_train"],
        "n_test": card["n_test"],
        "metrics_uri": card["metrics_uri"],
    }


def _labels(model: PipelineModel | connect_model.ConnectModel) -> list[str]:
    if isinstance(model, connect_model.ConnectModel):
        return model.labels
    return next(list(s.getLabels()) for s in model.stages if isinstance(s, IndexToString))


def previously_scored(spark: SparkSession, storage: Storage, name: str) -> DataFrame | None:
    """Paths scored by this model's completed runs (an interrupted run, without _SUCCESS, counts not)."""
    try:
        runs = {f.split("/", 1)[0] for f in storage.list_files(PREDICTIONS, name) if "/" in f}
        runs = {r for r in runs if not r.endswith(".csv")}
    except StorageError:
        return None
    done = [
        storage.read_table(spark, PREDICTIONS, name, r).select("path")
        for r in sorted(runs)
        if storage.table_complete(PREDICTIONS, name, r)
    ]
    return functools.reduce(DataFrame.unionByName, done) if done else None


def executor_tasks(spark: SparkSession) -> dict[str, int]:
    """Tasks completed per executor in this application, from the driver's own REST API."""
    url = None if is_connect(spark) else spark.sparkContext.uiWebUrl
    if not url:
        return {}
    app = spark.sparkContext.applicationId
    try:
        with urllib.request.urlopen(f"{url}/api/v1/applications/{app}/allexecutors", timeout=10) as r:
            executors = json.loads(r.read())
    except OSError:
        return {}
    return {e["id"]: int(e["completedTasks"]) for e in executors if e["id"] != "driver" or len(executors) == 1}


def main(argv: list[str] | None = None) -> int:
    return cli.main(JOB, parse_args, score, argv)


if __name__ == "__main__":
    sys.exit(main())
