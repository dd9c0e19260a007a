"""The head mesh facerecon's files hold: closed from inside, so no viewer looks through it.

ICT-FaceKit's "head" region (face, head and neck, eyeballs) has three holes besides the neck:
the mouth (along the inner lip line) and the two eye openings. Viewers show the background
through them, or the inside of the head. In the kit's full mesh those holes are closed: the mouth
socket (a bag behind the lips, with gums, tongue and teeth inside) and the eye sockets (behind
the lids, around the eyeballs) are joined to the lip and lid lines by a ring of triangles that
use vertices of both parts — the ring a region made of face and head parts alone drops.
:func:`export_model` gives the face model over the region "export", those parts included, so
the ring is kept: the boundaries left are the bottom of the neck and two open edges of the gums
inside the closed mouth. The sockets follow every expression (the kit's blendshapes move them).
"""

from __future__ import annotations

import numpy as np

_EXPORT_CACHE: dict[tuple, object] = {}


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """The boundary loops (vertex ids in walking order) of a triangle mesh (F,3): chains of the
    edges that only one triangle uses."""
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
    uniq, count = np.unique(e, axis=0, return_counts=True)
    nb: dict[int, list[int]] = {}
    for a, b in uniq[count == 1].tolist():
        nb.setdefault(a, []).append(b)
        nb.setdefault(b, []).append(a)
    seen: set[int] = set()
    loops = []
    for start in sorted(nb):
        if start in seen:
            continue
        loop, prev, cur = [start], -1, start
        seen.add(start)
        while True:
            nxt = [x for x in nb[cur] if x != prev and x not in seen]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            loop.append(cur)
            seen.add(cur)
        loops.append(np.asarray(loop, dtype=np.int64))
    return loops


def export_model(model, region: str = "export"):
    """The face model whose mesh facerecon writes: ``model``'s face model over ``region``
    (default "export": the head with mouth and eye sockets, gums, tongue and teeth), on
    ``model``'s device; ``model`` itself if it already is over ``region``.

    Loaded from the same ICT-FaceKit source (checked by its sha256) and cached per process.
    Raises ``ValueError`` if the source found is not the one ``model`` was built from.
    """
    from facerecon.facemodel.model import load_face_model

    if model.region == region:
        return model
    dev = model.mean.device
    kind = getattr(model, "albedo_kind", "spectral")
    landmarks = getattr(model, "landmark_set", "ict")
    key = (model.name, model.source_sha256, region, str(dev), kind, landmarks)
    hit = _EXPORT_CACHE.get(key)
    if hit is not None:
        return hit
    out = load_face_model(region, device=dev, allow_download=False, albedo=kind, landmarks=landmarks)
    if out.source_sha256 != model.source_sha256:
        raise ValueError(f"the face model found for region '{region}' is not the one given "
                         f"(source sha256 {out.source_sha256[:12]} != {model.source_sha256[:12]})")
    if len(_EXPORT_CACHE) >= 4:
        _EXPORT_CACHE.pop(next(iter(_EXPORT_CACHE)))
    _EXPORT_CACHE[key] = out
    return out


__all__ = ["boundary_loops", "export_model"]
