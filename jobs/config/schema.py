"""The configuration schema: every setting of train, score and fine-tune declared once, with its
type, default and help (flags are made from it: :mod:`jobs.config.flags`; files and flags are
merged by :mod:`jobs.config.loading`).

Keys are the flag names (the original sample's ``output_model_name``, ``pretrained_model_type``,
``mmlspark_model_type``, ``sample_frac`` among them). Classifier hyperparameters sit in a table
named after the classifier, e.g. ``[logisticregression] regParam = 0.001``, or come as flags
(``--regParam``). Plain dataclasses: they pickle to executors, need no dependency there, and a
small loader types TOML values against their hints.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from typing import Any
from urllib.parse import urlparse

from featurizers.image_featurizer import ENGINES
from featurizers.quantize import PRECISIONS
from featurizers.zoo import Network, NetworkError
from jobs.classifiers.estimators import NAMES as CLASSIFIERS
from jobs.config.recipes import BY_DATASET, FINETUNE, NAMED, apply, described
from jobs.runtime.errors import UserInputError
from jobs.runtime.names import check_name
from jobs.runtime.suggest import did_you_mean

DATASETS = ("aerial", "aid", "ucmerced", "mnist")
PIXELS = "pixels"  # --pretrained_model_type pixels: raw grey pixels, the no-CNN baseline
AUTO = "auto"  # --precision auto: int8 where the validation split says it costs at most half a point
TRAIN_PRECISIONS = (*PRECISIONS, AUTO)


class ConfigError(UserInputError, ValueError):
    """A configuration value or file that cannot be used."""


@typing.overload
def absolute(location: str) -> str: ...
@typing.overload
def absolute(location: None) -> None: ...
def absolute(location: str | None) -> str | None:
    """A local path made absolute (records and notebooks then work from any folder); URIs as given."""
    if location is None or urlparse(location).scheme:
        return location
    return os.path.abspath(location)


def setting(
    default: Any = None,
    help: str = "",
    *,
    factory: Any = None,
    choices: tuple[str, ...] | None = None,
    flag: bool = True,
    group: str | None = None,
    low: float | None = None,
    high: float | None = None,
) -> Any:
    """A configuration key, declared once: its default, its help, whether it is also a flag, and
    for numbers the range it must lie in (``low`` <= value <= ``high``, both inclusive).

    Flags are made from these (:mod:`jobs.config.flags`) with the field's type: ``bool`` as
    ``--key/--no_key`` (``--no-key`` an alias), lists as comma-separated values. ``group`` titles
    a flag group in ``--help``.
    Every number is also checked finite, and integers to fit Java's int (Spark ML's parameters)."""
    meta = {"help": help, "choices": choices, "flag": flag, "group": group, "low": low, "high": high}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


FINETUNING = "fine-tuning: the network trained on these images first (TorchDistributor; torch needed)"
FINETUNE_HELP = (
    "train the network on these images first, then the classifier on its features (recipe one-pass: "
    "rotations/flips learnt in training, one forward pass a tile when scoring)"
)


@dataclasses.dataclass
class TrainConfig:
    """Everything ``jobs/train.py`` needs; recorded whole in the run's metrics.json. None: the
    data set's recipe (jobs/config/recipes.py) decides."""

    output_model_name: str = setting("model", "name under trainedmodels/ and predictions/")
    dataset: str = setting(
        "aerial",
        "aerial: <label>/<image> (split here) or train/<label>/ + test/<label>/; aid, ucmerced: those "
        "releases; mnist: idx files",
        choices=DATASETS,
    )
    data: str | None = setting(None, "the data set's root (required; make demo gives its copies in conf/*.toml)")
    storage: str = setting("data", "storage root: a folder, an Azure Blob/ADLS URI or a Hadoop URI")
    recipe: str | None = setting(
        None,
        "named settings, filled in where a flag or the conf gives none; default the data set's ("
        + ", ".join(f"{d}: {n}" for d, n in BY_DATASET.items())
        + "). "
        + described(),
    )
    pretrained_model_type: str | None = setting(
        None, "zoo network (efficientnet_lite0, mobilenet_v2, resnet18, …), several joined by '+', or pixels"
    )
    weights: str | None = setting(None, "pretrained weights: a file, or 'random' (tests only); default the zoo's")
    pool_grid: int | None = setting(None, "average-pool the network's last map to N x N cells (1: global pool)")
    d4: bool | None = setting(None, "average features over the 8 rotations/flips of each image")
    image_size: int | None = setting(
        None, "resize images to this square; 0: the network's own resize and crop", low=0, high=4096
    )
    mmlspark_model_type: str | None = setting(None, "the classifier", choices=CLASSIFIERS)
    train_ratio: float = setting(0.8, "<label>/ folders: the seeded, stratified share of each class that trains")
    val_ratio: float | None = setting(None, "share of train held out to choose the classifier's settings")
    gsd_m: float | None = setting(
        None, "training imagery's metres per pixel (model card; scene tile sizes)", low=1e-3, high=1e4
    )
    image_px: int | None = setting(
        None, "training images' side in pixels (with gsd_m: the tile in metres)", low=1, high=1 << 16
    )
    gsd_range_m: list[float] | None = setting(
        None, "FINEST,COARSEST metres a pixel, where the imagery varies", low=1e-3, high=1e4
    )
    tile_m: float | None = setting(
        None, "scene windows this model suits, in metres (default gsd_m x image_px)", low=1e-3, high=1e6
    )
    sample_frac: float = setting(1.0, "fraction of train and test images to use")
    train_sample_frac: float | None = setting(None, "fraction of train images (over sample_frac)")
    test_sample_frac: float | None = setting(None, "fraction of test images (over sample_frac)")
    seed: int = setting(42, "seed of splits, samples and classifiers", low=0)
    # 8: measured best on 2 cores for ResNet-18 (83 img/s at 8, 77 at 32)
    batch_size: int = setting(8, "images per onnxruntime call", low=1, high=4096)
    engine: str = setting("onnx", "featurizer engine (synapseml: add --packages)", choices=ENGINES)
    precision: str | None = setting(
        None,
        "int8: the network statically quantized, calibrated on this run's training images; auto: int8 where "
        "its validation accuracy is at most half a point below fp32's, else fp32 (both are fitted)",
        choices=TRAIN_PRECISIONS,
    )
    class_names: list[str] | None = setting(None, "MNIST-format data sets: names for labels 0..k-1")
    logisticregression: dict[str, Any] = setting(factory=dict, flag=False)
    randomforest: dict[str, Any] = setting(factory=dict, flag=False)
    gbt: dict[str, Any] = setting(factory=dict, flag=False)
    tune: bool | None = setting(None, "choose the classifier's settings (jobs.classifiers.estimators.GRIDS) on val")
    cache_features: bool = setting(False, "keep featurized images under features/ for later runs")
    finetune: bool | None = setting(None, FINETUNE_HELP, group=FINETUNING)
    epochs: int | None = setting(
        None,
        "most epochs (stops early when validation accuracy stops improving); default the recipe's, else 25",
        group=FINETUNING,
        low=1,
        high=10_000,
    )
    lr: float = setting(1e-3, "AdamW's peak learning rate (one warm-up epoch, then cosine decay)", group=FINETUNING)
    trainable_blocks: int = setting(
        -1, "-1: the whole backbone; k: its last k blocks; 0: the head alone", group=FINETUNING, low=-1, high=1000
    )
    num_processes: int = setting(
        2, "training processes (DDP): cores here, GPUs with use_gpu", group=FINETUNING, low=1, high=4096
    )
    use_gpu: bool = setting(False, "train on GPUs (NCCL; Spark needs GPU resources)", group=FINETUNING)
    finetune_batch_size: int = setting(16, "images per step per process", group=FINETUNING, low=2, high=4096)

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
        check_name("output_model_name", self.output_model_name)
        if self.recipe is not None and self.recipe not in NAMED:
            hint = did_you_mean(self.recipe, NAMED)
            raise ConfigError(f"recipe {self.recipe!r}: choose one of {', '.join(NAMED)}{hint}")
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
        if self.precision not in TRAIN_PRECISIONS:
            raise ConfigError(f"precision {self.precision!r}: choose one of {', '.join(TRAIN_PRECISIONS)}")
        if self.precision != "fp32" and self.pretrained_model_type == PIXELS:
            raise ConfigError(f"precision {self.precision} quantizes a network: raw pixels have none")
        if self.finetune:
            self._check_finetune()
        if not self.data:  # last: the other settings' errors are worth hearing first
            raise ConfigError(
                "no data: give --data ROOT, the labelled images' root (<class>/* or train/ + test/; "
                "make demo passes its copies through conf/*.toml)"
            )
        return self

    def _check_finetune(self) -> None:
        if self.epochs is None:
            self.epochs = FINETUNE["epochs"]
        if self.dataset == "mnist":
            raise ConfigError("fine-tuning takes aerial images (dataset aerial, aid or ucmerced), not mnist")
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


SCENES = "georeferenced scenes (GeoTIFF/COG): land-use maps instead of a tile table"


@dataclasses.dataclass
class ScoreConfig:
    """Everything ``jobs/score.py`` needs."""

    output_model_name: str = setting("model", "the trained model to score with")
    tiles: str | None = setting(None, "folder of images to score, read recursively (or give --scenes)")
    storage: str = setting("data", "storage root: a folder, an Azure Blob/ADLS URI or a Hadoop URI")
    sample_frac: float = setting(1.0, "fraction of tiles to score")
    seed: int = setting(42, "seed of the sample", low=0)
    incremental: bool = setting(False, "score only tiles (or scenes) that no completed run of this model scored")
    smooth: str | None = setting(None, "add smoothed_label: 3x3 majority over grid neighbours", choices=("3x3",))
    top_k: int = setting(3, "labels with probabilities per tile", low=0, high=1000)
    lock_timeout_s: float = setting(
        300.0, "take over a lock not renewed for this long by a run on another host", low=1e-3, high=1e7
    )
    csv: bool = setting(False, "also write predictions/<model>/<run_id>.csv/")
    scenes: str | None = setting(
        None, "a folder, a glob, a .txt file of scene URIs, or a STAC Item/ItemCollection .json", group=SCENES
    )
    asset: str = setting("image", "with a STAC --scenes file: the asset holding each item's scene", group=SCENES)
    bands: list[int] = setting(
        factory=lambda: [1, 2, 3], help="band numbers for R,G,B, or one for grey", group=SCENES, low=1, high=65535
    )
    tile_px: int | None = setting(None, "window size in scene pixels", group=SCENES, low=1, high=1 << 16)
    tile_m: float | None = setting(
        None, "window size in metres (default: the model's training tiles)", group=SCENES, low=1e-3, high=1e6
    )
    max_nodata: float = setting(0.5, "reject windows with a larger share of nodata", group=SCENES, low=0, high=1)
    value_range: list[float] | None = setting(None, "LO,HI mapped to 0..255 (default: per-scene stretch)", group=SCENES)
    # The model's own (set when it was trained); naming another is an error, since its classifier
    # was fitted on features of that arithmetic.
    precision: str | None = setting(None, "the model's own (fp32 or int8); another is an error", choices=PRECISIONS)

    def validate(self) -> ScoreConfig:
        check_name("output_model_name", self.output_model_name)
        self.tiles, self.storage, self.scenes = absolute(self.tiles), absolute(self.storage), absolute(self.scenes)
        if not self.tiles and not self.scenes:
            raise ConfigError("nothing to score: give --tiles FOLDER or --scenes URI")
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
    """``jobs/finetune.py``: a train run that always fine-tunes its network first (TorchDistributor),
    on the data set's recipe otherwise (``--recipe one-pass`` is the same through ``jobs/train.py``)."""

    finetune: bool | None = setting(True, FINETUNE_HELP, group=FINETUNING)

    def validate(self) -> FinetuneConfig:
        if self.pretrained_model_type is None:
            self.pretrained_model_type = FINETUNE["pretrained_model_type"]
        super().validate()
        return self
