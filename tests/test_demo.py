"""The demo end to end through spark-submit, on a small sample of the real data."""

from __future__ import annotations

import json
import os

from conftest import DEMO

SUMMARY_KEYS = {"run_id", "model", "accuracy", "n_train", "n_test", "metrics_uri", "predictions_uri", "seconds"}


def test_train_summary_and_metrics(demo_run):
    storage, trained, _ = demo_run
    assert SUMMARY_KEYS <= set(trained)
    assert 800 < trained["n_train"] < 1000 and 240 < trained["n_test"] < 360  # 1.5% of 60k, 3% of 10k
    assert trained["accuracy"] >= 0.9
    metrics = json.loads(open(trained["metrics_uri"]).read())
    assert metrics["labels"] == [str(d) for d in range(10)]
    assert len(metrics["per_class"]) == 10 and len(metrics["confusion"]) == 10
    # The MNIST recipe (jobs/recipes.py): Lite0 pooled to 2 x 2 cells, no D4.
    assert (metrics["config"]["pretrained_model_type"], metrics["config"]["pool_grid"]) == ("efficientnet_lite0", 2)
    assert metrics["counts"]["images_per_second"] > 0
    assert storage.exists("pretrainedmodels", "efficientnet_lite0-grid2.json")


def test_score_predicts_every_tile(demo_run, spark):
    _, trained, scored = demo_run
    assert SUMMARY_KEYS <= set(scored)
    n_files = len([p for p in (DEMO / "tiles").iterdir() if not p.name.startswith(".")])
    assert scored["n_tiles"] == scored["n_scored"] == n_files == 133
    assert scored["accuracy"] == trained["accuracy"]
    rows = spark.read.parquet(scored["predictions_uri"])
    assert rows.count() == n_files
    assert rows.select("tile").distinct().count() == n_files
    assert rows.where("predicted_label is null or probability <= 0 or probability > 1").count() == 0
    assert os.path.exists(os.path.join(scored["predictions_uri"], "_SUCCESS"))
