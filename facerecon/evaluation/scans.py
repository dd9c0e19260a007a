"""Ground-truth scans the project knows about (read from the shared data folder).

``load_lee_perry_smith()``: the Lee Perry-Smith head scan (Infinite Realities, CC BY 3.0) in
millimetres with 68 iBUG landmarks. The scan file ships in unknown units; the factor and the
landmarks come from ``facerecon/resources/lee_perry_smith.json``, made by
``scripts/prepare_lee_perry_smith.py`` (dlib landmarks on renders of the scan, cast onto its
surface; scale from the outer-eye-corner distance of the ICT-FaceKit mean face).
``lee_perry_smith_surface()``: the same scan as a scanner would have seen it. The model has
eyeballs, teeth and a mouth inside the head, which a scan-to-prediction evaluator would
otherwise measure.
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


def load_lee_perry_smith() -> tuple[trimesh.Trimesh, np.ndarray]:
    """The Lee Perry-Smith scan in mm (y up, +z towards the viewer, the file's own origin) and
    its 68 iBUG landmarks (68,3) in mm, in the same frame.

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
    return mesh, landmarks


#: Radius around the nose tip (mm) of :func:`lee_perry_smith_surface`: past every crop's sphere.
SURFACE_RADIUS_MM = 130.0


@lru_cache(maxsize=1)
def lee_perry_smith_surface() -> tuple[trimesh.Trimesh, np.ndarray]:
    """The Lee Perry-Smith scan's outer surface within 130 mm of its nose tip (mm; its landmarks
    as :func:`load_lee_perry_smith`): the scan less the eyeballs, teeth and mouth inside the head
    (:func:`facerecon.evaluation.scan.visible_part`; takes about 10 s, then cached)."""
    mesh, landmarks = load_lee_perry_smith()
    return visible_part(mesh, landmarks[30], SURFACE_RADIUS_MM), landmarks
