"""Writes the tests' small, seeded fixtures.

    python tests/make_fixtures.py OUT_DIR

``OUT_DIR/idx/``   MNIST-format files: a valid pair per split (plain and .gz) and broken ones
``OUT_DIR/aerial/`` a ``train/<label>/``, ``test/<label>/`` tree of small RGB PNG tiles
``OUT_DIR/bad/``   one file per kind of awkward input, named after what it is; ``BAD_EXPECTED``
                   says what the featurizer must make of each (a reason code, or None: featurized)
"""

from __future__ import annotations

import gzip
import io
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


def main(out: Path) -> None:
    rng = np.random.default_rng(SEED)
    write_idx(out / "idx", rng)
    write_aerial(out / "aerial", rng)
    write_bad(out / "bad", rng)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
