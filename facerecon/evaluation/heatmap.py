"""Pictures of per-vertex errors: a mesh coloured by its error in mm, frontal view, with a colour
bar (``facerecon evaluate scan --heatmap``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import trimesh

from facerecon.atomic import atomic_write_bytes
from facerecon.evaluation.scan import ScanEvalResult
from facerecon.geometry import face_normals_np, vertex_normals


def render_error_heatmap(result: ScanEvalResult, path: str | os.PathLike, *,
                         vmax_mm: float | None = 5.0, size: int = 512) -> Path:
    """Write a PNG of the aligned prediction coloured by per-vertex error (mm), with a colour bar.

    Frontal orthographic view of the scan frame (+z towards the viewer, y up); vertices outside
    the crop sphere are grey. ``vmax_mm`` is the top of the colour scale (None: the 95th
    percentile of the errors, rounded up). Written atomically.
    """
    err = np.full(len(result.aligned_pred.vertices), np.nan)
    err[result.vertex_indices] = result.errors_mm
    title = f"RMSE {result.rmse_mm:.2f} mm  median {result.median_mm:.2f}  p90 {result.p90_mm:.2f}"
    return render_vertex_heatmap(result.aligned_pred, err, path, vmax_mm=vmax_mm, size=size,
                                 title=title)


def render_vertex_heatmap(mesh: trimesh.Trimesh, errors_mm: np.ndarray, path: str | os.PathLike, *,
                          vmax_mm: float | None = 5.0, size: int = 512, title: str = "") -> Path:
    """Write a PNG of ``mesh`` coloured by a per-vertex value in mm (NaN: grey, and triangles
    with no finite vertex are left out), frontal orthographic view (+z towards the viewer,
    y up), painter's algorithm, with a colour bar in mm. Written atomically."""
    import cv2

    v = np.asarray(mesh.vertices, dtype=np.float64)
    f = np.asarray(mesh.faces, dtype=np.int64)
    err = np.asarray(errors_mm, dtype=np.float64)
    if err.shape != (len(v),):
        raise ValueError(f"need one value per vertex ({len(v)}), got shape {err.shape}")
    if vmax_mm is None or vmax_mm <= 0:
        fin = err[np.isfinite(err)]
        vmax_mm = max(float(np.ceil(np.percentile(fin, 95) * 2) / 2), 0.5) if len(fin) else 1.0
    # colour of each vertex (RGB 0..255)
    lev = np.clip(np.nan_to_num(err, nan=0.0) / vmax_mm, 0, 1)
    cmap = cv2.applyColorMap((lev * 255).astype(np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1]
    vcol = cmap.astype(np.float64)
    vcol[np.isnan(err)] = 170.0
    # faces: only those near the crop sphere (the rest of a head would dominate the picture)
    keep = np.isfinite(err)[f].any(1)
    if not keep.any():
        keep = np.ones(len(f), dtype=bool)
    f = f[keep]
    used = v[np.unique(f)]
    lo, hi = used[:, :2].min(0), used[:, :2].max(0)
    plot = size - 40
    scale = plot / max(hi[0] - lo[0], hi[1] - lo[1], 1e-6)
    cx = (lo + hi) / 2
    img = np.full((size, size + 110, 3), 255, dtype=np.uint8)
    try:
        canvas = _raster_heatmap(v, f, vcol, cx, scale, size)
    except ImportError:  # the project renderer (torch, numba) is not importable: paint
        canvas = _paint_heatmap(v, f, vcol, cx, scale, size)
    img[:, :size] = canvas
    # colour bar
    x0, y0, y1 = size + 15, 30, size - 30
    ramp = np.linspace(1, 0, y1 - y0)
    bar = cv2.applyColorMap((ramp * 255).astype(np.uint8)[:, None], cv2.COLORMAP_TURBO)
    img[y0:y1, x0:x0 + 20] = np.repeat(bar, 20, axis=1)
    for k in range(6):
        val = vmax_mm * k / 5
        y = int(round(y1 - (y1 - y0) * k / 5))
        cv2.line(img, (x0 + 20, y), (x0 + 26, y), (0, 0, 0), 1)
        label = f"{val:.1f}" + (" mm" if k == 5 else "")
        cv2.putText(img, label, (x0 + 29, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    cv2.putText(img, title, (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return _write_png_atomic(img, path)


def _raster_heatmap(v: np.ndarray, f: np.ndarray, vcol: np.ndarray, cx: np.ndarray, scale: float,
                    size: int) -> np.ndarray:
    """BGR (size,size,3) uint8 of the mesh with per-vertex colours (0..255 RGB), shaded by the
    view angle, drawn by the project renderer with a near-orthographic camera (2x supersampled)."""
    import torch
    import torch.nn.functional as F

    from facerecon.render import Camera, Renderer

    ss = 2
    dist = 1e5
    cam = Camera(focal=scale * dist * ss, size=size * ss, near=1.0)
    vc = np.stack([v[:, 0] - cx[0], v[:, 1] - cx[1], v[:, 2] - v[:, 2].max() - dist], 1)
    verts = torch.tensor(vc, dtype=torch.float64)[None]
    faces = torch.tensor(f, dtype=torch.int64)
    vn = vertex_normals(verts, faces)[0]
    shade = 0.35 + 0.65 * vn[:, 2].abs()
    colors = (torch.tensor(vcol / 255.0) * shade[:, None])[None]
    out = Renderer(cam)(verts.float(), faces, colors.float(), background=1.0)
    img = F.avg_pool2d(out.image, ss)[0].permute(1, 2, 0).clamp(0, 1).numpy()
    return np.ascontiguousarray((img[:, :, ::-1] * 255).round().astype(np.uint8))


def _paint_heatmap(v: np.ndarray, f: np.ndarray, vcol: np.ndarray, cx: np.ndarray, scale: float,
                   size: int) -> np.ndarray:
    """As :func:`_raster_heatmap` with flat triangles and the painter's algorithm (OpenCV only)."""
    import cv2

    px = np.stack([(v[:, 0] - cx[0]) * scale + size / 2, size / 2 - (v[:, 1] - cx[1]) * scale], 1)
    tri = v[f]
    fn = face_normals_np(v, f)
    fcol = vcol[f].mean(1) * (0.35 + 0.65 * np.abs(fn[:, 2]))[:, None]
    canvas = np.full((size, size, 3), 255, dtype=np.uint8)
    pts = np.round(px[f] * 4).astype(np.int32)  # 2 bits of sub-pixel precision
    for i in np.argsort(tri[:, :, 2].mean(1)):  # far to near
        cv2.fillConvexPoly(canvas, pts[i], tuple(int(c) for c in fcol[i][::-1]), cv2.LINE_AA, 2)
    return canvas


def _write_png_atomic(bgr: np.ndarray, path: str | os.PathLike) -> Path:
    import cv2

    path = Path(path)
    ok, png = cv2.imencode(".png", bgr)
    if not ok:
        raise OSError(f"{path}: cannot encode PNG")
    return atomic_write_bytes(path, png.tobytes(), mkdir=True)
