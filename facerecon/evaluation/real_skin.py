"""Renders of a real head scan with real skin: an accuracy instrument that does not share the
fitter's appearance model.

The scan's own geometry is painted with a de-lit albedo taken from a *real photo of someone else*
(per-vertex samples on ICT-FaceKit's face part made by ``tools/albedo_samples.py`` and completed
by :func:`facerecon.facemodel.albedo.read_albedo_sample`), carried
onto the scan through a correspondence that uses no fitting at all: the ICT mean face placed on
the scan by a similarity on the 68 landmarks, then bent by a thin-plate spline so that its 68
landmarks land on the scan's, then each scan vertex takes the albedo of the nearest bent ICT
vertex. Brows, lips, stubble, blemishes and skin tone are the photo's; vertices the photo did
not see take their mirror partner's colour, else the photo's median skin colour. The render is
lit by SH light fitted to a (different) real photo, over a real-photo background, optionally with
an occluder drawn over the face (a hair fringe, glasses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import trimesh

from facerecon.render import Camera, Renderer, project, sh_shading, transform

#: Views (pitch, yaw) in degrees, as the Lee Perry-Smith own-albedo instrument uses.
VIEWS = {"front": (0, 0), "yaw+20": (0, 20), "yaw-20": (0, -20), "yaw+40": (0, 40), "yaw-40": (0, -40),
         "pitch+15": (15, 0)}


@dataclass
class SkinTransfer:
    """Where each vertex of a (subdivided) scan takes its albedo from."""

    vertices: np.ndarray
    """(N,3) mm: the scan's render mesh (subdivided: the original surface, more vertices)."""
    faces: np.ndarray
    """(F,3) the render mesh's triangles."""
    source: np.ndarray
    """(N,) index into the ICT face-part samples, −1 where no ICT vertex is within reach."""
    distance: np.ndarray
    """(N,) mm from each vertex to its bent ICT vertex."""


def bend_to_landmarks(points: np.ndarray, src_lmk: np.ndarray, dst_lmk: np.ndarray,
                      smoothing: float = 1.0) -> np.ndarray:
    """Move ``points`` (N,3) by the similarity + thin-plate-spline warp taking ``src_lmk`` (L,3)
    onto ``dst_lmk`` (L,3) (mm; ``smoothing`` > 0 lets the spline miss noisy landmarks slightly)."""
    from scipy.interpolate import RBFInterpolator

    from facerecon.evaluation.scan import umeyama

    s, rot, t = umeyama(src_lmk, dst_lmk, with_scale=True)
    moved = s * points @ rot.T + t
    moved_lmk = s * src_lmk @ rot.T + t
    warp = RBFInterpolator(moved_lmk, dst_lmk - moved_lmk, kernel="thin_plate_spline", smoothing=smoothing)
    return moved + warp(moved)


def skin_transfer(scan: trimesh.Trimesh, scan_lmk: np.ndarray, ict_face: np.ndarray, ict_lmk: np.ndarray,
                  subdivisions: int = 2, reach_mm: float = 10.0) -> SkinTransfer:
    """Correspondence from the scan (mm, 68 landmarks) to ICT's face-part vertices ``ict_face``
    (M,3, mm, mean shape) whose 68 landmarks are ``ict_lmk``. No fitting involved."""
    from scipy.spatial import cKDTree

    v, f = np.asarray(scan.vertices, np.float64), np.asarray(scan.faces, np.int64)
    for _ in range(subdivisions):
        v, f = trimesh.remesh.subdivide(v, f)
    bent = bend_to_landmarks(ict_face, ict_lmk, scan_lmk)
    dist, idx = cKDTree(bent).query(v)
    idx = np.where(dist <= reach_mm, idx, -1)
    return SkinTransfer(v, f, idx.astype(np.int64), dist)


def paint_scan(transfer: SkinTransfer, face_albedo: np.ndarray, skin_rgb: np.ndarray) -> np.ndarray:
    """Albedo (N,3) of the render mesh: the face part's albedo where it reaches, skin elsewhere."""
    out = np.tile(np.asarray(skin_rgb, np.float64), (len(transfer.vertices), 1))
    ok = transfer.source >= 0
    out[ok] = face_albedo[transfer.source[ok]]
    return out


def draw_occluder(image: np.ndarray, landmarks: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Draw a ``kind`` occluder over a face image (H,W,3) uint8 with its 68 landmarks (pixels):
    ``"fringe"`` (dark hair strands from above down to just over the brows) or ``"glasses"``
    (thick dark frames around both eyes with a bridge and temples). Returns a new image."""
    img = image.copy()
    lm = np.asarray(landmarks, np.float64)
    eye_dist = float(np.linalg.norm(lm[45] - lm[36]))
    if kind == "fringe":
        brow = lm[17:27]
        x0, x1 = brow[:, 0].min() - 0.25 * eye_dist, brow[:, 0].max() + 0.25 * eye_dist
        top = brow[:, 1].min() - 1.2 * eye_dist
        hair = np.array([50, 35, 25]) * rng.uniform(0.6, 1.4)
        for _ in range(int(6 * eye_dist)):  # strands: curved dark lines ending above the brows
            x = rng.uniform(x0, x1)
            bottom = np.interp(x, brow[:, 0], brow[:, 1]) - rng.uniform(0.05, 0.3) * eye_dist
            ys = np.linspace(top, bottom, 12)
            xs = x + rng.uniform(-0.15, 0.15) * eye_dist * np.sin(np.linspace(0, math.pi, 12))
            col = np.clip(hair * rng.uniform(0.7, 1.3), 0, 255)
            pts = np.stack([xs, ys], 1).round().astype(np.int32)
            cv2.polylines(img, [pts], False, tuple(float(c) for c in col), thickness=max(1, int(eye_dist / 25)),
                          lineType=cv2.LINE_AA)
        return img
    if kind == "glasses":
        col = tuple(float(c) for c in np.array([25, 22, 20]) * rng.uniform(0.8, 2.0))
        th = max(2, int(round(eye_dist / 14)))
        centres = [lm[36:42].mean(0), lm[42:48].mean(0)]
        ax = (int(0.32 * eye_dist), int(0.22 * eye_dist))
        ang = math.degrees(math.atan2(lm[45, 1] - lm[36, 1], lm[45, 0] - lm[36, 0]))
        for c in centres:
            cv2.ellipse(img, (int(c[0]), int(c[1])), ax, ang, 0, 360, col, th, cv2.LINE_AA)
        a, b = centres
        d = (b - a) / max(np.linalg.norm(b - a), 1e-6)
        p0, p1 = a + d * ax[0], b - d * ax[0]
        cv2.line(img, tuple(int(x) for x in p0), tuple(int(x) for x in p1), col, th, cv2.LINE_AA)
        for c, s in ((a, -1), (b, 1)):  # temples towards the ears
            q0 = c + s * d * ax[0]
            q1 = q0 + s * d * 0.45 * eye_dist
            cv2.line(img, tuple(int(x) for x in q0), tuple(int(x) for x in q1), col, th, cv2.LINE_AA)
        return img
    raise ValueError(f"unknown occluder {kind!r} (fringe, glasses)")


#: How far the head's centre of rotation lies behind the outer eye corners in the renders, mm.
TURN_DEPTH = 95.0


def render_focal(size: int, distance: float = 1000.0) -> float:
    """The renders' focal length, pixels of a ``size`` image, for a head ``distance`` mm away:
    ``1015·size/224·0.75`` at 1 m (the own-albedo instrument's), in proportion to the eyes'
    distance otherwise (the face keeps its size in the image)."""
    return 1015.0 * size / 224 * 0.75 * (distance - TURN_DEPTH) / (1000.0 - TURN_DEPTH)


def render_view(transfer: SkinTransfer, albedo: np.ndarray, scan_lmk: np.ndarray, pitch_deg: float,
                yaw_deg: float, gamma: np.ndarray, background: np.ndarray, size: int = 512,
                supersample: int = 2, distance: float = 1000.0) -> tuple[np.ndarray, np.ndarray]:
    """One photo-like render (size,size,3) uint8 and the scan's projected 68 landmarks (pixels).

    The head turns about a centre 95 mm behind the outer eye corners and sits ``distance`` mm
    (default 1 m) from a camera of focal :func:`render_focal` px: the face's size in the image does
    not change with the distance, its perspective does (0.4 m: a selfie at arm's length).
    ``gamma`` is 9 SH coefficients (mono light), ``background`` (size,size,3) float in [0,1]."""
    s = size * supersample
    cam = Camera(focal=render_focal(s, distance), size=s)
    centre = torch.tensor(scan_lmk[[36, 45]].mean(0) - np.array([0, 0, TURN_DEPTH]), dtype=torch.float32)
    verts = torch.tensor(transfer.vertices, dtype=torch.float32)
    faces = torch.tensor(transfer.faces, dtype=torch.int64)
    ang = torch.tensor([[math.radians(pitch_deg), math.radians(yaw_deg), 0.0]])
    far = torch.tensor([[0.0, 0.0, -float(distance)]])
    vc = transform((verts - centre)[None], ang, far)
    n = torch.tensor(np.asarray(trimesh.Trimesh(vc[0].numpy(), transfer.faces, process=False).vertex_normals),
                     dtype=torch.float32)[None]
    col = sh_shading(torch.tensor(albedo, dtype=torch.float32)[None], n,
                     torch.tensor(np.asarray(gamma, np.float32)[None, :9]))
    bg = cv2.resize(np.asarray(background, np.float32), (s, s), interpolation=cv2.INTER_LINEAR)
    bg_t = torch.tensor(bg).permute(2, 0, 1)[None]
    with torch.no_grad():
        img = Renderer(cam)(vc, faces, col, background=bg_t).image[0]
        xy, _ = project(transform(torch.tensor(scan_lmk, dtype=torch.float32)[None] - centre, ang, far), cam)
    img = img.clamp(0, 1).permute(1, 2, 0).numpy()
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return (img * 255).round().astype(np.uint8), xy[0].numpy() / supersample


__all__ = ["TURN_DEPTH", "VIEWS", "SkinTransfer", "bend_to_landmarks", "draw_occluder", "paint_scan", "render_focal",
           "render_view", "skin_transfer"]
