"""Saved models' files: the card beside them, the stages a model may name, and the commit step
through which each backend makes a saved model visible at once (:meth:`Storage.save_model`)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from jobs.storage.errors import StorageError

if TYPE_CHECKING:
    from jobs.storage.base import Storage


class ModelCommit(ABC):
    """One save of a model: where Spark writes it, how it becomes the saved one in one step, and
    how that step is undone when the run's record cannot be written."""

    staging: str  # where ``model.write().save()`` puts the model: a local path or a URI

    @abstractmethod
    def put(self, name: str, data: bytes) -> None:
        """A file beside the model's own, inside its folder (the card)."""

    @abstractmethod
    def publish(self) -> None:
        """Makes the staged model the saved one, replacing any previous one."""

    @abstractmethod
    def rollback(self) -> None:
        """After :meth:`publish`: puts the previous model (or none) back."""

    def finish(self) -> None:
        """Removes what the save left behind (the staging, a replaced model)."""
        return None


CARD = "card.json"  # a saved model's card, inside its folder: saved and replaced with it
# Stage classes a saved model may name. Loading a PipelineModel imports the module its metadata
# names, so a model folder is trusted like code; anything else is refused before loading.
PROJECT_STAGES = frozenset(
    {
        "featurizers.image_featurizer.ImageFeaturizer",
        "featurizers.pixels.PixelFeaturizer",
        "featurizers.rejects.MaskRejects",
    }
)


def is_trusted_stage(cls: str) -> bool:
    """One of this project's stage classes by exact name, or a Spark ML stage class: pyspark's
    reader imports ``org.apache.spark.ml.X.Y`` as ``pyspark.ml.X.Y``, so the name must resolve in
    pyspark.ml to a class with Spark ML params (not, say, ``pyspark.ml.feature.os``). Only
    pyspark.ml's own modules are imported to tell."""
    if cls in PROJECT_STAGES:
        return True
    name = cls.replace("org.apache.spark", "pyspark", 1) if cls.startswith("org.apache.spark.ml.") else cls
    if not name.startswith("pyspark.ml."):
        return False
    import importlib

    from pyspark.ml.param import Params

    module, _, attr = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(found, type) and issubclass(found, Params)


def stage_metadata(storage: Storage, *parts: str) -> dict[str, Any]:
    """The metadata line Spark ML (and pyspark's DefaultParamsWriter) saves for a model or stage."""
    text = storage.read_bytes(*parts, "metadata", "part-00000").decode()
    return dict(json.loads(text.splitlines()[0]))


def check_stage_classes(storage: Storage, *parts: str) -> None:
    """Refuses a saved model that lists a stage it does not hold, or names a stage class outside
    this project and Spark ML (one line, before any module it names is imported)."""
    where = storage.uri(*parts)

    def metadata(*folder: str) -> dict[str, Any]:
        return stage_metadata(storage, *parts, *folder)

    try:
        uids = list(metadata()["paramMap"]["stageUids"])
        stages = storage.list_folders(*parts, "stages")
    except (StorageError, ValueError, KeyError, IndexError, TypeError):
        raise StorageError(f"{where}: not a saved model (its metadata is missing or unreadable)") from None
    for i, uid in enumerate(uids):
        folder = f"{i}_{uid}"
        if folder not in stages:
            raise StorageError(f"{where}: incomplete saved model, stage {folder} is missing")
        try:
            cls = str(metadata("stages", folder)["class"])
        except (StorageError, ValueError, KeyError, IndexError, TypeError):
            raise StorageError(f"{where}: stage {folder} has no readable metadata") from None
        if not is_trusted_stage(cls):
            raise StorageError(
                f"{where}: stage {folder} is of class {cls}, outside this project and Spark ML: refused "
                "(a model folder is trusted like code)"
            )
