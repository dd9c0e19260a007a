"""Completing a baked texture where no photo saw the face: mirror partners re-lit by the fitted
light, a fill colour from the photo's own skin (a smooth field over the head, the model's template
albedo where the photo says nothing), fixed colours inside the head, and painted eyes.

:mod:`facerecon.export.texture` samples the photos and calls these; they work on texel arrays
(colours RGB in [0,1], weights in [0,1]) and know nothing of cameras or photos.
"""

from __future__ import annotations

import cv2
import numpy as np

from facerecon.export.eyes import DEFAULT_IRIS, eye_colors, eye_geometry, iris_color
from facerecon.export.uvraster import PART_NAMES, TexelGeometry, UVRaster, interpolate, to_image

#: Fill colours (RGB in [0,1]) of the parts inside the head, before the photo's exposure is applied.
INNER_COLORS: dict[str, tuple[float, float, float]] = {
    "mouth_socket": (0.36, 0.13, 0.12),
    "gums_tongue": (0.62, 0.28, 0.27),
    "teeth": (0.86, 0.82, 0.72),
    "eye_socket_left": (0.58, 0.33, 0.30),
    "eye_socket_right": (0.58, 0.33, 0.30),
}


def _luma(rgb: np.ndarray) -> float:
    """Rec. 601 luma of one RGB colour (same scale as the colour)."""
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def _skin_texels(model, geo: TexelGeometry) -> np.ndarray:
    """(N,) bool: texels of the model's skin region (forehead, cheeks, nose; ``model.skin_mask``)."""
    skin_v = model.skin_mask.detach().cpu().numpy().astype(np.float32)
    return interpolate(geo.raster, model.faces.detach().cpu().numpy(), skin_v)[:, 0] > 0.5


def skin_color(model, geo: TexelGeometry, color: np.ndarray, weight: np.ndarray, *, min_weight: float = 0.9,
               min_texels: int = 100) -> np.ndarray | None:
    """The photo's skin colour (3,) float32 in [0,1]: median over the texels of the skin region
    (forehead, cheeks, nose) with photo weight ≥ ``min_weight``; failing ``min_texels`` of those,
    over any such texel of the face; None if the photo saw too little."""
    seen = weight >= min_weight
    sel = seen & _skin_texels(model, geo)
    if sel.sum() < min_texels:
        sel = seen & (geo.part == PART_NAMES.index("face"))
        if sel.sum() < min_texels:
            return None
    return np.median(color[sel], axis=0).astype(np.float32)


_SKIN_SYSTEM_CACHE: dict[tuple, tuple] = {}


def _skin_system(model) -> tuple[np.ndarray, object, object]:
    """The skin vertices (face and head_neck parts; (K,) model indices) and the cotangent
    Laplacian L and lumped mass matrix M (mm²) of the mean face over them (cached per model)."""
    ids = np.asarray(model.vertex_ids)
    key = (model.name, model.source_sha256, len(ids), int(ids.sum()))
    hit = _SKIN_SYSTEM_CACHE.get(key)
    if hit is not None:
        return hit
    from facerecon.facemodel.albedo import cotangent_laplacian
    from facerecon.export.uvraster import vertex_parts

    part = vertex_parts(ids)
    skin = np.flatnonzero((part == PART_NAMES.index("face")) | (part == PART_NAMES.index("head_neck")))
    faces = model.faces.detach().cpu().numpy()
    local = -np.ones(len(ids), np.int64)
    local[skin] = np.arange(len(skin))
    tri = local[faces]
    tri = tri[(tri >= 0).all(1)]
    lap, mass = cotangent_laplacian(model.mean.detach().cpu().numpy().astype(np.float64)[skin], tri)
    out = (skin, lap, mass)
    _SKIN_SYSTEM_CACHE[key] = out
    return out


def skin_field(model, geo: TexelGeometry, observed: np.ndarray, w_observed: np.ndarray, skin_rgb: np.ndarray,
               length_mm: float = 25.0, data_weight: float = 20.0) -> np.ndarray:
    """A smooth skin colour (N,3) float32 over the skin texels (face, head and neck) that meets
    what the photos show and relaxes to ``skin_rgb`` away from it.

    On the mean face's skin vertices it minimises ∫ λ w |c − o|² + ℓ² |∇c|² + |c − skin|² dA, with
    ``o``/``w`` the observed colours and their weights (``observed``/``w_observed`` over the texels,
    gathered at each texel's nearest triangle corner), λ = ``data_weight`` and ℓ = ``length_mm``:
    next to the seen face the fill continues its colour (no step at the border), some ℓ further
    on it is the photo's overall skin colour. Texels of other parts get ``skin_rgb``.
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    skin, lap, mass = _skin_system(model)
    ras = geo.raster
    faces = model.faces.detach().cpu().numpy()
    corner = faces[ras.tri, np.argmax(ras.bary, axis=1)]
    n_v = len(np.asarray(model.vertex_ids))
    wsum = np.bincount(corner, weights=w_observed, minlength=n_v)
    csum = np.stack([np.bincount(corner, weights=w_observed * observed[:, k], minlength=n_v) for k in range(3)], 1)
    count = np.maximum(np.bincount(corner, minlength=n_v), 1)
    w_v = (wsum / count)[skin]
    o_v = (csum / np.maximum(wsum, 1e-9)[:, None])[skin]
    m = mass.diagonal()
    wd = data_weight * w_v
    a = sp.diags(m * wd) + (length_mm ** 2) * lap + sp.diags(m)
    b = (m * wd)[:, None] * o_v + m[:, None] * np.asarray(skin_rgb, np.float64)[None]
    solve = spla.factorized(a.tocsc())
    c_skin = np.stack([solve(b[:, k]) for k in range(3)], 1)
    field = np.tile(np.asarray(skin_rgb, np.float64), (n_v, 1))
    field[skin] = c_skin
    return np.clip(interpolate(ras, faces, field), 0.0, 1.0)


_TEMPLATE_CACHE: dict[int, tuple[TexelGeometry, tuple]] = {}


def _template_colors(model, geo: TexelGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's template albedo at the texels (N,3), its skin colour (3,), and the template's
    features relative to that skin (N,3, clipped to [0.3, 1.5]); cached per texel geometry."""
    hit = _TEMPLATE_CACHE.get(id(geo))
    if hit is not None and hit[0] is geo:
        return hit[1]
    faces = model.faces.detach().cpu().numpy()
    albedo = model.albedo_mean.detach().cpu().numpy().astype(np.float32)
    skin_v = model.skin_mask.detach().cpu().numpy().astype(bool)
    ref = np.median(albedo[skin_v], axis=0) if skin_v.any() else np.median(albedo, axis=0)
    template = np.clip(interpolate(geo.raster, faces, albedo), 0.0, 1.0)
    feature = np.clip(template / np.maximum(ref, 1e-3)[None], 0.3, 1.5)
    out = (template, ref, feature)
    if len(_TEMPLATE_CACHE) >= 4:
        _TEMPLATE_CACHE.pop(next(iter(_TEMPLATE_CACHE)))
    _TEMPLATE_CACHE[id(geo)] = (geo, out)
    return out


def fill_colors(model, geo: TexelGeometry, skin_rgb: np.ndarray | None, observed: np.ndarray | None = None,
                w_observed: np.ndarray | None = None) -> np.ndarray:
    """Fill colours (N,3) float32 for texels no photo saw.

    With ``skin_rgb`` (the photo's skin colour): on the skin the :func:`skin_field` of the
    ``observed`` colours (or ``skin_rgb`` itself without them), times the template albedo's
    features relative to its skin on the face (lips, brows); inside the head the
    :data:`INNER_COLORS` scaled by the photo's exposure (skin luma over the template's, clipped to
    [0.6, 1.3]). Without it: the model's template albedo (its mean, no fitted coefficients).
    """
    template, ref, feature = _template_colors(model, geo)
    if skin_rgb is None:
        fill = template.copy()
        exposure = 1.0
    else:
        exposure = float(np.clip(_luma(skin_rgb) / max(_luma(ref), 1e-3), 0.6, 1.3))
        if observed is not None and w_observed is not None:
            fill = skin_field(model, geo, observed, w_observed, skin_rgb)
        else:
            fill = np.tile(np.asarray(skin_rgb, np.float32), (len(geo.part), 1))
        # the template's features (reddish lips, darker brows) relative to its skin, on the face
        face = geo.part == PART_NAMES.index("face")
        fill[face] = np.clip(fill[face] * feature[face], 0.0, 1.0)
    for name, rgb in INNER_COLORS.items():
        fill[geo.part == PART_NAMES.index(name)] = np.clip(np.asarray(rgb, np.float32) * exposure, 0.0, 1.0)
    return fill.astype(np.float32)


def complete_texels(color: np.ndarray, weight: np.ndarray, fill: np.ndarray, partner: np.ndarray,
                    usable: np.ndarray | None = None, relight: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Complete photo colours where the photo weight is below 1.

    ``texel = w·photo + (1 − w)·(w_m·r·photo[partner] + (1 − w_m)·fill)`` with ``w`` the texel's
    photo weight, ``w_m`` its mirror partner's (0 where ``usable`` is False) and ``r`` = ``relight``
    (N,3) (default 1): the light's ratio between the texel and its partner. Arrays over the
    covered texels: ``color`` (N,3), ``weight`` (N,), ``fill`` (N,3), ``partner`` (N,) indices.
    Returns the colours (N,3) float32 and ``w_m`` (N,).
    """
    wm = weight[partner]
    if usable is not None:
        wm = np.where(usable, wm, 0.0)
    mirrored = color[partner] if relight is None else np.clip(color[partner] * relight, 0.0, 1.0)
    inner = fill + wm[:, None] * (mirrored - fill)
    return (inner + weight[:, None] * (color - inner)).astype(np.float32), wm.astype(np.float32)


def mirror_relight(shading: np.ndarray | None, partner: np.ndarray, exponent: float, max_ratio: float = 1.6
                   ) -> np.ndarray | None:
    """(N,3) factors ``(S / S[partner])^exponent`` (clipped to [1/max_ratio, max_ratio]) that carry
    the light left in the texture (the part :func:`delight` did not even out: exponent =
    1 − its strength) from a mirror partner over to the texel; None without shading."""
    if shading is None or exponent <= 0:
        return None
    s = np.maximum(shading, 1e-3)
    return np.clip((s / s[partner]) ** exponent, 1.0 / max_ratio, max_ratio).astype(np.float32)


def mirror_consistent_weight(color: np.ndarray, weight: np.ndarray, partner: np.ndarray, usable: np.ndarray,
                             relight: np.ndarray | None = None, raster: UVRaster | None = None,
                             facing: np.ndarray | None = None, tolerance: float = 0.1, scale: float = 0.15,
                             margin: float = 0.3, smooth_texels: float = 4.0) -> np.ndarray:
    """Photo weights (N,) lowered where a texel disagrees with a mirror partner the photo saw
    better: ``w · (1 − s·(1 − trust))`` with ``trust = exp(−(max(d − tolerance, 0)/scale)²)``, d the
    largest channel difference to the partner's colour (times ``relight``, the light's ratio
    between the two, so that shading is no disagreement) and s = clip((q_partner − q)/margin, 0,
    1), q = w × ``facing`` (the cosine of the view angle; w alone without it). With ``raster`` the
    factor is also blurred (σ = ``smooth_texels``, the lower of the two kept), so that it fades
    out around what it lowers instead of leaving an edge.

    Along the far side of a turned face a fit that is a few pixels too wide samples the
    background (a wall, a collar); the partner, seen squarely, shows skin there. Texels seen as
    well as their partner are left alone, so a real asymmetry (a mole, a scar) survives where it
    is seen squarely (seen at a slant while its partner is seen squarely, it gives way).
    """
    q = weight if facing is None else weight * np.clip(facing, 0.0, 1.0)
    qp = np.where(usable, q[partner], 0.0)
    s = np.clip((qp - q) / margin, 0.0, 1.0)
    expected = color[partner] if relight is None else color[partner] * relight
    d = np.abs(color - expected).max(1)
    trust = np.exp(-(np.maximum(d - tolerance, 0.0) / scale) ** 2)
    factor = (1.0 - s * (1.0 - trust)).astype(np.float32)
    if raster is not None and smooth_texels > 0:  # soften outwards; what was low stays low
        img = to_image(raster, factor, fill=1.0)
        factor = np.minimum(cv2.GaussianBlur(img, (0, 0), smooth_texels).reshape(-1)[raster.pix], factor)
    return (weight * factor).astype(np.float32)


def bright_outlier_weight(color: np.ndarray, weight: np.ndarray, skin_rgb: np.ndarray | None, where: np.ndarray,
                          max_ratio: float = 1.3, scale: float = 0.15) -> np.ndarray:
    """Photo weights (N,) lowered on texels of ``where`` that are much brighter than the skin:
    ``w · exp(−(max(luma/luma_skin − max_ratio, 0)/scale)²)``.

    Around the face (ears, under the jaw, the top of the forehead) and along its silhouette a fit
    samples what lies next to the head in the photo — a white collar, a telephone, a bright
    wall — which the completion would copy to both sides; skin, hair and beard are not brighter
    than the face's skin by that much. The caller leaves out the inner face seen squarely, so
    highlights on the nose and forehead stay."""
    if skin_rgb is None or not where.any():
        return weight
    ratio = (color @ np.array([0.299, 0.587, 0.114], np.float32)) / max(_luma(skin_rgb), 1e-3)
    trust = np.exp(-(np.maximum(ratio - max_ratio, 0.0) / scale) ** 2)
    return np.where(where, weight * trust, weight).astype(np.float32)


def coolness(rgb: np.ndarray) -> np.ndarray:
    """How far green or blue outweighs red, per unit of brightness: ``(max(G, B) − R) / (Y + 0.1)``
    of RGB colours (…,3) in [0, 1], Y their Rec. 601 luma. Skin of every tone, lips, hair and
    beards, brown to grey, lie at or below 0 (red leads or all three are level); green, blue and
    cyan walls and clothes well above (a pale cyan wall 0.4, a blue shirt 1; near-black
    0.1 at most, however its noise leans)."""
    rgb = np.asarray(rgb, np.float32)
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    return (np.maximum(rgb[..., 1], rgb[..., 2]) - rgb[..., 0]) / (luma + np.float32(0.1))


def cool_outlier_weight(color: np.ndarray, weight: np.ndarray, skin_rgb: np.ndarray | None, where: np.ndarray,
                        margin: float = 0.15, scale: float = 0.1) -> np.ndarray:
    """Photo weights (N,) lowered on texels of ``where`` that are much greener or bluer than skin:
    ``w · exp(−(max(c − c_skin − margin, 0)/scale)²)`` with c the :func:`coolness` and c_skin the
    skin colour's, if above 0 (a photo with a cool cast).

    The companion of :func:`bright_outlier_weight` for what lies next to the head without being
    brighter than the face (a green or pale cyan wall, a blue shirt), which a fit samples along the
    jaw and neck and the completion would copy to both sides. Hair and beards keep their weight
    (grey lies at c = 0, so a grey-blue cast costs them little); the caller leaves out the
    forehead, where green or blue is dyed hair the photo shows."""
    if skin_rgb is None or not where.any():
        return weight
    excess = coolness(color) - max(float(coolness(np.asarray(skin_rgb, np.float32))), 0.0)
    trust = np.exp(-(np.maximum(excess - margin, 0.0) / scale) ** 2)
    return np.where(where, weight * trust, weight).astype(np.float32)


_EYE_CACHE: dict[tuple, dict] = {}


def paint_eyes(model, geo: TexelGeometry, out: np.ndarray, color: np.ndarray, weight: np.ndarray
               ) -> tuple[np.ndarray | None, bool]:
    """Paint sclera, iris and pupil on the eyeball texels of ``out`` (N,3), in place; the iris in
    the photo's colour (``color``/``weight`` of the photo at the texels) if it shows enough of
    it, else :data:`~facerecon.export.eyes.DEFAULT_IRIS`. Returns (iris colour, from the photo),
    (None, False) for a model without eyeballs."""
    ids = np.asarray(model.vertex_ids)
    key = (model.name, model.source_sha256, len(ids), int(ids.sum()))
    eyes = _EYE_CACHE.get(key)
    if eyes is None:
        eyes = _EYE_CACHE[key] = eye_geometry(model)
    if not eyes:
        return None, False
    sel = {name: np.flatnonzero(geo.part == PART_NAMES.index(name)) for name in eyes}
    rho = np.concatenate([eyes[n].coordinates(geo.position[s])[0] for n, s in sel.items()])
    idx = np.concatenate(list(sel.values()))
    iris_mm = float(np.mean([e.iris_mm for e in eyes.values()]))
    iris = iris_color(rho, color[idx], weight[idx], iris_mm)
    from_photo = iris is not None
    iris_rgb = iris if from_photo else DEFAULT_IRIS
    for name, s in sel.items():
        out[s] = eye_colors(eyes[name], geo.position[s], iris_rgb)
    return np.asarray(iris_rgb, np.float32), from_photo


__all__ = ["INNER_COLORS", "skin_color", "skin_field", "fill_colors", "complete_texels", "mirror_relight",
           "mirror_consistent_weight", "bright_outlier_weight", "coolness", "cool_outlier_weight",
           "paint_eyes"]
