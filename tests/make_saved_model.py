"""Writes ``tests/fixtures/saved_model/``: a small saved model, kept in the repository so that a
test can prove that models saved by an earlier version of the code still load and score alike.

    python tests/make_saved_model.py

It was run once, at commit 0761a5f (before the library moved into packages by stage), and
its output committed. It is kept to say how the fixture was made, not to be rerun: a rerun
would only prove that today's code loads today's models.

The model is what ``jobs/train.py`` saves (featurizer with its ONNX network inside, label
indexer, classifier, label decoder, reject mask, and ``card.json``), on a tiny hand-built
ONNX network (a 3 x 3 convolution and a global pool: 4 features) so that the fixture stays a
few kilobytes. ``expected.json`` holds its predictions on the seeded images beside it.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "saved_model"
MODEL = "before_layout"
CLASSES = ("red", "blue")


def tiny_network() -> bytes:
    """image (N x 3 x 32 x 32) -> Conv 3x3 (4 channels) -> ReLU -> global average pool -> features (N x 4)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    weight = numpy_helper.from_array(rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def images() -> list[tuple[str, str, bytes]]:
    """Seeded 32 px PNGs: reddish and bluish squares with noise, five of each, and one undecodable file."""
    rng = np.random.default_rng(11)
    out = []
    for label, base in (("red", (200, 40, 40)), ("blue", (40, 60, 200))):
        for i in range(5):
            pixels = np.clip(np.array(base) + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="PNG")
            out.append((f"{label}_{i}.png", label, buf.getvalue()))
    out.append(("broken.png", "red", b"not an image"))
    return out


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import IndexToString, StringIndexer

    from featurizers.image_featurizer import ImageFeaturizer
    from featurizers.rejects import MaskRejects
    from featurizers.zoo import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
    from jobs.runtime.spark import get_spark
    from jobs.storage import TRAINED, open_storage

    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "images").mkdir(parents=True)
    (OUT / "network.onnx").write_bytes(tiny_network())
    rows = []
    for name, label, data in images():
        (OUT / "images" / name).write_bytes(data)
        rows.append((str(OUT / "images" / name), label, bytearray(data)))

    spark = get_spark("make-saved-model")
    frame = spark.createDataFrame(rows, "path string, label string, image binary")
    featurizer = ImageFeaturizer(
        modelPath=str(OUT / "network.onnx"),
        modelName="tiny_conv",
        featureDim=4,
        preprocessing=Preprocessing(32, 32, IMAGENET_MEAN, IMAGENET_STD).to_json(),
        batchSize=4,
    )
    feats = featurizer.transform(frame)
    good = feats.where("reject_reason is null")
    indexer = StringIndexer(inputCol="label", outputCol="label_index", stringOrderType="alphabetAsc").fit(good)
    head = Pipeline(
        stages=[
            indexer,
            LogisticRegression(featuresCol="features", labelCol="label_index", regParam=0.01, maxIter=50),
            IndexToString(inputCol="prediction", outputCol="predicted_label", labels=indexer.labels),
            MaskRejects(rejectCol="reject_reason", maskCols=["prediction", "probability", "predicted_label"]),
        ]
    ).fit(good)
    model = PipelineModel([featurizer, *head.stages])
    storage = open_storage(str(OUT / "storage"))
    card = {"run_id": "fixture", "labels": list(indexer.labels), "pretrained_model_type": "tiny_conv"}
    storage.save_model(model, TRAINED, MODEL, card=card)
    scored = model.transform(frame).select("path", "predicted_label", "reject_reason", "probability").collect()
    expected = {
        Path(r["path"]).name: {
            "predicted_label": r["predicted_label"],
            "reject_reason": r["reject_reason"],
            "probability": None if r["probability"] is None else [round(float(p), 6) for p in r["probability"]],
        }
        for r in scored
    }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    (OUT / "network.onnx").unlink()  # the saved featurizer holds its own copy
    spark.stop()


if __name__ == "__main__":
    main()
