"""spark-submit entry point: batch-score a tile set with a saved model.

    spark-submit jobs/score.py --output_model_name mnist_lite0_lr --tiles data/tiles

Storage → tile rows → saved PipelineModel → predictions → storage. Executors write their own
partitions of ``predictions/<output_model_name>/<run_id>/`` as Parquet (one row per tile: see
:mod:`jobs.predictions`, plus the tile's file name, the model and the run id); Spark's
``_SUCCESS`` marker, written last, says the run is complete. No prediction passes through the
driver: it only counts the written rows for the summary.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import cli, config
from jobs.datasets import folders
from jobs.predictions import prediction_table
from jobs.spark import get_spark, say, timed
from jobs.storage import PREDICTIONS, TRAINED, Storage, StorageError, open_storage

JOB = "score"


def parse_args(argv: list[str] | None = None) -> config.ScoreConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    config.add_conf_flag(p)
    p.add_argument("--output_model_name", help="the trained model to score with")
    p.add_argument("--tiles", help="folder of images to score (read recursively)")
    p.add_argument("--storage", help="storage root (default ./data)")
    p.add_argument("--sample_frac", type=float, help="fraction of tiles to score")
    p.add_argument("--seed", type=int)
    args = vars(p.parse_args(argv))
    return config.build(config.ScoreConfig, args.pop("conf"), args)


def score(spark: SparkSession, cfg: config.ScoreConfig, storage: Storage) -> dict[str, Any]:
    started = time.time()
    run_id = cli.new_run_id()
    timings: dict[str, float] = {}
    name = cfg.output_model_name
    if not storage.exists(TRAINED, f"{name}.json"):
        raise StorageError(f"no trained model {name!r} in {storage.uri(TRAINED)}")
    card = storage.read_json(TRAINED, f"{name}.json")
    say(JOB, f"run {run_id}: scoring {cfg.tiles} with {name} (trained in run {card['run_id']})")

    model = storage.load_model(TRAINED, name)
    tiles = folders.load_unlabelled(spark, open_storage(cfg.tiles, spark), cfg.sample_frac, cfg.seed)
    out = prediction_table(
        model.transform(tiles),
        F.element_at(F.split("path", "/"), -1).alias("tile"),
        F.lit(name).alias("model"),
        F.lit(run_id).alias("run_id"),
    )
    with timed(JOB, "featurize, predict and write", timings):
        predictions_uri = storage.write_table(out, PREDICTIONS, name, run_id)

    written = storage.read_table(spark, PREDICTIONS, name, run_id)
    n_tiles = written.count()
    n_rejected = written.where(F.col("reject_reason").isNotNull()).count()
    seconds = timings["featurize, predict and write"]
    return {
        "run_id": run_id,
        "model": name,
        "accuracy": round(card["accuracy"], 4),
        "n_train": card["n_train"],
        "n_test": card["n_test"],
        "n_tiles": n_tiles,
        "n_scored": n_tiles - n_rejected,
        "n_rejected": n_rejected,
        "images_per_s": round(n_tiles / max(seconds, 1e-9), 2),
        "metrics_uri": card["metrics_uri"],
        "predictions_uri": predictions_uri,
        "seconds": round(time.time() - started, 2),
    }


def main(argv: list[str] | None = None) -> int:
    def go() -> dict[str, Any]:
        cfg = parse_args(argv)
        spark = get_spark(f"score-{cfg.output_model_name}")
        storage = open_storage(cfg.storage, spark)
        storage.check()
        return score(spark, cfg, storage)

    return cli.run(JOB, go)


if __name__ == "__main__":
    sys.exit(main())
