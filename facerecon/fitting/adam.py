"""Adam (Kingma & Ba, 2015) over a few groups of tensors, each at its own rate, along a rate
schedule: the fitter's optimiser.

Written out rather than taken from ``torch.optim``, whose first optimiser imports
``torch._dynamo``: 1–2 s of a one-photo ``facerecon reconstruct`` on a 2-vCPU CPU, more than the
default engine's whole fit. The update is the paper's, with ε added to the bias-corrected root
as ``torch.optim.Adam`` adds it (tests/test_fitting.py checks the two against each other).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch


@dataclass
class Group:
    """Tensors stepped at one base rate (units of the tensors per step: radians, mm, weights)."""

    tensors: list[torch.Tensor]
    lr: float
    first: list[torch.Tensor] = field(default_factory=list)
    """Running mean of the gradient, one per tensor."""
    second: list[torch.Tensor] = field(default_factory=list)
    """Running mean of the squared gradient, one per tensor."""
    taken: list[int] = field(default_factory=list)
    """Steps each tensor has taken (a tensor without a gradient skips a step)."""


class Adam:
    """``groups``: (tensors, base rate) pairs; ``schedule(k)``: the factor on every base rate at
    step k (0-based; None: 1 throughout); ``betas``, ``eps``: Adam's (the paper's defaults)."""

    def __init__(self, groups: Sequence[tuple[Sequence[torch.Tensor], float]],
                 schedule: Callable[[int], float] | None = None, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.groups = [Group(list(tensors), float(lr)) for tensors, lr in groups]
        for g in self.groups:
            g.first = [torch.zeros_like(t) for t in g.tensors]
            g.second = [torch.zeros_like(t) for t in g.tensors]
            g.taken = [0] * len(g.tensors)
        self.schedule = schedule or (lambda k: 1.0)
        self.betas, self.eps = betas, float(eps)
        self.steps = 0

    def rate(self, group: int) -> float:
        """The rate the next step gives group ``group``."""
        return self.groups[group].lr * self.schedule(self.steps)

    def zero_grad(self) -> None:
        for g in self.groups:
            for t in g.tensors:
                t.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every tensor that has a gradient."""
        b1, b2 = self.betas
        factor = self.schedule(self.steps)
        for g in self.groups:
            for i, t in enumerate(g.tensors):
                grad = t.grad
                if grad is None:
                    continue
                g.taken[i] += 1
                k = g.taken[i]
                m, v = g.first[i], g.second[i]
                m.lerp_(grad, 1 - b1)  # m + (1 - β1)(g - m)
                v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                denom = (v.sqrt() / math.sqrt(1 - b2 ** k)).add_(self.eps)
                t.addcdiv_(m, denom, value=-g.lr * factor / (1 - b1 ** k))
        self.steps += 1


__all__ = ["Adam", "Group"]
