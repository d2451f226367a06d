"""Spark Connect: a saved model applied without a JVM on the client, checked against Spark ML."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, summary_of
from pyspark.ml.linalg import Vectors

from jobs import config, score
from jobs.classifiers import connect as connect_model
from jobs.classifiers import estimators as classifiers
from jobs.classifiers import portable as portable_head
from jobs.storage import TRAINED, LocalStorage


def _features(spark, classes: int, n: int = 120, dim: int = 12):
    rng = np.random.default_rng(7)
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, dim)) + y[:, None] * rng.normal(size=dim)  # overlapping blobs
    rows = [(Vectors.dense(v.tolist()), float(c)) for v, c in zip(x, y, strict=True)]
    return spark.createDataFrame(rows, ["features", "label_index"]), x


@pytest.mark.parametrize(
    ("name", "classes", "params"),
    [
        ("logisticregression", 4, {}),
        ("logisticregression", 2, {}),  # binomial: one margin
        ("logisticregression", 3, {"regParam": 0.05, "elasticNetParam": 0.9}),  # sparse coefficients
        ("randomforest", 4, {"numTrees": 7, "maxDepth": 5}),
        ("gbt", 3, {"maxIter": 4, "maxDepth": 3}),
    ],
)
def test_portable_head_computes_what_spark_ml_does(spark, tmp_path, name, classes, params):
    df, x = _features(spark, classes)
    estimator, _ = classifiers.build(name, params, seed=3)
    model = estimator.fit(df)
    model.write().save(str(tmp_path / "clf"))
    head = portable_head.load(LocalStorage(tmp_path), "clf")
    raw_col = "rawPrediction" if name == "gbt" else "raw_prediction"
    spark_rows = model.transform(df).collect()
    prediction, probability, raw = head.apply(x)
    assert prediction.tolist() == [r["prediction"] for r in spark_rows]
    np.testing.assert_allclose(raw, np.array([r[raw_col].toArray() for r in spark_rows]), rtol=1e-9, atol=1e-9)
    if name == "gbt":
        assert probability is None and not head.has_probability
    else:
        expected = np.array([r["probability"].toArray() for r in spark_rows])
        np.testing.assert_allclose(probability, expected, rtol=1e-9, atol=1e-12)


def test_a_classifier_without_a_portable_form_is_named(spark, tmp_path):
    from pyspark.ml.classification import LinearSVC

    df, _ = _features(spark, 2)
    LinearSVC(labelCol="label_index").fit(df).write().save(str(tmp_path / "svc"))
    with pytest.raises(portable_head.UnsupportedStageError, match="LinearSVCModel cannot be applied without a JVM"):
        portable_head.load(LocalStorage(tmp_path), "svc")


def test_scoring_through_a_spark_connect_server(spark, model_storage, fixtures, tmp_path):
    """The score job run as a user would with ``SPARK_REMOTE``, against a real connect server:
    the same table as the classic session's, rejects included, with no JVM in the client."""
    import connect_server

    root = LocalStorage(tmp_path / "storage")
    shutil.copytree(model_storage.root / TRAINED, root.root / TRAINED)
    tiles = tmp_path / "tiles"
    shutil.copytree(fixtures / "aerial" / "test", tiles)
    (tiles / "broken.png").write_bytes(b"\x89PNG not really")
    args = ["--output_model_name", "m", "--tiles", str(tiles), "--storage", str(root.root)]
    cfg = config.ScoreConfig(output_model_name="m", tiles=str(tiles), storage=str(root.root))
    classic = score.score(spark, cfg.validate(), root)
    assert classic["n_rejected"] == 1

    scene = ["--output_model_name", "m", "--storage", str(root.root), "--tile_px", "64"]
    scene += ["--scenes", str(fixtures / "scenes" / "rgb8_utm.tif")]
    cfg = config.ScoreConfig(output_model_name="m", storage=str(root.root), tile_px=64, scenes=scene[-1])
    classic_scene = score.score(spark, cfg.validate(), root)

    with connect_server.running(tmp_path) as url:
        env = dict(os.environ, SPARK_REMOTE=url)
        runs = [
            subprocess.run(
                [sys.executable, "-m", "jobs.score", *a], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
            )
            for a in (args, scene)
        ]
    for done in runs:
        assert done.returncode == 0, done.stderr[-3000:]
    remote, remote_scene = (summary_of(done.stdout) for done in runs)
    assert (remote["n_tiles"], remote["n_scored"], remote["rejected_by_reason"]) == (
        10,
        9,
        classic["rejected_by_reason"],
    )
    assert remote["executor_tasks"] == {}  # no SparkContext to ask

    def table(summary):
        rows = spark.read.parquet(summary["predictions_uri"]).collect()
        return {r["tile"]: r for r in rows}

    a, b = table(classic), table(remote)
    assert a.keys() == b.keys()
    for tile, r in a.items():
        assert b[tile]["predicted_label"] == r["predicted_label"] and b[tile]["reject_reason"] == r["reject_reason"]
        if r["probability"] is None:
            assert b[tile]["probability"] is None and b[tile]["top_k"] is None
        else:
            assert b[tile]["probability"] == pytest.approx(r["probability"], abs=1e-5)
            assert [t["label"] for t in b[tile]["top_k"]] == [t["label"] for t in r["top_k"]]

    # A georeferenced scene: the same windows, labels and maps.
    for key in ("n_scenes", "n_tiles", "n_scored", "n_nodata", "n_rejected", "tile_px"):
        assert remote_scene[key] == classic_scene[key], key
    a, b = table(classic_scene), table(remote_scene)
    assert a.keys() == b.keys() and all(b[t]["predicted_label"] == r["predicted_label"] for t, r in a.items())

    def files(run: dict) -> list[str]:
        found = (root.root / "maps" / "m" / run["run_id"]).rglob("*")
        return sorted(p.name for p in found if p.is_file() and not p.name.startswith((".", "part-")))

    maps = files(remote_scene)
    assert maps == files(classic_scene)
    assert any(m.endswith(".parquet") for m in maps) and any(m.endswith(".tif") for m in maps)


def test_a_jvm_only_stage_is_refused_before_scoring(spark, model_storage, tmp_path):
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import StandardScaler

    df, _ = _features(spark, 2)
    scaler = StandardScaler(inputCol="features", outputCol="scaled").fit(df)
    PipelineModel([scaler]).write().save(str(tmp_path / "trainedmodels" / "s"))
    (tmp_path / "trainedmodels" / "s" / "card.json").write_text("{}")
    with pytest.raises(
        portable_head.UnsupportedStageError, match="StandardScalerModel cannot be applied without a JVM"
    ):
        connect_model.load(LocalStorage(tmp_path), TRAINED, "s")
