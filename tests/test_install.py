"""The package as a managed Spark runtime takes it: installed without the spark extra, scoring on
the pyspark the runtime provides."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import py4j
import pyspark
import pytest
from conftest import ROOT, summary_of

from jobs.storage import TRAINED, LocalStorage

UV = [sys.executable, "-m", "uv"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The package's wheel, built as `make dist` would but through its sdist, so that nothing is
    built inside the checkout (setuptools would leave a build/ folder there)."""
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([*UV, "build", "-q", "--out-dir", str(out), str(ROOT)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    return next(out.glob("*.whl"))


# Both ends of the requirements: the newest releases they allow, and the oldest of each direct one.
@pytest.mark.parametrize("resolution", ["highest", "lowest-direct"])
def test_a_fresh_venv_without_the_spark_extra_scores_on_a_provided_pyspark(
    model_storage, fixtures, wheel, tmp_path, resolution
):
    venv = tmp_path / "venv"
    subprocess.run([*UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [*UV, "pip", "install", "-q", "--resolution", resolution, "--python", str(python), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    # What a runtime (Databricks, Synapse, EMR) puts on the path: its own pyspark and py4j.
    provided = tmp_path / "provided"
    provided.mkdir()
    for package in (pyspark, py4j):
        (provided / package.__name__).symlink_to(Path(package.__file__).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_")}  # workers: the fresh venv
    probe = "import importlib.util as u, jobs; print(jobs.__file__); print(u.find_spec('pyspark'))"
    alone = subprocess.run([python, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert alone.returncode == 0, alone.stderr[-2000:]
    where, spec = alone.stdout.splitlines()
    assert where.startswith(str(venv)) and spec == "None"  # the installed package, and no pyspark of its own

    root = LocalStorage(tmp_path / "storage")
    shutil.copytree(model_storage.root / TRAINED, root.root / TRAINED)
    env["PYTHONPATH"] = str(provided)
    args = ["--output_model_name", "m", "--tiles", str(fixtures / "aerial" / "test"), "--storage", str(root.root)]
    done = subprocess.run(
        [venv / "bin" / "landuse-score", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = summary_of(done.stdout)
    assert (summary["n_tiles"], summary["n_scored"]) == (9, 9)
    assert root.table_complete("predictions", "m", summary["run_id"])
