"""ImageFeaturizer on Spark: every row kept, rejects with reasons, features equal to torch's."""

from __future__ import annotations

import os

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


def _scaled_mean_network(path, scale: float) -> None:
    """A tiny ONNX network: per-channel mean of the image times ``scale`` (3 features)."""
    import onnx
    from onnx import TensorProto, helper

    from featurizers.zoo import INPUT_NAME, OUTPUT_NAME

    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", [INPUT_NAME], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Mul", ["flat", "scale"], [OUTPUT_NAME]),
        ],
        "scaled_mean",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["n", 3, 224, 224])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor("scale", TensorProto.FLOAT, [], [scale])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_a_network_is_broadcast_once_until_its_file_changes(spark, fixtures, tmp_path):
    from featurizers.image_featurizer import _broadcast_model

    model = tmp_path / "net.onnx"
    _scaled_mean_network(model, 1.0)
    prep = ZOO["resnet18"].preprocessing.to_json()
    featurizer = ImageFeaturizer(modelPath=str(model), featureDim=3, preprocessing=prep)
    rows = folders.load_unlabelled(spark, LocalStorage(fixtures / "bad")).where(F.col("path").endswith("grey.png"))
    first = featurizer.transform(rows).select("features").head()[0].toArray()
    sha, broadcast = _broadcast_model(spark, str(model))
    assert _broadcast_model(spark, str(model)) == (sha, broadcast)  # later transforms reuse it

    _scaled_mean_network(model, 2.0)  # rewritten in place: the next transform must see it
    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = featurizer.transform(rows).select("features").head()[0].toArray()
    new_sha, new_broadcast = _broadcast_model(spark, str(model))
    assert new_sha != sha and new_broadcast is not broadcast
    np.testing.assert_allclose(second, 2 * first, rtol=1e-6)
    assert np.abs(first).sum() > 0


def test_task_start_trim_keeps_zip_imports_working(tmp_path):
    import gc
    import sys
    import zipfile
    import zipimport

    from featurizers.image_featurizer import task_started

    archive = tmp_path / "pkgs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("zpkg/__init__.py", "")
        z.writestr("zpkg/first.py", "VALUE = 1")
        z.writestr("zpkg/second.py", "VALUE = 2")
    sys.path.insert(0, str(archive))
    try:
        import zpkg.first  # noqa: F401

        assert any(isinstance(f, zipimport.zipimporter) for f in sys.path_importer_cache.values())
        task_started()
        assert not any(isinstance(f, zipimport.zipimporter) for f in sys.path_importer_cache.values())
        assert gc.get_freeze_count() > 0
        from zpkg import second  # found again through a new importer

        assert second.VALUE == 2
    finally:
        gc.unfreeze()
        sys.path.remove(str(archive))
        for name in ("zpkg", "zpkg.first", "zpkg.second"):
            sys.modules.pop(name, None)


def test_a_tile_removed_or_swapped_for_a_fifo_after_listing_is_a_reject_and_the_rest_is_scored(spark, tmp_path):
    import shutil

    from featurizers.pixels import PixelFeaturizer
    from jobs.datasets import folders
    from jobs.storage import LocalStorage

    tiles = tmp_path / "tiles"
    tiles.mkdir()
    for i in range(4):
        shutil.copy(os.path.join(os.path.dirname(__file__), "fixtures", "saved_model", "images", f"red_{i}.png"), tiles)
    rows = folders.load_unlabelled(spark, LocalStorage(tiles), 1.0, 42)  # listed on the driver
    (tiles / "red_2.png").unlink()  # gone before an executor reads it
    (tiles / "red_3.png").unlink()
    os.mkfifo(tiles / "red_3.png")  # swapped for a FIFO: an open() for reading would block forever
    out = {r["path"].rsplit("/", 1)[1]: r["reject_reason"] for r in PixelFeaturizer().transform(rows).collect()}
    assert len(out) == 4
    assert out.pop("red_2.png").startswith("vanished:")
    assert out.pop("red_3.png").startswith("not_a_file:")
    assert set(out.values()) == {None}
