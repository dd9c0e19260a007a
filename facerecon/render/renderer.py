"""The renderer: camera-space mesh + vertex colours -> image, coverage mask, depth, triangle ids."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facerecon.render.antialias import EdgeTable, antialias
from facerecon.render.camera import Camera, project
from facerecon.render.raster import Fragments, rasterize

#: Projected pixel coordinates (pixel centres at whole numbers, as OpenCV and dlib) -> the
#: rasterizer's (pixel (i, j) covers [j, j+1) × [i, i+1), its centre at (j + ½, i + ½)).
RASTER_SHIFT = 0.5


@dataclass
class RenderOutput:
    """One rendered batch. Images are (B,C,H,W); ``tri_id`` is (B,H,W) with −1 for background."""

    image: torch.Tensor
    """Interpolated vertex colours over ``background`` (B,3,H,W)."""
    mask: torch.Tensor
    """Coverage, 1 where a triangle covers the pixel centre (B,1,H,W); with anti-aliasing the
    fraction of the pixel the face covers along its silhouette edges."""
    depth: torch.Tensor
    """Depth along the optical axis in mm, 0 on background (B,1,H,W)."""
    tri_id: torch.Tensor
    """Front triangle per pixel (B,H,W), −1 on background."""
    fragments: Fragments
    """Covered pixels with their barycentrics, to interpolate further attributes (its ``xy`` are
    the rasterizer's, ``xy`` + :data:`RASTER_SHIFT`)."""
    xy: torch.Tensor
    """Projected vertices (B,V,2) in pixels (:func:`~facerecon.render.camera.project`: pixel centres
    at whole numbers)."""


class Renderer(nn.Module):
    """Rasterize and interpolate: ``Renderer(camera)(verts_cam, faces, colors)``.

    Works on any device: the z-buffer runs in numba for CPU tensors and in vectorised torch
    otherwise (``backend`` forces one). Gradients flow to vertex positions, colours and
    anything the colours were computed from (lights, albedo). With ``antialias`` the image and
    mask are blended across silhouette edges (:mod:`facerecon.render.antialias`): they change
    continuously as the mesh moves, and their gradients see the edges move.
    """

    def __init__(self, camera: Camera | None = None, backend: str = "auto", antialias: bool = False) -> None:
        super().__init__()
        self.camera = camera or Camera()
        self.backend = backend
        self.antialias = antialias
        self._edges: tuple[torch.Tensor, EdgeTable] | None = None

    def edge_table(self, faces: torch.Tensor) -> EdgeTable:
        """The :class:`EdgeTable` of ``faces`` (built once per triangle list)."""
        if self._edges is None or self._edges[0] is not faces:
            self._edges = (faces, EdgeTable(faces))
        return self._edges[1]

    def forward(self, verts_cam: torch.Tensor, faces: torch.Tensor, colors: torch.Tensor,
                background: torch.Tensor | float = 0.0) -> RenderOutput:
        cam = self.camera
        xy, depth = project(verts_cam, cam)
        xy_r = xy + RASTER_SHIFT  # the rasterizer's pixel (i, j) covers [j, j+1) × [i, i+1)
        tri_id = rasterize(xy_r, depth, faces, cam.size, cam.size, near=cam.near, backend=self.backend)
        frags = Fragments(xy_r, depth, faces, tri_id)
        image = frags.to_image(frags.interpolate(colors), background)
        mask = (tri_id >= 0).unsqueeze(1).to(colors.dtype)
        depth_img = frags.to_image(frags.depth[:, None].detach(), 0.0)
        if self.antialias:
            both = antialias(torch.cat([image, mask], 1), tri_id, depth_img, xy_r, faces, self.edge_table(faces))
            image, mask = both[:, :-1], both[:, -1:]
        return RenderOutput(image=image, mask=mask, depth=depth_img, tri_id=tri_id, fragments=frags, xy=xy)
