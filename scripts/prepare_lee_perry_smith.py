#!/usr/bin/env python
"""Find the Lee Perry-Smith scan's scale to millimetres and its 68 3D landmarks.

The shared scan (``scans/lee-perry-smith/LeePerrySmith.glb``) is in unknown units with no
landmarks. This script:

1. renders the untextured scan with the project renderer (grey Lambertian skin, several SH
   lights, yaw -10/0/+10 degrees, two distances, 512 px);
2. detects the face and its 68 iBUG landmarks with dlib (HOG detector + 68-point predictor);
3. back-projects every landmark by casting the camera ray through its sub-pixel position onto
   the scan (first hit), giving 3D points on the scan surface in its own units;
4. takes the per-landmark median over renders (jaw-line points 0-16 from the frontal renders
   only: on turned views a detector's jaw points slide along the silhouette);
5. sets the units-to-mm factor so that the outer-eye-corner distance (landmarks 36-45) equals
   that of the ICT-FaceKit mean face (about 89.2 mm, within the adult population range of
   roughly 86-94 mm), so the mean-face baseline is compared at equal eye width; a similarity
   fit of the 51 inner landmarks to the mean face's is printed as a cross-check.

Writes ``facerecon/resources/lee_perry_smith.json`` (small numbers only: the factor and 68x3
landmarks in mm in the scan's own frame), atomically. Run from the repository root:

    .venv/bin/python scripts/prepare_lee_perry_smith.py
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import torch
import trimesh

from facerecon.assets import resource_path, shared_path
from facerecon.atomic import atomic_write_json
from facerecon.evaluation.scan import load_mesh, umeyama
from facerecon.facemodel import load_face_model
from facerecon.forward import shade_vertices
from facerecon.render import Camera, Renderer, euler_to_matrix, transform

SCAN = ("scans", "lee-perry-smith", "LeePerrySmith.glb")
PROVISIONAL_MM_PER_UNIT = 60.0  # only frames the renders; the result does not depend on it
SIZE = 512


def _dlib_models():
    import dlib
    import face_recognition_models

    root = Path(face_recognition_models.__file__).parent / "models"
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(
        str(root / "shape_predictor_68_face_landmarks.dat"))


def _render(verts: np.ndarray, faces: np.ndarray, yaw_deg: float, distance: float,
            gamma: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey render (H,W,3) uint8 of model-space ``verts`` (mm-ish), plus the rotation and
    translation used (model -> camera)."""
    cam = Camera(focal=1015.0 * SIZE / 224, size=SIZE)
    v = torch.tensor(verts, dtype=torch.float32)[None]
    angles = torch.tensor([[0.0, float(np.radians(yaw_deg)), 0.0]], dtype=torch.float32)
    trans = torch.tensor([[0.0, 0.0, -distance]])
    vc = transform(v, angles, trans)
    colors, _ = shade_vertices(vc, torch.as_tensor(faces), torch.full_like(vc, 0.72), torch.tensor([gamma]))
    out = Renderer(cam)(vc, torch.as_tensor(faces), colors)
    img = (out.image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    return img, euler_to_matrix(angles)[0].double().numpy(), trans[0].double().numpy()


def _backproject(mesh: trimesh.Trimesh, pix: np.ndarray, rot: np.ndarray, trans: np.ndarray,
                 cam: Camera) -> np.ndarray:
    """3D points (N,3) where the camera rays through pixel positions ``pix`` (N,2) (the camera's
    convention, dlib's and OpenCV's: pixel centres at whole numbers) first hit ``mesh`` (model space);
    NaN where they miss."""
    d_cam = np.stack([(pix[:, 0] - cam.center) / cam.focal, -(pix[:, 1] - cam.center) / cam.focal,
                      -np.ones(len(pix))], 1)
    d_model = d_cam @ rot  # R^T d
    d_model /= np.linalg.norm(d_model, axis=1, keepdims=True)
    origin = -rot.T @ trans
    origins = np.repeat(origin[None], len(pix), 0)
    locs, ray_idx, _ = mesh.ray.intersects_location(origins, d_model, multiple_hits=True)
    out = np.full((len(pix), 3), np.nan)
    best = np.full(len(pix), np.inf)
    for p, r in zip(locs, ray_idx):
        dist = np.linalg.norm(p - origin)
        if dist < best[r]:
            best[r], out[r] = dist, p
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(resource_path("lee_perry_smith.json")))
    parser.add_argument("--debug-dir", help="also write the renders with their landmarks here")
    args = parser.parse_args(argv)

    path = shared_path(*SCAN)
    if path is None:
        raise SystemExit(f"shared scan {'/'.join(SCAN)} not found")
    units = load_mesh(path, 1.0)
    # provisional frame: scaled, nose tip (max z) slightly above the image centre
    tip = units.vertices[np.argmax(units.vertices[:, 2])]
    offset = -tip * PROVISIONAL_MM_PER_UNIT + np.array([0.0, 15.0, 0.0])
    verts = np.asarray(units.vertices) * PROVISIONAL_MM_PER_UNIT + offset
    model = trimesh.Trimesh(verts, units.faces, process=False)
    faces = np.asarray(units.faces)

    detector, predictor = _dlib_models()
    import dlib

    lights = [
        [0.85, 0.15, 0.35, 0.25, 0, 0, 0, 0, 0],
        [0.80, 0.25, 0.40, -0.30, 0, 0, 0, 0, 0],
        [0.90, 0.05, 0.30, 0.05, 0.05, 0, -0.05, 0, 0.05],
    ]
    cam = Camera(focal=1015.0 * SIZE / 224, size=SIZE)
    samples: dict[int, list[np.ndarray]] = {0: [], 10: [], -10: []}
    for yaw in samples:
        for distance in (1100.0, 1350.0):
            for li, gamma in enumerate(lights):
                img, rot, trans = _render(verts, faces, yaw, distance, gamma)
                boxes, scores, _ = detector.run(img, 0, 0.0)
                if not boxes:
                    print(f"  yaw {yaw:+d} distance {distance:.0f} light {li}: no face found")
                    continue
                box = boxes[int(np.argmax(scores))]
                shape = predictor(img, box)
                pix = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
                pts = _backproject(model, pix, rot, trans, cam)
                samples[yaw].append(pts)
                if args.debug_dir:
                    from PIL import Image, ImageDraw

                    Path(args.debug_dir).mkdir(parents=True, exist_ok=True)
                    im = Image.fromarray(img)
                    draw = ImageDraw.Draw(im)
                    for x, y in pix:
                        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(255, 0, 0))
                    im.save(Path(args.debug_dir) / f"lps_yaw{yaw:+d}_d{distance:.0f}_l{li}.png")
    all_views = [p for v in samples.values() for p in v]
    if len(samples[0]) < 2 or len(all_views) < 6:
        raise SystemExit("too few renders with a detected face")
    stack_all, stack_front = np.stack(all_views), np.stack(samples[0])
    lmk = np.nanmedian(stack_all, axis=0)
    lmk[:17] = np.nanmedian(stack_front[:, :17], axis=0)
    spread = np.nanmedian(np.linalg.norm(stack_all - lmk, axis=2), axis=0)
    spread[:17] = np.nanmedian(np.linalg.norm(stack_front[:, :17] - lmk[:17], axis=2), axis=0)
    # back to the scan's own units
    lmk_units = (lmk - offset) / PROVISIONAL_MM_PER_UNIT
    spread_units = spread / PROVISIONAL_MM_PER_UNIT

    fm = load_face_model(region="face")
    ict = fm.landmarks(fm.mean[None])[0].double().numpy()
    ict_eyes = float(np.linalg.norm(ict[36] - ict[45]))
    scan_eyes = float(np.linalg.norm(lmk_units[36] - lmk_units[45]))
    factor = ict_eyes / scan_eyes
    s_inner, _, _ = umeyama(lmk_units[17:], ict[17:], with_scale=True)
    lmk_mm = lmk_units * factor
    print(f"renders used: {len(all_views)} ({len(samples[0])} frontal)")
    print(f"outer-eye-corner distance: scan {scan_eyes:.5f} units, ICT mean {ict_eyes:.3f} mm")
    print(f"units -> mm: {factor:.4f} (eye corners); cross-check, similarity of the 51 inner "
          f"landmarks to the ICT mean: {s_inner:.4f} ({100 * (s_inner / factor - 1):+.1f}%)")
    print(f"landmark spread over renders (median, mm): inner {np.median(spread_units[17:] * factor):.2f}, "
          f"jaw {np.median(spread_units[:17] * factor):.2f}")

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    record = {
        "source": "/".join(SCAN),
        "source_sha256": digest,
        "credit": "Lee Perry-Smith head scan (Infinite Realities), licence CC BY 3.0",
        "frame": "the scan's own axes (y up, +z towards the viewer), coordinates times units_to_mm",
        "units_to_mm": round(factor, 6),
        "scale_reference": {
            "method": "outer-eye-corner distance (iBUG 36-45) set equal to the ICT-FaceKit mean face's",
            "target_mm": round(ict_eyes, 4),
            "scan_units": round(scan_eyes, 6),
            "crosscheck_inner_landmark_similarity_units_to_mm": round(float(s_inner), 6),
        },
        "landmarks": "iBUG 68, detected by dlib on renders of the scan and cast onto its surface; "
                     "median over renders (jaw line from frontal renders only)",
        "landmarks_mm": np.round(lmk_mm, 4).tolist(),
        "landmark_spread_mm": np.round(spread_units * factor, 4).tolist(),
        "renders": len(all_views),
        "script": "scripts/prepare_lee_perry_smith.py",
    }
    out = atomic_write_json(args.out, record, mkdir=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
