"""One texture for the whole head: repack a multi-texture UV layout into a single [0,1]² atlas.

ICT-FaceKit's UVs are made for several texture images: the face fills the tile u∈[0,1], head and
neck the tile u∈[1,2], and each eyeball (and its cornea layer) re-uses the whole [0,1] square of
its own texture. OBJ/GLB viewers want one image, so :func:`build_atlas`

1. splits the layout into UV islands (connected through shared UV corners),
2. groups islands into *charts*: same UDIM tile and not overlapping each other (greedy layering,
   overlap tested on a coarse raster), so islands that share a texture image stay together,
3. scales each chart for an even texel density in mm (times ``priority`` for the chart holding
   the 68 landmarks: the face gets the photo's detail), and
4. packs the charts into the unit square with a skyline packer, with a gutter between them,
   maximising the common scale by bisection.

A layout that already fits one image (one chart) just gets a small margin. Nothing here is
specific to ICT: any model with ``uv_coords``/``faces_uv`` works.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from facerecon.render.raster import rasterize


@dataclass(frozen=True)
class Chart:
    """A group of UV islands moved as one rigid block."""

    faces: np.ndarray
    """(n,) triangle indices in the chart."""
    src_min: np.ndarray
    """(2,) lower-left corner of the chart's bounding box in the source layout."""
    src_size: np.ndarray
    """(2,) its width and height in source UV units."""
    dst_min: np.ndarray
    """(2,) where that corner lands in the atlas."""
    scale: float
    """Atlas units per source unit."""


@dataclass(frozen=True)
class UVAtlas:
    """A single-image UV layout: ``uv`` (T,2) in [0,1] (OBJ convention, v up) and ``faces_uv``
    (F,3), row-aligned with the mesh's triangles."""

    uv: np.ndarray
    faces_uv: np.ndarray
    charts: tuple[Chart, ...]
    gutter: float
    """Empty margin around each chart, in atlas units (texels = gutter × texture size)."""

    def pixels(self, size: int) -> np.ndarray:
        """UVs (T,2) as continuous pixel coordinates of a ``size``² image (x right, y down; the
        centre of texel (r, c) at (c + ½, r + ½))."""
        return np.stack([self.uv[:, 0] * size, (1.0 - self.uv[:, 1]) * size], 1)


def _tri_area(p: np.ndarray) -> np.ndarray:
    """Areas (F,) of triangles (F,3,2) or (F,3,3)."""
    a, b = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    if p.shape[-1] == 2:
        return 0.5 * np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
    return 0.5 * np.linalg.norm(np.cross(a, b), axis=1)


def uv_islands(faces_uv: np.ndarray, n_uv: int) -> np.ndarray:
    """Island label (F,) per triangle: triangles sharing a UV corner are in one island."""
    n_f = len(faces_uv)
    rows = np.repeat(np.arange(n_f), 3)
    inc = sp.csr_matrix((np.ones(3 * n_f, np.int8), (rows, faces_uv.ravel())), shape=(n_f, n_uv))
    _, labels = connected_components(inc @ inc.T, directed=False)
    return labels


def _island_mask(uv_local: np.ndarray, faces_uv: np.ndarray, res: int) -> np.ndarray:
    """Coverage (res, res) bool of triangles drawn in a unit square, eroded by one cell so that
    islands that merely touch along a seam do not count as overlapping."""
    xy = torch.as_tensor(np.stack([uv_local[:, 0] * res, (1 - uv_local[:, 1]) * res], 1), dtype=torch.float32)
    ids = rasterize(xy[None], torch.ones(1, len(xy)), torch.as_tensor(faces_uv), res, res)[0].numpy()
    m = ids >= 0
    inner = m.copy()
    inner[1:] &= m[:-1]
    inner[:-1] &= m[1:]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    return inner


def _skyline_pack(sizes: np.ndarray) -> np.ndarray | None:
    """Place rectangles (N,2 widths, heights) in the unit square, bottom-left first (tallest
    first); returns lower-left corners (N,2) or None if they do not fit."""
    order = np.argsort(-np.maximum(sizes[:, 0], sizes[:, 1]), kind="stable")
    sky = [(0.0, 0.0, 1.0)]  # segments (x, height, width) covering [0, 1]
    pos = np.zeros_like(sizes)
    for i in order:
        w, h = sizes[i]
        best = None
        for j, (x, _, _) in enumerate(sky):
            if x + w > 1.0 + 1e-12:
                break
            y, k, right = 0.0, j, x + w
            while k < len(sky) and sky[k][0] < right - 1e-12:
                y = max(y, sky[k][1])
                k += 1
            if y + h <= 1.0 + 1e-12 and (best is None or (y, x) < best[:2]):
                best = (y, x, j)
        if best is None:
            return None
        y, x, _ = best
        pos[i] = (x, y)
        # rebuild the skyline with [x, x+w] raised to y+h
        new, right = [], x + w
        for sx, sh, sw in sky:
            ex = sx + sw
            if ex <= x + 1e-12 or sx >= right - 1e-12:
                new.append((sx, sh, sw))
                continue
            if sx < x:
                new.append((sx, sh, x - sx))
            if ex > right:
                new.append((right, sh, ex - right))
        new.append((x, y + h, w))
        new.sort()
        merged = [new[0]]
        for seg in new[1:]:
            px, ph, pw = merged[-1]
            if abs(seg[1] - ph) < 1e-12 and abs(px + pw - seg[0]) < 1e-9:
                merged[-1] = (px, ph, pw + seg[2])
            else:
                merged.append(seg)
        sky = merged
    return pos


def build_atlas(uv_coords: np.ndarray, faces_uv: np.ndarray, verts: np.ndarray, faces: np.ndarray,
                priority_vertices: np.ndarray | None = None, *, priority: float = 3.0,
                gutter: float = 1 / 128, overlap_res: int = 256,
                density_faces: np.ndarray | None = None) -> UVAtlas:
    """Repack a (possibly multi-tile, overlapping) UV layout into one [0,1]² texture.

    Args:
        uv_coords: (T,2) source UVs (OBJ convention; tiles at integer offsets allowed).
        faces_uv: (F,3) UV indices per triangle, row-aligned with ``faces``.
        verts: (V,3) a representative shape in mm (e.g. the mean face), for texel density.
        faces: (F,3) vertex indices.
        priority_vertices: vertex ids (e.g. the 68 landmarks) whose charts (those with a
            triangle of three such vertices) get ``priority``× the texel density (linear) of the
            others.
        gutter: empty margin around each chart, atlas units (1/128 = 8 texels at 1024²).
        overlap_res: raster resolution per unit tile for the overlap test.
        density_faces: (F,) bool, the triangles that set their chart's texel density (default
            all; a chart with none of them uses all its own), so that a part packed tightly into
            a chart's UV space (a mouth socket beside the scalp) does not inflate the chart.
    """
    uv_coords = np.asarray(uv_coords, dtype=np.float64)
    faces_uv = np.asarray(faces_uv, dtype=np.int64)
    faces = np.asarray(faces, dtype=np.int64)
    verts = np.asarray(verts, dtype=np.float64)
    if faces_uv.shape != faces.shape or len(faces) == 0:
        raise ValueError("faces_uv must be non-empty and row-aligned with faces")
    tri_uv = uv_coords[faces_uv]
    area_uv = _tri_area(tri_uv)
    area_3d = _tri_area(verts[faces])
    density_mask = np.ones(len(faces), bool) if density_faces is None else np.asarray(density_faces, bool)
    island = uv_islands(faces_uv, len(uv_coords))
    n_isl = island.max() + 1
    isl_faces = [np.flatnonzero(island == i) for i in range(n_isl)]
    isl_tile = np.array([np.floor(tri_uv[fs].reshape(-1, 2).min(0) + 1e-6) for fs in isl_faces])
    isl_area = np.array([area_uv[fs].sum() for fs in isl_faces])

    # 1. islands -> charts: per tile, greedy layering of non-overlapping islands (largest first)
    layers: dict[tuple[int, int], list[tuple[np.ndarray, list[int]]]] = {}
    for i in np.argsort(-isl_area, kind="stable"):
        tile = (int(isl_tile[i, 0]), int(isl_tile[i, 1]))
        fs = isl_faces[i]
        used = np.unique(faces_uv[fs])
        local = np.zeros_like(uv_coords)
        local[used] = uv_coords[used] - isl_tile[i]
        mask = _island_mask(local, faces_uv[fs], overlap_res)
        for occ, members in layers.setdefault(tile, []):
            if not (occ & mask).any():
                occ |= mask
                members.append(i)
                break
        else:
            layers[tile].append((mask, [i]))
    groups = [members for tile in sorted(layers) for _, members in layers[tile]]

    # 2. chart sizes at even density (priority charts denser)
    prio = np.zeros(len(verts), bool)
    if priority_vertices is not None:
        prio[np.asarray(priority_vertices, dtype=np.int64)] = True
    chart_faces, src_min, src_size, density = [], [], [], []
    for members in groups:
        fs = np.concatenate([isl_faces[i] for i in members])
        pts = tri_uv[fs].reshape(-1, 2)
        lo, hi = pts.min(0), pts.max(0)
        dfs = fs[density_mask[fs]] if density_mask[fs].any() else fs
        k = np.sqrt(max(area_3d[dfs].sum(), 1e-12) / max(area_uv[dfs].sum(), 1e-12))
        if prio[faces[dfs]].all(1).any():
            k *= priority
        chart_faces.append(fs)
        src_min.append(lo)
        src_size.append(np.maximum(hi - lo, 1e-6))
        density.append(k)
    src_min_a, src_size_a, dens = np.array(src_min), np.array(src_size), np.array(density)
    dens = dens / dens.max()

    # 3. largest common scale at which all charts (+ gutters) fit: bisection on the packer
    def fits(s: float) -> np.ndarray | None:
        return _skyline_pack(src_size_a * (dens * s)[:, None] + 2 * gutter)

    lo_s, hi_s = 0.0, 1.0 / float((src_size_a.max(1) * dens).max())  # biggest chart alone fills it
    best = None
    for _ in range(40):
        mid = 0.5 * (lo_s + hi_s)
        pos = fits(mid)
        if pos is not None:
            lo_s, best = mid, pos
        else:
            hi_s = mid
    if best is None:
        raise ValueError("could not pack the UV charts into one texture")
    scale = dens * lo_s

    # 4. move the UV corners; a UV index shared by two charts (none in practice) is duplicated
    new_uv: list[np.ndarray] = []
    new_faces_uv = np.empty_like(faces_uv)
    charts = []
    offset = 0
    for c, fs in enumerate(chart_faces):
        used, inv = np.unique(faces_uv[fs], return_inverse=True)
        dst = best[c] + gutter
        new_uv.append(dst + (uv_coords[used] - src_min_a[c]) * scale[c])
        new_faces_uv[fs] = inv.reshape(-1, 3) + offset
        offset += len(used)
        charts.append(Chart(faces=fs, src_min=src_min_a[c], src_size=src_size_a[c], dst_min=dst, scale=float(scale[c])))
    uv = np.clip(np.concatenate(new_uv), 0.0, 1.0).astype(np.float32)
    return UVAtlas(uv=uv, faces_uv=new_faces_uv, charts=tuple(charts), gutter=float(gutter))


_ATLAS_CACHE: dict[tuple, UVAtlas] = {}


def frontal_vertices(verts: np.ndarray, landmark_idx: np.ndarray, depth_mm: float = 15.0) -> np.ndarray:
    """Vertices (ids) of the inner face: inside the x–y box of the 68 landmarks and no more than
    ``depth_mm`` behind the deepest landmark. Their charts (face, eyeballs) get texture priority."""
    lm = verts[landmark_idx]
    lo, hi = lm.min(0), lm.max(0)
    inside = ((verts[:, :2] >= lo[:2]) & (verts[:, :2] <= hi[:2])).all(1) & (verts[:, 2] >= lo[2] - depth_mm)
    return np.flatnonzero(inside)


def model_atlas(model) -> UVAtlas:
    """The single-texture atlas of a :class:`~facerecon.facemodel.model.FaceModel` (cached per
    model name, source and vertex set); charts of the inner face and the eyeballs
    (:func:`frontal_vertices` of the face-model region "fit") get the higher texel density —
    not the parts inside the head (mouth socket, teeth), which lie in the same box."""
    if model.faces_uv is None or len(model.faces_uv) == 0:
        raise ValueError(f"face model '{model.name}' has no UV layout")
    ids = np.asarray(model.vertex_ids)
    key = (model.name, model.source_sha256, len(ids), int(ids.sum()), int(len(model.faces_uv)))
    atlas = _ATLAS_CACHE.get(key)
    if atlas is None:
        from facerecon.facemodel.model import region_vertex_ids

        mean = model.mean.detach().cpu().numpy().astype(np.float64)
        front = frontal_vertices(mean, model.landmark_idx.detach().cpu().numpy())
        fit = region_vertex_ids("fit")
        front = front[np.isin(ids[front], fit)]
        faces = model.faces.detach().cpu().numpy()
        # the outer surface: UV islands all of whose vertices are in the "head" region (so that
        # the ring of triangles joining a socket to the lip or lid line counts as socket)
        island = uv_islands(np.asarray(model.faces_uv), len(model.uv_coords))
        outer = np.isin(ids[faces], region_vertex_ids("head")).all(1)
        inner_islands = np.unique(island[~outer])
        surface = ~np.isin(island, inner_islands)
        atlas = build_atlas(model.uv_coords, model.faces_uv, mean, faces, front, density_faces=surface)
        _ATLAS_CACHE[key] = atlas
    return atlas


__all__ = ["Chart", "UVAtlas", "build_atlas", "frontal_vertices", "model_atlas", "uv_islands"]
