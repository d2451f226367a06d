"""Image bytes -> the network's input tensor, exactly as torchvision's transforms make it.

Decoding and resizing use Pillow, which is what torchvision's ``Resize`` calls on PIL images,
so the pixels the network sees here equal the pixels it sees under torchvision.

Modes are brought to 3-channel RGB in one way:

* ``L``, ``P``, ``1``, ``CMYK``, ``YCbCr``, ``LA``, ``PA``: Pillow's ``convert("RGB")``
  (grey is repeated on the three channels, palettes are looked up);
* ``RGBA``: the alpha channel is dropped (colour kept as stored, not matted);
* 16/32-bit integer grey (``I;16*``, ``I``): the top 8 of 16 bits are kept (``v >> 8``),
  values outside 0..65535 are clipped, then as ``L``;
* floating-point grey (``F``): rejected, since it has no agreed range.

An image that cannot become a tensor raises :class:`RejectedImage`, whose ``reason`` is a
short code followed by a detail, e.g. ``"truncated: image file is truncated"``.

Pixels that are not used exactly as stored get a *note* (same form), which the featurizers
return beside the features (column ``pixel_note``) and the jobs count:

* ``exif_rotated``: an EXIF orientation other than 1 is applied (as every viewer shows it);
* ``first_page``: a multi-page TIFF whose pages are not all reduced copies of the first
  (overviews, thumbnails) is read from its first page;
* ``bands_1_3``: a 4-band image without alpha (e.g. NAIP's R, G, B, near-infrared) keeps bands
  1-3 as RGB; ``alpha_dropped``: an alpha channel with transparent pixels is dropped (an opaque
  one is dropped without a note: nothing is lost); ``cmyk_converted``: CMYK is converted to RGB.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from featurizers.zoo import Preprocessing

# Pillow's own default ceiling (about 89.5 megapixels); above it a file is refused as a
# possible decompression bomb before any pixel is decoded.
DEFAULT_MAX_PIXELS = 89_478_485
# What a reader hands on for a listed path that is no longer a regular file (no image starts so).
NOT_A_FILE = b"\0landuse: not a regular file\0"

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}

# The check below replaces Pillow's warning, which would otherwise fire per large image.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)


class RejectedImage(ValueError):
    """An input that cannot be turned into a network input; ``reason`` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.reason = f"{code}: {detail}"


def decode_rgb(data: bytes | None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decodes encoded image bytes into an 8-bit RGB Pillow image (see module doc for modes)."""
    return decode_rgb_noted(data, max_pixels)[0]


def decode_rgb_noted(data: bytes | None, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Image.Image, str | None]:
    """:func:`decode_rgb`, and the note saying how the pixels were changed (None: as stored)."""
    if data is None:  # listed, then gone before its bytes were read (folders.attach_images)
        raise RejectedImage("vanished", "the file was removed between listing and reading")
    if data == NOT_A_FILE:
        raise RejectedImage("not_a_file", "replaced by a FIFO or device between listing and reading")
    if len(data) == 0:
        raise RejectedImage("empty", "no bytes")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise RejectedImage("not_an_image", "no image format recognised") from None
    except Image.DecompressionBombError as exc:  # Pillow's hard cap, twice its warning limit
        raise RejectedImage("too_large", _short(exc)) from None
    except Exception as exc:  # Pillow raises many types on malformed headers
        raise RejectedImage("decode_error", _short(exc)) from None
    w, h = img.size
    if w * h > max_pixels:
        raise RejectedImage("too_large", f"{w}x{h} pixels exceeds the limit of {max_pixels}")
    if w == 0 or h == 0:
        raise RejectedImage("decode_error", f"zero-sized image {w}x{h}")
    notes = [_pages_note(img)]
    try:
        img.load()
    except OSError as exc:
        code = "truncated" if "truncated" in str(exc) else "decode_error"
        raise RejectedImage(code, _short(exc)) from None
    except Exception as exc:
        raise RejectedImage("decode_error", _short(exc)) from None
    orientation = img.getexif().get(ORIENTATION, 1)
    if orientation not in (1, None):
        img = ImageOps.exif_transpose(img)
        notes.append(f"exif_rotated: orientation {orientation}")
    samples = getattr(img, "tag_v2", {}).get(SAMPLES_PER_PIXEL)  # TIFF: Pillow may keep fewer bands
    if isinstance(samples, int) and samples > len(img.getbands()):
        notes.append(f"bands_1_3: {samples} bands stored, 3 used")
    rgb, band_note = _to_rgb(img)
    notes.append(band_note)
    found = [n for n in notes if n]
    return rgb, "; ".join(found) if found else None


ORIENTATION = 0x0112  # the EXIF tag
SAMPLES_PER_PIXEL = 277  # the TIFF tag


def _pages_note(img: Image.Image) -> str | None:
    """A note when a multi-page file has pages other than reduced copies of the first."""
    n = getattr(img, "n_frames", 1)
    if n <= 1:
        return None
    first = img.size
    try:
        for i in range(1, n):
            img.seek(i)
            if img.size[0] >= first[0] and img.size[1] >= first[1]:
                return f"first_page: 1 of {n} pages used"
    finally:
        img.seek(0)
    return None  # overviews or thumbnails: page 1 is the image itself


def _to_rgb(img: Image.Image) -> tuple[Image.Image, str | None]:
    mode = img.mode
    if mode == "RGB":
        return img, None
    if mode in ("RGBA", "LA", "PA"):
        alpha = np.asarray(img.getchannel("A"))
        note = None if alpha.min() == 255 else f"alpha_dropped: {float((alpha < 255).mean()):.0%} not opaque"
        return img.convert("RGB"), note
    if mode == "RGBX":
        return img.convert("RGB"), "bands_1_3: 4 bands stored, 3 used"
    if mode == "CMYK":
        return img.convert("RGB"), "cmyk_converted: CMYK to RGB"
    return _grey_or_palette(img), None


def _grey_or_palette(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode.startswith("I"):
        arr = np.asarray(img).astype(np.int64)
        grey = (np.clip(arr, 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")  # mode inferred from uint8 2-D: "L"
    if mode == "F":
        raise RejectedImage("unsupported_mode", "floating-point image (mode F)")
    return img.convert("RGB")


def to_tensor(img: Image.Image, prep: Preprocessing) -> np.ndarray:
    """Resize (shorter side), centre-crop, scale to [0,1] and normalize: float32 CHW."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = prep.resize, int(prep.resize * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), _RESAMPLE[prep.interpolation])
    top = round((new_h - prep.crop) / 2.0)
    left = round((new_w - prep.crop) / 2.0)
    img = img.crop((left, top, left + prep.crop, top + prep.crop))
    arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    mean = np.asarray(prep.mean, dtype=np.float32)
    std = np.asarray(prep.std, dtype=np.float32)
    return ((arr - mean) / std).transpose(2, 0, 1)


def prepare(data: bytes | None, prep: Preprocessing, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Encoded bytes -> float32 CHW tensor; raises :class:`RejectedImage`."""
    return to_tensor(decode_rgb(data, max_pixels), prep)


def prepare_noted(
    data: bytes | None, prep: Preprocessing, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, str | None]:
    """:func:`prepare`, and the image's pixel note (see the module doc)."""
    img, note = decode_rgb_noted(data, max_pixels)
    return to_tensor(img, prep), note


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
