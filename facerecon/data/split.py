"""Deterministic splits: photos into train/val by person, work into ``i/n`` independent jobs.

No torch here, so the command line can parse ``--shard`` before anything heavy is imported.
"""

from __future__ import annotations

import hashlib
from typing import Sequence, TypeVar

T = TypeVar("T")

#: Fraction of people put in the validation split unless told otherwise.
DEFAULT_VAL_FRACTION = 0.1


def person_hash(person: str) -> float:
    """A stable number in [0, 1) for a person label (SHA-256, the same on every run and machine)."""
    digest = hashlib.sha256(person.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def split_of(person: str, val_fraction: float = DEFAULT_VAL_FRACTION) -> str:
    """``"val"`` for about ``val_fraction`` of people, else ``"train"``; a person's photos always
    land on one side, because only the person label is hashed."""
    return "val" if person_hash(person) < val_fraction else "train"


def check_val_fraction(value: float) -> float:
    """``value`` if it is in [0, 1), else ValueError (one line)."""
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"val fraction must be in [0, 1) (got {value})")
    return value


def parse_shard_spec(text: str | tuple[int, int] | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with 0 <= i < n; ``None`` -> ``(0, 1)`` (all the work).

    Raises ValueError with a one-line reason.
    """
    if text is None:
        return 0, 1
    if isinstance(text, tuple):
        i, n = text
    else:
        parts = str(text).strip().split("/")
        try:
            if len(parts) != 2:
                raise ValueError
            i, n = int(parts[0]), int(parts[1])
        except ValueError:
            raise ValueError(f"--shard takes I/N, e.g. 0/4 (got {text!r})") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {i}/{n}: need 0 <= I < N")
    return int(i), int(n)


def take_shard(items: Sequence[T], spec: str | tuple[int, int] | None) -> list[T]:
    """Every n-th item starting at the i-th (``spec`` = ``"i/n"``): n jobs cover ``items`` once."""
    i, n = parse_shard_spec(spec)
    return list(items[i::n])


__all__ = ["DEFAULT_VAL_FRACTION", "check_val_fraction", "parse_shard_spec", "person_hash", "split_of",
           "take_shard"]
