"""Renderer timing: forward and forward+backward of the full shading + rasterization pipeline."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from facerecon.render.camera import Camera, default_translation, transform
from facerecon.render.renderer import Renderer
from facerecon.render.shading import ambient_gamma, sh_shading


@dataclass
class RenderTiming:
    """Median milliseconds per image over the timed iterations."""

    device: str
    batch: int
    size: int
    vertices: int
    triangles: int
    forward_ms_per_image: float
    forward_backward_ms_per_image: float
    images_per_second: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_render(face_model, batch: int = 8, size: int = 224, iters: int = 10, warmup: int = 3,
                device: str = "cpu", backend: str = "auto") -> RenderTiming:
    """Time shape -> normals -> SH shading -> rasterize -> interpolate (and backward) for random faces
    with yaw spread over ±45°. Returns median per-image times."""
    dev = torch.device(device)
    model = face_model.to(dev)
    renderer = Renderer(Camera().scaled(size), backend=backend)
    g = torch.Generator().manual_seed(0)
    alpha = (0.7 * torch.randn(batch, model.n_id, generator=g)).to(dev).requires_grad_()
    delta = torch.zeros(batch, model.n_tex, device=dev, requires_grad=True)
    gamma = ambient_gamma(batch, 0.8, device=dev).requires_grad_()
    angles = torch.zeros(batch, 3, device=dev)
    angles[:, 1] = torch.linspace(-0.8, 0.8, batch, device=dev)
    trans = default_translation(batch, device=dev)

    def step(backward: bool) -> None:
        verts = transform(model.shape(alpha), angles, trans)
        colors = sh_shading(model.albedo(delta), model.vertex_normals(verts), gamma)
        out = renderer(verts, model.faces, colors)
        if backward:
            out.image.square().mean().backward()

    times = {}
    for backward in (False, True):
        samples = []
        for i in range(warmup + iters):
            _sync(dev)
            t0 = time.perf_counter()
            if backward:
                step(True)
            else:
                with torch.no_grad():
                    step(False)
            _sync(dev)
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
        times[backward] = sorted(samples)[len(samples) // 2] / batch
    return RenderTiming(
        device=str(dev), batch=batch, size=size, vertices=model.n_vertices, triangles=len(model.faces),
        forward_ms_per_image=1000 * times[False], forward_backward_ms_per_image=1000 * times[True],
        images_per_second=1.0 / times[True],
    )
