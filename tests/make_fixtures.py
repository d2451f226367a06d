"""Writes the tests' small, seeded fixtures.

    python tests/make_fixtures.py OUT_DIR

``OUT_DIR/idx/``   MNIST-format files: a valid pair per split (plain and .gz) and broken ones
``OUT_DIR/aerial/`` a ``train/<label>/``, ``test/<label>/`` tree of small RGB PNG tiles
``OUT_DIR/bad/``   one file per kind of awkward input, named after what it is; ``BAD_EXPECTED``
                   says what the featurizer must make of each (a reason code, or None: featurized)
``OUT_DIR/classes/`` a ``<label>/`` tree (no split) of the same kind of tiles
``OUT_DIR/scenes/``  georeferenced scenes (``SCENES`` says what each is) and one that is not a raster
``OUT_DIR/cdl/``     scenes in UTM 14N over the real CDL clip (``DATA_MIRROR/cdl``), coloured by its
                   classes (``cdl_scene``), one far from it, and an RGB "label raster"
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

SEED = 20261123
AERIAL_LABELS = ("Barren", "Forest", "Developed")
AERIAL_COUNTS = {"train": 6, "test": 3}  # per label

# file name -> expected reject code (None: it must be featurized)
BAD_EXPECTED: dict[str, str | None] = {
    "rgb_odd_size.png": None,
    "grey.png": None,
    "rgba.png": None,
    "palette.png": None,
    "grey16.png": None,
    "cmyk.jpg": None,
    "tall_thin.tif": None,
    "empty.png": "empty",
    "text.txt": "not_an_image",
    "random_bytes.png": "not_an_image",
    "truncated.png": "truncated",
    "bomb.png": "too_large",
}


def idx_bytes(magic: int, data: np.ndarray) -> bytes:
    dims = data.shape
    return struct.pack(f">{1 + len(dims)}I", magic, *dims) + data.astype(np.uint8).tobytes()


def write_idx(out: Path, rng: np.random.Generator) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 30), ("t10k", 10)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
        img = idx_bytes(2051, images)
        lab = idx_bytes(2049, labels)
        (out / f"{split}-images-idx3-ubyte").write_bytes(img)
        (out / f"{split}-labels-idx1-ubyte").write_bytes(lab)
        gz = out.parent / "idx_gz"
        gz.mkdir(exist_ok=True)
        (gz / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(img, mtime=0))
        (gz / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(lab, mtime=0))
        np.save(out.parent / f"idx_{split}_labels.npy", labels)
        np.save(out.parent / f"idx_{split}_images.npy", images)
    broken = out.parent / "idx_broken"
    broken.mkdir(exist_ok=True)
    good = (out / "train-images-idx3-ubyte").read_bytes()
    (broken / "truncated-images-idx3-ubyte").write_bytes(good[: len(good) - 100])
    (broken / "badmagic-images-idx3-ubyte").write_bytes(struct.pack(">I", 2049) + good[4:])
    (broken / "short-header-images-idx3-ubyte").write_bytes(good[:10])
    (broken / "truncated-images-idx3-ubyte.gz").write_bytes(gzip.compress(good, mtime=0)[:-40])


def texture(rng: np.random.Generator, label_index: int, size: int) -> Image.Image:
    """A noisy tile whose base colour depends on the class (the tests only need decodable tiles)."""
    base = np.array([[120, 100, 80], [40, 110, 40], [150, 150, 160]][label_index], dtype=np.int16)
    noise = rng.integers(-40, 40, size=(size, size, 3), dtype=np.int16)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def write_aerial(out: Path, rng: np.random.Generator) -> None:
    for split, per_label in AERIAL_COUNTS.items():
        for i, label in enumerate(AERIAL_LABELS):
            folder = out / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_label):
                texture(rng, i, int(rng.integers(64, 96))).save(folder / f"{label.lower()}_{k:02d}.png")


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width x height`` grey pixels, with almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def write_bad(out: Path, rng: np.random.Generator) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(rng.integers(0, 256, size=(301, 37, 3), dtype=np.uint8))
    files = {
        "rgb_odd_size.png": encoded(rgb, "PNG"),
        "grey.png": encoded(rgb.convert("L"), "PNG"),
        "rgba.png": encoded(rgb.convert("RGBA"), "PNG"),
        "palette.png": encoded(rgb.convert("P"), "PNG"),
        "grey16.png": encoded(Image.fromarray(rng.integers(0, 65536, size=(40, 50), dtype=np.uint16)), "PNG"),
        "cmyk.jpg": encoded(rgb.convert("CMYK"), "JPEG"),
        "tall_thin.tif": encoded(rgb.resize((9, 500)), "TIFF"),
        "empty.png": b"",
        "text.txt": b"this is not an image\n",
        "random_bytes.png": rng.integers(0, 256, size=2048, dtype=np.uint8).tobytes(),
        "truncated.png": encoded(rgb, "PNG")[:5000],
        "bomb.png": bomb_png(30000, 30000),
    }
    assert set(files) == set(BAD_EXPECTED)
    for name, data in files.items():
        (out / name).write_bytes(data)


CLASS_COUNTS = {"Barren": 10, "Forest": 7, "Developed": 5}

# name -> (width, height, bands, dtype, CRS, pixel size, columns of nodata at the left edge)
SCENES: dict[str, tuple[int, int, int, str, str | None, float, int]] = {
    "rgb8_utm.tif": (300, 200, 3, "uint8", "EPSG:32633", 2.0, 70),
    "nir16_wgs84.tif": (256, 192, 4, "uint16", "EPSG:4326", 0.00002, 0),
    "rgb8_nocrs.tif": (128, 128, 3, "uint8", None, 1.0, 0),
}
NOT_A_RASTER = "readme_not_a_raster.tif"


def write_classes(out: Path, rng: np.random.Generator) -> None:
    for i, (label, n) in enumerate(CLASS_COUNTS.items()):
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(n):
            texture(rng, i, 64).save(folder / f"{label.lower()}{k:02d}.png")


def write_scenes(out: Path, rng: np.random.Generator) -> None:
    """Seeded GeoTIFFs: textured bands, the first ``nodata_cols`` columns set to nodata (0)."""
    import rasterio
    from rasterio.transform import from_origin

    out.mkdir(parents=True, exist_ok=True)
    for name, (width, height, bands, dtype, crs, px, nodata_cols) in SCENES.items():
        top = 4_500_000.0 if crs == "EPSG:32633" else (48.0 if crs else float(height))
        left = 500_000.0 if crs == "EPSG:32633" else (11.0 if crs else 0.0)
        high = 255 if dtype == "uint8" else 4000  # 16-bit imagery rarely uses the top bits
        data = rng.integers(1, high, size=(bands, height, width)).astype(dtype)
        data[:, :, :nodata_cols] = 0
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": bands,
            "dtype": dtype,
            "transform": from_origin(left, top, px, px),
            "nodata": 0,
            "tiled": True,
            "blockxsize": 64,
            "blockysize": 64,
        }
        if crs:
            profile["crs"] = crs
        with rasterio.open(out / name, "w", **profile) as dst:
            dst.write(data)
    (out / NOT_A_RASTER).write_bytes(b"this is a text file with a .tif name\n")


def write_sparse_scene(path: Path, size: int = 100_000) -> None:
    """A GeoTIFF whose header declares ``size`` x ``size`` pixels and holds no tile at all (sparse)."""
    import rasterio
    from rasterio.transform import from_origin

    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32633",
        "transform": from_origin(500_000.0, 4_500_000.0, 0.5, 0.5),
        "nodata": 0,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "sparse_ok": True,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile):
        pass


# The real CDL clip (CONUS Albers) under the mirror, and a 2.4 km block of it with water,
# developed, forest, grassland and crops (its centre in EPSG:5070).
CDL = Path(os.environ.get("DATA_MIRROR", Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"))
CDL = CDL / "cdl" / "2021_30m_cdls.tif"
CDL_CENTRE_5070 = (-86_895.0, 1_798_605.0)
CDL_SCENE_PX, CDL_SCENE_RES = 200, 12.0  # 2.4 km at 12 m
# A grey level per cdl6 class (the pixel baseline learns luma): far apart, so the classes separate.
CDL_GREY = {"Water": 30, "Forest": 75, "Herbaceous": 120, "Cultivated": 165, "Developed": 210, "Barren": 245}


def cdl_scene(path: Path, rng: np.random.Generator, shift_m: tuple[float, float] = (0.0, 0.0)) -> Path:
    """A UTM 14N scene whose pixels take their CDL class's grey (plus seeded noise): what a
    classifier trained on windows labelled from the CDL can learn back."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.warp import Resampling, reproject, transform

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from jobs.datasets.landcover import load

    crosswalk = load("cdl6")
    xs, ys = transform("EPSG:5070", "EPSG:32614", [CDL_CENTRE_5070[0]], [CDL_CENTRE_5070[1]])
    half = CDL_SCENE_PX * CDL_SCENE_RES / 2
    t = from_origin(xs[0] - half + shift_m[0], ys[0] + half + shift_m[1], CDL_SCENE_RES, CDL_SCENE_RES)
    codes = np.zeros((CDL_SCENE_PX, CDL_SCENE_PX), dtype=np.uint8)
    with rasterio.open(CDL) as src:
        reproject(rasterio.band(src, 1), codes, dst_transform=t, dst_crs="EPSG:32614", resampling=Resampling.nearest)
    grey = np.full(codes.shape, 100.0)
    for code, name in crosswalk.classes.items():
        if code < 256 and name in CDL_GREY:
            grey[codes == code] = CDL_GREY[name]
    data = np.clip(grey + rng.normal(0, 6, size=codes.shape), 1, 255).astype(np.uint8)
    profile = {"driver": "GTiff", "width": CDL_SCENE_PX, "height": CDL_SCENE_PX, "count": 3, "dtype": "uint8"}
    profile |= {"crs": "EPSG:32614", "transform": t}
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack([data] * 3))
    return path


def write_cdl(out: Path, rng: np.random.Generator) -> None:
    """Scenes over the CDL clip (when the mirror has it), one 200 km away, and an RGB picture
    posing as a label raster."""
    import rasterio
    from rasterio.transform import from_origin

    if not CDL.exists():
        return
    cdl_scene(out / "over" / "kansas_a.tif", rng)
    cdl_scene(out / "far" / "far_away.tif", rng, shift_m=(200_000.0, 0.0))
    profile = {"driver": "GTiff", "width": 50, "height": 50, "count": 3, "dtype": "uint8", "crs": "EPSG:5070"}
    profile |= {"transform": from_origin(-90_000.0, 1_800_000.0, 30.0, 30.0)}
    with rasterio.open(out / "rgb_map.tif", "w", **profile) as dst:
        dst.write(rng.integers(0, 255, size=(3, 50, 50), dtype=np.uint8))
    profile = {"driver": "GTiff", "width": 50, "height": 50, "count": 1, "dtype": "uint8"}
    profile |= {"transform": from_origin(-90_000.0, 1_800_000.0, 30.0, 30.0)}
    with rasterio.open(out / "no_crs.tif", "w", **profile) as dst:
        dst.write(rng.integers(0, 255, size=(1, 50, 50), dtype=np.uint8))


def main(out: Path) -> None:
    rng = np.random.default_rng(SEED)
    write_idx(out / "idx", rng)
    write_aerial(out / "aerial", rng)
    write_bad(out / "bad", rng)
    write_classes(out / "classes", rng)
    write_scenes(out / "scenes", rng)
    write_cdl(out / "cdl", np.random.default_rng(SEED + 1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
