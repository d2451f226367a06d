"""A land-cover raster's classes on scene windows: what ``landuse-label`` keeps, and why not.

For each window of a scene's grid (:mod:`jobs.scenes.windows`), the label raster (NLCD, CDL,
ESA WorldCover…, any CRS) is warped onto the window's own pixel grid by GDAL
(``rasterio.warp.reproject``, nearest neighbour), so every window pixel gets the code of the
label cell it lies in, whatever the two CRSs. Then, in this order:

* ``outside``: part of the window lies outside the label raster;
* ``nodata``: more than ``max_nodata`` of its label pixels are nodata (the raster's own nodata
  value, or the crosswalk's ``nodata`` codes);
* ``unmapped``: its most common code is one the crosswalk does not name;
* ``impure``: its majority class holds less than ``min_purity`` of its label pixels (nodata
  pixels left out; unmapped pixels counted, as a class of their own each);
* otherwise kept, with its majority class and purity.

Every window, kept or not, keeps its code histogram. Only the label cells under a window are
read (a window of the raster around the window's bounds in the raster's CRS).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from jobs.datasets import DatasetError
from jobs.datasets.landcover import Crosswalk
from jobs.storage import Reader, StorageError, open_storage

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

OUTSIDE = -1  # a window pixel with no label cell under it
REASONS = ("outside", "nodata", "unmapped", "impure")


class LabelRasterError(DatasetError):
    """A label raster that cannot serve as one: no CRS, several bands, or not class codes."""


@dataclass(frozen=True)
class WindowLabel:
    label: str | None  # the majority class of a kept window
    purity: float | None
    reason: str | None  # one of REASONS; None: kept
    codes: dict[int, int]  # label pixels per code (nodata codes included)
    detail: str | None = None  # e.g. the unmapped code

    def codes_json(self) -> str:
        return json.dumps({str(k): v for k, v in sorted(self.codes.items())})


_OPEN: OrderedDict[str, Any] = OrderedDict()


def open_labels(uri: str, reader: Reader) -> Any:
    """The label raster, kept open per Python worker (one or two per job)."""
    import rasterio

    ds = _OPEN.get(uri)
    if ds is not None and not ds.closed:
        return ds
    opener = reader.opener()
    ds = rasterio.open(uri, opener=opener) if opener is not None else rasterio.open(uri)
    _OPEN[uri] = ds
    while len(_OPEN) > 2:
        _OPEN.popitem(last=False)[1].close()
    return ds


def check_raster(ds: Any, uri: str) -> None:
    """Raises :class:`LabelRasterError` unless ``ds`` is one band of integer class codes with a CRS."""
    if ds.crs is None:
        raise LabelRasterError(f"label raster {uri} has no CRS: its classes cannot be placed on the scenes")
    if ds.count != 1:
        raise LabelRasterError(
            f"label raster {uri} has {ds.count} bands: a land-cover raster is one band of class codes "
            "(an RGB rendering of a map is not one)"
        )
    if not np.issubdtype(np.dtype(ds.dtypes[0]), np.integer):
        raise LabelRasterError(f"label raster {uri} holds {ds.dtypes[0]} values, not integer class codes")


def window_codes(ds: Any, scene_crs: Any, window_transform: Any, tile: int) -> np.ndarray:
    """The label codes under each pixel of a ``tile`` x ``tile`` window (int32; ``OUTSIDE`` where none)."""
    from rasterio.transform import array_bounds
    from rasterio.warp import Resampling, reproject, transform_bounds
    from rasterio.windows import Window, from_bounds

    west, south, east, north = array_bounds(tile, tile, window_transform)
    box = transform_bounds(scene_crs, ds.crs, west, south, east, north, densify_pts=21)
    need = from_bounds(*box, transform=ds.transform)
    margin = 2  # cells: rounding and the warper's own reach at the corners
    col0 = max(0, math.floor(need.col_off) - margin)
    row0 = max(0, math.floor(need.row_off) - margin)
    col1 = min(ds.width, math.ceil(need.col_off + need.width) + margin)
    row1 = min(ds.height, math.ceil(need.row_off + need.height) + margin)
    out = np.full((tile, tile), OUTSIDE, dtype=np.int32)
    if col1 <= col0 or row1 <= row0:  # wholly outside the raster
        return out
    part = Window(col0, row0, col1 - col0, row1 - row0)
    src = ds.read(1, window=part).astype(np.int32)
    reproject(
        src,
        out,
        src_transform=ds.window_transform(part),
        src_crs=ds.crs,
        src_nodata=None,  # every code is a code here; nodata is decided below, by value
        dst_transform=window_transform,
        dst_crs=scene_crs,
        dst_nodata=OUTSIDE,
        resampling=Resampling.nearest,
    )
    return out


def decide(
    codes: np.ndarray, crosswalk: Crosswalk, raster_nodata: float | None, min_purity: float, max_nodata: float
) -> WindowLabel:
    """A window's verdict from its label codes (see the module doc for the order of reasons)."""
    values, counts = np.unique(codes, return_counts=True)
    histogram = {int(v): int(n) for v, n in zip(values, counts, strict=True)}
    if OUTSIDE in histogram:
        return WindowLabel(None, None, "outside", histogram)
    nodata_codes = set(crosswalk.nodata) | ({int(raster_nodata)} if raster_nodata is not None else set())
    labelled = {c: n for c, n in histogram.items() if c not in nodata_codes}
    n_labelled = sum(labelled.values())
    if n_labelled == 0 or 1.0 - n_labelled / codes.size > max_nodata:
        return WindowLabel(None, None, "nodata", histogram)
    groups: dict[str, int] = {}
    for code, n in labelled.items():
        key = crosswalk.classes.get(code, f"unmapped:{code}")
        groups[key] = groups.get(key, 0) + n
    major = max(sorted(groups), key=lambda k: groups[k])  # ties: the first name, alphabetically
    if major.startswith("unmapped:"):
        return WindowLabel(None, None, "unmapped", histogram, major.split(":", 1)[1])
    purity = groups[major] / n_labelled
    if purity < min_purity:
        return WindowLabel(None, round(purity, 6), "impure", histogram)
    return WindowLabel(major, round(purity, 6), None, histogram)


def folder_name(label: str) -> str:
    """A class name as a folder name (``Shrub/Scrub`` → ``Shrub_Scrub``): what training reads back."""
    return "".join(ch if ch.isalnum() or ch in " -_.,()" else "_" for ch in label).strip(" .") or "class"


def open_label_raster(spec: str, spark: SparkSession) -> tuple[str, Reader, dict[str, Any]]:
    """The label raster's URI, the reader executors open it with, and its header (checked)."""
    from rasterio.errors import RasterioIOError

    parent, name = spec.rstrip("/").rsplit("/", 1) if "/" in spec else (".", spec)
    try:
        folder = open_storage(parent or "/", spark)
        if not folder.is_file(name):
            raise DatasetError(f"label raster not found: {spec}")
        uri, reader = folder.uri(name), folder.reader()
        ds = open_labels(uri, reader)
    except StorageError as exc:
        raise DatasetError(f"label raster {spec}: {exc}") from None
    except RasterioIOError as exc:
        raise LabelRasterError(f"label raster {spec} is not a raster GDAL reads: {str(exc)[:200]}") from None
    check_raster(ds, spec)
    return uri, reader, {"crs": ds.crs, "bounds": tuple(ds.bounds), "nodata": ds.nodata}
