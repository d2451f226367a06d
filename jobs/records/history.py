"""The run history: one record per run in ``<storage>/runs/index.jsonl``, and the views
``landuse-runs`` prints (jobs/runs.py).

Every kind of run is there (``kind``): ``train`` (written in the same commit as the model it
describes; records written before kinds existed are training runs), and ``score``, ``assess``
and ``change``, appended once their outputs are complete, with the ids and dates that
``landuse-change`` and ``landuse-assess`` need."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from jobs.runtime.provenance import new_run_id
from jobs.runtime.redact import redact_obj
from jobs.storage import MAPS, RUNS, Storage, StorageError

INDEX = "index.jsonl"
METRICS = ("accuracy", "macro_f1", "images_per_s")
PER_CLASS = ("precision", "recall", "f1", "support")


def summarize(metrics: dict[str, Any], metrics_uri: str) -> dict[str, Any]:
    """The index record of a run, from its full metrics.json."""
    cfg = metrics["config"]
    counts = metrics["counts"]
    return {
        "kind": "train",
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
        "calibration_ece": (metrics.get("calibration") or {}).get("ece"),  # None: no probabilities
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


KINDS = ("train", "score", "assess", "change")
# What a run of each other kind keeps from its summary.
FIELDS = {
    "score": (
        *("model_version", "source", "dates", "n_scenes", "n_tiles", "n_scored", "n_nodata", "n_rejected"),
        *("images_per_s", "confidence", "model_calibration_ece", "predictions_uri", "maps_uri", "warnings"),
    ),
    "assess": ("run", "reference", "dates", "n", "overall_accuracy", "assessment_uri", "warnings"),
    "change": ("run_a", "run_b", "dates", "compared_ha", "changed_ha", "net_water_change_ha", "change_uri", "warnings"),
}


def recorded(storage: Storage, kind: str, summary: dict[str, Any], started: float) -> dict[str, Any]:
    """``summary`` once its run is in the history, with :func:`record_run`'s warning if any."""
    warning = record_run(storage, kind, summary, started)
    if warning:
        summary["warnings"] = [*summary.get("warnings", []), warning]
    return summary


def record_run(storage: Storage, kind: str, summary: dict[str, Any], started: float) -> str | None:
    """Appends a score, assess or change run's record; a warning to report when it could not be
    written (the run's outputs are complete and stay: the history is a record of them)."""
    record = {
        "kind": kind,
        "run_id": summary.get("run_id") or new_run_id(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "model": summary["model"],
        "seconds": round(time.time() - started, 2),
    }
    record |= {k: summary[k] for k in FIELDS[kind] if k in summary}
    try:
        append(storage, record)
    except (OSError, StorageError) as exc:
        return f"the run history could not be appended to ({type(exc).__name__}): the outputs are complete"
    return None


def kind(record: dict[str, Any]) -> str:
    return record.get("kind", "train")


def select(records: list[dict[str, Any]], kind_: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
    """The records of one kind and/or one model."""
    return [r for r in records if (kind_ is None or kind(r) == kind_) and (model is None or r.get("model") == model)]


def by_date(records: list[dict[str, Any]], model: str, when: str) -> dict[str, Any]:
    """The scoring run of ``model`` whose scenes were taken on ``when`` (a year, month or day:
    ``2009``, ``2009-08``, ``2009-08-18``), or the run whose id is ``when``; the newest when
    several complete runs match a date, a one-line error when none does."""
    scored = select(records, "score", model)
    ids = [r for r in scored if r["run_id"].startswith(when)]
    if len(ids) == 1:
        return ids[0]
    dated = [r for r in scored if any(d.startswith(when) for d in r.get("dates") or [])]
    if not dated:
        seen = sorted({d for r in scored for d in r.get("dates") or []})
        raise StorageError(
            f"no scoring run of model {model!r} has scenes dated {when!r} or the id {when!r}"
            + (f": its runs' dates are {', '.join(seen)}" if seen else ": no dated scoring run in the history")
        )
    return dated[-1]


def resolve_run(storage: Storage, model: str, when: str) -> str:
    """A scoring run's id from ``when``: the id itself when that run's maps are there, else the
    run :func:`by_date` finds in the history (``2009``, ``2020-08-31``, an id prefix)."""
    if storage.exists(MAPS, model, when, "_SUCCESS"):
        return when
    return by_date(load(storage), model, when)["run_id"]


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
    measured = [r for r in select(records, "train") if r.get(metric) is not None]
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
    "kind",
    "model",
    "dataset",
    "pretrained_model_type",
    "classifier",
    "train_sample_frac",
    "n_train",
    "n_test",
    "accuracy",
    "macro_f1",
    "calibration_ece",
    "images_per_s",
    "seconds",
)
# `runs list` of scoring, assessment and change runs: what tells them apart. A scoring run's median
# probability, night after night, says when the imagery drifts from what the model knows.
OTHER_COLUMNS = (
    *("run_id", "kind", "model", "time", "dates", "n_scored", "median_probability", "overall_accuracy"),
    *("changed_ha", "seconds"),
)
DERIVED = {"median_probability": ("confidence", "median")}  # column: (field, key in it)


def _cell(record: dict[str, Any], key: str) -> Any:
    if key in DERIVED:
        field, inner = DERIVED[key]
        return (record.get(field) or {}).get(inner)
    value = kind(record) if key == "kind" else record.get(key)
    if isinstance(value, dict) and "value" in value:  # an estimate with its interval
        return value["value"]
    if isinstance(value, list):
        return ",".join(map(str, value)) or None
    return value


def show(record: dict[str, Any]) -> str:
    if kind(record) != "train":
        return table([(k, _cell(record, k)) for k in record], ("", ""))
    keys = (*LIST_COLUMNS, "time", "code_version", "metrics_uri")
    head = table([(k, _cell(record, k)) for k in keys], ("", ""))
    params = ", ".join(f"{k}={v}" for k, v in sorted(record["classifier_params"].items()) if k in _TUNABLE)
    per = table(
        [(label, m["precision"], m["recall"], m["f1"], m["support"]) for label, m in record["per_class"].items()],
        ("class", "precision", "recall", "f1", "support"),
    )
    return f"{head}\nparameters: {params}\n\n{per}"


_TUNABLE = {"maxIter", "regParam", "elasticNetParam", "numTrees", "maxDepth", "stepSize", "seed"}


def compare(a: dict[str, Any], b: dict[str, Any]) -> str:
    if kind(a) != "train" or kind(b) != "train":
        keys = [k for k in (*a, *b) if k not in ("per_class",)]
        return table([(k, _cell(a, k), _cell(b, k)) for k in dict.fromkeys(keys)], ("", "A", "B"))
    rows = [(k, _cell(a, k), _cell(b, k)) for k in LIST_COLUMNS]
    labels = sorted(set(a["per_class"]) | set(b["per_class"]))
    rows += [
        (f"f1 {lab}", a["per_class"].get(lab, {}).get("f1"), b["per_class"].get(lab, {}).get("f1")) for lab in labels
    ]
    return table(rows, ("", "A", "B"))


def query(records: list[dict[str, Any]], command: str, runs: Sequence[str], metric: str) -> tuple[Any, str]:
    """What ``runs <command>`` shows: the records (for ``--json``) and their text."""
    if command == "list":
        columns = LIST_COLUMNS if all(kind(r) == "train" for r in records) else OTHER_COLUMNS
        if columns is OTHER_COLUMNS and any(kind(r) == "train" for r in records):
            columns = (*OTHER_COLUMNS[:4], "pretrained_model_type", "accuracy", *OTHER_COLUMNS[4:])
        return records, table([[_cell(r, c) for c in columns] for r in records], columns)
    if command == "show":
        one = find(records, runs[0])
        return one, show(one)
    if command == "compare":
        pair = [find(records, runs[0]), find(records, runs[1])]
        return pair, compare(*pair)
    top = best(records, metric)
    return top, f"best by {metric}: {top['run_id']} ({top[metric]:.4f})\n\n{show(top)}"
