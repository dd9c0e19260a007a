"""Triangle surfaces in numbers: dense deterministic samples, area-weighted quadrature and exact
closest points (the distance from a point to a mesh), in the mesh's own units (mm here).

The scan evaluator (:mod:`facerecon.evaluation.scan`) measures with these; they know nothing of
faces, landmarks or alignment.
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from facerecon.geometry import face_normals_np


class MeshError(ValueError):
    """A mesh or landmark file that cannot be used; the message names the file and the reason."""


def _grid_samples(vertices: np.ndarray, faces: np.ndarray, spacing: float, max_points: int
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """Regular barycentric grids on every non-degenerate triangle: level k = ceil(longest edge /
    spacing), vertices and edges included; spacing widened to stay under ``max_points``.
    Returns (points (P,3), triangle id (P,), covering radius: every surface point lies within it
    of a sample of its own triangle)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    tri = v[f]
    area2 = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    ids = np.flatnonzero(area2 > 1e-12)
    tri = tri[ids]
    longest = np.stack([np.linalg.norm(tri[:, i] - tri[:, (i + 1) % 3], axis=1) for i in range(3)], 1).max(1)
    spacing = float(spacing)
    while True:
        k = np.clip(np.ceil(longest / spacing), 1, 256).astype(np.int64)
        if int(((k + 1) * (k + 2) // 2).sum()) <= max_points or spacing > 1e6:
            break
        spacing *= 1.25
    pts, tid = [], []
    for level in np.unique(k):
        sel = k == level
        ij = [(i, j) for i in range(level + 1) for j in range(level + 1 - i)]
        bary = np.array([[i / level, j / level, 1 - (i + j) / level] for i, j in ij])
        pts.append(np.einsum("bk,tkc->tbc", bary, tri[sel]).reshape(-1, 3))
        tid.append(np.repeat(ids[sel], len(bary)))
    # a point of a (sub-)triangle is within its longest edge of each of its corners
    covering = float((longest / k).max()) if len(k) else 0.0
    return np.concatenate(pts), np.concatenate(tid), covering


def sample_surface(vertices: np.ndarray, faces: np.ndarray, spacing_mm: float = 1.0,
                   max_points: int = 400_000) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic dense samples of a triangle surface with their face normals.

    Each triangle gets a regular barycentric grid of level k = ceil(longest edge / spacing)
    (vertices and edges included), so sample spacing is at most about ``spacing_mm``.
    The spacing is widened if that would exceed ``max_points``.

    Returns:
        points (P,3) and unit normals (P,3), same units as ``vertices``.
    """
    pts, tid, _ = _grid_samples(vertices, faces, spacing_mm, max_points)
    return pts, face_normals_np(vertices, faces)[tid]


def closest_point_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray]:
    """Closest point of each triangle (a_i, b_i, c_i) to p_i, all (N,3).

    Returns (points (N,3), feature (N,) int: 0 interior, 1/2/3 vertex a/b/c, 4 edge ab,
    5 edge bc, 6 edge ca), by the Voronoi-region test of Ericson, Real-Time Collision
    Detection, 5.1.5.
    """
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp = p - b
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    cp = p - c
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    out = np.empty_like(p)
    feat = np.full(len(p), -1, dtype=np.int64)

    def assign(mask, value, code):
        m = mask & (feat < 0)
        out[m] = value[m] if value.ndim == 2 else value
        feat[m] = code

    with np.errstate(divide="ignore", invalid="ignore"):
        assign((d1 <= 0) & (d2 <= 0), a, 1)
        assign((d3 >= 0) & (d4 <= d3), b, 2)
        assign((d6 >= 0) & (d5 <= d6), c, 3)
        t = np.clip(d1 / (d1 - d3), 0, 1)
        assign((vc <= 0) & (d1 >= 0) & (d3 <= 0), a + t[:, None] * ab, 4)
        t = np.clip(d2 / (d2 - d6), 0, 1)
        assign((vb <= 0) & (d2 >= 0) & (d6 <= 0), a + t[:, None] * ac, 6)
        t = np.clip((d4 - d3) / ((d4 - d3) + (d5 - d6)), 0, 1)
        assign((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), b + t[:, None] * (c - b), 5)
        denom = va + vb + vc
        v = np.where(denom != 0, vb / denom, 1 / 3)
        w = np.where(denom != 0, vc / denom, 1 / 3)
        assign(np.ones(len(p), dtype=bool), a + v[:, None] * ab + w[:, None] * ac, 0)
    return out, feat


class SurfaceIndex:
    """Exact closest points on a triangle mesh (units of the mesh: mm here).

    A kd-tree over dense samples of every triangle (spacing ``spacing_mm``) gives, for a query
    point, an upper bound d0 on its distance to the surface; a triangle can hold the true
    closest point only if its centroid lies within d0 + (its centroid-to-corner radius) of the
    query, so testing those triangles exactly (:func:`closest_point_on_triangles`) gives the
    exact answer.
    Also tells whether the closest point lies on the mesh's boundary (an open edge).
    """

    def __init__(self, mesh: trimesh.Trimesh, spacing_mm: float = 1.0, max_points: int = 400_000):
        self.vertices = np.asarray(mesh.vertices, dtype=np.float64)
        self.faces = np.asarray(mesh.faces, dtype=np.int64)
        if len(self.faces) == 0:
            raise MeshError("a surface with no triangles")
        self.points, self.sample_tri, self.covering = _grid_samples(
            self.vertices, self.faces, spacing_mm, max_points)
        self.face_normals = face_normals_np(self.vertices, self.faces)
        self.normals = self.face_normals[self.sample_tri]
        self.tree = cKDTree(self.points)
        tri = self.vertices[self.faces]
        self.centroids = tri.mean(1)
        self.reach = np.linalg.norm(tri - self.centroids[:, None], axis=2).max(1)
        # centroid kd-trees by reach class (doubling bounds), so a few long triangles do not
        # widen every search
        bound = max(float(np.median(self.reach)), 1e-9)
        self._classes = []
        rest = np.arange(len(self.faces))
        while len(rest):
            sel = self.reach[rest] <= bound
            if sel.any():
                ids = rest[sel]
                self._classes.append((bound, ids, cKDTree(self.centroids[ids])))
            rest, bound = rest[~sel], bound * 2
        # open edges: used once only; per face a flag for edges ab, bc, ca (features 4, 5, 6)
        e = np.sort(np.stack([self.faces[:, [0, 1]], self.faces[:, [1, 2]], self.faces[:, [2, 0]]], 1), -1)
        key = e[..., 0] * (len(self.vertices) + 1) + e[..., 1]
        uniq, inv, cnt = np.unique(key.ravel(), return_inverse=True, return_counts=True)
        self.open_edge = (cnt[inv] == 1).reshape(-1, 3)
        self.open_vertex = np.zeros(len(self.vertices), dtype=bool)
        self.open_vertex[e[self.open_edge].ravel()] = True

    def nearest_sample(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distance (N,), sample index (N,)) of the nearest sample: fast, within the covering
        radius of the exact distance."""
        return self.tree.query(points)

    def closest(self, points: np.ndarray, chunk: int = 4096
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Exact closest surface points.

        Returns (closest (N,3), distance (N,), triangle id (N,), on_boundary (N,) bool).
        """
        points = np.asarray(points, dtype=np.float64)
        n = len(points)
        best_pt, best_d = np.zeros((n, 3)), np.full(n, np.inf)
        best_t, best_f = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        for s in range(0, n, chunk):
            p = points[s:s + chunk]
            d0, _ = self.tree.query(p)
            pids, cands = [], []
            for bound, ids, tree in self._classes:
                balls = tree.query_ball_point(p, d0 + bound + 1e-9)
                counts = np.array([len(x) for x in balls], dtype=np.int64)
                if counts.sum() == 0:
                    continue
                cands.append(ids[np.concatenate([np.asarray(x, dtype=np.int64) for x in balls])])
                pids.append(np.repeat(np.arange(len(p)), counts))
            pid, cand = np.concatenate(pids), np.concatenate(cands)
            ok = np.linalg.norm(p[pid] - self.centroids[cand], axis=1) <= d0[pid] + self.reach[cand] + 1e-9
            pid, tid = pid[ok], cand[ok]
            tri = self.faces[tid]
            q, feat = closest_point_on_triangles(p[pid], self.vertices[tri[:, 0]],
                                                 self.vertices[tri[:, 1]], self.vertices[tri[:, 2]])
            d = np.linalg.norm(p[pid] - q, axis=1)
            order = np.lexsort((d, pid))
            first = order[np.r_[True, pid[order][1:] != pid[order][:-1]]]
            rows = pid[first] + s
            best_pt[rows], best_d[rows] = q[first], d[first]
            best_t[rows], best_f[rows] = tid[first], feat[first]
        tri = self.faces[best_t]
        on_boundary = np.zeros(n, dtype=bool)
        for code, col in ((4, 0), (5, 1), (6, 2)):
            m = best_f == code
            on_boundary[m] = self.open_edge[best_t[m], col]
        for code, col in ((1, 0), (2, 1), (3, 2)):
            m = best_f == code
            on_boundary[m] = self.open_vertex[tri[m, col]]
        return best_pt, best_d, best_t, on_boundary

    def distance(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(unsigned (N,), signed (N,)) exact distances; + on the side the closest triangle's
        normal points to (outside a consistently oriented surface)."""
        q, d, t, _ = self.closest(points)
        sign = np.sign(((points - q) * self.face_normals[t]).sum(1))
        sign[sign == 0] = 1.0
        return d, d * sign


def surface_quadrature(vertices: np.ndarray, faces: np.ndarray, spacing_mm: float = 1.0,
                       max_points: int = 400_000) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted sample points of a triangle surface (midpoint rule, deterministic).

    Each triangle is split into k^2 equal sub-triangles, k = ceil(longest edge / spacing); the
    samples are their centroids, each weighted by its area (mm^2 for mm input), so weighted
    statistics over the samples approximate integrals over the surface, independent of its
    tessellation.

    Returns:
        points (P,3) and weights (P,).
    """
    v = np.asarray(vertices, dtype=np.float64)
    tri = v[np.asarray(faces, dtype=np.int64)]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    keep = area > 1e-12
    tri, area = tri[keep], area[keep]
    longest = np.stack([np.linalg.norm(tri[:, i] - tri[:, (i + 1) % 3], axis=1) for i in range(3)], 1).max(1)
    spacing = float(spacing_mm)
    while True:
        k = np.clip(np.ceil(longest / spacing), 1, 64).astype(np.int64)
        if int((k * k).sum()) <= max_points or spacing > 1e6:
            break
        spacing *= 1.25
    pts, wts = [], []
    for level in np.unique(k):
        sel = k == level
        bary = [((i + 1 / 3) / level, (j + 1 / 3) / level) for i in range(level) for j in range(level - i)]
        bary += [((i + 2 / 3) / level, (j + 2 / 3) / level) for i in range(level - 1)
                 for j in range(level - 1 - i)]
        b = np.array([[x, y, 1 - x - y] for x, y in bary])
        pts.append(np.einsum("bk,tkc->tbc", b, tri[sel]).reshape(-1, 3))
        wts.append(np.repeat(area[sel] / (level * level), len(b)))
    return np.concatenate(pts), np.concatenate(wts)


def point_to_surface(points: np.ndarray, surface: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """Exact distance (same units, mm here) from each point to the closest point of ``surface``.

    Returns (unsigned (N,), signed (N,)); the sign is + on the side the closest triangle's normal
    points to (outside a consistently oriented scan).
    """
    return SurfaceIndex(surface).distance(np.asarray(points, dtype=np.float64))
