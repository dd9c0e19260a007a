"""Analytic anti-aliasing of silhouette edges: a rendered image that changes continuously as the
mesh moves, with gradients that reach vertex positions through the coverage of edge pixels.

A z-buffer image is a step function of the geometry: when an edge passes a pixel centre, that
pixel jumps from one surface (or the background) to another, and the gradient of the barycentric
interpolation never sees it. Here every pair of neighbouring pixels (left–right, top–bottom)
whose front triangles differ is checked for a silhouette edge of the nearer triangle crossing
the segment between the two centres — an edge of one triangle only (the mesh's border: eye and
mouth openings, the face region's rim) or between a triangle facing the camera and one facing
away — handled along the axis it crosses more steeply. Where it crosses at a fraction ``s`` of
the way from the nearer pixel's centre, the pixel the surface spills into (``s`` > ½) takes ``s
− ½`` of the nearer colour, and the nearer pixel, when the edge stops short of its border (``s``
< ½), takes ``½ − s`` of the other one: as the edge sweeps across a pixel centre both sides meet
at ½, so the image has no jump there, and ``s`` carries the gradient to the edge's two vertices.
The same idea as nvdiffrast's antialiasing operation (Laine et al. 2020, "Modular primitives for
high-performance differentiable rendering"), written here for this renderer from the paper's
description.

Apply it to the image composited over its real background (and to the coverage mask as one more
channel), so that edge pixels blend with what lies behind them.
"""

from __future__ import annotations

import torch

#: Pixels: how far outside the segment between two pixel centres a crossing may be found.
_SLACK = 1e-3


class EdgeTable:
    """The edges of a triangle list: ``edges`` (E,2) vertex ids, ``edge_faces`` (E,2) the one or two
    triangles on each edge (−1 for a border edge; an edge of more than two triangles keeps the
    lowest and highest numbered) and ``face_edges`` (F,3) each triangle's three edges (v0v1,
    v1v2, v2v0)."""

    def __init__(self, faces: torch.Tensor) -> None:
        f = faces.long()
        n_faces = f.shape[0]
        pairs = torch.stack([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 1).reshape(-1, 2)  # (3F,2)
        key = pairs.sort(1).values
        edges, inverse = torch.unique(key, dim=0, return_inverse=True)
        face_of = torch.arange(n_faces, device=f.device).repeat_interleave(3)
        n_edges = edges.shape[0]
        lowest = torch.full((n_edges,), n_faces, device=f.device).scatter_reduce(0, inverse, face_of, "amin")
        highest = torch.full((n_edges,), -1, device=f.device).scatter_reduce(0, inverse, face_of, "amax")
        edge_faces = torch.stack([lowest, torch.where(highest != lowest, highest, -1)], 1)
        self.edges = edges
        self.edge_faces = edge_faces
        self.face_edges = inverse.reshape(n_faces, 3)

    def silhouette(self, xy: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """(B,E) bool: border edges, and edges between a triangle that faces the camera and one that
        faces away (signed screen areas of opposite signs), for projected vertices (B,V,2)."""
        f = faces.long()
        a, b, c = xy[:, f[:, 0]], xy[:, f[:, 1]], xy[:, f[:, 2]]
        area = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
        sign = torch.sign(area.detach())  # (B,F)
        one, two = self.edge_faces[:, 0], self.edge_faces[:, 1]
        border = two < 0
        s1 = sign[:, one]
        s2 = sign[:, two.clamp(min=0)]
        return border[None] | (s1 * s2 < 0)


def antialias(image: torch.Tensor, tri_id: torch.Tensor, depth: torch.Tensor, xy: torch.Tensor,
              faces: torch.Tensor, table: EdgeTable) -> torch.Tensor:
    """Blend the pixels on both sides of every silhouette edge by the edge's position (see the
    module docstring). ``image`` (B,C,H,W) is the render composited over its background (any
    channels, e.g. RGB and coverage), ``tri_id`` (B,H,W) the front triangle per pixel (−1:
    background), ``depth`` (B,1,H,W) its depth (mm, any value on background), ``xy`` (B,V,2)
    the projected vertices in pixels (pixel ``(x, y)`` has its centre at ``x + ½, y + ½``),
    ``faces`` (F,3) and ``table`` its :class:`EdgeTable`. Returns a new (B,C,H,W) image."""
    b, c, h, w = image.shape
    sil = table.silhouette(xy, faces)  # (B,E)
    flat = image.permute(0, 2, 3, 1).reshape(-1, c)
    delta = torch.zeros_like(flat)
    tid = tri_id.reshape(-1)
    dep = depth.reshape(-1).detach()
    n_pix = h * w
    for dy, dx in ((0, 1), (1, 0)):
        ys, xs = torch.meshgrid(torch.arange(h - dy, device=image.device), torch.arange(w - dx, device=image.device),
                                indexing="ij")
        p = (torch.arange(b, device=image.device)[:, None, None] * n_pix + ys * w + xs).reshape(-1)
        q = p + dy * w + dx
        tp, tq = tid[p], tid[q]
        differ = tp != tq
        p, q, tp, tq = p[differ], q[differ], tp[differ], tq[differ]
        # the nearer pixel of the pair: the covered one, or the smaller depth
        q_near = (tp < 0) | ((tq >= 0) & (dep[q] < dep[p]))
        near = torch.where(q_near, q, p)
        far = torch.where(q_near, p, q)
        tri = torch.where(q_near, tq, tp)
        img = near // n_pix
        # the nearer triangle's silhouette edges crossing the segment between the two centres
        e = table.face_edges[tri]  # (N,3)
        is_sil = sil[img[:, None], e]  # (N,3)
        v = table.edges[e]  # (N,3,2)
        pa = xy[img[:, None], v[..., 0]]  # (N,3,2)
        pb = xy[img[:, None], v[..., 1]]
        rem_n, rem_f = near % n_pix, far % n_pix
        cn = torch.stack([(rem_n % w).to(xy.dtype) + 0.5, (rem_n // w).to(xy.dtype) + 0.5], -1)  # (N,2)
        cf = torch.stack([(rem_f % w).to(xy.dtype) + 0.5, (rem_f // w).to(xy.dtype) + 0.5], -1)
        along, across = (0, 1) if dx else (1, 0)  # the pair's axis, and the fixed coordinate
        fixed = cn[:, across][:, None]
        da = pb[..., across] - pa[..., across]
        safe = torch.where(da.abs() < 1e-9, torch.full_like(da, 1e-9), da)
        t = (fixed - pa[..., across]) / safe
        cross = pa[..., along] + t * (pb[..., along] - pa[..., along])
        step = (cf[:, along] - cn[:, along])[:, None]  # ±1
        s = (cross - cn[:, along][:, None]) / step
        # each edge is handled along one axis only, the one it crosses more steeply (else a pixel
        # beside a slanted edge would take its blend twice, from its side and from below)
        steep = da.abs() >= (pb[..., along] - pa[..., along]).abs()
        # (a little slack at the ends: the z-buffer's coverage test and this crossing can disagree
        # by float rounding when an edge passes right through a pixel centre)
        ok = is_sil & steep & (da.abs() >= 1e-9) & (t >= 0) & (t <= 1) & (s >= -_SLACK) & (s <= 1 + _SLACK)
        s = s.clamp(0.0, 1.0)
        if not bool(ok.any()):
            continue
        # the crossing nearest the nearer pixel's centre (the first edge the segment meets)
        s = torch.where(ok, s, torch.full_like(s, 2.0))
        s, k = s.min(1)
        keep = s <= 1
        s, near, far = s[keep], near[keep], far[keep]
        diff = flat[far] - flat[near]  # (N,C)
        spill = (s - 0.5).clamp(min=0)[:, None]  # the nearer surface reaches into the far pixel
        short = (0.5 - s).clamp(min=0)[:, None]  # the nearer pixel is not covered to its border
        delta = delta.index_add(0, far, -spill * diff).index_add(0, near, short * diff)
    out = flat + delta
    return out.reshape(b, h, w, c).permute(0, 3, 1, 2)


__all__ = ["EdgeTable", "antialias"]
