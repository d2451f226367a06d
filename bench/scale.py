"""Scoring at scale: does the driver's memory stay flat as the tile count grows 100x?

    python bench/scale.py [--counts 2000 20000 200000] [--out FILE]

Generates small tiles (32 x 32 PNG, three colour classes, seeded), trains a tiny model once
(raw-pixel features + logistic regression: the scoring path is what is measured, not the
network), then runs ``spark-submit jobs/score.py`` on each tile count and records the peak
resident memory (VmHWM) of the driver's Python process and of its JVM, plus images/s.
Writes a JSON report; the flatness ratio is peak at the largest count over the smallest.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench" / "scale"
COLOURS = {"Barren": (150, 120, 90), "Forest": (40, 110, 40), "Developed": (150, 150, 160)}


def tile(rng: np.random.Generator, colour: tuple[int, int, int]) -> Image.Image:
    noise = rng.integers(-40, 40, size=(32, 32, 3))
    return Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8))


def make_tiles(n: int) -> Path:
    out = CACHE / f"tiles_{n}"
    if out.exists() and len(os.listdir(out)) == n:
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    colours = list(COLOURS.values())
    for i in range(n):
        tile(rng, colours[i % 3]).save(out / f"tile_{i:07d}.png", compress_level=1)
    return out


def make_training_set() -> Path:
    out = CACHE / "labelled"
    if not out.exists():
        rng = np.random.default_rng(0)
        for split, k in (("train", 30), ("test", 10)):
            for label, colour in COLOURS.items():
                (out / split / label).mkdir(parents=True, exist_ok=True)
                for i in range(k):
                    tile(rng, colour).save(out / split / label / f"{i:03d}.png")
    return out


def submit(script: str, *args: str, master: str | None = None) -> tuple[dict, dict[str, int]]:
    """Runs a job with spark-submit; returns its summary and the peak RSS (kB) of its processes."""
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    gc_log = CACHE / f"gc-{script}-{time.time_ns()}.log"
    java_options = f"-Dlog4j2.configurationFile={ROOT / 'jobs' / 'log4j2.properties'} -Xlog:gc:file={gc_log}"
    options = ["--master", master] if master else []
    spark_submit = str(Path(sys.executable).parent / "spark-submit")
    cmd = [spark_submit, *options, "--driver-memory", "2g", "--driver-java-options", java_options]
    cmd += [str(ROOT / "jobs" / script), *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks: dict[str, int] = {}
    stop = threading.Event()

    failed: list[BaseException] = []

    def watch() -> None:  # VmHWM is each process's own peak; sample until it exits
        try:
            while not stop.is_set():
                for pid, role in _tree(proc.pid):
                    hwm = _vmhwm(pid)
                    if hwm:
                        peaks[role] = max(peaks.get(role, 0), hwm)
                time.sleep(0.2)
        except Exception as exc:  # a watcher that stops early would under-report the peaks
            failed.append(exc)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    stop.set()
    watcher.join()
    if proc.returncode != 0:
        sys.exit(out[-3000:])
    if failed:
        sys.exit(f"the memory watcher of {script} stopped early: {failed[0]!r}")
    peaks["driver_heap_after_gc"] = _heap_after_gc(gc_log)
    return json.loads(out.strip().splitlines()[-1]), peaks


def _heap_after_gc(log: Path) -> int:
    """The largest heap the driver JVM kept after a collection (kB): what it really retained.

    Its resident size says less: the JVM grows its heap lazily up to -Xmx before collecting.
    Lines read like ``GC(7) Pause Young (Normal) (G1 Evacuation Pause) 120M->45M(512M) 3.1ms``.
    """
    sizes = [int(m) * 1024 for m in re.findall(r"->(\d+)M\(", log.read_text())]
    return max(sizes, default=0)


def _tree(root: int) -> list[tuple[int, str]]:
    """The job's JVM (spark-submit's java) and its driver Python (the JVM's python child)."""
    found = []
    for pid in _descendants(root):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it ended meanwhile
            continue
        if "java" in cmd.split(" ")[0] and "SparkSubmit" in cmd:
            found.append((pid, "driver_jvm"))
        elif "jobs/score.py" in cmd and "python" in cmd.split(" ")[0]:
            found.append((pid, "driver_python"))
    return found


def _descendants(pid: int) -> list[int]:
    out = [pid]
    children: list[str] = []
    # A JVM starts processes from any of its threads: every thread's children count.
    try:
        tasks = list(Path(f"/proc/{pid}/task").glob("*"))
    except OSError:  # it ended meanwhile (this killed the watcher thread once, mid-run)
        return out
    for task in tasks:
        try:
            children += (task / "children").read_text().split()
        except OSError:
            continue
    for child in children:
        out.extend(_descendants(int(child)))
    return out


def _vmhwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--counts", nargs="+", type=int, default=[2000, 20000, 200000])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "scale.json")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="score on a standalone cluster (master + 2 workers on 127.0.0.1), so that the driver's "
        "JVM holds no executor: in local mode executors share its heap and its peak says little",
    )
    args = p.parse_args()
    cluster = None
    if args.cluster:
        sys.path.insert(0, str(ROOT / "tests"))
        from cluster import Cluster

        cluster = Cluster(CACHE / "cluster")
        cluster.start()
    try:
        return run(args, cluster.url if cluster else None)
    finally:
        if cluster is not None:
            cluster.stop()


def run(args: argparse.Namespace, master: str | None) -> int:
    storage = CACHE / "storage"
    # The bench owns this storage: a lock left by an interrupted bench run is its own.
    (storage / "predictions" / "tiny" / "_LOCK").unlink(missing_ok=True)
    train_args = [
        "--dataset",
        "aerial",
        "--data",
        str(make_training_set()),
        "--storage",
        str(storage),
        "--output_model_name",
        "tiny",
        "--pretrained_model_type",
        "pixels",
    ]
    submit("train.py", *train_args)
    results = []
    for n in args.counts:
        tiles = make_tiles(n)
        summary, peaks = submit(
            "score.py", "--output_model_name", "tiny", "--tiles", str(tiles), "--storage", str(storage), master=master
        )
        assert summary["n_tiles"] == n, summary
        r = {
            "tiles": n,
            "images_per_s": summary["images_per_s"],
            "seconds": summary["seconds"],
            "driver_python_peak_mib": round(peaks.get("driver_python", 0) / 1024, 1),
            "driver_jvm_peak_mib": round(peaks.get("driver_jvm", 0) / 1024, 1),
            "driver_heap_after_gc_peak_mib": round(peaks["driver_heap_after_gc"] / 1024, 1),
        }
        results.append(r)
        print(json.dumps(r), flush=True)
    first, last = results[0], results[-1]
    report = {
        "benchmark": "scale",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "master": master or "local[*]",
        "results": results,
        "python_peak_ratio": round(last["driver_python_peak_mib"] / first["driver_python_peak_mib"], 3),
        "jvm_peak_ratio": round(last["driver_jvm_peak_mib"] / first["driver_jvm_peak_mib"], 3),
        "heap_after_gc_ratio": round(last["driver_heap_after_gc_peak_mib"] / first["driver_heap_after_gc_peak_mib"], 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("python_peak_ratio", "jvm_peak_ratio", "heap_after_gc_ratio")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
