"""Land-use maps of scored scenes, written by the executors, one set of files per scene.

Under ``maps/<model>/<run_id>/``:

* ``<scene>.parquet``: GeoParquet 1.0 (geopandas/pyarrow), one row per window: its footprint
  polygon in the scene's CRS (the ``geo`` metadata carries the CRS as PROJJSON; null for a
  scene without one), ``scene``, ``row``, ``col``, ``predicted_label`` (as in the prediction
  table, where ``label`` is the truth), ``probability``, ``top_k`` (JSON
  text, which every reader shows), ``reject_reason``. geopandas, DuckDB spatial and QGIS open it
  as is. One file a scene, because GeoParquet has one CRS per column and scenes may differ.
* ``<scene>.tif``: the class raster, one pixel per window, in the scene's CRS; its geotransform
  is the scene's composed with a scale by the tile size (affine), so pixel (r, c) covers exactly
  window (r, c) and the map overlays the scene in QGIS. Values index the model's labels
  (alphabetical), 255 is nodata (rejected windows); a colour table, the class names in the
  metadata (``CLASS_<i>``), and ``<scene>.qml`` beside it, the QGIS style QGIS loads by itself
  (palette with the class names).
* ``confidence/<scene>.tif``: how sure the map is, on the same grid: each window's probability
  of its own prediction (before any smoothing), float32, NaN where no window was scored or the
  model gives no probabilities. How far those probabilities can be taken at their word on the
  training imagery: the run record's ``calibration``; on the scene: ``landuse-assess``'s
  ``by_confidence``.
* ``<scene>.png``: a quick look: true colour, the land-use map with a legend, and how sure.

Footprint corners and the class raster's geotransform come from ``rasterio.windows.transform``
and the scene's affine transform: no projection or geotransform arithmetic of our own.
"""

from __future__ import annotations

import io
import json
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

from jobs.maps import figures
from jobs.maps.palette import palette
from jobs.scenes import grids
from jobs.scenes.windows import SceneOptions, open_scene
from jobs.storage import Reader

NODATA = 255
CONFIDENCE = "confidence"  # a folder of its own: no scene's name can collide with a class raster's
SUMMARY = "scene string, windows long, scored long, nodata long, rejected long, class_counts string"


def geoparquet(windows: pd.DataFrame, scene: pd.Series) -> bytes:
    import geopandas as gpd

    table = pd.DataFrame(
        {
            "scene": windows["scene_id"],
            "row": windows["row"].astype("int32"),
            "col": windows["col"].astype("int32"),
            "predicted_label": windows["map_label"],
            "probability": windows["probability"],
            "top_k": windows["top_k"],
            "reject_reason": windows["reject_reason"],
        }
    )
    geometry = grids.footprints(windows["row"], windows["col"], scene["transform"], int(scene["tile_px"]))
    frame = gpd.GeoDataFrame(table, geometry=geometry, crs=scene["crs"] or None)
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def class_grid(windows: pd.DataFrame, scene: pd.Series, labels: list[str]) -> np.ndarray:
    grid = np.full((int(scene["n_rows"]), int(scene["n_cols"])), NODATA, dtype=np.uint8)
    index = {lab: i for i, lab in enumerate(labels)}
    scored = windows[windows["map_label"].notna()]
    grid[scored["row"].to_numpy(), scored["col"].to_numpy()] = [index[x] for x in scored["map_label"]]
    return grid


def value_grid(windows: pd.DataFrame, scene: pd.Series, column: str) -> np.ndarray:
    """One float per window on the scene's window grid (``column``: a probability, a water
    share), NaN where no window has one."""
    grid = np.full((int(scene["n_rows"]), int(scene["n_cols"])), np.nan, dtype=np.float32)
    known = windows[windows[column].notna()]
    grid[known["row"].to_numpy(), known["col"].to_numpy()] = known[column].to_numpy(np.float32)
    return grid


def grid_profile(grid: np.ndarray, scene: pd.Series, nodata: float) -> dict[str, Any]:
    """A one-band GeoTIFF on the scene's window grid: pixel (r, c) is window (r, c)."""
    return {
        "driver": "GTiff",
        "width": grid.shape[1],
        "height": grid.shape[0],
        "count": 1,
        "dtype": str(grid.dtype),
        "crs": scene["crs"] or None,
        "transform": grids.grid_transform(scene["transform"], int(scene["tile_px"])),
        "nodata": nodata,
        "compress": "deflate",
    }


def confidence_raster(grid: np.ndarray, scene: pd.Series) -> bytes:
    from rasterio.io import MemoryFile

    with MemoryFile() as mem:
        with mem.open(**grid_profile(grid, scene, np.nan)) as dst:
            dst.write(grid, 1)
            dst.set_band_description(1, "probability of each window's prediction (0-1)")
        return cloud_optimized(mem)


def class_raster(grid: np.ndarray, scene: pd.Series, labels: list[str], colours: dict[str, Any]) -> bytes:
    from rasterio.io import MemoryFile

    with MemoryFile() as mem:
        with mem.open(**grid_profile(grid, scene, NODATA)) as dst:
            dst.write(grid, 1)
            dst.write_colormap(1, {i: (*colours[lab], 255) for i, lab in enumerate(labels)} | {NODATA: (0, 0, 0, 0)})
            dst.set_band_description(1, "land use (index into CLASS_NAMES)")
            dst.update_tags(CLASS_NAMES=json.dumps(labels), **{f"CLASS_{i}": lab for i, lab in enumerate(labels)})
        return cloud_optimized(mem)


def cloud_optimized(mem: Any) -> bytes:
    """A Cloud-Optimized GeoTIFF copy of a GeoTIFF in memory (GDAL's COG driver: 256 px tiles,
    nearest-neighbour overviews where the raster is larger than a tile), so QGIS and GDAL read
    a county's map from Blob Storage by ranges, not whole."""
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy

    with mem.open() as src, MemoryFile() as out:
        copy(src, out.name, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=256, OVERVIEW_RESAMPLING="NEAREST")
        return bytes(out.read())


def qgis_style(labels: list[str], colours: dict[str, Any]) -> bytes:
    """A QGIS layer style (``.qml``): a paletted renderer naming each class."""
    entries = "\n".join(
        f'        <paletteEntry value="{i}" color="#{"".join(f"{v:02x}" for v in colours[lab])}" '
        f'alpha="255" label="{escape(lab)}"/>'
        for i, lab in enumerate(labels)
    )
    return (
        '<!DOCTYPE qgis PUBLIC "http://mrcc.com/qgis.dtd" "SYSTEM">\n<qgis version="3.28">\n  <pipe>\n'
        '    <rasterrenderer type="paletted" band="1" opacity="1">\n      <colorPalette>\n'
        f"{entries}\n      </colorPalette>\n    </rasterrenderer>\n  </pipe>\n</qgis>\n"
    ).encode()


def quick_look(
    grid: np.ndarray,
    scene: pd.Series,
    labels: list[str],
    colours: dict[str, Any],
    reader: Reader,
    opts: SceneOptions,
    notes: tuple[str, ...] = (),
    confidence: np.ndarray | None = None,
) -> bytes:
    """True colour (an overview-sized read), the land-use map with a legend, and how sure the
    map is (``confidence``: each window's probability); titled with the scene's date, and
    ``notes`` (the run's warnings) under the title."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    from rasterio.errors import RasterioIOError

    plt = figures.pyplot()
    width, height, tile = int(scene["width"]), int(scene["height"]), int(scene["tile_px"])
    scale = max(1.0, max(width, height) / 800)
    shape = (len(opts.bands), max(1, int(height / scale)), max(1, int(width / scale)))
    try:
        data = open_scene(scene["scene_path"], reader).read(list(opts.bands), out_shape=shape)
        title = "true colour"
    except RasterioIOError:  # its windows carry read_error reasons; the map is still drawn
        data, title = np.zeros(shape), "true colour (unreadable parts of the scene)"
    lo, hi = np.asarray(scene["lo"])[:, None, None], np.asarray(scene["hi"])[:, None, None]
    rgb = np.clip((data.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    rgb = np.repeat(rgb, 3, axis=0) if rgb.shape[0] == 1 else rgb
    cmap = ListedColormap([np.asarray(colours[lab]) / 255 for lab in labels] or ["white"])
    shown = np.ma.masked_equal(grid, NODATA)
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.5), dpi=100)
    axes[0].imshow(rgb.transpose(1, 2, 0), extent=(0, width, height, 0))
    axes[0].set_title(title)
    axes[1].imshow(
        shown,
        cmap=cmap,
        vmin=-0.5,
        vmax=len(labels) - 0.5,
        interpolation="nearest",
        extent=(0, grid.shape[1] * tile, grid.shape[0] * tile, 0),
    )
    axes[1].set_title(f"land use ({tile} px tiles)")
    sure = np.full(grid.shape, np.nan, dtype=np.float32) if confidence is None else confidence
    shown_sure = axes[2].imshow(
        np.ma.masked_invalid(sure),
        cmap="viridis",
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
        extent=(0, grid.shape[1] * tile, grid.shape[0] * tile, 0),
    )
    if np.isfinite(sure).any():
        axes[2].set_title("how sure: probability of each window's class")
        fig.colorbar(shown_sure, ax=axes[2], fraction=0.035, pad=0.02)
    else:
        axes[2].set_title("how sure: the model gives no probabilities")
    for ax in axes:
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.set_xticks([])
        ax.set_yticks([])
    present = sorted(set(np.unique(grid).tolist()) - {NODATA})
    handles = [Patch(color=np.asarray(colours[labels[i]]) / 255, label=labels[i]) for i in present]
    if (grid == NODATA).any():
        handles.append(Patch(facecolor="white", edgecolor="grey", label="no data / rejected"))
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    date = scene.get("date")
    fig.suptitle(f"{scene['scene_id']}, {date}" if date else f"{scene['scene_id']} (date unknown)")
    if notes:
        fig.text(0.5, 0.91, "\n".join(f"warning: {n}" for n in notes), ha="center", va="top", fontsize=8, color="#b00")
    fig.subplots_adjust(left=0.01, right=0.87, top=0.84 if notes else 0.9, bottom=0.02, wspace=0.05)
    return figures.png(fig)


def map_writer(
    writer: Any, parts: tuple[str, ...], labels: list[str], reader: Reader, opts: SceneOptions, notes: tuple[str, ...]
) -> Any:
    """The function ``groupBy("scene_id").applyInPandas`` runs: writes one scene's five files and
    returns its summary row (``SUMMARY``). A retried task rewrites the same names."""
    colours = palette(labels)

    def write(windows: pd.DataFrame) -> pd.DataFrame:
        from featurizers.image_featurizer import task_started

        task_started()
        scene = windows.iloc[0]
        sid = str(scene["scene_id"])
        grid, sure = class_grid(windows, scene, labels), value_grid(windows, scene, "probability")
        writer.write_bytes(geoparquet(windows, scene), *parts, f"{sid}.parquet")
        writer.write_bytes(class_raster(grid, scene, labels, colours), *parts, f"{sid}.tif")
        writer.write_bytes(confidence_raster(sure, scene), *parts, CONFIDENCE, f"{sid}.tif")
        writer.write_bytes(qgis_style(labels, colours), *parts, f"{sid}.qml")
        quick = quick_look(grid, scene, labels, colours, reader, opts, notes, sure)
        writer.write_bytes(quick, *parts, f"{sid}.png")
        reasons = windows["reject_reason"].dropna()
        nodata = int(reasons.str.startswith("nodata").sum())
        counts = windows["map_label"].value_counts()
        return pd.DataFrame(
            {
                "scene": [sid],
                "windows": [len(windows)],
                "scored": [int(windows["predicted_label"].notna().sum())],
                "nodata": [nodata],
                "rejected": [len(reasons) - nodata],
                "class_counts": [json.dumps({k: int(v) for k, v in counts.items()}, sort_keys=True)],
            }
        )

    return write
