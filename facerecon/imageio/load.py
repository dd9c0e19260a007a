"""Robust photo loading: any common image file (or array) -> H×W×3 uint8 RGB, or one-line error.

Every way a user's file can be bad (missing, a directory, empty, not an image, truncated, corrupt,
a decompression bomb) ends as :class:`ImageError`, whose message is exactly one line
``"<path>: <reason>"``, so a batch can print it and go on.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageSource = Union[str, os.PathLike, np.ndarray, Image.Image]

#: Pillow format names accepted from files (MPO is a camera JPEG with extra frames).
ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF", "PPM")

#: Default limit on width·height, in pixels (~100 MP); bigger files are refused as possible bombs.
DEFAULT_MAX_PIXELS: int = 100_000_000

#: Background (RGB, 0-255) that transparent pixels are composited over: a neutral mid grey.
DEFAULT_BACKGROUND: tuple[int, int, int] = (128, 128, 128)


class ImageError(ValueError):
    """A photo that cannot be used; ``str()`` is one line: ``"<path>: <reason>"``."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = " ".join(str(reason).split()) or "unreadable image"
        super().__init__(f"{one_line(self.path)}: {self.reason}")


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped, for one-line messages."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def describe_source(source: object) -> str:
    """A short name for an image source, used in error messages (a path, or ``<array>``)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, np.ndarray):
        return "<array>"
    if isinstance(source, Image.Image):
        name = getattr(source, "filename", "") or ""
        return name if name else "<PIL image>"
    return f"<{type(source).__name__}>"


def load_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
) -> np.ndarray:
    """Load a photo as an (H, W, 3) uint8 RGB array, pixels in their upright (EXIF) orientation.

    ``source`` is a file path, a numpy array ((H,W), (H,W,1|3|4); uint8, uint16, bool or float
    in [0, 1]) or a PIL image; an array that already is (H, W, 3) uint8 is returned as is.
    Greyscale, palette, CMYK and 16-bit images are converted to RGB; transparent pixels are
    composited over ``background`` (RGB, 0-255). Files whose width·height exceeds
    ``max_pixels`` are refused before decoding (Pillow's own hard limit, twice its
    ``Image.MAX_IMAGE_PIXELS`` ≈ 179 MP, still applies above that).
    Raises :class:`ImageError` (one line, ``"<path>: <reason>"``) for any bad input.
    """
    name = describe_source(source)
    if isinstance(source, np.ndarray):
        return _from_array(source, name, background)
    if not isinstance(source, (str, os.PathLike, Image.Image)):
        raise ImageError(name, f"cannot load an image from a {type(source).__name__}")
    try:
        if isinstance(source, Image.Image):
            return _check_size_and_convert(source, name, max_pixels, background)
        path = Path(source)
        if not path.exists():
            raise ImageError(name, "no such file")
        if path.is_dir():
            raise ImageError(name, "is a directory, not an image file")
        if path.stat().st_size == 0:
            raise ImageError(name, "empty file (0 bytes)")
        with warnings.catch_warnings():
            # Pillow warns (DecompressionBombWarning) above its own global limit; our
            # per-call ``max_pixels`` decides instead, so the warning must not leak.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=_known_formats()) as im:
                return _check_size_and_convert(im, name, max_pixels, background)
    except ImageError:
        raise
    except PermissionError:
        raise ImageError(name, "permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(
            name, "not a recognised image file (accepted: JPEG, PNG, WebP, BMP, TIFF, GIF, PPM)"
        ) from None
    except Image.DecompressionBombError:
        raise ImageError(
            name, f"image is over Pillow's hard limit of {2 * Image.MAX_IMAGE_PIXELS:,} pixels "
                  "(possible decompression bomb)",
        ) from None
    except MemoryError:
        raise ImageError(name, "out of memory while decoding") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file, not a crash
        raise ImageError(name, _decoder_reason(exc)) from None


def _known_formats() -> list[str]:
    """The accepted formats that this Pillow build registers (plugin sets differ by version)."""
    Image.init()
    return [f for f in ACCEPTED_FORMATS if f in Image.ID]


def _decoder_reason(exc: BaseException) -> str:
    """Turn a decoder exception into a short human reason."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if "truncated" in low or isinstance(exc, EOFError):
        return f"truncated or incomplete image data ({text})"
    return f"corrupt image data ({text})"


def _check_size_and_convert(
    im: Image.Image, name: str, max_pixels: int, background: tuple[int, int, int]
) -> np.ndarray:
    """Refuse oversized images, decode, apply EXIF orientation and convert to RGB uint8."""
    w, h = im.size
    if w <= 0 or h <= 0:
        raise ImageError(name, f"image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(
            name,
            f"image is {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,} "
            "(possible decompression bomb)",
        )
    im.load()  # decode now, so truncation/corruption surfaces here
    try:
        upright = ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - malformed EXIF: keep the pixels as stored
        upright = im
    if upright is None:
        upright = im
    return _to_rgb(upright, background)


def _to_rgb(im: Image.Image, background: tuple[int, int, int]) -> np.ndarray:
    """Convert any Pillow mode to an (H, W, 3) uint8 RGB array."""
    mode = im.mode
    if mode == "RGB":
        return np.array(im, dtype=np.uint8)  # a writable copy
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _grey_to_rgb(_scale_high_depth(np.asarray(im), mode))
    if mode in ("1", "L"):
        return _grey_to_rgb(np.asarray(im.convert("L"), dtype=np.uint8))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in im.info
    ) or (mode in ("L", "RGB") and "transparency" in im.info)
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        return _composite(rgba[..., :3], rgba[..., 3:] / 255.0, background)
    return np.array(im.convert("RGB"), dtype=np.uint8)


def _scale_high_depth(arr: np.ndarray, mode: str) -> np.ndarray:
    """Map 16-bit / 32-bit integer or float greyscale to uint8."""
    a = arr.astype(np.float64)
    if mode.startswith("I;16"):
        a = a / 257.0
    elif mode == "I":
        hi = float(a.max()) if a.size else 0.0
        if hi > 255.0:  # 16-bit data stored as 32-bit ints (16-bit PNG) or wider
            a = a / (257.0 if hi <= 65535.0 else hi / 255.0)
    else:  # "F": floats, either [0, 1] or [0, 255]
        hi = float(np.nanmax(a)) if a.size else 0.0
        if hi <= 1.0:
            a = a * 255.0
    return np.clip(np.nan_to_num(np.rint(a)), 0, 255).astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """Replicate an (H, W) uint8 array into three channels."""
    return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))


def _composite(rgb: np.ndarray, alpha: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """Blend float RGB (0-255) over a constant background with alpha in [0, 1]."""
    bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
    out = rgb * alpha + bg * (1.0 - alpha)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _from_array(arr: np.ndarray, name: str, background: tuple[int, int, int]) -> np.ndarray:
    """Accept an in-memory array in the common layouts and dtypes; return (H, W, 3) uint8."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(name, f"array of shape {arr.shape} is not an image (need H×W, H×W×3 or H×W×4)")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(name, f"array of shape {arr.shape} has no pixels")
    if arr.dtype == np.uint8:
        a8 = arr
    elif arr.dtype == np.bool_:
        a8 = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        a8 = np.rint(arr / 257.0).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ImageError(name, "array contains NaN or infinite values")
        a8 = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    else:
        raise ImageError(name, f"unsupported array dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")
    if a8.ndim == 2:
        return _grey_to_rgb(a8)
    if a8.shape[2] == 4:
        f = a8.astype(np.float32)
        return _composite(f[..., :3], f[..., 3:] / 255.0, background)
    return np.ascontiguousarray(a8)
