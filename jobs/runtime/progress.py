"""Images done, counted as they are: each featurizing UDF adds the images of every batch it
finishes to a Spark accumulator, and a step's progress line (:func:`jobs.runtime.spark.timed`)
reads the sum. An accumulator reaches the driver when its task ends, so featurizing tasks are
kept short (``IMAGES_PER_TASK`` in :mod:`jobs.datasets.labelled`, ``WINDOWS_PER_TASK`` in
:mod:`jobs.scenes.windows`). Spark Connect has no accumulators: there the line counts tasks."""

from __future__ import annotations

import threading
from typing import Any

from pyspark.sql import SparkSession

_COUNTERS: list[Any] = []  # this driver's accumulators; a task may be retried, so sums can overshoot
_LOCK = threading.Lock()


def image_counter(spark: SparkSession) -> Any:
    """A new accumulator that a UDF adds its images to (``None`` under Spark Connect)."""
    if type(spark).__module__.startswith("pyspark.sql.connect"):  # as jobs.runtime.spark.is_connect
        return None
    counter = spark.sparkContext.accumulator(0)
    with _LOCK:
        _COUNTERS.append(counter)
    return counter


def images_done() -> int:
    """Images counted so far by every counter of this driver (subtract a step's start value)."""
    with _LOCK:
        return sum(int(c.value) for c in _COUNTERS)
