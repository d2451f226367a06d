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

from PIL import Image

# Orthophotos are legitimately large; a tile source is trusted input, unlike a tile to score.
Image.MAX_IMAGE_PIXELS = None


def tile_name(stem: str, row: int, col: int) -> str:
    return f"{stem}_r{row:03d}_c{col:03d}.png"


def cut(source: Path, out: Path, size: int) -> dict[str, int]:
    """Writes ``source``'s whole tiles into ``out``; returns counts for the summary."""
    with Image.open(source) as img:
        rgb = img.convert("RGB")
    rows, cols = rgb.height // size, rgb.width // size
    out.mkdir(parents=True, exist_ok=True)
    for r in range(rows):
        for c in range(cols):
            box = (c * size, r * size, (c + 1) * size, (r + 1) * size)
            rgb.crop(box).save(out / tile_name(source.stem, r, c))
    covered = rows * cols * size * size
    return {"tiles": rows * cols, "pixels_left_out": rgb.width * rgb.height - covered}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", type=int, default=224)
    args = p.parse_args(argv)
    totals = {"sources": 0, "tiles": 0, "pixels_left_out": 0}
    for source in args.sources:
        counts = cut(source, args.out, args.size)
        totals["sources"] += 1
        totals["tiles"] += counts["tiles"]
        totals["pixels_left_out"] += counts["pixels_left_out"]
    print(json.dumps({"out": str(args.out), **totals}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
