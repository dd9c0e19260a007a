"""``facerecon data WHAT``: training data for the regressor (``data prepare``: photos -> shards)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facerecon.cli import COMMANDS
from facerecon.cli._dispatch import register_group

DATA_COMMANDS = {
    "prepare": ("facerecon.cli.data", "detect and align photos into training shards (resumable)"),
}


def register(subparsers) -> None:
    """Add the ``data`` group."""
    register_group(subparsers, "data", COMMANDS["data"], DATA_COMMANDS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``facerecon data prepare``."""
    parser.description = (
        "Detect, align (224x224) and store the largest face of every photo in SHARDS: "
        "shard-NNNNN.npz (images, landmarks, skin attention), records.jsonl (key, shard, row, source, "
        "person, split) and failures.jsonl. Photos already in SHARDS are skipped, so a stopped run "
        "goes on where it stopped. A photo's key is its path below the folder given; its person is "
        "its folder (LFW) or itself (photos directly in the folder given, as 300-W and UTKFace); the "
        "train/val split is by a hash of the person, so a person is never on both sides.")
    parser.add_argument("sources", nargs="+", type=Path, metavar="SRC",
                        help="photos, or folders searched recursively for photos (hidden files and folders skipped)")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="SHARDS", help="shards folder")
    parser.add_argument("--shard-size", type=int, default=256, metavar="N", help="photos per shard file")
    parser.add_argument("--val-fraction", type=float, default=None, metavar="F",
                        help="fraction of people in the validation split (None: 0.1 for a new SHARDS, its own "
                             "for an existing one, which refuses another)")
    parser.add_argument("--person", choices=("auto", "folder", "photo"), default="auto",
                        help="person label: auto (the folder below SRC holding the photo, else the photo "
                             "itself), folder (the photo's folder, always) or photo (each photo alone)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="only the first N photos found (a later run goes on)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="try again the photos that failed in an earlier run (else they are skipped)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Prepare shards; 0 when SHARDS holds at least one face afterwards."""
    from facerecon.cli import UserError
    from facerecon.cli.reconstruct import find_photos
    from facerecon.data.prepare import prepare_shards
    from facerecon.data.shards import ShardError

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: not a folder")
    try:
        result = prepare_shards(args.sources, out, shard_size=args.shard_size, val_fraction=args.val_fraction,
                                person=args.person, limit=args.limit, progress=not args.quiet,
                                find=lambda folder: find_photos(folder, exclude=out), retry_failed=args.retry_failed)
    except (ValueError, ShardError) as exc:
        raise UserError(str(exc)) from None
    print(f"prepared {result.added} photo{'s' if result.added != 1 else ''} into {out} "
          f"({result.skipped} already there, {result.total} in all)", file=sys.stderr)
    if result.failed:
        print(f"{len(result.failed)} failed:", file=sys.stderr)
        for f in result.failed:
            print(f"  {f.reason}", file=sys.stderr)
    return 0 if result.total else 1
