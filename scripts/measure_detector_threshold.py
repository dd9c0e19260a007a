"""Measure dlib HOG detector scores on 300-W train to choose the per-upsampling thresholds.

Positives: each train photo; a box is the annotated face when its IoU with the ground-truth
landmark box exceeds 0.3. Negatives: every second train photo with the annotated face (1.5× its
landmark box) painted over in the photo's mean colour; any box there is a false detection (a
stray real face in the background would count too, so the false-positive figures are an upper
bound). For each candidate (t0, t1, t2) the detection cascade of ``FaceDetector`` is simulated:
try upsampling 0, then 1, then 2, stopping at the first level that has a box above its threshold.

    .venv/bin/python scripts/measure_detector_threshold.py     # ~5 min on 2 cores
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from facerecon.assets import shared_path
from facerecon.imageio.pts import read_pts
from facerecon.imageio.load import load_image

CANDIDATES = [(0.0, 0.0, 0.0), (-0.2, -0.2, -0.2), (-0.2, 0.0, 0.1), (-0.3, 0.0, 0.1),
              (-0.2, -0.1, 0.0), (-0.1, 0.0, 0.1), (-0.4, -0.2, 0.0)]


def iou_with(box: tuple[float, float, float, float], gt: np.ndarray) -> float:
    """IoU of a box with the bounding box of landmarks ``gt`` (68, 2)."""
    gx0, gy0 = gt.min(0)
    gx1, gy1 = gt.max(0)
    x0, y0, x1, y1 = box
    ix = max(0.0, min(x1, gx1) - max(x0, gx0))
    iy = max(0.0, min(y1, gy1) - max(y0, gy0))
    inter = ix * iy
    union = (x1 - x0) * (y1 - y0) + (gx1 - gx0) * (gy1 - gy0) - inter
    return inter / union if union > 0 else 0.0


def scan(hog, image: np.ndarray, levels=(0, 1, 2), floor: float = -0.6):
    """{level: [(box, score), ...]} for every box scoring above ``floor``."""
    out = {}
    for level in levels:
        rects, scores, _ = hog.run(image, level, floor)
        out[level] = [((r.left(), r.top(), r.right(), r.bottom()), float(s)) for r, s in zip(rects, scores)]
    return out


def main(argv: list[str] | None = None) -> int:
    import dlib

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path, default=shared_path("faces", "300w", "train"))
    args = ap.parse_args(argv)
    if args.train is None or not args.train.is_dir():
        print("300-W train folder not found", file=sys.stderr)
        return 1
    hog = dlib.get_frontal_face_detector()
    files = sorted(args.train.glob("*.jpg"))
    pos, neg = [], []
    for i, f in enumerate(files):
        image = load_image(f)
        gt = read_pts(f.with_suffix(".pts"))
        boxes = scan(hog, image)
        pos.append({k: [(s, iou_with(b, gt) > 0.3, (b[2] - b[0]) * (b[3] - b[1])) for b, s in v]
                    for k, v in boxes.items()})
        if i % 2 == 0:
            masked = image.copy()
            c, half = (gt.min(0) + gt.max(0)) / 2, (gt.max(0) - gt.min(0)) * 0.75
            x0, y0 = np.maximum(0, c - half).astype(int)
            x1, y1 = (c + half).astype(int)
            masked[y0:y1, x0:x1] = image.reshape(-1, 3).mean(0).astype(np.uint8)
            neg.append({k: [s for _, s in v] for k, v in scan(hog, masked).items()})

    print(f"{len(files)} photos with a face, {len(neg)} with the face painted out")
    print("thresholds (up0, up1, up2) | photos with a face found | largest box = annotated face "
          "| face-free photos with a (false) detection")
    for ths in CANDIDATES:
        found = right = 0
        for p in pos:
            for level in (0, 1, 2):
                ok = [b for b in p[level] if b[0] > ths[level]]
                if ok:
                    found += 1
                    right += max(ok, key=lambda b: b[2])[1]
                    break
        false = sum(any(s > ths[k] for k in (0, 1, 2) for s in n[k]) for n in neg)
        print(f"{str(ths):<20} | {found:5d} ({100 * found / len(pos):.1f}%) | {right:5d} "
              f"| {false:4d} ({100 * false / len(neg):.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
