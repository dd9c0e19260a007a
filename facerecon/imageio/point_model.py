"""A 2D point-distribution model of the 68 iBUG landmarks, to complete points the detector got wrong.

Thick glasses frames pull dlib's eye points onto the lower rims and its brow points onto the upper
ones; everything downstream (the crop, R-Net, the fit) then follows them. Where the detector is
unsure of the eye and brow points (their spread over the jittered boxes is large, see
:class:`facerecon.imageio.detect.FaceDetector`), :meth:`PointModel.complete` replaces them by the
model's best guess from the other points: a similarity transform and the leading shape modes fitted
to the jaw, nose and mouth.

The model (``facerecon/resources/point_model.json``, built by ``scripts/fit_point_model.py``) is the
Procrustes mean of 300-W train's annotated shapes (scaled to unit RMS radius) and their leading
principal modes with their variances.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from facerecon.assets import resource_path
from facerecon.imageio.align import JAW_WEIGHT, similarity_transform

#: The points completed: brows 17-26 and eyes 36-47.
EYES_BROWS = np.r_[17:27, 36:48]


def _unit(shape: np.ndarray) -> np.ndarray:
    """Centred at the origin, root-mean-square radius 1."""
    s = shape - shape.mean(0)
    return s / np.sqrt((s ** 2).sum(1).mean())


def _apply(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ M[:, :2].T + M[:, 2]


@dataclass(frozen=True)
class PointModel:
    """Mean shape (68, 2), modes (k, 68, 2) with unit norm, variances (k,), all in unit-RMS shape units."""

    mean: np.ndarray
    modes: np.ndarray
    var: np.ndarray
    ridge: float = 0.01
    """Weight of the modes' prior Σ b²/var against the squared point residuals (unit-RMS shape units)."""

    @classmethod
    def fit(cls, shapes: np.ndarray, n_modes: int = 12, iters: int = 5) -> "PointModel":
        """Build from annotated shapes (N, 68, 2): generalised Procrustes alignment, then PCA."""
        shapes = np.stack([_unit(np.asarray(s, np.float64)) for s in shapes])
        mean = shapes[0]
        for _ in range(iters):
            aligned = np.stack([_apply(similarity_transform(s, mean), s) for s in shapes])
            mean = _unit(aligned.mean(0))
        x = (aligned - mean).reshape(len(aligned), -1)
        _, sv, vt = np.linalg.svd(x, full_matrices=False)
        return cls(mean, vt[:n_modes].reshape(n_modes, 68, 2), sv[:n_modes] ** 2 / len(x))

    @classmethod
    def load(cls, path: str | Path | None = None) -> "PointModel":
        """Read the model (default: the shipped ``point_model.json``)."""
        return _load(str(path or resource_path("point_model.json")))

    def to_dict(self) -> dict:
        return {"mean": self.mean.round(6).tolist(), "modes": self.modes.round(6).tolist(),
                "var": self.var.tolist(), "ridge": self.ridge}

    def complete(self, points: np.ndarray, missing: np.ndarray = EYES_BROWS, iters: int = 10) -> np.ndarray:
        """``points`` (68, 2), pixels, with the ``missing`` ones replaced by the model's shape fitted
        (similarity + modes, jaw points weighted :data:`JAW_WEIGHT`) to the others. Returns a new array."""
        pts = np.asarray(points, np.float64)
        w = np.ones(68)
        w[:17] = JAW_WEIGHT
        w[missing] = 0.0
        known = w > 0
        phi = (self.modes[:, known] * np.sqrt(w[known])[None, :, None]).reshape(len(self.modes), 2 * int(known.sum())).T
        lhs = phi.T @ phi + np.diag(self.ridge / self.var)
        b = np.zeros(len(self.modes))
        for _ in range(iters):
            shape = self.mean + np.tensordot(b, self.modes, 1)
            M = similarity_transform(shape, pts, w)
            q = (pts - M[:, 2]) @ np.linalg.inv(M[:, :2]).T  # the points in the model's frame
            r = ((q - self.mean)[known] * np.sqrt(w[known])[:, None]).reshape(-1)
            b = np.linalg.solve(lhs, phi.T @ r)
        shape = self.mean + np.tensordot(b, self.modes, 1)
        out = pts.copy()
        out[missing] = _apply(similarity_transform(shape, pts, w), shape)[missing]
        return out.astype(np.asarray(points).dtype)


@lru_cache(maxsize=2)
def _load(path: str) -> PointModel:
    doc = json.loads(Path(path).read_text())
    model = PointModel(np.asarray(doc["mean"], np.float64), np.asarray(doc["modes"], np.float64),
                       np.asarray(doc["var"], np.float64), float(doc.get("ridge", 0.01)))
    if model.mean.shape != (68, 2) or model.modes.shape[1:] != (68, 2) or len(model.var) != len(model.modes):
        raise ValueError(f"{path}: expected mean (68, 2), modes (k, 68, 2), var (k,)")
    return model
