"""``facerecon bench fit``: single-image fitting time per photo, by batch size."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from facerecon.config import add_arguments as add_config_arguments
from facerecon.config import from_args
from facerecon.fitting.engine import FitConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=Path, default=None,
                        help="folder of photos (default: ../shared/faces/lfw, first photo of each person)")
    parser.add_argument("--count", type=int, default=8, help="photos timed per batch size")
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_config_arguments(parser.add_argument_group("fitting"), FitConfig)


def _photos(folder: Path | None, count: int) -> list[Path]:
    from facerecon.assets import shared_path
    from facerecon.cli import UserError

    if folder is None:
        lfw = shared_path("faces", "lfw")
        if lfw is None:
            raise UserError("no --images given and ../shared/faces/lfw not found")
        people = sorted(p for p in lfw.iterdir() if p.is_dir())
        return [sorted(p.glob("*.jpg"))[0] for p in people[:count]]
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:count]


def run(args: argparse.Namespace) -> int:
    import torch

    from facerecon.cli import UserError
    from facerecon.pipeline import FaceReconstructor

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA device")
    config = from_args(FitConfig, args)
    recon = FaceReconstructor(device=args.device, config=config, engine="fit")  # the fitter's own speed
    photos = _photos(args.images, args.count)
    items = []
    t0 = time.perf_counter()
    for p in photos:
        try:
            photo, faces = recon.prepare(p)
            items.append((photo, faces[0]))
        except ValueError:
            continue
    prep_s = (time.perf_counter() - t0) / max(len(photos), 1)
    if not items:
        raise UserError("no usable photos")
    recon.fit_prepared(items[:1])  # warm-up: compiled kernels, caches
    rows = []
    dev = torch.device(args.device)
    for b in args.batch:
        batch = (items * ((b + len(items) - 1) // len(items)))[: max(b, len(items))]
        per_photo = []  # each batch timed on its own: the median resists a noisy shared host
        for i in range(0, len(batch) - b + 1, b):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            recon.fit_prepared(batch[i : i + b])
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            per_photo.append((time.perf_counter() - t0) / b)
        per = statistics.median(per_photo)
        rows.append({"batch": b, "photos": len(per_photo) * b, "seconds_per_photo": per,
                     "photos_per_second": 1 / per, "batches_timed": len(per_photo)})
    out = {"device": args.device, "prepare_seconds_per_photo": prep_s, "threads": torch.get_num_threads(),
           "config": {"landmark_steps": config.landmark_steps, "steps": config.steps, "perceptual": config.perceptual,
                      "region": config.region}, "rows": rows}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"fitting on {args.device}: {config.landmark_steps} landmark + {config.steps} full steps, "
          f"perceptual={config.perceptual}; photo preparation {prep_s * 1000:.0f} ms/photo")
    print(f"{'batch':>6} {'photos':>7} {'s/photo':>9} {'photos/s':>9}")
    for r in rows:
        print(f"{r['batch']:>6} {r['photos']:>7} {r['seconds_per_photo']:>9.2f} {r['photos_per_second']:>9.2f}")
    return 0
