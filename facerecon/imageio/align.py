"""Face alignment: a similarity transform from 68 detected landmarks to a canonical template,
and the 224×224 crop R-Net takes, with the transforms both ways so results map back to the photo.

The template (``facerecon/resources/align_template.json``, built by ``scripts/build_align_template.py``)
is the Procrustes mean of 300-W train landmarks, framed so that the jaw width is 0.62·224 px and
the landmark bounding box is centred at (112, 124): the forehead fits above the brows.

The transform is a weighted least-squares similarity (rotation, uniform scale, translation).
Jaw points 0-16 get weight :data:`JAW_WEIGHT` < 1: on turned faces a 2D detector slides them along
the visible contour, so they say less about where the face is than the inner points do.

Pixels outside the photo are black (``cv2.BORDER_CONSTANT``): replicated borders would smear
skin-coloured streaks that the skin classifier would take for skin; black is also what the
300-W crops use for "outside the photo", which the skin model was fitted with as non-skin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from facerecon.assets import resource_path

#: Side of the canonical crop the template is defined for, pixels.
TEMPLATE_SIZE = 224

#: Least-squares weight of the jaw-line points 0-16 (inner points 17-67 weigh 1).
JAW_WEIGHT = 0.3


@lru_cache(maxsize=4)
def _load_template_file(path: str) -> np.ndarray:
    doc = json.loads(Path(path).read_text())
    pts = np.asarray(doc["landmarks"], dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"{path}: template must be 68×2, got {pts.shape}")
    return pts


def template_landmarks(size: int = TEMPLATE_SIZE) -> np.ndarray:
    """The canonical 68 landmarks (68, 2) float64 in pixels of a ``size``×``size`` crop."""
    pts = _load_template_file(str(resource_path("align_template.json")))
    return pts * (size / TEMPLATE_SIZE)


def landmark_weights(jaw_weight: float = JAW_WEIGHT) -> np.ndarray:
    """(68,) least-squares weights: ``jaw_weight`` for points 0-16, 1 for the rest."""
    w = np.ones(68, dtype=np.float64)
    w[:17] = jaw_weight
    return w


def similarity_transform(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """2×3 matrix M of the similarity (no reflection) mapping ``src`` (N,2) onto ``dst`` (N,2)
    in the weighted least-squares sense: ``dst ≈ src @ M[:, :2].T + M[:, 2]``."""
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    zs = s[:, 0] + 1j * s[:, 1]
    zd = d[:, 0] + 1j * d[:, 1]
    ms, md = (w * zs).sum(), (w * zd).sum()
    var = (w * np.abs(zs - ms) ** 2).sum()
    if var <= 1e-12:
        raise ValueError("landmarks are degenerate (all at one point)")
    a = (w * (zd - md) * np.conj(zs - ms)).sum() / var  # scale·e^{iθ}
    b = md - a * ms
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]], dtype=np.float64)


def invert_affine(M: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine matrix."""
    return cv2.invertAffineTransform(np.asarray(M, dtype=np.float64))


def apply_affine(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2×3 matrix to points (..., 2); returns float64 points (..., 2)."""
    p = np.asarray(points, dtype=np.float64)
    return p @ M[:, :2].T + M[:, 2]


@dataclass
class AlignedFace:
    """A face crop and the transforms between photo and crop pixels (x right, y down)."""

    crop: np.ndarray  #: (size, size, 3) uint8 RGB
    landmarks: np.ndarray  #: (68, 2) float32, crop pixels
    M: np.ndarray  #: (2, 3) photo -> crop
    M_inv: np.ndarray  #: (2, 3) crop -> photo

    @property
    def size(self) -> int:
        """Crop side, pixels."""
        return int(self.crop.shape[0])

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.M[:, :2]))))

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """Map crop-pixel points (..., 2) to photo pixels."""
        return apply_affine(self.M_inv, points)

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map photo-pixel points (..., 2) to crop pixels."""
        return apply_affine(self.M, points)


def align(
    image: np.ndarray,
    landmarks: np.ndarray,
    size: int = TEMPLATE_SIZE,
    jaw_weight: float = JAW_WEIGHT,
    template: np.ndarray | None = None,
) -> AlignedFace:
    """Crop an (H, W, 3) uint8 photo to the canonical ``size``×``size`` face frame.

    ``landmarks`` are the 68 iBUG points in photo pixels; ``template`` (68,2, crop pixels)
    defaults to :func:`template_landmarks`. Bilinear warp; when the face shrinks by more than
    2×, the photo is first reduced with area averaging so that the crop does not alias.
    """
    lm = np.asarray(landmarks, dtype=np.float64).reshape(68, 2)
    tpl = template_landmarks(size) if template is None else np.asarray(template, dtype=np.float64)
    M = similarity_transform(lm, tpl, landmark_weights(jaw_weight))
    crop = _warp(image, M, size)
    return AlignedFace(
        crop=crop,
        landmarks=apply_affine(M, lm).astype(np.float32),
        M=M,
        M_inv=invert_affine(M),
    )


def _warp(image: np.ndarray, M: np.ndarray, size: int) -> np.ndarray:
    """Bilinear warp of the photo region under the crop; pre-reduced (area) when shrinking > 2×.

    Only the photo pixels that the crop can see (plus a margin) are touched, so aligning a face
    in a 12 MP photo costs about as much as in a small one.
    """
    h, w = image.shape[:2]
    scale = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
    corners = apply_affine(invert_affine(M), np.array([[0, 0], [size, 0], [0, size], [size, size]], float))
    margin = 2 + int(np.ceil(1.0 / max(scale, 1e-6)))
    x0 = max(0, int(np.floor(corners[:, 0].min())) - margin)
    y0 = max(0, int(np.floor(corners[:, 1].min())) - margin)
    x1 = min(w, int(np.ceil(corners[:, 0].max())) + margin + 1)
    y1 = min(h, int(np.ceil(corners[:, 1].max())) + margin + 1)
    if x1 <= x0 or y1 <= y0:  # the crop lies entirely outside the photo
        return np.zeros((size, size, 3), np.uint8)
    src = image[y0:y1, x0:x1]
    M_src = M.copy()
    M_src[:, 2] += M[:, :2] @ np.array([x0, y0], dtype=np.float64)  # ROI pixel -> photo pixel
    if scale < 0.5:
        f = 2.0 * scale  # pre-reduce so that the remaining warp scale is ~0.5
        rh, rw = src.shape[:2]
        nw, nh = max(1, round(rw * f)), max(1, round(rh * f))
        src = cv2.resize(src, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = nw / rw, nh / rh  # cv2.resize maps pixel centres: x' = fx·(x + ½) − ½
        S = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1]], dtype=np.float64)
        M_src = M_src @ np.linalg.inv(S)
    return cv2.warpAffine(
        np.ascontiguousarray(src), M_src, (size, size),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
    )
