"""The forehead's depth: how far forward a face's forehead sits relative to its inner face.

No 2D landmark lies on the forehead, and a frontal photo shows its depth only through shading, so
a single photo's fit leaves it close to wherever its prior is centred (BENCHMARKS.md, "Is the
scan's forehead an unusual one?"). This module measures that depth on any mesh of the model's
topology and gives the identity direction that changes it, so that the fitter's prior can be
loosened along it (:attr:`~facerecon.fitting.engine.FitConfig.forehead_stiffness`).
"""

from __future__ import annotations

import numpy as np

from facerecon.geometry import umeyama, vertex_normals_np


def forehead_regions(mean: np.ndarray, normals: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(forehead, inner) vertex masks of a mean face (mm, y up, +z towards the viewer) with its 68
    landmarks (68,3): the forehead 5 mm or more above the highest brow point and within 95 mm of
    the nose tip, the inner face below the lowest brow point and within 60 mm of it, both facing
    the camera (normal z > 0.3)."""
    dist = np.linalg.norm(mean - landmarks[30], axis=1)
    facing = normals[:, 2] > 0.3
    forehead = (mean[:, 1] > landmarks[17:27, 1].max() + 5.0) & (dist < 95.0) & facing
    inner = (mean[:, 1] < landmarks[17:27, 1].min()) & (dist < 60.0) & facing
    return forehead, inner


def forehead_offset(verts: np.ndarray, mean: np.ndarray, normals: np.ndarray, forehead: np.ndarray,
                    inner: np.ndarray) -> float:
    """Mean displacement (mm, along ``normals``; + = forward) of ``verts``' forehead from
    ``mean``'s, after the similarity that best takes ``verts``' inner face onto ``mean``'s (so
    that the forehead does not pull the alignment)."""
    s, R, t = umeyama(verts[inner], mean[inner])
    moved = s * verts @ R.T + t
    return float(((moved - mean)[forehead] * normals[forehead]).sum(1).mean())


class ForeheadDepth:
    """:func:`forehead_offset` of identities α of a face model (mm), over the model's region."""

    def __init__(self, model) -> None:
        self.mean = model.mean.detach().reshape(-1, 3).double().cpu().numpy()
        basis = model.id_basis.detach().double().cpu().numpy()
        self.basis = basis.reshape(basis.shape[0], -1, 3)
        self.normals = vertex_normals_np(self.mean, model.faces.detach().cpu().numpy())
        lmk = self.mean[model.landmark_idx.detach().cpu().numpy()]
        self.forehead, self.inner = forehead_regions(self.mean, self.normals, lmk)
        if self.forehead.sum() < 20 or self.inner.sum() < 20:
            raise ValueError(f"face-model region '{model.region}' holds too little of the forehead or the inner face")

    def __call__(self, alpha: np.ndarray) -> float:
        alpha = np.asarray(alpha, np.float64).ravel()
        verts = self.mean + np.tensordot(alpha, self.basis[: len(alpha)], 1)
        return forehead_offset(verts, self.mean, self.normals, self.forehead, self.inner)

    def direction(self) -> np.ndarray:
        """The gradient of the forehead offset over α at the mean face (n_id,), mm per unit α: its
        norm is the offset's spread over ICT's population (α ~ N(0, I)), its direction the identity
        change that moves the forehead most. Linearised: each mode's displacement, less the
        infinitesimal similarity (3 translations, 3 rotations, a scale) that best matches it on
        the inner face, averaged along the normals over the forehead."""
        centre = self.mean[self.inner].mean(0)
        G = _similarity_generators(self.mean[self.inner] - centre).reshape(-1, 7)
        D = self.basis[:, self.inner].reshape(len(self.basis), -1)  # (n_id, 3 × inner)
        coef = np.linalg.lstsq(G, D.T, rcond=None)[0]  # (7, n_id): each mode's best similarity
        gen_f = _similarity_generators(self.mean[self.forehead] - centre)
        rest = self.basis[:, self.forehead] - np.einsum("fij,jk->kfi", gen_f, coef)  # (n_id, F, 3)
        return (rest * self.normals[self.forehead]).sum(-1).mean(-1)


def _similarity_generators(points: np.ndarray) -> np.ndarray:
    """(N,3,7): how each of N points (relative to the centre) moves under the 7 infinitesimal
    similarities: translations along x, y, z, rotations about them, and a scale."""
    gen = np.zeros((len(points), 3, 7))
    gen[:, :, :3] = np.eye(3)
    for axis in range(3):
        gen[:, :, 3 + axis] = np.cross(np.eye(3)[axis], points)
    gen[:, :, 6] = points
    return gen
