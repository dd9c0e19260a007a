"""``facerecon bench fit``: single-image fitting time per photo, by batch size; photos detected
and prepared as ``reconstruct`` does, or aligned crops read from a shards folder (a machine
without the detector, e.g. a GPU host)."""

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
    parser.add_argument("--shards", type=Path, default=None, metavar="DIR",
                        help="time the fitter on the aligned crops, landmarks and skin attention of this shards "
                             "folder (facerecon data prepare) instead of detecting photos")
    parser.add_argument("--count", type=int, default=8, help="photos timed per batch size")
    parser.add_argument("--max-batches", type=int, default=0, metavar="N",
                        help="time at most N batches of each size (0: every batch of the count)")
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


def _photo_batches(folder: Path | None, count: int, config: FitConfig, device: str):
    """``(fit(rows), photos, source)``: detected and prepared photos, fitted as ``reconstruct`` does."""
    from facerecon.cli import UserError
    from facerecon.pipeline import FaceReconstructor

    recon = FaceReconstructor(device=device, config=config, engine="fit")  # the fitter's own speed
    items = []
    for p in _photos(folder, count):
        try:
            photo, faces = recon.prepare(p)
            items.append((photo, faces[0]))
        except ValueError:
            continue
    if not items:
        raise UserError("no usable photos")
    return (lambda rows: recon.fit_prepared([items[i] for i in rows])), len(items), "photos (detected)"


def _shard_batches(shards: Path, count: int, config: FitConfig, device):
    """``(fit(rows), photos, source)``: the first ``count`` crops of a shards folder, fitted by the
    fitter ``facerecon label`` runs (crops on the CPU, uploaded in each timed batch)."""
    import torch

    from facerecon.cli import UserError
    from facerecon.data.labels import make_fitter
    from facerecon.data.shards import ShardDataset, ShardError

    try:
        data = ShardDataset(shards, "all")
    except (ShardError, OSError) as exc:
        raise UserError(str(exc)) from exc
    n = min(count, len(data))
    if n == 0:
        raise UserError(f"{shards}: no photos in the shards")
    items = [data[i] for i in range(n)]
    images, landmarks, attention = (torch.stack([it[k] for it in items]) for k in ("image", "landmarks", "attention"))
    fitter = make_fitter(config, device)
    return (lambda rows: fitter.fit(images[rows], landmarks[rows], attention[rows])), n, f"shards {shards}"


def run(args: argparse.Namespace) -> int:
    import torch

    from facerecon.cli import UserError
    from facerecon.cli.bench_render import sync_device

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA device")
    config = from_args(FitConfig, args)
    dev = torch.device(args.device)
    t0 = time.perf_counter()
    if args.shards is not None:
        fit_rows, n_items, source = _shard_batches(args.shards, args.count, config, dev)
    else:
        fit_rows, n_items, source = _photo_batches(args.images, args.count, config, args.device)
    prep_s = (time.perf_counter() - t0) / n_items
    fit_rows([0])  # warm-up: compiled kernels, caches
    rows = []
    for b in args.batch:
        order = [i % n_items for i in range(max(b, n_items))]  # fewer photos than b: repeated
        per_photo = []  # each batch timed on its own: the median resists a noisy shared host
        for i in range(0, len(order) - b + 1, b):
            if args.max_batches and len(per_photo) >= args.max_batches:
                break
            sync_device(dev)
            t0 = time.perf_counter()
            fit_rows(order[i : i + b])
            sync_device(dev)
            per_photo.append((time.perf_counter() - t0) / b)
        per = statistics.median(per_photo)
        rows.append({"batch": b, "photos": len(per_photo) * b, "seconds_per_photo": per,
                     "photos_per_second": 1 / per, "batches_timed": len(per_photo)})
    out = {"device": args.device, "source": source, "prepare_seconds_per_photo": prep_s,
           "threads": torch.get_num_threads(),
           "config": {"landmark_steps": config.landmark_steps, "steps": config.steps, "perceptual": config.perceptual,
                      "region": config.region}, "rows": rows}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"fitting on {args.device}: {config.landmark_steps} landmark + {config.steps} full steps, "
          f"perceptual={config.perceptual}; {source}; preparation {prep_s * 1000:.0f} ms/photo")
    print(f"{'batch':>6} {'photos':>7} {'s/photo':>9} {'photos/s':>9}")
    for r in rows:
        print(f"{r['batch']:>6} {r['photos']:>7} {r['seconds_per_photo']:>9.2f} {r['photos_per_second']:>9.2f}")
    return 0
