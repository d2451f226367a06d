"""A train run's saved PipelineModel, applied through a Spark Connect session.

``PipelineModel.load`` needs a SparkContext, which a Connect client does not have. The saved
folder is read from storage in Python instead, stage by stage, and rebuilt from parts that run
under Connect, with the same output columns (``features``, ``raw_prediction``, ``probability``,
``prediction``, ``predicted_label``, ``reject_reason``, ``pixel_note``):

* this project's stages (featurizers, :class:`featurizers.rejects.MaskRejects`) are Python
  Transformers: made from their saved params. The ONNX network stays where the model saved it;
  executors read it by URI, once per Python worker (see ``ImageFeaturizer``);
* the classifier is applied with numpy in a pandas UDF (:mod:`jobs.classifiers.portable`);
* ``IndexToString`` becomes a lookup in its saved labels; ``StringIndexerModel`` (training
  labels) is not needed to score.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.ml import Transformer
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.util import DefaultParamsReader
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, StructField, StructType

from featurizers.image_featurizer import MODEL_FILE, ImageFeaturizer, ModelFileError
from jobs.classifiers import portable
from jobs.runtime.digests import sha256_bytes
from jobs.storage import Storage, StorageError, check_stage_classes, stage_metadata

_SPARK = "org.apache.spark.ml."
_HEAD_SCHEMA = StructType(
    [
        StructField("prediction", DoubleType()),
        StructField("probability", ArrayType(DoubleType())),
        StructField("raw", ArrayType(DoubleType())),
    ]
)


class ConnectModel:
    """The stages of a saved model that run under Spark Connect; ``transform`` as PipelineModel's."""

    def __init__(
        self, stages: list[Transformer | portable.Head | list[str]], columns: dict[str, str], labels: list[str]
    ) -> None:
        self.stages = stages  # Transformer, a classifier Head, or the label list of IndexToString
        self.columns = columns  # the classifier's features, prediction, probability, raw columns
        self.labels = labels

    def transform(self, df: DataFrame) -> DataFrame:
        for stage in self.stages:
            if isinstance(stage, Transformer):
                df = stage.transform(df)
            elif isinstance(stage, portable.Head):
                df = self._classify(df, stage)
            else:
                label = F.element_at(F.array(*[F.lit(x) for x in stage]), F.col("prediction").cast("int") + 1)
                df = df.withColumn("predicted_label", label)
        return df

    def _classify(self, df: DataFrame, head: portable.Head) -> DataFrame:
        @F.pandas_udf(_HEAD_SCHEMA)  # type: ignore[call-overload]
        def classify(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
            for features in batches:
                x = np.stack(features.to_numpy()) if len(features) else np.zeros((0, 1))
                prediction, probability, raw = head.apply(x)
                yield pd.DataFrame(
                    {
                        "prediction": prediction,
                        "probability": list(probability) if probability is not None else None,
                        "raw": list(raw),
                    }
                )

        cols, out = self.columns, "__head"
        df = df.withColumn(out, classify(vector_to_array(cols["features"])))
        df = df.withColumn(cols["raw"], array_to_vector(F.col(f"{out}.raw")))
        if head.has_probability:
            df = df.withColumn(cols["probability"], array_to_vector(F.col(f"{out}.probability")))
        return df.withColumn(cols["prediction"], F.col(f"{out}.prediction")).drop(out)


def load(storage: Storage, *parts: str) -> ConnectModel:
    """The model saved under ``parts``, checked as :meth:`Storage.load_model` checks it."""
    check_stage_classes(storage, *parts)
    uids = stage_metadata(storage, *parts)["paramMap"]["stageUids"]
    stages: list[Transformer | portable.Head | list[str]] = []
    columns: dict[str, str] = {}
    labels: list[str] = []
    for i, uid in enumerate(uids):
        folder = (*parts, "stages", f"{i}_{uid}")
        meta = stage_metadata(storage, *folder)
        cls = str(meta["class"])
        params = {**meta.get("defaultParamMap", {}), **meta["paramMap"]}
        if cls in portable.CLASSES:
            stages.append(portable.load(storage, *folder))
            columns = {
                "features": params.get("featuresCol", "features"),
                "prediction": params.get("predictionCol", "prediction"),
                "probability": params.get("probabilityCol", "probability"),
                "raw": params.get("rawPredictionCol", "rawPrediction"),
            }
        elif cls == _SPARK + "feature.IndexToString":
            labels = list(params["labels"])
            stages.append(labels)
        elif cls == _SPARK + "feature.StringIndexerModel":
            continue
        elif cls.startswith(_SPARK):
            raise portable.UnsupportedStageError(f"{storage.uri(*folder)}: {cls} cannot be applied without a JVM")
        else:
            stages.append(_python_stage(storage, folder, cls, meta))
    return ConnectModel(stages, columns, labels)


def _python_stage(storage: Storage, folder: tuple[str, ...], cls: str, meta: dict[str, Any]) -> Transformer:
    """One of this project's stages, from its saved params (what ``DefaultParamsReader`` does,
    without the SparkContext it reads through)."""
    module, _, name = cls.rpartition(".")
    stage = getattr(importlib.import_module(module), name)()  # check_stage_classes vetted the module
    DefaultParamsReader.getAndSetParams(stage, meta)
    stage._resetUid(meta["uid"])
    if isinstance(stage, ImageFeaturizer):
        network = storage.uri(*folder, MODEL_FILE)
        try:
            data = storage.read_bytes(*folder, MODEL_FILE)
        except StorageError:
            raise ModelFileError(f"{network}: the saved model's network is missing or unreadable") from None
        expected = meta.get("modelSha256")
        if expected and sha256_bytes(data) != expected:
            raise ModelFileError(f"{network}: corrupted (its sha256 differs from the one recorded when it was saved)")
        stage._set(modelPath=network)
    return stage
