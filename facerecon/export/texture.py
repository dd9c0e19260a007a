"""Bake a UV texture for the fitted face from one photo or several, and complete it where no
photo saw the face.

For every texel of the atlas (:mod:`facerecon.export.atlas`) we know the triangle and the
barycentrics it lies at (:mod:`facerecon.export.uvraster`). That gives its 3D point and normal on
the fitted, posed mesh. The point is projected through the fitted camera and the crop→photo
transform into the photo and sampled bilinearly there if it is visible: in front in a z-buffer of
the same mesh rendered at the photo's resolution, and facing the camera (n·v > ``min_facing``)
(:func:`sample_photo`). The photo weight falls off smoothly with the facing angle, with the UV
distance to the nearest occluded texel (feathering), next to the mesh's outlines in the image,
and in 3D towards the parts of the head that were not fitted (scalp, back, neck:
:func:`photo_vertex_weight`).

Where the photo weight is below 1 the texel is *completed* (:mod:`facerecon.export.completion`):

1. from its mirror partner (:mod:`facerecon.export.symmetry`: the texel at the point's reflection
   through the face's left–right symmetry plane), weighted by how well the photo saw that
   partner — a three-quarter view's far cheek, ear and eye take the near side's. The photo's
   colours were first evened out by part of the fitted light (:func:`delight`), the rest of the
   light's difference between the two texels is applied to the copy,
   and texels that disagree with a partner seen better (background sampled along the far jaw)
   or, around the face, are far brighter than its skin (a white collar) or, below the nose, much
   greener or bluer (a green wall, a blue shirt) lose photo weight;
2. what neither saw takes a *fill* colour: the model's template albedo (skin, with darker brows
   and reddish lips where the face has them) scaled per channel so that its skin is the skin
   colour of the photo (median over the fully seen cheeks, forehead and nose), and fixed colours
   for the inside of the mouth, the gums and the teeth — so the scalp, neck and ears match the
   face's tone. Every blend follows the smooth photo weights: no hard seam.

The eyeballs are painted (:mod:`facerecon.export.eyes`: sclera, iris and pupil, the iris in the
photo's colour where it was seen). Empty texels between UV charts are filled from their nearest
neighbour so that filtering and mip-mapping show no black cracks at seams.

With several photos (:func:`bake_texture_multi`) every texel takes the photos that see it best
(photo weight × facing⁴), after each photo's colours were matched to the others' by one gain per
channel (least squares over the texels two photos both see well), then is completed as above.
``complete=False`` gives the earlier behaviour: the fitted model's colour (albedo × shading)
wherever the photo is not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numba
import numpy as np
import torch

from facerecon.export.atlas import UVAtlas, model_atlas
from facerecon.export.completion import (bright_outlier_weight, complete_texels, cool_outlier_weight, fill_colors,
                                         mirror_consistent_weight, mirror_relight, paint_eyes, skin_color)
from facerecon.export.photo import PosedMesh, affine_scale, posed_mesh, project_to_photo, rasterize_photo
from facerecon.export.symmetry import texel_mirror
from facerecon.export.uvraster import (PART_NAMES, UVRaster, fill_gaps, interpolate, texel_geometry, to_image,
                                       uv_raster)
from facerecon.params import FaceParams
from facerecon.render.camera import Camera
from facerecon.render.shading import sh_shading

#: A mirror partner farther than this (mm, mean face) from the reflected point is not used.
MAX_MIRROR_MM = 2.0


@numba.njit(parallel=True, cache=True, nogil=True)
def _front_depth_kernel(px, py, tri_id, xy, invz, faces):  # pragma: no cover - jitted
    """Depth (mm) of the front surface under points (px, py) (rasterizer coordinates): the plane
    of the triangle the z-buffer kept at that pixel, evaluated at the point itself (perspective-
    correct); +inf off the mesh or off the raster."""
    n = px.shape[0]
    h, w = tri_id.shape
    out = np.full(n, np.inf, np.float32)
    for i in numba.prange(n):
        col, row = int(np.floor(px[i])), int(np.floor(py[i]))
        if col < 0 or row < 0 or col >= w or row >= h:
            continue
        t = tri_id[row, col]
        if t < 0:
            continue
        a, b, c = faces[t, 0], faces[t, 1], faces[t, 2]
        xa, ya, xb, yb, xc, yc = xy[a, 0], xy[a, 1], xy[b, 0], xy[b, 1], xy[c, 0], xy[c, 1]
        area = (xb - xa) * (yc - ya) - (yb - ya) * (xc - xa)
        if area == 0:
            continue
        w0 = ((xc - xb) * (py[i] - yb) - (yc - yb) * (px[i] - xb)) / area
        w1 = ((xa - xc) * (py[i] - yc) - (ya - yc) * (px[i] - xc)) / area
        iz = w0 * invz[a] + w1 * invz[b] + (1.0 - w0 - w1) * invz[c]
        if iz > 0:
            out[i] = 1.0 / iz
    return out


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """3x² − 2x³ of x clipped to [0, 1]: a smooth ramp from 0 to 1."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


# ---------------------------------------------------------------------------------------------
# where the photo may be used
# ---------------------------------------------------------------------------------------------
_REGION_WEIGHT_CACHE: dict[tuple, np.ndarray] = {}


def photo_vertex_weight(model, region: str | None = "fit", feather_mm: float = 15.0,
                        neck_mm: float | None = 10.0) -> np.ndarray:
    """Per-vertex upper bound (V,) float32 in [0,1] on the photo's weight in the texture.

    The photo is trusted only on the part of the mesh that was fitted to it: the vertices of
    face-model ``region`` (default "fit": face and eyes; None: all), fading to 0 over
    ``feather_mm`` (3D distance, mean shape) towards the rest of the skin (scalp, back of the
    head, neck: ICT's "head_neck" part), and, with ``neck_mm``, fading out from ``neck_mm`` to
    ``neck_mm + feather_mm`` below the chin (landmark 8), where collars, beards and shadow rarely
    show skin the model can explain. Parts inside the head (mouth and eye sockets, gums, teeth)
    are seen only through the mouth and eyes and take the photo wherever it shows them.
    """
    ids = np.asarray(model.vertex_ids)
    key = (model.name, model.source_sha256, len(ids), int(ids.sum()), region, feather_mm, neck_mm)
    hit = _REGION_WEIGHT_CACHE.get(key)
    if hit is not None:
        return hit
    from scipy.spatial import cKDTree

    from facerecon.facemodel.ict import PARTS
    from facerecon.facemodel.model import region_vertex_ids

    mean = model.mean.detach().cpu().numpy().astype(np.float64)
    w = np.ones(len(mean))
    region_ids = None if region is None else region_vertex_ids(region)
    if region_ids is not None:
        skin = np.zeros(len(ids), bool)
        for part in ("face", "head_neck"):
            skin |= (ids >= PARTS[part][0]) & (ids < PARTS[part][1])
        outside = skin & ~np.isin(ids, region_ids)
        if outside.any():
            w = np.zeros(len(mean))
            rest = ~outside
            if rest.any():
                d, _ = cKDTree(mean[outside]).query(mean[rest])
                w[rest] = _smoothstep(d / max(feather_mm, 1e-6))
    if neck_mm is not None:
        chin_y = mean[int(model.landmark_idx[8]), 1]
        w *= _smoothstep((mean[:, 1] - (chin_y - neck_mm - feather_mm)) / max(feather_mm, 1e-6))
    out = w.astype(np.float32)
    _REGION_WEIGHT_CACHE[key] = out
    return out


# ---------------------------------------------------------------------------------------------
# what one photo says about each texel
# ---------------------------------------------------------------------------------------------
@dataclass
class PhotoSample:
    """One photo sampled at the covered texels of an atlas (arrays over ``raster.pix``)."""

    raster: UVRaster
    color: np.ndarray
    """(N,3) float32 photo RGB in [0,1] (0 where not visible)."""
    weight: np.ndarray
    """(N,) float32 in [0,1]: how far the photo is trusted at the texel."""
    visible: np.ndarray
    """(N,) bool: in front in the z-buffer and facing the camera (n·v > ``min_facing``)."""
    facing: np.ndarray
    """(N,) float32 n·v, the cosine between the surface normal and the direction to the camera."""
    model_color: np.ndarray
    """(N,3) float32 fitted albedo × fitted shading, RGB in [0,1] (not colour-matched)."""
    photo_scale: float
    """Photo pixels per texel on the visible face; the photo was pre-filtered where > 1.25."""
    shading: np.ndarray | None = None
    """(N,3) float32 the fitted light's irradiance at each texel (SH shading of a white albedo)."""


def sample_photo(model, params: FaceParams, photo: np.ndarray, M_inv: np.ndarray, camera: Camera | None = None,
                 *, size: int = 1024, atlas: UVAtlas | None = None, min_facing: float = 0.2,
                 full_facing: float = 0.5, feather: float = 1 / 32, depth_tolerance: float = 1.0,
                 photo_region: str | None = "fit", neck_mm: float | None = 10.0, contour_mm: float = 4.0,
                 jump_contour_mm: float = 4.0, posed: PosedMesh | None = None) -> PhotoSample:
    """Sample one photo at every covered texel; see :func:`bake_texture_maps` for the arguments."""
    if params.batch != 1:
        raise ValueError(f"bake_texture takes one face (batch 1), got {params.batch}")
    photo = np.asarray(photo)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"photo must be (H,W,3) uint8 RGB, got {photo.dtype} {photo.shape}")
    camera = camera or Camera()
    atlas = atlas or model_atlas(model)
    ras = uv_raster(atlas, size)
    faces = model.faces.detach().cpu().numpy()
    M_inv = np.asarray(M_inv, dtype=np.float64)

    # per vertex: photo position, depth, facing (n·v), model colour. Texel values are barycentric
    # interpolations of these: exact for depth and colour; for the photo position it neglects
    # the perspective division's variation across a triangle (< 0.01 px for a face at 1 m).
    posed = posed or posed_mesh(model, params, camera)
    v_cam, n_cam, color = posed.verts_cam, posed.normals_cam, posed.color
    xy_v, z_v = project_to_photo(torch.from_numpy(v_cam)[None], camera, M_inv)
    xy_v, z_v = xy_v[0].numpy().astype(np.float64), z_v[0].numpy().astype(np.float64)
    view = -v_cam / np.maximum(np.linalg.norm(v_cam, axis=1, keepdims=True), 1e-9)
    facing_v = (n_cam * view).sum(1)

    region_w = photo_vertex_weight(model, photo_region, neck_mm=neck_mm)
    gamma = params.gamma.detach().cpu().float()
    shade_v = sh_shading(torch.ones(1, len(n_cam), 3), torch.from_numpy(n_cam)[None], gamma)[0].numpy()
    cf = interpolate(ras, faces, np.concatenate([color, facing_v[:, None], region_w[:, None], shade_v], 1))
    model_c, facing, w_region, shading = cf[:, :3], cf[:, 3], cf[:, 4], cf[:, 5:8]
    n_tex = len(ras.pix)

    # photo window around the face; pre-filter when the photo is finer than the texture
    h_img, w_img = photo.shape[:2]
    photo_scale = _photo_pixels_per_texel(xy_v, z_v, n_cam, v_cam, faces, atlas, size)
    f = 1.0 / photo_scale if photo_scale > 1.25 else 1.0
    work = rasterize_photo(torch.from_numpy(xy_v), torch.from_numpy(z_v), model.faces, h_img, w_img, margin=3)
    x0, y0 = work.x0, work.y0
    win_h, win_w = work.shape
    window = photo[y0:y0 + win_h, x0:x0 + win_w]
    offset = (0, 0)  # of the z-buffer window inside ``window``
    visible = np.zeros(n_tex, bool)
    w_contour = np.ones(n_tex, np.float32)
    photo_c = np.zeros_like(model_c)
    cand = np.flatnonzero((facing > min_facing) & (w_region > 0))
    if win_h > 0 and win_w > 0 and len(cand):
        if f < 1.0:  # area-average the photo down to about one pixel per texel, z-buffer that
            nw, nh = max(1, round(win_w * f)), max(1, round(win_h * f))
            window = cv2.resize(window, (nw, nh), interpolation=cv2.INTER_AREA)
            fx, fy = nw / win_w, nh / win_h
            xy_w = (xy_v - (x0, y0) + 0.5) * (fx, fy) - 0.5  # pixels of the resized window
            work = rasterize_photo(torch.from_numpy(xy_w), torch.from_numpy(z_v), model.faces, nh, nw, margin=0)
            offset = (work.x0, work.y0)
        else:
            fx = fy = 1.0
        # candidate texels in z-buffer coordinates; visible unless behind the front surface
        xy_r = work.xy.numpy()
        txyz = interpolate(ras, faces, np.concatenate([xy_r, z_v[:, None]], 1), cand)
        rx, ry, depth_t = txyz[:, 0], txyz[:, 1], txyz[:, 2]
        front = _front_depth_kernel(rx, ry, work.tri_id.numpy(), np.ascontiguousarray(xy_r, dtype=np.float32),
                                    (1.0 / np.maximum(z_v, 1e-6)).astype(np.float32), faces)
        pix_mm = depth_t / np.float32(camera.focal * affine_scale(M_inv) * np.sqrt(fx * fy))
        c = np.clip(facing[cand], min_facing, 1.0)
        tol = depth_tolerance + pix_mm * np.sqrt(1.0 - c * c) / c
        vis = depth_t <= front + tol
        visible[cand[vis]] = True
        # distrust the photo next to the mesh's outlines in the image: the silhouette, where a fit
        # a few pixels off samples background, and depth jumps such as the nose over the cheek,
        # where it samples the other surface
        if contour_mm > 0:
            px_per_mm = float(np.median(1.0 / pix_mm[vis])) if vis.any() else 1.0
            d_sil, d_jump = _contour_distance(work, jump_mm=max(10.0, 6.0 / px_per_mm))
            wh, ww = d_sil.shape
            rows = np.clip(np.floor(ry).astype(np.int64), 0, wh - 1)
            cols = np.clip(np.floor(rx).astype(np.int64), 0, ww - 1)
            w_contour[cand] = (_smoothstep(d_sil[rows, cols] / (contour_mm * px_per_mm))
                               * _smoothstep(d_jump[rows, cols] / (max(jump_contour_mm, 1e-6) * px_per_mm)))
        # bilinear samples of the (window of the) photo, OpenCV pixel-centre convention
        map_xy = np.full((size * size, 2), -1.0, np.float32)
        map_xy[ras.pix[cand[vis]]] = np.stack([rx[vis] - 0.5 + offset[0], ry[vis] - 0.5 + offset[1]], 1)
        sampled = cv2.remap(np.ascontiguousarray(window), map_xy.reshape(size, size, 2), None,
                            cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        photo_c[visible] = sampled.reshape(-1, 3)[ras.pix[visible]].astype(np.float32) / 255.0

    # photo weight: facing term × feather from occluded texels (distance in UV space). Occluded:
    # facing the camera, yet hidden (behind the nose, off the photo); texels that turn away (the
    # inner lips and lids, the far side) fade out through the facing term instead, so the lips
    # and the skin around the eyes keep the photo
    hidden = np.zeros(n_tex, bool)
    hidden[cand] = True
    hidden &= ~visible
    occluded = np.zeros(size * size, np.uint8)
    occluded[ras.pix[hidden]] = 1
    occluded = cv2.morphologyEx(occluded.reshape(size, size), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    dist = cv2.distanceTransform((1 - occluded).astype(np.uint8), cv2.DIST_L2, 5).reshape(-1)[ras.pix]
    w_face = _smoothstep((facing - min_facing) / max(full_facing - min_facing, 1e-6))
    w_dist = _smoothstep(dist / max(feather * size, 1e-6))
    weight = np.where(visible, w_face * w_dist * w_region * w_contour, 0.0).astype(np.float32)
    return PhotoSample(raster=ras, color=photo_c, weight=weight, visible=visible, facing=facing.astype(np.float32),
                       model_color=model_c, photo_scale=float(photo_scale), shading=np.ascontiguousarray(shading))


def delight(sample: PhotoSample, strength: float = 1.0, max_ratio: float = 1.6, facing: tuple[float, float] = (0.2, 0.6)
            ) -> np.ndarray:
    """The photo colours (N,3) with the fitted light's low-frequency shading divided out and the
    light of the face's well-seen texels put back: ``color · (S_ref / S)^k`` with S the SH
    irradiance at the texel, S_ref its median over texels of photo weight > 0.9, and k =
    ``strength`` on texels facing the camera, falling to 0 between ``facing`` cosines (at grazing
    angles the fitted light is least certain and the photo mixes in its background); the ratio is
    clipped to [1/max_ratio, max_ratio]. A cheek turned away from the light then matches the rest
    of the face (and its mirror partner) instead of carrying its shadow across the face; shading
    the light model cannot explain (nostrils, eye sockets) stays."""
    if sample.shading is None or strength <= 0:
        return sample.color
    s = np.maximum(sample.shading, 1e-3)
    sure = sample.weight > 0.9
    if sure.sum() < 50:
        return sample.color
    ref = np.median(s[sure], axis=0)
    k = strength * _smoothstep((sample.facing - facing[0]) / max(facing[1] - facing[0], 1e-6))
    ratio = np.clip((ref[None] / s) ** k[:, None], 1.0 / max_ratio, max_ratio)
    return np.clip(sample.color * ratio, 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# baking
# ---------------------------------------------------------------------------------------------
@dataclass
class TextureBake:
    """A baked texture and the maps it was blended from (all (S,S) images, row 0 = v 1)."""

    texture: np.ndarray
    """(S,S,3) uint8 RGB: photo × weight, completed elsewhere (see the module), gaps filled."""
    photo_weight: np.ndarray
    """(S,S) float32 in [0,1]: how much of each texel came from the photo (the best of them)."""
    visible: np.ndarray
    """(S,S) bool: texel seen in the photo (in any photo)."""
    covered: np.ndarray
    """(S,S) bool: texel inside a UV triangle (the rest was filled from neighbours)."""
    model_color: np.ndarray
    """(S,S,3) float32 in [0,1]: fitted albedo × fitted shading × ``color_gain`` (0 on uncovered
    texels); of the photo with the most photo weight when several were baked."""
    color_gain: np.ndarray
    """(3,) per-channel gain applied to the model colour to match the photo (1 if not matched)."""
    photo_scale: float
    """Photo pixels per texel on the visible face; the photo was pre-filtered where > 1.25."""
    atlas: UVAtlas
    mirror_weight: np.ndarray | None = None
    """(S,S) float32: the mirror partner's photo weight, i.e. its share of what the photo did not
    give (None without completion)."""
    fill_color: np.ndarray | None = None
    """(S,S,3) float32: the colour where neither the texel nor its partner was seen."""
    skin_color: np.ndarray | None = None
    """(3,) the photo's skin colour the fill was matched to (None: not measurable)."""
    iris_color: np.ndarray | None = None
    """(3,) the painted iris colour (None: eyes not painted)."""
    iris_from_photo: bool = False
    """Whether the iris colour was measured in the photo (else the default brown)."""
    photo_gains: np.ndarray | None = None
    """(P,3) per-photo colour gains of a multi-photo bake (None for one photo)."""

    @property
    def completed_fraction(self) -> float:
        """Share of the covered texels taken mostly (> ½) from a mirror partner."""
        if self.mirror_weight is None or not self.covered.any():
            return 0.0
        m = (1.0 - self.photo_weight) * self.mirror_weight
        return float((m[self.covered] > 0.5).mean())


def finish_bake(model, atlas: UVAtlas, size: int, color: np.ndarray, weight: np.ndarray, visible: np.ndarray,
            model_c: np.ndarray, gain: np.ndarray, photo_scale: float, *, complete: bool, eyes: bool,
            photo_gains: np.ndarray | None = None, shading: np.ndarray | None = None,
            relight_exponent: float = 0.0, facing: np.ndarray | None = None) -> TextureBake:
    """The texture from photo colours ``color`` (N,3), weights ``weight`` (N,) and visibility
    (N,) over the covered texels of ``atlas`` at ``size``: mirror-consistency weights, completion
    (or the model colour ``model_c`` with ``complete=False``), painted eyes, filled gaps.
    ``shading`` (N,3) and ``relight_exponent``: see :func:`~facerecon.export.completion.mirror_relight`;
    ``facing`` (N,): see :func:`~facerecon.export.completion.mirror_consistent_weight`."""
    ras = uv_raster(atlas, size)
    geo = texel_geometry(model, atlas, size) if (complete or eyes) else None
    mirror_w = fill = skin = None
    if complete:
        mirror = texel_mirror(model, atlas, size)
        usable = mirror.distance <= MAX_MIRROR_MM
        relight = mirror_relight(shading, mirror.partner, relight_exponent)
        weight = mirror_consistent_weight(color, weight, mirror.partner, usable, relight, ras, facing)
        skin = skin_color(model, geo, color, weight)
        from facerecon.facemodel.ict import PARTS

        # around the face, and wherever the photo is already doubted (near the silhouette, at a
        # slant): the inner face seen squarely keeps its highlights
        skin_part = (geo.part == PART_NAMES.index("face")) | (geo.part == PART_NAMES.index("head_neck"))
        around = skin_part & ((geo.ict_id >= PARTS["face_narrow"][1]) | (weight < 0.9))
        weight = bright_outlier_weight(color, weight, skin, around)
        # green or blue below the nose is a wall or a shirt beside the jaw and neck; above it, it
        # may be dyed hair over the forehead, which the photo shows and the texture keeps
        below_nose = geo.position[:, 1] < float(model.mean[int(model.landmark_idx[33]), 1])
        weight = cool_outlier_weight(color, weight, skin, around & below_nose)
        # what the photo shows, directly or through the mirror (the fill continues it)
        zero = np.zeros_like(color)
        seen, mirror_w = complete_texels(color, weight, zero, mirror.partner, usable, relight)
        w_seen = weight + (1.0 - weight) * mirror_w
        observed = seen / np.maximum(w_seen, 1e-6)[:, None]
        fill = fill_colors(model, geo, skin, observed, w_seen)
        blend = seen + (1.0 - w_seen)[:, None] * fill
    else:
        blend = model_c + weight[:, None] * (color - model_c)
    iris, iris_from_photo = (None, False)
    if eyes:
        iris, iris_from_photo = paint_eyes(model, geo, blend, color, weight)
    tex = np.zeros((size * size, 3), np.uint8)
    tex[ras.pix] = np.clip(np.rint(blend * 255.0), 0, 255).astype(np.uint8)
    covered = ras.mask
    return TextureBake(
        texture=fill_gaps(tex.reshape(size, size, 3), covered),
        photo_weight=to_image(ras, weight.astype(np.float32)), visible=to_image(ras, visible.astype(bool)),
        covered=covered, model_color=to_image(ras, model_c.astype(np.float32)),
        color_gain=np.asarray(gain, np.float32), photo_scale=float(photo_scale), atlas=atlas,
        mirror_weight=None if mirror_w is None else to_image(ras, mirror_w),
        fill_color=None if fill is None else to_image(ras, fill), skin_color=skin, iris_color=iris,
        iris_from_photo=iris_from_photo, photo_gains=photo_gains)


def bake_texture_maps(model, params: FaceParams, photo: np.ndarray, M_inv: np.ndarray,
                      camera: Camera | None = None, *, size: int = 1024, atlas: UVAtlas | None = None,
                      min_facing: float = 0.2, full_facing: float = 0.5, feather: float = 1 / 32,
                      depth_tolerance: float = 1.0, photo_region: str | None = "fit", neck_mm: float | None = 10.0,
                      contour_mm: float = 4.0, jump_contour_mm: float = 4.0, match_colors: bool = True,
                      max_gain: float = 1.5,
                      posed: PosedMesh | None = None, complete: bool = True, eyes: bool = True,
                      delight_strength: float = 0.5) -> TextureBake:
    """Bake the UV texture of a fitted face from one photo and return it with its blending maps.

    Args:
        model: the :class:`~facerecon.facemodel.model.FaceModel` whose mesh is exported (e.g.
            :func:`~facerecon.export.headmesh.export_model`); its coefficients are the fitted
            ones whatever region was fitted.
        params: the fitted :class:`~facerecon.params.FaceParams`, batch 1 (any device).
        photo: (H,W,3) uint8 RGB, the original photo.
        M_inv: (2,3) crop→photo matrix (:attr:`AlignedFace.M_inv`).
        camera: the camera the fit used (crop pixels; default ``Camera()``, 224 px).
        size: texture side S in texels.
        atlas: UV layout (default :func:`~facerecon.export.atlas.model_atlas` of ``model``).
        min_facing: texels whose normal·view-direction is below this do not take the photo.
        full_facing: above this the facing term of the photo weight is 1 (smoothstep between).
        feather: width of the fade next to occluded texels, as a fraction of S (1/32 → 32 texels
            at 1024², about 1 cm on the face).
        depth_tolerance: mm a texel may lie behind the front surface and still count as visible
            (plus a slope term: one photo pixel × tan(view angle)).
        photo_region, neck_mm: where the photo may be used at all (see :func:`photo_vertex_weight`).
        contour_mm: the photo weight rises from 0 to 1 over this distance (mm, converted to photo
            pixels) from the mesh's silhouette in the image.
        jump_contour_mm: the same next to depth jumps inside the mesh's image (the nose over the
            cheek, the lips over the mouth): the cheek right behind the nose's outline would
            take the nose's colour (in the test renders too: the z-buffer's tolerance lets it
            through), so as wide as at the silhouette by default.
        match_colors: scale the model colour per channel by the median photo/model ratio over the
            texels taken fully from the photo (clipped to [1/max_gain, max_gain]); it fills the
            texture only with ``complete=False``.
        posed: ``posed_mesh(model, params)`` if already computed.
        complete: complete the texture from mirror partners and the photo's skin colour (the
            module's steps 1–2); False: the (matched) model colour wherever the photo is not used.
        eyes: paint sclera, iris and pupil on the eyeballs.
        delight_strength: with ``complete``, how much of the fitted light's shading is evened
            out in the photo's colours first (:func:`delight`; 0: none, 1: all of it). The
            default, half, was chosen by eye on LFW photos: the fitted light is only an
            approximation of a real photo's, and dividing all of it out turned strong
            second-order light terms into blotches (bright eye sockets, orange cheeks).
    """
    s = sample_photo(model, params, photo, M_inv, camera, size=size, atlas=atlas, min_facing=min_facing,
                     full_facing=full_facing, feather=feather, depth_tolerance=depth_tolerance,
                     photo_region=photo_region, neck_mm=neck_mm, contour_mm=contour_mm,
                     jump_contour_mm=jump_contour_mm, posed=posed)
    atlas = atlas or model_atlas(model)
    gain = np.ones(3, np.float32)
    model_c = s.model_color
    if match_colors:  # robust per-channel gain: model colour -> the photo's, where both are trusted
        sure = s.weight > 0.9
        if sure.sum() >= 100:
            ratio = s.color[sure] / np.maximum(model_c[sure], 1.0 / 255.0)
            gain = np.clip(np.median(ratio, axis=0), 1.0 / max_gain, max_gain).astype(np.float32)
            model_c = np.clip(model_c * gain, 0.0, 1.0)
    color = delight(s, delight_strength) if complete else s.color
    return finish_bake(model, atlas, size, color, s.weight, s.visible, model_c, gain, s.photo_scale,
                       complete=complete, eyes=eyes, shading=s.shading, relight_exponent=1.0 - delight_strength,
                       facing=s.facing)


def photo_gains(samples: list[PhotoSample], skins: list[np.ndarray | None] | None = None, *,
                min_overlap: int = 200, max_gain: float = 1.5) -> np.ndarray:
    """Per-photo colour gains (P,3) that make the photos agree where they see the same texels.

    For every pair of photos that both see at least ``min_overlap`` texels well (weight > 0.5),
    the median log colour ratio there is one equation ``log g_i − log g_j = median log(c_j/c_i)``
    (weighted by √overlap); a photo without such overlaps is tied to the others by its skin colour
    (``skins``, weight 1); the photo with the most photo weight keeps gain 1. Least squares per
    channel, gains clipped to [1/max_gain, max_gain].
    """
    p = len(samples)
    if p <= 1:
        return np.ones((p, 3), np.float32)
    ref = int(np.argmax([s.weight.sum() for s in samples]))
    rows: list[np.ndarray] = []
    rhs: list[np.ndarray] = []
    linked = np.zeros(p, bool)
    linked[ref] = True
    for i in range(p):
        for j in range(i + 1, p):
            a, b = samples[i], samples[j]
            both = (a.weight > 0.5) & (b.weight > 0.5) & (a.color.min(1) > 2 / 255) & (b.color.min(1) > 2 / 255)
            n = int(both.sum())
            if n < min_overlap:
                continue
            w = np.sqrt(n)
            row = np.zeros(p)
            row[i], row[j] = w, -w
            rows.append(row)
            rhs.append(w * np.median(np.log(b.color[both]) - np.log(a.color[both]), axis=0))
            linked[i] = linked[j] = True
    if skins is not None and skins[ref] is not None:
        for i in range(p):
            if i != ref and skins[i] is not None and (not linked[i] or not rows):
                row = np.zeros(p)
                row[i], row[ref] = 1.0, -1.0
                rows.append(row)
                rhs.append(np.log(np.maximum(skins[ref], 1e-3)) - np.log(np.maximum(skins[i], 1e-3)))
    anchor = np.zeros(p)
    anchor[ref] = 1e3
    rows.append(anchor)
    rhs.append(np.zeros(3))
    x, *_ = np.linalg.lstsq(np.stack(rows), np.stack(rhs), rcond=None)
    return np.clip(np.exp(x), 1.0 / max_gain, max_gain).astype(np.float32)


def bake_texture_multi(model, params_list: list[FaceParams], photos: list[np.ndarray], M_invs: list[np.ndarray],
                       camera: Camera | list[Camera] | None = None, *, size: int = 1024, atlas: UVAtlas | None = None,
                       sharpness: float = 4.0, match_photos: bool = True, complete: bool = True, eyes: bool = True,
                       delight_strength: float = 0.5, samples: list[PhotoSample] | None = None,
                       **kwargs) -> TextureBake:
    """Bake one UV texture from several photos of the same face.

    Args:
        model: the face model whose mesh is exported (as for :func:`bake_texture_maps`).
        params_list: one fitted :class:`FaceParams` (batch 1) per photo: each photo's own pose,
            expression and light (identity may be shared; the texel layout does not depend on it).
        photos: (H,W,3) uint8 RGB photos, one per entry of ``params_list``.
        M_invs: their (2,3) crop→photo matrices.
        camera: the fitting camera (crop pixels), one for all or one per photo; default ``Camera()``.
        size: texture side S in texels.
        atlas: UV layout (default :func:`~facerecon.export.atlas.model_atlas` of ``model``).
        sharpness: each photo's share of a texel is its photo weight × facing^sharpness (facing =
            cos of the view angle), so the photo that sees the texel most squarely dominates.
        match_photos: scale each photo's colours by :func:`photo_gains` first.
        complete, eyes, delight_strength: as for :func:`bake_texture_maps` (each photo is evened
            out under its own fitted light before the photos are matched and combined).
        samples: the photos already sampled by :func:`sample_photo` (same order, size and atlas),
            so a caller that needs them too samples each photo once; their colours are evened
            out here as usual.
        **kwargs: sampling options of :func:`bake_texture_maps` (``min_facing``, ``feather``,
            ``photo_region``, ``neck_mm``, ``contour_mm``, ``jump_contour_mm``, ``depth_tolerance``,
            ``full_facing``).

    Returns:
        a :class:`TextureBake`: ``photo_weight`` is the best photo weight per texel, ``photo_gains``
        the gains applied, ``model_color`` that of the photo with the most photo weight.
    """
    n = len(params_list)
    if n == 0 or len(photos) != n or len(M_invs) != n:
        raise ValueError(f"need as many photos and matrices as parameters, got {n}, {len(photos)}, {len(M_invs)}")
    cams = list(camera) if isinstance(camera, (list, tuple)) else [camera] * n
    if len(cams) != n:
        raise ValueError(f"{len(cams)} cameras for {n} photos")
    atlas = atlas or model_atlas(model)
    if samples is None:
        samples = [sample_photo(model, p, ph, m, c, size=size, atlas=atlas, **kwargs)
                   for p, ph, m, c in zip(params_list, photos, M_invs, cams)]
    elif len(samples) != n:
        raise ValueError(f"{len(samples)} samples for {n} photos")
    if complete and delight_strength > 0:
        for smp in samples:
            smp.color = delight(smp, delight_strength)
    geo = texel_geometry(model, atlas, size)
    if match_photos:
        gains = photo_gains(samples, [skin_color(model, geo, s.color, s.weight) for s in samples])
    else:
        gains = np.ones((n, 3), np.float32)
    score = np.stack([s.weight * np.clip(s.facing, 0.0, 1.0) ** sharpness for s in samples])
    total = score.sum(0)
    color = np.zeros_like(samples[0].color)
    for k, s in enumerate(samples):
        color += score[k][:, None] * np.clip(s.color * gains[k], 0.0, 1.0)
    color = np.where(total[:, None] > 0, color / np.maximum(total, 1e-12)[:, None], 0.0).astype(np.float32)
    weight = np.max(np.stack([s.weight for s in samples]), 0)
    visible = np.any(np.stack([s.visible for s in samples]), 0)
    ref = int(np.argmax([s.weight.sum() for s in samples]))
    return finish_bake(model, atlas, size, color, weight, visible, samples[ref].model_color, np.ones(3, np.float32),
                       samples[ref].photo_scale, complete=complete, eyes=eyes, photo_gains=gains,
                       shading=samples[ref].shading, relight_exponent=1.0 - delight_strength,
                       facing=np.max(np.stack([np.where(smp.weight > 0, smp.facing, 0.0) for smp in samples]), 0))


def _contour_distance(ras, jump_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Two (h,w) float32 distances in pixels from each pixel of a photo raster: to the nearest
    pixel off the mesh (the silhouette; beyond the window's border counts as off), and to the
    nearest depth jump inside the mesh (a neighbour's depth differs by more than ``jump_mm``)."""
    depth = ras.depth()
    h, w = depth.shape
    if h == 0 or w == 0:
        return np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    covered = np.isfinite(depth)
    d = np.where(covered, depth, np.float32(1e9))
    jump = np.zeros_like(covered)
    jx = (np.abs(np.diff(d, axis=1)) > jump_mm) & covered[:, 1:] & covered[:, :-1]
    jy = (np.abs(np.diff(d, axis=0)) > jump_mm) & covered[1:] & covered[:-1]
    jump[:, 1:] |= jx
    jump[:, :-1] |= jx
    jump[1:] |= jy
    jump[:-1] |= jy

    def distance(edge: np.ndarray, border: int) -> np.ndarray:
        padded = np.pad((~edge).astype(np.uint8), 1, constant_values=border)
        # with no edge at all OpenCV answers FLT_MAX, which overflows any later division:
        # no pixel lies further from an edge than the raster's size
        return np.minimum(cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1], np.float32(h + w))

    return distance(~covered, 0), distance(jump, 1)


def _photo_pixels_per_texel(xy: np.ndarray, depth: np.ndarray, n_cam: np.ndarray, v_cam: np.ndarray,
                            faces: np.ndarray, atlas: UVAtlas, size: int) -> float:
    """Photo pixels per texel (linear) over the triangles that face the camera (n·v > 0.5)."""
    fn = n_cam[faces].mean(1)
    view = -v_cam[faces].mean(1)
    facing = (fn * view).sum(1) / np.maximum(np.linalg.norm(fn, axis=1) * np.linalg.norm(view, axis=1), 1e-9)
    sel = (facing > 0.5) & (depth[faces] > 0).all(1)
    if not sel.any():
        return 1.0
    p = xy[faces[sel]]
    a_photo = 0.5 * np.abs((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                           - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))
    t = atlas.uv[atlas.faces_uv[sel]] * size
    a_tex = 0.5 * np.abs((t[:, 1, 0] - t[:, 0, 0]) * (t[:, 2, 1] - t[:, 0, 1])
                         - (t[:, 2, 0] - t[:, 0, 0]) * (t[:, 1, 1] - t[:, 0, 1]))
    ok = a_tex > 0
    if not ok.any() or a_photo[ok].sum() <= 0:
        return 1.0
    ratio = np.sqrt(a_photo[ok] / a_tex[ok])
    # the finely textured charts (inner face) have the fewest photo pixels per texel: take the
    # photo-area-weighted 25th percentile so that they, not the coarse head charts, set the scale
    order = np.argsort(ratio)
    cum = np.cumsum(a_photo[ok][order])
    return float(ratio[order][np.searchsorted(cum, 0.25 * cum[-1])])


def bake_texture(model, params: FaceParams, photo: np.ndarray, M_inv: np.ndarray, camera: Camera | None = None,
                 *, size: int = 1024, atlas: UVAtlas | None = None, **kwargs) -> np.ndarray:
    """The (S,S,3) uint8 UV texture of a fitted face (photo where visible, completed elsewhere,
    feathered, gaps filled); see :func:`bake_texture_maps` for the arguments."""
    return bake_texture_maps(model, params, photo, M_inv, camera, size=size, atlas=atlas, **kwargs).texture


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples (N,3) float64 in [0,1] of an (S,S,3) uint8 texture at UVs (N,2) in the
    OBJ convention (v up; texel (r, c) centred at u = (c + ½)/S, v = 1 − (r + ½)/S), clamped at
    the image border."""
    tex = np.asarray(texture, dtype=np.float64) / 255.0
    h, w = tex.shape[:2]
    uv = np.asarray(uv, dtype=np.float64)
    x = np.clip(uv[:, 0] * w - 0.5, 0.0, w - 1.0)
    y = np.clip((1.0 - uv[:, 1]) * h - 0.5, 0.0, h - 1.0)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = tex[y0, x0] * (1 - fx) + tex[y0, x1] * fx
    bottom = tex[y1, x0] * (1 - fx) + tex[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def vertex_colors_from_texture(texture: np.ndarray, uv: np.ndarray, faces_uv: np.ndarray, faces: np.ndarray,
                               n_vertices: int) -> np.ndarray:
    """Per-vertex colours (V,3) float64 in [0,1] read from a UV texture: the texture at each of
    the vertex's UV corners (bilinear), averaged where a UV seam gives it several; vertices no
    triangle uses get the mean colour."""
    f = np.asarray(faces, dtype=np.int64).ravel()
    t = np.asarray(faces_uv, dtype=np.int64).ravel()
    n_uv = int(t.max(initial=0)) + 1
    key = np.unique(f * n_uv + t)  # one entry per (vertex, UV corner) pair
    vert, corner = key // n_uv, key % n_uv
    col = sample_texture(texture, np.asarray(uv)[corner])
    count = np.bincount(vert, minlength=n_vertices).astype(np.float64)
    out = np.stack([np.bincount(vert, weights=col[:, k], minlength=n_vertices) for k in range(3)], 1)
    used = count > 0
    out[used] /= count[used, None]
    out[~used] = col.mean(0) if len(col) else 0.5
    return out


__all__ = ["MAX_MIRROR_MM", "UVRaster", "uv_raster", "fill_gaps", "photo_vertex_weight", "PhotoSample",
           "sample_photo", "delight", "TextureBake", "finish_bake", "bake_texture_maps", "photo_gains",
           "bake_texture_multi", "bake_texture", "sample_texture", "vertex_colors_from_texture"]
