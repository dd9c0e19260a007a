"""iBUG / 300-W ``.pts`` landmark files: read and write.

Coordinates are stored as given; 300-W's files are 0-based with pixel centres at integers (the
dlib / OpenCV convention).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_pts(path: str | Path) -> np.ndarray:
    """Read an iBUG/300-W ``.pts`` file: (N, 2) float32 (x, y) pixels, N = n_points (68).

    Coordinates are returned exactly as stored (no 0/1-based shift).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    if "{" not in text or "}" not in text:
        raise ValueError(f"{path}: not a .pts file (no '{{ ... }}' block)")
    header, rest = text.split("{", 1)
    body = rest.split("}", 1)[0]
    n_expected = None
    for line in header.splitlines():
        if line.strip().lower().startswith("n_points"):
            n_expected = int(line.split(":", 1)[1])
    try:
        values = np.array(body.split(), dtype=np.float64)
    except ValueError:
        raise ValueError(f"{path}: non-numeric landmark coordinates") from None
    if values.size % 2:
        raise ValueError(f"{path}: odd number of coordinates ({values.size})")
    pts = values.reshape(-1, 2).astype(np.float32)
    if n_expected is not None and len(pts) != n_expected:
        raise ValueError(f"{path}: header says {n_expected} points, found {len(pts)}")
    return pts


def pts_text(points: np.ndarray, offset: float = 0.0) -> str:
    """``.pts`` file text for (N,2) points, each written as ``x + offset, y + offset``
    (e.g. ``offset=-0.5`` from pixel-centre-at-½ coordinates to the 0-based convention)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2) + offset
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts)
    return f"version: 1\nn_points: {len(pts)}\n{{\n{body}\n}}\n"
