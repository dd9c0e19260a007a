"""The moving jaw contour: which model vertex each of the 17 jaw landmarks is, per image.

A 2D detector puts the jaw-line landmarks on the visible silhouette of the face, which slides
over the 3D surface as the head turns; the model's fixed landmark vertices do not. For each jaw
landmark 0–7 and 9–16 this keeps a band of candidate vertices at its height, and picks the one
projecting furthest outwards.
"""

from __future__ import annotations

import numpy as np
import torch

from facerecon.facemodel.model import FaceModel

#: The jaw landmarks that slide (the chin, 8, stays on its vertex).
JAW_SLOTS = (*range(8), *range(9, 17))
#: Of those, the lower jaw's either side of the chin: their height band runs along the jaw's
#: underside, so they get their own (shorter) reach behind the fixed vertex.
LOWER_JAW = (5, 6, 7, 9, 10, 11)


def jaw_band(mean: np.ndarray, face: np.ndarray, anchor: int, band_mm: float = 2.5, back_mm: float = 10.0
             ) -> np.ndarray:
    """Candidate vertices of a sliding jaw landmark whose fixed vertex is ``anchor``: the vertices
    among ``face`` (ids into ``mean``, (V,3) mm) within ``band_mm`` of its height, on its side of
    the face, at least half as far out and at most ``back_mm`` behind it (the anchor included)."""
    p = mean[anchor]
    sel = face[(np.abs(mean[face, 1] - p[1]) < band_mm)
               & (np.sign(mean[face, 0]) == np.sign(p[0])) & (np.abs(mean[face, 0]) > 0.5 * abs(p[0]))
               & (mean[face, 2] > p[2] - back_mm)]
    return np.unique(np.append(sel, anchor))


#: The inner lip points (60-67) sit where the lips fold into the mouth, whose inside faces back:
#: they take the surface of the outer lip point beside them.
INNER_LIP_PROXY = {60: 48, 61: 50, 62: 51, 63: 52, 64: 54, 65: 56, 66: 57, 67: 58}


def landmark_normals(model: FaceModel, radius_mm: float = 8.0) -> torch.Tensor:
    """Unit surface normals (68,3) of the mean face at its 68 fixed landmark vertices, each the
    mean of the face part's vertex normals within ``radius_mm`` (an eyelid or lip vertex's own
    normal swings with the fold it sits on; the surface around it says which way that part of
    the face looks); the inner lip points take their outer neighbour's (:data:`INNER_LIP_PROXY`)."""
    from scipy.spatial import cKDTree

    from facerecon.geometry import vertex_normals_np

    mean = model.mean.detach().cpu().numpy().astype(np.float64)
    normals = vertex_normals_np(mean, model.faces.cpu().numpy())
    face = np.flatnonzero(np.asarray(model.vertex_ids) < 9409)
    tree = cKDTree(mean[face])
    lmk = model.landmark_idx.cpu().numpy()
    out = []
    for k in range(68):
        n = normals[face[tree.query_ball_point(mean[lmk[INNER_LIP_PROXY.get(k, k)]], radius_mm)]].sum(0)
        out.append(n / np.linalg.norm(n))
    return torch.as_tensor(np.array(out), dtype=model.mean.dtype, device=model.mean.device)


class ContourLandmarks:
    """Contour-aware 68 landmarks of a :class:`FaceModel`.

    Works on a small vertex subset (``vertex_ids``: the 68 landmarks and every candidate) so that
    a landmark-only fit never computes the whole mesh; the ids it returns index that subset.
    With ``enabled=False`` every landmark keeps its fixed vertex. ``back_mm`` is how far behind its
    fixed vertex (mean face) a point of the jaw's sides may slide, ``lower_back_mm`` the same for
    the lower jaw (:data:`LOWER_JAW`; None: ``back_mm``).
    """

    def __init__(self, model: FaceModel, band_mm: float = 2.5, back_mm: float = 10.0, enabled: bool = True,
                 lower_back_mm: float | None = None) -> None:
        mean = model.mean.detach().cpu().numpy()
        lmk = model.landmark_idx.cpu().numpy()
        face = np.flatnonzero(model.vertex_ids < 9409)  # the kit's face part only
        cands: list[np.ndarray] = []
        for k in JAW_SLOTS:
            reach = lower_back_mm if k in LOWER_JAW and lower_back_mm is not None else back_mm
            cands.append(jaw_band(mean, face, lmk[k], band_mm, reach) if enabled else np.array([lmk[k]]))
        width = max(len(c) for c in cands)
        table = np.stack([np.pad(c, (0, width - len(c)), mode="edge") for c in cands])
        sub, inverse = np.unique(np.concatenate([lmk, table.ravel()]), return_inverse=True)
        dev = model.mean.device
        self.vertex_ids = torch.as_tensor(sub, device=dev)  # (S,) model vertex ids
        self.landmarks = torch.as_tensor(inverse[:68], device=dev)  # (68,) into the subset
        self.candidates = torch.as_tensor(inverse[68:].reshape(table.shape), device=dev)  # (16, C)
        self.slots = torch.tensor(JAW_SLOTS, device=dev)
        self.side = torch.tensor([-1.0 if k < 8 else 1.0 for k in JAW_SLOTS], device=dev)

    def assign(self, xy: torch.Tensor) -> torch.Tensor:
        """Per-image landmark ids (B,68) into the subset, given its projected vertices (B,S,2)."""
        dev = xy.device
        cand = self.candidates.to(dev)
        u = xy[:, cand.reshape(-1), 0].reshape(xy.shape[0], *cand.shape)  # (B,16,C)
        # the subject's right (landmarks 0-7) is image left: outermost = smallest u
        score = u * self.side.to(dev)[None, :, None]
        best = cand[torch.arange(cand.shape[0], device=dev)[None], score.argmax(-1)]  # (B,16)
        ids = self.landmarks.to(dev)[None].repeat(xy.shape[0], 1)
        ids[:, self.slots.to(dev)] = best
        return ids

    def pick(self, sub_xy: torch.Tensor, ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The 68 landmarks (B,68,2) among the projected subset vertices (B,S,2), and their ids
        (B,68); the contour is re-assigned unless ``ids`` are given."""
        if ids is None:
            ids = self.assign(sub_xy.detach())
        return torch.gather(sub_xy, 1, ids[..., None].expand(-1, -1, 2)), ids
