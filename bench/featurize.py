"""Featurization speed, measured in one run on the same ONNX network and the same files.

    python bench/featurize.py [--models resnet18 alexnet] [--images 2000] [--out FILE]

Three ways over identical inputs (real NEON aerial tiles, repeated to ``--images`` files):

* ``plain``: one process, one onnxruntime session using every core, read -> decode ->
  preprocess -> run in batches. The reference a Spark engine is held to.
* ``spark_onnx``: the ImageFeaturizer's default engine on ``local[*]``.
* ``spark_synapseml``: the same Transformer on SynapseML's ONNXModel.

Each Spark engine runs in its own Spark application (a child process of this script), as a
job would: the ``onnx`` engine without the SynapseML jars.

Networks carry random weights (speed does not depend on their values). Each way makes full
passes over the files: the first ("cold") includes building onnxruntime sessions (in Spark,
one in each Python worker); "steady" is the median of ``--passes`` more (3; SynapseML 1), as
single passes on a shared 2-core machine vary by 10% and more. Ratios are taken on steady
figures, and the cold ones are reported beside them. Prints a table and writes a JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from featurizers import export  # noqa: E402
from featurizers.image_featurizer import ImageFeaturizer, featurize_batch  # noqa: E402
from featurizers.zoo import get_entry  # noqa: E402
from jobs.datasets import folders  # noqa: E402
from jobs.pretrained import ensure_onnx  # noqa: E402
from jobs.spark import get_spark  # noqa: E402
from jobs.storage import LocalStorage  # noqa: E402

CACHE = ROOT / ".cache" / "bench"
TILES = ROOT / ".cache" / "demo" / "tiles"


def bench_files(n: int) -> list[Path]:
    """``n`` files cycling through the demo's real tiles, so decode costs are real."""
    out = CACHE / f"tiles_{n}"
    sources = sorted(p for p in TILES.iterdir() if p.suffix == ".png")
    if not sources:
        sys.exit(f"no tiles in {TILES}: run `make data` first")
    if not out.exists() or len(list(out.iterdir())) != n:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for i in range(n):
            shutil.copy(sources[i % len(sources)], out / f"tile_{i:06d}.png")
    return sorted(out.iterdir())


def plain_loop(model: str, onnx_path: str, files: list[Path], batch: int, passes: int) -> tuple[float, float]:
    """``(cold, steady)`` images/s: the first pass includes building the session; steady is the
    median of ``passes`` more."""
    entry = get_entry(model)

    def one_pass() -> None:
        for i in range(0, len(files), batch):
            data = [f.read_bytes() for f in files[i : i + batch]]
            feats, reasons, _ = featurize_batch(session, data, entry.preprocessing, entry.feature_dim, 1 << 30)
            assert not any(reasons) and np.isfinite(feats).all()

    start = time.perf_counter()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    one_pass()
    cold = len(files) / (time.perf_counter() - start)
    speeds = []
    for _ in range(passes):
        start = time.perf_counter()
        one_pass()
        speeds.append(len(files) / (time.perf_counter() - start))
    return cold, statistics.median(speeds)


def spark_engine(
    spark: Any, model: str, onnx_path: str, folder: Path, n: int, engine: str, batch: int, passes: int
) -> tuple[float, float]:
    """``(cold, steady)`` images/s over the same files, each pass one full job.

    The first pass includes each Python worker building its onnxruntime session (a worker is
    kept for the next task only when its task ran to the end, so a ``limit()`` warm-up would not
    do); steady is the median of ``passes`` more, the rate a long scoring job runs at.
    """
    featurizer = ImageFeaturizer.from_zoo(model, onnx_path, engine=engine, batchSize=batch)
    rows = folders.load_unlabelled(spark, LocalStorage(folder))
    # Same files, every one a valid PNG (tests cover rejects): a sample checks nothing was rejected.
    assert featurizer.transform(rows.limit(batch)).where("reject_reason is not null").count() == 0
    speeds = []
    for _ in range(1 + passes):
        start = time.perf_counter()
        featurizer.transform(rows).select("features", "reject_reason").write.format("noop").mode("overwrite").save()
        speeds.append(n / (time.perf_counter() - start))
    return speeds[0], statistics.median(speeds[1:])


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a / b, 3)


def _first_line(exc: Exception) -> str:
    text = str(exc)
    for marker in ("OutOfMemoryError", "Exception:"):
        if marker in text:
            return text[text.index(marker) :].splitlines()[0][:200]
    return text.splitlines()[0][:200] if text else type(exc).__name__


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1), "python": platform.python_version()}


def engine_run(engine: str, models: list[str], folder: Path, n: int, batch: int, passes: int) -> int:
    """One Spark application for one engine (``--engine``): a JSON line per model on stdout."""
    spark = get_spark(f"bench-featurize-{engine}", synapseml=engine == "synapseml")
    storage = LocalStorage(CACHE)
    for model in models:
        r: dict[str, Any] = {"model": model, "engine": engine, "master": spark.sparkContext.master}
        onnx_path = ensure_onnx(storage, model, export.RANDOM)
        try:
            cold, steady = spark_engine(spark, model, onnx_path, folder, n, engine, batch, passes)
            r |= {"cold": round(cold, 2), "steady": round(steady, 2)}
        except Exception as exc:  # recorded, not hidden: e.g. SynapseML out of JVM heap
            r |= {"cold": None, "steady": None, "error": _first_line(exc)}
        print(json.dumps(r), flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["resnet18", "alexnet"])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "featurize.json")
    p.add_argument("--passes", type=int, default=3, help="steady passes after the cold one (median)")
    p.add_argument("--engine", choices=("onnx", "synapseml"), help=argparse.SUPPRESS)  # the child runs
    args = p.parse_args()
    files = bench_files(args.images)
    if args.engine:
        return engine_run(args.engine, args.models, files[0].parent, len(files), args.batch, args.passes)
    storage = LocalStorage(CACHE)
    results = {}
    for model in args.models:
        onnx_path = ensure_onnx(storage, model, export.RANDOM)
        cold, steady = plain_loop(model, onnx_path, files, args.batch, args.passes)
        results[model] = {"model": model, "images": len(files), "batch": args.batch}
        results[model] |= {"plain_images_per_s": round(steady, 2), "plain_cold_images_per_s": round(cold, 2)}
    # Each engine in its own Spark application, as a job would run it: the onnx engine without
    # the SynapseML jars and with the jobs' default 4 GB driver; SynapseML, 4-6x slower, once
    # steady and with the 12 GB its AlexNet needs.
    master = None
    for engine, passes, memory in (("onnx", args.passes, "4g"), ("synapseml", 1, "12g")):
        cmd = [sys.executable, __file__, "--engine", engine, "--models", *args.models, "--passes", str(passes)]
        cmd += ["--images", str(args.images), "--batch", str(args.batch)]
        env = dict(os.environ, SPARK_DRIVER_MEMORY=memory)
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or len(lines) != len(args.models):
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        for line in lines:
            r = results[line["model"]]
            r[f"spark_{engine}_images_per_s"] = line["steady"]
            r[f"spark_{engine}_cold_images_per_s"] = line["cold"]
            if "error" in line:
                r[f"spark_{engine}_error"] = line["error"]
            master = line["master"]
    for r in results.values():
        r["spark_onnx_vs_plain"] = _ratio(r["spark_onnx_images_per_s"], r["plain_images_per_s"])
        r["spark_onnx_vs_plain_cold"] = _ratio(r["spark_onnx_cold_images_per_s"], r["plain_cold_images_per_s"])
        r["spark_synapseml_vs_plain"] = _ratio(r["spark_synapseml_images_per_s"], r["plain_images_per_s"])
        r["spark_onnx_vs_synapseml"] = _ratio(r["spark_onnx_images_per_s"], r["spark_synapseml_images_per_s"])
        print(json.dumps(r), flush=True)
    report = {
        "benchmark": "featurize",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "spark_master": master,
        "onnxruntime": ort.__version__,
        "results": list(results.values()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    heads = ("plain", "spark onnx", "synapseml", "onnx/plain", "onnx/synml", "cold ratio")
    print(f"\nsteady images/s (median of {args.passes} passes after the first); cold ratio: onnx/plain, first pass")
    print(f"{'model':<10} " + " ".join(f"{h:>11}" for h in heads))
    for r in results.values():
        cells = [r[k] for k in ("plain_images_per_s", "spark_onnx_images_per_s", "spark_synapseml_images_per_s")]
        cells += [r["spark_onnx_vs_plain"], r["spark_onnx_vs_synapseml"], r["spark_onnx_vs_plain_cold"]]
        print(f"{r['model']:<10} " + " ".join(f"{'failed' if c is None else c:>11}" for c in cells))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
