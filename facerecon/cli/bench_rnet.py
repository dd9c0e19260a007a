"""``facerecon bench rnet``: R-Net from aligned crops to meshes, milliseconds per photo by batch size."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from facerecon.cli.bench_render import sync_device


@dataclass
class RNetTiming:
    """Median milliseconds per photo over the timed iterations (warm-up excluded)."""

    device: str
    trunk: str
    batch: int
    threads: int
    amp: str
    """Autocast of the forward pass: "off" (float32) or "bf16"."""
    channels_last: bool
    ms_per_photo: float
    """Crops (uint8, host) -> device tensor -> R-Net forward -> FaceParams -> vertices (mm)."""
    forward_ms_per_photo: float
    """The network's forward pass alone."""
    photos_per_second: float


def time_rnet(net, face_model, batch: int, iters: int = 5, warmup: int = 2, device: str = "cpu",
              seed: int = 0, amp: str = "off", channels_last: bool = False) -> RNetTiming:
    """Time ``net`` (eval, no grad) on ``batch`` aligned crops from host uint8 (B,S,S,3) to the
    face model's vertices (B,V,3) in mm: upload and scaling to [0,1], the forward pass, the
    FaceParams split and ``face_model.shape(α, β)``. Crops are random pixels (a convolutional
    network's time does not depend on them). ``amp`` "bf16" runs the forward pass under bfloat16
    autocast, ``channels_last`` keeps the network and the crops in NHWC layout (the usual GPU
    settings). Returns the median of ``iters`` timed runs."""
    if amp not in ("off", "bf16"):
        raise ValueError(f"amp must be 'off' or 'bf16' (got {amp!r})")
    dev = torch.device(device)
    net = net.to(dev).eval()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=layout)
    model = face_model.to(dev)
    size = net.config.input_size
    g = torch.Generator().manual_seed(seed)
    crops = torch.randint(0, 256, (batch, size, size, 3), generator=g, dtype=torch.uint8)
    landmarks = (torch.rand(batch, 68, 2, generator=g) * size).to(dev)  # used by landmark_input networks
    total, forward = [], []
    with torch.inference_mode():
        for i in range(warmup + iters):
            sync_device(dev)
            t0 = time.perf_counter()
            x = (crops.to(dev).permute(0, 3, 1, 2).float() / 255.0).contiguous(memory_format=layout)
            sync_device(dev)
            t1 = time.perf_counter()
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
                params = net.predict(x, landmarks)
            params = params.map(lambda t: t.float())
            sync_device(dev)
            t2 = time.perf_counter()
            model.shape(params.alpha, params.beta)
            sync_device(dev)
            t3 = time.perf_counter()
            if i >= warmup:
                total.append((t3 - t0) / batch)
                forward.append((t2 - t1) / batch)
    per = statistics.median(total)
    return RNetTiming(device=str(dev), trunk=net.config.trunk, batch=batch, threads=torch.get_num_threads(),
                      amp=amp, channels_last=channels_last, ms_per_photo=1000 * per,
                      forward_ms_per_photo=1000 * statistics.median(forward),
                      photos_per_second=1.0 / per)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trunk", choices=["resnet50", "resnet18", "facenet"], default="resnet50",
                        help="network trunk of an untrained R-Net (ignored with --checkpoint)")
    parser.add_argument("--checkpoint", type=Path, default=None, metavar="PATH",
                        help="time this R-Net checkpoint instead (its own trunk and input size)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes to time")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per batch size (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first, per batch size")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--region", default="head", choices=["narrow", "fit", "head"],
                        help="face-model region of the vertices (head: the exported mesh's)")
    parser.add_argument("--amp", choices=["off", "bf16"], default="off",
                        help="forward pass in float32 (off) or under bfloat16 autocast")
    parser.add_argument("--channels-last", action="store_true", help="NHWC layout for the network and the crops")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from facerecon.cli import UserError
    from facerecon.facemodel import load_face_model
    from facerecon.nets.rnet import RNet, RNetConfig, load_checkpoint

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA device")
    if min(args.batch) < 1 or args.iters < 1 or args.warmup < 0:
        raise UserError("--batch and --iters must be at least 1, --warmup at least 0")
    if args.checkpoint is not None:
        if not args.checkpoint.is_file():
            raise UserError(f"--checkpoint {args.checkpoint}: no such file")
        try:
            net, _ = load_checkpoint(args.checkpoint)
        except Exception as exc:  # not a checkpoint: torch.load's errors vary
            raise UserError(f"{args.checkpoint}: not a readable R-Net checkpoint "
                            f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})"
                            ) from None
    else:
        net = RNet(RNetConfig(trunk=args.trunk))
    model = load_face_model(args.region)
    rows = [time_rnet(net, model, b, iters=args.iters, warmup=args.warmup, device=args.device, amp=args.amp,
                      channels_last=args.channels_last) for b in args.batch]
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    print(f"R-Net {net.config.trunk}, {net.config.input_size}x{net.config.input_size} crops -> "
          f"{model.n_vertices} vertices ({args.region}), device={args.device}, "
          f"amp={args.amp}, channels_last={args.channels_last}, "
          f"torch threads={torch.get_num_threads()}, cpus={os.cpu_count()}")
    print(f"{'batch':>6} {'ms/photo':>9} {'forward ms/photo':>17} {'photos/s':>9}")
    for r in rows:
        print(f"{r.batch:>6} {r.ms_per_photo:>9.1f} {r.forward_ms_per_photo:>17.1f} {r.photos_per_second:>9.1f}")
    return 0
