"""Entry point: land-use change between two scene scoring runs of one model.

    landuse-change RUN_A RUN_B --output_model_name NAME [--storage ROOT]
    landuse-change --from 2009 --to 2020 --output_model_name NAME      # the runs by their scenes' dates

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

from jobs.config import add_summary_flag, plain
from jobs.storage import open_storage
from jobs.workflows import command
from jobs.workflows.change import change_runs

JOB = "change"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_summary_flag(p)
    p.add_argument("run_a", nargs="?", help="the earlier scoring run's id (or give --from)")
    p.add_argument("run_b", nargs="?", help="the later scoring run's id (or give --to)")
    p.add_argument("--from", dest="date_a", help="the earlier run by its scenes' date (2009, 2009-08-18) or id")
    p.add_argument("--to", dest="date_b", help="the later run by its scenes' date or id")
    p.add_argument("--output_model_name", "--model", dest="model", required=True, help="the model both runs used")
    p.add_argument("--storage", default="data")

    def go() -> dict[str, Any]:
        args = p.parse_args(argv)
        runs = [args.run_a or args.date_a, args.run_b or args.date_b]
        if (args.run_a and args.date_a) or (args.run_b and args.date_b) or not all(runs):
            p.error("give the two runs as RUN_A RUN_B or as --from A --to B")
        return change_runs(open_storage(args.storage), args.model, *runs)

    return command.run(JOB, go, argv)


if __name__ == "__main__":
    sys.exit(main())
