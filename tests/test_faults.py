"""Faults (issue #26), in real spark-submit runs: a scoring driver killed at random points, then run
again, scores every tile exactly once over its completed runs (no lock left by a dead run blocks
the next); tiles deleted or swapped for FIFOs at random moments while a run reads them end as
rows with their reasons, never as a hang, and are scored once repaired."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time

from conftest import ROOT, pixel_model, submit_command, summary_of

from jobs import train
from jobs.storage import PREDICTIONS, LocalStorage


def test_a_driver_killed_at_random_points_then_rerun_scores_each_tile_exactly_once(spark, fixtures, tmp_path):
    root = LocalStorage(tmp_path / "store")
    train.train(spark, pixel_model("px", fixtures / "aerial", root.root), root)
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    sources = sorted(p for p in (fixtures / "aerial").rglob("*.png"))
    for i in range(240):  # enough work that a kill can land while windows are scored and written
        shutil.copy(sources[i % len(sources)], tiles / f"t{i:03d}.png")
    args = ["--output_model_name", "px", "--storage", str(root.root), "--tiles", str(tiles), "--incremental"]
    cmd, env = submit_command("score.py", *args, master="local[1]")
    rng = random.Random(26)
    kills = []
    for _ in range(3):
        delay = rng.uniform(4.0, 12.0)  # start-up takes ~5 s, scoring the 240 tiles ~25 s more
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver, its JVM and its Python workers at once
            proc.wait()
            kills.append(round(delay, 1))
        time.sleep(0.5)
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    last = summary_of(done.stdout)
    assert kills, "no run was killed: the delays are too long for this machine"
    runs = [p for p in (root.root / PREDICTIONS / "px").iterdir() if p.is_dir() and (p / "_SUCCESS").exists()]
    paths = [r["path"] for p in runs for r in spark.read.parquet(str(p)).select("path").collect()]
    assert len(paths) == len(set(paths)), f"a tile scored twice after kills at {kills} s"
    assert {p.rsplit("/", 1)[1] for p in paths} == {p.name for p in tiles.iterdir()}, f"kills at {kills} s"
    assert last["n_rejected"] == 0


def test_tiles_deleted_and_swapped_for_fifos_while_a_run_reads_them(spark, fixtures, tmp_path):
    """Tiles vanish or become FIFOs at seeded random moments of a real scoring run: it ends (no
    read blocks), every tile it listed has one row, scored or rejected with why, and an
    incremental rerun after the repair scores what was rejected."""
    root = LocalStorage(tmp_path / "store")
    train.train(spark, pixel_model("px", fixtures / "aerial", root.root), root)
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    sources = sorted(p for p in (fixtures / "aerial").rglob("*.png"))
    for i in range(240):
        shutil.copy(sources[i % len(sources)], tiles / f"t{i:03d}.png")
    rng = random.Random(11)
    victims = rng.sample(sorted(p.name for p in tiles.iterdir()), 12)
    args = ["--output_model_name", "px", "--storage", str(root.root), "--tiles", str(tiles), "--incremental"]
    cmd, env = submit_command("score.py", *args, master="local[1]")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for n, name in enumerate(victims):
        time.sleep(rng.uniform(0.5, 1.5))
        (tiles / name).unlink()
        if n % 2:
            os.mkfifo(tiles / name)  # nothing ever writes to it: a blocking open would wait forever
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    first = summary_of(out)
    rows = spark.read.parquet(first["predictions_uri"]).select("path", "reject_reason").collect()
    names = [r["path"].rsplit("/", 1)[1] for r in rows]
    assert len(names) == len(set(names)) == first["n_tiles"]  # one row a listed tile
    for r, name in zip(rows, names, strict=True):
        if name not in victims:
            assert r["reject_reason"] is None, (name, r["reject_reason"])
        else:  # read before it went, or rejected saying why
            assert r["reject_reason"] is None or r["reject_reason"].split(":")[0] in ("vanished", "not_a_file")
    for name in victims:  # repaired: the next incremental run scores what the first could not
        (tiles / name).unlink(missing_ok=True)
        shutil.copy(sources[0], tiles / name)
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    runs = [p for p in (root.root / PREDICTIONS / "px").iterdir() if p.is_dir() and (p / "_SUCCESS").exists()]
    scored = [r["path"] for p in runs for r in spark.read.parquet(str(p)).where("reject_reason is null").collect()]
    assert sorted(p.rsplit("/", 1)[1] for p in scored) == sorted(p.name for p in tiles.iterdir())  # each once
