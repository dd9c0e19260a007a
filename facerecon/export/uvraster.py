"""Texels of a UV atlas as points of the mesh: which triangle and barycentrics each covered texel
lies at (a rasterization in UV space), interpolation of vertex values at texels, the filling of
empty texels between charts, and per-texel geometry of the mean face (position, normal, part).

Everything here depends only on the face model, the atlas and the texture size, so it is cached
per process: a batch of photos pays for it once.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numba
import numpy as np
import torch

from facerecon.export.atlas import UVAtlas
from facerecon.render.raster import rasterize


# ---------------------------------------------------------------------------------------------
# UV-space rasterization (cached: it depends only on the atlas and the size)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UVRaster:
    """The covered texels of an atlas at one size."""

    size: int
    pix: np.ndarray
    """(N,) flat texel index (row-major, row 0 = top = v 1)."""
    tri: np.ndarray
    """(N,) triangle index."""
    bary: np.ndarray
    """(N,3) float32 barycentric weights of the triangle's corners."""

    @property
    def mask(self) -> np.ndarray:
        """(S,S) bool, True on covered texels."""
        m = np.zeros(self.size * self.size, bool)
        m[self.pix] = True
        return m.reshape(self.size, self.size)


_UV_RASTER_CACHE: dict[tuple[int, int], tuple[UVAtlas, UVRaster]] = {}


def uv_raster(atlas: UVAtlas, size: int) -> UVRaster:
    """Rasterize the atlas triangles at ``size``² texels (cached for a few atlases and sizes)."""
    key = (id(atlas), int(size))
    hit = _UV_RASTER_CACHE.get(key)
    if hit is not None and hit[0] is atlas:
        return hit[1]
    xy = np.ascontiguousarray(atlas.pixels(size), dtype=np.float32)
    faces_uv = np.ascontiguousarray(atlas.faces_uv, dtype=np.int64)
    # Where UV triangles overlap (ICT maps the inner, back-facing sides of the irises onto the
    # same texels as the front), the z-buffer keeps the lowest id: list front-facing (counter-
    # clockwise in UV) triangles first so that the visible side owns the texels.
    t = xy[faces_uv]
    ccw = ((t[:, 1, 0] - t[:, 0, 0]) * (t[:, 2, 1] - t[:, 0, 1]) - (t[:, 1, 1] - t[:, 0, 1]) * (t[:, 2, 0] - t[:, 0, 0])) < 0
    order = np.argsort(~ccw, kind="stable")
    tri_id = rasterize(torch.from_numpy(xy)[None], torch.ones(1, len(xy)), torch.from_numpy(faces_uv[order]), size, size)
    flat = tri_id.reshape(-1).numpy()
    pix = np.flatnonzero(flat >= 0)
    tri = order[flat[pix]]
    out = UVRaster(size=int(size), pix=pix, tri=tri, bary=_uv_bary_kernel(pix, tri, xy, faces_uv, size))
    if len(_UV_RASTER_CACHE) >= 8:
        _UV_RASTER_CACHE.pop(next(iter(_UV_RASTER_CACHE)))
    _UV_RASTER_CACHE[key] = (atlas, out)
    return out


def fill_gaps(texture: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Give every uncovered texel the colour of its nearest covered texel (Euclidean), so that
    bilinear filtering and mip-maps across chart borders never pull in a background colour.

    ``texture`` (S,S,C), ``covered`` (S,S) bool; returns a new array of the same dtype.
    """
    if covered.all() or not covered.any():
        return texture.copy()
    holes = (~covered).astype(np.uint8)
    _, labels = cv2.distanceTransformWithLabels(holes, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    flat = np.flatnonzero(covered.ravel())
    lut = np.zeros(int(labels.max()) + 1, np.int64)
    lut[labels.ravel()[flat]] = flat
    src = lut[labels.ravel()]
    c = texture.shape[2] if texture.ndim == 3 else 1
    return texture.reshape(-1, c)[src].reshape(texture.shape)


@numba.njit(parallel=True, cache=True, nogil=True)
def _uv_bary_kernel(pix, tri, xy, faces, size):  # pragma: no cover - jitted
    """Barycentrics (N,3) float32 of texel centres ``pix`` (flat) in their triangles ``tri``."""
    n = pix.shape[0]
    out = np.empty((n, 3), np.float32)
    for i in numba.prange(n):
        cx, cy = pix[i] % size + 0.5, pix[i] // size + 0.5
        a, b, c = faces[tri[i], 0], faces[tri[i], 1], faces[tri[i], 2]
        xa, ya, xb, yb, xc, yc = xy[a, 0], xy[a, 1], xy[b, 0], xy[b, 1], xy[c, 0], xy[c, 1]
        area = (xb - xa) * (yc - ya) - (yb - ya) * (xc - xa)
        if area == 0:
            out[i, 0], out[i, 1], out[i, 2] = 1.0, 0.0, 0.0
            continue
        w0 = ((xc - xb) * (cy - yb) - (yc - yb) * (cx - xb)) / area
        w1 = ((xa - xc) * (cy - yc) - (ya - yc) * (cx - xc)) / area
        out[i, 0], out[i, 1], out[i, 2] = w0, w1, 1.0 - w0 - w1
    return out


@numba.njit(parallel=True, cache=True, nogil=True)
def _interp_kernel(bary, corners, vals):  # pragma: no cover - jitted
    """out[i] = Σ_k bary[i,k] · vals[corners[i,k]]  (N,C) float32."""
    n, c = bary.shape[0], vals.shape[1]
    out = np.empty((n, c), np.float32)
    for i in numba.prange(n):
        a, b, d = corners[i, 0], corners[i, 1], corners[i, 2]
        for k in range(c):
            out[i, k] = bary[i, 0] * vals[a, k] + bary[i, 1] * vals[b, k] + bary[i, 2] * vals[d, k]
    return out


def interpolate(ras: UVRaster, faces: np.ndarray, values: np.ndarray, sel: np.ndarray | None = None) -> np.ndarray:
    """Vertex values (V,C) or (V,) -> (N,C) float32 at the covered texels of ``ras`` (or at
    ``sel`` of them), barycentric in each texel's triangle of ``faces`` (F,3)."""
    vals = np.ascontiguousarray(np.asarray(values, dtype=np.float32).reshape(len(values), -1))
    corners = faces[ras.tri] if sel is None else faces[ras.tri[sel]]
    bary = ras.bary if sel is None else ras.bary[sel]
    return _interp_kernel(np.ascontiguousarray(bary), np.ascontiguousarray(corners), vals)


def to_image(ras: UVRaster, values: np.ndarray, fill=0) -> np.ndarray:
    """Per-texel values (N,…) as an (S,S,…) image, ``fill`` on uncovered texels."""
    values = np.asarray(values)
    out = np.full((ras.size * ras.size,) + values.shape[1:], fill, values.dtype)
    out[ras.pix] = values
    return out.reshape((ras.size, ras.size) + values.shape[1:])


@dataclass(frozen=True)
class TexelGeometry:
    """Where the covered texels of an atlas lie on a face model's *mean* face (arrays over
    ``raster.pix``)."""

    raster: UVRaster
    position: np.ndarray
    """(N,3) float32 point on the mean face, mm."""
    normal: np.ndarray
    """(N,3) float32 unit normal there (interpolated vertex normals)."""
    part: np.ndarray
    """(N,) int16 index into :data:`PART_NAMES` of the ICT part the texel's triangle belongs to
    (its corner with the highest ICT index: the ring joining a socket to the face counts as socket),
    −1 if none."""
    ict_id: np.ndarray
    """(N,) int32 that highest full-ICT vertex index of the texel's triangle."""


#: ICT parts as :attr:`TexelGeometry.part` numbers them (the iris ranges are inside the eyeballs).
PART_NAMES = ("face", "head_neck", "mouth_socket", "eye_socket_left", "eye_socket_right", "gums_tongue",
              "teeth", "eyeball_left", "eyeball_right")

_TEXEL_GEOMETRY_CACHE: dict[tuple, tuple[UVAtlas, TexelGeometry]] = {}


def vertex_parts(vertex_ids: np.ndarray) -> np.ndarray:
    """(V,) int16 index into :data:`PART_NAMES` of each full-ICT vertex id (−1: none of them)."""
    from facerecon.facemodel.ict import PARTS

    ids = np.asarray(vertex_ids)
    out = np.full(len(ids), -1, np.int16)
    for k, name in enumerate(PART_NAMES):
        lo, hi = PARTS[name]
        out[(ids >= lo) & (ids < hi)] = k
    return out


def texel_geometry(model, atlas: UVAtlas, size: int) -> TexelGeometry:
    """Mean-face position, normal and ICT part of every covered texel (cached per model, atlas
    and size)."""
    from facerecon.geometry import vertex_normals_np

    ids = np.asarray(model.vertex_ids)
    key = (model.name, model.source_sha256, len(ids), int(ids.sum()), id(atlas), int(size))
    hit = _TEXEL_GEOMETRY_CACHE.get(key)
    if hit is not None and hit[0] is atlas:
        return hit[1]
    ras = uv_raster(atlas, size)
    faces = model.faces.detach().cpu().numpy()
    mean = model.mean.detach().cpu().numpy().astype(np.float64)
    normals = vertex_normals_np(mean, faces)
    pn = interpolate(ras, faces, np.concatenate([mean, normals], 1))
    nrm = pn[:, 3:] / np.maximum(np.linalg.norm(pn[:, 3:], axis=1, keepdims=True), 1e-9)
    corner_ids = ids[faces[ras.tri]]
    top = corner_ids.max(1)
    out = TexelGeometry(raster=ras, position=np.ascontiguousarray(pn[:, :3]),
                        normal=np.ascontiguousarray(nrm, dtype=np.float32), part=vertex_parts(top),
                        ict_id=top.astype(np.int32))
    if len(_TEXEL_GEOMETRY_CACHE) >= 4:
        _TEXEL_GEOMETRY_CACHE.pop(next(iter(_TEXEL_GEOMETRY_CACHE)))
    _TEXEL_GEOMETRY_CACHE[key] = (atlas, out)
    return out


__all__ = ["UVRaster", "uv_raster", "fill_gaps", "interpolate", "to_image", "TexelGeometry", "PART_NAMES",
           "vertex_parts", "texel_geometry"]
