"""Real-photo backgrounds for synthetic faces: crops of 300-W photos outside the annotated faces,
enlarged and blurred like an out-of-focus background; a procedural fallback without photos."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from facerecon.assets import shared_path
from facerecon.imageio.pts import read_pts


class PhotoBackgrounds:
    """Background images cut from 300-W photos outside the annotated face.

    300-W crops (``faces/300w/{train,test}``) come with ground-truth landmarks; the excluded face
    area is their bounding box widened by ``side`` of its width on each side, ``top`` of its
    height above (forehead, hair) and ``bottom`` below. Patches that touch it, or that hold
    black "outside the photo" padding, are never chosen: the patch corner is drawn among the
    positions whose whole patch is clear of both.
    """

    def __init__(self, root: str | os.PathLike | None = None, side: float = 0.25, top: float = 0.6,
                 bottom: float = 0.15, min_patch: int = 28, max_patch: int = 96, cache: int = 64):
        base = Path(root) if root is not None else shared_path("faces", "300w")
        if base is None or not Path(base).is_dir():
            raise FileNotFoundError("faces/300w not found in the shared data folder")
        self.files = sorted(p for p in Path(base).rglob("*.jpg") if p.with_suffix(".pts").is_file())
        if not self.files:
            raise FileNotFoundError(f"{base}: no .jpg with a .pts beside it")
        self.side, self.top, self.bottom = side, top, bottom
        self.min_patch, self.max_patch = min_patch, max_patch
        self._cache: OrderedDict[Path, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_size = cache

    def face_box(self, pts: np.ndarray) -> np.ndarray:
        """Excluded area (x0, y0, x1, y1) in pixels for 68 landmarks (68,2)."""
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        w, h = x1 - x0, y1 - y0
        return np.array([x0 - self.side * w, y0 - self.top * h, x1 + self.side * w, y1 + self.bottom * h])

    def _load(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        from PIL import Image

        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"))
        item = (img, self.face_box(read_pts(path.with_suffix(".pts")).astype(np.float64)))
        self._cache[path] = item
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return item

    def _valid_corners(self, img: np.ndarray, face: np.ndarray, s: int) -> np.ndarray:
        """(K,2) top-left corners (x, y) of s×s patches clear of the face area and of padding."""
        h, w = img.shape[:2]
        bad = (img.max(-1) < 6).astype(np.int32)  # black "outside the photo"
        x0, y0, x1, y1 = np.floor(face[:2]).astype(int).tolist() + np.ceil(face[2:]).astype(int).tolist()
        bad[max(y0, 0):max(min(y1, h), 0), max(x0, 0):max(min(x1, w), 0)] = 1
        integ = np.pad(bad.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        counts = integ[s:, s:] - integ[:-s, s:] - integ[s:, :-s] + integ[:-s, :-s]
        ys, xs = np.nonzero(counts == 0)
        return np.stack([xs, ys], 1)

    def sample(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
        """One background (size,size,3) float32 in [0,1] and where it came from
        (``source``: path relative to the shared folder, ``box``: x0, y0, x1, y1 in its pixels)."""
        import cv2

        for _ in range(100):
            path = self.files[int(rng.integers(len(self.files)))]
            img, face = self._load(path)
            s = int(rng.integers(self.min_patch, self.max_patch + 1))
            corners = np.zeros((0, 2), int)
            while s >= self.min_patch:
                if s < min(img.shape[:2]):
                    corners = self._valid_corners(img, face, s)
                    if len(corners):
                        break
                s = int(s * 0.8)
            if not len(corners):
                continue
            x, y = (int(v) for v in corners[int(rng.integers(len(corners)))])
            patch = img[y:y + s, x:x + s]
            flipped = bool(rng.random() < 0.5)
            if flipped:
                patch = patch[:, ::-1]
            out = cv2.resize(np.ascontiguousarray(patch), (size, size), interpolation=cv2.INTER_CUBIC)
            sigma = float(rng.uniform(0.5, 2.5))
            out = cv2.GaussianBlur(out, (0, 0), sigma)
            root = shared_path()
            rel = str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)
            return out.astype(np.float32) / 255.0, {"source": rel, "box": [x, y, x + s, y + s],
                                                    "flipped": flipped,
                                                    "blur_sigma_px": round(sigma, 3)}
        raise RuntimeError("no background patch found outside the face areas in 100 photos")


def procedural_background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    """A smooth random colour field (size,size,3) in [0,1]: the fallback without photos."""
    import cv2

    coarse = rng.uniform(0.1, 0.9, size=(4, 4, 3)).astype(np.float32)
    img = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(img, 0, 1), {"source": "procedural"}


def make_background(kind: str, rng: np.random.Generator, size: int,
                    photos: PhotoBackgrounds | None) -> tuple[np.ndarray, dict]:
    """Background (size,size,3) float32 of ``kind`` ("photos", "noise", "grey")."""
    if kind == "photos" and photos is not None:
        return photos.sample(rng, size)
    if kind in ("photos", "noise"):
        return procedural_background(rng, size)
    if kind == "grey":
        return np.full((size, size, 3), 0.5, np.float32), {"source": "grey"}
    raise ValueError(f"unknown background kind {kind!r} (photos, noise or grey)")


__all__ = ["PhotoBackgrounds", "procedural_background", "make_background"]
