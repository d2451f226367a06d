"""A scene's tile grid as geometry: each window's affine transform and footprint polygon.

Window (r, c) of a grid of ``tile`` pixels covers scene pixels ``[r*tile, (r+1)*tile)`` by
``[c*tile, (c+1)*tile)``; its transform is ``rasterio.windows.transform`` of that window, and a
grid raster with one pixel a window has the scene's transform composed with a scale by ``tile``.
No projection or geotransform arithmetic of our own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def scene_transform(gdal: Sequence[float]) -> Any:
    """The scene's affine transform from its GDAL-order geotransform (as scene tables keep it)."""
    from affine import Affine

    return Affine.from_gdal(*gdal)


def grid_transform(gdal: Sequence[float], tile: int) -> Any:
    """The transform of a raster with one pixel per window."""
    from affine import Affine

    return scene_transform(gdal) @ Affine.scale(int(tile))


def window_transform(gdal: Sequence[float], tile: int, row: int, col: int) -> Any:
    from rasterio.windows import Window
    from rasterio.windows import transform as of_window

    return of_window(Window(col * tile, row * tile, tile, tile), scene_transform(gdal))


def footprints(rows: Sequence[int], cols: Sequence[int], gdal: Sequence[float], tile: int) -> Any:
    """Window footprint polygons (shapely), in the scene's CRS."""
    import shapely

    rings = []
    for r, c in zip(rows, cols, strict=True):
        wt = window_transform(gdal, tile, int(r), int(c))
        rings.append([wt @ (0, 0), wt @ (tile, 0), wt @ (tile, tile), wt @ (0, tile), wt @ (0, 0)])
    return shapely.polygons(np.asarray(rings, dtype=np.float64).reshape(len(rings), 5, 2))
