"""The run history: one record per run (train, score, assess, change) in
``<storage>/runs/index.jsonl``, and its CLI.

    python -m jobs.runs list                       # every run, newest last
    python -m jobs.runs list --kind score --model aid_demo   # one kind, one model
    python -m jobs.runs show RUN                   # one run (a training run with per-class metrics)
    python -m jobs.runs compare RUN RUN            # two runs side by side
    python -m jobs.runs best --metric accuracy     # the best run (or macro_f1, images_per_s)

Add ``--json`` for scripts and ``--storage ROOT`` for another storage root. A record holds what
the original sample's Run History showed and more: data set, CNN, classifier and its
parameters, sample fractions, accuracy, macro-F1, per-class metrics, counts, seconds,
featurization images/s, the code version, and where its metrics.json lies.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from jobs.config import plain
from jobs.records import history
from jobs.runtime.errors import EXIT_BAD_INPUT, EXIT_OK, UserInputError
from jobs.runtime.redact import redact
from jobs.storage import open_storage


def main(argv: list[str] | None = None) -> int:
    # --storage and --json go before or after the command (`runs list --json`, `runs --json list`).
    def common_flags(default: Any) -> argparse.ArgumentParser:
        flags = argparse.ArgumentParser(add_help=False)
        flags.add_argument("--storage", default=default or "data", help="storage root (default ./data)")
        flags.add_argument("--json", action="store_true", default=default or False, help="machine-readable output")
        flags.add_argument("--kind", choices=history.KINDS, default=default, help="only runs of this kind")
        flags.add_argument("--model", "--output_model_name", dest="model", default=default, help="only this model")
        return flags

    common = common_flags(argparse.SUPPRESS)  # after the command: set only when given
    p = argparse.ArgumentParser(
        description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common_flags(None)]
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", parents=[common], help="one line per run")
    sub.add_parser("show", parents=[common], help="one run whole").add_argument("run")
    cmp = sub.add_parser("compare", parents=[common], help="two runs side by side")
    cmp.add_argument("run_a")
    cmp.add_argument("run_b")
    best_p = sub.add_parser("best", parents=[common], help="the best run by a metric")
    best_p.add_argument("--metric", choices=history.METRICS, default="accuracy")
    args = p.parse_args(argv)
    args.metric = getattr(args, "metric", "accuracy")
    runs = [getattr(args, k) for k in ("run", "run_a", "run_b") if getattr(args, k, None)]
    try:
        storage = open_storage(args.storage)
        everything = history.load(storage)
        records = history.select(everything, args.kind, args.model)
        if args.command == "list" and not records:
            where = f"{redact(storage.uri())}/runs"
            why = "no run matches the filters" if everything else f"no run history in {where}"
            print(f"runs: {why} (give --storage ROOT for another root; the default is ./data)", file=sys.stderr)
        out, text = history.query(records, args.command, runs, args.metric)
    except UserInputError as exc:
        print(f"runs: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        print(json.dumps(out, indent=2) if args.json else text, flush=True)
    except BrokenPipeError:  # `runs list | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own recipe
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
