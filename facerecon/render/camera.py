"""Perspective camera and rigid pose for 224×224 face crops.

Camera space: camera at the origin looking down −z, x right, y up (model space is the same
frame: faces look along +z). Pixels: u right, v down, pixel (i, j) has its centre at (j, i) — the
convention of OpenCV, dlib and the aligned crops' landmarks, so projected points, detected points and
rendered pixels all sit in one frame; the principal point is the image centre, ((size−1)/2, (size−1)/2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: Default distance from the camera to the model origin, mm; with the default focal length the
#: mean ICT face then spans roughly the aligned-crop template.
DEFAULT_DISTANCE = 1000.0


@dataclass(frozen=True)
class Camera:
    """A pinhole camera for square images: focal length and size in pixels, centred principal point."""

    focal: float | torch.Tensor = 1015.0
    """Focal length in pixels (1015 px at 224 px ≈ 12.6° field of view, a face about 1 m away);
    a (B,) tensor gives each batch item its own (photos taken from different distances)."""
    size: int = 224
    """Image width and height in pixels."""
    near: float = 1.0
    """Points closer than this (mm) are not drawn."""

    @property
    def center(self) -> float:
        """The principal point's u (and v), pixels: the image centre, (size − 1)/2 with pixel
        centres at whole numbers (a resized image keeps it at its centre)."""
        return (self.size - 1) / 2.0

    def scaled(self, size: int) -> "Camera":
        """The same field of view at another image size."""
        return Camera(focal=self.focal * size / self.size, size=size, near=self.near)

    @property
    def per_item(self) -> bool:
        """Whether the focal length is one per batch item (a tensor)."""
        return isinstance(self.focal, torch.Tensor)

    def item(self, i: int) -> "Camera":
        """Batch item ``i``'s camera (a float focal length; the camera itself when it has one focal)."""
        if not self.per_item:
            return self
        return Camera(focal=float(self.focal[i]), size=self.size, near=self.near)


def same_crop_translation(trans: torch.Tensor, focal: float | torch.Tensor, to_focal: float | torch.Tensor
                          ) -> torch.Tensor:
    """(B,3) mm: where a face placed at ``trans`` for a camera of focal length ``focal`` (pixels,
    float or (B,)) sits for one of ``to_focal`` so that both crops look alike: its depth scaled by
    ``to_focal / focal``, its sideways offset kept (pixel = centre + focal·x/z, so the head's
    origin projects to the same pixel and the face keeps its size; only the perspective differs)."""
    ratio = torch.as_tensor(to_focal, dtype=trans.dtype, device=trans.device) / torch.as_tensor(
        focal, dtype=trans.dtype, device=trans.device)
    return torch.cat([trans[..., :2], trans[..., 2:] * (ratio[..., None] if ratio.ndim else ratio)], -1)


def euler_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (B,3,3) from (B,3) angles in radians: pitch about x, yaw about y,
    roll about z, applied in that order (R = Rz·Ry·Rx). Positive yaw turns the face to its left."""
    p, y, r = angles.unbind(-1)
    cp, sp, cy, sy, cr, sr = p.cos(), p.sin(), y.cos(), y.sin(), r.cos(), r.sin()
    one, zero = torch.ones_like(p), torch.zeros_like(p)
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx


def matrix_to_euler(rot: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`euler_to_matrix` for |pitch|, |yaw| < 90°: (B,3,3) -> (B,3) radians."""
    yaw = -torch.asin(rot[:, 2, 0].clamp(-1, 1))
    pitch = torch.atan2(rot[:, 2, 1], rot[:, 2, 2])
    roll = torch.atan2(rot[:, 1, 0], rot[:, 0, 0])
    return torch.stack([pitch, yaw, roll], -1)


def default_translation(batch: int = 1, device=None, dtype=torch.float32) -> torch.Tensor:
    """(B,3) translation putting the model origin at DEFAULT_DISTANCE in front of the camera."""
    t = torch.zeros(batch, 3, device=device, dtype=dtype)
    t[:, 2] = -DEFAULT_DISTANCE
    return t


def transform(verts: torch.Tensor, angles: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """Model-space vertices (B,V,3) mm -> camera space: ``R(angles) v + trans``."""
    return verts @ euler_to_matrix(angles).transpose(1, 2) + trans[:, None, :]


def resize_px(points: torch.Tensor, size: int, to_size: int) -> torch.Tensor:
    """Pixel coordinates (…,2) in a ``size``-pixel image -> the same places after resizing it to
    ``to_size`` pixels (bilinear resampling with ``align_corners=False``, as OpenCV): pixel centres
    at whole numbers, so ``(p + ½)·to_size/size − ½``."""
    return (points + 0.5) * (to_size / size) - 0.5


def project(verts_cam: torch.Tensor, camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-space points (B,V,3) -> pixel coordinates (B,V,2) and depth (B,V) in mm (> 0 in front)."""
    depth = -verts_cam[..., 2]
    inv = 1.0 / depth.clamp(min=1e-6)
    focal = camera.focal
    if isinstance(focal, torch.Tensor):  # one per batch item
        focal = focal.to(verts_cam).reshape(-1, *([1] * (verts_cam.dim() - 2)))
    u = camera.center + focal * verts_cam[..., 0] * inv
    v = camera.center - focal * verts_cam[..., 1] * inv
    return torch.stack([u, v], -1), depth
