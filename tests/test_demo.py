"""The MNIST demo end to end through spark-submit, on a small sample of the real data, and the analysis
notebooks run on its output (headless, through papermill) drawing their figures."""

from __future__ import annotations

import json
import os

import pytest
from conftest import DEMO, run_notebook

SUMMARY_KEYS = {"run_id", "model", "accuracy", "n_train", "n_test", "metrics_uri", "predictions_uri", "seconds"}
# A score summary names what the training run measured as the model's, never as its own.
SCORE_KEYS = {"run_id", "model", "model_test_accuracy", "model_n_train", "model_n_test", "model_metrics_uri"}


def test_train_summary_and_metrics(demo_run):
    storage, trained, _ = demo_run
    assert SUMMARY_KEYS <= set(trained)
    assert 800 < trained["n_train"] < 1000 and 240 < trained["n_test"] < 360  # 1.5% of 60k, 3% of 10k
    assert trained["accuracy"] >= 0.9
    metrics = json.loads(open(trained["metrics_uri"]).read())
    assert metrics["labels"] == [str(d) for d in range(10)]
    assert len(metrics["per_class"]) == 10 and len(metrics["confusion"]) == 10
    # The MNIST recipe (jobs/config/recipes.py): Lite0 pooled to 2 x 2 cells, no D4.
    assert (metrics["config"]["pretrained_model_type"], metrics["config"]["pool_grid"]) == ("efficientnet_lite0", 2)
    assert metrics["counts"]["images_per_second"] > 0
    assert storage.exists("pretrainedmodels", "efficientnet_lite0-grid2.json")


def test_score_predicts_every_tile(demo_run, spark):
    _, trained, scored = demo_run
    assert SCORE_KEYS | {"predictions_uri", "seconds"} <= set(scored)
    n_files = len([p for p in (DEMO / "tiles").iterdir() if not p.name.startswith(".")])
    assert scored["n_tiles"] == scored["n_scored"] == n_files == 133
    assert scored["model_test_accuracy"] == trained["accuracy"] and "accuracy" not in scored
    rows = spark.read.parquet(scored["predictions_uri"])
    assert rows.count() == n_files
    assert rows.select("tile").distinct().count() == n_files
    assert rows.where("predicted_label is null or probability <= 0 or probability > 1").count() == 0
    assert os.path.exists(os.path.join(scored["predictions_uri"], "_SUCCESS"))


def _check(nb) -> int:
    """Every code cell ran without error; returns how many figures were drawn."""
    figures = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert cell.execution_count is not None, cell.source[:80]
        for output in cell.outputs:
            assert output.output_type != "error", output.get("evalue")
            figures += "image/png" in output.get("data", {})
    return figures


def test_prediction_analysis(demo_run, tmp_path):
    storage, trained, _ = demo_run
    params = {"storage": str(storage.root), "model": trained["model"]}
    nb = run_notebook("prediction_analysis.ipynb", params, tmp_path / "out.ipynb")
    assert _check(nb) == 3  # confusion matrices, example grid, tile map
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert f"accuracy {trained['accuracy']:.4f}" in text
    assert "133 tiles, 0 rejected" in text


def test_run_comparison(demo_run, tmp_path):
    storage, trained, _ = demo_run
    nb = run_notebook("run_comparison.ipynb", {"storage": str(storage.root)}, tmp_path / "out.ipynb")
    assert _check(nb) == 1
    text = "".join(str(o.get("data", {}).get("text/plain", "")) for c in nb.cells for o in c.get("outputs", []))
    assert trained["run_id"] in text


def test_a_failing_notebook_is_kept_executed_up_to_its_error(tmp_path):
    import papermill

    out = tmp_path / "failed.ipynb"
    with pytest.raises(papermill.PapermillExecutionError):
        run_notebook("run_comparison.ipynb", {"storage": str(tmp_path / "no_such_root")}, out)
    kept = json.loads(out.read_text())
    errors = [o for c in kept["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    tags = [t for c in kept["cells"] for t in c["metadata"].get("tags", [])]
    assert len(errors) == 1 and "parameters" in tags and "injected-parameters" in tags
