"""A real Spark standalone cluster on 127.0.0.1: one master and workers of one core each.

pip's pyspark ships ``sbin/spark-daemon.sh`` but not ``start-master.sh``; the daemons are
started through it and stopped by the PIDs it records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyspark
from azurite import free_port

SPARK_HOME = Path(pyspark.__file__).parent
DAEMON = SPARK_HOME / "sbin" / "spark-daemon.sh"
MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"
IDENT = "tests"


class Cluster:
    def __init__(self, workdir: Path, workers: int = 2) -> None:
        self.workdir = workdir
        self.port, self.ui_port = free_port(), free_port()
        self.workers = workers
        self.url = f"spark://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            SPARK_HOME=str(SPARK_HOME),
            SPARK_LOG_DIR=str(workdir / "logs"),
            SPARK_PID_DIR=str(workdir / "pids"),
            SPARK_WORKER_DIR=str(workdir / "work"),
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_IDENT_STRING=IDENT,  # names the PID files; $USER, its default, may be unset
            PYSPARK_PYTHON=sys.executable,
            SPARK_DAEMON_JAVA_OPTS="-XX:TieredStopAtLevel=1",  # as conftest.JVM_TEST_OPTS: seconds-long JVMs
        )

    def _daemon(self, action: str, cls: str, instance: int, *args: str) -> None:
        subprocess.run(
            ["bash", str(DAEMON), action, cls, str(instance), *args], env=self.env, check=True, capture_output=True
        )

    def start(self) -> None:
        self._daemon(
            "start", MASTER, 1, "--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.ui_port)
        )
        self._wait(lambda s: True, "master")
        for i in range(1, self.workers + 1):
            self._daemon(
                "start",
                WORKER,
                i,
                "--cores",
                "1",
                "--memory",
                "3g",
                "--host",
                "127.0.0.1",
                "--webui-port",
                str(free_port()),
                self.url,
            )
        self._wait(lambda s: sum(w["state"] == "ALIVE" for w in s["workers"]) == self.workers, "workers")

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as r:
            return json.loads(r.read())

    def _wait(self, ready, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ready(self.state()):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"standalone {what} not up within {timeout:.0f} s; logs in {self.workdir / 'logs'}")

    def pid(self, cls: str, instance: int) -> int:
        return int((self.workdir / "pids" / f"spark-{IDENT}-{cls}-{instance}.pid").read_text())

    def kill_worker(self, instance: int) -> None:
        """SIGKILLs a worker and the executors it launched, as a lost machine would vanish."""
        worker = self.pid(WORKER, instance)
        children = subprocess.run(["pgrep", "-P", str(worker)], capture_output=True, text=True).stdout.split()
        for pid in [worker, *map(int, children)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        for i in range(1, self.workers + 1):
            subprocess.run(["bash", str(DAEMON), "stop", WORKER, str(i)], env=self.env, capture_output=True)
        subprocess.run(["bash", str(DAEMON), "stop", MASTER, "1"], env=self.env, capture_output=True)
