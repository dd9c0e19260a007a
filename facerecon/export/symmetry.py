"""Left–right mirror partners on the face model, per vertex and per texel.

ICT-FaceKit's mean face is symmetric about the plane x = 0 (99 % of vertices have a vertex exactly
at their reflection; the farthest is 0.3 mm off), while a fitted face need not be. Texture
completion copies colour from the side a photo saw to the side it did not, so it needs, for each
texel, the texel at the mirror image of its point: both are found on the *mean* face, where the
correspondence is clean and the same for every person.

:func:`texel_mirror` reflects each texel's mean-face point (and normal) and takes the nearest
texel in position and normal (a k-d tree over both, the normal scaled by ``normal_mm``, so that
the two layers of an eyeball or the two sides of a thin lid do not swap). On ICT's head at
1024² the partner lies within 0.2 mm (median) and 0.6 mm (99th percentile) of the reflected
point; the map is cached per atlas and size.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerecon.export.atlas import UVAtlas
from facerecon.export.uvraster import texel_geometry

from facerecon.geometry import FLIP, mirror_vertices  # noqa: F401 - re-exported: this module's per-vertex half


@dataclass(frozen=True)
class TexelMirror:
    """Mirror partner of every covered texel (arrays over the raster's ``pix``)."""

    partner: np.ndarray
    """(N,) int64 index (into the covered texels) of the texel at the reflected point."""
    distance: np.ndarray
    """(N,) float32 mm between the reflected point and the partner's point (mean face)."""


_MIRROR_CACHE: dict[tuple, tuple[UVAtlas, TexelMirror]] = {}


#: Bump when the mirror map's computation changes: invalidates the files cached on disk.
_MIRROR_VERSION = 1


def _disk_key(model, atlas: UVAtlas, size: int, normal_mm: float) -> str:
    """What a mirror map depends on: the model's source and vertices, the atlas, size, offset."""
    h = hashlib.sha256()
    h.update(f"{_MIRROR_VERSION}|{model.name}|{model.source_sha256}|{int(size)}|{float(normal_mm)!r}".encode())
    for a in (np.asarray(model.vertex_ids, np.int64), np.asarray(atlas.uv, np.float64),
              np.asarray(atlas.faces_uv, np.int64)):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:20]


def _read_cached(path: Path) -> TexelMirror | None:
    try:
        with np.load(path) as z:
            return TexelMirror(partner=z["partner"].astype(np.int64), distance=z["distance"].astype(np.float32))
    except Exception:  # noqa: BLE001 - missing or unreadable: recompute (and rewrite)
        return None


def texel_mirror(model, atlas: UVAtlas, size: int, normal_mm: float = 4.0) -> TexelMirror:
    """The texel mirror map of a face model's atlas at ``size``² (about 1.5 s at 1024²), kept in
    memory and in the user cache folder (``texel-mirror-*.npz``) so later runs only read it."""
    from scipy.spatial import cKDTree

    from facerecon.assets import cache_dir
    from facerecon.atomic import atomic_path

    ids = np.asarray(model.vertex_ids)
    key = (model.name, model.source_sha256, len(ids), int(ids.sum()), id(atlas), int(size), float(normal_mm))
    hit = _MIRROR_CACHE.get(key)
    if hit is not None and hit[0] is atlas:
        return hit[1]
    path = cache_dir() / f"texel-mirror-{_disk_key(model, atlas, size, normal_mm)}.npz"
    out = _read_cached(path)
    if out is not None:
        _remember(key, atlas, out)
        return out
    geo = texel_geometry(model, atlas, size)
    p, n = geo.position.astype(np.float64), geo.normal.astype(np.float64) * normal_mm
    tree = cKDTree(np.concatenate([p, n], 1))
    _, idx = tree.query(np.concatenate([p * FLIP, n * FLIP], 1))
    dist = np.linalg.norm(p[idx] - p * FLIP, axis=1).astype(np.float32)
    out = TexelMirror(partner=idx.astype(np.int64), distance=dist)
    try:
        with atomic_path(path, mkdir=True) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, partner=idx.astype(np.int32), distance=dist)
    except OSError:  # a read-only cache folder only costs the next run the computation
        pass
    _remember(key, atlas, out)
    return out


def _remember(key: tuple, atlas: UVAtlas, out: TexelMirror) -> None:
    if len(_MIRROR_CACHE) >= 4:
        _MIRROR_CACHE.pop(next(iter(_MIRROR_CACHE)))
    _MIRROR_CACHE[key] = (atlas, out)


__all__ = ["FLIP", "mirror_vertices", "TexelMirror", "texel_mirror"]
