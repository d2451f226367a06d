"""int8 featurizer networks: onnxruntime static quantization of an exported fp32 network.

Operator format (QLinearConv, QLinearMatMul…: integer ops written into the graph), unsigned
8-bit activations and signed 8-bit weights per output channel, activation ranges calibrated on
real images prepared exactly as the featurizer prepares them. Not QDQ: onnxruntime 1.30 left
much of EfficientNet-Lite0's QDQ graph unfused, and on a VNNI/AMX Xeon (2 threads) that ran at
0.68x of fp32, where the operator format runs at 1.35x with the same features (cosine 0.989);
on an AVX2 EPYC the operator format is also the faster (2.14x vs 1.99x, network alone).

Weights use 7 bits (``reduce_range``) unless the quantizing CPU has VNNI (or AMX): without it,
x86 int8 kernels add pairs of u8 x s8 products in 16 bits, which full-range weights overflow
(measured on an AVX2 EPYC: EfficientNet-Lite0 feature cosine 0.90 at 8 bits, 0.96 at 7). The
choice is recorded in the network's card; quantize where the executors' CPU kind runs.

Only onnxruntime is needed (no torch): a scoring cluster can quantize too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from featurizers.zoo import INPUT_NAME
from jobs.runtime.errors import UserInputError

PRECISIONS = ("fp32", "int8")
FORMAT = "QOperator"  # onnxruntime QuantFormat name; part of a cached int8 network's identity
CALIBRATION_BATCH = 8


class QuantizationError(UserInputError, RuntimeError):
    """A network that could not be quantized (the message says which step failed)."""


def cpu_has_vnni() -> bool:
    """Whether this x86 CPU has 8-bit dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return False
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def quantize(
    fp32_path: str, out_path: str, calibration: Iterable[np.ndarray], reduce_range: bool | None = None
) -> dict[str, Any]:
    """Writes the int8 network for ``fp32_path`` to ``out_path``; returns what was done.

    ``calibration``: prepared image tensors (float32, 3 x H x W), e.g. a seeded sample of the
    run's own training images. ``reduce_range`` None: 7-bit weights unless this CPU has VNNI.
    """
    if reduce_range is None:
        reduce_range = not cpu_has_vnni()
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    tensors = [np.asarray(t, dtype=np.float32) for t in calibration]
    if not tensors:
        raise QuantizationError("no calibration images: int8 needs at least one decodable training image")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[dict[str, np.ndarray]] = (
                {INPUT_NAME: np.stack(tensors[i : i + CALIBRATION_BATCH])}
                for i in range(0, len(tensors), CALIBRATION_BATCH)
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        # Shape inference and graph optimization first, as onnxruntime's quantization guide asks.
        quant_pre_process(fp32_path, pre, skip_symbolic_shape=True)
        quantize_static(
            pre,
            out_path,
            Reader(),
            quant_format=QuantFormat.QOperator,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=reduce_range,
        )
    return {
        "format": FORMAT,
        "activations": "uint8, per tensor, calibrated (min-max)",
        "weights": f"int8 ({'7' if reduce_range else '8'}-bit range), per output channel",
        "reduce_range": reduce_range,
        "calibration_images": len(tensors),
    }
