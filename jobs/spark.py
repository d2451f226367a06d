"""The SparkSession every job uses, and the few settings image work needs."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

from jobs.redact import redact

# Image rows are large: Arrow batches of 10,000 rows (Spark's default) would hold ~1 GB of
# tiles in a Python worker. A few hundred rows keep memory flat and batches full.
ARROW_RECORDS_PER_BATCH = 256

# Spark packs small files by "open cost"; its 4 MB default splits 2,000 50-KB tiles into ~60
# partitions. Counting each file near its real size lets partitions follow the cores instead.
FILE_OPEN_COST = str(64 * 1024)


SYNAPSEML_PACKAGE = "com.microsoft.azure:synapseml_2.12:1.1.0"


def get_spark(app_name: str, synapseml: bool = False) -> SparkSession:
    """The active session, or a new one; ``local[*]`` unless spark-submit named a master.

    ``synapseml`` adds SynapseML's jars from Maven Central. It takes effect only where this
    call starts the JVM; under spark-submit pass ``--packages`` instead.
    """
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_RECORDS_PER_BATCH))
        .config("spark.sql.files.openCostInBytes", FILE_OPEN_COST)
        .config("spark.ui.showConsoleProgress", "true")
        .config("spark.sql.session.timeZone", "UTC")
    )
    # spark-submit starts the JVM with its --master (local[*] by default) and tells the Python
    # process the gateway's port; only a plain `python` run needs a master here.
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        # In local mode the executors live in the driver's JVM: AlexNet (233 MB) under
        # SynapseML's ONNXModel does not fit Spark's 1 GB default.
        builder = builder.config("spark.master", "local[*]").config(
            "spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "4g")
        )
        # Python workers use this interpreter (and its packages) unless told otherwise;
        # pyspark reads only the environment variable for that.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if synapseml:
        builder = builder.config("spark.jars.packages", SYNAPSEML_PACKAGE)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SPARK_LOG_LEVEL", "WARN"))
    return spark


def say(job: str, message: str) -> None:
    """One progress line on stderr (stdout carries only the final JSON summary)."""
    print(f"[{job} {time.strftime('%H:%M:%S')}] {redact(message)}", file=sys.stderr, flush=True)


@contextmanager
def timed(job: str, what: str, timings: dict[str, float]) -> Iterator[None]:
    say(job, f"{what} ...")
    start = time.perf_counter()
    yield
    timings[what] = round(time.perf_counter() - start, 3)
    say(job, f"{what}: {timings[what]:.1f} s")
