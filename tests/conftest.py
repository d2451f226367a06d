"""Shared fixtures: one local Spark session, the seeded fixture tree, exported networks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
DEMO = ROOT / ".cache" / "demo"

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
# The tests' JVMs live seconds to a minute and the two cores are the suite's limit: the JIT's
# first tier only (no C2 compiler threads) cuts a test job's CPU by ~30% (MNIST demo train: 54 → 38 s
# of user CPU, 45 → 39 s wall). It changes speed, not results; users' JVMs keep both tiers.
# SPARK_SUBMIT_OPTS reaches every driver (spark-submit, this process's session, the Connect
# server); the cluster's daemons and executors are given the same below.
JVM_TEST_OPTS = "-XX:TieredStopAtLevel=1"
os.environ.setdefault("SPARK_SUBMIT_OPTS", JVM_TEST_OPTS)

import make_fixtures  # noqa: E402

# The settings the older tests were written for (the aerial recipe's defaults are tested in
# test_aerial.py): EfficientNet-Lite0 at its own crop, no D4, no validation split.
LITE0 = {"pretrained_model_type": "efficientnet_lite0", "d4": False, "image_size": 0, "tune": False, "val_ratio": 0.0}
# The frozen network in fp32: fine-tuning and precision auto (the aerial default's) are
# test_finetune's and test_quantize's.
LITE0 |= {"finetune": False, "precision": "fp32"}
LITE0_FLAGS = ["--pretrained_model_type", "efficientnet_lite0", "--no-d4", "--image_size", "0", "--no-tune"]
LITE0_FLAGS += ["--val_ratio", "0", "--no_finetune", "--precision", "fp32"]


# Slowest last (spark-submit end to end, Azurite, the standalone cluster); the rest keep
# pytest's order. Measured on 2 cores: see the durations `make test` prints.
SLOW_LAST = (
    "test_faults",
    "test_trust",
    "test_install",
    "test_connect",
    "test_blob",
    "test_demo",
    "test_ucmerced_end_to_end",
    "test_finetune",
    "test_cluster",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.module.__name__ if item.module else ""
        return SLOW_LAST.index(name) + 1 if name in SLOW_LAST else 0

    items.sort(key=rank)  # stable: order within a module is kept


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fixtures")
    make_fixtures.main(out)
    return out


@pytest.fixture(scope="session", autouse=True)
def spark():
    """One session per test process, started before its first test: a test that calls a job's
    ``main()`` first would otherwise start the JVM itself, without SynapseML's jars (they can only
    be added where the JVM starts), and the synapseml engine tests after it would fail."""
    from jobs.runtime.spark import get_spark

    session = get_spark("tests", synapseml=True)  # both featurizer engines are tested
    yield session
    session.stop()


@pytest.fixture(scope="session")
def storage(tmp_path_factory: pytest.TempPathFactory):
    from jobs.storage import LocalStorage

    return LocalStorage(tmp_path_factory.mktemp("storage"))


@pytest.fixture(scope="session")
def lite0_onnx(storage) -> str:
    """EfficientNet-Lite0 with its real ImageNet weights, exported once for the session."""
    from jobs.workflows.networks import ensure_onnx

    return ensure_onnx(storage, "efficientnet_lite0")


@pytest.fixture(scope="session")
def model_storage(spark, fixtures, storage, lite0_onnx, tmp_path_factory):
    """A storage root with one aerial model ``m`` (Lite0 + LR; the network export is reused).
    test_scoring writes its runs into it; other modules copy it first."""
    import shutil

    from jobs import config, train
    from jobs.storage import LocalStorage

    root = LocalStorage(tmp_path_factory.mktemp("scoring"))
    shutil.copytree(storage.root / "pretrainedmodels", root.root / "pretrainedmodels")
    cfg = config.TrainConfig(
        output_model_name="m", dataset="aerial", data=str(fixtures / "aerial"), storage=str(root.root), **LITE0
    )
    train.train(spark, cfg.validate(), root)
    return root


def pixel_model(name: str, data: Path, storage: Path, **settings):
    """The configuration of a small raw-pixel model (fast: tests of what comes after training)."""
    from jobs import config

    base = {"pretrained_model_type": "pixels", "pool_grid": 1, "d4": False, "image_size": 0, "tune": False}
    return config.TrainConfig(
        output_model_name=name, data=str(data), storage=str(storage), **base, **settings
    ).validate()


def require(path: Path) -> Path:
    """Demo data that `make test` prepares; a clear failure, not a skip, when it is missing."""
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make data` (make test does it first)")
    return path


def submit_command(
    script: str, *args: str, master: str | None = None, spark_conf: dict[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The spark-submit command line and environment for a job, as a user would run it."""
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    submit_bin = os.path.join(os.path.dirname(sys.executable), "spark-submit")
    log4j = f"-Dlog4j2.configurationFile={ROOT / 'jobs' / 'log4j2.properties'}"
    options = ["--master", master] if master else []
    for key, value in (spark_conf or {}).items():
        options += ["--conf", f"{key}={value}"]
    return [submit_bin, *options, "--driver-java-options", log4j, str(ROOT / "jobs" / script), *args], env


def submit(script: str, *args: str, master: str | None = None) -> dict:
    cmd, env = submit_command(script, *args, master=master)
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return summary_of(done.stdout)


def summary_of(stdout: str) -> dict:
    # stdout carries the JSON summary and nothing else (progress goes to the launcher's stderr).
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, lines[:20]
    return json.loads(lines[0])


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    require(DEMO / "mnist")
    require(DEMO / "tiles")
    storage = tmp_path_factory.mktemp("demo_storage")
    common = ["--conf", "conf/mnist_demo.toml", "--storage", str(storage)]
    # 40 optimizer iterations, not the conf's 200: the same accuracy on 866 images (0.950 vs 0.947) in half the fit.
    sample = ["--train_sample_frac", "0.015", "--test_sample_frac", "0.03", "--max_iter", "40"]
    trained = submit("train.py", *common, *sample)
    scored = submit("score.py", *common)
    from jobs.storage import LocalStorage

    return LocalStorage(storage), trained, scored


def run_notebook(name: str, params: dict, out: Path):
    """Runs ``notebooks/<name>`` headless with papermill, as the README says, from the repository root."""
    import papermill

    return papermill.execute_notebook(
        str(ROOT / "notebooks" / name),
        str(out),
        parameters=params,
        kernel_name="python3",
        cwd=str(ROOT),
        progress_bar=False,
        execution_timeout=600,
    )
