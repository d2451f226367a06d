"""int8 vs fp32 features of one network on real images: cosine and plain onnxruntime speed.

    python bench/int8_parity.py FP32.onnx IMAGE_DIR [--calibration 64] [--eval 64] [--out FILE]

Quantizes FP32.onnx (featurizers.quantize) with 7-bit and with 8-bit weights, calibrated on a
seeded sample of IMAGE_DIR's images, and compares features on other images of it. Speed is a
plain onnxruntime loop over prepared tensors (decode excluded), median of 3 passes, on
``--threads`` threads (0: all cores; 2 matches the 2-core bench machine).
Prints and writes JSON; needs only onnxruntime, numpy and Pillow (runs where torch is absent).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from featurizers.preprocess import prepare
from featurizers.quantize import cpu_has_vnni, quantize
from featurizers.zoo import Preprocessing


def speed(session: ort.InferenceSession, x: np.ndarray, batch: int) -> float:
    def one() -> float:
        t = time.perf_counter()
        for i in range(0, len(x), batch):
            session.run(None, {"image": x[i : i + batch]})
        return len(x) / (time.perf_counter() - t)

    one()
    return statistics.median(one() for _ in range(3))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx")
    p.add_argument("images")
    p.add_argument("--calibration", type=int, default=64)
    p.add_argument("--eval", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out")
    a = p.parse_args()
    card = json.loads(Path(a.onnx).with_suffix(".json").read_text())
    prep = Preprocessing(**{k: tuple(v) if isinstance(v, list) else v for k, v in card["preprocessing"].items()})
    files = sorted(str(f) for f in Path(a.images).rglob("*") if f.suffix.lower() in (".jpg", ".png", ".tif"))
    random.Random(0).shuffle(files)
    cal = [prepare(open(f, "rb").read(), prep) for f in files[: a.calibration]]
    ev = np.stack([prepare(open(f, "rb").read(), prep) for f in files[a.calibration : a.calibration + a.eval]])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    fp32 = ort.InferenceSession(a.onnx, opts, providers=["CPUExecutionProvider"])
    fa = np.concatenate([fp32.run(None, {"image": ev[i : i + a.batch]})[0] for i in range(0, len(ev), a.batch)])
    report = {
        "network": card["name"],
        "d4": card.get("d4"),
        "image": prep.crop,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, vnni={cpu_has_vnni()}",
        "onnxruntime": ort.__version__,
        "threads": a.threads or os.cpu_count(),
        "fp32_images_per_s": round(speed(fp32, ev, a.batch), 2),
        "int8": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for rr in (True, False):
            out = os.path.join(tmp, f"int8_{rr}.onnx")
            t = time.time()
            info = quantize(a.onnx, out, cal, reduce_range=rr)
            q = ort.InferenceSession(out, opts, providers=["CPUExecutionProvider"])
            fb = np.concatenate([q.run(None, {"image": ev[i : i + a.batch]})[0] for i in range(0, len(ev), a.batch)])
            cos = (fa * fb).sum(1) / np.linalg.norm(fa, axis=1) / np.linalg.norm(fb, axis=1)
            ips = speed(q, ev, a.batch)
            report["int8"]["7bit" if rr else "8bit"] = {
                "cosine_mean": round(float(cos.mean()), 4),
                "cosine_min": round(float(cos.min()), 4),
                "images_per_s": round(ips, 2),
                "speedup_vs_fp32": round(ips / report["fp32_images_per_s"], 3),
                "quantize_s": round(time.time() - t, 1),
                **info,
            }
    print(json.dumps(report, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
