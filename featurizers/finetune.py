"""Fine-tuning a zoo backbone: the function each TorchDistributor process runs (torch DDP).

Every process reads its own fixed shard of the training and validation images through the
storage root's :class:`~jobs.storage.Reader` (local files or Blob ranged reads; never through
the driver), keeps the shard's encoded bytes in memory, and decodes and augments them each
step. Augmentations are the ones aerial scenes allow: the 8 rotations and flips of the square
(no "up" in a scene) and random resized crops. The loss is label-smoothed cross-entropy on a
linear head over the backbone's global average pool; validation accuracy, summed over every
process, picks the best epoch, and training stops early when it stops improving.

The result is the backbone's state dict in the zoo's own layout, so :func:`featurizers.export.export`
turns it into an ordinary featurizer network (``weights=<file>``).

Pixels are prepared as the featurizer prepares them (:func:`featurizers.preprocess.to_tensor`
for validation; the same normalization for training crops), so what the network learns is what
it later sees on Spark.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import random
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from featurizers.preprocess import RejectedImage, decode_rgb_noted, to_tensor
from featurizers.zoo import Preprocessing, get_entry

# Early stop: epochs without a better validation accuracy before training stops.
PATIENCE = 4
LABEL_SMOOTHING = 0.1
WEIGHT_DECAY = 0.05  # AdamW's decoupled decay; biases and norms are not decayed
MIN_CROP_SCALE = 0.35  # random resized crops keep at least this share of the image's area


@dataclass
class FinetuneSpec:
    """Everything a training process needs; pickled to every process by TorchDistributor."""

    backbone: str
    classes: list[str]
    train: list[tuple[str, int]]  # (URI, class index): names only, each process reads its shard
    val: list[tuple[str, int]]
    reader: Any  # jobs.storage.Reader of the data root (picklable)
    image_size: int
    epochs: int
    lr: float
    trainable_blocks: int  # -1: the whole backbone; k: its last k blocks (0: the head alone)
    batch_size: int  # per process
    seed: int
    use_gpu: bool = False
    weights: str | None = None  # None: the zoo's pretrained weights
    patience: int = PATIENCE
    threads: int | None = None  # torch threads per process (None: cores / processes)


def prep_for(spec: FinetuneSpec) -> Preprocessing:
    p = get_entry(spec.backbone).preprocessing
    return Preprocessing(spec.image_size, spec.image_size, p.mean, p.std, p.interpolation)


def units(trunk: Any) -> list[Any]:
    """The backbone's blocks in input-to-output order (what ``trainable_blocks`` counts from the end)."""
    import torch

    net = getattr(trunk, "net", None)
    if net is not None and hasattr(net, "_blocks"):  # EfficientNet-Lite: stem, 16 MBConv blocks, head conv
        return [
            torch.nn.ModuleList([net._conv_stem, net._bn0]),
            *net._blocks,
            torch.nn.ModuleList([net._conv_head, net._bn1]),
        ]
    return [m for m in trunk.children() if any(True for _ in m.parameters())]


def freeze(trunk: Any, trainable_blocks: int) -> list[Any]:
    """Freezes all but the last ``trainable_blocks`` units; returns the frozen ones (kept in eval mode)."""
    blocks = units(trunk)
    if trainable_blocks < 0 or trainable_blocks >= len(blocks):
        return []
    frozen = blocks[: len(blocks) - trainable_blocks]
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    return frozen


def augment(img: Any, size: int, rng: random.Random) -> Any:
    """A random resized crop (area share 0.35-1, aspect 3/4-4/3) resized to ``size``, then one of
    the 8 rotations/flips of the square."""
    from PIL import Image

    w, h = img.size
    for _ in range(10):
        area = w * h * rng.uniform(MIN_CROP_SCALE, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
            break
    else:
        cw = ch = min(w, h)
        left, top = (w - cw) // 2, (h - ch) // 2
    img = img.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch))
    turn = rng.randrange(8)
    if turn & 4:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img.rotate(90 * (turn & 3)) if turn & 3 else img


def normalize(img: Any, prep: Preprocessing) -> np.ndarray:
    arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    return ((arr - np.asarray(prep.mean, np.float32)) / np.asarray(prep.std, np.float32)).transpose(2, 0, 1)


def read_shard(items: list[tuple[str, int]], reader: Any) -> tuple[list[tuple[bytes, int]], Counter[str]]:
    """The shard's encoded bytes (checked to decode), and the rejects by reason code."""
    kept: list[tuple[bytes, int]] = []
    rejected: Counter[str] = Counter()
    for uri, label in items:
        try:
            data = reader.read(uri)
            decode_rgb_noted(data)  # rejects what training could not decode, with the featurizer's reasons
        except RejectedImage as exc:
            rejected[exc.reason.split(":", 1)[0]] += 1
            continue
        except OSError:
            rejected["unreadable"] += 1
            continue
        kept.append((data, label))
    return kept, rejected


def shard(items: list[tuple[str, int]], rank: int, world: int, seed: int) -> list[tuple[str, int]]:
    """This process's share: a seeded shuffle dealt round-robin, so shards are balanced by class on average."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[i] for i in order[rank::world]]


def train_process(spec: FinetuneSpec) -> dict[str, Any] | None:
    """One DDP process: trains, validates each epoch, returns (on rank 0) the best state and the curve."""
    import torch
    import torch.distributed as dist

    from featurizers.export import build_trunk

    # DDP's note on a 1x1 convolution's gradient layout costs a copy, not correctness.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    started = time.time()
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    gpu = spec.use_gpu and torch.cuda.is_available()
    if spec.use_gpu and not gpu:
        raise RuntimeError("use_gpu is set but torch sees no CUDA device in this process")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if gpu else torch.device("cpu")
    if gpu:
        torch.cuda.set_device(device)
    torch.set_num_threads(spec.threads or max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if gpu else "gloo")
    group = _Group(world, device)
    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed * 1000 + rank)
    prep = prep_for(spec)

    train_items, train_rejects = read_shard(shard(spec.train, rank, world, spec.seed), spec.reader)
    val_items, val_rejects = read_shard(shard(spec.val, rank, world, spec.seed + 1), spec.reader)
    val_x = torch.from_numpy(np.stack([to_tensor(decode_rgb_noted(b)[0], prep) for b, _ in val_items]))
    val_y = torch.tensor([lab for _, lab in val_items])

    full, trunk = build_trunk(get_entry(spec.backbone), spec.weights)
    frozen = freeze(trunk, spec.trainable_blocks)
    in_trunk = {id(p) for u in units(trunk) for p in u.parameters()}
    for p in full.parameters():  # e.g. the ImageNet classifier: kept as loaded, never used here (DDP refuses idle ones)
        if id(p) not in in_trunk:
            p.requires_grad_(False)
    with torch.no_grad():
        dim = int(_pool(trunk.eval()(torch.zeros(1, 3, spec.image_size, spec.image_size))).shape[1])
    head = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(dim, len(spec.classes)))
    model = _Classifier(trunk, head).to(device)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() > 1 else no_decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}], lr=spec.lr
    )
    # Equal steps on every process (DDP waits for all): the largest shard sets the count.
    steps_per_epoch = group.max(math.ceil(len(train_items) / spec.batch_size))
    total = max(1, spec.epochs * steps_per_epoch)
    warmup = min(steps_per_epoch, total // 4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, warmup, total))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if gpu else contextlib.nullcontext()

    curve: list[dict[str, Any]] = []
    best_acc, best_epoch, best_state, stale = -1.0, 0, None, 0
    for epoch in range(1, spec.epochs + 1):
        t0 = time.time()
        model.train()
        for m in frozen:
            m.eval()  # frozen BatchNorm keeps its ImageNet statistics
        rng.shuffle(train_items)
        losses = []
        for step in range(steps_per_epoch):
            batch = [train_items[(step * spec.batch_size + i) % len(train_items)] for i in range(spec.batch_size)]
            x = torch.from_numpy(
                np.stack([normalize(augment(decode_rgb_noted(b)[0], spec.image_size, rng), prep) for b, _ in batch])
            )
            y = torch.tensor([lab for _, lab in batch])
            with amp:
                loss = loss_fn(ddp(x.to(device, non_blocking=True)), y.to(device))
            value = float(loss.detach())  # one device sync a step, for the check and the curve
            if not math.isfinite(value):  # diverged: nothing after this step is worth keeping
                raise FloatingPointError(
                    f"the training loss is {value} at epoch {epoch}, step {step + 1}: "
                    f"lower the learning rate (lr {spec.lr})"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(value)
        correct, seen = _evaluate(model, val_x, val_y, device, spec.batch_size * 2, amp)
        correct, seen = group.sum([correct, seen])
        acc = correct / seen if seen else 0.0
        point = {
            "epoch": epoch,
            "train_loss": round(group.sum([float(np.mean(losses)) if losses else 0.0])[0] / world, 4),
            "val_accuracy": round(acc, 4),
            "seconds": round(time.time() - t0, 1),
        }
        curve.append(point)
        if rank == 0:
            print(f"finetune: epoch {epoch}/{spec.epochs} {point}", flush=True)
        if acc > best_acc:
            best_acc, best_epoch, stale = acc, epoch, 0
            if rank == 0:
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in full.state_dict().items()}
        else:
            stale += 1
            if stale >= spec.patience:  # every process sees the same summed accuracy: they stop together
                break

    rejects = _all_counters([train_rejects, val_rejects], world)
    sizes = group.sum([len(train_items), len(val_items)])
    if world > 1:
        dist.barrier()
    if rank != 0:
        return None
    buf = io.BytesIO()
    torch.save(best_state, buf)
    return {
        "state": buf.getvalue(),
        "curve": curve,
        "best_epoch": best_epoch,
        "best_val_accuracy": round(best_acc, 4),
        "n_train": int(sizes[0]),
        "n_val": int(sizes[1]),
        "rejected": {"train": dict(rejects[0]), "val": dict(rejects[1])},
        "processes": world,
        "device": str(device.type),
        "seconds": round(time.time() - started, 1),
    }


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _pool(features: Any) -> Any:
    return features.mean(dim=(2, 3)) if features.dim() == 4 else features


def _classifier_class() -> Any:
    import torch

    class Classifier(torch.nn.Module):
        def __init__(self, trunk: Any, head: Any) -> None:
            super().__init__()
            self.trunk, self.head = trunk, head

        def forward(self, x: Any) -> Any:
            return self.head(_pool(self.trunk(x)))

    return Classifier


def _Classifier(trunk: Any, head: Any) -> Any:
    return _classifier_class()(trunk, head)


def _evaluate(model: Any, x: Any, y: Any, device: Any, batch: int, amp: Any) -> tuple[int, int]:
    import torch

    model.eval()
    correct = 0
    with torch.no_grad(), amp:
        for i in range(0, len(x), batch):
            pred = model(x[i : i + batch].to(device)).argmax(dim=1).cpu()
            correct += int((pred == y[i : i + batch]).sum())
    return correct, len(x)


class _Group:
    """Sums and maxima over every process (tensors on the process's device: NCCL needs CUDA ones)."""

    def __init__(self, world: int, device: Any) -> None:
        self.world, self.device = world, device

    def _reduce(self, values: list[float], op: str) -> list[float]:
        if self.world == 1:
            return [float(v) for v in values]
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
        return [float(v) for v in t.cpu()]

    def sum(self, values: list[float]) -> list[float]:
        return self._reduce(values, "SUM")

    def max(self, value: int) -> int:
        return int(self._reduce([value], "MAX")[0])


def _all_counters(counters: list[Counter[str]], world: int) -> list[Counter[str]]:
    if world == 1:
        return counters
    import torch.distributed as dist

    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, counters)
    return [sum((g[i] for g in gathered), Counter()) for i in range(len(counters))]
