"""The fitted face drawn over the original photo, at the photo's resolution.

The mesh is projected through the fitted camera and the crop→photo transform and rasterized
directly in photo pixels (no 224-pixel render is resampled), shaded with the fitted albedo and
light, and blended over the photo inside its coverage mask. The mask edge is softened by one pixel
so the outline does not look jagged. Landmarks (fitted: green, detected: red) can be drawn on top.
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
                      M_inv: np.ndarray, camera: Camera | None = None, *, alpha: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Composite a vertex-coloured mesh over ``photo``.

    Args:
        photo: (H,W,3) uint8 RGB.
        verts_cam: (V,3) camera-space vertices, mm.
        faces: (F,3) triangles to draw.
        colors: (V,3) RGB in [0,1].
        M_inv: (2,3) crop→photo matrix.
        camera: the fitted camera (crop pixels), default ``Camera()``.
        alpha: opacity of the render inside the face.

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
    a = (float(alpha) * soft)[:, :, None]
    blended = win * (1.0 - a) + render * a
    out[ras.y0:ras.y0 + h, ras.x0:ras.x0 + w] = np.clip(np.rint(blended * 255.0), 0, 255).astype(np.uint8)
    mask[ras.y0:ras.y0 + h, ras.x0:ras.x0 + w] = cover
    return out, mask


def draw_landmarks(image: np.ndarray, points: np.ndarray, color: tuple[int, int, int], radius: float | None = None) -> np.ndarray:
    """Draw (N,2) photo-pixel points as anti-aliased dots on an RGB uint8 image (in place;
    returned). ``radius`` in pixels defaults to about 1/250 of the image's smaller side."""
    h, w = image.shape[:2]
    r = max(1.5, min(h, w) / 250.0) if radius is None else float(radius)
    for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2):
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(image, (int(round(x * 16)), int(round(y * 16))), int(round(r * 16)), color, -1, cv2.LINE_AA, 4)
    return image


def overlay(photo: np.ndarray, model, params: FaceParams, M_inv: np.ndarray, camera: Camera | None = None, *,
            alpha: float = 0.7, faces: np.ndarray | None = None, landmarks: bool = True,
            detected_landmarks: np.ndarray | None = None, fitted_landmarks: np.ndarray | None = None,
            posed: PosedMesh | None = None) -> np.ndarray:
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
    """
    camera = camera or Camera()
    posed = posed or posed_mesh(model, params, camera)
    f = model.faces.detach().cpu().numpy() if faces is None else np.asarray(faces)
    out, _ = render_over_photo(photo, posed.verts_cam, f, posed.color, M_inv, camera, alpha=alpha)
    if landmarks:
        if detected_landmarks is not None:
            draw_landmarks(out, detected_landmarks, DETECTED_COLOR)
        if fitted_landmarks is None:
            fitted_landmarks = to_photo_np(posed.landmarks_crop, M_inv)
        draw_landmarks(out, fitted_landmarks, FITTED_COLOR)
    return out


__all__ = ["render_over_photo", "draw_landmarks", "overlay", "FITTED_COLOR", "DETECTED_COLOR"]
