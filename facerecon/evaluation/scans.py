"""Ground-truth scans the project knows about (read from the shared data folder).

``load_lee_perry_smith()``: the Lee Perry-Smith head scan (Infinite Realities, CC BY 3.0) in
millimetres with 68 iBUG landmarks. The scan file ships in unknown units; the factor and the
landmarks come from ``facerecon/resources/lee_perry_smith.json``, made by
``scripts/prepare_lee_perry_smith.py`` (dlib landmarks on renders of the scan, cast onto its
surface; scale from the outer-eye-corner distance of the ICT-FaceKit mean face).
``lee_perry_smith_surface()``: the same scan as a scanner would have seen it. The model has
eyeballs, teeth and a mouth inside the head, which a scan-to-prediction evaluator would
otherwise measure. ``head`` names the head: the scan as recorded (``"lps"``) or one of
:data:`HEAD_WARPS`, the same scan smoothly reshaped into a head of other proportions (a stand-in
for a second scan: the shape change comes from no face model's basis).
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import trimesh

from facerecon.assets import resource_path, shared_path
from facerecon.evaluation.scan import MeshError, load_mesh, visible_part

LEE_PERRY_SMITH = ("scans", "lee-perry-smith", "LeePerrySmith.glb")


@lru_cache(maxsize=1)
def lee_perry_smith_record() -> dict:
    """The stored numbers for the Lee Perry-Smith scan (units_to_mm, landmarks_mm, provenance)."""
    path = resource_path("lee_perry_smith.json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MeshError(f"{path}: cannot read ({exc})") from None


#: Heads made from the Lee Perry-Smith scan by a smooth warp of space (its vertices and landmarks
#: alike), each a one-line description. Measured on them, a setting chosen on the scan shows whether
#: it holds for other proportions. Nothing of a face model is involved: the warps are axis scalings
#: that vary smoothly with height, about the nose tip's midline (x) and the eye corners (z).
HEAD_WARPS: dict[str, str] = {
    "lps": "the scan as recorded",
    "lps-b": "forehead 8 % narrower, jaw and chin 8 % wider, eyes unchanged (the scan's proportions reversed)",
    "lps-c": "face 10 % shallower front to back, lower face 8 % longer",
}


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def warp_head(points: np.ndarray, landmarks: np.ndarray, head: str) -> np.ndarray:
    """``points`` (N,3) mm of the scan moved by head ``head``'s warp (:data:`HEAD_WARPS`), defined on
    the scan's own 68 ``landmarks`` (mm, y up): nose tip 30, eye corners 36–47, chin 8. Every warp
    is one-to-one (its Jacobian's determinant stays positive), so a mesh stays a valid surface."""
    if head not in HEAD_WARPS:
        raise ValueError(f"unknown head {head!r} (choose from {', '.join(HEAD_WARPS)})")
    p = np.array(points, dtype=np.float64)
    nose, chin = landmarks[30], landmarks[8]
    y_eye = float(landmarks[36:48, 1].mean())
    if head == "lps-b":  # x scaled by s(y) > 0: 1 at the eyes, 0.92 from 15 mm over the brows, 1.08 at the chin
        up = _smoothstep((p[:, 1] - y_eye) / (landmarks[17:27, 1].max() + 15.0 - y_eye))
        down = _smoothstep((nose[1] - p[:, 1]) / (nose[1] - chin[1]))
        p[:, 0] = nose[0] + (p[:, 0] - nose[0]) * (1.0 - 0.08 * up + 0.08 * down)
    elif head == "lps-c":
        z_eye = float(landmarks[[36, 39, 42, 45], 2].mean())
        p[:, 2] = z_eye + (p[:, 2] - z_eye) * 0.9
        below = nose[1] - p[:, 1]  # mm under the nose tip; stretched 8 %, phased in over 20 mm
        p[:, 1] = nose[1] - below * (1.0 + 0.08 * _smoothstep(below / 20.0))
    return p


def load_lee_perry_smith(head: str = "lps") -> tuple[trimesh.Trimesh, np.ndarray]:
    """The Lee Perry-Smith scan in mm (y up, +z towards the viewer, the file's own origin) and
    its 68 iBUG landmarks (68,3) in mm, in the same frame; reshaped by ``head``'s warp
    (:data:`HEAD_WARPS`) unless it is ``"lps"``.

    Raises:
        MeshError: the shared scan is missing (it lives in ``../shared/scans/lee-perry-smith``).
    """
    path = shared_path(*LEE_PERRY_SMITH)
    if path is None:
        raise MeshError(f"{'/'.join(LEE_PERRY_SMITH)}: not found in the shared data folder "
                        f"(set FACERECON_SHARED)")
    rec = lee_perry_smith_record()
    mesh = load_mesh(path, float(rec["units_to_mm"]))
    landmarks = np.asarray(rec["landmarks_mm"], dtype=np.float64)
    if head != "lps":
        mesh = trimesh.Trimesh(warp_head(mesh.vertices, landmarks, head), mesh.faces, process=False)
        landmarks = warp_head(landmarks, landmarks, head)
    return mesh, landmarks


#: Radius around the nose tip (mm) of :func:`lee_perry_smith_surface`: past every crop's sphere.
SURFACE_RADIUS_MM = 130.0


@lru_cache(maxsize=4)
def lee_perry_smith_surface(head: str = "lps") -> tuple[trimesh.Trimesh, np.ndarray]:
    """The Lee Perry-Smith scan's outer surface within 130 mm of its nose tip (mm; its landmarks
    as :func:`load_lee_perry_smith`): the scan less the eyeballs, teeth and mouth inside the head
    (:func:`facerecon.evaluation.scan.visible_part`; takes about 10 s, then cached), reshaped by
    ``head``'s warp (:data:`HEAD_WARPS`) unless it is ``"lps"``."""
    if head != "lps":
        part, landmarks = lee_perry_smith_surface()
        return (trimesh.Trimesh(warp_head(part.vertices, landmarks, head), part.faces, process=False),
                warp_head(landmarks, landmarks, head))
    mesh, landmarks = load_lee_perry_smith()
    return visible_part(mesh, landmarks[30], SURFACE_RADIUS_MM), landmarks
