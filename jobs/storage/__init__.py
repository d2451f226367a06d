"""Storage, the pipeline's first and last stage: one interface (:mod:`.base`) over a local folder
(:mod:`.local`), Azure Blob/ADLS (:mod:`.blob`) and any Hadoop URI (:mod:`.hadoop`, executors
reading through :mod:`.fsspec_files`), picked by :mod:`.factory`; saved models' files and trust
(:mod:`.models`), run locks (:mod:`.lock`) and local scratch (:mod:`.scratch`).

The names most callers need are here.
"""

from jobs.storage.base import (
    ASSESSMENTS,
    CHANGES,
    FEATURES,
    HIDDEN,
    MAPS,
    PREDICTIONS,
    PRETRAINED,
    RUNS,
    SUCCESS,
    TRAINED,
    Reader,
    Storage,
    StorageError,
)
from jobs.storage.errors import NotAFileError
from jobs.storage.factory import open_storage, reader_for
from jobs.storage.hadoop import HadoopStorage
from jobs.storage.local import LocalStorage
from jobs.storage.models import CARD, check_stage_classes, stage_metadata
from jobs.storage.scratch import cached_copy, temp_dir

__all__ = [
    "ASSESSMENTS",
    "CARD",
    "CHANGES",
    "FEATURES",
    "HIDDEN",
    "MAPS",
    "PREDICTIONS",
    "PRETRAINED",
    "RUNS",
    "SUCCESS",
    "TRAINED",
    "HadoopStorage",
    "LocalStorage",
    "NotAFileError",
    "Reader",
    "Storage",
    "StorageError",
    "cached_copy",
    "check_stage_classes",
    "open_storage",
    "reader_for",
    "stage_metadata",
    "temp_dir",
]
