"""The camera's focal length of a photo, in its pixels, from EXIF or a 35 mm-equivalent figure.

The fitter sees faces through a pinhole camera. Without other knowledge it assumes one about 1 m
away (:class:`~facerecon.render.Camera`'s default); a selfie at arm's length is 0.3–0.5 m away
and shows another perspective (a larger nose, a narrower face, ears hidden). A phone or
camera records its lens in EXIF: ``FocalLengthIn35mmFilm`` (the focal length a 36×24 mm frame
would need for the same diagonal field of view) or ``FocalLength`` with the sensor's
``FocalPlaneXResolution``. Either gives the focal length in the photo's own pixels.

A photo cropped after it was taken keeps its EXIF but not its field of view: when EXIF records
the original pixel size and its aspect ratio differs from the file's, the figure is not used.
"""

from __future__ import annotations

import math
import os

from PIL import Image

#: Diagonal of the 36×24 mm frame, mm: a 35 mm-equivalent focal length f sees the photo's diagonal
#: under the same angle, so f / FULL_FRAME_DIAGONAL = focal in pixels / diagonal in pixels.
FULL_FRAME_DIAGONAL = math.hypot(36.0, 24.0)

#: What the fitter is told of a photo's lens when nothing is said (Preparer's ``focal_35mm``):
#: nothing, so it assumes a face about 1 m away. On real-skin renders taken from 0.4 m the true
#: lens did not bring the default engine's fit closer to the scan (with scale -0.014 mm, rigid
#: +0.018, neither beyond noise) and took the plain fitter's further (rigid +0.10 mm): BENCHMARKS.md,
#: "Photos taken close up". On the outer surface alone (no nostril or lip insides) it gains at 0.4 m
#: and loses at 3 m: no distance-independent winner ("The photo's lens, checked on the outer
#: surface"); measured from the scan with the mean-face default fit, the same trade ("Around the
#: new default"). EXIF's lens is there for users who want the camera itself (the face's distance in mm,
#: the photo's own perspective in the overlays): ``"exif"``.
DEFAULT_LENS = "none"

_EXIF_IFD = 0x8769
_FOCAL_LENGTH = 0x920A
_FOCAL_35MM = 0xA405
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003
_PLANE_X_RES, _PLANE_UNIT = 0xA20E, 0xA210
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0}  # FocalPlaneResolutionUnit: inch, cm, mm -> mm per unit


def focal_from_35mm(focal_35mm: float, width: int, height: int) -> float:
    """Focal length in pixels of a ``width`` × ``height`` photo taken with a lens of ``focal_35mm``
    mm 35 mm-equivalent (same diagonal field of view)."""
    if not focal_35mm > 0:
        raise ValueError(f"a 35 mm-equivalent focal length must be > 0 mm (got {focal_35mm})")
    return float(focal_35mm) / FULL_FRAME_DIAGONAL * math.hypot(width, height)


def _number(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return out if math.isfinite(out) and out > 0 else None


def exif_focal(image: Image.Image) -> float | None:
    """The focal length in pixels of the photo ``image`` (as stored, before any EXIF rotation:
    the figure does not depend on it) from its EXIF, or None when EXIF does not say or the photo
    was cropped since (the recorded pixel size has another aspect ratio)."""
    try:
        exif = image.getexif()
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:  # noqa: BLE001 - malformed EXIF is no EXIF
        return None
    w, h = image.size
    if w <= 0 or h <= 0:
        return None
    ox, oy = _number(sub.get(_PIXEL_X)), _number(sub.get(_PIXEL_Y))
    if ox and oy and abs(math.log((ox / oy) / (w / h))) > 0.01 and abs(math.log((ox / oy) / (h / w))) > 0.01:
        return None  # cropped: the recorded field of view is not this photo's
    f35 = _number(sub.get(_FOCAL_35MM))
    if f35:
        return focal_from_35mm(f35, w, h)
    f_mm, res = _number(sub.get(_FOCAL_LENGTH)), _number(sub.get(_PLANE_X_RES))
    unit = _UNIT_MM.get(int(_number(sub.get(_PLANE_UNIT)) or 2))
    if f_mm and res and unit and ox:
        # sensor pixels per mm at the recorded width, scaled to this file's width (resized copies)
        scale = (w / ox) if abs(math.log((ox / w))) < abs(math.log(ox / h)) else (h / ox)
        return f_mm * res / unit * scale
    return None


def read_focal(path: str | os.PathLike) -> float | None:
    """:func:`exif_focal` of an image file (reads the header only); None for a file Pillow cannot
    open (its loading reports that)."""
    try:
        with Image.open(path) as im:
            return exif_focal(im)
    except Exception:  # noqa: BLE001 - the photo's own loading names what is wrong with it
        return None


__all__ = ["DEFAULT_LENS", "FULL_FRAME_DIAGONAL", "exif_focal", "focal_from_35mm", "read_focal"]
