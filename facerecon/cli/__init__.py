"""The ``facerecon`` command: a thin dispatcher over one module per sub-command.

Each module named in ``COMMANDS`` defines ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit code. Only the sub-command
on the command line is imported and built (its options may import torch); the others are one line
of help, so ``facerecon --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from facerecon import __version__
from facerecon.config import ConfigError
from facerecon.cpus import available_cpus

COMMANDS: dict[str, str] = {
    "reconstruct": "reconstruct 3D faces from photos",
    "evaluate": "accuracy against ground truth",
    "synth": "render synthetic faces (or a real scan) with known parameters",
    "bench": "speed benchmarks",
    "demo": "reconstruct bundled and shared photos into OUT",
    "serve": "a local web page: drop photos, watch the fit, view and download the 3D face",
    "data": "training data for the regressor",
    "label": "fit every face of a shards folder (labels for regressor training)",
    "train": "train the R-Net regressor (photos -> coefficients in one pass)",
}
"""Sub-command -> its one-line help (the module ``facerecon.cli.<name>`` builds the rest)."""


class UserError(Exception):
    """A problem with the user's input: printed as one line, no traceback."""


def int_at_least(minimum: int):
    """An argparse ``type``: a whole number no smaller than ``minimum`` (argparse prints the error)."""

    def parse(text: str) -> int:
        value = int(text)  # a ValueError reads "invalid int value"
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum} (got {value})")
        return value

    parse.__name__ = "int"
    return parse


def chosen_command(argv: list[str]) -> str | None:
    """The sub-command named on a command line (the first word that is one), else None."""
    return next((word for word in argv if word in COMMANDS), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser, or, given the command line ``argv``, one that builds in full only the
    sub-command it names: the others stay one-line entries, so that ``facerecon --help`` and each
    command's ``--help`` do not import torch through the options of all the others."""
    parser = argparse.ArgumentParser(
        prog="facerecon",
        description="3D face reconstruction from one or many photos.",
    )
    parser.add_argument("--version", action="version", version=f"facerecon {__version__}")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads for torch (default: 1 on machines with 2 or fewer CPUs, "
                             "where a second thread measured slower, else torch's own choice)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = None if argv is None else chosen_command(argv)
    for name, summary in COMMANDS.items():
        if argv is not None and name != chosen:
            sub.add_parser(name, help=summary)
            continue
        importlib.import_module(f"facerecon.cli.{name}").register(sub)
    return parser


def set_cpu_threads(threads: int | None) -> None:
    """Set torch's CPU thread count for this process: ``threads``, or the measured default.

    On a 2-vCPU machine one thread fitted faster than two at batch 1 (5.2 vs 6.5 s per photo)
    and no slower at batch 8 (BENCHMARKS.md, fitting speed); larger machines keep torch's choice.
    """
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1 (got {threads})")
    if threads is None and available_cpus() > 2:
        return
    import torch

    torch.set_num_threads(threads or 1)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        set_cpu_threads(args.threads)
        return int(args.func(args) or 0)
    except (UserError, ConfigError) as exc:  # ConfigError: an option out of its range
        print(f"facerecon {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
