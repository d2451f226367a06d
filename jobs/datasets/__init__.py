"""Readers from storage to image rows.

Every reader returns a DataFrame of *image rows*: ``path`` (string, where the image came from),
``label`` (string; null for unlabelled tile sets) and ``image`` (binary, the encoded image).
Image bytes are read on the executors; the driver only lists and checks headers.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.runtime.errors import UserInputError


class DatasetError(UserInputError, ValueError):
    """Input data that cannot be read as the data set it claims to be; says what and where."""


def sample(df: DataFrame, fraction: float, seed: int, key: str = "path") -> DataFrame:
    """Keeps about ``fraction`` of rows, chosen by a seeded hash of ``key``.

    Unlike ``DataFrame.sample``, the choice does not depend on partitioning, so the same
    rows are chosen on a laptop and on a cluster.
    """
    if fraction >= 1.0:
        return df
    return df.where(hash_unit(F.col(key), seed) < F.lit(fraction))


def hash_unit(col: Column, seed: int) -> Column:
    """A value in [0, 1) from a seeded 64-bit hash of ``col``."""
    return (F.pmod(F.xxhash64(col, F.lit(seed)), F.lit(1 << 30)) / F.lit(float(1 << 30))).alias("u")
