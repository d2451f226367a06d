"""The layout: the import contract holds, entry points stay thin, and a model saved before the
library moved into packages still loads and scores alike."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAVED = ROOT / "tests" / "fixtures" / "saved_model"
ENTRY_POINTS = ("train", "score", "finetune", "label", "assess", "change", "runs", "convert", "tile")


def test_import_contract_holds():
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 kept, 0 broken" in done.stdout


def test_import_contract_catches_an_upward_import(tmp_path):
    """The contract is not vacuous: a runtime module that imports storage breaks it."""
    copy = tmp_path / "tree"
    shutil.copytree(ROOT / "jobs", copy / "jobs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "featurizers", copy / "featurizers", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    with (copy / "jobs" / "runtime" / "names.py").open("a") as f:
        f.write("\nfrom jobs.storage import open_storage  # noqa: E402,F401\n")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1
    assert "jobs.runtime.names -> jobs.storage" in done.stdout


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_points_are_thin(name):
    lines = (ROOT / "jobs" / f"{name}.py").read_text().splitlines()
    assert len(lines) <= 120, f"jobs/{name}.py has {len(lines)} lines"


def test_no_package_shadows_an_entry_point():
    packages = {p.name for p in (ROOT / "jobs").iterdir() if (p / "__init__.py").exists()}
    assert not packages & set(ENTRY_POINTS)


def test_model_saved_before_the_move_loads_and_scores_alike(spark, tmp_path):
    """tests/fixtures/saved_model was written by the code at 0761a5f (tests/make_saved_model.py):
    its stages name the classes of that layout, and its predictions were recorded then."""
    from pyspark.ml.feature import IndexToString

    from jobs.storage import TRAINED, LocalStorage

    storage = LocalStorage(tmp_path / "storage")
    shutil.copytree(SAVED / "storage", tmp_path / "storage")
    card = storage.load_card(TRAINED, "before_layout")
    assert card["labels"] == ["blue", "red"]
    model = storage.load_model(TRAINED, "before_layout")
    assert [type(s).__name__ for s in model.stages] == [
        "ImageFeaturizer",
        "StringIndexerModel",
        "LogisticRegressionModel",
        "IndexToString",
        "MaskRejects",
    ]
    assert isinstance(model.stages[3], IndexToString)
    rows = [(str(p), bytearray(p.read_bytes())) for p in sorted((SAVED / "images").iterdir())]
    frame = spark.createDataFrame(rows, "path string, image binary")
    scored = {Path(r["path"]).name: r for r in model.transform(frame).collect()}
    expected = json.loads((SAVED / "expected.json").read_text())
    assert set(scored) == set(expected)
    for name, want in expected.items():
        got = scored[name]
        assert got["predicted_label"] == want["predicted_label"], name
        assert (got["reject_reason"] is None) == (want["reject_reason"] is None), name
        if want["probability"] is not None:
            assert list(got["probability"]) == pytest.approx(want["probability"], abs=1e-5), name
    assert expected["broken.png"]["reject_reason"] is not None  # the reject mask still masks

    # Saved again through today's code: the one save path writes model and card together.
    storage.save_model(model, TRAINED, "again", card=card)
    assert storage.load_card(TRAINED, "again") == card
    assert storage.load_model(TRAINED, "again").stages[0].getOrDefault("modelName") == "tiny_conv"
