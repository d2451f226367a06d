"""Entry point: land-use change between two scene scoring runs of one model.

    landuse-change RUN_A RUN_B --output_model_name NAME [--storage ROOT]

Area per class at each date, the from → to matrix in hectares, and, when both runs were
assessed with ``landuse-assess --reference ndwi``, the water change with its 95 % interval
(see jobs/maps/change.py). Writes ``change.json`` and ``change.png`` (titled with the scenes'
dates) to ``changes/<model>/<run_a>__<run_b>/`` and prints one JSON line; the scoring runs'
warnings (e.g. imagery far from the training resolution) are carried into both.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jobs import cli
from jobs.maps.change import class_rasters, compare, picture, run_about, water_shares
from jobs.names import check_name
from jobs.storage import CHANGES, open_storage

JOB = "change"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_summary_flag(p)
    p.add_argument("run_a", help="the earlier scoring run's id")
    p.add_argument("run_b", help="the later scoring run's id")
    p.add_argument("--output_model_name", "--model", dest="model", required=True, help="the model both runs used")
    p.add_argument("--storage", default="data")

    def go() -> dict[str, Any]:
        args = p.parse_args(argv)
        for kind, value in (("model", args.model), ("run", args.run_a), ("run", args.run_b)):
            check_name(kind, value)
        storage = open_storage(args.storage)
        about = [run_about(storage, args.model, r) for r in (args.run_a, args.run_b)]
        result = compare(
            class_rasters(storage, args.model, args.run_a),
            class_rasters(storage, args.model, args.run_b),
            water_shares(storage, args.model, args.run_a),
            water_shares(storage, args.model, args.run_b),
        )
        dates = [", ".join(x.get("dates") or []) or None for x in about]
        names = [d or r for d, r in zip(dates, (args.run_a, args.run_b), strict=True)]
        warnings = sorted({w for x in about for w in x.get("warnings", [])})
        if result["water_check"] is None:
            warnings.append("no water check: run landuse-assess --reference ndwi on both runs first")
        result |= {"model": args.model, "run_a": args.run_a, "run_b": args.run_b, "dates": dates}
        result["warnings"] = warnings
        folder = (CHANGES, args.model, f"{args.run_a}__{args.run_b}")
        json_uri = storage.write_json(result, *folder, "change.json")
        png_uri = storage.write_bytes(picture(result, names[0], names[1]), *folder, "change.png")
        check = result["water_check"]
        return {
            "run_a": args.run_a,
            "run_b": args.run_b,
            "dates": dates,
            "compared_ha": result["compared_ha"],
            "changed_ha": result["changed_ha"],
            "net_water_change_ha": check["net_water_change_ha"] if check else None,
            "warnings": warnings,
            "change_uri": json_uri,
            "picture_uri": png_uri,
        }

    return cli.run(JOB, go, argv)


if __name__ == "__main__":
    sys.exit(main())
