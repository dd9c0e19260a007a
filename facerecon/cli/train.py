"""``facerecon train --data SHARDS [--labels LABELS] -o OUT``: train R-Net (SPEC §3).

Every option is a field of :class:`facerecon.training.TrainConfig` (its docstring is the help).
Runs again with the same ``-o`` continue from ``OUT/last.pt``. Several processes or GPUs:
``torchrun --nproc_per_node N -m facerecon.cli train …``.
"""

from __future__ import annotations

import argparse

from facerecon.cli import COMMANDS, UserError
from facerecon.config import add_arguments, from_args
from facerecon.training.config import TrainConfig


def register(subparsers) -> None:
    """Add the ``train`` sub-command."""
    p = subparsers.add_parser(
        "train", help=COMMANDS["train"],
        description="Train R-Net on face-crop shards (the paper's self-supervised hybrid loss), fitter labels "
                    "(distillation) and/or synthetic faces with known parameters, mixed by weight. OUT gets "
                    "last.pt (resumed automatically), config.json, train.jsonl and tb/ (TensorBoard). "
                    "Multi-process: torchrun --nproc_per_node N -m facerecon.cli train ...",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-o", dest="out", default=argparse.SUPPRESS, help="same as --out")
    add_arguments(p, TrainConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from facerecon.nets.rnet import RNet
    from facerecon.training import Trainer
    from facerecon.training.data import label_fit_config, read_label_folder, shard_datasets

    cfg = from_args(TrainConfig, args)
    try:
        cfg.validate()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if cfg.uses_photos and not cfg.data:
        raise UserError("--data SHARDS is needed unless only --synthetic is on (--self-supervised 0 --distill 0)")
    if cfg.distill > 0 and not cfg.labels:
        raise UserError("--distill needs --labels")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {cfg.device}: CUDA is not available on this machine")
    train_data = val_data = None
    if cfg.data:
        try:
            train_data, val_data = shard_datasets(cfg.data)
        except ValueError as exc:  # ShardError: one line naming the file
            raise UserError(str(exc)) from None
        if len(train_data) == 0:
            raise UserError(f"{cfg.data}: no photos in the train split")
        if len(val_data) == 0:
            val_data = None
    labels = None
    if cfg.labels:
        fitted = label_fit_config(cfg.labels)
        if fitted.get("albedo", "spectral") != cfg.albedo:
            raise UserError(f"{cfg.labels} was fitted with --albedo {fitted['albedo']}: train with the same")
        try:
            labels = read_label_folder(cfg.labels)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    torch.manual_seed(cfg.seed)  # the network's initialisation (the same in every process)
    net = RNet(cfg.net)
    try:
        trainer = Trainer(cfg, net, train_data, val_data, labels)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:
        metrics = trainer.train()
    finally:
        trainer.close()
    if trainer.dist.main:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k in ("val/total", "val/landmark_px"))
        print(f"facerecon train: step {trainer.step} -> {trainer.checkpoint_path}" + (f" ({shown})" if shown else ""))
    return 0
