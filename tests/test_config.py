"""Dataclass configs become command-line options whose help is the field docstring."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Literal

from facerecon.config import add_arguments, field_docs, from_args


@dataclass
class Inner:
    weight: float = 1.5
    """How much it counts."""


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
    assert from_args(Outer, parser.parse_args([])) == Outer()
    assert from_args(Outer, parser.parse_args([])).inner.weight == 3.0
    got = from_args(Outer, parser.parse_args(["--steps", "3", "--mode", "slow", "--no-flag", "--box", "0.2", "0.8",
                                              "--inner-weight", "2"]))
    assert got == Outer(steps=3, mode="slow", flag=False, box=(0.2, 0.8), inner=Inner(2.0))
