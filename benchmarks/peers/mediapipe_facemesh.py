"""A peer that installs here: MediaPipe Face Mesh (468 points in 3D, Apache-2.0), run on photos.

Runs in its own virtual environment (MediaPipe pins numpy and protobuf), never imports facerecon:

    python3 -m venv .peers/mediapipe && .peers/mediapipe/bin/pip install mediapipe==0.10.14
    .peers/mediapipe/bin/python benchmarks/peers/mediapipe_facemesh.py PHOTOS_OR_FOLDERS... --out PEER.npz

0.10.14 is the last release on PyPI whose wheel carries the Face Mesh model (the later "tasks" wheels
download it at run time). Static-image mode, one face, no iris refinement. Writes ``PEER.npz``:
``names`` (each photo's path as found), ``ok`` (a face was found), ``vertices`` (N, 468, 3) in the
photo's pixels (x right, y down, z away from the camera, z in x's scale, as MediaPipe defines it;
NaN where no face), ``triangles`` (the mesh's faces: the 3-cliques of MediaPipe's tessellation
edges) and ``seconds`` (per photo, the model only). ``benchmarks/peer_scores.py`` scores them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def photos(args: list[str]) -> list[Path]:
    """The photos named or found (recursively, sorted) in the folders named."""
    out = []
    for a in map(Path, args):
        out += sorted(p for p in a.rglob("*") if p.suffix.lower() in SUFFIXES) if a.is_dir() else [a]
    return out


def triangles(edges) -> np.ndarray:
    """The triangles of a triangulation given as its edges: every 3-cycle of the edge graph."""
    edges = {tuple(sorted(e)) for e in edges}
    adjacent: dict[int, set[int]] = {}
    for a, b in edges:
        adjacent.setdefault(a, set()).add(b)
        adjacent.setdefault(b, set()).add(a)
    tris = {tuple(sorted((a, b, c))) for a, b in edges for c in adjacent[a] & adjacent[b]}
    return np.array(sorted(tris), dtype=np.int32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", nargs="+", help="photos or folders")
    ap.add_argument("--out", type=Path, required=True, help="the .npz to write")
    args = ap.parse_args()
    from mediapipe.python.solutions import face_mesh, face_mesh_connections

    files = photos(args.photos)
    mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False)
    verts = np.full((len(files), 468, 3), np.nan, np.float32)
    ok = np.zeros(len(files), bool)
    seconds = np.zeros(len(files))
    for i, f in enumerate(files):
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            print(f"{f}: not an image, skipped")
            continue
        h, w = img.shape[:2]
        t0 = time.perf_counter()
        result = mesh.process(np.ascontiguousarray(img[:, :, ::-1]))
        seconds[i] = time.perf_counter() - t0
        if not result.multi_face_landmarks:
            print(f"{f}: no face found")
            continue
        p = np.array([(q.x, q.y, q.z) for q in result.multi_face_landmarks[0].landmark], np.float32)
        verts[i] = p * np.array([w, h, w], np.float32)
        ok[i] = True
        if (i + 1) % 200 == 0:
            print(f"{i + 1} of {len(files)}", flush=True)
    tmp = args.out.with_name(args.out.name + ".partial.npz")
    np.savez_compressed(tmp, names=np.array([str(f) for f in files]), ok=ok, vertices=verts,
                        triangles=triangles(face_mesh_connections.FACEMESH_TESSELATION), seconds=seconds)
    tmp.replace(args.out)
    print(f"{ok.sum()} faces in {len(files)} photos -> {args.out}; {np.median(seconds[ok]) * 1e3:.0f} ms per photo")


if __name__ == "__main__":
    main()
