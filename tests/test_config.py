"""Dataclass configs become command-line options whose help is the field docstring."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Literal

from facerecon.config import add_arguments, field_docs, from_args


@dataclass
class Inner:
    weight: float = 1.5
    """How much it counts (95 % of the total)."""


@dataclass
class Outer:
    steps: int = 10
    """Gradient steps."""
    mode: Literal["fast", "slow"] = "fast"
    """Speed."""
    flag: bool = True
    """A switch."""
    box: tuple[float, float] = (0.1, 0.9)
    """Two numbers."""
    inner: Inner = field(default_factory=lambda: Inner(weight=3.0))
    """Nested, with a default that differs from Inner's own."""


def test_docstrings_become_help_and_values_round_trip():
    assert field_docs(Outer)["steps"] == "Gradient steps."
    parser = argparse.ArgumentParser()
    add_arguments(parser, Outer)
    helptext = parser.format_help()
    assert "Gradient steps. (default: 10)" in helptext and "--inner-weight" in helptext
    assert "(95 % of the total)" in " ".join(helptext.split())  # a docstring's % is text, not a format
    assert from_args(Outer, parser.parse_args([])) == Outer()
    assert from_args(Outer, parser.parse_args([])).inner.weight == 3.0
    got = from_args(Outer, parser.parse_args(["--steps", "3", "--mode", "slow", "--no-flag", "--box", "0.2", "0.8",
                                              "--inner-weight", "2"]))
    assert got == Outer(steps=3, mode="slow", flag=False, box=(0.2, 0.8), inner=Inner(2.0))


@dataclass
class Optionals:
    limit: float | None = None
    """A number or nothing (``X | None``)."""
    count: "int | None" = 2
    """The same, written as a string annotation."""


def test_optional_numbers_parse_as_numbers():
    """``float | None`` fields take a float from the command line, not the string as typed."""
    parser = argparse.ArgumentParser()
    add_arguments(parser, Optionals)
    assert from_args(Optionals, parser.parse_args([])) == Optionals()
    got = from_args(Optionals, parser.parse_args(["--limit", "0.5", "--count", "7"]))
    assert got == Optionals(limit=0.5, count=7) and isinstance(got.limit, float) and isinstance(got.count, int)


def test_options_not_given_take_the_base_and_given_ones_win_even_at_the_parser_default():
    """``base`` stands in for the parser's defaults (an engine's own defaults): only what the
    command line names overrides it — also when the value named equals the parser's default."""
    parser = argparse.ArgumentParser()
    add_arguments(parser, Outer)
    base = Outer(steps=30, mode="slow", flag=False, box=(0.3, 0.7), inner=Inner(weight=9.0))
    assert from_args(Outer, parser.parse_args([]), base=base) == base
    got = from_args(Outer, parser.parse_args(["--steps", "10", "--flag", "--inner-weight", "3"]), base=base)
    assert got == Outer(steps=10, mode="slow", flag=True, box=(0.3, 0.7), inner=Inner(weight=3.0))
    got = from_args(Outer, parser.parse_args(["--mode", "fast", "--box", "0.1", "0.9"]), base=base)
    assert got == Outer(steps=30, mode="fast", flag=False, box=(0.1, 0.9), inner=Inner(weight=9.0))
    # without a base, nothing changes: the parser's defaults
    assert from_args(Outer, parser.parse_args(["--steps", "4"])) == Outer(steps=4)


def test_options_given_to_a_subcommand_are_remembered():
    """argparse parses a subcommand into its own namespace and copies it over: what was given
    must survive the copy."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd")
    add_arguments(sub.add_parser("go"), Outer)
    base = Outer(steps=30, flag=False)
    assert from_args(Outer, parser.parse_args(["go", "--no-flag", "--steps", "10"]), base=base) == Outer(
        steps=10, flag=False)
    assert from_args(Outer, parser.parse_args(["go", "--flag"]), base=base) == Outer(steps=30, flag=True)
