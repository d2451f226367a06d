"""The best recipe found for each kind of data set: what a train run uses unless told otherwise.

A user who passes only ``--dataset`` and ``--data`` gets these; any flag or conf key set wins.
Each choice was made on training data only (validation folds carved from train, never a test
split) and is measured side by side with the alternatives in ``bench/aerial_recipe.py`` and
``bench/accuracy.py`` (README, "Measured").
"""

from __future__ import annotations

from typing import Any

from jobs.datasets import aid, ucmerced

# Aerial scenes: two offline ImageNet backbones side by side (EfficientNet-Lite0 + MobileNetV2,
# 2,560 features), each image seen whole at 256 px and averaged over its 8 rotations/flips (an
# aerial scene has no "up"), logistic regression whose regularization is chosen on a validation
# split carved from train.
AERIAL: dict[str, Any] = {
    "pretrained_model_type": "efficientnet_lite0+mobilenet_v2",
    "pool_grid": 1,
    "d4": True,
    "image_size": 256,
    "mmlspark_model_type": "logisticregression",
    "tune": True,
    "val_ratio": 0.15,
    "finetune": False,
    "precision": "fp32",
}

# Handwritten digits: position matters and rotations change the class (6 vs 9): EfficientNet-Lite0
# pooled to 2 x 2 cells, no D4, logistic regression at regParam 0.01 (MNIST 0.9888, global pool 0.9716).
MNIST: dict[str, Any] = {
    "pretrained_model_type": "efficientnet_lite0",
    "pool_grid": 2,
    "d4": False,
    "image_size": None,
    "mmlspark_model_type": "logisticregression",
    "tune": False,
    "val_ratio": 0.0,
    "finetune": False,
    "precision": "fp32",
}

# What fine-tuning takes where its recipe says nothing (``--finetune`` or jobs/finetune.py beside a
# recipe that does not fine-tune): EfficientNet-Lite0, at most 25 epochs.
FINETUNE: dict[str, Any] = {"pretrained_model_type": "efficientnet_lite0", "epochs": 25}

# One pass a tile: EfficientNet-Lite0 fine-tuned on the training images (TorchDistributor; the 8
# rotations/flips and random resized crops as augmentation, so the invariance is learnt, not
# averaged at scoring time), trained and featurized at 192 px (a CPU epoch of UC Merced's 1,428
# training images takes ~55 s on 2 cores: torch trains Lite0 at 20 img/s at 192 against 9 at 256),
# at most 12 epochs (the validation curve had flattened by then), logistic regression tuned on
# the validation split that also picks the best epoch. UC Merced: 0.9786 in 13-14 min on 2 cores.
ONE_PASS: dict[str, Any] = {
    **AERIAL,
    "pretrained_model_type": "efficientnet_lite0",
    "d4": False,
    "image_size": 192,
    "finetune": True,
    "epochs": 12,
    # int8 where the validation split says it costs at most half a point (measured 2026-12-05 on the
    # fine-tuned networks, validation accuracy fp32 = int8: UC Merced 0.9960, AID 0.9968; ~1.65x images/s)
    "precision": "auto",
}

# The recipes by name (``--recipe NAME``), and the one each kind of data set gets by default.
NAMED: dict[str, dict[str, Any]] = {
    "frozen-d4": AERIAL,  # 2 networks x 8 rotations/flips: 16 forward passes a tile
    "frozen": {**AERIAL, "d4": False},  # the same networks once each: 2 passes a tile
    "one-pass": ONE_PASS,
    "mnist": MNIST,
}
PASSES = {"frozen-d4": 16, "frozen": 2, "one-pass": 1, "mnist": 1}  # forward passes a tile, for --help
BY_DATASET = {"aerial": "one-pass", "aid": "one-pass", "ucmerced": "one-pass", "mnist": "mnist"}
RECIPES: dict[str, dict[str, Any]] = {dataset: NAMED[name] for dataset, name in BY_DATASET.items()}
# What a data set module knows about its imagery, recorded in the model card: scoring warns of
# scenes far from it, and takes its scene windows' size from it.
IMAGERY: dict[str, dict[str, Any]] = {
    "ucmerced": {"gsd_m": ucmerced.GSD_M, "image_px": ucmerced.TILE_PX},
    "aid": {
        "gsd_m": aid.GSD_M,
        "gsd_range_m": list(aid.GSD_RANGE_M),
        "image_px": aid.IMAGE_PX,
        "tile_m": aid.MIN_GROUND_M,
    },
}


# What raw pixels take instead of a recipe's network settings.
NETWORK_KEYS = {"pool_grid": 1, "d4": False, "image_size": None, "finetune": False, "precision": "fp32"}


def described() -> str:
    """Each named recipe with its settings, for ``--help`` and error messages."""

    def value(v: Any) -> str:
        return "unset" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

    return "; ".join(
        f"{name} ({PASSES[name]} forward pass{'es' if PASSES[name] > 1 else ''} a tile: "
        + ", ".join(f"{k} {value(v)}" for k, v in settings.items())
        + ")"
        for name, settings in NAMED.items()
    )


def apply(cfg: Any) -> None:
    """Fills every setting ``cfg`` leaves unset (None) from its recipe: the one named by
    ``cfg.recipe``, else its data set's."""
    recipe = NAMED[cfg.recipe] if getattr(cfg, "recipe", None) else RECIPES.get(cfg.dataset, AERIAL)
    if cfg.pretrained_model_type == "pixels":  # the no-CNN baseline: the recipe's network settings do not apply
        recipe = {**recipe, **NETWORK_KEYS}
    for key, value in {**recipe, **IMAGERY.get(cfg.dataset, {})}.items():
        if getattr(cfg, key) is None:
            setattr(cfg, key, value)
