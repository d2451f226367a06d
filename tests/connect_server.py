"""A real Spark Connect server on 127.0.0.1, started from Maven's ``spark-connect`` jar.

pip's pyspark ships no ``start-connect-server.sh``; the server class is run by spark-submit, as
that script does, and stopped by its PID (spark-submit execs the JVM).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from azurite import free_port

# The newest 3.5 release of the server jar on Maven Central (3.5.8 and 3.5.9 were not published
# there); its protocol is 3.5's, which pyspark 3.5.9's client speaks.
PACKAGE = "org.apache.spark:spark-connect_2.12:3.5.7"
SERVER = "org.apache.spark.sql.connect.service.SparkConnectServer"
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def running(workdir: Path, cores: int = 2) -> Iterator[str]:
    """Yields the server's ``sc://`` URL; the server's Python workers use this interpreter."""
    port = free_port()
    submit = os.path.join(os.path.dirname(sys.executable), "spark-submit")
    log4j = f"-Dlog4j2.configurationFile={ROOT / 'jobs' / 'log4j2.properties'}"
    cmd = [submit, "--master", f"local[{cores}]", "--class", SERVER, "--packages", PACKAGE]
    cmd += ["--driver-java-options", log4j, "--conf", f"spark.connect.grpc.binding.port={port}"]
    cmd += ["--conf", "spark.sql.execution.arrow.maxRecordsPerBatch=256"]
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    env.pop("SPARK_REMOTE", None)
    log = open(workdir / "connect-server.log", "wb")
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300  # the first run resolves the jar from Maven Central
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"connect server exited {proc.returncode}: {(workdir / 'connect-server.log').read_text()[-2000:]}"
                )
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("connect server did not listen within 300 s") from None
                time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
