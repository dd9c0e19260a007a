"""The outer surface of the face mesh: ICT's face region less the parts no camera or scanner sees.

ICT-FaceKit models the inside of the nostrils (tubes about 30 mm deep) and the inside of the lips.
No photo shows them and no scan records them (a scan closes the nostrils a few mm in), yet a
comparison of mesh vertices with a scan counts them: on the Lee Perry-Smith scan they are 12 % of
the vertices within 95 mm of the nose tip and carry 35 % (rigid) to 49 % (with scale) of the mean
face's squared error (BENCHMARKS.md, "A peer that runs here"). :func:`occlusion` finds them by
casting rays from every vertex into the hemisphere of its normal (trimesh's ray queries, which
need ``rtree``: the ``test`` extra); the shipped list (``facerecon/resources/ict_face_hidden.json``,
made by ``tools/hidden_vertices.py`` on the mean face) is what :func:`hidden_vertices` reads.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import trimesh

from facerecon.assets import resource_path

HIDDEN_FILE = "ict_face_hidden.json"


def occlusion(verts: np.ndarray, faces: np.ndarray, directions: int = 24, seed: int = 0,
              offset_mm: float = 0.05, subset: np.ndarray | None = None) -> np.ndarray:
    """(V,) share of ``directions`` rays from each vertex (mm) that hit the mesh again (of the
    ``subset`` of vertex indices only, if given: (len(subset),)).

    Ray k leaves vertex i along the unit direction halfway between a random direction d_k (flipped
    into the vertex's outer hemisphere) and the vertex normal, i.e. within 45° of the normal where
    skin is seen from; it starts ``offset_mm`` out along the normal so as not to hit its own
    triangles. Exposed skin scores near 0, the inside of a nostril near 1."""
    mesh = trimesh.Trimesh(np.asarray(verts, np.float64), np.asarray(faces), process=False)
    normals = mesh.vertex_normals
    points = mesh.vertices
    if subset is not None:
        normals, points = normals[subset], points[subset]
    d = np.random.default_rng(seed).normal(size=(directions, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    origins = points + offset_mm * normals
    blocked = np.zeros(len(normals))
    for dk in d:
        rays = np.where((normals @ dk > 0)[:, None], dk, -dk) + normals
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        blocked += mesh.ray.intersects_any(origins, rays)
    return blocked / directions


@lru_cache(maxsize=1)
def _shipped() -> dict:
    return json.loads(resource_path(HIDDEN_FILE).read_text())


def hidden_vertices(n_vertices: int) -> np.ndarray:
    """(V,) bool: the shipped hidden vertices of ICT's ``face`` region (``n_vertices`` must be its count)."""
    data = _shipped()
    if n_vertices != data["n_vertices"]:
        raise ValueError(f"{HIDDEN_FILE} is for the {data['region']} region's {data['n_vertices']} vertices, "
                         f"not {n_vertices}")
    mask = np.zeros(n_vertices, bool)
    mask[data["hidden"]] = True
    return mask


def outer_surface(faces: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mesh without its hidden vertices: (kept vertex indices (K,), faces (F',3) re-indexed into
    them). Triangles with any hidden corner go; vertices left without a triangle go too."""
    faces = np.asarray(faces)
    tris = faces[~hidden[faces].any(axis=1)]
    kept = np.unique(tris)
    new_index = np.full(len(hidden), -1)
    new_index[kept] = np.arange(len(kept))
    return kept, new_index[tris]


#: The surfaces a face-region mesh can be scored on: every vertex, or the outer surface alone.
SURFACES = ("full", "outer")


def scoring_mesh(verts: np.ndarray, faces: np.ndarray, landmark_idx: np.ndarray, surface: str = "full"
                 ) -> tuple[trimesh.Trimesh, np.ndarray]:
    """A face-region mesh (verts (V,3) mm, ICT's ``face`` region) as a scan evaluator takes it: the
    mesh and its 68 landmarks (68,3) mm; with ``surface="outer"`` without the hidden vertices, and
    the landmarks that are hidden (between the lips) as NaN rows."""
    verts = np.asarray(verts, np.float64)
    points = verts[landmark_idx]
    if surface == "full":
        return trimesh.Trimesh(verts, faces, process=False), points
    if surface != "outer":
        raise ValueError(f"surface must be one of {', '.join(SURFACES)}, got {surface!r}")
    hidden = hidden_vertices(len(verts))
    kept, tris = outer_surface(faces, hidden)
    points = np.where(hidden[landmark_idx][:, None], np.nan, points)
    return trimesh.Trimesh(verts[kept], tris, process=False), points
