"""The fine-tune workflow: a zoo backbone trained on the labelled images through Spark's
TorchDistributor, exported to ONNX, then the featurizer of an ordinary train run."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from featurizers.export import require_torch
from featurizers.finetune import FinetuneSpec, train_process
from featurizers.zoo import get_entry
from jobs.classifiers import estimators
from jobs.config import ConfigError, TrainConfig
from jobs.datasets import DatasetError, labelled, splits
from jobs.runtime.digests import sha256_bytes
from jobs.runtime.errors import JobFailedError
from jobs.runtime.spark import say, timed
from jobs.storage import PRETRAINED, Storage, temp_dir
from jobs.workflows.networks import ensure_onnx
from jobs.workflows.train import selection, train

JOB = "finetune"


class TrainingFailedError(JobFailedError):
    """A training process died or raised; the previously saved model is untouched."""


def names_by_split(spark: SparkSession, cfg: TrainConfig) -> tuple[dict[str, list[tuple[str, str]]], Any]:
    """``{split: [(URI, label)]}`` for train and val (names only, streamed), and the data root."""
    names, _, location = labelled.image_names(spark, selection(cfg))
    rows = names.where(F.col("split").isin(splits.TRAIN, splits.VAL)).select("path", "label", "split").orderBy("key")
    out: dict[str, list[tuple[str, str]]] = {splits.TRAIN: [], splits.VAL: []}
    for r in rows.toLocalIterator():
        out[r["split"]].append((r["path"], r["label"]))
    names.unpersist()
    if not out[splits.VAL]:
        n, k = len(out[splits.TRAIN]), len({lab for _, lab in out[splits.TRAIN]})
        raise DatasetError(
            f"no validation images in {location.uri()} ({n} training images in {k} classes, val_ratio "
            f"{cfg.val_ratio}): fine-tuning keeps its best epoch on them; raise val_ratio or add images"
        )
    return out, location


def run_distributed(spark: SparkSession, spec: FinetuneSpec, num_processes: int, use_gpu: bool) -> dict[str, Any]:
    """``train_process`` on ``num_processes`` processes through TorchDistributor; rank 0's result."""
    from pyspark.ml.torch.distributor import TorchDistributor

    local = spark.sparkContext.master.startswith("local")
    distributor = TorchDistributor(num_processes=num_processes, local_mode=local, use_gpu=use_gpu)
    try:
        # TorchDistributor echoes the processes' output on stdout, which carries only the summary.
        with contextlib.redirect_stdout(sys.stderr):
            out = distributor.run(train_process, spec)
    except Exception as exc:
        raise TrainingFailedError(f"a training process failed ({_what_failed(exc)}); no model was saved") from exc
    if not out:
        raise TrainingFailedError("training returned nothing: no epoch finished")
    return out


def _what_failed(exc: BaseException) -> str:
    """The line of a TorchDistributor failure that says what happened: its own message only
    points at the log, whose tail rides in the chained exceptions."""
    texts = []
    while exc is not None and len(texts) < 5:
        texts.append(str(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    lines = [ln.strip() for t in texts for ln in t.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.search(r"\w+(Error|Exception): ", ln) and "ChildFailedError" not in ln]
    if errors:
        return errors[-1][:300]
    codes = [ln for ln in lines if ln.startswith("exitcode")]
    return (codes[0] if codes else lines[-1] if lines else "no output")[:300]


def check_gpus(spark: SparkSession) -> None:
    """``--use_gpu``'s preconditions, before any process starts. TorchDistributor finds GPUs through
    Spark's resource scheduling; under a local master the processes run here, so torch here must
    see a CUDA device too (else each process would fail after the launch)."""
    local = spark.sparkContext.master.startswith("local")
    key = "spark.driver.resource.gpu.amount" if local else "spark.task.resource.gpu.amount"
    if not spark.conf.get(key, None):
        raise ConfigError(f"--use_gpu needs {key} (and a GPU discovery script) in Spark's conf")
    if local:
        import torch

        if not torch.cuda.is_available():
            gpus = spark.sparkContext.resources.get("gpu")
            listed = ", ".join(gpus.addresses) if gpus else "none"
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise ConfigError(
                f"--use_gpu: Spark gives the driver GPU {listed}, but torch {torch.__version__} ({build}) "
                "sees no CUDA device"
            )


def finetune(spark: SparkSession, cfg: TrainConfig, storage: Storage) -> dict[str, Any]:
    started = time.time()
    require_torch("fine-tuning (recipe one-pass)")
    cores = spark.sparkContext.defaultParallelism
    if not cfg.use_gpu and cfg.num_processes > cores:
        raise ConfigError(f"num_processes {cfg.num_processes} is more than the {cores} cores Spark has")
    if cfg.use_gpu:
        check_gpus(spark)
    # Bad classifier settings fail now, not after the minutes of fine-tuning before the classifier.
    estimators.build(cfg.mmlspark_model_type or "", cfg.classifier_params(), cfg.seed)
    backbone = cfg.network().backbones[0]
    by_split, location = names_by_split(spark, cfg)
    classes = sorted({lab for names in by_split.values() for _, lab in names})
    index = {c: i for i, c in enumerate(classes)}
    spec = FinetuneSpec(
        backbone=backbone,
        classes=classes,
        train=[(p, index[lab]) for p, lab in by_split[splits.TRAIN]],
        val=[(p, index[lab]) for p, lab in by_split[splits.VAL]],
        reader=location.reader(),
        image_size=cfg.network().preprocessing.crop,
        epochs=cfg.epochs,
        lr=cfg.lr,
        trainable_blocks=cfg.trainable_blocks,
        batch_size=cfg.finetune_batch_size,
        seed=cfg.seed,
        use_gpu=cfg.use_gpu,
        weights=cfg.weights,
    )
    say(JOB, f"fine-tuning {backbone} on {len(spec.train)} images ({len(spec.val)} validation), {len(classes)} classes")
    timings: dict[str, float] = {}
    with timed(JOB, f"fine-tune on {cfg.num_processes} processes", timings):
        out = run_distributed(spark, spec, cfg.num_processes, cfg.use_gpu)

    state = out.pop("state")
    stem = f"{backbone}-finetuned-{sha256_bytes(state)[:12]}"
    storage.write_bytes(state, PRETRAINED, f"{stem}.pt")  # the weights, kept beside the networks made of them
    weights = os.path.join(temp_dir("finetuned-"), f"{stem}.pt")
    with open(weights, "wb") as f:
        f.write(state)
    base = get_entry(backbone).weights if cfg.weights is None else f"file:{os.path.basename(cfg.weights)}"
    info = {
        "base_weights": base,
        "weights_uri": storage.uri(PRETRAINED, f"{stem}.pt"),
        "weights_sha256": sha256_bytes(state),
        "dataset": cfg.dataset,
        "data": location.uri(),
        "split": {"train_ratio": cfg.train_ratio, "val_ratio": cfg.val_ratio, "seed": cfg.seed},
        "classes": classes,
        "settings": {
            k: getattr(cfg, k)
            for k in ("epochs", "lr", "trainable_blocks", "num_processes", "use_gpu", "finetune_batch_size")
        }
        | {"image_size": spec.image_size},
        **out,
        "wall_seconds": timings[f"fine-tune on {cfg.num_processes} processes"],
    }
    ensure_onnx(storage, cfg.network(), weights, card_extra={"finetune": info})
    cfg.weights = weights
    summary = train(spark, cfg, storage, extra={"finetune": info}, started=started)
    summary["finetune"] = {k: info[k] for k in ("best_epoch", "best_val_accuracy", "wall_seconds")} | {
        "epochs_run": len(info["curve"])
    }
    return summary


def train_or_finetune(spark: SparkSession, cfg: TrainConfig, storage: Storage) -> dict[str, Any]:
    """``jobs/train.py``'s work: a fine-tune first where the recipe or a flag asks for one."""
    return finetune(spark, cfg, storage) if cfg.finetune else train(spark, cfg, storage)
