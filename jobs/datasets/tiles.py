"""Tiles cut from large untiled images (orthophotos), named by their grid position (see jobs/tile.py)."""

from __future__ import annotations

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


def cut_all(sources: list[Path], out: Path, size: int) -> dict[str, int]:
    """:func:`cut` over every source; the summed counts."""
    totals = {"sources": 0, "tiles": 0, "pixels_left_out": 0}
    for source in sources:
        counts = cut(source, out, size)
        totals["sources"] += 1
        totals["tiles"] += counts["tiles"]
        totals["pixels_left_out"] += counts["pixels_left_out"]
    return totals
