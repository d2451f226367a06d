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
import sys
import time
from typing import Any

from pyspark import StorageLevel
from pyspark.ml import Estimator, Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression, RandomForestClassifier
from pyspark.ml.feature import IndexToString, StringIndexer
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurizers.image_featurizer import ImageFeaturizer
from featurizers.rejects import MaskRejects
from jobs import cli, config
from jobs.datasets import DatasetError, folders, mnist
from jobs.metrics import evaluate
from jobs.predictions import prediction_table
from jobs.pretrained import ensure_onnx
from jobs.spark import get_spark, say, timed
from jobs.storage import RUNS, TRAINED, LocalStorage, open_storage

JOB = "train"
PREDICTION_COLS = ["prediction", "probability", "raw_prediction", "predicted_label"]


def parse_args(argv: list[str] | None = None) -> config.TrainConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    config.add_conf_flag(p)
    p.add_argument("--output_model_name", help="name under trainedmodels/ and predictions/")
    p.add_argument("--pretrained_model_type", help="zoo network: efficientnet_lite0, resnet18, alexnet, …")
    p.add_argument("--weights", help="pretrained weights: a file, or 'random' (tests only)")
    p.add_argument("--mmlspark_model_type", choices=config.CLASSIFIERS)
    p.add_argument("--sample_frac", type=float, help="fraction of train and test images to use")
    p.add_argument("--train_sample_frac", type=float)
    p.add_argument("--test_sample_frac", type=float)
    p.add_argument("--dataset", choices=("mnist", "aerial"))
    p.add_argument("--data", help="MNIST idx folder, or aerial root holding train/ and test/")
    p.add_argument("--storage", help="storage root (default ./data)")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch_size", type=int, help="images per onnxruntime call")
    args = vars(p.parse_args(argv))
    return config.build(config.TrainConfig, args.pop("conf"), args)


def read_split(spark: SparkSession, cfg: config.TrainConfig, split: str) -> DataFrame:
    if cfg.dataset == "mnist":
        return mnist.load_split(spark, cfg.data, split, cfg.fraction(split), cfg.seed, cfg.class_names)
    return folders.load_labelled(spark, cfg.data, split, cfg.fraction(split), cfg.seed)


def classifier(cfg: config.TrainConfig) -> Estimator:
    common: dict[str, Any] = {
        "featuresCol": "features",
        "labelCol": "label_index",
        "predictionCol": "prediction",
        "probabilityCol": "probability",
        "rawPredictionCol": "raw_prediction",
    }
    if cfg.mmlspark_model_type == "logisticregression":
        params = {"maxIter": 200, "regParam": 0.01, **cfg.logisticregression}
        return LogisticRegression(**common, **params)
    params = {"numTrees": 50, "maxDepth": 10, "seed": cfg.seed, **cfg.randomforest}
    return RandomForestClassifier(**common, **params)


def reject_counts(features: DataFrame) -> dict[str, int]:
    """Rejected images per reason code (the text before the first colon)."""
    rows = (
        features.where(F.col("reject_reason").isNotNull())
        .groupBy(F.substring_index("reject_reason", ":", 1).alias("code"))
        .count()
        .collect()  # one row per reason code
    )
    return {r["code"]: int(r["count"]) for r in rows}


def train(spark: SparkSession, cfg: config.TrainConfig, storage: LocalStorage) -> dict[str, Any]:
    started = time.time()
    run_id = cli.new_run_id()
    timings: dict[str, float] = {}
    say(JOB, f"run {run_id}: {cfg.dataset} from {cfg.data}, {cfg.pretrained_model_type} + {cfg.mmlspark_model_type}")

    with timed(JOB, "export or reuse the ONNX network", timings):
        onnx_uri = ensure_onnx(storage, cfg.pretrained_model_type, cfg.weights)
    featurizer = ImageFeaturizer.from_zoo(cfg.pretrained_model_type, onnx_uri, batchSize=cfg.batch_size)

    counts: dict[str, dict[str, Any]] = {}
    features: dict[str, DataFrame] = {}
    for split in ("train", "test"):
        rows = read_split(spark, cfg, split)
        feats = featurizer.transform(rows).drop("image").persist(StorageLevel.MEMORY_AND_DISK)
        with timed(JOB, f"featurize {split}", timings):
            total = feats.count()
        rejected = reject_counts(feats)
        counts[split] = {
            "images": total,
            "featurized": total - sum(rejected.values()),
            "rejected": sum(rejected.values()),
            "rejected_by_reason": rejected,
            "images_per_second": round(total / max(timings[f"featurize {split}"], 1e-9), 2),
        }
        features[split] = feats
    if counts["train"]["featurized"] == 0:
        raise DatasetError(f"no usable training images in {cfg.data}")

    good_train = features["train"].where(F.col("reject_reason").isNull())
    with timed(JOB, f"fit {cfg.mmlspark_model_type}", timings):
        indexer = StringIndexer(
            inputCol="label", outputCol="label_index", stringOrderType="alphabetAsc", handleInvalid="keep"
        ).fit(good_train)
        head = Pipeline(
            stages=[
                indexer,
                classifier(cfg),
                IndexToString(inputCol="prediction", outputCol="predicted_label", labels=indexer.labels),
                MaskRejects(rejectCol="reject_reason", maskCols=PREDICTION_COLS),
            ]
        ).fit(good_train)
    model = PipelineModel([featurizer, *head.stages])

    run_dir = storage.uri(RUNS, run_id)
    predictions_uri = f"{run_dir}/test_predictions"
    with timed(JOB, "predict and evaluate test", timings):
        prediction_table(head.transform(features["test"])).write.parquet(predictions_uri)
        written = spark.read.parquet(predictions_uri)
        test_labels = [r[0] for r in written.select("label").distinct().collect()]  # <= k rows
        labels = sorted(set(indexer.labels) | set(test_labels))
        result = evaluate(written, labels)
    features["train"].unpersist()
    features["test"].unpersist()

    model_uri = storage.uri(TRAINED, cfg.output_model_name)
    with timed(JOB, "save model", timings):
        model.write().overwrite().save(model_uri)

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
        "classifier_params": {p.name: v for p, v in head.stages[1].extractParamMap().items()},
        "dataset": cfg.dataset,
        "config": dataclasses.asdict(cfg),
        **result.to_dict(),
        "counts": counts,
        "timings_s": timings,
        "seconds": round(time.time() - started, 2),
        "spark": {"master": spark.sparkContext.master, "parallelism": spark.sparkContext.defaultParallelism},
        "code_version": cli.code_version(),
        "predictions_uri": predictions_uri,
    }
    storage.write_json(record, RUNS, run_id, "metrics.json")
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
        storage = open_storage(cfg.storage)
        return train(get_spark(f"train-{cfg.output_model_name}"), cfg, storage)

    return cli.run(JOB, go)


if __name__ == "__main__":
    sys.exit(main())
