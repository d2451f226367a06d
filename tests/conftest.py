"""Shared fixtures: one local Spark session, the seeded fixture tree, exported networks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
DEMO = ROOT / ".cache" / "demo"

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

import make_fixtures  # noqa: E402


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fixtures")
    make_fixtures.main(out)
    return out


@pytest.fixture(scope="session")
def spark():
    from jobs.spark import get_spark

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
    from jobs.pretrained import ensure_onnx

    return ensure_onnx(storage, "efficientnet_lite0")


def require(path: Path) -> Path:
    """Demo data that `make test` prepares; a clear failure, not a skip, when it is missing."""
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make data` (make test does it first)")
    return path
