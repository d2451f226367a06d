"""Labelled images for a train run: one frame of image rows with a ``split`` column.

``split`` is ``train``, ``val`` (held out of train to choose the classifier's settings) or
``test``. Where it comes from, by layout:

* MNIST idx files: their own train and test files; ``val`` carved from train.
* ``<root>/train/<label>/`` + ``<root>/test/<label>/``: those folders; ``val`` carved from train.
* ``<root>/<label>/`` (UC Merced, RSSCN7, AID, EuroSAT…): a seeded, stratified split
  (:mod:`jobs.datasets.splits`) hashed on paths relative to the root, so the same images land
  in the same split on any storage; the test files are listed in the run record.

Every row also has ``key``: the image's name relative to the data root.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.datasets import DatasetError, aid, folders, mnist, sample, splits, ucmerced
from jobs.runtime.spark import task_count
from jobs.storage import Storage, open_storage

# Featurizing tasks of at most this many images: tens of seconds each at the aerial recipe's 16
# passes an image, so the images-done count (jobs.runtime.progress, sent as tasks end) moves.
IMAGES_PER_TASK = 64


@dataclass(frozen=True)
class Selection:
    """Which labelled images a run reads and how they are split: all this stage needs of a run's
    configuration."""

    dataset: str
    data: str
    train_ratio: float
    val_ratio: float
    seed: int
    train_fraction: float = 1.0
    test_fraction: float = 1.0
    class_names: tuple[str, ...] | None = None

    def fraction(self, split: str) -> float:
        return self.train_fraction if split == splits.TRAIN else self.test_fraction


def load(spark: SparkSession, sel: Selection) -> tuple[DataFrame, dict[str, Any], Storage]:
    """``(image rows with split and key, a record of how the split was made, the data root)``.

    Splits are made on names alone (windows over labels shuffle names, never image bytes); the
    names are then spread evenly, ~256 a task, and only then are the images read.
    """
    if sel.dataset == "mnist":
        location = open_storage(sel.data, spark)
        parts = [
            mnist.load_split(spark, location, s, sel.fraction(s), sel.seed, sel.class_names).withColumn(
                "split", F.lit(s)
            )
            for s in (splits.TRAIN, splits.TEST)
        ]
        rows = parts[0].unionByName(parts[1]).withColumn("key", F.col("path"))
        n_parts = rows.rdd.getNumPartitions()
        rows = splits.carve_val(rows, F.col("key"), sel.val_ratio, sel.seed).repartition(n_parts)
        return rows, {"method": "the data set's own train and test files"} | _common(sel), location
    names, info, location = image_names(spark, sel)
    n = info["listed"]
    spread = names.repartition(task_count(spark, n, IMAGES_PER_TASK))
    return folders.attach_images(spark, location, spread), info, location


def image_names(spark: SparkSession, sel: Selection) -> tuple[DataFrame, dict[str, Any], Storage]:
    """Folder layouts only: ``(path, label, split, key)`` rows (no bytes read), how the split was
    made, and the data root."""
    if sel.dataset == "mnist":
        raise DatasetError("MNIST idx files hold no image files to name: this needs an image-folder data set")
    locate = {"ucmerced": ucmerced.locate, "aid": aid.locate}.get(sel.dataset)
    root = locate(sel.data) if locate else sel.data
    location = open_storage(root, spark)
    skipped: Counter[str] = Counter()
    if folders.is_pre_split(location):
        names = _pre_split_names(spark, location, sel, skipped)
        info = {"method": "the data set's train/ and test/ folders"}
    else:
        names = _class_folder_names(spark, location, sel, skipped)
        info = {"method": "seeded stratified split of <label>/ folders", "train_ratio": sel.train_ratio}
    info["skipped_by_reason"] = dict(sorted(skipped.items()))  # listed but not data (see folders)
    names = splits.carve_val(names, F.col("key"), sel.val_ratio, sel.seed).persist()
    info["listed"] = names.count()  # images of every split, after sampling
    return names, info | _common(sel), location


def _common(sel: Selection) -> dict[str, Any]:
    return {"val_ratio": sel.val_ratio, "seed": sel.seed}


SAMPLE_SALT = 7919  # sampling must not reuse the split's hash: the test split is its top ranks


def _sampled(names: DataFrame, sel: Selection) -> DataFrame:
    seed = sel.seed + SAMPLE_SALT
    parts = [
        sample(names.where(F.col("split") == s), sel.fraction(s), seed, key="key") for s in (splits.TRAIN, splits.TEST)
    ]
    return parts[0].unionByName(parts[1])


def _pre_split_names(spark: SparkSession, location: Storage, sel: Selection, skipped: Counter[str]) -> DataFrame:
    frames = []
    for s in (splits.TRAIN, splits.TEST):
        listed = folders.uris(location, folders.labelled_files(location, s, skipped))
        frames.append(folders.names_frame(spark, listed).withColumn("split", F.lit(s)))
    names = frames[0].unionByName(frames[1]).withColumn("key", folders.relative_key(location))
    return _sampled(names, sel)


def _class_folder_names(spark: SparkSession, location: Storage, sel: Selection, skipped: Counter[str]) -> DataFrame:
    names = folders.names_frame(spark, folders.uris(location, folders.class_files(location, skipped))).withColumn(
        "key", folders.relative_key(location)
    )
    counts = {r["label"]: int(r["count"]) for r in names.groupBy("label").count().collect()}  # one row a class
    empty = [f for f in location.list_folders() if f not in counts]
    if empty:
        raise DatasetError(f"class folder {location.uri(empty[0])} holds no image ({len(empty)} empty in all)")
    splits.check_class_sizes(counts, location.uri())
    return _sampled(splits.assign(names, F.col("key"), sel.train_ratio, 0.0, sel.seed), sel)


def folder_of(location: Storage, info: dict[str, Any], label: str) -> str:
    """Where a label's training images live, for messages."""
    pre_split = info["method"].startswith("the data set's train/")
    return location.uri("train", label) if pre_split else location.uri(label)


def keys(rows: DataFrame) -> Iterator[str]:
    """The ``key`` column, streamed to the driver in order (test file lists of a run record)."""
    for r in rows.select("key").orderBy("key").toLocalIterator():
        yield r["key"]
