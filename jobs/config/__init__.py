"""Configuration: the schema of every job's settings (:mod:`.schema`), the recipes that fill what a
user leaves unset (:mod:`.recipes`), loading files and flags over them (:mod:`.loading`), and the
flags made from the schema (:mod:`.flags`)."""

from jobs.config.flags import add_summary_flag, parse, plain
from jobs.config.loading import build, describe, resolved
from jobs.config.schema import (
    AUTO,
    CLASSIFIERS,
    DATASETS,
    PIXELS,
    ConfigError,
    FinetuneConfig,
    ScoreConfig,
    TrainConfig,
    absolute,
)

__all__ = [
    "AUTO",
    "CLASSIFIERS",
    "DATASETS",
    "PIXELS",
    "ConfigError",
    "FinetuneConfig",
    "ScoreConfig",
    "TrainConfig",
    "absolute",
    "add_summary_flag",
    "build",
    "describe",
    "parse",
    "plain",
    "resolved",
]
