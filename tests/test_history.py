"""Classifiers beyond the defaults, tuning, the run index and its CLI, MLflow, the pixel baseline."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from conftest import LITE0
from make_fixtures import AERIAL_LABELS
from PIL import Image
from pyspark.ml import PipelineModel
from pyspark.sql import functions as F

from featurizers.pixels import PixelFeaturizer, grey_pixels
from jobs import config, runs, train
from jobs.datasets import folders, mnist
from jobs.records import history as run_history
from jobs.records import tracking
from jobs.storage import RUNS, TRAINED, LocalStorage


@pytest.fixture(scope="module")
def history(spark, fixtures, lite0_onnx, storage, tmp_path_factory, monkeypatch_module):
    """Three runs in a fresh storage root: tuned LR on 2 x 2-pooled features (logged to MLflow), GBT,
    pixels + RF."""
    root = LocalStorage(tmp_path_factory.mktemp("history"))
    shutil.copytree(storage.root / "pretrainedmodels", root.root / "pretrainedmodels")  # reuse the export
    mlruns = tmp_path_factory.mktemp("mlruns")
    base = {"dataset": "aerial", "data": str(fixtures / "aerial"), "storage": str(root.root)}
    monkeypatch_module.setenv("MLFLOW_TRACKING_URI", mlruns.as_uri())
    monkeypatch_module.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps file stores behind a flag
    tuned_cfg = config.TrainConfig(
        output_model_name="lr", pool_grid=2, **{**base, **LITE0, "tune": True, "val_ratio": 0.2}
    )
    tuned = train.train(spark, tuned_cfg.validate(), root)
    monkeypatch_module.delenv("MLFLOW_TRACKING_URI")
    gbt_cfg = config.TrainConfig(
        output_model_name="gbt", mmlspark_model_type="gbt", gbt={"maxIter": 5}, **base, **LITE0
    )
    gbt = train.train(spark, gbt_cfg.validate(), root)
    conf = tmp_path_factory.mktemp("conf") / "pix.toml"  # as a user runs it: a conf file, flags over it
    conf.write_text('output_model_name = "pix"\nmmlspark_model_type = "randomforest"\ntrain_sample_frac = 0.5\n')
    flags = ["--pretrained_model_type", "pixels", "--sample_frac", "1.0", "--no-d4", "--seed", "42"]
    flags += [f"--{k}={v}" for k, v in base.items()]
    pix = train.train(spark, train.parse_args(["--conf", str(conf), *flags]), root)
    return root, mlruns, tuned, gbt, pix


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_index_has_one_record_per_run(history):
    root, _, tuned, gbt, pix = history
    records = run_history.load(root)
    assert [r["run_id"] for r in records] == [tuned["run_id"], gbt["run_id"], pix["run_id"]]
    first = records[0]
    assert first["classifier"] == "logisticregression" and first["dataset"] == "aerial"
    assert set(first["per_class"]) == set(AERIAL_LABELS)
    assert first["accuracy"] == tuned["accuracy"] and first["n_train"] == tuned["n_train"]
    assert first["calibration_ece"] == tuned["calibration_ece"] is not None
    assert [r["calibration_ece"] is None for r in records] == [False, True, False]  # GBT: no probabilities
    assert records[2]["pretrained_model_type"] == "pixels"
    assert [r["pool_grid"] for r in records] == [2, 1, 1]
    # The run record says where each setting came from; --sample_frac beat the conf's train fraction.
    pix_record = root.read_json(RUNS, pix["run_id"], "metrics.json")
    came = pix_record["config_from"]
    assert (came["output_model_name"], came["sample_frac"], came["pool_grid"], came["batch_size"]) == (
        "conf",
        "flag",
        "recipe",
        "default",
    )
    assert pix_record["sample_frac"] == {"train": 1.0, "test": 1.0} and came["train_sample_frac"] == "default"
    featurizer = root.load_model(TRAINED, "lr").stages[0]
    assert featurizer.getOrDefault("featureDim") == 4 * 1280
    card = root.read_json("pretrainedmodels", "efficientnet_lite0-grid2.json")
    assert (card["pool_grid"], card["feature_dim"]) == (2, 5120) and card["weights"].startswith("file:")


def test_a_pool_grid_the_cut_cannot_give_is_bad_input(tmp_path, capsys):
    base = ["--storage", str(tmp_path), "--weights", "random", "--output_model_name", "x"]
    assert train.main([*base, "--pretrained_model_type", "alexnet", "--pool_grid", "2"]) == 2
    assert "alexnet is cut after fully-connected layers" in capsys.readouterr().err
    assert train.main([*base, "--pretrained_model_type", "pixels", "--pool_grid", "2"]) == 2
    assert "not to raw pixels" in capsys.readouterr().err


def test_tuning_records_every_candidate(history):
    root, _, tuned, _, _ = history
    metrics = root.read_json(RUNS, tuned["run_id"], "metrics.json")
    candidates = metrics["tuning"]
    assert [c["params"]["regParam"] for c in candidates] == [0.001, 0.01, 0.1]
    assert all(0.0 <= c["validation_accuracy"] <= 1.0 for c in candidates)
    best = max(candidates, key=lambda c: c["validation_accuracy"])
    assert metrics["classifier_params"]["regParam"] == best["params"]["regParam"]


def test_gbt_predicts_without_probabilities_and_reloads(history, spark, fixtures):
    root, _, _, gbt, _ = history
    rows = spark.read.parquet(gbt["predictions_uri"])
    assert rows.where(F.col("predicted_label").isNull()).count() == 0
    assert rows.where(F.col("probability").isNotNull()).count() == 0  # OneVsRest has none
    model = PipelineModel.load(root.uri(TRAINED, "gbt"))
    again = model.transform(folders.load_labelled(spark, LocalStorage(fixtures / "aerial"), "test"))
    assert again.where(F.col("predicted_label").isin(list(AERIAL_LABELS))).count() == rows.count()


def test_cli_list_show_compare_best(history, capsys):
    root, _, tuned, gbt, pix = history
    assert runs.main(["--storage", str(root.root), "--json", "list"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert runs.main(["--storage", str(root.root), "list"]) == 0
    listing = capsys.readouterr().out
    assert tuned["run_id"] in listing and "gbt" in listing and "pixels" in listing
    assert runs.main(["--storage", str(root.root), "show", tuned["run_id"][:22]]) == 0
    shown = capsys.readouterr().out
    assert all(label in shown for label in AERIAL_LABELS) and "precision" in shown
    assert runs.main(["--storage", str(root.root), "compare", tuned["run_id"], gbt["run_id"]]) == 0
    assert "f1 Forest" in capsys.readouterr().out
    assert runs.main(["--storage", str(root.root), "--json", "best", "--metric", "macro_f1"]) == 0
    best = json.loads(capsys.readouterr().out)
    assert best["macro_f1"] == max(r["macro_f1"] for r in (tuned, gbt, pix))
    assert runs.main(["--storage", str(root.root), "show", "nope"]) == 2


def test_mlflow_gets_params_metrics_and_artifacts(history, monkeypatch):
    import mlflow

    root, mlruns, tuned, _, _ = history
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.tracking.MlflowClient(tracking_uri=mlruns.as_uri())
    found = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], f"tags.run_id = '{tuned['run_id']}'"
    )
    assert len(found) == 1
    run = found[0]
    assert run.data.params["classifier"] == "logisticregression"
    assert run.data.params["pretrained_model_type"] == "efficientnet_lite0"
    assert run.data.metrics["accuracy"] == pytest.approx(tuned["accuracy"], abs=1e-4)
    ece = root.read_json("runs", tuned["run_id"], "metrics.json")["calibration"]["ece"]
    assert run.data.metrics["calibration_ece"] == pytest.approx(ece, abs=1e-6)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"metrics.json", "efficientnet_lite0.json"}


def test_an_int8_network_card_goes_to_mlflow_under_its_file_name(history, tmp_path, monkeypatch):
    import mlflow

    root, _, tuned, _, _ = history
    record = root.read_json("runs", tuned["run_id"], "metrics.json") | {"onnx_uri": "/m/lite0-int8-0123abcd.onnx"}
    card = {"precision": "int8", "fp32_onnx": "lite0.onnx"}  # an int8 card names no network
    mlruns = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlruns)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run_id = tracking.log_run(record, card)
    artifacts = {a.path for a in mlflow.tracking.MlflowClient(tracking_uri=mlruns).list_artifacts(run_id)}
    assert artifacts == {"metrics.json", "lite0-int8-0123abcd.json"}


def test_pixel_featurizer_is_raw_pixels_over_255(spark, fixtures):
    rows = mnist.load_split(spark, LocalStorage(fixtures / "idx"), "train")
    out = PixelFeaturizer().transform(rows).select("path", "features", "reject_reason").collect()
    images = np.load(fixtures / "idx_train_images.npy")
    assert len(out) == 30
    for r in out:
        i = int(r["path"].split("#")[1])
        assert r["reject_reason"] is None
        np.testing.assert_array_equal(r["features"].toArray(), images[i].reshape(-1).astype(np.float32) / 255)
    data = (fixtures / "bad" / "rgb_odd_size.png").read_bytes()  # 37 x 301 RGB: grey, then resized
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("L").resize((28, 28)), dtype=np.float32) / 255
    np.testing.assert_array_equal(grey_pixels(data, 28)[0], expected.reshape(-1))


def test_one_history_of_every_kind_found_by_kind_model_and_date(tmp_path, capsys):
    root = LocalStorage(tmp_path / "store")
    assert runs.main(["--storage", str(root.root), "list"]) == 0  # an empty root says so, and where
    assert f"no run history in {root.root}/runs" in capsys.readouterr().err
    old = {"run_id": "20090101T000000Z-aaaaaa", "time": "t", "model": "aid", "accuracy": 0.9}  # before kinds
    run_history.append(root, old)
    for run_id, dates in (("20260101T000000Z-bbbbbb", ["2009-08-18"]), ("20260102T000000Z-cccccc", ["2020-08-31"])):
        summary = {"run_id": run_id, "model": "aid", "n_scored": 192, "dates": dates, "ignored": 1}
        summary["confidence"] = {"n": 192, "p10": 0.5, "median": 0.913 if dates[0] < "2010" else 0.941}
        assert run_history.record_run(root, "score", summary, 0.0) is None
    run_history.record_run(root, "score", {"run_id": "20260103T000000Z-dddddd", "model": "other", "dates": []}, 0.0)
    change = {"model": "aid", "run_a": "x", "run_b": "y", "changed_ha": 3.5, "dates": ["2009", "2020"]}
    run_history.record_run(root, "change", change, 0.0)
    records = run_history.load(root)
    assert [run_history.kind(r) for r in records] == ["train", "score", "score", "score", "change"]
    assert "ignored" not in records[1] and records[1]["n_scored"] == 192
    assert run_history.by_date(records, "aid", "2009")["run_id"] == "20260101T000000Z-bbbbbb"
    assert run_history.by_date(records, "aid", "2020-08")["run_id"] == "20260102T000000Z-cccccc"
    assert run_history.by_date(records, "aid", "20260101T")["run_id"] == "20260101T000000Z-bbbbbb"  # an id too
    with pytest.raises(run_history.StorageError, match=r"dated '2015'.*dates are 2009-08-18, 2020-08-31"):
        run_history.by_date(records, "aid", "2015")
    assert runs.main(["--storage", str(root.root), "--json", "list", "--kind", "score", "--model", "aid"]) == 0
    assert [r["run_id"][-6:] for r in json.loads(capsys.readouterr().out)] == ["bbbbbb", "cccccc"]
    assert runs.main(["--storage", str(root.root), "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:3] == ["run_id", "kind", "model"] and len(listing) == 2 + 5
    # Night after night, the median probability of each scoring run, for drift.
    column = listing[0].split().index("median_probability")
    assert [line.split()[column] for line in listing[3:5]] == ["0.9130", "0.9410"]
    assert runs.main(["--storage", str(root.root), "show", "20260102"]) == 0  # a scoring run shows too
    assert "2020-08-31" in capsys.readouterr().out
    assert runs.main(["--storage", str(root.root), "list", "--kind", "assess"]) == 0
    assert "no run matches the filters" in capsys.readouterr().err
