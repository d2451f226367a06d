"""What a map is checked against, window by window: the reference class of each map window.

* ``ndwi``: water from the scene itself, for scenes with a near-infrared band. NDWI =
  (green − NIR) / (green + NIR) (McFeeters, "The use of the Normalized Difference Water Index
  (NDWI) in the delineation of open water features", IJRS 17(7), 1996); a pixel is water where
  NDWI > 0. A window's reference is ``water`` when at least ``water_share`` (half) of its valid
  pixels are water, else ``not water``; its water share is kept too.
* a land-cover raster with a crosswalk: the window's majority class, the label raster warped onto
  the window's pixels as ``landuse-label`` does (:mod:`jobs.scenes.labels`, no purity asked).
* a table of labelled points (:func:`points_reference`): each point's class, on the window it
  falls in.

The map's classes collapse to water / not water for ``ndwi``, through ``water_classes``
(names that mean water by default: :func:`jobs.maps.palette.is_water`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from jobs.datasets.landcover import Crosswalk
from jobs.scenes import grids, labels
from jobs.scenes.windows import open_scene
from jobs.storage import Reader

WATER, LAND = "water", "not water"
NDWI_WATER_SHARE = 0.5  # a window is water when at least this share of it is
ALMOST_DRY = 0.05  # a window with less water than this is "almost no water"
WINDOWS = "scene_id string, row int, col int, map_label string, reference string, water_share double, valid double"


def ndwi_water(green: np.ndarray, nir: np.ndarray, valid: np.ndarray) -> np.ndarray:
    g, n = green.astype(np.float64), nir.astype(np.float64)
    total = g + n
    with np.errstate(invalid="ignore", divide="ignore"):
        ndwi = np.where(total > 0, (g - n) / np.where(total > 0, total, 1.0), 0.0)
    return (ndwi > 0) & valid


def ndwi_reference(reader: Reader, green_band: int, nir_band: int, water_share: float = NDWI_WATER_SHARE) -> Any:
    """The function ``groupBy("scene_id").applyInPandas`` runs: one scene's windows → ``WINDOWS`` rows."""

    def run(windows: pd.DataFrame) -> pd.DataFrame:
        from rasterio.windows import Window

        first = windows.iloc[0]
        ds = open_scene(first["scene_path"], reader)
        tile = int(first["tile_px"])
        if max(green_band, nir_band) > ds.count:
            raise ValueError(f"{first['scene_path']}: NDWI needs bands {green_band} and {nir_band}, it has {ds.count}")
        shares, valids = [], []
        for r, c in zip(windows["row"], windows["col"], strict=True):
            window = Window(int(c) * tile, int(r) * tile, tile, tile)
            data = ds.read([green_band, nir_band], window=window, boundless=True, masked=True)
            valid = ~np.ma.getmaskarray(data).any(axis=0)
            water = ndwi_water(np.ma.getdata(data[0]), np.ma.getdata(data[1]), valid)
            n_valid = int(valid.sum())
            shares.append(float(water.sum()) / n_valid if n_valid else np.nan)
            valids.append(n_valid / float(tile * tile))
        share = np.asarray(shares)
        return pd.DataFrame(
            {
                "scene_id": windows["scene_id"],
                "row": windows["row"],
                "col": windows["col"],
                "map_label": windows["map_label"],
                "reference": np.where(np.isnan(share), None, np.where(share >= water_share, WATER, LAND)),
                "water_share": share,
                "valid": valids,
            }
        )

    return run


def raster_reference(label_uri: str, label_reader: Reader, crosswalk: Crosswalk) -> Any:
    """Like :func:`ndwi_reference`, from a land-cover raster: each window's majority class."""

    def run(windows: pd.DataFrame) -> pd.DataFrame:
        from rasterio.crs import CRS

        first = windows.iloc[0]
        ds = labels.open_labels(label_uri, label_reader)
        tile, crs = int(first["tile_px"]), CRS.from_wkt(first["crs"])
        refs = []
        for r, c in zip(windows["row"], windows["col"], strict=True):
            codes = labels.window_codes(ds, crs, grids.window_transform(first["transform"], tile, int(r), int(c)), tile)
            refs.append(labels.decide(codes, crosswalk, ds.nodata, 0.0, 0.5).label)
        return pd.DataFrame(
            {
                "scene_id": windows["scene_id"],
                "row": windows["row"],
                "col": windows["col"],
                "map_label": windows["map_label"],
                "reference": refs,
                "water_share": np.nan,
                "valid": 1.0,
            }
        )

    return run


def points_reference(points: pd.DataFrame, scenes: Sequence[dict[str, Any]]) -> Iterator[tuple[str, int, int, str]]:
    """``(scene_id, row, col, class)`` for each labelled point (columns ``x``, ``y``, ``crs``,
    ``class``) that falls on a scene's grid; points are moved into each scene's CRS by GDAL."""
    from rasterio.crs import CRS
    from rasterio.warp import transform

    for s in scenes:
        if not s["crs"]:
            continue
        crs = CRS.from_wkt(s["crs"])
        inverse = ~grids.scene_transform(s["transform"])
        tile = int(s["tile_px"])
        for point_crs, group in points.groupby("crs"):
            xs, ys = transform(CRS.from_user_input(point_crs), crs, group["x"].tolist(), group["y"].tolist())
            for x, y, cls in zip(xs, ys, group["class"], strict=True):
                col_px, row_px = inverse @ (x, y)
                if 0 <= col_px < int(s["width"]) and 0 <= row_px < int(s["height"]):
                    yield str(s["scene_id"]), int(row_px // tile), int(col_px // tile), str(cls)
