"""Job configuration: a TOML file from ``conf/``, then command-line flags over it.

Keys are the flag names (the original sample's ``output_model_name``, ``pretrained_model_type``,
``mmlspark_model_type``, ``sample_frac`` among them). Classifier hyperparameters sit in a table
named after the classifier, e.g. ``[logisticregression] regParam = 0.001``. A flag given on the
command line wins over the file; a key the job does not know is an error, not ignored.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import types
import typing
from typing import Any
from urllib.parse import urlparse

from featurizers.image_featurizer import ENGINES
from featurizers.quantize import PRECISIONS
from featurizers.zoo import Network, NetworkError
from jobs.names import check_name
from jobs.runtime.tomlfiles import read_toml

CLASSIFIERS = ("logisticregression", "randomforest", "gbt")
DATASETS = ("aerial", "aid", "ucmerced", "mnist")
PIXELS = "pixels"  # --pretrained_model_type pixels: raw grey pixels, the no-CNN baseline


class ConfigError(ValueError):
    """A configuration value or file that cannot be used."""


@dataclasses.dataclass
class TrainConfig:
    """Everything ``jobs/train.py`` needs; recorded whole in the run's metrics.json."""

    output_model_name: str = "model"
    # "aerial": <label>/<image> (split here) or train/<label>/ + test/<label>/; "ucmerced": the
    # UC Merced release (jobs/datasets/ucmerced.py); "mnist": idx files.
    dataset: str = "aerial"
    data: str | None = None  # default: the demo copy of the data set (.cache/demo/…)
    storage: str = "data"
    # None below: the data set's recipe (jobs/recipes.py) decides.
    pretrained_model_type: str | None = None  # a zoo network, several joined by "+", or "pixels"
    weights: str | None = None  # None: the zoo's pretrained weights; "random"; or a file
    pool_grid: int | None = None  # average-pool the cut's last feature map to n x n cells (1: global pool)
    d4: bool | None = None  # average features over the 8 rotations/flips of each image
    image_size: int | None = None  # resize to this square; 0: the network's own resize + crop
    mmlspark_model_type: str | None = None
    train_ratio: float = 0.8  # folder-per-class sets: the seeded, stratified share that trains
    val_ratio: float | None = None  # share of train held out to choose the classifier's settings
    gsd_m: float | None = None  # training imagery's metres per pixel (model card; scene tile sizes)
    image_px: int | None = None  # training images' side in pixels (with gsd_m: the tile in metres)
    gsd_range_m: list[float] | None = None  # [finest, coarsest] metres a pixel, where the imagery varies
    tile_m: float | None = None  # scene windows that suit the model, in metres (default gsd_m x image_px)
    sample_frac: float = 1.0
    train_sample_frac: float | None = None
    test_sample_frac: float | None = None
    seed: int = 42
    batch_size: int = 8  # measured best on 2 cores for ResNet-18 (83 img/s at 8, 77 at 32)
    engine: str = "onnx"  # "onnx" (Python onnxruntime) or "synapseml" (SynapseML ONNXModel)
    precision: str = "fp32"  # "int8": the network statically quantized, calibrated on this run's training images
    class_names: list[str] | None = None  # MNIST-format data sets: names for labels 0..k-1
    logisticregression: dict[str, Any] = dataclasses.field(default_factory=dict)
    randomforest: dict[str, Any] = dataclasses.field(default_factory=dict)
    gbt: dict[str, Any] = dataclasses.field(default_factory=dict)
    tune: bool | None = None  # choose the classifier's settings (jobs.classifiers.GRIDS) on the validation split
    cache_features: bool = False  # keep featurized images under features/ for later runs

    def classifier_params(self) -> dict[str, Any]:
        """The conf table of the chosen classifier."""
        return dict(getattr(self, self.mmlspark_model_type))

    def fraction(self, split: str) -> float:
        own = self.train_sample_frac if split == "train" else self.test_sample_frac
        return self.sample_frac if own is None else own

    def network(self) -> Network:
        grid = 1 if self.pool_grid is None else self.pool_grid
        return Network.parse(self.pretrained_model_type or "", grid, bool(self.d4), self.image_size)

    def validate(self) -> TrainConfig:
        from jobs.recipes import apply

        check_name("output_model_name", self.output_model_name)
        apply(self)
        self.data, self.storage = absolute(self.data), absolute(self.storage)
        if self.mmlspark_model_type not in CLASSIFIERS:
            raise ConfigError(
                f"mmlspark_model_type {self.mmlspark_model_type!r}: choose one of {', '.join(CLASSIFIERS)}"
            )
        if self.gsd_range_m is not None and not (
            len(self.gsd_range_m) == 2 and 0 < self.gsd_range_m[0] <= self.gsd_range_m[1] < math.inf
        ):
            raise ConfigError(
                f"gsd_range_m {self.gsd_range_m}: give [finest, coarsest] metres a pixel, 0 < finest <= coarsest"
            )
        if self.tile_m is not None and not 0 < self.tile_m < math.inf:
            raise ConfigError(f"tile_m {self.tile_m} must be a positive number of metres")
        if self.dataset not in DATASETS:
            raise ConfigError(f"dataset {self.dataset!r}: choose one of {', '.join(DATASETS)}")
        for name, value, low in (("train_ratio", self.train_ratio, 0.0), ("val_ratio", self.val_ratio, -1e-12)):
            if not (isinstance(value, (int, float)) and low < value < 1.0):
                raise ConfigError(f"{name} {value!r} is not in {'(0' if low == 0.0 else '[0'}, 1)")
        if self.tune and not self.val_ratio:
            raise ConfigError("tune chooses settings on a validation split: give val_ratio > 0")
        for split in ("train", "test"):
            frac = self.fraction(split)
            if not 0.0 < frac <= 1.0:
                raise ConfigError(f"{split} sample fraction {frac} is not in (0, 1]")
        if self.engine not in ENGINES:
            raise ConfigError(f"engine {self.engine!r}: choose one of {', '.join(ENGINES)}")
        if self.pretrained_model_type == PIXELS:
            if self.pool_grid != 1 or self.d4 or self.image_size:
                raise ConfigError("pool_grid, d4 and image_size apply to a network, not to raw pixels")
        else:  # an unknown network, or a grid its cut cannot give, fails before any work
            try:
                self.network()
            except NetworkError as exc:
                raise ConfigError(str(exc)) from None
        if self.batch_size < 1:
            raise ConfigError(f"batch_size {self.batch_size} must be positive")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.precision == "int8" and self.pretrained_model_type == PIXELS:
            raise ConfigError("precision int8 quantizes a network: raw pixels have none")
        return self


@dataclasses.dataclass
class ScoreConfig:
    """Everything ``jobs/score.py`` needs."""

    output_model_name: str = "model"
    tiles: str = ".cache/demo/tiles"
    storage: str = "data"
    sample_frac: float = 1.0
    seed: int = 42
    incremental: bool = False
    smooth: str | None = None  # "3x3"
    top_k: int = 3
    lock_timeout_s: float = 300.0  # a lock whose holder on another host has not renewed it for this long is taken over
    csv: bool = False  # also write predictions/<model>/<run_id>.csv/
    scenes: str | None = None  # georeferenced scenes instead of tiles: a folder, a glob or a .txt list
    bands: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 3])  # R, G, B band numbers
    tile_px: int | None = None  # window size in scene pixels, or …
    tile_m: float | None = None  # … in metres (default: the model's training tiles)
    max_nodata: float = 0.5  # windows with a larger share of nodata are rejected as nodata
    value_range: list[float] | None = None  # fixed [lo, hi] mapped to 0..255 (default: per-scene stretch)
    # The model's own (set when it was trained); naming another is an error, since its classifier
    # was fitted on features of that arithmetic.
    precision: str | None = None

    def validate(self) -> ScoreConfig:
        check_name("output_model_name", self.output_model_name)
        self.tiles, self.storage, self.scenes = absolute(self.tiles), absolute(self.storage), absolute(self.scenes)
        if not 0.0 < self.sample_frac <= 1.0:
            raise ConfigError(f"sample_frac {self.sample_frac} is not in (0, 1]")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.top_k < 0:
            raise ConfigError(f"top_k {self.top_k} must be 0 or more")
        if self.value_range is not None and (len(self.value_range) != 2 or self.value_range[0] >= self.value_range[1]):
            raise ConfigError(f"value_range {self.value_range}: give two numbers, low < high")
        return self


@dataclasses.dataclass
class FinetuneConfig(TrainConfig):
    """``jobs/finetune.py``: a train run whose featurizer is first fine-tuned (TorchDistributor)."""

    epochs: int = 25  # most; training stops when validation accuracy stops improving
    lr: float = 1e-3  # AdamW's peak learning rate (one warm-up epoch, then cosine decay)
    trainable_blocks: int = -1  # -1: the whole backbone; k: its last k blocks; 0: the head alone
    num_processes: int = 2  # training processes (DDP): cores here, GPUs with use_gpu
    use_gpu: bool = False
    finetune_batch_size: int = 16  # images per step per process

    def validate(self) -> FinetuneConfig:
        from jobs.recipes import FINETUNE

        if self.pretrained_model_type is None:
            self.pretrained_model_type = FINETUNE["pretrained_model_type"]
        super().validate()
        if self.pretrained_model_type == PIXELS or len(self.network().backbones) != 1:
            raise ConfigError(f"fine-tuning takes one zoo backbone, not {self.pretrained_model_type!r}")
        if self.weights == "random":
            raise ConfigError("fine-tuning starts from pretrained weights: weights 'random' is for speed tests")
        if self.epochs < 1:
            raise ConfigError(f"epochs {self.epochs} must be 1 or more")
        if not self.lr > 0:
            raise ConfigError(f"lr {self.lr} must be above 0")
        if self.num_processes < 1:
            raise ConfigError(f"num_processes {self.num_processes} must be 1 or more")
        if self.finetune_batch_size < 2:  # BatchNorm needs two images a step
            raise ConfigError(f"finetune_batch_size {self.finetune_batch_size} must be 2 or more")
        if self.trainable_blocks < -1:
            raise ConfigError(f"trainable_blocks {self.trainable_blocks}: -1 (all), 0 (head only) or a block count")
        if not self.val_ratio:
            raise ConfigError("fine-tuning keeps its best epoch on a validation split: give val_ratio > 0")
        return self


@typing.overload
def absolute(location: str) -> str: ...
@typing.overload
def absolute(location: None) -> None: ...
def absolute(location: str | None) -> str | None:
    """A local path made absolute (records and notebooks then work from any folder); URIs as given."""
    if location is None or urlparse(location).scheme:
        return location
    return os.path.abspath(location)


def read_conf(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    return read_toml(path, ConfigError, f"conf file {path}")


def build(cls: type, conf_path: str | None, cli: dict[str, Any]) -> Any:
    """``cls`` filled from the conf file, then from the CLI values that were given."""
    # One conf file serves every job: each takes its own keys; a key no job knows is an error.
    values = read_conf(conf_path)
    unknown = sorted(set(values) - _fields(FinetuneConfig) - _fields(ScoreConfig))
    if unknown:
        raise ConfigError(f"{conf_path}: unknown keys {', '.join(unknown)}")
    known = _fields(cls)
    mine = {k: v for k, v in values.items() if k in known}
    hints = typing.get_type_hints(ScoreConfig) | typing.get_type_hints(FinetuneConfig)
    for key, value in values.items():  # every key, the other job's too: a conf is checked whole
        if not _is_a(value, hints[key]):
            expected = _describe(hints[key])
            raise ConfigError(f"{conf_path}: {key} = {value!r} is {_toml_type(value)}, expected {expected}")
    given = {k: v for k, v in cli.items() if v is not None and k in known}
    # A flag is what the user asked for now: --sample_frac beats the conf's per-split fractions.
    for general, specific in SHADOWS.items():
        if general in given:
            for key in specific:
                if key not in given:
                    mine.pop(key, None)
    mine.update(given)
    cfg = cls(**mine)
    unset = {k for k in known if getattr(cfg, k) is None}
    cfg.validate()  # fills what is still unset from the data set's recipe

    def source(key: str) -> str:
        if key in given:
            return "flag"
        if key in mine:
            return "conf"
        return "recipe" if key in unset and getattr(cfg, key) is not None else "default"

    cfg.sources = {k: source(k) for k in sorted(known)}  # for the start line and the run record
    return cfg


SHADOWS = {"sample_frac": ("train_sample_frac", "test_sample_frac")}


def resolved(cfg: Any) -> dict[str, Any]:
    """``{key: {"value", "from"}}``: the configuration a run used and where each value came from
    (flag > conf > the data set's recipe > default)."""
    sources = getattr(cfg, "sources", {})
    return {k: {"value": v, "from": sources.get(k, "default")} for k, v in sorted(dataclasses.asdict(cfg).items())}


def describe(cfg: Any) -> str:
    """The resolved configuration as lines for stderr at start: ``key = value  (from)``."""
    rows = resolved(cfg)
    width = max(map(len, rows))
    return "\n".join(f"  {k:<{width}} = {json.dumps(r['value'])}  ({r['from']})" for k, r in rows.items())


def _is_a(value: Any, hint: Any) -> bool:
    """Whether a TOML value fits a field's type (an int is a float; a bool is not a number)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_is_a(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if origin is list:
        return isinstance(value, list) and all(_is_a(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in args)
    if typing.get_origin(hint) is list:
        return f"a list of {_describe(args[0]).split(' ', 1)[1]}s"
    if typing.get_origin(hint) is dict:
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(hint, str(hint))


def _toml_type(value: Any) -> str:
    kinds = {str: "a string", bool: "a boolean", int: "an integer", float: "a float", list: "a list", dict: "a table"}
    return kinds.get(type(value), type(value).__name__)


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def show_defaults(parser: argparse.ArgumentParser, cls: type) -> argparse.ArgumentParser:
    """Ends each flag's help with its default: the job's own, or what the data set's recipe
    gives when the flag is left out (flags default to None so that a conf file can set them)."""
    from jobs.recipes import DEMO_DATA, RECIPES

    own = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    for action in parser._actions:  # argparse keeps no public list of its flags
        if action.dest not in own or "default" in (action.help or ""):  # a help that names its default keeps it
            continue
        default = own[action.dest]
        by_dataset = {d: r[action.dest] for d, r in RECIPES.items() if action.dest in r}
        if default is None and by_dataset:
            text = "the data set's recipe: " + ", ".join(f"{d} {json.dumps(v)}" for d, v in by_dataset.items())
        elif default is None and action.dest == "data":
            text = "the demo copy: " + ", ".join(f"{d} {v}" for d, v in DEMO_DATA.items())
        elif default is None:
            text = "unset"
        else:
            text = json.dumps(default)
        action.help = f"{action.help or ''} (default: {text})".strip()
    return parser


def add_conf_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", help="TOML file in conf/; flags given here override it")
