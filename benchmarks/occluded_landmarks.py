"""Detection and 68 landmarks on 300-W test photos as they are and with a hair fringe or glasses
drawn over the face (``facerecon.evaluation.real_skin.draw_occluder``, placed from the annotated
landmarks, seeded per photo): the HOG detector alone against HOG with the CNN fallback
(``FaceDetector(cnn_fallback=...)``). NME in % of the outer-eye-corner distance against the
annotators' points; a photo without a face counts as a failure (> 8 %).

    python benchmarks/occluded_landmarks.py [--limit N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from facerecon.assets import shared_path
from facerecon.evaluation.real_skin import draw_occluder
from facerecon.imageio.detect import FaceDetector, NoFaceError
from facerecon.imageio.load import load_image
from facerecon.imageio.pts import read_pts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=0, help="first N photos only (0: all 330)")
    ap.add_argument("--json", help="write per-photo rows and the summary here")
    args = ap.parse_args()
    root = shared_path("faces", "300w", "test")
    files = sorted(root.glob("*.pts"))
    files = files[:args.limit] if args.limit else files
    detectors = {"hog": FaceDetector(cnn_fallback=False), "hog+cnn": FaceDetector()}
    rows = []
    for i, pts_file in enumerate(files):
        img = next(pts_file.with_suffix(s) for s in (".jpg", ".png") if pts_file.with_suffix(s).exists())
        truth = read_pts(pts_file)
        iod = float(np.linalg.norm(truth[36] - truth[45]))
        clean = load_image(img)
        for occ in ("none", "fringe", "glasses"):
            rng = np.random.default_rng([i, ("none", "fringe", "glasses").index(occ)])
            photo = clean if occ == "none" else draw_occluder(clean, truth, occ, rng)
            for name, det in detectors.items():
                t0 = time.perf_counter()
                try:
                    face = det.detect(photo)[0]
                    nme, which = float(np.linalg.norm(face.landmarks - truth, axis=1).mean() / iod * 100), face.detector
                except NoFaceError:
                    nme, which = None, None
                rows.append({"photo": pts_file.stem, "occluder": occ, "detector": name, "nme": nme, "found_by": which,
                             "seconds": time.perf_counter() - t0})
        if (i + 1) % 50 == 0:
            print(f"{i + 1} photos", flush=True)
    summary = {}
    print("occluder | detector | found | NME, found (%) | failures > 8 % or not found | CNN used | s/photo")
    for occ in ("none", "fringe", "glasses"):
        for name in detectors:
            r = [x for x in rows if x["occluder"] == occ and x["detector"] == name]
            found = [x["nme"] for x in r if x["nme"] is not None]
            fail = sum(1 for x in r if x["nme"] is None or x["nme"] > 8) / len(r)
            s = {"n": len(r), "found": len(found), "nme_found": float(np.mean(found)), "failure_rate": fail,
                 "cnn_faces": sum(1 for x in r if x["found_by"] == "cnn"),
                 "seconds_per_photo": float(np.mean([x["seconds"] for x in r]))}
            summary[f"{occ}/{name}"] = s
            print(f"{occ} | {name} | {s['found']}/{s['n']} | {s['nme_found']:.2f} | {100 * fail:.1f} % | "
                  f"{s['cnn_faces']} | {s['seconds_per_photo']:.3f}")
    # paired: the photos both find
    for occ in ("none", "fringe", "glasses"):
        a = {x["photo"]: x["nme"] for x in rows if x["occluder"] == occ and x["detector"] == "hog"}
        b = {x["photo"]: x["nme"] for x in rows if x["occluder"] == occ and x["detector"] == "hog+cnn"}
        common = [k for k in a if a[k] is not None and b[k] is not None]
        changed = [k for k in common if a[k] != b[k]]
        print(f"{occ}: {len(changed)} of {len(common)} photos both find got other landmarks"
              + (f" (NME {np.mean([a[k] for k in changed]):.2f} → {np.mean([b[k] for k in changed]):.2f})" if changed else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
