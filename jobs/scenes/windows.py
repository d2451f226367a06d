"""Georeferenced scenes (GeoTIFF, Cloud-Optimized GeoTIFF, anything GDAL reads) → window rows.

``score.py --scenes URI`` takes a folder (every raster below it), a glob (``/data/naip/*.tif``)
or a text file with one scene URI a line; local paths and Azure Blob URIs. The driver only
streams scene URIs (as tile listings are); everything else happens on the executors:

1. **Headers** (one task per ~64 scenes): size, bands, data type, CRS, geotransform, nodata,
   ground resolution; the tile grid; for data that is not 8-bit, a per-scene stretch.
2. **Windows** (spread over tasks, ~64 a task, whatever the scene sizes): each executor opens
   its scenes itself (rasterio/GDAL; Blob through ranged reads of the blob, never a whole
   download), reads its windows, picks ``bands`` (default 1, 2, 3: NAIP's red, green, blue; its
   4th band is near-infrared), and hands the featurizer an 8-bit RGB image.

The grid: windows of ``tile_px`` pixels, row 0 / column 0 at the scene's top-left, covering the
whole scene; the last row and column may run past the scene's edge, and what lies outside reads
as nodata. ``tile_px`` is given, or comes from ``tile_m`` (metres) over the scene's ground
resolution (metres for projected CRSs, a geodesic distance on the scene's ellipsoid for
geographic ones, via pyproj). A window in which more than ``max_nodata`` of the pixels are
nodata (the scene's nodata value, its mask, NaN in a float scene, or outside the scene) is
rejected as ``nodata`` and never scored as land.

Values: 8-bit bands are used as they are. Other types (16-bit NAIP/Sentinel/Planet, float) are
stretched per scene and band, linearly from their 2nd to 98th percentile to 0..255 (computed
once per scene from an overview-sized read, ≤ 1024 px, nodata excluded), so every window of a
scene is scaled alike; ``value_range=(lo, hi)`` fixes the range instead. Single-band scenes
repeat their band as grey.

Scenes that cannot be scored keep a row with a reason: ``not_a_raster``, ``no_such_band``,
``read_error`` (after retries). A scene without a CRS is scored in pixel space: its footprints
and class raster carry the scene's own (pixel) geotransform and no CRS, and the run summary
counts it under ``scenes_without_crs``.
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import io
import math
import os
import posixpath
import re
import stat
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

from jobs.datasets import DatasetError
from jobs.datasets.folders import names_frame
from jobs.runtime.spark import parallelism, task_count
from jobs.scenes import stac
from jobs.storage import NotAFileError, Reader, Storage, StorageError, open_storage

SIDECARS = (".aux.xml", ".ovr", ".msk", ".tfw", ".prj", ".xml", ".qml", ".txt", ".md")
SCENES_PER_TASK = 64
WINDOWS_PER_TASK = 64  # short tasks: the images-done count (jobs.runtime.progress) moves as they end
STRETCH_PX = 1024  # longest side of the read that a scene's stretch is computed from
READ_TRIES = 3

SCENES = StructType(
    [
        StructField("scene_id", StringType(), False),
        StructField("scene_path", StringType(), False),
        StructField("width", IntegerType(), True),
        StructField("height", IntegerType(), True),
        StructField("band_count", IntegerType(), True),
        StructField("dtype", StringType(), True),
        StructField("crs", StringType(), True),  # WKT; null: pixel space
        StructField("transform", ArrayType(DoubleType()), True),  # GDAL order (c, a, b, f, d, e)
        StructField("res_m", DoubleType(), True),
        StructField("tile_px", IntegerType(), True),
        StructField("n_rows", IntegerType(), True),
        StructField("n_cols", IntegerType(), True),
        StructField("lo", ArrayType(DoubleType()), True),
        StructField("hi", ArrayType(DoubleType()), True),
        StructField("nodata", DoubleType(), True),
        StructField("date", StringType(), True),  # acquisition date, ISO (see acquired); null: unknown
        StructField("scene_reject", StringType(), True),
    ]
)
WINDOWS = StructType(
    [
        StructField("scene_id", StringType(), False),
        StructField("scene_path", StringType(), False),
        StructField("row", IntegerType(), False),
        StructField("col", IntegerType(), False),
    ]
)
_READ = StructType([StructField("image", BinaryType(), True), StructField("read_reject", StringType(), True)])


@dataclass(frozen=True)
class SceneOptions:
    """How windows are cut and read; shipped to executors."""

    bands: tuple[int, ...] = (1, 2, 3)
    tile_px: int | None = None
    tile_m: float | None = None
    max_nodata: float = 0.5
    value_range: tuple[float, float] | None = None
    out_px: int = 256  # windows larger than this are averaged down to it as they are read

    def check(self) -> SceneOptions:
        if (self.tile_px is None) == (self.tile_m is None):
            raise DatasetError("give the tile size either in pixels (tile_px) or in metres (tile_m)")
        if self.tile_px is not None and self.tile_px < 1:
            raise DatasetError(f"tile_px {self.tile_px} must be positive")
        if self.tile_m is not None and not self.tile_m > 0:
            raise DatasetError(f"tile_m {self.tile_m} must be positive")
        if len(self.bands) not in (1, 3) or min(self.bands) < 1:
            raise DatasetError(f"bands {self.bands}: give 3 band numbers (R,G,B) or 1 (grey), counting from 1")
        if not 0.0 <= self.max_nodata < 1.0:
            raise DatasetError(f"max_nodata {self.max_nodata} is not in [0, 1)")
        return self


# ---------------------------------------------------------------------------------- listing


def list_scenes(
    spark: SparkSession, spec: str, skipped: Counter[str] | None = None, asset: str = "image"
) -> tuple[DataFrame, Reader]:
    """``(path, scene_id)`` rows of the scenes ``spec`` names, and the reader executors open them with.

    ``spec``: a folder (recursively; GDAL sidecar files are not scenes), a glob in its last
    parts, a ``.txt``/``.lst`` file of URIs (one storage kind and account for all), a STAC
    Item / ItemCollection ``.json`` or a STAC API search URL (:mod:`jobs.scenes.stac`; its rows
    carry the items' ``date``).
    """
    if spec.endswith((".txt", ".lst")):
        return _from_list_file(spark, spec, skipped)
    if stac.is_stac(spec):
        found = stac.items(spec, asset, skipped)
        rows = pd.DataFrame([(h, scene_id(f"{i}.tif"), d) for h, i, d in found], columns=["path", "scene_id", "date"])
        parent = _parent(found[0][0])
        listed = spark.createDataFrame(rows, "path string, scene_id string, date string")
        return listed, _reader(open_storage(parent, spark))
    base, pattern = _split_glob(spec)
    if pattern is None and "/" in spec.rstrip("/"):  # one scene file?
        parent, name = spec.rstrip("/").rsplit("/", 1)
        folder = open_storage(parent or "/", spark)
        if folder.is_file(name):
            one = iter([(folder.uri(name), scene_id(name))])
            return names_frame(spark, one).withColumnRenamed("label", "scene_id"), _reader(folder)
    location = open_storage(base, spark)

    def files() -> Iterator[tuple[str, str]]:
        try:
            for rel in location.iter_files(skipped=skipped):
                if rel.lower().endswith(SIDECARS) or (pattern and not fnmatch.fnmatch(rel, pattern)):
                    continue
                yield location.uri(*rel.split("/")), scene_id(rel)
        except StorageError as exc:
            raise DatasetError(f"scenes: {exc}") from None

    return names_frame(spark, files()).withColumnRenamed("label", "scene_id"), _reader(location)


def _parent(href: str) -> str:
    """The folder of an asset's href, keeping its query (a signed URL's SAS token grants the folder)."""
    url = urlparse(href)
    if "/" not in url.path:
        return "."
    return url._replace(path=url.path.rsplit("/", 1)[0] or "/").geturl()


def _split_glob(spec: str) -> tuple[str, str | None]:
    parts = spec.rstrip("/").split("/")
    first = next((i for i, p in enumerate(parts) if any(ch in p for ch in "*?[")), None)
    if first is None:
        return spec, None
    return "/".join(parts[:first]) or ".", "/".join(parts[first:])


def _from_list_file(spark: SparkSession, spec: str, skipped: Counter[str] | None) -> tuple[DataFrame, Reader]:
    """The scenes a list file names, each file once: URIs normalized (``/a//b/./x.tif`` is
    ``/a/b/x.tif``), relative paths resolved against the list's own folder, and a scene named
    again counted as skipped (``duplicate``)."""
    try:
        with open(spec, encoding="utf-8") as f:
            uris = [_normalized(line.strip(), spec) for line in f if line.strip() and not line.startswith("#")]
    except OSError as exc:
        raise DatasetError(f"scene list {spec}: {exc.strerror}") from None
    if not uris:
        raise DatasetError(f"scene list {spec} names no scene")
    unique = list(dict.fromkeys(uris))
    if skipped is not None and len(unique) < len(uris):
        skipped["duplicate"] += len(uris) - len(unique)
    first = unique[0]
    parent = first.rsplit("/", 1)[0] if "/" in first else "."
    reader = _reader(open_storage(parent, spark))
    # Names from a list may repeat in other folders: the URI's hash keeps them apart.
    rows = (
        (uri, f"{scene_id(uri.rsplit('/', 1)[-1])}-{hashlib.sha256(uri.encode()).hexdigest()[:8]}") for uri in unique
    )
    return names_frame(spark, rows).withColumnRenamed("label", "scene_id"), reader


def _normalized(uri: str, list_file: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme and len(parsed.scheme) > 1:  # a URI (a one-letter scheme is a Windows drive)
        return parsed._replace(path=posixpath.normpath(parsed.path) if parsed.path else "").geturl()
    if not os.path.isabs(uri):
        uri = os.path.join(os.path.dirname(os.path.abspath(list_file)), uri)
    return os.path.normpath(uri)


def _reader(location: Storage) -> Reader:
    try:
        return location.reader()
    except StorageError as exc:
        raise DatasetError(f"scenes: {exc}") from None


def scene_id(relative: str) -> str:
    """A scene's name in outputs: its path below the listed folder, less the extension, with
    folders joined by ``__`` and anything but letters, digits, ``-``, ``_``, ``.`` as ``_``.

    Unique per input: where that name does not spell the path back (another extension than
    ``.tif``, characters replaced, ``__`` in a folder or file name), a hash of the path is added,
    so ``twin a.tif`` and ``twin_a.tif``, or ``x.tif`` and ``x.tiff``, never share a map."""
    readable, spelt_back = _readable(relative)
    return readable if spelt_back else f"{readable}-{_short_hash(relative)}"


def _readable(relative: str) -> tuple[str, bool]:
    """The readable name, and whether it spells ``relative`` back exactly."""
    stem = relative.rsplit(".", 1)[0] if "." in relative.rsplit("/", 1)[-1] else relative
    parts = [p for p in stem.split("/") if p]
    text = "__".join(parts)
    readable = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text).strip(".") or "scene"
    return readable, readable == text and not any("__" in p for p in parts) and relative == "/".join(parts) + ".tif"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


# ------------------------------------------------------------------------- opening rasters

_OPEN: OrderedDict[str, Any] = OrderedDict()  # per Python worker: the few scenes it reads now
_OPEN_MAX = 8


def open_scene(path: str, reader: Reader) -> Any:
    """A rasterio dataset for ``path``, kept open in this worker while it reads that scene."""
    import rasterio

    ds = _OPEN.get(path)
    if ds is not None and not ds.closed:
        _OPEN.move_to_end(path)
        return ds
    opener = reader.opener()
    if opener is None and os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        raise NotAFileError(f"not a regular file: {path}")  # GDAL would block on a FIFO
    ds = rasterio.open(path, opener=opener) if opener is not None else rasterio.open(path)
    _OPEN[path] = ds
    while len(_OPEN) > _OPEN_MAX:
        _OPEN.popitem(last=False)[1].close()
    return ds


def _forget(path: str) -> None:
    ds = _OPEN.pop(path, None)
    if ds is not None:
        ds.close()


# --------------------------------------------------------------------------------- headers


def ground_resolution_m(ds: Any) -> float | None:
    """Metres per pixel along a row at the scene's centre; None without a CRS."""
    if ds.crs is None:
        return None
    if ds.crs.is_geographic:
        from pyproj import CRS, Geod

        geod = CRS.from_wkt(ds.crs.to_wkt()).get_geod() or Geod(ellps="WGS84")
        x0, y0 = ds.xy(ds.height // 2, ds.width // 2, offset="ul")
        x1, y1 = ds.xy(ds.height // 2, ds.width // 2 + 1, offset="ul")
        return float(geod.inv(x0, y0, x1, y1)[2])
    _, factor = ds.crs.linear_units_factor
    return float(math.hypot(ds.transform.a, ds.transform.d) * factor)


def header(path: str, sid: str, reader: Reader, opts: SceneOptions) -> dict[str, Any]:
    """One ``SCENES`` row: the scene's header and grid, or a ``scene_reject``."""
    from rasterio.errors import RasterioIOError

    row: dict[str, Any] = {f.name: None for f in SCENES.fields} | {"scene_id": sid, "scene_path": path}
    try:
        ds = open_scene(path, reader)
    except (RasterioIOError, OSError, StorageError) as exc:  # OSError: fsspec and file openers
        return row | {"scene_reject": f"not_a_raster: {_short(exc)}"}
    missing = [b for b in opts.bands if b > ds.count]
    if missing:
        return row | {"scene_reject": f"no_such_band: band {missing[0]} asked for, the scene has {ds.count}"}
    res = ground_resolution_m(ds)
    if opts.tile_px is not None:
        tile = opts.tile_px
    elif res is None:
        return row | {"scene_reject": "no_crs: a tile size in metres needs a CRS; give tile_px"}
    elif opts.tile_m < res:  # a window of less than a pixel: as many windows as pixels, each blank
        return row | {"scene_reject": f"tile_too_small: a {opts.tile_m:g} m window is less than one {res:g} m pixel"}
    else:
        tile = max(1, round(opts.tile_m / res))
    row |= {
        "width": ds.width,
        "height": ds.height,
        "band_count": ds.count,
        "dtype": ds.dtypes[opts.bands[0] - 1],
        "crs": ds.crs.to_wkt() if ds.crs else None,
        "transform": list(ds.transform.to_gdal()),
        "res_m": res,
        "tile_px": tile,
        "n_rows": -(-ds.height // tile),
        "n_cols": -(-ds.width // tile),
        "nodata": ds.nodata,
        "date": acquired(ds.tags(), path),
    }
    try:
        lo, hi = stretch(ds, opts)
    except RasterioIOError as exc:
        return row | {"scene_reject": f"read_error: {_short(exc)}"}
    return row | {"lo": lo, "hi": hi}


DATE_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})(?!\d)")


def acquired(tags: dict[str, str], path: str) -> str | None:
    """The scene's acquisition date (``YYYY-MM-DD``): a ``YYYYMMDD`` in its file name (NAIP's
    ``m_…_20200831.tif``), else its TIFF ``DATETIME`` tag (often when the file was made, so
    second); None when neither is a date."""
    stamp = tags.get("TIFFTAG_DATETIME", "")
    candidates = [path.rsplit("/", 1)[-1]] + ([stamp[:10].replace(":", "")] if len(stamp) >= 10 else [])
    for text in candidates:
        match = DATE_IN_NAME.search(text)
        if match:
            try:
                return datetime.date(*map(int, match.groups())).isoformat()
            except ValueError:
                continue
    return None


def stretch(ds: Any, opts: SceneOptions) -> tuple[list[float], list[float]]:
    """Per band, the values mapped to 0 and 255 (see the module doc)."""
    n = len(opts.bands)
    if opts.value_range is not None:
        return [opts.value_range[0]] * n, [opts.value_range[1]] * n
    if ds.dtypes[opts.bands[0] - 1] == "uint8":
        return [0.0] * n, [255.0] * n
    scale = max(1.0, max(ds.width, ds.height) / STRETCH_PX)
    shape = (n, max(1, int(ds.height / scale)), max(1, int(ds.width / scale)))
    data = ds.read(list(opts.bands), out_shape=shape, masked=True)
    lo, hi = [], []
    for band in data:
        valid = band.compressed()
        valid = valid[np.isfinite(valid)]  # NaN is nodata, declared or not
        a, b = np.percentile(valid, [2, 98]) if valid.size else (0.0, 1.0)
        lo.append(float(a))
        hi.append(float(b) if b > a else float(a) + 1.0)
    return lo, hi


def scene_table(spark: SparkSession, listed: DataFrame, reader: Reader, opts: SceneOptions) -> DataFrame:
    """Headers of the listed scenes, read on the executors (one ``SCENES`` row per scene)."""

    def read(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from featurizers.image_featurizer import task_started

        task_started()
        for batch in batches:
            rows = [header(p, s, reader, opts) for p, s in zip(batch["path"], batch["scene_id"], strict=True)]
            if "date" in batch:  # the listing knows the acquisition date (a STAC item's datetime)
                rows = [r | {"date": d} if d else r for r, d in zip(rows, batch["date"], strict=True)]
            yield pd.DataFrame(rows, columns=SCENES.fieldNames())

    n = max(1, parallelism(spark))
    return listed.repartition(n).mapInPandas(read, SCENES)


# --------------------------------------------------------------------------------- windows


def window_table(scenes: DataFrame, n_windows: int) -> DataFrame:
    """One ``WINDOWS`` row per window of every scene that has a grid, spread over tasks."""
    grid = (
        scenes.where(F.col("scene_reject").isNull())
        .select(
            "scene_id",
            "scene_path",
            F.explode(F.sequence(F.lit(0), F.col("n_rows") - 1)).alias("row"),
            "n_cols",
        )
        .select("scene_id", "scene_path", "row", F.explode(F.sequence(F.lit(0), F.col("n_cols") - 1)).alias("col"))
    )
    return grid.repartition(task_count(scenes.sparkSession, n_windows, WINDOWS_PER_TASK))


def window_reader(reader: Reader, opts: SceneOptions) -> Any:
    """A pandas UDF: (scene_path, row, col, tile_px, lo, hi, nodata) → struct(image, read_reject).

    The image is an 8-bit RGB PPM (cheap to write and to decode); a rejected window has none.
    """

    @F.pandas_udf(_READ)  # type: ignore[call-overload]
    def read(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from featurizers.image_featurizer import task_started

        task_started()
        for batch in batches:
            images, reasons = [], []
            for r in batch.itertuples(index=False):
                image, reason = read_window(r.scene_path, r.row, r.col, r.tile_px, r.lo, r.hi, reader, opts)
                images.append(image)
                reasons.append(reason)
            yield pd.DataFrame({"image": images, "read_reject": reasons})

    return read


def read_window(
    path: str, row: int, col: int, tile: int, lo: Any, hi: Any, reader: Reader, opts: SceneOptions
) -> tuple[bytes | None, str | None]:
    """One window as PPM bytes, or ``(None, reason)``; transient read failures are retried."""
    rgb, reason = read_window_rgb(path, row, col, tile, lo, hi, reader, opts)
    return (None, reason) if rgb is None else (ppm_bytes(rgb), None)


def read_window_rgb(
    path: str, row: int, col: int, tile: int, lo: Any, hi: Any, reader: Reader, opts: SceneOptions
) -> tuple[np.ndarray | None, str | None]:
    """One window as an HWC uint8 RGB array (at most ``out_px`` a side), or ``(None, reason)``."""
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioIOError
    from rasterio.windows import Window

    size = min(tile, opts.out_px)
    window = Window(col * tile, row * tile, tile, tile)
    for attempt in range(READ_TRIES):
        try:
            ds = open_scene(path, reader)
            # Only edge windows run past the scene; GDAL's boundless read costs several times more.
            boundless = (col + 1) * tile > ds.width or (row + 1) * tile > ds.height
            # The mask first, sampled (cheap): a window that is mostly nodata (collars, sparse
            # tiles, outside the scene) is rejected without reading its pixels.
            masks = [ds.read_masks(b, window=window, out_shape=(size, size), boundless=boundless) for b in opts.bands]
            valid = np.logical_and.reduce([m > 0 for m in masks])
            share = 1.0 - float(valid.mean())
            if share > opts.max_nodata:
                return None, f"nodata: {share:.0%} of the window"
            data = ds.read(
                list(opts.bands),
                window=window,
                out_shape=(len(opts.bands), size, size),
                resampling=Resampling.average if size < tile else Resampling.nearest,
                boundless=boundless,
                masked=True,
            )
            break
        except (RasterioIOError, OSError, StorageError) as exc:
            _forget(path)  # a broken handle is not reused
            if attempt == READ_TRIES - 1:
                return None, f"read_error: {_short(exc)}"
            time.sleep(0.5 * 2**attempt)
    mask = np.ma.getmaskarray(data).any(axis=0)
    if data.dtype.kind == "f":  # NaN (and inf) are nodata even where the scene declares none
        mask |= ~np.isfinite(np.ma.getdata(data)).all(axis=0)
        share = float(mask.mean())
        if share > opts.max_nodata:
            return None, f"nodata: {share:.0%} of the window"
    lo_, hi_ = np.asarray(lo, np.float32)[:, None, None], np.asarray(hi, np.float32)[:, None, None]
    scaled = (np.ma.getdata(data).astype(np.float32) - lo_) * (255.0 / (hi_ - lo_))
    rgb = np.clip(scaled, 0, 255).astype(np.uint8)
    rgb[:, mask] = 0
    if rgb.shape[0] == 1:
        rgb = np.repeat(rgb, 3, axis=0)
    return rgb.transpose(1, 2, 0), None


def ppm_bytes(rgb: np.ndarray) -> bytes:
    """HWC uint8 RGB as binary PPM (P6), which Pillow decodes without a codec."""
    h, w, _ = rgb.shape
    out = io.BytesIO()
    out.write(f"P6 {w} {h} 255\n".encode())
    out.write(np.ascontiguousarray(rgb).tobytes())
    return out.getvalue()


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
