"""How the detector's completion of unsure eye and brow points (``FaceDetector(eye_spread_limit=...)``,
:mod:`facerecon.imageio.point_model`) does on annotated photos, as they are and with glasses drawn
(``facerecon.evaluation.real_skin.draw_occluder``, placed from the annotation, seeded per photo):
NME in % of the outer-eye-corner distance over all 68 points and over the 22 eye and brow points,
how often completion fires, and failures (NME > 8 %), for each limit (0: dlib's median alone).

    python benchmarks/eye_completion.py [--split train] [--every 6] [--limits 0 0.02 0.03]
"""

from __future__ import annotations

import argparse

import numpy as np

from facerecon.assets import shared_path
from facerecon.evaluation.real_skin import draw_occluder
from facerecon.imageio.detect import FaceDetector, NoFaceError
from facerecon.imageio.load import load_image
from facerecon.imageio.point_model import EYES_BROWS
from facerecon.imageio.pts import read_pts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="train", choices=["train", "test"])
    ap.add_argument("--every", type=int, default=6, help="every Nth photo of the split")
    ap.add_argument("--limits", type=float, nargs="+", default=[0.0, 0.02, 0.03])
    args = ap.parse_args()
    dets = {lim: FaceDetector(cnn_fallback=False, eye_spread_limit=lim) for lim in args.limits}
    files = sorted(shared_path("faces", "300w", args.split).glob("*.pts"))[::args.every]
    rows = {kind: {lim: [] for lim in dets} for kind in ("as they are", "glasses")}
    for i, pts_file in enumerate(files):
        img = next(pts_file.with_suffix(s) for s in (".jpg", ".png") if pts_file.with_suffix(s).exists())
        truth = read_pts(pts_file)
        eye = float(np.linalg.norm(truth[36] - truth[45]))
        clean = load_image(img)
        for kind in rows:
            photo = clean if kind == "as they are" else draw_occluder(clean, truth, "glasses", np.random.default_rng([i, 2]))
            try:
                found = {lim: d.detect(photo)[0] for lim, d in dets.items()}
            except NoFaceError:
                continue  # the same for every limit (completion does not change detection)
            for lim, face in found.items():
                err = np.linalg.norm(face.landmarks - truth, axis=1) / eye * 100
                rows[kind][lim].append((err.mean(), err[EYES_BROWS].mean(), face.eyes_completed))
    print(f"300-W {args.split}, every {args.every}th photo ({len(files)})")
    print("photos | limit | faces | NME, 68 points (%) | NME, eyes and brows (%) | completed | failures > 8 %")
    for kind, by_lim in rows.items():
        for lim, r in by_lim.items():
            a = np.array(r, float)
            print(f"{kind} | {lim:g} | {len(a)} | {a[:, 0].mean():.2f} | {a[:, 1].mean():.2f} | "
                  f"{100 * a[:, 2].mean():.0f} % | {100 * np.mean(a[:, 0] > 8):.1f} %")


if __name__ == "__main__":
    main()
