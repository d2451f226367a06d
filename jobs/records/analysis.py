"""What the notebooks read: a model's run, its predictions, its images and tile grids.

Plotting stays in the notebooks; this module only finds and shapes data, so it is tested.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from jobs.datasets import mnist
from jobs.predictions.smoothing import TILE_NAME
from jobs.storage import PREDICTIONS, RUNS, TRAINED, Storage, StorageError


@dataclass
class ModelRun:
    card: dict[str, Any]
    metrics: dict[str, Any]
    test_predictions: pd.DataFrame


def load_model_run(storage: Storage, model: str) -> ModelRun:
    """The model's card, the metrics of the run that trained it, and its test predictions."""
    card = storage.load_card(TRAINED, model)
    metrics = storage.read_json(RUNS, card["run_id"], "metrics.json")
    return ModelRun(card, metrics, storage.read_frame(*metrics["predictions_path"]))


def scored_runs(storage: Storage, model: str) -> list[str]:
    """Completed scoring runs of ``model`` (those with ``_SUCCESS``), oldest first."""
    try:
        names = storage.list_files(PREDICTIONS, model)
    except StorageError:
        return []
    runs = {n.split("/", 1)[0] for n in names if "/" in n and not n.split("/", 1)[0].endswith(".csv")}
    return sorted(r for r in runs if storage.table_complete(PREDICTIONS, model, r))


def load_scored(storage: Storage, model: str, run_id: str | None = None) -> pd.DataFrame:
    """One scoring run's predictions (the newest when ``run_id`` is None)."""
    runs = scored_runs(storage, model)
    if not runs:
        raise StorageError(f"no completed scoring run of {model} in {storage.uri(PREDICTIONS, model)}")
    return storage.read_frame(PREDICTIONS, model, run_id or runs[-1])


def image(path: str, data_dir: str) -> np.ndarray:
    """The pixels behind a prediction row's ``path``: a file, or ``<idx file>#<index>``."""
    if "#" in path:
        name, index = path.rsplit("#", 1)
        idx = mnist.read_header(os.path.join(data_dir, name), mnist.IMAGES_MAGIC)
        return mnist.read_records(idx, int(index), int(index) + 1)[0]
    with open(path, "rb") as f:
        return np.asarray(Image.open(io.BytesIO(f.read())).convert("RGB"))


def examples(predictions: pd.DataFrame, n: int) -> pd.DataFrame:
    """Up to ``n`` scored rows, mistakes first."""
    scored = predictions[predictions["predicted_label"].notna()]
    wrong = scored[scored["predicted_label"] != scored["label"]]
    right = scored[scored["predicted_label"] == scored["label"]]
    return pd.concat([wrong, right]).head(n)


def tile_grids(scored: pd.DataFrame, labels: list[str]) -> dict[str, np.ndarray]:
    """Per source image, a (rows, cols) array of predicted class indices; -1 where no tile.

    Only tiles named as jobs/tile.py names them take part; rejected tiles stay -1.
    """
    index = {label: i for i, label in enumerate(labels)}
    cells: dict[str, list[tuple[int, int, int]]] = {}
    for tile, predicted in zip(scored["tile"], scored["predicted_label"], strict=True):
        m = TILE_NAME.match(tile)
        if m is None:
            continue
        value = index.get(predicted, -1) if predicted is not None else -1
        cells.setdefault(m["stem"], []).append((int(m["row"]), int(m["col"]), value))
    grids = {}
    for stem, items in sorted(cells.items()):
        grid = np.full((max(r for r, _, _ in items) + 1, max(c for _, c, _ in items) + 1), -1)
        for r, c, v in items:
            grid[r, c] = v
        grids[stem] = grid
    return grids
