"""Optional MLflow logging of train runs, on when ``MLFLOW_TRACKING_URI`` is set.

Logs the run's parameters (CNN, classifier and its parameters, data set, sample fractions),
its metrics (accuracy, macro-F1, per-class F1, calibration error, featurization images/s,
seconds) and, as artifacts, ``metrics.json`` and the network's model card. MLflow is not a
dependency of the jobs: without the variable nothing is imported.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from jobs.runtime.redact import redact_obj

EXPERIMENT = "spark-image-classification"


def log_run(record: dict[str, Any], card: dict[str, Any] | None) -> str | None:
    """Logs one train run (``card``: its network's model card); returns the MLflow run id."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    import mlflow

    record = redact_obj(record)
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT))
    params = {
        "pretrained_model_type": record["pretrained_model_type"],
        "classifier": record["classifier"],
        "dataset": record["dataset"],
        "train_sample_frac": record["sample_frac"]["train"],
        "test_sample_frac": record["sample_frac"]["test"],
        "engine": record["config"]["engine"],
        **{f"classifier.{k}": v for k, v in record["classifier_params"].items()},
    }
    metrics = {
        "accuracy": record["accuracy"],
        "macro_f1": record["macro_f1"],
        "seconds": record["seconds"],
        **{f"f1.{_key(c['label'])}": c["f1"] for c in record["per_class"]},
    }
    if (record.get("calibration") or {}).get("ece") is not None:  # None: no probabilities (GBT)
        metrics["calibration_ece"] = record["calibration"]["ece"]
    speed = record["counts"]["images_per_second"]
    if speed is not None:  # None: features came from the cache
        metrics["featurize_images_per_s"] = speed
    with mlflow.start_run(run_name=record["run_id"]) as run:
        mlflow.set_tags({"run_id": record["run_id"], "model": record["model"], "code_version": record["code_version"]})
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            files = {"metrics.json": record}
            if card is not None:  # raw-pixel runs have no network; an int8 network's card has no name
                files[f"{card.get('name') or Path(record['onnx_uri']).stem}.json"] = card
            for name, obj in files.items():
                (Path(tmp) / name).write_text(json.dumps(obj, indent=2, sort_keys=True))
                mlflow.log_artifact(str(Path(tmp) / name))
        return str(run.info.run_id)


def _key(label: str) -> str:
    """MLflow metric names allow letters, digits and ``_-. /``."""
    return "".join(ch if ch.isalnum() or ch in "_-. /" else "_" for ch in label)
