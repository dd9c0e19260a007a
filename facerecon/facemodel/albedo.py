"""An albedo model for a face mesh that has none: a mean skin albedo and a smooth spectral basis.

ICT-FaceKit ships no colour model, so facerecon builds one from the geometry alone:

* ``T̄``: a plausible mean albedo (sRGB-ish values in [0, 1]): skin, with darker brows, reddish
  lips and white sclera / dark iris on the eyeballs, placed by the 68 landmarks;
* ``B_t``: low-frequency eigenvectors of the mesh's cotangent Laplacian (smooth on the surface),
  each paired with a colour direction: 40 luminance modes and 20 + 20 chroma modes, scaled so
  that coefficients ``δ ~ N(0, 1)`` give plausible skin variation.

It sits behind :class:`AlbedoBasis`. The statistical alternative, learned from de-lit real photos
(:func:`pca_albedo`, stored in ``facerecon/resources/albedo_pca.npz`` by ``tools/learn_albedo.py``,
read by :func:`load_learned_albedo`), replaces it without touching the rest of the code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

#: Mean skin colour (sRGB-ish, [0,1]) and the colours of the features painted on the mean albedo.
SKIN = np.array([0.74, 0.55, 0.45])
LIPS = np.array([0.66, 0.38, 0.36])
BROWS = np.array([0.36, 0.26, 0.21])
SCLERA = np.array([0.86, 0.83, 0.80])
IRIS = np.array([0.30, 0.22, 0.17])

N_LUMA, N_CHROMA = 40, 20  # 40 + 20 + 20 = 80 coefficients


@dataclass
class AlbedoBasis:
    """Per-vertex albedo ``T(δ) = mean + Σ_k δ_k basis[k]``; mean (V,3), basis (K,V,3), [0,1] RGB."""

    mean: np.ndarray
    basis: np.ndarray
    kind: str = "spectral"


#: The learned albedo model's file among the package resources.
LEARNED_FILE = "albedo_pca.npz"


def learned_albedo_sha256() -> str:
    """SHA-256 (hex) of the installed learned albedo model's file: which model an R-Net's albedo
    coefficients δ belong to (a network records it; another model's δ paint another face)."""
    import hashlib

    from facerecon.assets import resource_path

    return hashlib.sha256(resource_path(LEARNED_FILE).read_bytes()).hexdigest()


def off_skin_hue(rgb: np.ndarray) -> np.ndarray:
    """Which colours (..., 3) in [0, 1] lie off skin's hue order R > G > B − 0.03: green, blue,
    grey-blue or purple (de-lighting under a coloured light, stubble turned blue-grey)."""
    return ~((rgb[..., 0] > rgb[..., 1]) & (rgb[..., 1] > rgb[..., 2] - 0.03))


def trusted_samples(weight: np.ndarray, skin: np.ndarray, inner: np.ndarray, min_weight: float = 0.3,
                    min_skin: float = 0.5, colour_ok: np.ndarray | None = None) -> np.ndarray:
    """(M,) bool: samples to keep — seen squarely enough (``weight``) and either on the inner face
    (``inner``: brows, eyes and lips are not skin but belong to the face) or on skin (the crop's
    skin attention ``skin`` ≥ ``min_skin`` and, when given, ``colour_ok``: hair and background at
    the face's border are not skin, and hair the attention took for skin is off the skin colour)."""
    outer_ok = skin >= min_skin
    if colour_ok is not None:
        outer_ok = outer_ok & colour_ok
    return (weight >= min_weight) & (inner | outer_ok)


def complete_samples(albedo: np.ndarray, trusted: np.ndarray, partner: np.ndarray, skin_rgb: np.ndarray
                     ) -> np.ndarray:
    """Per-vertex albedo (M,3) of ICT's face part from one photo's samples: ``trusted`` vertices
    keep theirs, others take their mirror ``partner``'s when trusted, else ``skin_rgb`` (the
    photo's median skin albedo)."""
    out = np.where(trusted[:, None], albedo, np.nan)
    mirror = ~trusted & trusted[partner]
    out[mirror] = albedo[partner[mirror]]
    rest = np.isnan(out[:, 0])
    out[rest] = skin_rgb
    return np.clip(out, 0.0, 1.0)


def feature_vertices(verts: np.ndarray, landmarks: np.ndarray, reach_mm: float = 6.0) -> np.ndarray:
    """(V,) bool: front vertices within ``reach_mm`` (frontal x, y) of the brows, eyes, nostrils
    and lips of a face (V,3 mm, facing +z) with its 68 landmarks (68,3): where a face is not skin
    coloured and should keep its own colour."""
    xy = verts[:, :2]
    lm = landmarks[:, :2]
    d = np.full(len(verts), np.inf)
    for line in (lm[17:22], lm[22:27], np.vstack([lm[36:42], lm[36:37]]), np.vstack([lm[42:48], lm[42:43]]),
                 lm[31:36], np.vstack([lm[48:60], lm[48:49]])):
        d = np.minimum(d, _dist_to_polyline(xy, line))
    mouth = _points_in_polygon(xy, lm[48:60])
    front = verts[:, 2] > landmarks[:, 2].min() - 10.0
    return front & ((d <= reach_mm) | mouth)


def sample_layout(face_verts: np.ndarray, face_landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror partners (M,) and feature mask (M,) of ICT's face part from its mean shape (M,3)
    and 68 landmarks (68,3), mm: what :func:`read_albedo_sample` needs."""
    from facerecon.geometry import mirror_vertices

    partner, _ = mirror_vertices(np.asarray(face_verts, np.float64))
    return partner, feature_vertices(np.asarray(face_verts, np.float64), np.asarray(face_landmarks, np.float64))


def read_albedo_sample(path: str | Path, partner: np.ndarray, features: np.ndarray,
                       max_skin_distance: float = 0.25) -> tuple[np.ndarray, np.ndarray, dict]:
    """One de-lit photo sample (``tools/albedo_samples.py``: per-vertex albedo of ICT's face part)
    completed: (albedo (M,3), median skin albedo (3,), info with ``source``, ``params``, the
    ``trusted`` fraction and ``skin_gamut``: whether the skin colour is skin-like, R > G ≳ B,
    rather than a grey or blue colour cast). The skin takes the photo's own median skin colour
    (the fit cannot tell the light's level from the skin's). ``features`` (M,) marks brows, eyes, nostrils and lips
    (:func:`feature_vertices`), kept whatever their colour; elsewhere a sample counts only on skin
    near the photo's median skin colour. ``partner`` (M,) are the face part's mirror partners
    (:func:`facerecon.geometry.mirror_vertices` of the mean face)."""
    with np.load(path) as d:
        w = d["weight"].astype(np.float32) / 255.0
        sk = d["skin"].astype(np.float32) / 255.0
        alb = d["albedo"].astype(np.float32)
        ids = d["vertex_ids"].astype(np.int64)
        info = {"source": str(d["source"]), "params": d["params"].astype(np.float32)}
        photo_skin = d["crop_skin_rgb"].astype(np.float32) / 255.0 if "crop_skin_rgb" in d.files else None
    inner = ids < 6706  # ICT's inner face ("face_narrow"): where the skin colour is measured
    sure = inner & ~features & (w > 0.8) & (sk > 0.8)
    if sure.sum() < 200:
        sure = inner & (w > 0.3)
    skin = np.median(alb[sure], 0) if sure.any() else np.median(alb, 0)
    if photo_skin is not None and photo_skin.min() > 0.02:
        # de-lighting also divides out the light's overall level, which the fit cannot tell from
        # the skin's (dark skin came out as bright as light skin): keep the de-lit pattern but
        # give the skin the photo's own median skin colour
        gain = np.clip(photo_skin / np.maximum(skin, 1e-3), 0.5, 2.0)
        alb, skin = alb * gain, skin * gain
    # off the inner face only colours near the skin's (relative distance ≤ max_skin_distance)
    near = np.linalg.norm(alb - skin, axis=1) <= max_skin_distance * np.linalg.norm(skin)
    trusted = trusted_samples(w, sk, features, colour_ok=near)
    info["trusted"] = float(trusted.mean())
    info["skin_gamut"] = bool(skin[0] >= 1.05 * skin[1] and skin[1] >= 0.95 * skin[2])
    return complete_samples(alb, trusted, partner, skin), skin, info


def pca_albedo(samples: np.ndarray, n_modes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (V,3), basis (K,V,3) and per-mode std (K,) of complete albedo samples (N,V,3).

    Principal components of the centred samples, each scaled by its standard deviation over the
    samples (divisor N−1), so that coefficients ``δ ~ N(0,1)`` reproduce the samples' spread;
    ``K = min(n_modes, N−1)``, strongest first, signs fixed (largest entry positive).
    """
    x = np.asarray(samples, np.float64)
    n = len(x)
    mean = x.mean(0)
    flat = (x - mean).reshape(n, -1)
    _, sv, vt = np.linalg.svd(flat, full_matrices=False)
    k = min(n_modes, n - 1)
    std = sv[:k] / np.sqrt(max(n - 1, 1))
    modes = vt[:k] * np.sign(vt[:k][np.arange(k), np.abs(vt[:k]).argmax(1)])[:, None]
    return mean, (modes * std[:, None]).reshape(k, *x.shape[1:]), std


def save_learned_albedo(path: str | Path, vertex_ids: np.ndarray, mean: np.ndarray, basis: np.ndarray,
                        std: np.ndarray, info: dict) -> None:
    """Store a learned model compactly (fp16) over the full-mesh ``vertex_ids`` it covers."""
    from facerecon.atomic import atomic_path

    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, vertex_ids=np.asarray(vertex_ids, np.int32), mean=mean.astype(np.float16),
                                basis=basis.astype(np.float16), std=np.asarray(std, np.float32),
                                info=np.array(json.dumps(info)))


def load_learned_albedo(path: str | Path, base: AlbedoBasis) -> AlbedoBasis:
    """The learned model over the full mesh: its mean and modes on the vertices it covers, and
    ``base``'s mean (painted eyes, mouth) with no modes elsewhere."""
    with np.load(path) as d:
        ids = d["vertex_ids"].astype(np.int64)
        mean = base.mean.astype(np.float32).copy()
        mean[ids] = d["mean"].astype(np.float32)
        basis = np.zeros((len(d["basis"]), len(mean), 3), np.float32)
        basis[:, ids] = d["basis"].astype(np.float32)
    return AlbedoBasis(mean=mean, basis=basis, kind="learned")


def cotangent_laplacian(verts: np.ndarray, faces: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Cotangent Laplacian ``L`` (positive semi-definite) and lumped mass matrix ``M`` (mm²)."""
    n = len(verts)
    v0, v1, v2 = (verts[faces[:, i]] for i in range(3))
    rows, cols, vals = [], [], []
    area = 0.5 * np.linalg.norm(np.cross(v1 - v0, v2 - v0), axis=1)
    for (a, b, c) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        # the angle at corner c weights the opposite edge (a, b)
        pa, pb, pc = verts[faces[:, a]], verts[faces[:, b]], verts[faces[:, c]]
        ea, eb = pa - pc, pb - pc
        cos = (ea * eb).sum(1)
        sin = np.linalg.norm(np.cross(ea, eb), axis=1)
        cot = np.clip(cos / np.maximum(sin, 1e-12), -10.0, 10.0) * 0.5
        rows += [faces[:, a], faces[:, b]]
        cols += [faces[:, b], faces[:, a]]
        vals += [cot, cot]
    w = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsr()
    lap = sp.diags(np.asarray(w.sum(1)).ravel()) - w
    mass = np.zeros(n)
    for i in range(3):
        np.add.at(mass, faces[:, i], area / 3.0)
    mass = np.maximum(mass, 1e-8 * max(mass.max(), 1e-12))
    return lap.tocsr(), sp.diags(mass).tocsr()


def smooth_eigenvectors(verts: np.ndarray, faces: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` smoothest Laplacian eigenvectors (V, k), unit RMS, signs fixed for determinism."""
    lap, mass = cotangent_laplacian(verts, faces)
    vals, vecs = spla.eigsh(lap, k=k, M=mass, sigma=-1e-6, which="LM")
    order = np.argsort(vals)
    vecs = vecs[:, order]
    vecs /= np.sqrt((vecs**2).mean(0, keepdims=True))
    signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(k)])
    return vecs * signs


def _colour_directions() -> np.ndarray:
    """Three orthonormal RGB directions: luminance along the skin colour, then two chroma axes."""
    luma = SKIN / np.linalg.norm(SKIN)
    red = np.array([1.0, 0.0, 0.0]) - luma[0] * luma
    red /= np.linalg.norm(red)
    third = np.cross(luma, red)
    return np.stack([luma, red, third])


def _points_in_polygon(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd test of (N,2) points against a closed (P,2) polygon."""
    x, y = pts[:, 0:1], pts[:, 1:2]
    x0, y0 = poly[:, 0][None], poly[:, 1][None]
    x1, y1 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
    cond = (y0 > y) != (y1 > y)
    xint = x0 + (y - y0) * (x1 - x0) / np.where(y1 == y0, 1e-12, y1 - y0)
    return (cond & (x < xint)).sum(1) % 2 == 1


def _dist_to_polyline(pts: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance of (N,2) points to an open (P,2) polyline."""
    best = np.full(len(pts), np.inf)
    for a, b in zip(line[:-1], line[1:]):
        ab = b - a
        t = np.clip(((pts - a) @ ab) / max(ab @ ab, 1e-12), 0, 1)
        best = np.minimum(best, np.linalg.norm(pts - (a + t[:, None] * ab), axis=1))
    return best


def skin_region(mean: np.ndarray, landmark_idx: np.ndarray, face_ids: np.ndarray) -> np.ndarray:
    """Boolean (V,) mask of forehead, cheeks and nose vertices (for the texture-variance loss).

    Built in the frontal (x, y) plane from the mean shape's landmarks, among front-facing face
    vertices only; the regions avoid brows, eyes, mouth and the jaw line.
    """
    lm = mean[landmark_idx]
    xy = mean[:, :2]
    front = np.zeros(len(mean), bool)
    front[face_ids] = mean[face_ids, 2] > lm[:, 2].min() - 5.0
    brow_top = lm[17:27, 1].max()
    forehead = (
        (xy[:, 1] > brow_top + 6)
        & (xy[:, 1] < brow_top + 40)
        & (np.abs(xy[:, 0] - lm[27, 0]) < 0.8 * abs(lm[26, 0] - lm[17, 0]) / 2)
    )
    nose = (
        (xy[:, 1] < lm[27, 1] - 4) & (xy[:, 1] > lm[33, 1] + 4)
        & (np.abs(xy[:, 0] - lm[30, 0]) < 0.6 * abs(lm[35, 0] - lm[31, 0]) / 2)
    )
    cheeks = np.zeros(len(mean), bool)
    for outer_eye, nose_side in ((36, 31), (45, 35)):
        x_out, x_in = lm[outer_eye, 0], lm[nose_side, 0]
        lo, hi = min(x_out, x_in), max(x_out, x_in)
        margin = 0.12 * (hi - lo)
        cheeks |= (
            (xy[:, 0] > lo + margin) & (xy[:, 0] < hi - margin)
            & (xy[:, 1] < min(lm[40, 1], lm[47, 1]) - 9) & (xy[:, 1] > lm[33, 1] - 3)
        )
    return front & (forehead | nose | cheeks)


def mean_albedo(mean: np.ndarray, landmark_idx: np.ndarray, face_ids: np.ndarray,
                iris_ids: np.ndarray, sclera_ids: np.ndarray) -> np.ndarray:
    """Per-vertex mean albedo (V,3): skin, darker brows, reddish lips, white sclera, dark iris."""
    lm = mean[landmark_idx]
    colour = np.tile(SKIN, (len(mean), 1))
    f = face_ids
    xy = mean[f, :2]
    front = mean[f, 2] > lm[:, 2].min() - 15.0
    lips_outer = lm[48:60, :2]
    inside = _points_in_polygon(xy, lips_outer)
    d_lip = _dist_to_polyline(xy, np.vstack([lips_outer, lips_outer[:1]]))
    w_lip = np.where(inside, 1.0, np.exp(-(d_lip / 1.5) ** 2)) * front
    d_brow = np.minimum(_dist_to_polyline(xy, lm[17:22, :2]), _dist_to_polyline(xy, lm[22:27, :2]))
    w_brow = 0.7 * np.exp(-(d_brow / 3.5) ** 2) * front
    c = colour[f]
    c = c * (1 - w_lip[:, None]) + LIPS * w_lip[:, None]
    c = c * (1 - w_brow[:, None]) + BROWS * w_brow[:, None]
    colour[f] = c
    colour[sclera_ids] = SCLERA
    colour[iris_ids] = IRIS
    return colour


def build_spectral_albedo(mean: np.ndarray, faces: np.ndarray, landmark_idx: np.ndarray,
                          surface_ids: np.ndarray, face_ids: np.ndarray,
                          iris_ids: np.ndarray, sclera_ids: np.ndarray) -> AlbedoBasis:
    """Build T̄ and the 80-mode smooth basis over ``surface_ids`` (other vertices: zero modes)."""
    n = len(mean)
    keep = np.zeros(n, bool)
    keep[surface_ids] = True
    tri = faces[keep[faces].all(1)]
    remap = -np.ones(n, np.int64)
    remap[surface_ids] = np.arange(len(surface_ids))
    eig = smooth_eigenvectors(mean[surface_ids].astype(np.float64), remap[tri], max(N_LUMA, N_CHROMA))
    dirs = _colour_directions()
    modes = []
    # per-mode std: the constant mode carries overall skin tone, higher frequencies less
    for d, count, s0 in ((0, N_LUMA, 0.09), (1, N_CHROMA, 0.03), (2, N_CHROMA, 0.015)):
        for k in range(count):
            m = np.zeros((n, 3))
            m[surface_ids] = (s0 / (1.0 + k / 4.0)) * eig[:, k : k + 1] * dirs[d][None]
            modes.append(m)
    basis = np.stack(modes).astype(np.float32)
    albedo = mean_albedo(mean, landmark_idx, face_ids, iris_ids, sclera_ids).astype(np.float32)
    return AlbedoBasis(mean=albedo, basis=basis)
