"""Lambertian shading under spherical-harmonics light (3 bands, 9 coefficients)."""

from __future__ import annotations

import math

import torch

# Irradiance basis: real SH Y_lm times the Lambertian kernel's band factors (π, 2π/3, π/4),
# divided by the DC term so that gamma = (1, 0, ..., 0) is uniform light of intensity 1.
_A = (math.pi, 2 * math.pi / 3, math.pi / 4)
_C0 = 1 / (2 * math.sqrt(math.pi))
_C1 = math.sqrt(3) / (2 * math.sqrt(math.pi))
_C2 = math.sqrt(15) / (2 * math.sqrt(math.pi))
_C20 = math.sqrt(5) / (4 * math.sqrt(math.pi))
_DC = _A[0] * _C0


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The 9 irradiance basis functions (…,9) at unit normals (…,3), DC normalised to 1.

    Order: 1, y, z, x, xy, yz, 3z²−1, xz, x²−y² (camera frame: +z towards the camera).
    """
    x, y, z = normals.unbind(-1)
    k1, k2 = _A[1] * _C1 / _DC, _A[2] / _DC
    return torch.stack(
        [
            torch.ones_like(x),
            k1 * y,
            k1 * z,
            k1 * x,
            k2 * _C2 * x * y,
            k2 * _C2 * y * z,
            k2 * _C20 * (3 * z * z - 1),
            k2 * _C2 * x * z,
            k2 * _C2 / 2 * (x * x - y * y),
        ],
        -1,
    )


def sh_shading(albedo: torch.Tensor, normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Vertex colours ``C_i = t_i · Σ_b γ_b H_b(n_i)`` (B,V,3).

    ``gamma`` is (B,9) for monochromatic light (the paper's model) or (B,3,9) / (B,27) for RGB light.
    """
    basis = sh_basis(normals)  # (B,V,9)
    if gamma.dim() == 2 and gamma.shape[1] == 9:
        return albedo * (basis @ gamma[:, :, None])
    g = gamma.reshape(gamma.shape[0], 3, 9)
    return albedo * torch.einsum("bvk,bck->bvc", basis, g)


def ambient_gamma(batch: int, intensity: float = 1.0, device=None, rgb: bool = False) -> torch.Tensor:
    """Uniform light: (B,9) or (B,27) coefficients with only the DC term set."""
    g = torch.zeros(batch, 27 if rgb else 9, device=device)
    if rgb:
        g[:, [0, 9, 18]] = intensity
    else:
        g[:, 0] = intensity
    return g
