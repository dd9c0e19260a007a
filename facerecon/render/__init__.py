"""Rendering in pure PyTorch: perspective camera, SH shading, z-buffer + differentiable interpolation.

No compiled extension: the CPU z-buffer is numba, the GPU one vectorised torch.
"""

from facerecon.render.camera import (
    DEFAULT_DISTANCE,
    Camera,
    default_translation,
    euler_to_matrix,
    matrix_to_euler,
    project,
    resize_px,
    same_crop_translation,
    transform,
)
from facerecon.render.raster import Fragments, rasterize
from facerecon.render.renderer import Renderer, RenderOutput
from facerecon.render.shading import ambient_gamma, sh_basis, sh_shading

__all__ = [
    "Camera", "DEFAULT_DISTANCE", "default_translation", "euler_to_matrix", "matrix_to_euler",
    "project", "resize_px", "same_crop_translation", "transform", "rasterize", "Fragments", "Renderer", "RenderOutput",
    "sh_basis", "sh_shading", "ambient_gamma",
]
