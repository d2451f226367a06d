"""The score workflow: a tile set (or georeferenced scenes) through a saved model into a
predictions table (and maps) in storage; see jobs/score.py for what comes out."""

from __future__ import annotations

import functools
import json
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
from jobs.classifiers import connect
from jobs.config import ConfigError, ScoreConfig
from jobs.datasets import DatasetError, folders
from jobs.predictions import smoothing
from jobs.predictions.calibration import drift, how_sure
from jobs.predictions.tables import counts_by_code, healable, prediction_table, top_k
from jobs.records import history
from jobs.runtime.provenance import new_run_id
from jobs.runtime.spark import is_connect, say, timed
from jobs.runtime.suggest import did_you_mean
from jobs.storage import PREDICTIONS, TRAINED, Storage, StorageError, open_storage
from jobs.storage.lock import held
from jobs.workflows.score_scenes import score_scenes

JOB = "score"
LOCK = "_LOCK"


def score(spark: SparkSession, cfg: ScoreConfig, storage: Storage) -> dict[str, Any]:
    """Scores tiles or scenes (see jobs/score.py), then records the run in the run history."""
    started = time.time()
    summary = _score(spark, cfg, storage, started) | {"source": cfg.scenes or cfg.tiles}
    if said := drift(summary.get("confidence"), summary.get("model_test_confidence"), _units(cfg)):
        summary["warnings"] = [*summary.get("warnings", []), said]
        say(JOB, f"warning: {said}")
    return history.recorded(storage, "score", summary, started)


def _units(cfg: ScoreConfig) -> str:
    return "windows" if cfg.scenes else "tiles"


def _score(spark: SparkSession, cfg: ScoreConfig, storage: Storage, started: float) -> dict[str, Any]:
    run_id = new_run_id()
    name = cfg.output_model_name
    try:
        card = storage.load_card(TRAINED, name)
    except StorageError:
        models = storage.list_folders(TRAINED)
        here = f": models there: {', '.join(models)}{did_you_mean(name, models)}" if models else ": none there yet"
        raise StorageError(f"no trained model {name!r} in {storage.uri(TRAINED)}{here}") from None
    trained_with = card.get("precision", "fp32")
    if cfg.precision not in (None, trained_with):
        raise ConfigError(
            f"model {name!r} was trained on {trained_with} features: its classifier fits those, "
            f"so it scores in {trained_with} (train again with --precision {cfg.precision})"
        )
    source = cfg.scenes or open_storage(cfg.tiles, spark).uri()
    with held(storage, (PREDICTIONS, name, LOCK), run_id, cfg.lock_timeout_s) as run_lock:
        say(JOB, f"run {run_id}: scoring {source} with {name} (trained in run {card['run_id']})")
        model = connect.load(storage, TRAINED, name) if is_connect(spark) else storage.load_model(TRAINED, name)
        done = previously_scored(spark, storage, name) if cfg.incremental else None
        summary: dict[str, Any] = {"run_id": run_id, "model": name, "model_version": card["run_id"]}
        summary["precision"] = trained_with
        timings: dict[str, float] = {}
        if cfg.scenes:
            counts = score_scenes(
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
            out = smoothing.smooth(out.persist(StorageLevel.MEMORY_AND_DISK))
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
            "confidence": how_sure(written),
            "executor_tasks": executor_tasks(spark),
            "predictions_uri": predictions_uri,
            "csv_uri": csv_uri,
            "seconds": round(time.time() - started, 2),
        }


def _card_fields(card: dict[str, Any]) -> dict[str, Any]:
    """What the model's training run measured, named so that it never reads as this run's score."""
    return {
        "model_test_accuracy": round(card["accuracy"], 4),
        "model_n_train": card["n_train"],
        "model_n_test": card["n_test"],
        "model_metrics_uri": card["metrics_uri"],
        "model_calibration_ece": card.get("calibration_ece"),  # models trained before it was kept: None
        "model_test_confidence": card.get("test_confidence"),  # likewise
    }


def _labels(model: PipelineModel | connect.ConnectModel) -> list[str]:
    if isinstance(model, connect.ConnectModel):
        return model.labels
    return next(list(s.getLabels()) for s in model.stages if isinstance(s, IndexToString))


def previously_scored(spark: SparkSession, storage: Storage, name: str) -> DataFrame | None:
    """Paths scored by this model's completed runs (an interrupted run, without _SUCCESS, counts not).

    A path counts as scored once a completed run has it with no reject that can heal
    (:data:`~jobs.predictions.tables.HEALABLE`): a tile truncated in one run, then repaired, is
    scored by the next; a scene with a window that could not be read is mapped again whole."""
    try:
        runs = {f.split("/", 1)[0] for f in storage.list_files(PREDICTIONS, name) if "/" in f}
        runs = {r for r in runs if not r.endswith(".csv")}
    except StorageError:
        return None
    done = [
        storage.read_table(spark, PREDICTIONS, name, r)
        .groupBy("path")
        .agg(F.max(healable().cast("int")).alias("heal"))
        .where("heal = 0")
        .select("path")
        for r in sorted(runs)
        if storage.table_complete(PREDICTIONS, name, r)
    ]
    return functools.reduce(DataFrame.unionByName, done).distinct() if done else None


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
