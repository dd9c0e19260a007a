"""How far dlib's 68 points are from the scan's own on the real-skin renders, per part of the face,
at two camera distances: what a close-up photo costs the landmark detector alone (no fitting).

    python benchmarks/dlib_closeup.py [--distances 1000 400] [--json OUT]

The renders are ``lps_realskin.py``'s (4 held-out skins × 6 views, fringe and glasses); the truth is
the scan's 68 landmarks projected through each render's camera. Errors are in percent of the
distance between the scan's eye centres in that render (the renders keep the eyes' size, so the
percentages compare across distances). The scan's jaw points are fixed vertices, not the visible
contour dlib follows on a turned face, so the jaw figure mixes dlib's error with that difference;
the inner parts (brows, eyes, nose, mouth) have no such ambiguity.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facerecon.cli import set_cpu_threads
from facerecon.evaluation.real_skin import VIEWS
from facerecon.facemodel import load_face_model
from facerecon.pipeline import FaceReconstructor
from lps_realskin import prepare, real_skin_renders, scene

PARTS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
         "mouth": range(48, 68)}


def point_errors(recon: FaceReconstructor, setting: tuple, distance: float) -> list[dict]:
    """Per render from ``distance`` mm: dlib's points minus the scan's, in units of the eye-centre
    distance ((68, 2) array). ``setting``: what :func:`lps_realskin.scene` returns."""
    samples, pick, _, scan_lmk, transfer, backgrounds = setting
    out = []
    for k, _, occluder, view, photo, lm_true in real_skin_renders(samples, pick, list(VIEWS), 0, transfer, scan_lmk,
                                                                   backgrounds, distance=distance):
        prep, source = prepare(recon, photo, lm_true)
        eyes = np.linalg.norm(lm_true[36:42].mean(0) - lm_true[42:48].mean(0))
        err = (np.asarray(prep.landmarks_photo, np.float64) - lm_true) / eyes
        out.append({"texture": k, "view": view, "occluder": occluder, "source": source, "error": err})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--distances", type=float, nargs=2, default=(1000.0, 400.0), metavar=("FAR", "NEAR"),
                    help="camera distances in mm (the second is compared against the first)")
    ap.add_argument("--samples", type=Path, default=Path("work/albedo/heldout"))
    ap.add_argument("--textures", type=int, default=4)
    ap.add_argument("--json", help="write the per-part figures here")
    args = ap.parse_args()
    set_cpu_threads(None)
    setting = scene(load_face_model("face"), args.samples, args.textures)
    recon = FaceReconstructor()
    far, near = (point_errors(recon, setting, d) for d in args.distances)
    report: dict = {"distances_mm": list(args.distances), "parts": {}}
    print(f"dlib's points against the scan's, percent of the eye-centre distance ({len(far)} renders; "
          f"detections failed: {sum(r['source'] != 'dlib' for r in far + near)})")
    print(f"{'part':6s} {'at %.0f mm' % args.distances[0]:>11s} {'at %.0f mm' % args.distances[1]:>11s}  near − far")
    for name, idx in PARTS.items():
        idx = list(idx)
        e_far = np.array([np.linalg.norm(r["error"][idx], axis=1).mean() for r in far]) * 100
        e_near = np.array([np.linalg.norm(r["error"][idx], axis=1).mean() for r in near]) * 100
        d = e_near - e_far
        report["parts"][name] = {"far": float(e_far.mean()), "near": float(e_near.mean()),
                                 "near_minus_far": float(d.mean()), "renders_worse": int((d > 0).sum())}
        print(f"{name:6s} {e_far.mean():11.2f} {e_near.mean():11.2f}  {d.mean():+.2f} (worse on {(d > 0).sum()}"
              f"/{len(d)})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
