"""The train workflow: featurize labelled images, fit a classifier, evaluate, save.

Storage → image rows → CNN features → classifier → test predictions and metrics → storage.
The saved PipelineModel (``trainedmodels/<output_model_name>/``) holds every stage a scoring job
needs: the featurizer with its ONNX network, the label indexer, the classifier, the label
decoder and the reject mask. The run's ``metrics.json`` and test predictions go to
``runs/<run_id>/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Any

from pyspark import StorageLevel
from pyspark.ml import PipelineModel, Transformer
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurizers.image_featurizer import NOTE_COL, ImageFeaturizer
from featurizers.pixels import PixelFeaturizer
from featurizers.quantize import PRECISIONS
from jobs import config
from jobs.classifiers import estimators
from jobs.classifiers import head as head_module
from jobs.datasets import DatasetError, labelled, splits
from jobs.predictions.calibration import calibration, how_sure, overconfidence
from jobs.predictions.metrics import evaluate, small_split_warnings
from jobs.predictions.tables import prediction_table
from jobs.records import history, tracking
from jobs.runtime.digests import sha256_file
from jobs.runtime.provenance import code_version, new_run_id
from jobs.runtime.spark import say, timed
from jobs.storage import FEATURES, PRETRAINED, RUNS, TRAINED, Storage, open_storage
from jobs.workflows.networks import CALIBRATION_IMAGES, ensure_int8, ensure_onnx

JOB = "train"


def split_counts(features: DataFrame) -> dict[str, Any]:
    """Per split: images, featurized, rejected (by reason code), and images and featurized per label."""
    code = F.substring_index("reject_reason", ":", 1)
    rows = features.groupBy("split", "label", code.alias("code")).count().collect()  # splits x labels x codes
    notes = features.groupBy("split", F.substring_index(NOTE_COL, ":", 1).alias("note")).count().collect()
    counts: dict[str, Any] = {}
    for split in (splits.TRAIN, splits.VAL, splits.TEST):
        rejected: dict[str, int] = {}
        images: dict[str, int] = {}
        featurized: dict[str, int] = {}
        for r in (r for r in rows if r["split"] == split):
            n = int(r["count"])
            images[r["label"]] = images.get(r["label"], 0) + n
            if r["code"] is None:
                featurized[r["label"]] = featurized.get(r["label"], 0) + n
            else:
                rejected[r["code"]] = rejected.get(r["code"], 0) + n
        counts[split] = {
            "images": sum(images.values()),
            "featurized": sum(featurized.values()),
            "rejected": sum(rejected.values()),
            "rejected_by_reason": rejected,
            "images_by_label": dict(sorted(images.items())),
            "featurized_by_label": dict(sorted(featurized.items())),
            "pixel_notes": {r["note"]: int(r["count"]) for r in notes if r["split"] == split and r["note"]},
        }
    return counts


def check_labels(counts: dict[str, Any], location: Storage, split_info: dict[str, Any]) -> list[str]:
    """Fails on a class none of whose training images could be used; warns of labels only in test."""
    fit = (splits.TRAIN, splits.VAL)
    listed = {lab for s in fit for lab in counts[s]["images_by_label"]}
    usable = {lab for s in fit for lab, n in counts[s]["featurized_by_label"].items() if n}
    if not usable:
        raise DatasetError(f"no usable training images in {location.uri()}")
    dead = sorted(listed - usable)
    if dead:
        where = labelled.folder_of(location, split_info, dead[0])
        raise DatasetError(f"class folder {where}: every training image was rejected ({len(dead)} such classes)")
    only_test = sorted(set(counts[splits.TEST]["images_by_label"]) - listed)
    warnings = [f"labels only in the test split, never trained on: {', '.join(only_test)}"] if only_test else []
    for w in warnings:
        say(JOB, f"warning: {w}")
    return warnings


def featurize(
    spark: SparkSession,
    cfg: config.TrainConfig,
    storage: Storage,
    featurizer: Transformer,
    onnx_uri: str | None,
    images: DataFrame,
) -> tuple[DataFrame, bool]:
    """Featurized rows of every split, and whether they came from the feature cache.

    With ``cache_features``, rows are written once to ``features/<key>`` (Parquet) and read
    back on later runs whose key matches: data set, data, sample fractions, split settings,
    class names, the featurizer's parameters and the network file's sha256.
    """
    rows = featurizer.transform(images).drop("image")
    if not cfg.cache_features:
        return rows, False
    identity = {
        "dataset": cfg.dataset,
        "data": open_storage(cfg.data or "", spark).uri(),
        "fraction": [cfg.fraction("train"), cfg.fraction("test")],
        "split": [cfg.train_ratio, cfg.val_ratio, cfg.seed],
        "class_names": cfg.class_names,
        "featurizer": {p.name: v for p, v in featurizer.extractParamMap().items() if p.name != "modelPath"},
        "network_sha256": sha256_file(onnx_uri) if onnx_uri else None,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    cached = storage.table_complete(FEATURES, key)
    if not cached:
        storage.write_table(rows, FEATURES, key)
    return storage.read_table(spark, FEATURES, key), cached


def make_featurizer(
    cfg: config.TrainConfig,
    precision: str,
    storage: Storage,
    timings: dict[str, float],
    images: DataFrame,
    location: Storage,
) -> tuple[Transformer, str | None]:
    """The featurizer stage, and the ONNX network it runs (None for raw pixels).

    At ``precision`` int8 the network is quantized, calibrated on a seeded sample of this
    run's training images (:data:`~jobs.workflows.networks.CALIBRATION_IMAGES`; bytes of those few
    come to the driver), and cached per network and calibration sample.
    """
    if cfg.pretrained_model_type == config.PIXELS:
        return PixelFeaturizer(), None
    network = cfg.network()
    with timed(JOB, "export or reuse the ONNX network", timings):
        onnx_uri = ensure_onnx(storage, network, cfg.weights)
    if precision == "int8":
        with timed(JOB, "quantize or reuse the int8 network", timings):
            sample = (
                images.where(F.col("split") == splits.TRAIN)
                .orderBy(F.xxhash64("key", F.lit(cfg.seed)))
                .limit(CALIBRATION_IMAGES)
                .select("key", "image")
                .collect()
            )
            source = {"data": location.uri(), "split": splits.TRAIN, "seed": cfg.seed}
            onnx_uri = ensure_int8(storage, onnx_uri, network, [(r["key"], r["image"]) for r in sample], source)
    featurizer = ImageFeaturizer.from_network(network, onnx_uri, batchSize=cfg.batch_size, engine=cfg.engine)
    return featurizer, onnx_uri


MAX_INT8_COST = 0.005  # precision auto: the validation accuracy int8 may cost against fp32 (half a point)


@dataclasses.dataclass
class Fitted:
    """One precision's featurizer, features and head fitted on them."""

    precision: str
    featurizer: Transformer
    onnx_uri: str | None
    feats: DataFrame
    images_per_second: float | None
    head: PipelineModel
    tuning: list[dict[str, Any]] | None

    @property
    def val_accuracy(self) -> float | None:
        """The chosen settings' validation accuracy (None where nothing was tuned on a val split)."""
        return max(c["validation_accuracy"] for c in self.tuning) if self.tuning else None


def choose_precision(fitted: list[Fitted], warnings: list[str], auto: bool) -> tuple[Fitted, dict[str, Any] | None]:
    """The one candidate, or under precision auto int8 where its validation accuracy is within
    :data:`MAX_INT8_COST` of fp32's, and the comparison as recorded (fp32 where none can be made)."""
    if not auto:
        return fitted[0], None
    fp32, int8 = fitted[0], (fitted[1] if len(fitted) > 1 else None)
    check: dict[str, Any] = {
        "rule": f"int8 where its validation accuracy is at most {MAX_INT8_COST:g} below fp32's",
        "validation_accuracy": {"fp32": fp32.val_accuracy, "int8": int8.val_accuracy if int8 else None},
        "images_per_second": {"fp32": fp32.images_per_second, "int8": int8.images_per_second if int8 else None},
    }
    if int8 is None or fp32.val_accuracy is None or int8.val_accuracy is None:
        warnings.append("precision auto: no tuned validation accuracy to weigh int8 against fp32 by: kept fp32")
        say(JOB, f"warning: {warnings[-1]}")
        return fp32, check | {"kept": "fp32"}
    kept = int8 if int8.val_accuracy >= fp32.val_accuracy - MAX_INT8_COST else fp32
    say(JOB, f"precision auto: validation fp32 {fp32.val_accuracy:.4f}, int8 {int8.val_accuracy:.4f}: {kept.precision}")
    return kept, check | {"kept": kept.precision}


def fit_precisions(
    spark: SparkSession,
    cfg: config.TrainConfig,
    storage: Storage,
    timings: dict[str, float],
    images: DataFrame,
    split_info: dict[str, Any],
    location: Storage,
) -> tuple[Fitted, dict[str, Any] | None, dict[str, Any], list[str]]:
    """Featurize and fit the head at the run's precision, or under precision auto at fp32 and then
    int8, keeping int8 only where validation says it costs at most :data:`MAX_INT8_COST`.

    Returns the kept candidate (its features persisted), the comparison, the split counts and the
    warnings. The images and their rejects are the same at either precision: counted once.
    """
    auto = cfg.precision == config.AUTO
    fitted: list[Fitted] = []
    counts: dict[str, Any] = {}
    warnings: list[str] = []
    for precision in PRECISIONS if auto else (cfg.precision,):
        if fitted and fitted[0].val_accuracy is None:
            break  # no validation score to weigh int8 by: choose_precision keeps fp32 and says so
        suffix = f" ({precision})" if auto else ""
        featurizer, onnx_uri = make_featurizer(cfg, precision, storage, timings, images, location)
        step = f"featurize{suffix}"
        with timed(JOB, step, timings, spark, split_info.get("listed")):  # a cache miss featurizes while writing it
            feats, cached = featurize(spark, cfg, storage, featurizer, onnx_uri, images)
            feats = feats.persist(StorageLevel.MEMORY_AND_DISK)
            total = feats.count()
        rate = None if cached else round(total / max(timings[step], 1e-9), 2)
        if not fitted:
            counts = split_counts(feats)
            counts["features_cached"] = cached
            warnings = check_labels(counts, location, split_info)
            if split_info.get("skipped_by_reason"):
                warnings.append(f"left out while listing (not images): {split_info['skipped_by_reason']}")
                say(JOB, f"warning: {warnings[-1]}")
            if cfg.tune and not counts["val"]["featurized"]:  # the documented fallback, said aloud and recorded
                n_train, n_classes = counts["train"]["featurized"], len(counts["train"]["featurized_by_label"])
                warnings.append(
                    f"no validation images to tune on ({n_train} training images in {n_classes} classes, val_ratio "
                    f"{cfg.val_ratio}): the classifier's settings were not tuned; its defaults were used"
                )
                say(JOB, f"warning: {warnings[-1]}")
        good = feats.where(F.col("reject_reason").isNull())
        train_rows = good.where(F.col("split") == splits.TRAIN)
        val_rows = good.where(F.col("split") == splits.VAL) if counts["val"]["featurized"] else None
        with timed(JOB, f"fit {cfg.mmlspark_model_type}{suffix}", timings):
            head, tuning = head_fit(train_rows, val_rows, cfg)
        fitted.append(Fitted(precision, featurizer, onnx_uri, feats, rate, head, tuning))
    kept, check = choose_precision(fitted, warnings, auto)
    for f in fitted:
        if f is not kept:
            f.feats.unpersist()
    counts["images_per_second"] = kept.images_per_second
    return kept, check, counts, warnings


def train(
    spark: SparkSession,
    cfg: config.TrainConfig,
    storage: Storage,
    extra: dict[str, Any] | None = None,
    started: float | None = None,
) -> dict[str, Any]:
    """Featurize, fit, evaluate, save. ``extra`` joins the run record and the model card (e.g. the
    fine-tuning that made the featurizer's weights); ``started``: when the run began, if earlier."""
    started = started or time.time()
    run_id = new_run_id()
    timings: dict[str, float] = {}
    say(JOB, f"run {run_id}: {cfg.dataset} from {cfg.data}, {cfg.pretrained_model_type} + {cfg.mmlspark_model_type}")

    estimators.build(cfg.mmlspark_model_type or "", cfg.classifier_params(), cfg.seed)  # bad settings fail now
    # Data first: a wrong layout or header fails in seconds, before any network is exported.
    images, split_info, location = labelled.load(spark, selection(cfg))
    kept, precision_check, counts, warnings = fit_precisions(spark, cfg, storage, timings, images, split_info, location)
    featurizer, onnx_uri, feats, head, tuning = kept.featurizer, kept.onnx_uri, kept.feats, kept.head, kept.tuning
    model = PipelineModel([featurizer, *head.stages])

    predictions_path = [RUNS, run_id, "test_predictions"]
    test = feats.where(F.col("split") == splits.TEST)
    with timed(JOB, "predict and evaluate test", timings):
        predictions_uri = storage.write_table(prediction_table(head.transform(test)), *predictions_path)
        written = storage.read_table(spark, *predictions_path)
        test_labels = [r[0] for r in written.select("label").distinct().collect()]  # <= k rows
        labels = sorted(set(head.stages[0].labels) | set(test_labels))
        result = evaluate(written, labels)
        calib = calibration(written)  # how far its probabilities (those the maps show) can be believed
        test_confidence = how_sure(written)  # the baseline a scoring run's confidence is read against
    if result.n == 0:
        raise DatasetError(f"no usable test images in {cfg.data}: nothing to evaluate the model on")
    advice = "the model's probabilities run higher than its accuracy; its maps' confidence will overstate too"
    said = small_split_warnings(result.accuracy, result.n, tuning, counts["val"]["featurized"])
    for w in filter(None, [*said, overconfidence(calib, "test images predicted", "are right in", advice)]):
        warnings.append(w)
        say(JOB, f"warning: {w}")
    if split_info["method"].startswith("seeded"):  # the exact test files, for audits and reruns
        split_info["test_files"] = list(labelled.keys(test.select("key")))
    feats.unpersist()

    # Lineage: the run record is written first, under the run's own id (invisible until the
    # index lists it); then model and card become visible together, and the index line is
    # appended inside that commit, which is rolled back if the line cannot be written.
    model_uri = storage.uri(TRAINED, cfg.output_model_name)
    metrics_uri = storage.uri(RUNS, run_id, "metrics.json")
    record = {
        "run_id": run_id,
        "job": JOB,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "model": cfg.output_model_name,
        "model_uri": model_uri,
        "pretrained_model_type": cfg.pretrained_model_type,
        "precision": kept.precision,
        "precision_check": precision_check,
        "onnx_uri": onnx_uri,
        "classifier": cfg.mmlspark_model_type,
        "classifier_params": head_module.classifier_params(head.stages[1]),
        "tuning": tuning,
        "dataset": cfg.dataset,
        "split": split_info,
        "warnings": warnings,
        "sample_frac": {"train": cfg.fraction("train"), "test": cfg.fraction("test")},
        "config": dataclasses.asdict(cfg),
        "config_from": getattr(cfg, "sources", {}),  # flag, conf, recipe or default, per key
        **result.to_dict(),
        "calibration": calib,
        "test_confidence": test_confidence,
        "counts": counts,
        "timings_s": timings,
        "seconds": round(time.time() - started, 2),
        "spark": {"master": spark.sparkContext.master, "parallelism": spark.sparkContext.defaultParallelism},
        "code_version": code_version(),
        "predictions_uri": predictions_uri,
        "predictions_path": predictions_path,
        **(extra or {}),
    }
    storage.write_json(record, RUNS, run_id, "metrics.json")
    # The model's own card: what scoring jobs report alongside their predictions.
    tile_m = cfg.tile_m or (cfg.gsd_m * cfg.image_px if cfg.gsd_m and cfg.image_px else None)
    summary_n_train = counts["train"]["featurized"] + counts["val"]["featurized"]
    card = (
        {k: record[k] for k in ("run_id", "accuracy", "macro_f1", "labels", "pretrained_model_type", "classifier")}
        | {"n_train": summary_n_train, "n_test": result.n, "metrics_uri": metrics_uri}
        | {"gsd_m": cfg.gsd_m, "gsd_range_m": cfg.gsd_range_m, "image_px": cfg.image_px, "tile_m": tile_m}
        | {"d4": cfg.d4, "precision": kept.precision, "calibration_ece": calib["ece"] if calib else None}
        | {"test_confidence": test_confidence}
        | (extra or {})
    )
    with timed(JOB, "save model", timings):
        storage.save_model(
            model,
            TRAINED,
            cfg.output_model_name,
            card=card,
            record=lambda: history.append(storage, history.summarize(record, metrics_uri)),
        )
    network_card = os.path.basename(onnx_uri).replace(".onnx", ".json") if onnx_uri else None
    try:  # MLflow is a copy of the record: its failure costs the copy, not the run
        tracking.log_run(record, storage.read_json(PRETRAINED, network_card) if network_card else None)
    except Exception as exc:
        warnings.append(f"MLflow logging failed: {type(exc).__name__}: {str(exc)[:200]}")
        say(JOB, f"warning: {warnings[-1]}")
    return {
        "run_id": run_id,
        "model": cfg.output_model_name,
        "accuracy": round(result.accuracy, 4),
        "macro_f1": round(result.macro_f1, 4),
        "calibration_ece": calib["ece"] if calib else None,
        "n_train": summary_n_train,
        "n_test": result.n,
        "n_rejected": sum(counts[s]["rejected"] for s in (splits.TRAIN, splits.VAL, splits.TEST)),
        "featurize_images_per_s": counts["images_per_second"],
        "precision": kept.precision,
        "classifier_params": {k: v for k, v in record["classifier_params"].items() if k in estimators.FLAGS},
        "warnings": warnings,
        "metrics_uri": metrics_uri,
        "predictions_uri": predictions_uri,
        "model_uri": model_uri,
        "seconds": record["seconds"],
    }


def selection(cfg: config.TrainConfig) -> labelled.Selection:
    """What the data set stage needs of the configuration."""
    return labelled.Selection(
        dataset=cfg.dataset,
        data=cfg.data or "",
        train_ratio=cfg.train_ratio,
        val_ratio=cfg.val_ratio or 0.0,
        seed=cfg.seed,
        train_fraction=cfg.fraction("train"),
        test_fraction=cfg.fraction("test"),
        class_names=tuple(cfg.class_names) if cfg.class_names else None,
    )


def head_fit(
    train_rows: DataFrame, val_rows: DataFrame | None, cfg: config.TrainConfig
) -> tuple[PipelineModel, list[dict[str, Any]] | None]:
    return head_module.fit_head(
        train_rows,
        val_rows,
        cfg.mmlspark_model_type or "",
        cfg.classifier_params(),
        cfg.seed,
        bool(cfg.tune),
        lambda line: say(JOB, line),
    )
