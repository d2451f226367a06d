"""Featurization speed, side by side in one run: the same 2,000 real aerial images, the same ONNX
file, the same cores, each way in its own process.

    python bench/featurize.py [--models efficientnet_lite0] [--images 2000] [--passes 2] [--out FILE]

Ways (``--engine`` runs one of them in a child process; the parent compares them):

* ``plain_fp32`` / ``plain_int8``: one process, one onnxruntime session on every core, read ->
  decode -> preprocess -> run in batches: the ceiling a Spark engine is held to.
* ``spark_fp32`` / ``spark_int8``: this project's ImageFeaturizer (``onnx`` engine) on ``local[*]``.
* ``predict_batch_udf``: ``pyspark.ml.functions.predict_batch_udf`` with onnxruntime, as its docs
  show: ``binaryFile`` -> a pandas UDF that decodes and prepares each image into a flattened
  tensor column -> ``predict_batch_udf`` with ``input_tensor_shapes``.
* ``ray_data``: Ray Data ``read_binary_files`` -> ``map_batches`` with an actor pool of
  onnxruntime predictors (one per core), as Ray's batch-inference docs show (``bench`` extra).
* ``synapseml``: the ImageFeaturizer on SynapseML's ONNXModel (one steady pass, 12 GB driver).

Images are UC Merced's (real aerial scenes, 256 px JPEG), ``--images`` of them; every way decodes
and prepares them exactly as the featurizer does. int8 is the fp32 file quantized by
:mod:`featurizers.quantize`, calibrated on 64 of the images. Each way makes one cold pass (sessions
and workers start) and ``--passes`` steady passes; images/s is the steady median; CPU-seconds per
image is the machine's CPU time over the steady passes (the bench wants a quiet machine anyway).
Writes ``bench/out/featurize.json`` with per-network ``ratios``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from featurizers.image_featurizer import ImageFeaturizer, featurize_batch  # noqa: E402
from featurizers.preprocess import prepare  # noqa: E402
from featurizers.quantize import FORMAT, cpu_has_vnni, quantize  # noqa: E402
from featurizers.zoo import Network  # noqa: E402
from jobs.storage import LocalStorage  # noqa: E402
from jobs.workflows.networks import ensure_onnx  # noqa: E402

CACHE = ROOT / ".cache" / "bench"
UCMERCED = ROOT / ".cache" / "demo" / "ucmerced" / "images"
ENGINES = ("plain_fp32", "plain_int8", "spark_fp32", "spark_int8", "predict_batch_udf", "ray_data", "synapseml")
CALIBRATION = 64


def bench_files(n: int) -> list[Path]:
    """``n`` UC Merced images (seeded choice), copied flat into one folder every way reads."""
    out = CACHE / f"ucmerced_{n}"
    sources = sorted(UCMERCED.rglob("*.jpg")) if UCMERCED.exists() else []
    if len(sources) < n:
        sys.exit(f"need {n} UC Merced images under {UCMERCED}: run `make data` first")
    if not out.exists() or len(list(out.iterdir())) != n:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for f in random.Random(0).sample(sources, n):
            shutil.copyfile(f, out / f.name)
    return sorted(out.iterdir())


def networks(model: str, files: list[Path]) -> tuple[str, str]:
    """The fp32 export (real ImageNet weights) and its int8 version, both cached."""
    storage = LocalStorage(CACHE)
    fp32 = ensure_onnx(storage, model)
    int8 = fp32.replace(".onnx", f"-int8-{FORMAT.lower()}-bench{'-vnni' if cpu_has_vnni() else ''}.onnx")
    if not os.path.exists(int8):
        prep = Network.parse(model).preprocessing
        quantize(fp32, int8, [prepare(f.read_bytes(), prep) for f in files[:CALIBRATION]])
    return fp32, int8


def timed_passes(one_pass: Callable[[], None], n: int, passes: int) -> dict[str, float]:
    """Cold and steady images/s, and the machine's CPU seconds per image over the steady passes."""
    speeds = []
    for i in range(1 + passes):
        if i == 1:
            cpu0 = machine_cpu_seconds()
        start = time.perf_counter()
        one_pass()
        speeds.append(n / (time.perf_counter() - start))
    cpu = (machine_cpu_seconds() - cpu0) / (n * passes)
    return {
        "cold": round(speeds[0], 2),
        "steady": round(statistics.median(speeds[1:]), 2),
        "passes": 1 + passes,
        "cpu_s_per_image": round(cpu, 4),
    }


def plain(model: str, onnx_path: str, files: list[Path], batch: int, passes: int) -> dict[str, float]:
    net = Network.parse(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])

    def one_pass() -> None:
        for i in range(0, len(files), batch):
            data = [f.read_bytes() for f in files[i : i + batch]]
            feats, reasons, _ = featurize_batch(session, data, net.preprocessing, net.feature_dim, 1 << 30)
            assert not any(reasons) and np.isfinite(feats).all()

    return timed_passes(one_pass, len(files), passes)


def spark_featurizer(model: str, onnx_path: str, folder: Path, engine: str, batch: int, passes: int) -> dict:
    from jobs.datasets import folders
    from jobs.runtime.spark import get_spark

    spark = get_spark(f"bench-{engine}", synapseml=engine == "synapseml")
    featurizer = ImageFeaturizer.from_network(Network.parse(model), onnx_path, engine=engine, batchSize=batch)
    rows = folders.load_unlabelled(spark, LocalStorage(folder))
    n = rows.count()
    assert featurizer.transform(rows.limit(batch)).where("reject_reason is not null").count() == 0

    def one_pass() -> None:
        featurizer.transform(rows).select("features", "reject_reason").write.format("noop").mode("overwrite").save()

    return timed_passes(one_pass, n, passes)


def predict_batch(model: str, onnx_path: str, folder: Path, batch: int, passes: int) -> dict:
    """``predict_batch_udf`` as pyspark's docs show it: preprocess to a flattened tensor column, then predict."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType

    from jobs.runtime.spark import get_spark

    spark = get_spark("bench-predict_batch_udf")
    prep = Network.parse(model).preprocessing
    side = prep.crop

    @F.pandas_udf(ArrayType(FloatType()))  # type: ignore[call-overload]
    def preprocess(content: pd.Series) -> pd.Series:
        return pd.Series([prepare(b, prep).ravel() for b in content])

    def make_predict_fn() -> Callable[[np.ndarray], np.ndarray]:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # one Python worker a core, as the featurizer runs
        session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])

        def predict(inputs: np.ndarray) -> np.ndarray:
            return session.run(None, {"image": inputs.astype(np.float32)})[0]

        return predict

    featurize = predict_batch_udf(
        make_predict_fn, return_type=ArrayType(FloatType()), batch_size=batch, input_tensor_shapes=[[3, side, side]]
    )
    images = spark.read.format("binaryFile").load(str(folder)).select("path", "content")
    n = images.count()

    def one_pass() -> None:
        images.select(featurize(preprocess("content")).alias("features")).write.format("noop").mode("overwrite").save()

    return timed_passes(one_pass, n, passes)


def ray_data(model: str, onnx_path: str, folder: Path, batch: int, passes: int) -> dict:
    """Ray Data batch inference as Ray's docs show it: read, then ``map_batches`` on an actor pool."""
    import ray

    prep = Network.parse(model).preprocessing
    cores = os.cpu_count() or 1
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)

    class Predictor:
        def __init__(self) -> None:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            self.session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            x = np.stack([prepare(b, prep) for b in batch["bytes"]])
            return {"features": self.session.run(None, {"image": x})[0]}

    files = [str(p) for p in sorted(folder.iterdir())]

    def one_pass() -> None:
        # One predictor a core, as the Spark ways run; its CPU share leaves room for the read tasks,
        # which would otherwise wait behind actors holding every CPU (a stall, seen here).
        ds = ray.data.read_binary_files(files, ray_remote_args={"num_cpus": 0.25}).map_batches(
            Predictor, batch_size=batch, concurrency=cores, num_cpus=0.75, batch_format="numpy"
        )
        assert sum(len(b["features"]) for b in ds.iter_batches(batch_size=256, batch_format="numpy")) == len(files)

    try:
        return timed_passes(one_pass, len(files), passes)
    finally:
        ray.shutdown()


def machine_cpu_seconds() -> float:
    """CPU seconds every core of the machine has spent (user + system), from ``/proc/stat``.

    On the quiet machine a bench needs, a pass's difference is the way's own CPU: the JVM, its
    Python workers, and Ray's actors, which Ray starts outside this process tree and ends with the
    pass (counting this tree missed them: 0.0008 CPU-s per image, less than a tenth of onnxruntime's).
    """
    import psutil

    t = psutil.cpu_times()
    return float(t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


def run_engine(engine: str, model: str, files: list[Path], batch: int, passes: int) -> dict[str, Any]:
    fp32, int8 = networks(model, files)
    folder = files[0].parent
    if engine.startswith("plain_"):
        return plain(model, int8 if engine.endswith("int8") else fp32, files, batch, passes)
    if engine in ("spark_fp32", "spark_int8"):
        return spark_featurizer(model, int8 if engine.endswith("int8") else fp32, folder, "onnx", batch, passes)
    if engine == "synapseml":
        return spark_featurizer(model, fp32, folder, "synapseml", batch, passes)
    if engine == "predict_batch_udf":
        return predict_batch(model, fp32, folder, batch, passes)
    return ray_data(model, fp32, folder, batch, passes)


def stage_cpu(model: str, files: list[Path], batch: int, n: int = 400) -> dict[str, float]:
    """CPU seconds per image of each stage on one thread: decode + prepare, then the fp32 and the
    int8 network (what the ways' ratios are made of)."""
    fp32, int8 = networks(model, files)
    prep = Network.parse(model).preprocessing
    start = time.process_time()
    x = [prepare(f.read_bytes(), prep) for f in files[:n]]
    out = {"decode_prepare": round((time.process_time() - start) / n, 5)}
    for name, path in (("network_fp32", fp32), ("network_int8", int8)):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        session.run(None, {"image": np.stack(x[:batch])})
        start = time.process_time()
        for i in range(0, n, batch):
            session.run(None, {"image": np.stack(x[i : i + batch])})
        out[name] = round((time.process_time() - start) / n, 5)
    return out


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "vnni": cpu_has_vnni(),
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
    }


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    if a.get("steady") is None or b.get("steady") is None:
        return None
    return round(a["steady"] / b["steady"], 3)


RATIOS = {
    "spark_fp32_vs_plain_fp32": ("spark_fp32", "plain_fp32"),
    "spark_int8_vs_plain_fp32": ("spark_int8", "plain_fp32"),
    "plain_int8_vs_plain_fp32": ("plain_int8", "plain_fp32"),
    "spark_int8_vs_spark_fp32": ("spark_int8", "spark_fp32"),
    "spark_fp32_vs_predict_batch_udf": ("spark_fp32", "predict_batch_udf"),
    "spark_fp32_vs_ray_data": ("spark_fp32", "ray_data"),
    "spark_fp32_vs_synapseml": ("spark_fp32", "synapseml"),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["efficientnet_lite0"])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--passes", type=int, default=2, help="steady passes after the cold one (median)")
    p.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "featurize.json")
    p.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)  # a child: one way, one model
    args = p.parse_args()
    files = bench_files(args.images)
    if args.engine:
        print(json.dumps(run_engine(args.engine, args.models[0], files, args.batch, args.passes)), flush=True)
        return 0
    results = []
    for model in args.models:
        networks(model, files)  # exported and quantized before any way is timed
        ways: dict[str, dict[str, Any]] = {}
        for engine in args.engines:
            passes = 1 if engine == "synapseml" else args.passes
            cmd = [sys.executable, __file__, "--engine", engine, "--models", model, "--passes", str(passes)]
            cmd += ["--images", str(args.images), "--batch", str(args.batch)]
            env = dict(os.environ, SPARK_DRIVER_MEMORY="12g" if engine == "synapseml" else "4g")
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
            if done.returncode != 0 or not lines:  # recorded, not hidden (e.g. an extra not installed)
                ways[engine] = {"steady": None, "error": (done.stderr.strip().splitlines() or ["?"])[-1][:300]}
            else:
                r = json.loads(lines[-1])
                r["wall_s"] = round(time.perf_counter() - start, 1)
                ways[engine] = r
            print(json.dumps({"model": model, "engine": engine, **ways[engine]}), flush=True)
        ratios = {k: _ratio(ways.get(a, {}), ways.get(b, {})) for k, (a, b) in RATIOS.items()}
        stages = stage_cpu(model, files, args.batch)
        results.append(
            {"model": model, "images": args.images, "batch": args.batch, "ways": ways, "ratios": ratios}
            | {"cpu_s_per_image_by_stage": stages}
        )
    report = {
        "benchmark": "featurize",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for r in results:
        print(f"\n{r['model']}: steady images/s, CPU-s per image")
        for name, w in r["ways"].items():
            print(f"  {name:<18} {w.get('steady') or 'failed':>8} {w.get('cpu_s_per_image', ''):>8}")
        for k, v in r["ratios"].items():
            print(f"  {k:<34} {v}")
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
