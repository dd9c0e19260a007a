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


def test_values_out_of_range_name_their_option():
    import math

    import pytest

    from facerecon.config import ConfigError
    from facerecon.fitting.engine import FitConfig
    from facerecon.losses import LossWeights

    with pytest.raises(ConfigError, match=r"^steps must be at least 0 \(got -1\)$"):
        FitConfig(steps=-1)
    with pytest.raises(ConfigError, match="^perceptual_every must be at least 1"):
        FitConfig(perceptual_every=0)
    with pytest.raises(ConfigError, match="^lr must be at least 0"):
        FitConfig(lr=-0.01)
    with pytest.raises(ConfigError, match="^chin_weight must be at least 0 .got nan"):
        FitConfig(chin_weight=math.nan)  # NaN is no weight
    with pytest.raises(ConfigError, match="^perceptual_box must be x0 y0 x1 y1"):
        FitConfig(perceptual_box=(0.5, 0.1, 0.4, 0.9))
    with pytest.raises(ConfigError, match="^facing_cos must be a cosine"):
        FitConfig(facing_cos=2.0)
    with pytest.raises(ConfigError, match="^texture must be at least 0"):
        LossWeights(texture=-5.0)
    FitConfig(steps=0, landmark_steps=0, lr_pose=0.0, chin_weight=None, facing_cos=-1.0)  # edges are fine
    # from the command line the error names the option, nested ones included
    parser = argparse.ArgumentParser()
    add_arguments(parser, FitConfig)
    with pytest.raises(ConfigError, match=r"^--steps must be at least 0 \(got -2\)$"):
        from_args(FitConfig, parser.parse_args(["--steps", "-2"]))
    with pytest.raises(ConfigError, match=r"^--weights-photo must be at least 0 \(got -1.0\)$"):
        from_args(FitConfig, parser.parse_args(["--weights-photo", "-1"]))
