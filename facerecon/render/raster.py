"""Rasterization: a z-buffer that finds each pixel's front triangle, then differentiable
perspective-correct barycentric interpolation of vertex attributes.

The z-buffer is not differentiable (it only picks triangle ids); gradients reach vertex
positions, colours and lights through the barycentric interpolation, as in nvdiffrast without
anti-aliasing. Two z-buffers give the same ids: numba on CPU tensors, vectorised torch elsewhere.
Both keep, per pixel, the nearest float32 depth, ties going to the lower triangle id.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

_NO_HIT = np.iinfo(np.int64).max


@numba.njit(cache=True, nogil=True)
def _zbuffer_numba(xy, invz, faces, height, width, near_inv):  # pragma: no cover - jitted
    """Per image: loop over triangles in id order; a strictly nearer depth wins, so ties keep
    the lower triangle id — the same order as the torch key ``(depth bits << 32) | id``.

    Single-threaded on purpose: a numba thread pool beside torch's OpenMP pool makes both
    spin-wait for the same cores (measured 4× slower fitting steps on a 2-core machine).
    """
    batch = xy.shape[0]
    n_faces = faces.shape[0]
    ids = np.full((batch, height, width), -1, dtype=np.int64)
    for b in range(batch):
        zb = np.full((height, width), np.inf, dtype=np.float32)
        ib = ids[b]
        for f in range(n_faces):
            i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
            z0, z1, z2 = invz[b, i0], invz[b, i1], invz[b, i2]
            if z0 <= 0 or z1 <= 0 or z2 <= 0 or z0 > near_inv or z1 > near_inv or z2 > near_inv:
                continue
            x0, y0 = xy[b, i0, 0], xy[b, i0, 1]
            x1, y1 = xy[b, i1, 0], xy[b, i1, 1]
            x2, y2 = xy[b, i2, 0], xy[b, i2, 1]
            area = np.float32((x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0))
            if area == 0:
                continue
            xmin = max(int(np.ceil(min(x0, x1, x2) - 0.5)), 0)
            xmax = min(int(np.floor(max(x0, x1, x2) - 0.5)), width - 1)
            ymin = max(int(np.ceil(min(y0, y1, y2) - 0.5)), 0)
            ymax = min(int(np.floor(max(y0, y1, y2) - 0.5)), height - 1)
            for py in range(ymin, ymax + 1):
                cy = np.float32(py + 0.5)
                for px in range(xmin, xmax + 1):
                    cx = np.float32(px + 0.5)
                    w0 = np.float32((x2 - x1) * (cy - y1) - (y2 - y1) * (cx - x1))
                    w1 = np.float32((x0 - x2) * (cy - y2) - (y0 - y2) * (cx - x2))
                    w2 = np.float32((x1 - x0) * (cy - y0) - (y1 - y0) * (cx - x0))
                    if area > 0:
                        if w0 < 0 or w1 < 0 or w2 < 0:
                            continue
                    elif w0 > 0 or w1 > 0 or w2 > 0:
                        continue
                    iz = np.float32(np.float32(w0 * z0 + w1 * z1 + w2 * z2) / area)
                    if iz <= 0:
                        continue
                    depth = np.float32(np.float32(1.0) / iz)
                    if depth < zb[py, px]:
                        zb[py, px] = depth
                        ib[py, px] = f
    return ids


def _zbuffer_torch(xy: torch.Tensor, invz: torch.Tensor, faces: torch.Tensor, height: int, width: int,
                   near_inv: float) -> torch.Tensor:
    """Vectorised z-buffer: enumerate each triangle's bounding-box pixels, keep the min key."""
    batch, n_faces = xy.shape[0], faces.shape[0]
    dev = xy.device
    tri = xy[:, faces]  # (B,F,3,2)
    iz = invz[:, faces]  # (B,F,3)
    valid = ((iz > 0) & (iz <= near_inv)).all(-1)
    x0 = torch.ceil(tri[..., 0].amin(-1) - 0.5).clamp(min=0)
    x1 = torch.floor(tri[..., 0].amax(-1) - 0.5).clamp(max=width - 1)
    y0 = torch.ceil(tri[..., 1].amin(-1) - 0.5).clamp(min=0)
    y1 = torch.floor(tri[..., 1].amax(-1) - 0.5).clamp(max=height - 1)
    nx = (x1 - x0 + 1).clamp(min=0).long()
    ny = (y1 - y0 + 1).clamp(min=0).long()
    count = torch.where(valid, nx * ny, torch.zeros_like(nx)).reshape(-1)
    keys = torch.full((batch * height * width,), _NO_HIT, dtype=torch.int64, device=dev)
    total = int(count.sum())
    if total == 0:
        return keys.reshape(batch, height, width)
    cand = torch.repeat_interleave(torch.arange(batch * n_faces, device=dev), count)
    start = torch.cumsum(count, 0) - count
    local = torch.arange(total, device=dev) - start[cand]
    nxc = nx.reshape(-1)[cand]
    px = x0.reshape(-1)[cand].long() + local % nxc
    py = y0.reshape(-1)[cand].long() + local // nxc
    v = tri.reshape(-1, 3, 2)[cand]
    z = iz.reshape(-1, 3)[cand]
    cx, cy = px.float() + 0.5, py.float() + 0.5
    xa, ya, xb, yb, xc, yc = v[:, 0, 0], v[:, 0, 1], v[:, 1, 0], v[:, 1, 1], v[:, 2, 0], v[:, 2, 1]
    area = (xb - xa) * (yc - ya) - (yb - ya) * (xc - xa)
    w0 = (xc - xb) * (cy - yb) - (yc - yb) * (cx - xb)
    w1 = (xa - xc) * (cy - yc) - (ya - yc) * (cx - xc)
    w2 = (xb - xa) * (cy - ya) - (yb - ya) * (cx - xa)
    pos = (area > 0) & (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
    neg = (area < 0) & (w0 <= 0) & (w1 <= 0) & (w2 <= 0)
    izp = (w0 * z[:, 0] + w1 * z[:, 1] + w2 * z[:, 2]) / torch.where(area == 0, torch.ones_like(area), area)
    inside = (pos | neg) & (izp > 0)
    depth = 1.0 / izp[inside]
    bits = depth.contiguous().view(torch.int32).long()
    face_id = cand[inside] % n_faces
    b = cand[inside] // n_faces
    key = (bits << 32) | face_id
    pix = (b * height + py[inside]) * width + px[inside]
    keys.scatter_reduce_(0, pix, key, reduce="amin")
    return keys.reshape(batch, height, width)


@torch.no_grad()
def rasterize(xy: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor, height: int, width: int,
              near: float = 1.0, backend: str = "auto") -> torch.Tensor:
    """Front triangle id per pixel (B,H,W) int64, −1 where no triangle covers the pixel centre.

    ``xy`` (B,V,2) pixel coordinates, ``depth`` (B,V) mm, ``faces`` (F,3). ``backend`` is
    "numba" (CPU), "torch" (any device) or "auto" (numba for CPU tensors, torch otherwise).
    """
    if backend == "auto":
        backend = "numba" if xy.device.type == "cpu" else "torch"
    invz = 1.0 / depth.float().clamp(min=1e-12)
    xy = xy.float()
    if backend == "numba":
        ids = _zbuffer_numba(
            xy.detach().cpu().contiguous().numpy(),
            invz.detach().cpu().contiguous().numpy(),
            faces.detach().cpu().long().contiguous().numpy(),
            int(height), int(width), np.float32(1.0 / near),
        )
        return torch.from_numpy(ids).to(xy.device)
    if backend == "torch":
        keys = _zbuffer_torch(xy, invz, faces.long(), int(height), int(width), 1.0 / near)
        return torch.where(keys != _NO_HIT, keys & 0xFFFFFFFF, torch.full_like(keys, -1))
    raise ValueError(f"unknown rasterizer backend '{backend}' (numba, torch or auto)")


class Fragments:
    """The covered pixels of a rasterized batch and their perspective-correct barycentrics.

    ``pix`` (N,) flat pixel index into B·H·W, ``batch`` (N,) image index, ``verts`` (N,3)
    vertex ids of the covering triangle, ``bary`` (N,3) weights (differentiable w.r.t. ``xy``
    and ``depth``), ``depth`` (N,) mm.
    """

    def __init__(self, xy: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor, tri_id: torch.Tensor) -> None:
        batch, height, width = tri_id.shape
        n_verts = xy.shape[1]
        flat = tri_id.reshape(-1)
        self.pix = torch.nonzero(flat >= 0).squeeze(1)
        self.batch = self.pix // (height * width)
        self.shape = (batch, height, width)
        f = faces[flat[self.pix]]  # (N,3)
        self.verts = f
        gidx = (self.batch[:, None] * n_verts + f).reshape(-1)
        self._gidx = gidx
        v = xy.reshape(-1, 2).index_select(0, gidx).reshape(-1, 3, 2)
        iz = (1.0 / depth.clamp(min=1e-6)).reshape(-1).index_select(0, gidx).reshape(-1, 3)
        rem = self.pix % (height * width)
        cx = (rem % width).to(xy.dtype) + 0.5
        cy = (rem // width).to(xy.dtype) + 0.5
        xa, ya, xb, yb, xc, yc = v[:, 0, 0], v[:, 0, 1], v[:, 1, 0], v[:, 1, 1], v[:, 2, 0], v[:, 2, 1]
        area = (xb - xa) * (yc - ya) - (yb - ya) * (xc - xa)
        area = torch.where(area.abs() < 1e-12, torch.full_like(area, 1e-12), area)
        w = torch.stack(
            [
                (xc - xb) * (cy - yb) - (yc - yb) * (cx - xb),
                (xa - xc) * (cy - yc) - (ya - yc) * (cx - xc),
                (xb - xa) * (cy - ya) - (yb - ya) * (cx - xa),
            ],
            -1,
        ) / area[:, None]
        wz = w * iz
        izp = wz.sum(-1)
        self.bary = wz / izp[:, None]
        self.depth = 1.0 / izp

    def interpolate(self, attrs: torch.Tensor) -> torch.Tensor:
        """Vertex attributes (B,V,C) -> per-fragment values (N,C)."""
        c = attrs.shape[-1]
        g = attrs.reshape(-1, c).index_select(0, self._gidx).reshape(-1, 3, c)
        return (g * self.bary[:, :, None]).sum(1)

    def to_image(self, values: torch.Tensor, background: torch.Tensor | float = 0.0) -> torch.Tensor:
        """Per-fragment values (N,C) -> images (B,C,H,W), ``background`` elsewhere."""
        b, h, w = self.shape
        c = values.shape[-1]
        if isinstance(background, torch.Tensor):
            out = background.permute(0, 2, 3, 1).reshape(-1, c).clone().to(values.dtype)
        else:
            out = values.new_full((b * h * w, c), float(background))
        out = out.index_put((self.pix,), values)
        return out.reshape(b, h, w, c).permute(0, 3, 1, 2)
