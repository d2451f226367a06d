"""Faults (issue #26): a scoring driver killed at random points, then run again, scores every tile
exactly once over its completed runs, and no lock left by a dead run blocks the next."""

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
        delay = rng.uniform(4.0, 20.0)
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
