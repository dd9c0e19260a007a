"""The fitted face drawn over the original photo, at the photo's resolution, and a side-by-side
comparison (photo | model | overlay).

The mesh is projected through the fitted camera and the crop→photo transform and rasterized
directly in photo pixels (no 224-pixel render is resampled), shaded with the fitted albedo and
light, and blended over the photo inside its coverage mask. The blend fades in over a few pixels
from the mask's edge (``feather_px``), so the drawn region — by default in ``overlay.png`` only
the fitted face, brows to chin, and the eyes: no scalp over the hair, no neck over the collar —
has no hard outline. Landmarks (fitted: green, detected: red) can be drawn on top.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from facerecon.export.photo import PosedMesh, posed_mesh, project_to_photo, rasterize_photo, to_photo_np
from facerecon.params import FaceParams
from facerecon.render.camera import Camera

#: RGB colours of the drawn landmarks.
FITTED_COLOR = (40, 230, 60)
DETECTED_COLOR = (240, 40, 40)


def render_over_photo(photo: np.ndarray, verts_cam: np.ndarray, faces: np.ndarray, colors: np.ndarray,
                      M_inv: np.ndarray, camera: Camera | None = None, *, alpha: float = 0.7,
                      feather_px: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Composite a vertex-coloured mesh over ``photo``.

    Args:
        photo: (H,W,3) uint8 RGB.
        verts_cam: (V,3) camera-space vertices, mm.
        faces: (F,3) triangles to draw.
        colors: (V,3) RGB in [0,1].
        M_inv: (2,3) crop→photo matrix.
        camera: the fitted camera (crop pixels), default ``Camera()``.
        alpha: opacity of the render inside the face.
        feather_px: the opacity rises from 0 at the mask's edge to ``alpha`` over this many
            pixels inside it (0: a one-pixel soft edge only).

    Returns:
        the composite (H,W,3) uint8 and the coverage mask (H,W) bool.
    """
    photo = np.asarray(photo)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"photo must be (H,W,3) uint8 RGB, got {photo.dtype} {photo.shape}")
    camera = camera or Camera()
    h_img, w_img = photo.shape[:2]
    vc = torch.as_tensor(np.asarray(verts_cam, dtype=np.float32))[None]
    xy, depth = project_to_photo(vc, camera, M_inv)
    ras = rasterize_photo(xy[0], depth[0], torch.as_tensor(np.asarray(faces), dtype=torch.long), h_img, w_img, margin=2)
    out = photo.copy()
    mask = np.zeros((h_img, w_img), bool)
    h, w = ras.shape
    if h == 0 or w == 0 or not bool((ras.tri_id >= 0).any()):
        return out, mask
    render = np.clip(ras.interpolate(colors), 0.0, 1.0)
    win = photo[ras.y0:ras.y0 + h, ras.x0:ras.x0 + w].astype(np.float32) / 255.0
    cover = (ras.tri_id >= 0).numpy()
    soft = cv2.GaussianBlur(cover.astype(np.float32), (3, 3), 0.6) * cover  # 1-px softened inner edge
    if feather_px > 0:
        inside = cv2.distanceTransform(np.pad(cover, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
        t = np.clip(inside / float(feather_px), 0.0, 1.0)
        soft = soft * t * t * (3.0 - 2.0 * t)
    a = (float(alpha) * soft)[:, :, None]
    blended = win * (1.0 - a) + render * a
    out[ras.y0:ras.y0 + h, ras.x0:ras.x0 + w] = np.clip(np.rint(blended * 255.0), 0, 255).astype(np.uint8)
    mask[ras.y0:ras.y0 + h, ras.x0:ras.x0 + w] = cover
    return out, mask


def draw_landmarks(image: np.ndarray, points: np.ndarray, color: tuple[int, int, int], radius: float | None = None) -> np.ndarray:
    """Draw (N,2) photo-pixel points as anti-aliased dots on an RGB uint8 image (in place;
    returned). ``radius`` in pixels defaults to about 1/250 of the image's smaller side (at least
    1.5), but at most 1/50 of the points' extent (at least 0.5): on a small face, where 68 dots
    of the image-wide size would cover it, the dots shrink with the face."""
    h, w = image.shape[:2]
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if radius is None:
        finite = pts[np.isfinite(pts).all(axis=1)]
        extent = float(np.ptp(finite, axis=0).max()) if len(finite) > 1 else float("inf")
        r = min(max(1.5, min(h, w) / 250.0), max(0.5, extent / 50.0))
    else:
        r = float(radius)
    for x, y in pts:
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(image, (int(round(x * 16)), int(round(y * 16))), int(round(r * 16)), color, -1, cv2.LINE_AA, 4)
    return image


def face_feather_px(posed: PosedMesh, M_inv: np.ndarray, fraction: float = 0.08) -> float:
    """A feather width in photo pixels: ``fraction`` of the distance between the outer eye
    corners (landmarks 36 and 45) in the photo, at least 1."""
    lm = to_photo_np(posed.landmarks_crop, M_inv)
    return max(1.0, fraction * float(np.linalg.norm(lm[45] - lm[36])))


def overlay(photo: np.ndarray, model, params: FaceParams, M_inv: np.ndarray, camera: Camera | None = None, *,
            alpha: float = 0.7, faces: np.ndarray | None = None, landmarks: bool = True,
            detected_landmarks: np.ndarray | None = None, fitted_landmarks: np.ndarray | None = None,
            posed: PosedMesh | None = None, feather: float | None = 0.08) -> np.ndarray:
    """The shaded fitted face over the original photo, (H,W,3) uint8 at the photo's size.

    Args:
        photo: (H,W,3) uint8 RGB, the original photo.
        model: the :class:`~facerecon.facemodel.model.FaceModel` to draw.
        params: fitted :class:`~facerecon.params.FaceParams`, batch 1.
        M_inv: (2,3) crop→photo matrix (:attr:`AlignedFace.M_inv`).
        camera: the fitted camera (crop pixels), default ``Camera()``.
        alpha: opacity of the render inside the face mask.
        faces: (F',3) subset of ``model.faces`` to draw (e.g. the face without the scalp);
            default all.
        landmarks: draw the 68 fitted landmarks (green), and ``detected_landmarks`` (red).
        detected_landmarks: (68,2) photo pixels, optional.
        fitted_landmarks: (68,2) photo pixels to draw instead of the projected model landmarks.
        posed: ``posed_mesh(model, params)`` if already computed.
        feather: width of the fade-in at the drawn region's edge as a fraction of the outer eye
            corners' distance (:func:`face_feather_px`); None: a one-pixel soft edge only.
    """
    camera = camera or Camera()
    posed = posed or posed_mesh(model, params, camera)
    f = model.faces.detach().cpu().numpy() if faces is None else np.asarray(faces)
    feather_px = 0.0 if feather is None else face_feather_px(posed, M_inv, feather)
    out, _ = render_over_photo(photo, posed.verts_cam, f, posed.color, M_inv, camera, alpha=alpha,
                               feather_px=feather_px)
    if landmarks:
        if detected_landmarks is not None:
            draw_landmarks(out, detected_landmarks, DETECTED_COLOR)
        if fitted_landmarks is None:
            fitted_landmarks = to_photo_np(posed.landmarks_crop, M_inv)
        draw_landmarks(out, fitted_landmarks, FITTED_COLOR)
    return out


#: Background of the model panel of :func:`compare_image` (RGB).
PANEL_BACKGROUND = (96, 96, 96)


def _label(image: np.ndarray, text: str) -> None:
    """Write ``text`` at the top-left corner of an RGB image (in place), white on a dark outline."""
    scale = max(0.4, image.shape[0] / 900.0)
    org = (int(8 * scale), int(22 * scale))
    thick = max(1, int(round(scale)))
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def compare_image(photo: np.ndarray, model, params: FaceParams, M_inv: np.ndarray, camera: Camera | None = None, *,
                  posed: PosedMesh | None = None, overlay_faces: np.ndarray | None = None, height: int = 512,
                  margin: float = 0.3, alpha: float = 0.7, feather: float | None = 0.08,
                  detected_landmarks: np.ndarray | None = None, fitted_landmarks: np.ndarray | None = None,
                  labels: bool = True, model_colors: np.ndarray | None = None) -> np.ndarray:
    """Three panels side by side, (height, 3·width + 8, 3) uint8: the photo, the fitted model alone
    (every triangle of ``model`` in ``model_colors`` (V,3), default the fitted albedo × light, on
    grey) and the overlay (``overlay_faces``
    blended over the photo, landmarks drawn), all cut to the same square around the drawn face
    (``overlay_faces``, else the whole mesh; ``margin`` of its size added on each side; grey
    beyond the photo, where the overlay draws no face either) and scaled to ``height`` pixels, the
    renders rasterized at that size."""
    camera = camera or Camera()
    posed = posed or posed_mesh(model, params, camera)
    M_inv = np.asarray(M_inv, dtype=np.float64)
    faces_all = model.faces.detach().cpu().numpy()
    f = faces_all if overlay_faces is None else np.asarray(overlay_faces)
    used = np.unique(f)
    xy, depth = project_to_photo(torch.as_tensor(posed.verts_cam[used], dtype=torch.float32)[None], camera, M_inv)
    pts = xy[0].numpy()[depth[0].numpy() > camera.near]
    if len(pts) == 0:
        pts = np.array([[photo.shape[1] / 2, photo.shape[0] / 2]])
    lo, hi = pts.min(0), pts.max(0)
    side = max(float((hi - lo).max()) * (1.0 + 2.0 * margin), 8.0)
    centre = 0.5 * (lo + hi)
    x0, y0 = int(np.floor(centre[0] + 0.5 - side / 2)), int(np.floor(centre[1] + 0.5 - side / 2))
    n = int(np.ceil(side))
    h_img, w_img = photo.shape[:2]
    pad = [max(0, -y0), max(0, y0 + n - h_img), max(0, -x0), max(0, x0 + n - w_img)]
    padded = cv2.copyMakeBorder(np.ascontiguousarray(photo), *pad, cv2.BORDER_CONSTANT, value=PANEL_BACKGROUND)
    crop = padded[y0 + pad[0]:y0 + pad[0] + n, x0 + pad[2]:x0 + pad[2] + n]
    s = height / n
    panel = cv2.resize(crop, (height, height), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    # photo pixel (centre convention) -> panel pixel: x' = (x + ½ − x0)·s − ½
    A = np.array([[s, 0.0, (0.5 - x0) * s - 0.5], [0.0, s, (0.5 - y0) * s - 0.5], [0.0, 0.0, 1.0]])
    M_panel = (A @ np.vstack([M_inv, [0.0, 0.0, 1.0]]))[:2]
    grey = np.empty_like(panel)
    grey[:] = PANEL_BACKGROUND
    colors = posed.color if model_colors is None else np.asarray(model_colors)
    model_panel, _ = render_over_photo(grey, posed.verts_cam, faces_all, colors, M_panel, camera, alpha=1.0)
    feather_px = 0.0 if feather is None else face_feather_px(posed, M_panel, feather)
    over, _ = render_over_photo(panel, posed.verts_cam, f, posed.color, M_panel, camera, alpha=alpha,
                                feather_px=feather_px)
    if any(pad):  # the overlay shows the fit on the photo: beyond the photo's edge the panel stays grey
        inside = cv2.copyMakeBorder(np.ones((h_img, w_img), np.uint8), *pad, cv2.BORDER_CONSTANT, value=0)
        inside = inside[y0 + pad[0]:y0 + pad[0] + n, x0 + pad[2]:x0 + pad[2] + n].astype(np.float32)
        keep = cv2.resize(inside, (height, height), interpolation=cv2.INTER_AREA)[..., None]
        over = np.clip(keep * over + (1.0 - keep) * panel, 0, 255).round().astype(np.uint8)
    to_panel = lambda p: np.asarray(p, dtype=np.float64) @ A[:2, :2].T + A[:2, 2]  # noqa: E731
    if detected_landmarks is not None:
        draw_landmarks(over, to_panel(detected_landmarks), DETECTED_COLOR)
    fitted = to_photo_np(posed.landmarks_crop, M_inv) if fitted_landmarks is None else fitted_landmarks
    draw_landmarks(over, to_panel(fitted), FITTED_COLOR)
    gap = np.full((height, 4, 3), 255, np.uint8)
    panels = [panel.copy(), model_panel, over]
    if labels:
        for img, text in zip(panels, ("photo", "model", "overlay")):
            _label(img, text)
    return np.concatenate([panels[0], gap, panels[1], gap, panels[2]], 1)


def model_views(verts: np.ndarray, faces: np.ndarray, colors: np.ndarray, *, size: int = 512,
                yaws_deg: tuple[float, ...] = (0.0, 35.0), labels: bool = True) -> np.ndarray:
    """The mesh alone from a few sides, panels side by side on grey: (size, n·size + 4·(n−1), 3)
    uint8, for a face no single photo shows (a person's, from several).

    ``verts`` (V,3) model space, mm (y up, +z towards the viewer), ``colors`` (V,3) in [0,1]
    (e.g. the texture at each vertex), lit by a soft light from the viewer: × (0.35 + 0.65 cos θ)
    with θ between the normal and the view. Each panel turns the mesh by its yaw (degrees, about
    the vertical axis through the mesh's centre) and frames it to 90 % of the panel height;
    ``labels`` writes each panel's view in its corner ("front", "35 deg")."""
    from facerecon.geometry import vertex_normals_np

    v = np.asarray(verts, np.float64)
    f = np.asarray(faces)
    centre = 0.5 * (v.min(0) + v.max(0))
    extent = float((v.max(0) - v.min(0))[:2].max())
    distance = 1000.0
    focal = 0.9 * size * distance / max(extent, 1e-6)
    camera = Camera(focal=focal, size=size)
    grey = np.empty((size, size, 3), np.uint8)
    grey[:] = PANEL_BACKGROUND
    normals = vertex_normals_np(v, f)
    panels = []
    for yaw in yaws_deg:
        c, s_ = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
        rot = np.array([[c, 0.0, s_], [0.0, 1.0, 0.0], [-s_, 0.0, c]])
        vc = (v - centre) @ rot.T + np.array([0.0, 0.0, -distance])
        facing = np.clip((normals @ rot.T)[:, 2], 0.0, 1.0)  # the view looks down −z: towards it is +z
        shaded = np.asarray(colors, np.float64) * (0.35 + 0.65 * facing)[:, None]
        panel, _ = render_over_photo(grey, vc, f, shaded, np.array([[1.0, 0, 0], [0, 1.0, 0]]), camera, alpha=1.0)
        if labels:
            _label(panel, "front" if yaw == 0 else f"{yaw:g} deg")
        panels.append(panel)
    gap = np.full((size, 4, 3), 255, np.uint8)
    out = [panels[0]]
    for panel in panels[1:]:
        out += [gap, panel]
    return np.concatenate(out, 1)


__all__ = ["render_over_photo", "draw_landmarks", "face_feather_px", "overlay", "compare_image", "model_views",
           "FITTED_COLOR", "DETECTED_COLOR", "PANEL_BACKGROUND"]
