"""What every entry point shares: flags -> configuration -> Spark session -> checked storage root
-> the workflow, under one set of exit codes and a one-line JSON summary."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs.config import add_summary_flag, describe
from jobs.runtime.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_LOCKED, EXIT_OK, JobFailedError, UserInputError
from jobs.runtime.redact import redact, redact_obj
from jobs.runtime.spark import get_spark, progress_to_stderr
from jobs.storage import open_storage
from jobs.storage.lock import LockedError


def run(job: str, main: Callable[[], dict[str, Any]], argv: list[str] | None = None) -> int:
    """Runs ``main``; prints its summary as one JSON line on stdout (and to ``--summary_file``),
    or one error line on stderr."""
    pre = argparse.ArgumentParser(add_help=False)
    add_summary_flag(pre)
    summary_file = pre.parse_known_args(sys.argv[1:] if argv is None else argv)[0].summary_file
    with progress_to_stderr():
        try:
            summary = main()
        except UserInputError as exc:
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
