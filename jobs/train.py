"""spark-submit entry point: featurize labelled images, train a classifier, evaluate, save.

    spark-submit jobs/train.py --conf conf/mnist_demo.toml [--flag value …]

Storage → image rows → CNN features → classifier → test predictions and metrics → storage.
The saved PipelineModel (``trainedmodels/<output_model_name>/``) holds every stage a scoring job
needs: the featurizer with its ONNX network, the label indexer, the classifier, the label
decoder and the reject mask. The run's ``metrics.json`` and test predictions go to
``runs/<run_id>/``. One JSON line on stdout sums the run up.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from typing import Any

from pyspark import StorageLevel
from pyspark.ml import Pipeline, PipelineModel, Transformer
from pyspark.ml.classification import OneVsRestModel
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import IndexToString, StringIndexer
from pyspark.ml.tuning import TrainValidationSplit
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurizers.export import sha256_file
from featurizers.image_featurizer import ImageFeaturizer
from featurizers.pixels import PixelFeaturizer
from featurizers.rejects import MaskRejects
from jobs import classifiers, cli, config, runs, tracking
from jobs.datasets import DatasetError, folders, mnist
from jobs.metrics import evaluate
from jobs.predictions import prediction_table
from jobs.pretrained import ensure_onnx
from jobs.spark import get_spark, say, timed
from jobs.storage import FEATURES, PRETRAINED, RUNS, TRAINED, Storage, open_storage

JOB = "train"
PREDICTION_COLS = ["prediction", "probability", "raw_prediction", "rawPrediction", "predicted_label"]


def parse_args(argv: list[str] | None = None) -> config.TrainConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    config.add_conf_flag(p)
    p.add_argument("--output_model_name", help="name under trainedmodels/ and predictions/")
    p.add_argument("--pretrained_model_type", help="zoo network (efficientnet_lite0, resnet18, alexnet, …) or pixels")
    p.add_argument("--weights", help="pretrained weights: a file, or 'random' (tests only)")
    p.add_argument("--pool_grid", type=int, help="pool the network's last map to N x N cells (default 1: global)")
    p.add_argument("--mmlspark_model_type", choices=config.CLASSIFIERS)
    p.add_argument("--sample_frac", type=float, help="fraction of train and test images to use")
    p.add_argument("--train_sample_frac", type=float)
    p.add_argument("--test_sample_frac", type=float)
    p.add_argument("--dataset", choices=("mnist", "aerial"))
    p.add_argument("--data", help="MNIST idx folder, or aerial root holding train/ and test/")
    p.add_argument("--storage", help="storage root (default ./data)")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch_size", type=int, help="images per onnxruntime call")
    p.add_argument("--engine", choices=config.ENGINES, help="featurizer engine (synapseml: add --packages)")
    p.add_argument("--tune", action="store_true", default=None, help="grid-search the classifier on Spark")
    p.add_argument("--cache_features", action="store_true", default=None, help="reuse features across runs")
    for flag in classifiers.FLAGS:
        p.add_argument(f"--{flag}", type=float if flag in ("regParam", "elasticNetParam", "stepSize") else int)
    args = vars(p.parse_args(argv))
    flags = {k: args.pop(k) for k in classifiers.FLAGS if args.get(k) is not None}
    for k in classifiers.FLAGS:
        args.pop(k, None)
    cfg = config.build(config.TrainConfig, args.pop("conf"), args)
    getattr(cfg, cfg.mmlspark_model_type).update(flags)  # flags win over the conf table
    return cfg


def read_split(spark: SparkSession, cfg: config.TrainConfig, split: str) -> DataFrame:
    location = open_storage(cfg.data, spark)
    if cfg.dataset == "mnist":
        return mnist.load_split(spark, location, split, cfg.fraction(split), cfg.seed, cfg.class_names)
    return folders.load_labelled(spark, location, split, cfg.fraction(split), cfg.seed)


def classifier_params(model: Transformer) -> dict[str, Any]:
    """The fitted classifier's parameters (for OneVsRest, its binary classifier's)."""
    if isinstance(model, OneVsRestModel):
        model = model.models[0]
    return {p.name: v for p, v in model.extractParamMap().items() if isinstance(v, (int, float, str, bool))}


def reject_counts(features: DataFrame) -> dict[str, int]:
    """Rejected images per reason code (the text before the first colon)."""
    rows = (
        features.where(F.col("reject_reason").isNotNull())
        .groupBy(F.substring_index("reject_reason", ":", 1).alias("code"))
        .count()
        .collect()  # one row per reason code
    )
    return {r["code"]: int(r["count"]) for r in rows}


def featurize_split(
    spark: SparkSession,
    cfg: config.TrainConfig,
    storage: Storage,
    featurizer: Transformer,
    onnx_uri: str | None,
    split: str,
    images: DataFrame,
) -> tuple[DataFrame, bool]:
    """The split's featurized rows, and whether they came from the feature cache.

    With ``cache_features``, rows are written once to ``features/<key>/<split>`` (Parquet) and
    read back on later runs whose key matches: data set, data, split, sample fraction, seed,
    class names, the featurizer's parameters and the network file's sha256.
    """
    rows = featurizer.transform(images).drop("image")
    if not cfg.cache_features:
        return rows, False
    identity = {
        "dataset": cfg.dataset,
        "data": open_storage(cfg.data, spark).uri(),
        "split": split,
        "fraction": cfg.fraction(split),
        "seed": cfg.seed,
        "class_names": cfg.class_names,
        "featurizer": {p.name: v for p, v in featurizer.extractParamMap().items() if p.name != "modelPath"},
        "network_sha256": sha256_file(onnx_uri) if onnx_uri else None,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    cached = storage.table_complete(FEATURES, key, split)
    if not cached:
        storage.write_table(rows, FEATURES, key, split)
    return storage.read_table(spark, FEATURES, key, split), cached


def make_featurizer(
    cfg: config.TrainConfig, storage: Storage, timings: dict[str, float]
) -> tuple[Transformer, str | None]:
    """The featurizer stage, and the ONNX network it runs (None for raw pixels)."""
    if cfg.pretrained_model_type == config.PIXELS:
        return PixelFeaturizer(), None
    with timed(JOB, "export or reuse the ONNX network", timings):
        onnx_uri = ensure_onnx(storage, cfg.pretrained_model_type, cfg.weights, cfg.pool_grid)
    featurizer = ImageFeaturizer.from_zoo(
        cfg.pretrained_model_type, onnx_uri, cfg.pool_grid, batchSize=cfg.batch_size, engine=cfg.engine
    )
    return featurizer, onnx_uri


def fit_head(rows: DataFrame, cfg: config.TrainConfig) -> tuple[PipelineModel, list[dict[str, Any]] | None]:
    """Label indexer, classifier, label decoder and reject mask, fitted on featurized ``rows``.

    With ``cfg.tune``, every grid candidate's validation accuracy is returned too.
    """
    indexer = StringIndexer(
        inputCol="label", outputCol="label_index", stringOrderType="alphabetAsc", handleInvalid="keep"
    ).fit(rows)
    estimator, inner = classifiers.build(cfg.mmlspark_model_type, cfg.classifier_params(), cfg.seed)
    pipeline = Pipeline(
        stages=[
            indexer,
            estimator,
            IndexToString(inputCol="prediction", outputCol="predicted_label", labels=indexer.labels),
            MaskRejects(rejectCol="reject_reason", maskCols=PREDICTION_COLS),
        ]
    )
    if not cfg.tune:
        return pipeline.fit(rows), None
    maps = classifiers.grid(cfg.mmlspark_model_type, inner)
    search = TrainValidationSplit(
        estimator=pipeline,
        estimatorParamMaps=maps,
        evaluator=MulticlassClassificationEvaluator(labelCol="label_index", metricName="accuracy"),
        trainRatio=0.8,
        seed=cfg.seed,
    ).fit(rows)
    candidates = [
        {"params": {p.name: v for p, v in m.items()}, "validation_accuracy": float(score)}
        for m, score in zip(maps, search.validationMetrics, strict=True)
    ]
    return search.bestModel, candidates


def train(spark: SparkSession, cfg: config.TrainConfig, storage: Storage) -> dict[str, Any]:
    started = time.time()
    run_id = cli.new_run_id()
    timings: dict[str, float] = {}
    say(JOB, f"run {run_id}: {cfg.dataset} from {cfg.data}, {cfg.pretrained_model_type} + {cfg.mmlspark_model_type}")

    # Data first: a wrong layout or header fails in seconds, before any network is exported.
    images = {split: read_split(spark, cfg, split) for split in ("train", "test")}
    featurizer, onnx_uri = make_featurizer(cfg, storage, timings)

    counts: dict[str, dict[str, Any]] = {}
    features: dict[str, DataFrame] = {}
    for split in ("train", "test"):
        step = f"featurize {split}"
        with timed(JOB, step, timings):  # a cache miss featurizes while writing the cache
            feats, cached = featurize_split(spark, cfg, storage, featurizer, onnx_uri, split, images[split])
            feats = feats.persist(StorageLevel.MEMORY_AND_DISK)
            total = feats.count()
        rejected = reject_counts(feats)
        seconds = timings[step]
        counts[split] = {
            "images": total,
            "featurized": total - sum(rejected.values()),
            "rejected": sum(rejected.values()),
            "rejected_by_reason": rejected,
            # A cache hit measures a Parquet read, not featurization: no speed is claimed for it.
            "images_per_second": None if cached else round(total / max(seconds, 1e-9), 2),
            "features_cached": cached,
        }
        features[split] = feats
    if counts["train"]["featurized"] == 0:
        raise DatasetError(f"no usable training images in {cfg.data}")

    good_train = features["train"].where(F.col("reject_reason").isNull())
    with timed(JOB, f"fit {cfg.mmlspark_model_type}", timings):
        head, tuning = fit_head(good_train, cfg)
    model = PipelineModel([featurizer, *head.stages])

    predictions_path = [RUNS, run_id, "test_predictions"]
    with timed(JOB, "predict and evaluate test", timings):
        predictions_uri = storage.write_table(prediction_table(head.transform(features["test"])), *predictions_path)
        written = storage.read_table(spark, *predictions_path)
        test_labels = [r[0] for r in written.select("label").distinct().collect()]  # <= k rows
        labels = sorted(set(head.stages[0].labels) | set(test_labels))
        result = evaluate(written, labels)
    features["train"].unpersist()
    features["test"].unpersist()

    with timed(JOB, "save model", timings):
        model_uri = storage.save_model(model, TRAINED, cfg.output_model_name)

    metrics_uri = storage.uri(RUNS, run_id, "metrics.json")
    record = {
        "run_id": run_id,
        "job": JOB,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "model": cfg.output_model_name,
        "model_uri": model_uri,
        "pretrained_model_type": cfg.pretrained_model_type,
        "onnx_uri": onnx_uri,
        "classifier": cfg.mmlspark_model_type,
        "classifier_params": classifier_params(head.stages[1]),
        "tuning": tuning,
        "dataset": cfg.dataset,
        "sample_frac": {"train": cfg.fraction("train"), "test": cfg.fraction("test")},
        "config": dataclasses.asdict(cfg),
        **result.to_dict(),
        "counts": counts,
        "timings_s": timings,
        "seconds": round(time.time() - started, 2),
        "spark": {"master": spark.sparkContext.master, "parallelism": spark.sparkContext.defaultParallelism},
        "code_version": cli.code_version(),
        "predictions_uri": predictions_uri,
        "predictions_path": predictions_path,
    }
    storage.write_json(record, RUNS, run_id, "metrics.json")
    runs.append(storage, runs.summarize(record, metrics_uri))
    card_name = os.path.basename(onnx_uri).replace(".onnx", ".json") if onnx_uri else None
    tracking.log_run(record, storage.read_json(PRETRAINED, card_name) if card_name else None)
    # The model's own card: what scoring jobs report alongside their predictions.
    storage.write_json(
        {k: record[k] for k in ("run_id", "accuracy", "macro_f1", "labels", "pretrained_model_type", "classifier")}
        | {"n_train": counts["train"]["featurized"], "n_test": result.n, "metrics_uri": metrics_uri},
        TRAINED,
        f"{cfg.output_model_name}.json",
    )
    return {
        "run_id": run_id,
        "model": cfg.output_model_name,
        "accuracy": round(result.accuracy, 4),
        "macro_f1": round(result.macro_f1, 4),
        "n_train": counts["train"]["featurized"],
        "n_test": result.n,
        "n_rejected": counts["train"]["rejected"] + counts["test"]["rejected"],
        "featurize_images_per_s": counts["train"]["images_per_second"],
        "metrics_uri": metrics_uri,
        "predictions_uri": predictions_uri,
        "model_uri": model_uri,
        "seconds": record["seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    def go() -> dict[str, Any]:
        cfg = parse_args(argv)
        spark = get_spark(f"train-{cfg.output_model_name}", synapseml=cfg.engine == "synapseml")
        storage = open_storage(cfg.storage, spark)
        storage.check()
        return train(spark, cfg, storage)

    return cli.run(JOB, go)


if __name__ == "__main__":
    sys.exit(main())
