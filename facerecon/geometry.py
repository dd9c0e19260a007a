"""Triangle-mesh geometry shared by every layer: face and vertex normals (batched torch), and the
similarity that best takes one point set onto another (:func:`umeyama`).

The one place normals are computed: the face model, the forward model, synthesis, scan renders,
the scan evaluator and the mesh writers all call these (numpy callers through
:func:`vertex_normals_np`).
"""

from __future__ import annotations

import numpy as np
import torch


def face_normals(verts: torch.Tensor, faces: torch.Tensor, unit: bool = True) -> torch.Tensor:
    """Triangle normals (B,F,3) of vertices (B,V,3) and triangles (F,3): outward for
    counter-clockwise triangles; unit length, or ``unit=False`` for length = 2 × area."""
    v0, v1, v2 = verts[:, faces[:, 0]], verts[:, faces[:, 1]], verts[:, faces[:, 2]]
    fn = torch.cross(v1 - v0, v2 - v0, dim=-1)
    return torch.nn.functional.normalize(fn, dim=-1, eps=1e-12) if unit else fn


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (B,V,3) of vertices (B,V,3) and triangles (F,3)
    (outward for counter-clockwise triangles; 0 for a vertex no triangle uses)."""
    b, v = verts.shape[:2]
    fn = face_normals(verts, faces, unit=False)  # (B,F,3), length = 2 × area
    # one index_add over the flattened batch: 1.7× faster than three along dim 1 at batch 1
    idx = (faces.T.reshape(1, -1) + v * torch.arange(b, device=faces.device)[:, None]).reshape(-1)
    n = verts.new_zeros(b * v, 3).index_add(0, idx, fn.repeat(1, 3, 1).reshape(-1, 3))
    return torch.nn.functional.normalize(n.reshape(b, v, 3), dim=-1, eps=1e-12)


def vertex_normals_np(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """:func:`vertex_normals` for one numpy mesh: (V,3), (F,3) -> (V,3) float64. A vertex no
    triangle uses gets (0, 0, 1), so that every normal a file holds has unit length."""
    v = torch.as_tensor(np.asarray(verts, dtype=np.float64))[None]
    f = torch.as_tensor(np.asarray(faces, dtype=np.int64))
    n = vertex_normals(v, f)[0].numpy()
    n[~(np.abs(n).sum(1) > 0)] = (0.0, 0.0, 1.0)
    return n


def face_normals_np(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """:func:`face_normals` (unit) for one numpy mesh: (F,3) float64."""
    v = torch.as_tensor(np.asarray(verts, dtype=np.float64))[None]
    f = torch.as_tensor(np.asarray(faces, dtype=np.int64))
    return face_normals(v, f)[0].numpy()


#: The reflection x -> −x (the face model's plane of symmetry is x = 0).
FLIP = np.array([-1.0, 1.0, 1.0], np.float32)


def mirror_vertices(verts: np.ndarray, normals: np.ndarray | None = None, normal_mm: float = 4.0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Mirror partner of every vertex: the vertex nearest to its reflection (−x, y, z).

    Args:
        verts: (V,3) positions in mm, symmetric about x = 0 (e.g. the mean face).
        normals: (V,3) unit normals; when given, they count too (× ``normal_mm``).

    Returns:
        partner (V,) int64 and the distance (V,) float64 in mm from the reflection to the partner.
    """
    from scipy.spatial import cKDTree

    v = np.asarray(verts, dtype=np.float64)
    if normals is None:
        tree, query = cKDTree(v), v * FLIP
    else:
        n = np.asarray(normals, dtype=np.float64) * normal_mm
        tree, query = cKDTree(np.concatenate([v, n], 1)), np.concatenate([v * FLIP, n * FLIP], 1)
    _, idx = tree.query(query)
    return idx.astype(np.int64), np.linalg.norm(v[idx] - v * FLIP, axis=1)


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True
            ) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (or rigid) transform taking ``src`` points onto ``dst``.

    Minimises ``sum ||s R src_i + t - dst_i||^2`` over rotations R (det +1), translation t and,
    when ``with_scale``, one scale s (Umeyama 1991). Rows with a NaN in either set are ignored.

    Args:
        src, dst: (N,3) corresponding points, N >= 3 after dropping NaN rows, same units.

    Returns:
        (s, R (3,3), t (3,)) with s = 1 when ``with_scale`` is False.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise ValueError(f"umeyama: need two (N,3) arrays of equal shape, got {src.shape}, {dst.shape}")
    ok = np.isfinite(src).all(1) & np.isfinite(dst).all(1)
    src, dst = src[ok], dst[ok]
    if len(src) < 3:
        raise ValueError("umeyama: fewer than 3 valid point pairs")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    e = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[2] = -1.0
    rot = u @ np.diag(e) @ vt
    var_s = (a ** 2).sum() / len(src)
    s = float((d * e).sum() / var_s) if with_scale and var_s > 0 else 1.0
    t = mu_d - s * rot @ mu_s
    return s, rot, t
