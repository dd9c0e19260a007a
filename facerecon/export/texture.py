"""Bake a UV texture for the fitted face: the photo where the face is seen, the fitted model's
colour elsewhere, blended without a seam.

For every texel of the atlas (:mod:`facerecon.export.atlas`) we know the triangle and the
barycentrics it lies at (a rasterization in UV space, cached per atlas and size). That gives its
3D point and normal on the fitted, posed mesh. The point is projected through the fitted camera
and the crop→photo transform into the photo and sampled bilinearly there if it is visible:
in front in a z-buffer of the same mesh rendered at the photo's resolution, and facing the camera
(n·v > ``min_facing``). Elsewhere the texel takes the model colour: fitted albedo times fitted
SH shading, which is what the fitter matched to the photo, so the brightness agrees. The photo
weight falls off smoothly with the facing angle, with the UV distance to the nearest occluded
texel (feathering), and in 3D towards the parts of the head that were not fitted (scalp, back,
neck: :func:`photo_vertex_weight`), and empty texels between UV charts are filled from their nearest neighbour
so that filtering and mip-mapping show no black cracks at seams.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numba
import numpy as np
import torch

from facerecon.export.atlas import UVAtlas, model_atlas
from facerecon.export.photo import PosedMesh, affine_scale, posed_mesh, project_to_photo, rasterize_photo
from facerecon.params import FaceParams
from facerecon.render.camera import Camera
from facerecon.render.raster import rasterize


# ---------------------------------------------------------------------------------------------
# UV-space rasterization (cached: it depends only on the atlas and the size)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UVRaster:
    """The covered texels of an atlas at one size."""

    size: int
    pix: np.ndarray
    """(N,) flat texel index (row-major, row 0 = top = v 1)."""
    tri: np.ndarray
    """(N,) triangle index."""
    bary: np.ndarray
    """(N,3) float32 barycentric weights of the triangle's corners."""

    @property
    def mask(self) -> np.ndarray:
        """(S,S) bool, True on covered texels."""
        m = np.zeros(self.size * self.size, bool)
        m[self.pix] = True
        return m.reshape(self.size, self.size)


_UV_RASTER_CACHE: dict[tuple[int, int], tuple[UVAtlas, UVRaster]] = {}


def uv_raster(atlas: UVAtlas, size: int) -> UVRaster:
    """Rasterize the atlas triangles at ``size``² texels (cached for a few atlases and sizes)."""
    key = (id(atlas), int(size))
    hit = _UV_RASTER_CACHE.get(key)
    if hit is not None and hit[0] is atlas:
        return hit[1]
    xy = np.ascontiguousarray(atlas.pixels(size), dtype=np.float32)
    faces_uv = np.ascontiguousarray(atlas.faces_uv, dtype=np.int64)
    # Where UV triangles overlap (ICT maps the inner, back-facing sides of the irises onto the
    # same texels as the front), the z-buffer keeps the lowest id: list front-facing (counter-
    # clockwise in UV) triangles first so that the visible side owns the texels.
    t = xy[faces_uv]
    ccw = ((t[:, 1, 0] - t[:, 0, 0]) * (t[:, 2, 1] - t[:, 0, 1]) - (t[:, 1, 1] - t[:, 0, 1]) * (t[:, 2, 0] - t[:, 0, 0])) < 0
    order = np.argsort(~ccw, kind="stable")
    tri_id = rasterize(torch.from_numpy(xy)[None], torch.ones(1, len(xy)), torch.from_numpy(faces_uv[order]), size, size)
    flat = tri_id.reshape(-1).numpy()
    pix = np.flatnonzero(flat >= 0)
    tri = order[flat[pix]]
    out = UVRaster(size=int(size), pix=pix, tri=tri, bary=_uv_bary_kernel(pix, tri, xy, faces_uv, size))
    if len(_UV_RASTER_CACHE) >= 8:
        _UV_RASTER_CACHE.pop(next(iter(_UV_RASTER_CACHE)))
    _UV_RASTER_CACHE[key] = (atlas, out)
    return out


def fill_gaps(texture: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Give every uncovered texel the colour of its nearest covered texel (Euclidean), so that
    bilinear filtering and mip-maps across chart borders never pull in a background colour.

    ``texture`` (S,S,C), ``covered`` (S,S) bool; returns a new array of the same dtype.
    """
    if covered.all() or not covered.any():
        return texture.copy()
    holes = (~covered).astype(np.uint8)
    _, labels = cv2.distanceTransformWithLabels(holes, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    flat = np.flatnonzero(covered.ravel())
    lut = np.zeros(int(labels.max()) + 1, np.int64)
    lut[labels.ravel()[flat]] = flat
    src = lut[labels.ravel()]
    c = texture.shape[2] if texture.ndim == 3 else 1
    return texture.reshape(-1, c)[src].reshape(texture.shape)


@numba.njit(parallel=True, cache=True, nogil=True)
def _uv_bary_kernel(pix, tri, xy, faces, size):  # pragma: no cover - jitted
    """Barycentrics (N,3) float32 of texel centres ``pix`` (flat) in their triangles ``tri``."""
    n = pix.shape[0]
    out = np.empty((n, 3), np.float32)
    for i in numba.prange(n):
        cx, cy = pix[i] % size + 0.5, pix[i] // size + 0.5
        a, b, c = faces[tri[i], 0], faces[tri[i], 1], faces[tri[i], 2]
        xa, ya, xb, yb, xc, yc = xy[a, 0], xy[a, 1], xy[b, 0], xy[b, 1], xy[c, 0], xy[c, 1]
        area = (xb - xa) * (yc - ya) - (yb - ya) * (xc - xa)
        if area == 0:
            out[i, 0], out[i, 1], out[i, 2] = 1.0, 0.0, 0.0
            continue
        w0 = ((xc - xb) * (cy - yb) - (yc - yb) * (cx - xb)) / area
        w1 = ((xa - xc) * (cy - yc) - (ya - yc) * (cx - xc)) / area
        out[i, 0], out[i, 1], out[i, 2] = w0, w1, 1.0 - w0 - w1
    return out


@numba.njit(parallel=True, cache=True, nogil=True)
def _interp_kernel(bary, corners, vals):  # pragma: no cover - jitted
    """out[i] = Σ_k bary[i,k] · vals[corners[i,k]]  (N,C) float32."""
    n, c = bary.shape[0], vals.shape[1]
    out = np.empty((n, c), np.float32)
    for i in numba.prange(n):
        a, b, d = corners[i, 0], corners[i, 1], corners[i, 2]
        for k in range(c):
            out[i, k] = bary[i, 0] * vals[a, k] + bary[i, 1] * vals[b, k] + bary[i, 2] * vals[d, k]
    return out


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
    ``feather_mm`` (3D distance, mean shape) towards the rest (scalp, back of the head), and,
    with ``neck_mm``, fading out from ``neck_mm`` to ``neck_mm + feather_mm`` below the chin
    (landmark 8), where collars, beards and shadow rarely show skin the model can explain.
    """
    ids = np.asarray(model.vertex_ids)
    key = (model.name, model.source_sha256, len(ids), int(ids.sum()), region, feather_mm, neck_mm)
    hit = _REGION_WEIGHT_CACHE.get(key)
    if hit is not None:
        return hit
    from scipy.spatial import cKDTree

    from facerecon.facemodel.model import region_vertex_ids

    mean = model.mean.detach().cpu().numpy().astype(np.float64)
    w = np.ones(len(mean))
    region_ids = None if region is None else region_vertex_ids(region)
    if region_ids is not None:
        inside = np.isin(ids, region_ids)
        if not inside.all():
            w = np.zeros(len(mean))
            if inside.any():
                d, _ = cKDTree(mean[~inside]).query(mean[inside])
                w[inside] = _smoothstep(d / max(feather_mm, 1e-6))
    if neck_mm is not None:
        chin_y = mean[int(model.landmark_idx[8]), 1]
        w *= _smoothstep((mean[:, 1] - (chin_y - neck_mm - feather_mm)) / max(feather_mm, 1e-6))
    out = w.astype(np.float32)
    _REGION_WEIGHT_CACHE[key] = out
    return out


# ---------------------------------------------------------------------------------------------
# baking
# ---------------------------------------------------------------------------------------------
@dataclass
class TextureBake:
    """A baked texture and the maps it was blended from (all (S,S) images, row 0 = v 1)."""

    texture: np.ndarray
    """(S,S,3) uint8 RGB: photo × weight + model colour × (1 − weight), gaps filled."""
    photo_weight: np.ndarray
    """(S,S) float32 in [0,1]: how much of each texel came from the photo."""
    visible: np.ndarray
    """(S,S) bool: texel seen in the photo (in front in the z-buffer, facing > min_facing)."""
    covered: np.ndarray
    """(S,S) bool: texel inside a UV triangle (the rest was filled from neighbours)."""
    model_color: np.ndarray
    """(S,S,3) float32 in [0,1]: fitted albedo × fitted shading × ``color_gain`` (0 on uncovered
    texels)."""
    color_gain: np.ndarray
    """(3,) per-channel gain applied to the model colour to match the photo (1 if not matched)."""
    photo_scale: float
    """Photo pixels per texel on the visible face; the photo was pre-filtered where > 1.25."""
    atlas: UVAtlas


def bake_texture_maps(model, params: FaceParams, photo: np.ndarray, M_inv: np.ndarray,
                      camera: Camera | None = None, *, size: int = 1024, atlas: UVAtlas | None = None,
                      min_facing: float = 0.2, full_facing: float = 0.5, feather: float = 1 / 32,
                      depth_tolerance: float = 1.0, photo_region: str | None = "fit", neck_mm: float | None = 10.0,
                      contour_mm: float = 4.0, match_colors: bool = True, max_gain: float = 1.5,
                      posed: PosedMesh | None = None) -> TextureBake:
    """Bake the UV texture of a fitted face and return it with its blending maps.

    Args:
        model: the :class:`~facerecon.facemodel.model.FaceModel` whose mesh is exported (the
            "head" region); its coefficients are the fitted ones whatever region was fitted.
        params: the fitted :class:`~facerecon.params.FaceParams`, batch 1 (any device).
        photo: (H,W,3) uint8 RGB, the original photo.
        M_inv: (2,3) crop→photo matrix (:attr:`AlignedFace.M_inv`).
        camera: the camera the fit used (crop pixels; default ``Camera()``, 224 px).
        size: texture side S in texels.
        atlas: UV layout (default :func:`~facerecon.export.atlas.model_atlas` of ``model``).
        min_facing: texels whose normal·view-direction is below this take the model colour.
        full_facing: above this the facing term of the photo weight is 1 (smoothstep between).
        feather: width of the fade next to occluded texels, as a fraction of S (1/32 → 32 texels
            at 1024², about 1 cm on the face).
        depth_tolerance: mm a texel may lie behind the front surface and still count as visible
            (plus a slope term: one photo pixel × tan(view angle)).
        photo_region, neck_mm: where the photo may be used at all (see :func:`photo_vertex_weight`).
        contour_mm: the photo weight rises from 0 to 1 over this distance (mm, converted to photo
            pixels) from the mesh's outlines in the image: silhouette and depth jumps.
        match_colors: scale the model colour per channel by the median photo/model ratio over the
            texels taken fully from the photo (clipped to [1/max_gain, max_gain]), so that a fit
            whose albedo or light is a little off still meets the photo without a visible seam.
        posed: ``posed_mesh(model, params)`` if already computed.
    """
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
    corners = faces[ras.tri]  # (N,3)

    def interp(values: np.ndarray, sel: np.ndarray | None = None) -> np.ndarray:
        vals = np.ascontiguousarray(np.asarray(values, dtype=np.float32).reshape(len(values), -1))
        if sel is None:
            return _interp_kernel(ras.bary, corners, vals)
        return _interp_kernel(ras.bary[sel], corners[sel], vals)

    region_w = photo_vertex_weight(model, photo_region, neck_mm=neck_mm)
    cf = interp(np.concatenate([color, facing_v[:, None], region_w[:, None]], 1))
    model_c, facing, w_region = cf[:, :3], cf[:, 3], cf[:, 4]
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
        txyz = interp(np.concatenate([xy_r, z_v[:, None]], 1), cand)
        rx, ry, depth_t = txyz[:, 0], txyz[:, 1], txyz[:, 2]
        front = _front_depth_kernel(rx, ry, work.tri_id.numpy(), np.ascontiguousarray(xy_r, dtype=np.float32),
                                    (1.0 / np.maximum(z_v, 1e-6)).astype(np.float32), faces)
        pix_mm = depth_t / np.float32(camera.focal * affine_scale(M_inv) * np.sqrt(fx * fy))
        c = np.clip(facing[cand], min_facing, 1.0)
        tol = depth_tolerance + pix_mm * np.sqrt(1.0 - c * c) / c
        vis = depth_t <= front + tol
        visible[cand[vis]] = True
        # distrust the photo next to the mesh's outlines in the image (silhouette, depth jumps
        # such as the nose over the cheek): a fit a few pixels off samples background there
        if contour_mm > 0:
            px_per_mm = float(np.median(1.0 / pix_mm[vis])) if vis.any() else 1.0
            dist = _contour_distance(work, jump_mm=max(10.0, 6.0 / px_per_mm))
            wh, ww = dist.shape
            rows = np.clip(np.floor(ry).astype(np.int64), 0, wh - 1)
            cols = np.clip(np.floor(rx).astype(np.int64), 0, ww - 1)
            w_contour[cand] = _smoothstep(dist[rows, cols] / (contour_mm * px_per_mm))
        # bilinear samples of the (window of the) photo, OpenCV pixel-centre convention
        map_xy = np.full((size * size, 2), -1.0, np.float32)
        map_xy[ras.pix[cand[vis]]] = np.stack([rx[vis] - 0.5 + offset[0], ry[vis] - 0.5 + offset[1]], 1)
        sampled = cv2.remap(np.ascontiguousarray(window), map_xy.reshape(size, size, 2), None,
                            cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        photo_c[visible] = sampled.reshape(-1, 3)[ras.pix[visible]].astype(np.float32) / 255.0

    # photo weight: facing term × feather from occluded texels (distance in UV space)
    occluded = np.zeros(size * size, np.uint8)
    occluded[ras.pix[~visible]] = 1
    occluded = cv2.morphologyEx(occluded.reshape(size, size), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    dist = cv2.distanceTransform((1 - occluded).astype(np.uint8), cv2.DIST_L2, 5).reshape(-1)[ras.pix]
    w_face = _smoothstep((facing - min_facing) / max(full_facing - min_facing, 1e-6))
    w_dist = _smoothstep(dist / max(feather * size, 1e-6))
    weight = np.where(visible, w_face * w_dist * w_region * w_contour, 0.0).astype(np.float32)

    gain = np.ones(3, np.float32)
    if match_colors:  # robust per-channel gain: model colour -> the photo's, where both are trusted
        sure = weight > 0.9
        if sure.sum() >= 100:
            ratio = photo_c[sure] / np.maximum(model_c[sure], 1.0 / 255.0)
            gain = np.clip(np.median(ratio, axis=0), 1.0 / max_gain, max_gain).astype(np.float32)
            model_c = np.clip(model_c * gain, 0.0, 1.0)
    blend = model_c + weight[:, None] * (photo_c - model_c)
    tex = np.zeros((size * size, 3), np.uint8)
    tex[ras.pix] = np.clip(np.rint(blend * 255.0), 0, 255).astype(np.uint8)
    covered = ras.mask
    texture = fill_gaps(tex.reshape(size, size, 3), covered)

    def image(values: np.ndarray, dtype) -> np.ndarray:
        out = np.zeros((size * size,) + values.shape[1:], dtype)
        out[ras.pix] = values
        return out.reshape((size, size) + values.shape[1:])

    return TextureBake(texture=texture, photo_weight=image(weight, np.float32), visible=image(visible, bool),
                       covered=covered, model_color=image(model_c, np.float32), color_gain=gain,
                       photo_scale=float(photo_scale), atlas=atlas)


def _contour_distance(ras, jump_mm: float) -> np.ndarray:
    """(h,w) float32 distance in pixels from each pixel of a photo raster to the nearest outline:
    a pixel off the mesh, or one whose depth differs from a neighbour's by more than ``jump_mm``."""
    depth = ras.depth()
    h, w = depth.shape
    if h == 0 or w == 0:
        return np.zeros((h, w), np.float32)
    covered = np.isfinite(depth)
    d = np.where(covered, depth, np.float32(1e9))
    edge = ~covered
    jx = np.abs(np.diff(d, axis=1)) > jump_mm
    jy = np.abs(np.diff(d, axis=0)) > jump_mm
    edge[:, 1:] |= jx
    edge[:, :-1] |= jx
    edge[1:] |= jy
    edge[:-1] |= jy
    # pixels beyond the window's border count as off the mesh
    padded = np.pad((~edge).astype(np.uint8), 1, constant_values=0)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]


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
    """The (S,S,3) uint8 UV texture of a fitted face (photo where visible, model colour elsewhere,
    feathered, gaps filled); see :func:`bake_texture_maps` for the arguments."""
    return bake_texture_maps(model, params, photo, M_inv, camera, size=size, atlas=atlas, **kwargs).texture


__all__ = ["UVRaster", "uv_raster", "fill_gaps", "photo_vertex_weight", "TextureBake", "bake_texture_maps", "bake_texture"]
