"""Typed dataclass configs whose attribute docstrings become the command-line help.

Write a config as a dataclass with a docstring under each field::

    @dataclass
    class FitConfig:
        steps: int = 100
        \"\"\"Gradient steps per image.\"\"\"

``add_arguments(parser, FitConfig)`` adds ``--steps`` with that help text and
``from_args(FitConfig, namespace)`` builds the instance back; ``from_args(FitConfig, namespace,
base=other)`` takes the options not given on the command line from ``other`` instead (a
configuration whose defaults depend on another option, such as the engine).

A config checks its own values in ``__post_init__`` (:func:`at_least`, :class:`ConfigError`);
``from_args`` renames the field in the error to its option, so ``--steps -1`` reads
``--steps must be at least 0 (got -1)``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value out of its range: ``field`` (a field name, or the option ``from_args`` built
    it from) and why, in one line."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field, self.reason = field, reason


def at_least(config: Any, minimum: float, *names: str) -> None:
    """Raise :class:`ConfigError` for the first field of ``names`` below ``minimum`` (or NaN;
    None values are skipped)."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not value >= minimum:
            raise ConfigError(name, f"must be at least {minimum:g} (got {value})")


@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """Map each field of a dataclass to the string literal written under it in the source."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


#: The namespace attribute listing the config options given on the command line (their ``dest``).
GIVEN = "_config_options_given"


def _remember(namespace: argparse.Namespace, dest: str) -> None:
    given = set(getattr(namespace, GIVEN, ()))
    given.add(dest)
    setattr(namespace, GIVEN, given)


class _Store(argparse.Action):
    """``store`` that also records that the option was given."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        _remember(namespace, self.dest)


class _Switch(argparse.BooleanOptionalAction):
    """``--x/--no-x`` that also records that the option was given."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        super().__call__(parser, namespace, values, option_string)
        _remember(namespace, self.dest)


def given_options(ns: argparse.Namespace) -> set[str]:
    """The ``dest`` of every config option given on the command line (not left at its default)."""
    return set(getattr(ns, GIVEN, ()))


def _flag(prefix: str, name: str) -> str:
    return "--" + (prefix + name).replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "", defaults: Any = None) -> None:
    """Add one option per dataclass field; help = the field's docstring, default shown.

    Nested dataclass fields become ``--<field>-<subfield>`` options whose defaults are those of
    the parent's default instance (``defaults``), not of the nested class.
    """
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        if defaults is not None:
            default = getattr(defaults, f.name)
        else:
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
            )
        if dataclasses.is_dataclass(tp):  # nested config: --<field>-<subfield>
            add_arguments(parser, tp, prefix=f"{prefix}{f.name}_", defaults=default)
            continue
        helptext = docs.get(f.name, "").replace("%", "%%")  # argparse formats the help with %
        kwargs: dict[str, Any] = {"dest": prefix + f.name, "default": default, "action": _Store}
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType) and type(None) in args:  # Optional[X], X | None
            tp = next(a for a in args if a is not type(None))
            origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is bool:
            kwargs["action"] = _Switch
        elif origin is typing.Literal:
            kwargs["choices"] = list(args)
            kwargs["type"] = type(args[0])
        elif origin in (list, tuple):
            kwargs["nargs"] = "+"
            kwargs["type"] = args[0] if args and args[0] is not Ellipsis else str
        elif tp in (int, float, str, Path):
            kwargs["type"] = tp
        else:
            kwargs["type"] = str
        kwargs["help"] = f"{helptext} (default: %(default)s)" if helptext else "(default: %(default)s)"
        parser.add_argument(_flag(prefix, f.name), **kwargs)


def _is_tuple(tp: Any) -> bool:
    """Whether a field's type is a tuple or an optional tuple."""
    if typing.get_origin(tp) is typing.Union:
        return any(_is_tuple(a) for a in typing.get_args(tp) if a is not type(None))
    return typing.get_origin(tp) is tuple


def from_args(cls: type[T], ns: argparse.Namespace, prefix: str = "", base: T | None = None) -> T:
    """Build a dataclass instance from parsed arguments added by :func:`add_arguments`; with
    ``base``, the options not given on the command line keep ``base``'s values rather than the
    parser's defaults."""
    values = {}
    hints = typing.get_type_hints(cls)
    given = given_options(ns)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.init and dataclasses.is_dataclass(hints[f.name]):
            values[f.name] = from_args(hints[f.name], ns, prefix=f"{prefix}{f.name}_",
                                       base=None if base is None else getattr(base, f.name))
        elif f.init and base is not None and prefix + f.name not in given:
            values[f.name] = getattr(base, f.name)
        elif f.init and hasattr(ns, prefix + f.name):
            v = getattr(ns, prefix + f.name)
            if isinstance(v, list) and (isinstance(f.default, tuple) or _is_tuple(hints[f.name])):
                v = tuple(v)
            values[f.name] = v
    try:
        return cls(**values)
    except ConfigError as exc:  # name the option the value came from
        raise ConfigError(_flag(prefix, exc.field), exc.reason) from None
