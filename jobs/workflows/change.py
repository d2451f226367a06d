"""The change workflow: two scoring runs' maps of the same ground compared, with the change's water
check against NDWI at both dates (jobs/maps/change.py), written to ``changes/<model>/<a>__<b>/``."""

from __future__ import annotations

import time
from typing import Any

from jobs.maps.change import class_rasters, compare, picture, run_about, water_shares
from jobs.records import history
from jobs.runtime.names import check_name
from jobs.runtime.spark import say
from jobs.storage import CHANGES, Storage


def change_runs(storage: Storage, model: str, run_a: str, run_b: str) -> dict[str, Any]:
    """``change.json`` and ``change.png`` of ``run_a`` -> ``run_b`` (ids, or the dates of their
    scenes: ``2009``, ``2020-08-31``); the summary line's fields, also recorded in the history."""
    started = time.time()
    for kind, value in (("model", model), ("run", run_a), ("run", run_b)):
        check_name(kind, value)
    run_a, run_b = (history.resolve_run(storage, model, r) for r in (run_a, run_b))
    if run_a == run_b:
        say("change", f"both dates name run {run_a}: the change of a run with itself is none")
    return history.recorded(storage, "change", _change(storage, model, run_a, run_b), started)


def _change(storage: Storage, model: str, run_a: str, run_b: str) -> dict[str, Any]:
    about = [run_about(storage, model, r) for r in (run_a, run_b)]
    result = compare(
        class_rasters(storage, model, run_a),
        class_rasters(storage, model, run_b),
        water_shares(storage, model, run_a),
        water_shares(storage, model, run_b),
    )
    dates = [", ".join(x.get("dates") or []) or None for x in about]
    names = [d or r for d, r in zip(dates, (run_a, run_b), strict=True)]
    warnings = sorted({w for x in about for w in x.get("warnings", [])})
    if result["water_check"] is None:
        warnings.append("no water check: run landuse-assess --reference ndwi on both runs first")
    result |= {"model": model, "run_a": run_a, "run_b": run_b, "dates": dates}
    result["warnings"] = warnings
    folder = (CHANGES, model, f"{run_a}__{run_b}")
    json_uri = storage.write_json(result, *folder, "change.json")
    png_uri = storage.write_bytes(picture(result, names[0], names[1]), *folder, "change.png")
    check = result["water_check"]
    return {
        "model": model,
        "run_a": run_a,
        "run_b": run_b,
        "dates": dates,
        "compared_ha": result["compared_ha"],
        "changed_ha": result["changed_ha"],
        "net_water_change_ha": check["net_water_change_ha"] if check else None,
        "warnings": warnings,
        "change_uri": json_uri,
        "picture_uri": png_uri,
    }
