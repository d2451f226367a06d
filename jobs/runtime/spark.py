"""The SparkSession every job uses, and the few settings image work needs."""

from __future__ import annotations

import io
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import SparkSession

from jobs.runtime import progress
from jobs.runtime.errors import UserInputError
from jobs.runtime.redact import redact

# Image rows are large: Arrow batches of 10,000 rows (Spark's default) would hold ~1 GB of
# tiles in a Python worker. A few hundred rows keep memory flat and batches full.
ARROW_RECORDS_PER_BATCH = 256

# Spark packs small files by "open cost"; its 4 MB default splits 2,000 50-KB tiles into ~60
# partitions. Counting each file near its real size lets partitions follow the cores instead.
FILE_OPEN_COST = str(64 * 1024)


SYNAPSEML_PACKAGE = "com.microsoft.azure:synapseml_2.12:1.1.0"
LOG4J2 = Path(__file__).with_name("log4j2.properties")  # installed with the package


def get_spark(app_name: str, synapseml: bool = False) -> SparkSession:
    """The active session, or a new one; ``local[*]`` unless spark-submit named a master, or a
    Spark Connect session where ``SPARK_REMOTE`` names a server (``sc://host:15002``, pyspark's
    own variable; Databricks shared and serverless compute set it).

    ``synapseml`` adds SynapseML's jars from Maven Central. It takes effect only where this
    call starts the JVM; under spark-submit pass ``--packages`` instead.
    """
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_RECORDS_PER_BATCH))
        .config("spark.sql.files.openCostInBytes", FILE_OPEN_COST)
        .config("spark.sql.session.timeZone", "UTC")
    )
    if os.environ.get("SPARK_REMOTE"):  # session settings only: the server owns its JVM
        remote = os.environ["SPARK_REMOTE"]
        check_connect_server(remote)
        return builder.remote(remote).getOrCreate()
    # Spark's progress bar only where someone watches: in a log file it is noise.
    builder = builder.config("spark.ui.showConsoleProgress", str(stderr_is_terminal()).lower())
    # spark-submit starts the JVM with its --master (local[*] by default) and tells the Python
    # process the gateway's port; only a plain `python` run needs a master here.
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        # In local mode the executors live in the driver's JVM: AlexNet (233 MB) under
        # SynapseML's ONNXModel does not fit Spark's 1 GB default.
        builder = builder.config("spark.master", "local[*]").config(
            "spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "4g")
        )
        # Python workers use this interpreter (and its packages) unless told otherwise;
        # pyspark reads only the environment variable for that. (Also what lets an entry point
        # run under cron's bare environment: no python on PATH is needed.)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # Spark's own logging at WARN from the JVM's first line, without the Makefile's flags.
        builder = builder.config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG4J2}")
    if synapseml:
        builder = builder.config("spark.jars.packages", SYNAPSEML_PACKAGE)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SPARK_LOG_LEVEL", "WARN"))
    return spark


CONNECT_TIMEOUT_S = 15.0  # a Connect server that does not take a connection in this long is not there


class SparkConnectError(UserInputError):
    """``SPARK_REMOTE`` malformed, or naming a server that does not answer."""


def check_connect_server(remote: str) -> None:
    """Fails in one line, within :data:`CONNECT_TIMEOUT_S`, where ``SPARK_REMOTE`` is not
    ``sc://host[:port][/;params]`` or nothing answers there (pyspark itself would wait forever)."""
    parsed = urlparse(remote)
    try:
        port = parsed.port or 15002
    except ValueError:
        port = None
    if parsed.scheme != "sc" or not parsed.hostname or port is None:
        raise SparkConnectError(f"SPARK_REMOTE {redact(remote)!r}: give sc://host:port (e.g. sc://localhost:15002)")
    try:
        socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise SparkConnectError(
            f"no Spark Connect server answers at {parsed.hostname}:{port} (SPARK_REMOTE) within "
            f"{CONNECT_TIMEOUT_S:.0f} s: {type(exc).__name__}: {exc}"
        ) from None


def is_connect(spark: SparkSession) -> bool:
    """Whether ``spark`` is a Spark Connect session: no SparkContext, no JVM on this side."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


CONNECT_PARALLELISM = 8  # a guess where a Connect session cannot say its cores


def parallelism(spark: SparkSession) -> int:
    """Tasks the cluster runs at once, for sizing partitions; under Connect, the server's
    ``spark.default.parallelism`` when it sets one."""
    if not is_connect(spark):
        return int(spark.sparkContext.defaultParallelism)
    return int(spark.conf.get("spark.default.parallelism", None) or CONNECT_PARALLELISM)


def task_count(spark: SparkSession, n_items: int, per_task: int) -> int:
    """Tasks for ``n_items`` of at most ``per_task`` each, in whole waves of the cluster's slots:
    3 tasks on 2 cores would leave one core idle for the last third of the stage."""
    slots = max(1, parallelism(spark))
    waves = -(-max(1, -(-n_items // per_task)) // slots)
    return waves * slots


class JvmStderr(io.TextIOBase):
    """The launching JVM's stderr, for Python's: spark-submit merges the Python driver's stdout
    and stderr into its own stdout, where only the job's JSON summary belongs."""

    def __init__(self) -> None:
        from pyspark import SparkContext

        SparkContext._ensure_initialized()  # connects to spark-submit's gateway; starts no context
        self._err = SparkContext._jvm.System.err  # type: ignore[union-attr]

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._err.print(text)
        return len(text)

    def flush(self) -> None:
        self._err.flush()


def under_spark_submit() -> bool:
    return "PYSPARK_GATEWAY_PORT" in os.environ


def stderr_is_terminal() -> bool:
    """Whether progress lands on a terminal (under spark-submit: the launcher's stderr)."""
    if not under_spark_submit():
        return sys.stderr.isatty()
    try:
        return os.readlink(f"/proc/{os.getppid()}/fd/2").startswith(("/dev/pts/", "/dev/tty"))
    except OSError:
        return False


@contextmanager
def progress_to_stderr() -> Iterator[None]:
    """Under spark-submit, sends what Python writes to stderr (progress, argparse's messages,
    warnings, tracebacks) to the launcher's stderr; elsewhere stderr is left as it is."""
    if not under_spark_submit():
        yield
        return
    with redirect_stderr(JvmStderr()):
        yield


def say(job: str, message: str) -> None:
    """One progress line on stderr (stdout carries only the final JSON summary)."""
    print(f"[{job} {time.strftime('%H:%M:%S')}] {redact(message)}", file=sys.stderr, flush=True)


PROGRESS_S = 10.0  # seconds between progress lines of a long step


@contextmanager
def timed(
    job: str, what: str, timings: dict[str, float], spark: SparkSession | None = None, images: int | None = None
) -> Iterator[None]:
    """Times a step; with ``spark``, says every :data:`PROGRESS_S` how far it is: given the step's
    ``images``, images done (as the featurizers count them), their rate and the time left; else
    the tasks of its running Spark stages."""
    say(job, f"{what} ...")
    start = time.perf_counter()
    stop = threading.Event()
    if spark is not None and not is_connect(spark):  # progress comes from the SparkContext
        args = (spark, job, what, start, stop, images)
        threading.Thread(target=_report, args=args, name="progress", daemon=True).start()
    try:
        yield
    finally:
        stop.set()
    timings[what] = round(time.perf_counter() - start, 3)
    say(job, f"{what}: {timings[what]:.1f} s")


def _report(spark: SparkSession, job: str, what: str, start: float, stop: threading.Event, images: int | None) -> None:
    tracker = spark.sparkContext.statusTracker()
    first = progress.images_done()
    while not stop.wait(PROGRESS_S):
        elapsed = time.perf_counter() - start
        done = progress.images_done() - first
        if done > 0:  # images, as the featurizers count them (none yet: tasks, below)
            rate = done / elapsed
            if images:
                done = min(done, images)
                left = f", about {(images - done) / rate:.0f} s left" if done < images else ""
                say(job, f"{what}: {done:,}/{images:,} images ({100 * done / images:.0f} %) after {elapsed:.0f} s, "
                    f"{rate:.1f} images/s{left}")  # fmt: skip
            else:
                say(job, f"{what}: {done:,} images after {elapsed:.0f} s, {rate:.1f} images/s")
            continue
        infos = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
        finished = sum(i.numCompletedTasks for i in infos if i)
        total = sum(i.numTasks for i in infos if i)
        say(job, f"{what}: {finished}/{total} tasks of the running stages done after {elapsed:.0f} s")
