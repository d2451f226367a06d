"""The jobs on a real standalone cluster (master + 2 one-core workers on 127.0.0.1)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cluster import Cluster
from conftest import DEMO, LITE0_FLAGS, ROOT, require, submit, submit_command, summary_of

from jobs import config, score
from jobs.storage import LocalStorage


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def cluster_model(cluster, fixtures, storage, lite0_onnx, tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster_storage")
    shutil.copytree(storage.root / "pretrainedmodels", root / "pretrainedmodels")
    trained = submit(
        "train.py",
        "--dataset",
        "aerial",
        "--data",
        str(fixtures / "aerial"),
        "--storage",
        str(root),
        "--output_model_name",
        "aerial",
        *LITE0_FLAGS,
        master=cluster.url,
    )
    return LocalStorage(root), trained


def score_args(tiles: Path, root: LocalStorage) -> list[str]:
    return ["score.py", "--output_model_name", "aerial", "--tiles", str(tiles), "--storage", str(root.root)]


def test_train_and_score_use_both_workers_and_match_local_mode(cluster, cluster_model, fixtures, spark):
    root, trained = cluster_model
    tiles = fixtures / "aerial" / "test"
    scored = submit(*score_args(tiles, root), master=cluster.url)
    assert scored["model_version"] == trained["run_id"]
    assert len(scored["executor_tasks"]) == 2 and all(n > 0 for n in scored["executor_tasks"].values())
    local = score.score(
        spark, config.ScoreConfig(output_model_name="aerial", tiles=str(tiles), storage=str(root.root)).validate(), root
    )
    on_cluster = {r["tile"]: r for r in spark.read.parquet(scored["predictions_uri"]).collect()}
    here = {r["tile"]: r for r in spark.read.parquet(local["predictions_uri"]).collect()}
    assert set(on_cluster) == set(here) and len(here) == 9
    for tile, row in here.items():
        assert on_cluster[tile]["predicted_label"] == row["predicted_label"]
        assert on_cluster[tile]["probability"] == pytest.approx(row["probability"], abs=1e-6)


def test_losing_a_worker_mid_run_still_scores_every_tile_once(cluster, cluster_model, tmp_path, spark):
    root, _ = cluster_model
    sources = sorted(p for p in require(DEMO / "tiles").iterdir() if p.suffix == ".png")
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    for i in range(800):
        shutil.copy(sources[i % len(sources)], tiles / f"t{i:05d}.png")
    cmd, env = submit_command(*score_args(tiles, root), master=cluster.url)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not cluster.state()["activeapps"]:
            time.sleep(0.5)
        time.sleep(12)  # the app's executors are featurizing by now
        running_when_killed = proc.poll() is None
        cluster.kill_worker(2)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:  # never leave a driver behind
            proc.kill()
    assert running_when_killed, "the scoring run ended before the worker was killed"
    assert proc.returncode == 0, err[-3000:]
    summary = summary_of(out)  # stdout: the summary alone, progress went to stderr
    rows = spark.read.parquet(summary["predictions_uri"]).select("tile").collect()
    assert summary["n_tiles"] == len(rows) == len({r["tile"] for r in rows}) == 800
    assert sum(w["state"] != "ALIVE" for w in cluster.state()["workers"]) == 1
