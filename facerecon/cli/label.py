"""``facerecon label SHARDS -o LABELS``: fit every face of a shards folder, for regressor training."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facerecon.cli import COMMANDS, int_at_least
from facerecon.cli.engine_args import add_fitting_arguments, fit_config
from facerecon.fitting.engine import FitConfig


def register(subparsers) -> None:
    """Add the ``label`` sub-command."""
    p = subparsers.add_parser(
        "label", help=COMMANDS["label"],
        description="Fit the face model to every photo of SHARDS (made by `facerecon data prepare`), "
                    "BATCH-SIZE photos at a time, and write LABELS/labels-NNNNN.npz per batch (keys, "
                    "float16 parameter vectors, final loss) and LABELS/config.json (the fit config). "
                    "Batches already written are skipped, so a stopped run goes on; --shard I/N splits "
                    "the batches over N independent jobs writing into the same LABELS.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("shards", type=Path, metavar="SHARDS", help="shards folder")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="LABELS", help="labels folder")
    p.add_argument("--batch-size", type=int_at_least(1), default=8, help="photos fitted together (one chunk each)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="this job fits only batches I, I+N, I+2N, … (N jobs together fit them all)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N photos of SHARDS")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--workers", type=int, default=0, help="processes reading the shards")
    p.add_argument("--force", action="store_true", help="add to LABELS made with another fit config")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--engine", choices=("fit", "rnet-prior"), default="fit",
                   help="fit: the fitter with its prior at the model's mean; rnet-prior: the fitter with its "
                        "identity and albedo prior centred on R-Net's prediction (reconstruct's default engine)")
    p.add_argument("--rnet", type=Path, default=None, metavar="PATH",
                   help="R-Net checkpoint for --engine rnet-prior (default: the shipped model)")
    add_fitting_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Label the shards; 0 when every batch of this job is labelled."""
    import torch

    from facerecon.cli import UserError
    from facerecon.data.labels import label_shards
    from facerecon.data.shards import ShardError
    from facerecon.data.split import parse_shard_spec

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA device")
    try:
        spec = parse_shard_spec(args.shard)
        if args.out.exists() and not args.out.is_dir():
            raise UserError(f"{args.out}: not a folder")
        config = fit_config(args, args.engine)  # the engine's defaults, as reconstruct's
        engine = _engine(args, config)
        result = label_shards(args.shards, args.out, batch_size=args.batch_size, shard=spec,
                              fit_config=config, device=args.device, limit=args.limit,
                              force=args.force, progress=not args.quiet, workers=args.workers, **engine)
    except (ValueError, ShardError) as exc:
        raise UserError(str(exc)) from None
    print(f"labelled {result.photos} photos in {result.fitted} batches into {args.out} "
          f"({result.skipped} of {result.batches} batches already there)", file=sys.stderr)
    return 0


def _engine(args: argparse.Namespace, config: FitConfig) -> dict:
    """label_shards' ``fitter``, ``prior`` and ``prior_record`` for ``--engine rnet-prior`` (the
    reconstructor's own fitter and R-Net, so labels are what ``reconstruct`` gives); {} for fit."""
    from facerecon.cli import UserError

    if args.engine == "fit":
        if args.rnet is not None:
            raise UserError("--rnet is only used with --engine rnet-prior")
        return {}
    import hashlib

    from facerecon.fitting.engine import rnet_prior
    from facerecon.pipeline import FaceReconstructor, shipped_model

    shipped, missing = shipped_model("rnet-prior")
    rnet = args.rnet or shipped
    if rnet is None:
        raise UserError(f"--engine rnet-prior needs --rnet PATH: {missing}")
    if not Path(rnet).is_file():
        raise UserError(f"--rnet {rnet}: no such file")
    recon = FaceReconstructor(device=args.device, config=config, engine="rnet-prior", rnet=rnet)
    record = {"engine": "rnet-prior", "rnet": str(rnet),
              "sha256": hashlib.sha256(Path(rnet).read_bytes()).hexdigest()}
    return {"fitter": recon.fitter, "prior": lambda images, landmarks: rnet_prior(recon.predict(images, landmarks)),
            "prior_record": record}
