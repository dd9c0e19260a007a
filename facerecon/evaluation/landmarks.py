"""68-point landmark accuracy: read 300-W ``.pts`` files and score a landmark predictor by NME.

NME (normalised mean error) of one face = mean over the 68 points of the Euclidean error in
pixels, divided by a face size in pixels: ``"eyes"`` = distance between the outer eye corners
(points 36 and 45, the 300-W convention), ``"box"`` = sqrt(width·height) of the ground-truth
landmark bounding box. A face "fails" when its eye-normalised NME exceeds 8 %.

Pixel conventions differ between annotations and predictors (300-W's ``.pts`` sit about one pixel
right of dlib's points on average; a renderer may count pixel centres at +½), and NME counts such a
constant shift in full. So each report also gives the predictor's mean offset over the whole set
and the NME with that one offset taken away (``nme_eyes_centred``): a comparison of shapes that a
coordinate convention does not decide.

The predictor is pluggable: any callable ``image (H,W,3 uint8) -> (68,2) array or None``
(None = no face found). The default is the dlib detector of :mod:`facerecon.imageio.detect`.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from facerecon.imageio.load import ImageError, load_image
from facerecon.imageio.pts import read_pts

LandmarkPredictor = Callable[[np.ndarray], Optional[np.ndarray]]

#: Eye-normalised NME above which a face counts as a failure.
FAILURE_THRESHOLD = 0.08

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def normaliser(gt: np.ndarray, norm: str = "eyes") -> np.ndarray:
    """Face size in pixels used by :func:`nme`, for (68,2) or (N,68,2) ground truth."""
    g = np.asarray(gt, dtype=np.float64)
    if norm == "eyes":
        return np.linalg.norm(g[..., 36, :] - g[..., 45, :], axis=-1)
    if norm == "box":
        size = g.max(axis=-2) - g.min(axis=-2)
        return np.sqrt(size[..., 0] * size[..., 1])
    raise ValueError(f"unknown NME normalisation {norm!r} (use 'eyes' or 'box')")


def nme(pred: np.ndarray, gt: np.ndarray, norm: str = "eyes") -> float | np.ndarray:
    """Normalised mean error (a fraction, not %) of (68,2) or batched (N,68,2) landmarks in pixels."""
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape or p.shape[-2:] != (68, 2):
        raise ValueError(f"landmark shapes differ or are not (...,68,2): {p.shape} vs {g.shape}")
    err = np.linalg.norm(p - g, axis=-1).mean(axis=-1) / normaliser(g, norm)
    return float(err) if err.ndim == 0 else err


@dataclass
class ImageResult:
    """Per-image outcome: NME values are None when the predictor found no face or load failed."""

    name: str
    nme_eyes: float | None
    nme_box: float | None
    error: str | None = None  #: one-line load error, if any
    offset_px: tuple[float, float] | None = None
    """Mean of prediction − annotation over the 68 points (x, y), pixels."""
    nme_eyes_centred: float | None = None
    """Eye-normalised NME after the whole set's mean offset is taken from the prediction."""


@dataclass
class LandmarkReport:
    """Landmark accuracy over a folder (NMEs are fractions; rates are fractions of images)."""

    folder: str
    n_images: int
    n_detected: int
    detection_rate: float
    mean_nme_eyes: float
    mean_nme_box: float
    median_nme_eyes: float
    failure_rate: float  #: among detected faces, share with eye-NME > 8 %
    failure_rate_all: float  #: missed faces counted as failures too
    seconds_per_image: float
    per_image: list[ImageResult] = field(default_factory=list)
    mean_offset_px: tuple[float, float] | None = None
    """The predictor's mean offset from the annotation (x, y) over all detected faces, pixels."""
    mean_nme_eyes_centred: float = math.nan
    """Mean eye-normalised NME with :attr:`mean_offset_px` taken away."""

    def to_dict(self) -> dict:
        """JSON-ready dict (per-image results included)."""
        return asdict(self)

    def summary(self) -> str:
        """A few human-readable lines (NME in %)."""
        return "\n".join([
            f"images: {self.n_images} in {self.folder}",
            f"detection rate: {100 * self.detection_rate:.1f}% ({self.n_detected}/{self.n_images})",
            f"NME (outer-eye-corner distance): {100 * self.mean_nme_eyes:.2f}% mean, "
            f"{100 * self.median_nme_eyes:.2f}% median",
            f"NME (sqrt(w*h) of GT box): {100 * self.mean_nme_box:.2f}% mean",
            f"NME with the mean offset ({_offset_text(self.mean_offset_px)}) px taken away: "
            f"{100 * self.mean_nme_eyes_centred:.2f}%",
            f"failure rate (NME_eyes > {100 * FAILURE_THRESHOLD:.0f}%): "
            f"{100 * self.failure_rate:.1f}% of detected, {100 * self.failure_rate_all:.1f}% counting misses",
            f"time: {1000 * self.seconds_per_image:.1f} ms per image",
        ])


def _offset_text(offset: tuple[float, float] | None) -> str:
    return "none" if offset is None else f"{offset[0]:+.2f}, {offset[1]:+.2f}"


def labelled_images(folder: str | Path) -> list[tuple[Path, Path]]:
    """(image, .pts) pairs in a folder, sorted by name; images without a .pts are skipped."""
    folder = Path(folder)
    pairs = []
    for img in sorted(folder.iterdir()):
        if img.suffix.lower() in IMAGE_SUFFIXES and img.with_suffix(".pts").is_file():
            pairs.append((img, img.with_suffix(".pts")))
    return pairs


def evaluate_folder(
    folder: str | Path,
    predictor: LandmarkPredictor | None = None,
    limit: int | None = None,
    progress: bool = False,
    pairs: Iterable[tuple[Path, Path]] | None = None,
) -> LandmarkReport:
    """Score ``predictor`` on every image+``.pts`` pair of ``folder`` (first ``limit`` by name).

    Images that fail to load are reported (one line on stderr) and counted as not detected.
    """
    if predictor is None:
        from facerecon.imageio.detect import FaceDetector

        predictor = FaceDetector()
    items = list(pairs) if pairs is not None else labelled_images(folder)
    if limit is not None:
        items = items[: max(0, int(limit))]
    if not items:
        raise ValueError(f"{folder}: no images with .pts landmark files")
    iterator: Iterable = items
    if progress:
        from tqdm import tqdm

        iterator = tqdm(items, desc="landmarks", unit="img", file=sys.stderr)
    results: list[ImageResult] = []
    scored: list[tuple[ImageResult, np.ndarray, np.ndarray]] = []  # detected faces: result, prediction, annotation
    t0 = time.perf_counter()
    for img_path, pts_path in iterator:
        gt = read_pts(pts_path)
        try:
            image = load_image(img_path)
        except ImageError as exc:
            print(str(exc), file=sys.stderr)
            results.append(ImageResult(img_path.name, None, None, error=str(exc)))
            continue
        pred = predictor(image)
        if pred is None:
            results.append(ImageResult(img_path.name, None, None))
            continue
        pred = np.asarray(pred, dtype=np.float64).reshape(68, 2)
        offset = (pred - gt).mean(0)
        results.append(ImageResult(img_path.name, nme(pred, gt, "eyes"), nme(pred, gt, "box"),
                                   offset_px=(float(offset[0]), float(offset[1]))))
        scored.append((results[-1], pred, gt))
    elapsed = time.perf_counter() - t0
    if scored:
        mean_offset = np.mean([r.offset_px for r, _, _ in scored], axis=0)
        for r, pred, gt in scored:
            r.nme_eyes_centred = nme(pred - mean_offset, gt, "eyes")
    return summarise(str(folder), results, elapsed / len(items))


def summarise(folder: str, results: list[ImageResult], seconds_per_image: float = float("nan")) -> LandmarkReport:
    """Aggregate per-image results into a :class:`LandmarkReport`."""
    eyes = np.array([r.nme_eyes for r in results if r.nme_eyes is not None], dtype=np.float64)
    box = np.array([r.nme_box for r in results if r.nme_box is not None], dtype=np.float64)
    n, k = len(results), len(eyes)
    n_fail = int(np.sum(eyes > FAILURE_THRESHOLD))
    nan = math.nan
    offsets = [r.offset_px for r in results if r.offset_px is not None]
    centred = [r.nme_eyes_centred for r in results if r.nme_eyes_centred is not None]
    return LandmarkReport(
        folder=folder,
        n_images=n,
        n_detected=k,
        detection_rate=k / n if n else nan,
        mean_nme_eyes=float(eyes.mean()) if k else nan,
        mean_nme_box=float(box.mean()) if k else nan,
        median_nme_eyes=float(np.median(eyes)) if k else nan,
        failure_rate=n_fail / k if k else nan,
        failure_rate_all=(n_fail + n - k) / n if n else nan,
        seconds_per_image=seconds_per_image,
        per_image=results,
        mean_offset_px=tuple(float(v) for v in np.mean(offsets, axis=0)) if offsets else None,
        mean_nme_eyes_centred=float(np.mean(centred)) if centred else nan,
    )
