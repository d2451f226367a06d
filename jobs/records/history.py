"""The run history: one record per training run in ``<storage>/runs/index.jsonl`` (written in the
same commit as the model it describes), and the views ``landuse-runs`` prints (jobs/runs.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from jobs.runtime.redact import redact_obj
from jobs.storage import RUNS, Storage, StorageError

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


def query(records: list[dict[str, Any]], command: str, runs: Sequence[str], metric: str) -> tuple[Any, str]:
    """What ``runs <command>`` shows: the records (for ``--json``) and their text."""
    if command == "list":
        return records, table([[r[c] for c in LIST_COLUMNS] for r in records], LIST_COLUMNS)
    if command == "show":
        one = find(records, runs[0])
        return one, show(one)
    if command == "compare":
        pair = [find(records, runs[0]), find(records, runs[1])]
        return pair, compare(*pair)
    top = best(records, metric)
    return top, f"best by {metric}: {top['run_id']} ({top[metric]:.4f})\n\n{show(top)}"
