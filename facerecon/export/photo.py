"""From the fitted camera to the original photo: projection through the crop→photo transform, and
rasterization directly in photo pixels (so renders match the photo's resolution exactly, with
no resampling of a 224-pixel render).

Pixel conventions. Crop coordinates are what :func:`facerecon.render.project` returns and what
the fitter compares with the aligned landmarks; ``M_inv`` (2×3, from
:class:`facerecon.imageio.align.AlignedFace`) maps them to photo pixel coordinates in the OpenCV
and dlib convention: x right, y down, the *centre* of pixel (row i, column j) at (j, i). The
rasterizer puts pixel centres at (j + ½, i + ½), hence the ½ shift in :func:`rasterize_photo`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch

from facerecon.forward import ForwardModel
from facerecon.params import FaceParams
from facerecon.render.camera import Camera, project
from facerecon.render.raster import Fragments, rasterize
from facerecon.render.renderer import RASTER_SHIFT


@dataclass
class PosedMesh:
    """A fitted face, evaluated once by the forward model: float32 numpy arrays, one row per vertex."""

    verts: np.ndarray
    """Model space, mm: identity + expression, no rotation or translation (the exported mesh)."""
    normals: np.ndarray
    """Unit vertex normals in model space."""
    verts_cam: np.ndarray
    """Camera space, mm: ``R(angles) verts + trans`` (the camera looks down −z)."""
    normals_cam: np.ndarray
    """Unit vertex normals in camera space."""
    albedo: np.ndarray
    """Fitted albedo, RGB in [0,1] (clipped)."""
    color: np.ndarray
    """Fitted albedo × fitted SH shading, RGB in [0,1] (clipped): the colour the fit rendered."""
    landmarks_crop: np.ndarray
    """(68,2) the 68 landmarks projected into the fitted crop, pixels, jaw contour on the silhouette."""


def posed_mesh(model, params: FaceParams, camera: Camera | None = None) -> PosedMesh:
    """Evaluate ``model`` (any region) at the fitted ``params`` (batch 1, any device) through
    the forward model, as numpy arrays for the writers."""
    if params.batch != 1:
        raise ValueError(f"expected the parameters of one face (batch 1), got {params.batch}")
    dev = model.mean.device
    with torch.no_grad():
        out = ForwardModel(model, camera)(params.map(lambda t: t.detach().to(dev, torch.float32)), render=False)
    arr = lambda t: np.ascontiguousarray(t[0].float().cpu().numpy())  # noqa: E731
    return PosedMesh(arr(out.verts), arr(out.normals()), arr(out.verts_cam), arr(out.normals_cam),
                     arr(out.albedo), arr(out.colors.clamp(0.0, 1.0)), arr(out.landmarks))


def affine_scale(M: np.ndarray) -> float:
    """The (geometric-mean) scale factor of a 2×3 affine matrix."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(M, dtype=np.float64)[:, :2]))))


def to_photo(xy_crop: torch.Tensor, M_inv: np.ndarray) -> torch.Tensor:
    """Crop-pixel points (…,2) -> photo pixels (…,2) through the 2×3 crop→photo matrix."""
    M = torch.as_tensor(np.asarray(M_inv, dtype=np.float64), dtype=xy_crop.dtype, device=xy_crop.device)
    return xy_crop @ M[:, :2].T + M[:, 2]


def to_photo_np(xy_crop: np.ndarray, M_inv: np.ndarray) -> np.ndarray:
    """Crop-pixel points (…,2) -> photo pixels (…,2) float64 (numpy)."""
    M = np.asarray(M_inv, dtype=np.float64)
    return np.asarray(xy_crop, dtype=np.float64) @ M[:, :2].T + M[:, 2]


def project_to_photo(verts_cam: torch.Tensor, camera: Camera, M_inv: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-space points (B,V,3) mm -> photo pixels (B,V,2) and depth (B,V) mm."""
    xy, depth = project(verts_cam, camera)
    return to_photo(xy, M_inv), depth


@dataclass
class PhotoRaster:
    """Front triangles of a mesh over a window of the photo (window pixel (r, c) is photo pixel
    (y0 + r, x0 + c))."""

    x0: int
    """Column of the window's left edge in the photo."""
    y0: int
    """Row of the window's top edge in the photo."""
    tri_id: torch.Tensor
    """(h,w) front triangle per window pixel, −1 where none."""
    xy: torch.Tensor
    """(V,2) the vertices in the rasterizer's window coordinates (pixel centres at +½)."""
    depth_v: torch.Tensor
    """(V,) vertex depths, mm."""
    faces: torch.Tensor
    """(F,3) the rasterized triangles."""

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.tri_id.shape[0]), int(self.tri_id.shape[1])

    def fragments(self) -> Fragments:
        """Covered pixels with perspective-correct barycentrics, as the renderer's
        :class:`~facerecon.render.raster.Fragments` (differentiable; slower than :meth:`interpolate`)."""
        return Fragments(self.xy[None], self.depth_v[None], self.faces, self.tri_id[None])

    def interpolate(self, attrs: np.ndarray) -> np.ndarray:
        """Vertex attributes (V,C) -> (h,w,C) float32 images, perspective-correct, 0 off the mesh."""
        vals = np.ascontiguousarray(np.asarray(attrs, dtype=np.float32).reshape(len(self.xy), -1))
        return _pixel_interp_kernel(self.tri_id.numpy(), np.ascontiguousarray(self.xy.numpy(), dtype=np.float32),
                                    self._invz(), self.faces.numpy(), vals)

    def depth(self) -> np.ndarray:
        """(h,w) float32 depth in mm of the front surface, +inf where no triangle."""
        iz = self.interpolate(self._invz()[:, None])[..., 0]
        return np.where(self.tri_id.numpy() >= 0, 1.0 / np.maximum(iz, 1e-12), np.inf).astype(np.float32)

    def _invz(self) -> np.ndarray:
        return (1.0 / np.maximum(self.depth_v.numpy(), 1e-6)).astype(np.float32)


@numba.njit(parallel=True, cache=True, nogil=True)
def _pixel_interp_kernel(tri_id, xy, invz, faces, vals):  # pragma: no cover - jitted
    """Perspective-correct interpolation of vertex values at covered pixel centres."""
    h, w = tri_id.shape
    c = vals.shape[1]
    out = np.zeros((h, w, c), np.float32)
    for row in numba.prange(h):
        cy = row + 0.5
        for col in range(w):
            t = tri_id[row, col]
            if t < 0:
                continue
            a, b, d = faces[t, 0], faces[t, 1], faces[t, 2]
            xa, ya, xb, yb, xc, yc = xy[a, 0], xy[a, 1], xy[b, 0], xy[b, 1], xy[d, 0], xy[d, 1]
            area = (xb - xa) * (yc - ya) - (yb - ya) * (xc - xa)
            if area == 0:
                continue
            cx = col + 0.5
            w0 = ((xc - xb) * (cy - yb) - (yc - yb) * (cx - xb)) / area * invz[a]
            w1 = ((xa - xc) * (cy - yc) - (ya - yc) * (cx - xc)) / area * invz[b]
            w2 = ((xb - xa) * (cy - ya) - (yb - ya) * (cx - xa)) / area * invz[d]
            s = w0 + w1 + w2
            if s <= 0:
                continue
            for k in range(c):
                out[row, col, k] = (w0 * vals[a, k] + w1 * vals[b, k] + w2 * vals[d, k]) / s
    return out


def rasterize_photo(xy_photo: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor, height: int, width: int,
                    margin: int = 2, near: float = 1.0) -> PhotoRaster:
    """Z-buffer a mesh given in photo pixels (V,2) and depths (V,) mm, over the part of the
    ``height``×``width`` photo its bounding box covers (plus ``margin`` pixels).

    Only vertices in front of the camera count for the window (others are not drawn).
    """
    xy_photo, depth = xy_photo.detach().float().cpu(), depth.detach().float().cpu()
    faces = faces.detach().long().cpu()
    used = np.zeros(len(depth), bool)
    used[faces.numpy().ravel()] = True
    front = used & (depth.numpy() > near)
    if not front.any():
        return PhotoRaster(0, 0, torch.full((0, 0), -1, dtype=torch.long), xy_photo, depth, faces)
    pts = xy_photo.numpy()[front]
    lo = np.floor(pts.min(0)).astype(np.int64) - margin
    hi = np.ceil(pts.max(0)).astype(np.int64) + margin + 1
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), width), min(int(hi[1]), height)
    w, h = max(x1 - x0, 0), max(y1 - y0, 0)
    xy_r = xy_photo + RASTER_SHIFT - torch.tensor([float(x0), float(y0)])
    if w == 0 or h == 0:
        return PhotoRaster(x0, y0, torch.full((h, w), -1, dtype=torch.long), xy_r, depth, faces)
    tri = rasterize(xy_r[None], depth[None], faces, h, w, near=near)[0]
    return PhotoRaster(x0, y0, tri, xy_r, depth, faces)


__all__ = ["PosedMesh", "posed_mesh", "affine_scale", "to_photo", "to_photo_np", "project_to_photo", "PhotoRaster", "rasterize_photo"]
