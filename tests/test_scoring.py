"""Batch scoring for schedules: top-k, incremental runs, the lock, 3x3 smoothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import pytest
from make_fixtures import AERIAL_LABELS
from pyspark.sql import functions as F

from jobs import config, score
from jobs.predictions import smoothing as grid
from jobs.runtime import errors as exits
from jobs.storage import PREDICTIONS, LocalStorage


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
        assert r["model_version"] == model_storage.load_card("trainedmodels", "m")["run_id"]
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
    # A tile truncated when first seen is a reject that can heal: repaired, the next run scores it.
    good = sorted((fixtures / "aerial" / "train" / "Barren").iterdir())[3]
    (tiles / "late.png").write_bytes(good.read_bytes()[:200])
    shutil.copy(good, tiles / "new.png")
    broken = _score(spark, root, tiles, incremental=True)
    assert broken["n_tiles"] == 2 and broken["n_rejected"] == 1
    assert set(broken["rejected_by_reason"]) <= {"truncated", "decode_error"}
    (tiles / "late.png").write_bytes(good.read_bytes())
    healed = _score(spark, root, tiles, incremental=True)
    assert healed["n_tiles"] == 1 and healed["n_rejected"] == 0
    assert _score(spark, root, tiles, incremental=True)["n_tiles"] == 0  # scored now: done


def test_lock_liveness_takeover_and_fencing(spark, model_storage, fixtures, capsys, monkeypatch):
    import socket
    import subprocess

    lock = model_storage.root / PREDICTIONS / "m" / "_LOCK"
    lock.parent.mkdir(parents=True, exist_ok=True)
    tiles = str(fixtures / "aerial" / "test")
    args = ["--output_model_name", "m", "--tiles", tiles, "--storage", str(model_storage.root)]
    here = socket.gethostname()
    # A live holder on this host (this very process) with a fresh heartbeat blocks, however old its lock.
    now = time.time()
    lock.write_text(json.dumps({"run_id": "live", "host": here, "pid": os.getpid(), "since": 0, "heartbeat": now}))
    assert score.main(args) == exits.EXIT_LOCKED
    assert "held by run live" in capsys.readouterr().err
    # A live pid whose heartbeat is from 1970 is another process that reused the pid: taken over.
    lock.write_text(json.dumps({"run_id": "reused", "host": here, "pid": os.getpid(), "since": 0, "heartbeat": 0}))
    assert score.main(args) == exits.EXIT_OK
    assert "took over" in capsys.readouterr().err
    # An unreadable lock (empty, as a run killed between create and write leaves it; or garbage)
    # is stale once its file is older than the timeout, and blocks while it is younger.
    for body in (b"", b"garbage"):
        lock.write_bytes(body)
        assert score.main([*args, "--lock_timeout_s", "300"]) == exits.EXIT_LOCKED
        assert "unreadable lock" in capsys.readouterr().err
        os.utime(lock, (now - 600, now - 600))
        assert score.main([*args, "--lock_timeout_s", "300"]) == exits.EXIT_OK
        assert "took over" in capsys.readouterr().err
    # A holder on this host whose process is gone: taken over at once, however young its lock.
    gone = subprocess.Popen(["true"])
    gone.wait()
    now = time.time()
    lock.write_text(json.dumps({"run_id": "dead", "host": here, "pid": gone.pid, "since": now, "heartbeat": now}))
    assert score.main(args) == exits.EXIT_OK
    assert "took over" in capsys.readouterr().err and not lock.exists()
    # Another host: alive while its heartbeat is fresh, dead once it is older than the timeout.
    lock.write_text(json.dumps({"run_id": "far", "host": "elsewhere", "pid": 1, "since": now, "heartbeat": now}))
    assert score.main(args) == exits.EXIT_LOCKED
    lock.write_text(json.dumps({"run_id": "far", "host": "elsewhere", "pid": 1, "since": 0, "heartbeat": now - 600}))
    assert score.main([*args, "--lock_timeout_s", "300"]) == exits.EXIT_OK
    capsys.readouterr()

    # Fencing: a run whose lock is taken over while it scores stops before its _SUCCESS.
    original = LocalStorage.write_table

    def stolen(self, df, *parts, **kwargs):
        lock.write_text(json.dumps({"run_id": "thief", "host": "elsewhere", "token": "t", "heartbeat": time.time()}))
        return original(self, df, *parts, **kwargs)

    monkeypatch.setattr(LocalStorage, "write_table", stolen)
    before = {p.name for p in (model_storage.root / PREDICTIONS / "m").iterdir()}
    assert score.main(args) == exits.EXIT_LOCKED
    assert "taken over by another run; stopped before committing" in capsys.readouterr().err
    new = {p for p in (model_storage.root / PREDICTIONS / "m").iterdir() if p.name not in before}
    assert new and not any((p / "_SUCCESS").exists() for p in new)  # nothing committed
    assert json.loads(lock.read_text())["run_id"] == "thief"  # and the thief's lock is left alone
    lock.unlink()


def test_lock_heartbeat_keeps_a_long_run_alive(tmp_path):
    from jobs.storage import lock as run_lock

    store = LocalStorage(tmp_path)
    with run_lock.held(store, ("_LOCK",), "long", timeout_s=0.5) as held:
        first = json.loads((tmp_path / "_LOCK").read_text())["heartbeat"]
        time.sleep(0.6)
        body = json.loads((tmp_path / "_LOCK").read_text())
        assert body["heartbeat"] > first and body["token"] == held.token
        held.check()
        # another process on another host sees it alive
        other = run_lock.RunLock(store, ("_LOCK",), "other", timeout_s=0.5)
        with pytest.raises(run_lock.LockedError, match="held by run long"):
            other.acquire()
    assert not (tmp_path / "_LOCK").exists()


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


def test_smoothing_pools_a_grid_per_folder_not_per_name(spark):
    """Same tile names in a/ and b/: a/'s votes never change b/'s labels, and no row is doubled."""
    rows = [(f"/t/a/img_r{r:03d}_c{c:03d}.png", "B") for r in range(3) for c in range(3)]
    rows += [("/t/b/img_r001_c001.png", "A")]
    df = spark.createDataFrame(rows, "path string, predicted_label string").withColumn(
        "tile", F.element_at(F.split("path", "/"), -1)
    )
    out = grid.smooth(df).collect()
    assert len(out) == len(rows)
    by_path = {r["path"]: r["smoothed_label"] for r in out}
    assert by_path["/t/b/img_r001_c001.png"] == "A"  # alone in its folder: keeps its own
    assert by_path["/t/a/img_r001_c001.png"] == "B"


def test_smooth_flag_adds_the_column(spark, model_storage, fixtures, tmp_path):
    tiles = tmp_path / "grid"
    tiles.mkdir()
    sources = sorted((fixtures / "aerial" / "train" / "Forest").iterdir())
    for i, src in enumerate(sources[:4]):
        shutil.copy(src, tiles / f"scene_r{i // 2:03d}_c{i % 2:03d}.png")
    summary = _score(spark, model_storage, tiles, smooth="3x3")
    rows = spark.read.parquet(summary["predictions_uri"]).collect()
    assert len(rows) == 4 and all(r["smoothed_label"] in AERIAL_LABELS for r in rows)


def test_every_tile_is_accounted_for_and_progress_is_reported(
    spark, model_storage, fixtures, tmp_path, capsys, monkeypatch
):
    from PIL import Image

    from jobs.runtime import spark as spark_mod

    tiles = tmp_path / "tiles"
    tiles.mkdir()
    src = sorted((fixtures / "aerial" / "test" / "Forest").iterdir())[0]
    shutil.copy(src, tiles / "plain.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.open(src).convert("RGB").save(tiles / "turned.jpg", exif=exif.tobytes())
    (tiles / ".hidden.png").write_bytes(src.read_bytes())
    os.mkfifo(tiles / "pipe.png")
    monkeypatch.setattr(spark_mod, "PROGRESS_S", 0.2)
    args = ["--output_model_name", "m", "--tiles", str(tiles), "--storage", str(model_storage.root)]
    assert score.main(args) == exits.EXIT_OK
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["n_tiles"] == 2 and summary["skipped_by_reason"] == {"hidden": 1, "not_a_file": 1}
    assert summary["pixel_notes"] == {"exif_rotated": 1} and summary["rejected_by_reason"] == {}
    assert "tasks of the running stages done after" in err

    empty = tmp_path / "empty"
    empty.mkdir()
    assert score.main([*args[:2], "--tiles", str(empty), *args[4:]]) == exits.EXIT_BAD_INPUT
    assert "no files to score" in capsys.readouterr().err


def test_progress_counts_images_as_tasks_end_not_tasks(spark, model_storage, fixtures, monkeypatch, capsys):
    """A step's progress line says images done of the step's images, their rate and the time left
    (counted by the featurizers' accumulators as each task ends), not "0/2 tasks" for minutes."""
    from jobs.runtime import progress
    from jobs.runtime import spark as spark_mod

    monkeypatch.setattr(spark_mod, "PROGRESS_S", 0.1)
    counter = progress.image_counter(spark)

    def slow(part):  # 8 tasks of 5 images, one at a time on each core
        time.sleep(0.4)
        counter.add(5)
        return part

    with spark_mod.timed("test", "featurize", {}, spark, images=40):
        spark.sparkContext.parallelize(range(40), 8).mapPartitions(slow).count()
    err = capsys.readouterr().err
    done = [int(n) for n in re.findall(r"featurize: (\d+)/40 images \(\d+ %\) after \d+ s, [\d.]+ images/s", err)]
    assert done and all(n % 5 == 0 for n in done) and done == sorted(done)
    assert "s left" in err and "tasks of the running stages" not in err.split("images (")[-1]
    # The featurizer counts each image it is given, once.
    before = progress.images_done()
    n = _score(spark, model_storage, fixtures / "aerial" / "test")["n_tiles"]
    assert progress.images_done() - before == n


def test_a_damaged_saved_model_is_refused_in_one_line(spark, model_storage, fixtures, tmp_path, capsys):
    root = LocalStorage(tmp_path / "copy")
    shutil.copytree(model_storage.root / "trainedmodels", root.root / "trainedmodels")
    model = root.root / "trainedmodels" / "m"
    args = ["--output_model_name", "m", "--tiles", str(fixtures / "aerial" / "test"), "--storage", str(root.root)]
    onnx = next(model.glob("stages/0_*/model.onnx"))
    onnx.write_bytes(onnx.read_bytes()[:-100])
    assert score.main(args) == exits.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert "corrupted (its sha256 differs" in err[-1] and not any("Traceback" in line for line in err)
    shutil.rmtree(next(model.glob("stages/3_*")))
    assert score.main(args) == exits.EXIT_BAD_INPUT
    assert "incomplete saved model, stage 3_" in capsys.readouterr().err
