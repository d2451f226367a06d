"""The change workflow: two scoring runs' maps of the same ground compared, with the change's water
check against NDWI at both dates (jobs/maps/change.py), written to ``changes/<model>/<a>__<b>/``."""

from __future__ import annotations

from typing import Any

from jobs.maps.change import class_rasters, compare, picture, run_about, water_shares
from jobs.runtime.names import check_name
from jobs.storage import CHANGES, Storage


def change_runs(storage: Storage, model: str, run_a: str, run_b: str) -> dict[str, Any]:
    """``change.json`` and ``change.png`` of ``run_a`` -> ``run_b``; the summary line's fields."""
    for kind, value in (("model", model), ("run", run_a), ("run", run_b)):
        check_name(kind, value)
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
