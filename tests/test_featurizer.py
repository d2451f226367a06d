"""ImageFeaturizer on Spark: every row kept, rejects with reasons, features equal to torch's."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from make_fixtures import BAD_EXPECTED
from pyspark.sql import functions as F

from featurizers.image_featurizer import ImageFeaturizer
from featurizers.preprocess import prepare
from featurizers.zoo import ZOO
from jobs.datasets import folders
from jobs.storage import LocalStorage


@pytest.fixture(scope="module")
def bad_features(spark, fixtures, lite0_onnx):
    rows = folders.load_unlabelled(spark, LocalStorage(fixtures / "bad"))
    featurizer = ImageFeaturizer.from_zoo("efficientnet_lite0", lite0_onnx, batchSize=4)
    return featurizer.transform(rows).select("path", "features", "reject_reason").collect()


def test_every_row_is_kept_and_rejects_say_why(bad_features):
    assert len(bad_features) == len(BAD_EXPECTED)
    by_name = {r["path"].rsplit("/", 1)[1]: r for r in bad_features}
    assert set(by_name) == set(BAD_EXPECTED)
    for name, code in BAD_EXPECTED.items():
        reason = by_name[name]["reject_reason"]
        vector = by_name[name]["features"].toArray()
        assert vector.shape == (1280,)
        if code is None:
            assert reason is None, name
            assert np.abs(vector).sum() > 0, name
        else:
            assert reason.startswith(f"{code}: "), (name, reason)
            assert not vector.any(), name  # the placeholder is zeros, and MaskRejects hides it


def test_spark_features_equal_a_plain_onnxruntime_call(bad_features, fixtures, lite0_onnx):
    session = ort.InferenceSession(lite0_onnx, providers=["CPUExecutionProvider"])
    prep = ZOO["efficientnet_lite0"].preprocessing
    good = [r for r in bad_features if r["reject_reason"] is None]
    batch = np.stack([prepare((fixtures / "bad" / r["path"].rsplit("/", 1)[1]).read_bytes(), prep) for r in good])
    expected = session.run(None, {"image": batch})[0]
    got = np.stack([r["features"].toArray() for r in good])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_featurizer_persists_with_its_network(spark, fixtures, lite0_onnx, tmp_path):
    featurizer = ImageFeaturizer.from_zoo("efficientnet_lite0", lite0_onnx, batchSize=3)
    featurizer.save(str(tmp_path / "f"))
    loaded = ImageFeaturizer.load(str(tmp_path / "f"))
    assert loaded.getOrDefault("modelPath") == str(tmp_path / "f" / "model.onnx")
    assert loaded.getOrDefault("batchSize") == 3 and loaded.uid == featurizer.uid
    rows = folders.load_unlabelled(spark, LocalStorage(fixtures / "bad")).where(F.col("path").endswith("grey.png"))
    a = featurizer.transform(rows).select("features").head()[0].toArray()
    b = loaded.transform(rows).select("features").head()[0].toArray()
    assert np.array_equal(a, b)
