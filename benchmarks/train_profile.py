"""Where a training step's time goes (the R-Net issue's training photos/s): the data loader's
wait, the whole step, the step on a batch already on the device, and its parts (R-Net forward,
forward model + hybrid loss with and without FaceNet, backward + optimiser), then the operators
that take the most device and host time (torch.profiler), for one trunk and batch size.

    python benchmarks/train_profile.py --data SHARDS --device cuda --batch-size 256 --trunk resnet50
    python benchmarks/train_profile.py --data SHARDS --device cpu --batch-size 2 --steps 2   # a dry run

Prints a JSON line per measurement as it comes, then the profiler's tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

import torch

from facerecon.cli.bench_render import sync_device


def _timed(fn, dev: torch.device, n: int) -> float:
    """Median seconds of ``n`` calls of ``fn`` (synchronised)."""
    out = []
    for _ in range(n):
        sync_device(dev)
        t0 = time.perf_counter()
        fn()
        sync_device(dev)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main(argv: list[str] | None = None) -> int:
    from facerecon.nets.rnet import RNet, RNetConfig
    from facerecon.params import FaceParams
    from facerecon.training import Trainer
    from facerecon.training.trainer import data_workers
    from facerecon.training.config import TrainConfig
    from facerecon.training.data import shard_datasets

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="shards folder")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--trunk", default="resnet50", choices=["resnet50", "resnet18", "facenet"])
    ap.add_argument("--workers", type=int, default=None, help="data-loading processes (default: the trainer's)")
    ap.add_argument("--items", choices=["uint8", "float"], default="uint8",
                    help="what the loader's workers hand over: uint8 crops (converted on the device) or float")
    ap.add_argument("--pin", action="store_true", help="page-locked memory between loader and device")
    ap.add_argument("--steps", type=int, default=6, help="timed steps of each kind")
    ap.add_argument("--profile-steps", type=int, default=2, help="steps under torch.profiler (0: none)")
    ap.add_argument("--rows", type=int, default=25, help="operators listed per profiler table")
    args = ap.parse_args(argv)

    dev = torch.device(args.device)
    net_cfg = RNetConfig(trunk=args.trunk, landmark_input=args.trunk == "facenet")
    cfg = TrainConfig(data=args.data, out=tempfile.mkdtemp(prefix="train_profile-"), net=net_cfg,
                      steps=10**6, batch_size=args.batch_size, warmup=5, perceptual_every=1, amp="bf16",
                      validate_every=0, checkpoint_every=10**9, log_every=10**9, num_workers=args.workers,
                      device=args.device, progress=False, pin_memory=args.pin)
    train, _ = shard_datasets(args.data, uint8=args.items == "uint8")
    torch.manual_seed(0)
    trainer = Trainer(cfg, RNet(cfg.net), train, None, None)
    say = lambda **kv: print(json.dumps({"trunk": args.trunk, "batch": args.batch_size, "items": args.items,  # noqa: E731
                                         "pin": args.pin, **kv}), flush=True)
    b = args.batch_size
    try:
        photos = trainer.photo_stream(0)
        for _ in range(3):  # warm-up: cuDNN autotuning, allocator, workers starting
            trainer.train_step(next(photos), None)
        waits, steps = [], []
        for _ in range(args.steps):
            sync_device(dev)
            t0 = time.perf_counter()
            batch = next(photos)
            t1 = time.perf_counter()
            trainer.train_step(batch, None)
            sync_device(dev)
            waits.append(t1 - t0)
            steps.append(time.perf_counter() - t1)
        loop = statistics.median(w + s for w, s in zip(waits, steps))
        say(what="loader + step", images_per_s=b / loop, data_wait_s=statistics.median(waits),
            step_s=statistics.median(steps), workers=data_workers(trainer.config.num_workers, trainer.cuda))
        ready = trainer._photos_to_device(batch)
        step_s = _timed(lambda: trainer.train_step(ready, None), dev, args.steps)
        say(what="step on a batch already on the device", images_per_s=b / step_s, step_s=step_s)

        obj = trainer.objectives
        images, landmarks = ready["image"], ready["landmarks"]
        vec = lambda: trainer._predict(trainer.model_ddp, images, landmarks)  # noqa: E731
        with torch.no_grad():
            fwd = _timed(vec, dev, args.steps)
            params = FaceParams.from_vector(vec(), trainer.sizes)
            loss_p = _timed(lambda: obj.self_supervised(params, images, landmarks, ready.get("attention"),
                                                        perceptual=True), dev, args.steps)
            loss_np = _timed(lambda: obj.self_supervised(params, images, landmarks, ready.get("attention"),
                                                         perceptual=False), dev, args.steps)
            render = _timed(lambda: obj.forward(params), dev, args.steps)
        say(what="parts, no gradient (s)", rnet_forward=fwd, forward_model_render=render,
            hybrid_loss_with_facenet=loss_p, hybrid_loss_without_facenet=loss_np)

        if args.profile_steps > 0:
            from torch.profiler import ProfilerActivity, profile

            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
            with profile(activities=acts) as prof:
                for _ in range(args.profile_steps):
                    trainer.train_step(ready, None)
                sync_device(dev)
            key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
            print(f"--- operators by {key} ({args.profile_steps} steps)")
            print(prof.key_averages().table(sort_by=key, row_limit=args.rows))
            if dev.type == "cuda":
                print(f"--- operators by self_cpu_time_total ({args.profile_steps} steps)")
                print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    finally:
        if "photos" in locals():
            photos.close()
        trainer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
