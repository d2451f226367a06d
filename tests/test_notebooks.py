"""The analysis notebooks run end to end on a fresh demo run and draw their figures."""

from __future__ import annotations

import json

import pytest
from conftest import run_notebook


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
