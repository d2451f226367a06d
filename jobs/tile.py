"""Cuts large images (orthophotos) into square tiles whose names carry their grid position.

    python -m jobs.tile SOURCE.png [SOURCE.tif …] --out data/tiles --size 224

Tile ``<stem>_r<row>_c<col>.png`` covers pixels ``[row*size, (row+1)*size)`` down and
``[col*size, (col+1)*size)`` across of ``<stem>``; row 0, column 0 is the top-left corner.
Only whole tiles are cut: the strips along the right and bottom edges that are narrower than
one tile are left out, and the summary line says how many pixels that was.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jobs.config import plain
from jobs.datasets.tiles import cut_all


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", type=int, default=224)
    args = p.parse_args(argv)
    print(json.dumps({"out": str(args.out), **cut_all(args.sources, args.out, args.size)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
