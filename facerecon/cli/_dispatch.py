"""Sub-command groups (``facerecon bench X``, ``facerecon evaluate X``) built from a table of modules.

Each module in a table defines ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib


def register_group(subparsers, name: str, help: str, table: dict[str, tuple[str, str]]) -> None:
    """Add ``name`` with one sub-command per ``table`` entry: {sub: (module, one-line help)}."""
    parser = subparsers.add_parser(name, help=help, description=help)
    sub = parser.add_subparsers(dest=f"{name}_command", metavar="WHAT")
    for key, (modname, helptext) in table.items():
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:
                continue  # not built yet
            raise
        p = sub.add_parser(key, help=helptext, description=helptext,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
