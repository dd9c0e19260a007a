"""``facerecon bench render``: renderer forward/backward time per image."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, nargs="+", default=[8], help="batch sizes to time")
    parser.add_argument("--size", type=int, default=224, help="image size in pixels")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations (median reported)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--region", default="fit", choices=["face", "fit", "head"], help="face-model region rendered")
    parser.add_argument("--backend", default="auto", choices=["auto", "numba", "torch"], help="z-buffer")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    import torch

    from facerecon.facemodel import load_face_model
    from facerecon.render.bench import time_render

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
