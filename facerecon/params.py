"""The unknowns of the method, x = (α, β, δ, γ, p): one typed, batched container.

With ICT-FaceKit: α 80 identity, β 53 expression (ARKit names), δ 80 albedo, γ 9 SH light
(or 27 for RGB light), p = 3 rotation angles (radians) + 3 translation (mm): 228 numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from facerecon.render.camera import default_translation

#: Order and sizes of the parts in the flat vector (RGB light makes gamma 27 long).
PARTS = ("alpha", "beta", "delta", "gamma", "angles", "trans")


@dataclass
class FaceParams:
    """Per-image coefficients, each (B, n)."""

    alpha: torch.Tensor
    """Identity coefficients (B,80), ~N(0,1)."""
    beta: torch.Tensor
    """Expression blendshape weights (B,53), ARKit-named, mostly in [0,1]."""
    delta: torch.Tensor
    """Albedo coefficients (B,80), ~N(0,1)."""
    gamma: torch.Tensor
    """Spherical-harmonics light (B,9) monochromatic, or (B,27) RGB."""
    angles: torch.Tensor
    """Head rotation (B,3) radians: pitch, yaw, roll."""
    trans: torch.Tensor
    """Translation (B,3) in mm, camera space (the camera looks down −z)."""

    @classmethod
    def zeros(cls, batch: int, n_id: int = 80, n_exp: int = 53, n_tex: int = 80, rgb_light: bool = False,
              device=None) -> "FaceParams":
        """Neutral mean face, ambient light 1, frontal at the default distance."""
        z = lambda n: torch.zeros(batch, n, device=device)  # noqa: E731
        gamma = z(27 if rgb_light else 9)
        gamma[:, [0, 9, 18] if rgb_light else [0]] = 1.0
        return cls(z(n_id), z(n_exp), z(n_tex), gamma, z(3), default_translation(batch, device=device))

    @property
    def batch(self) -> int:
        return self.alpha.shape[0]

    def sizes(self) -> dict[str, int]:
        return {name: getattr(self, name).shape[1] for name in PARTS}

    def to_vector(self) -> torch.Tensor:
        """Concatenate into (B, 228) (or 246 with RGB light), in ``PARTS`` order."""
        return torch.cat([getattr(self, name) for name in PARTS], 1)

    @classmethod
    def from_vector(cls, x: torch.Tensor, sizes: dict[str, int]) -> "FaceParams":
        """Split a (B, N) vector laid out as ``sizes`` (see :meth:`sizes`)."""
        parts, i = {}, 0
        for name in PARTS:
            parts[name] = x[:, i : i + sizes[name]]
            i += sizes[name]
        if i != x.shape[1]:
            raise ValueError(f"vector has {x.shape[1]} numbers, layout needs {i}")
        return cls(**parts)

    def map(self, fn) -> "FaceParams":
        """Apply ``fn`` to every tensor (e.g. ``lambda t: t.detach().cpu()``)."""
        return FaceParams(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def __getitem__(self, idx) -> "FaceParams":
        """Select images: ``params[2:3]``, ``params[mask]``; an int keeps the batch axis."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return self.map(lambda t: t[idx])

    @staticmethod
    def cat(items: list["FaceParams"]) -> "FaceParams":
        return FaceParams(**{f.name: torch.cat([getattr(p, f.name) for p in items]) for f in fields(FaceParams)})
