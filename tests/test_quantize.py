"""int8 featurizer networks: parity with fp32 on real aerial images, and a model that keeps its arithmetic."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import DEMO, LITE0, require
from pyspark.ml import PipelineModel

from featurizers.preprocess import prepare
from featurizers.quantize import QuantizationError, cpu_has_vnni, quantize
from featurizers.zoo import Network
from jobs import config, score, train
from jobs.storage import LocalStorage
from jobs.workflows import train as train_workflow
from jobs.workflows.networks import ensure_int8

# Measured: EfficientNet-Lite0 features on UC Merced, 64 calibration images. AVX2 without VNNI
# (7-bit weights): mean cosine 0.962; a Xeon with VNNI and AMX (8-bit weights): 0.989.
PARITY = 0.98 if cpu_has_vnni() else 0.95


def _uc_merced(n: int) -> list[Path]:
    files = sorted((require(DEMO / "ucmerced") / "images").rglob("*.jpg"))
    random.Random(0).shuffle(files)
    return files[:n]


def test_int8_features_match_fp32_on_real_aerial_images(lite0_onnx, tmp_path, capsys):
    prep = Network.parse("efficientnet_lite0").preprocessing
    tensors = [prepare(f.read_bytes(), prep) for f in _uc_merced(64)]
    out = tmp_path / "int8.onnx"
    info = quantize(lite0_onnx, str(out), tensors[:32])
    assert info["calibration_images"] == 32 and info["reduce_range"] == (not cpu_has_vnni())
    x = np.stack(tensors[32:])
    fp32 = ort.InferenceSession(lite0_onnx, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    int8 = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    cosine = (fp32 * int8).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
    with capsys.disabled():
        print(f"\nint8 vs fp32 EfficientNet-Lite0 features, 32 UC Merced images: mean cosine {cosine.mean():.4f}")
    assert cosine.mean() >= PARITY and np.isfinite(int8).all()
    assert out.stat().st_size < Path(lite0_onnx).stat().st_size / 2  # int8 weights: under half the file


def test_no_decodable_calibration_image_is_a_one_line_error(lite0_onnx, tmp_path):
    root = LocalStorage(tmp_path)
    with pytest.raises(QuantizationError, match="no calibration images"):
        ensure_int8(root, lite0_onnx, Network.parse("efficientnet_lite0"), [("a.png", b"not an image")], {})


def test_an_int8_model_is_calibrated_on_its_training_images_and_scores_in_int8(
    spark, fixtures, storage, lite0_onnx, tmp_path
):
    root = LocalStorage(tmp_path / "root")
    shutil.copytree(storage.root / "pretrainedmodels", root.root / "pretrainedmodels")  # reuse the fp32 export
    base = {"dataset": "aerial", "data": str(fixtures / "aerial"), "storage": str(root.root), **LITE0}
    base.pop("precision")
    cfg = config.TrainConfig(output_model_name="q", precision="int8", **base).validate()
    summary = train.train(spark, cfg, root)
    record = root.read_json("runs", summary["run_id"], "metrics.json")
    onnx = Path(record["onnx_uri"])
    assert record["precision"] == "int8" and "-int8-" in onnx.name
    card = json.loads(onnx.with_suffix(".json").read_text())
    assert card["precision"] == "int8" and card["calibration"]["split"] == "train"
    assert 0 < card["calibration"]["used"] <= 64 and card["calibration"]["seed"] == cfg.seed
    assert card["fp32_onnx"] == Path(lite0_onnx).name
    assert root.load_card("trainedmodels", "q")["precision"] == "int8"

    # The saved model carries the int8 network: its features are that network's, not fp32's.
    model = PipelineModel.load(root.uri("trainedmodels", "q"))
    net_file = Path(model.stages[0].getOrDefault("modelPath"))
    assert net_file.read_bytes() == onnx.read_bytes()

    # The same calibration sample reuses the cached file; scoring keeps the model's arithmetic.
    stamp = onnx.stat().st_mtime_ns
    again = train.train(spark, config.TrainConfig(output_model_name="q2", precision="int8", **base).validate(), root)
    assert root.read_json("runs", again["run_id"], "metrics.json")["onnx_uri"] == str(onnx)
    assert onnx.stat().st_mtime_ns == stamp
    tiles = str(fixtures / "aerial" / "test")
    scored = score.score(spark, config.ScoreConfig(output_model_name="q", tiles=tiles, storage=str(root.root)), root)
    assert scored["precision"] == "int8" and scored["n_scored"] == scored["n_tiles"] > 0
    with pytest.raises(config.ConfigError, match="trained on int8 features"):
        score.score(
            spark,
            config.ScoreConfig(output_model_name="q", tiles=tiles, storage=str(root.root), precision="fp32"),
            root,
        )


def _fitted(precision: str, val: float | None) -> train_workflow.Fitted:
    tuning = None if val is None else [{"params": {"regParam": 0.01}, "validation_accuracy": val}]
    return train_workflow.Fitted(precision, None, None, None, 100.0, None, tuning)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fp32", "int8", "kept"),
    [(0.990, 0.990, "int8"), (0.990, 0.9851, "int8"), (0.990, 0.9849, "fp32"), (0.980, 0.990, "int8")],
)
def test_auto_keeps_int8_only_within_half_a_point_of_fp32_on_validation(fp32, int8, kept):
    warnings: list[str] = []
    chosen, check = train_workflow.choose_precision([_fitted("fp32", fp32), _fitted("int8", int8)], warnings, True)
    assert chosen.precision == check["kept"] == kept and not warnings
    assert check["validation_accuracy"] == {"fp32": fp32, "int8": int8}


def test_auto_without_a_validation_score_keeps_fp32_and_says_so():
    # fit_precisions stops after fp32 when it has no validation score: int8 is never tried.
    warnings: list[str] = []
    chosen, check = train_workflow.choose_precision([_fitted("fp32", None)], warnings, True)
    assert chosen.precision == check["kept"] == "fp32"
    assert check["validation_accuracy"] == {"fp32": None, "int8": None}
    assert len(warnings) == 1 and "kept fp32" in warnings[0]


def test_a_fixed_precision_is_not_weighed():
    warnings: list[str] = []
    chosen, check = train_workflow.choose_precision([_fitted("int8", None)], warnings, False)
    assert chosen.precision == "int8" and check is None and not warnings


def test_auto_fits_both_precisions_and_records_the_comparison(spark, fixtures, storage, lite0_onnx, tmp_path):
    root = LocalStorage(tmp_path / "root")
    shutil.copytree(storage.root / "pretrainedmodels", root.root / "pretrainedmodels")  # reuse the fp32 export
    base = {"dataset": "aerial", "data": str(fixtures / "aerial"), "storage": str(root.root), **LITE0}
    base |= {"tune": True, "val_ratio": 0.25, "precision": "auto"}
    summary = train.train(spark, config.TrainConfig(output_model_name="a", **base).validate(), root)
    record = root.read_json("runs", summary["run_id"], "metrics.json")
    check = record["precision_check"]
    val = check["validation_accuracy"]
    assert set(val) == {"fp32", "int8"} and all(0 <= v <= 1 for v in val.values())
    assert check["kept"] == ("int8" if val["int8"] >= val["fp32"] - train_workflow.MAX_INT8_COST else "fp32")
    assert summary["precision"] == record["precision"] == check["kept"]
    assert root.load_card("trainedmodels", "a")["precision"] == check["kept"]
    assert ("-int8-" in Path(record["onnx_uri"]).name) == (check["kept"] == "int8")
    assert {"featurize (fp32)", "featurize (int8)"} <= set(record["timings_s"])


def test_auto_on_raw_pixels_is_a_config_error():
    with pytest.raises(config.ConfigError, match="raw pixels have none"):
        config.TrainConfig(dataset="mnist", data="x", pretrained_model_type="pixels", precision="auto").validate()
