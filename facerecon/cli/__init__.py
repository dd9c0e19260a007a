"""The ``facerecon`` command: a thin dispatcher over one module per sub-command.

Each module in ``COMMANDS`` defines ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit code. Heavy imports
(torch, dlib) happen inside those callables so that ``facerecon --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from facerecon import __version__

COMMANDS = ("reconstruct", "evaluate", "synth", "bench", "demo")


class UserError(Exception):
    """A problem with the user's input: printed as one line, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facerecon",
        description="3D face reconstruction from one or many photos.",
    )
    parser.add_argument("--version", action="version", version=f"facerecon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"facerecon.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"facerecon.cli.{name}":
                continue  # sub-command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"facerecon {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
