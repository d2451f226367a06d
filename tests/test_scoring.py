"""Batch scoring for schedules: top-k, incremental runs, the lock, 3x3 smoothing."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from conftest import LITE0
from make_fixtures import AERIAL_LABELS

from jobs import cli, config, grid, score, train
from jobs.storage import PREDICTIONS, LocalStorage


@pytest.fixture(scope="module")
def model_storage(spark, fixtures, storage, lite0_onnx, tmp_path_factory):
    """A fresh storage root with one aerial model (the network export is reused)."""
    root = LocalStorage(tmp_path_factory.mktemp("scoring"))
    shutil.copytree(storage.root / "pretrainedmodels", root.root / "pretrainedmodels")
    cfg = config.TrainConfig(
        output_model_name="m", dataset="aerial", data=str(fixtures / "aerial"), storage=str(root.root), **LITE0
    )
    train.train(spark, cfg.validate(), root)
    return root


def _score(spark, root, tiles, **kwargs):
    cfg = config.ScoreConfig(output_model_name="m", tiles=str(tiles), storage=str(root.root), **kwargs)
    return score.score(spark, cfg.validate(), root)


def test_top_k_is_sorted_and_starts_with_the_prediction(spark, model_storage, fixtures):
    summary = _score(spark, model_storage, fixtures / "aerial" / "test", top_k=2, csv=True)
    rows = spark.read.parquet(summary["predictions_uri"]).collect()
    assert len(rows) == summary["n_tiles"] == 9
    for r in rows:
        assert len(r["top_k"]) == 2 and r["top_k"][0]["probability"] >= r["top_k"][1]["probability"]
        assert r["top_k"][0]["label"] == r["predicted_label"] and r["top_k"][0]["label"] in AERIAL_LABELS
        assert r["top_k"][0]["probability"] == pytest.approx(r["probability"])
        assert r["model_version"] == json.loads((model_storage.root / "trainedmodels" / "m.json").read_text())["run_id"]
    assert not (model_storage.root / PREDICTIONS / "m" / "_LOCK").exists()  # released
    table = spark.read.option("header", True).csv(summary["csv_uri"]).collect()
    assert sorted(r["tile"] for r in table) == sorted(r["tile"] for r in rows)
    assert all(json.loads(r["top_k"])[0]["label"] == r["predicted_label"] for r in table)


def test_incremental_scores_each_tile_once(spark, model_storage, fixtures, tmp_path):
    tiles = tmp_path / "tiles"
    shutil.copytree(fixtures / "aerial" / "train" / "Forest", tiles)  # 6 tiles
    root = LocalStorage(tmp_path / "store")
    shutil.copytree(model_storage.root / "trainedmodels", root.root / "trainedmodels")
    shutil.copytree(model_storage.root / "runs", root.root / "runs")
    first = _score(spark, root, tiles, incremental=True)
    assert first["n_tiles"] == 6
    again = _score(spark, root, tiles, incremental=True)
    assert again["n_tiles"] == 0 and again["predictions_uri"] is None
    assert len(list((root.root / PREDICTIONS / "m").iterdir())) == 1  # nothing new written
    # New tiles arrive, and one run dies before committing: its tiles are scored again.
    for src in sorted((fixtures / "aerial" / "train" / "Barren").iterdir())[:3]:
        shutil.copy(src, tiles / src.name)
    interrupted = _score(spark, root, tiles, incremental=True)
    (root.root / PREDICTIONS / "m" / interrupted["run_id"] / "_SUCCESS").unlink()
    rerun = _score(spark, root, tiles, incremental=True)
    assert interrupted["n_tiles"] == rerun["n_tiles"] == 3
    complete = [p for p in (root.root / PREDICTIONS / "m").iterdir() if (p / "_SUCCESS").exists()]
    paths = [r["path"] for p in complete for r in spark.read.parquet(str(p)).select("path").collect()]
    assert len(paths) == len(set(paths)) == 9


def test_lock_blocks_a_second_run_and_stale_locks_are_taken_over(spark, model_storage, fixtures, capsys):
    lock = model_storage.root / PREDICTIONS / "m" / "_LOCK"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"run_id": "other", "since": time.time()}))
    args = [
        "--output_model_name",
        "m",
        "--tiles",
        str(fixtures / "aerial" / "test"),
        "--storage",
        str(model_storage.root),
    ]
    assert score.main(args) == cli.EXIT_LOCKED
    assert "held by run other" in capsys.readouterr().err
    lock.write_text(json.dumps({"run_id": "dead", "since": time.time() - 7200}))
    assert score.main([*args, "--lock_timeout_s", "3600"]) == cli.EXIT_OK
    assert not lock.exists()


def test_smoothing_takes_the_neighbourhood_majority(spark):
    # 3 x 3 grid of "B" with an "A" in the middle, plus a lone tile elsewhere and one without a position.
    rows = [(f"img_r{r:03d}_c{c:03d}.png", "A" if (r, c) == (1, 1) else "B") for r in range(3) for c in range(3)]
    rows += [("img_r009_c009.png", "A"), ("loose.png", "A"), ("other_r001_c001.png", None)]
    df = spark.createDataFrame(rows, "tile string, predicted_label string")
    out = {r["tile"]: r["smoothed_label"] for r in grid.smooth(df).collect()}
    assert out["img_r001_c001.png"] == "B"  # 8 neighbours outvote it
    assert out["img_r000_c000.png"] == "B"
    assert out["img_r009_c009.png"] == "A"  # alone: keeps its own
    assert out["loose.png"] is None and out["other_r001_c001.png"] is None
    assert len(out) == len(rows)


def test_smooth_flag_adds_the_column(spark, model_storage, fixtures, tmp_path):
    tiles = tmp_path / "grid"
    tiles.mkdir()
    sources = sorted((fixtures / "aerial" / "train" / "Forest").iterdir())
    for i, src in enumerate(sources[:4]):
        shutil.copy(src, tiles / f"scene_r{i // 2:03d}_c{i % 2:03d}.png")
    summary = _score(spark, model_storage, tiles, smooth="3x3")
    rows = spark.read.parquet(summary["predictions_uri"]).collect()
    assert len(rows) == 4 and all(r["smoothed_label"] in AERIAL_LABELS for r in rows)
