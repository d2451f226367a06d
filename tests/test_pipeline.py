"""The train job's PipelineModel: rejects recorded, saved model reloads and predicts identically."""

from __future__ import annotations

import shutil

import pytest
from conftest import LITE0
from make_fixtures import AERIAL_COUNTS, AERIAL_LABELS, BAD_EXPECTED
from pyspark.ml import PipelineModel
from pyspark.sql import functions as F

from jobs import config, score, train
from jobs.datasets import folders
from jobs.predictions.tables import prediction_table
from jobs.storage import RUNS, TRAINED, LocalStorage

BAD_IN_TRAIN = ["truncated.png", "text.txt", "rgba.png"]  # into train/Barren
BAD_IN_TEST = ["empty.png", "bomb.png", "grey16.png"]  # into test/Forest


@pytest.fixture(scope="module")
def aerial(fixtures, tmp_path_factory):
    root = tmp_path_factory.mktemp("aerial")
    shutil.copytree(fixtures / "aerial", root, dirs_exist_ok=True)
    for name in BAD_IN_TRAIN:
        shutil.copy(fixtures / "bad" / name, root / "train" / "Barren" / name)
    for name in BAD_IN_TEST:
        shutil.copy(fixtures / "bad" / name, root / "test" / "Forest" / name)
    return root


@pytest.fixture(scope="module")
def trained(spark, storage, aerial, lite0_onnx):
    cfg = config.TrainConfig(
        output_model_name="aerial_rf",
        dataset="aerial",
        data=str(aerial),
        storage=str(storage.root),
        mmlspark_model_type="randomforest",
        randomforest={"numTrees": 10, "maxDepth": 4},
        **LITE0,
    ).validate()
    return train.train(spark, cfg, storage)


def test_counts_and_rejects_are_exact(trained, storage):
    metrics = storage.read_json(RUNS, trained["run_id"], "metrics.json")
    n_train = AERIAL_COUNTS["train"] * len(AERIAL_LABELS)
    n_test = AERIAL_COUNTS["test"] * len(AERIAL_LABELS)
    bad_train = [n for n in BAD_IN_TRAIN if BAD_EXPECTED[n]]
    assert metrics["counts"]["train"]["images"] == n_train + len(BAD_IN_TRAIN)
    assert metrics["counts"]["train"]["rejected"] == len(bad_train) == 2
    assert metrics["counts"]["train"]["rejected_by_reason"] == {"truncated": 1, "not_an_image": 1}
    assert metrics["counts"]["test"]["rejected"] == len([n for n in BAD_IN_TEST if BAD_EXPECTED[n]]) == 2
    assert metrics["counts"]["test"]["rejected_by_reason"] == {"empty": 1, "too_large": 1}
    assert trained["n_train"] == n_train + 1  # rgba.png is featurized, labelled Barren
    assert trained["n_test"] == metrics["n"] == n_test + 1  # grey16.png likewise, as Forest
    assert metrics["labels"] == sorted(AERIAL_LABELS)
    assert sum(map(sum, metrics["confusion"])) == metrics["n"]
    assert metrics["config"]["randomforest"] == {"numTrees": 10, "maxDepth": 4}
    # How far its probabilities can be believed: every test prediction in one of ten bins.
    calib = metrics["calibration"]
    assert calib["n"] == metrics["n"] == sum(b["n"] for b in calib["bins"]) and len(calib["bins"]) == 10
    assert trained["calibration_ece"] == calib["ece"] and 0 <= calib["ece"] <= 1
    short = [b for b in calib["bins"] if b["n"] and b["accuracy_ci95"][1] < b["mean_probability"]]
    assert any("probabilities run higher than its accuracy" in w for w in trained["warnings"]) == bool(short)


def test_test_predictions_keep_rejects_with_null_predictions(spark, trained):
    rows = spark.read.parquet(trained["predictions_uri"])
    rejected = rows.where(F.col("reject_reason").isNotNull()).collect()
    assert sorted(r["path"].rsplit("/", 1)[1] for r in rejected) == ["bomb.png", "empty.png"]
    assert all(r["predicted_label"] is None and r["probability"] is None for r in rejected)
    scored = rows.where(F.col("reject_reason").isNull())
    assert scored.where(F.col("predicted_label").isNull()).count() == 0


def test_saved_model_reloads_and_predicts_identically(spark, storage, trained, aerial):
    model = PipelineModel.load(storage.uri(TRAINED, "aerial_rf"))
    assert [type(s).__name__ for s in model.stages] == [
        "ImageFeaturizer",
        "StringIndexerModel",
        "RandomForestClassificationModel",
        "IndexToString",
        "MaskRejects",
    ]
    rows = folders.load_labelled(spark, LocalStorage(aerial), "test")
    again = {r["path"]: r for r in prediction_table(model.transform(rows)).collect()}
    first = {r["path"]: r for r in spark.read.parquet(trained["predictions_uri"]).collect()}
    assert set(again) == set(first)
    for path, row in first.items():
        assert again[path]["predicted_label"] == row["predicted_label"], path
        assert again[path]["probability"] == row["probability"], path
        assert again[path]["reject_reason"] == row["reject_reason"], path


def test_unknown_classifier_and_bad_layout_fail_clearly(aerial, tmp_path):
    with pytest.raises(config.ConfigError, match="choose one of logisticregression, randomforest"):
        config.TrainConfig(mmlspark_model_type="svm").validate()
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "stray.png").write_bytes(b"x")
    with pytest.raises(folders.LayoutError, match="a file directly under the split"):
        list(folders.labelled_files(LocalStorage(tmp_path), "train"))
    (tmp_path / "test").mkdir()
    with pytest.raises(folders.LayoutError, match="no label folders"):
        list(folders.labelled_files(LocalStorage(tmp_path), "test"))
    with pytest.raises(folders.LayoutError, match="folder not found"):
        list(folders.labelled_files(LocalStorage(tmp_path), "nothing"))


def test_scoring_a_tile_set_with_bad_files_keeps_every_tile(spark, storage, trained, fixtures):
    cfg = config.ScoreConfig(output_model_name="aerial_rf", tiles=str(fixtures / "bad"), storage=str(storage.root))
    summary = score.score(spark, cfg.validate(), storage)
    expected_rejects = sum(1 for code in BAD_EXPECTED.values() if code)
    assert summary["n_tiles"] == len(BAD_EXPECTED)
    assert summary["n_rejected"] == expected_rejects == 5
    assert summary["n_scored"] == len(BAD_EXPECTED) - expected_rejects
    rows = {r["tile"]: r for r in spark.read.parquet(summary["predictions_uri"]).collect()}
    # How sure the run is, at a glance, from the scored tiles' probabilities (rejects have none).
    probs = sorted(r["probability"] for r in rows.values() if r["probability"] is not None)
    sure = summary["confidence"]
    assert sure["n"] == len(probs) == summary["n_scored"] and sure["median"] in probs and sure["p10"] in probs
    assert sure["share_below_0_5"] == round(sum(p < 0.5 for p in probs) / len(probs), 4)
    assert summary["model_calibration_ece"] == trained["calibration_ece"]
    # The model's own test split is the baseline: a run whose median falls below its 10th percentile is warned.
    baseline = storage.load_card("trainedmodels", "aerial_rf")["test_confidence"]
    assert summary["model_test_confidence"] == baseline and 0 < baseline["p10"] <= baseline["median"] <= 1
    drifted = sure["n"] >= 10 and sure["median"] < baseline["p10"]
    assert any("unlike the training imagery" in w for w in summary.get("warnings", [])) == drifted
    for name, code in BAD_EXPECTED.items():
        if code is None:
            assert rows[name]["predicted_label"] in AERIAL_LABELS and rows[name]["reject_reason"] is None
        else:
            assert rows[name]["predicted_label"] is None and rows[name]["reject_reason"].startswith(code)
        assert rows[name]["model"] == "aerial_rf" and rows[name]["run_id"] == summary["run_id"]
