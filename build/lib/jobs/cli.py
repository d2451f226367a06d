"""What every spark-submit entry point shares: run ids, exit codes, the one-line summary."""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from featurizers.export import MissingExtraError, WeightsUnavailableError
from featurizers.image_featurizer import EngineError, ModelFileError
from featurizers.quantize import QuantizationError
from featurizers.zoo import PoolGridError, UnknownModelError
from jobs.config import ConfigError, describe
from jobs.datasets import DatasetError
from jobs.lock import LockedError
from jobs.names import NameError_
from jobs.redact import redact, redact_obj
from jobs.spark import get_spark, progress_to_stderr
from jobs.storage import StorageError, open_storage

EXIT_OK = 0
EXIT_FAILED = 1  # anything unexpected: Spark, the JVM, the machine
EXIT_BAD_INPUT = 2  # configuration, data or storage that the user must fix
EXIT_LOCKED = 3  # another run holds the output's lock: try again later

BAD_INPUT = (
    ConfigError,
    EngineError,
    DatasetError,
    StorageError,
    UnknownModelError,
    PoolGridError,
    WeightsUnavailableError,
    NameError_,
    ModelFileError,
    QuantizationError,  # e.g. no decodable calibration image
    MissingExtraError,  # torch for an export or a fine-tune: the line names the extra to install
)


class JobFailedError(RuntimeError):
    """A failure that is not the user's input but says in one line what happened (exit 1, no trace)."""


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def code_version() -> str:
    """The git commit this code came from, when it runs from a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def add_summary_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--summary_file", help="also write the one-line JSON summary to this local file")


def run(job: str, main: Callable[[], dict[str, Any]], argv: list[str] | None = None) -> int:
    """Runs ``main``; prints its summary as one JSON line on stdout (and to ``--summary_file``),
    or one error line on stderr."""
    pre = argparse.ArgumentParser(add_help=False)
    add_summary_flag(pre)
    summary_file = pre.parse_known_args(sys.argv[1:] if argv is None else argv)[0].summary_file
    with progress_to_stderr():
        try:
            summary = main()
        except BAD_INPUT as exc:
            print(f"{job}: error: {redact(str(exc))}", file=sys.stderr, flush=True)
            return EXIT_BAD_INPUT
        except LockedError as exc:
            print(f"{job}: locked: {redact(str(exc))}", file=sys.stderr, flush=True)
            return EXIT_LOCKED
        except JobFailedError as exc:
            print(f"{job}: failed: {redact(str(exc))}", file=sys.stderr, flush=True)
            return EXIT_FAILED
        except Exception:  # unexpected: the trace is for whoever debugs it, on stderr, secrets out
            print(redact(traceback.format_exc()), file=sys.stderr, flush=True)
            print(f"{job}: failed (exit {EXIT_FAILED}); the trace above says where", file=sys.stderr, flush=True)
            return EXIT_FAILED
    line = json.dumps(redact_obj(summary), sort_keys=False)
    if summary_file:
        Path(summary_file).write_text(line + "\n", encoding="utf-8")
    print(line, flush=True)
    return EXIT_OK


def main(
    job: str,
    parse_args: Callable[[list[str] | None], Any],
    work: Callable[[Any, Any, Any], dict[str, Any]],
    argv: list[str] | None = None,
) -> int:
    """An entry point: flags -> config -> Spark session -> checked storage root -> ``work(spark, cfg, storage)``,
    under :func:`run`'s exit codes and one-line summary."""

    def go() -> dict[str, Any]:
        cfg = parse_args(argv)
        resolved = redact(describe(cfg))  # a SAS URL given as a flag is a secret
        print(f"{job}: configuration (flag > conf > recipe > default):\n{resolved}", file=sys.stderr, flush=True)
        spark = get_spark(f"{job}-{cfg.output_model_name}", synapseml=getattr(cfg, "engine", "") == "synapseml")
        storage = open_storage(cfg.storage, spark)
        storage.check()
        print(f"{job}: storage {redact(storage.uri())} ({storage.credential()})", file=sys.stderr, flush=True)
        return work(spark, cfg, storage)

    return run(job, go, argv)
