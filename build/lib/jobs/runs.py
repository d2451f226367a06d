"""The run history: one record per training run in ``<storage>/runs/index.jsonl``, and its CLI.

    python -m jobs.runs list                       # every run, newest last
    python -m jobs.runs show RUN                   # one run, with per-class metrics
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
import sys
from collections.abc import Sequence
from typing import Any

from jobs.redact import redact_obj
from jobs.storage import RUNS, Storage, StorageError, open_storage

INDEX = "index.jsonl"
METRICS = ("accuracy", "macro_f1", "images_per_s")
PER_CLASS = ("precision", "recall", "f1", "support")


def summarize(metrics: dict[str, Any], metrics_uri: str) -> dict[str, Any]:
    """The index record of a run, from its full metrics.json."""
    cfg = metrics["config"]
    counts = metrics["counts"]
    return {
        "run_id": metrics["run_id"],
        "time": metrics["started_at"],
        "dataset": metrics["dataset"],
        "data": cfg["data"],
        "model": metrics["model"],
        "pretrained_model_type": metrics["pretrained_model_type"],
        "pool_grid": cfg.get("pool_grid", 1),
        "d4": cfg.get("d4"),
        "classifier": metrics["classifier"],
        "classifier_params": metrics["classifier_params"],
        "train_sample_frac": metrics["sample_frac"]["train"],
        "test_sample_frac": metrics["sample_frac"]["test"],
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "per_class": {
            c["label"]: {k: c[k] for k in ("precision", "recall", "f1", "support")} for c in metrics["per_class"]
        },
        "n_train": counts["train"]["featurized"] + counts.get("val", {}).get("featurized", 0),
        "n_test": metrics["n"],
        "n_rejected": sum(c["rejected"] for c in counts.values() if isinstance(c, dict)),
        "seconds": metrics["seconds"],
        "images_per_s": counts["images_per_second"],  # None when features were cached
        "code_version": metrics["code_version"],
        "metrics_uri": metrics_uri,
        "tuning": metrics.get("tuning"),
    }


def append(storage: Storage, record: dict[str, Any]) -> None:
    """Appends ``record`` as one line of the index (whole, even with concurrent runs)."""
    storage.append_line(json.dumps(redact_obj(record), sort_keys=True), RUNS, INDEX)


def load(storage: Storage) -> list[dict[str, Any]]:
    if not storage.exists(RUNS, INDEX):
        return []
    text = storage.read_bytes(RUNS, INDEX).decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def find(records: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    """The run whose id is ``run_id`` or starts with it (a unique prefix is enough)."""
    hits = [r for r in records if r["run_id"].startswith(run_id)]
    if len(hits) != 1:
        raise StorageError(f"{len(hits)} runs match {run_id!r}")
    return hits[0]


def best(records: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    measured = [r for r in records if r[metric] is not None]
    if not measured:
        raise StorageError(f"no run has a {metric}")
    return max(measured, key=lambda r: r[metric])


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[_fmt(v) for v in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if v < 10 else f"{v:.1f}"
    return "-" if v is None else str(v)


LIST_COLUMNS = (
    "run_id",
    "dataset",
    "pretrained_model_type",
    "classifier",
    "train_sample_frac",
    "n_train",
    "n_test",
    "accuracy",
    "macro_f1",
    "images_per_s",
    "seconds",
)


def show(record: dict[str, Any]) -> str:
    head = table([(k, record[k]) for k in (*LIST_COLUMNS, "model", "time", "code_version", "metrics_uri")], ("", ""))
    params = ", ".join(f"{k}={v}" for k, v in sorted(record["classifier_params"].items()) if k in _TUNABLE)
    per = table(
        [(label, m["precision"], m["recall"], m["f1"], m["support"]) for label, m in record["per_class"].items()],
        ("class", "precision", "recall", "f1", "support"),
    )
    return f"{head}\nparameters: {params}\n\n{per}"


_TUNABLE = {"maxIter", "regParam", "elasticNetParam", "numTrees", "maxDepth", "stepSize", "seed"}


def compare(a: dict[str, Any], b: dict[str, Any]) -> str:
    rows = [(k, a[k], b[k]) for k in LIST_COLUMNS]
    labels = sorted(set(a["per_class"]) | set(b["per_class"]))
    rows += [
        (f"f1 {lab}", a["per_class"].get(lab, {}).get("f1"), b["per_class"].get(lab, {}).get("f1")) for lab in labels
    ]
    return table(rows, ("", "A", "B"))


def main(argv: list[str] | None = None) -> int:
    # --storage and --json go before or after the command (`runs list --json`, `runs --json list`).
    def common_flags(default: Any) -> argparse.ArgumentParser:
        flags = argparse.ArgumentParser(add_help=False)
        flags.add_argument("--storage", default=default or "data", help="storage root (default ./data)")
        flags.add_argument("--json", action="store_true", default=default or False, help="machine-readable output")
        return flags

    common = common_flags(argparse.SUPPRESS)  # after the command: set only when given
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common_flags(None)]
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", parents=[common], help="one line per run")
    sub.add_parser("show", parents=[common], help="one run whole").add_argument("run")
    cmp = sub.add_parser("compare", parents=[common], help="two runs side by side")
    cmp.add_argument("run_a")
    cmp.add_argument("run_b")
    best_p = sub.add_parser("best", parents=[common], help="the best run by a metric")
    best_p.add_argument("--metric", choices=METRICS, default="accuracy")
    args = p.parse_args(argv)
    try:
        records = load(open_storage(args.storage))
        if args.command == "list":
            out: Any = records
            text = table([[r[c] for c in LIST_COLUMNS] for r in records], LIST_COLUMNS)
        elif args.command == "show":
            out = find(records, args.run)
            text = show(out)
        elif args.command == "compare":
            out = [find(records, args.run_a), find(records, args.run_b)]
            text = compare(*out)
        else:
            out = best(records, args.metric)
            text = f"best by {args.metric}: {out['run_id']} ({out[args.metric]:.4f})\n\n{show(out)}"
    except StorageError as exc:
        print(f"runs: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
