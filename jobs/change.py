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

from jobs.config import add_summary_flag
from jobs.storage import open_storage
from jobs.workflows import command
from jobs.workflows.change import change_runs

JOB = "change"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_summary_flag(p)
    p.add_argument("run_a", help="the earlier scoring run's id")
    p.add_argument("run_b", help="the later scoring run's id")
    p.add_argument("--output_model_name", "--model", dest="model", required=True, help="the model both runs used")
    p.add_argument("--storage", default="data")

    def go() -> dict[str, Any]:
        args = p.parse_args(argv)
        return change_runs(open_storage(args.storage), args.model, args.run_a, args.run_b)

    return command.run(JOB, go, argv)


if __name__ == "__main__":
    sys.exit(main())
