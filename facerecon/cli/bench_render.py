"""``facerecon bench render``: renderer forward/backward time per image."""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass

import torch

from facerecon.forward import ForwardModel
from facerecon.params import FaceParams
from facerecon.render import Camera, ambient_gamma


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


def sync_device(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer reads what the device did (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_render(face_model, batch: int = 8, size: int = 224, iters: int = 10, warmup: int = 3,
                device: str = "cpu", backend: str = "auto") -> RenderTiming:
    """Time the forward model — shape -> normals -> SH shading -> rasterize -> interpolate (and
    backward) — for random faces with yaw spread over ±45°. Returns median per-image times."""
    dev = torch.device(device)
    model = face_model.to(dev)
    forward = ForwardModel(model, Camera().scaled(size), backend=backend)
    g = torch.Generator().manual_seed(0)
    params = FaceParams.zeros(batch, model.n_id, model.n_exp, model.n_tex, device=dev)
    params.alpha = (0.7 * torch.randn(batch, model.n_id, generator=g)).to(dev).requires_grad_()
    params.delta.requires_grad_()
    params.gamma = ambient_gamma(batch, 0.8, device=dev).requires_grad_()
    params.angles[:, 1] = torch.linspace(-0.8, 0.8, batch, device=dev)

    def step(backward: bool) -> None:
        out = forward(params)
        if backward:
            out.image.square().mean().backward()

    times = {}
    for backward in (False, True):
        samples = []
        for i in range(warmup + iters):
            sync_device(dev)
            t0 = time.perf_counter()
            if backward:
                step(True)
            else:
                with torch.no_grad():
                    step(False)
            sync_device(dev)
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
        times[backward] = sorted(samples)[len(samples) // 2] / batch
    return RenderTiming(
        device=str(dev), batch=batch, size=size, vertices=model.n_vertices, triangles=len(model.faces),
        forward_ms_per_image=1000 * times[False], forward_backward_ms_per_image=1000 * times[True],
        images_per_second=1.0 / times[True],
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, nargs="+", default=[8], help="batch sizes to time")
    parser.add_argument("--size", type=int, default=224, help="image size in pixels")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations (median reported)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--region", default="fit", choices=["face", "fit", "head"], help="face-model region rendered")
    parser.add_argument("--backend", default="auto", choices=["auto", "numba", "torch"], help="z-buffer")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from facerecon.facemodel import load_face_model

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        from facerecon.cli import UserError

        raise UserError("--device cuda asked for, but torch sees no CUDA device")
    model = load_face_model(args.region)
    rows = [time_render(model, batch=b, size=args.size, iters=args.iters, device=args.device,
                        backend=args.backend) for b in args.batch]
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    print(f"renderer, region={args.region} ({rows[0].vertices} vertices, {rows[0].triangles} triangles), "
          f"{args.size}x{args.size}, device={args.device}, torch threads={torch.get_num_threads()}, "
          f"cpus={os.cpu_count()}")
    print(f"{'batch':>6} {'fwd ms/img':>11} {'fwd+bwd ms/img':>15} {'img/s (fwd+bwd)':>16}")
    for r in rows:
        print(f"{r.batch:>6} {r.forward_ms_per_image:>11.2f} {r.forward_backward_ms_per_image:>15.2f} "
              f"{r.images_per_second:>16.1f}")
    return 0
