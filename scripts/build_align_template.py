"""Build the 68-point canonical alignment template for 224×224 crops.

Generalised Procrustes analysis (similarity: rotation, uniform scale, translation) of the
ground-truth landmarks of 300-W train, symmetrised with its mirror image, rotated upright
(eye line horizontal), then framed for a 224 px crop: jaw width (point 0 to point 16) =
0.62·224 px and the centre of the bounding box of all 68 points at (112, 124), so that the
forehead fits above the brows.

    .venv/bin/python scripts/build_align_template.py   # writes facerecon/resources/align_template.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from facerecon.assets import resource_path, shared_path
from facerecon.imageio.pts import read_pts

SIZE = 224
JAW_WIDTH = 0.62 * SIZE
CENTRE = (112.0, 124.0)

# iBUG 68 left/right correspondence (mirror permutation).
MIRROR = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]  # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lip
)


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity mapping src (N,2) onto dst (N,2): (scale, R 2×2, t 2)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, s, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    D = np.diag([1.0, d])
    R = u @ D @ vt
    scale = float((s * np.diag(D)).sum() / (a**2).sum())
    return scale, R, md - scale * R @ ms


def procrustes_mean(shapes: np.ndarray, iters: int = 20) -> np.ndarray:
    """Generalised Procrustes mean of (K, 68, 2) shapes, unit centroid size."""
    def normalise(x):
        x = x - x.mean(0)
        return x / np.sqrt((x**2).sum())

    mean = normalise(shapes[0])
    for _ in range(iters):
        aligned = []
        for s in shapes:
            sc, R, t = fit_similarity(s, mean)
            aligned.append(sc * s @ R.T + t)
        new = normalise(np.mean(aligned, axis=0))
        sc, R, t = fit_similarity(new, mean)  # keep the orientation of the first reference
        new = normalise(sc * new @ R.T + t)
        if np.abs(new - mean).max() < 1e-9:
            break
        mean = new
    return mean


def upright(shape: np.ndarray) -> np.ndarray:
    """Rotate so that the line between the eye centres is horizontal (left eye on the left)."""
    le, re = shape[36:42].mean(0), shape[42:48].mean(0)
    v = re - le
    ang = -np.arctan2(v[1], v[0])
    R = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    return (shape - shape.mean(0)) @ R.T


def symmetrise(shape: np.ndarray) -> np.ndarray:
    """Average an upright shape with its left-right mirror image."""
    mirrored = shape[MIRROR] * np.array([-1.0, 1.0])
    sc, R, t = fit_similarity(mirrored, shape)
    return 0.5 * (shape + sc * mirrored @ R.T + t)


def frame(shape: np.ndarray) -> np.ndarray:
    """Scale and place an upright shape in the 224 crop (jaw width, bbox centre)."""
    s = shape * (JAW_WIDTH / np.linalg.norm(shape[16] - shape[0]))
    centre = (s.min(0) + s.max(0)) / 2
    return s - centre + np.array(CENTRE)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path, default=shared_path("faces", "300w", "train"))
    ap.add_argument("--out", type=Path, default=resource_path("align_template.json"))
    args = ap.parse_args(argv)
    if args.train is None or not args.train.is_dir():
        print("300-W train folder not found (../shared/faces/300w/train)", file=sys.stderr)
        return 1
    files = sorted(args.train.glob("*.pts"))
    shapes = np.stack([read_pts(p) for p in files]).astype(np.float64)
    mean = procrustes_mean(shapes)
    template = frame(symmetrise(upright(mean)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "description": "68 iBUG landmarks (x, y) of the canonical face in a 224x224 crop, pixels",
        "size": SIZE,
        "source": f"Procrustes mean of {len(files)} 300-W train .pts, symmetrised, upright; "
                  f"jaw width (pt 0-16) = 0.62*224, bbox centre = (112, 124); "
                  "scripts/build_align_template.py",
        "landmarks": [[round(float(x), 3), round(float(y), 3)] for x, y in template],
    }
    pairs = doc.pop("landmarks")
    text = json.dumps(doc, indent=1)[:-2]  # drop the closing "\n}" to append the points
    text += ',\n "landmarks": [\n  ' + ",\n  ".join(json.dumps(p) for p in pairs) + "\n ]\n}\n"
    json.loads(text)
    args.out.write_text(text)
    lo, hi = template.min(0), template.max(0)
    print(f"{len(files)} shapes -> {args.out}; bbox x {lo[0]:.1f}..{hi[0]:.1f}, "
          f"y {lo[1]:.1f}..{hi[1]:.1f}; jaw width {np.linalg.norm(template[16] - template[0]):.1f} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
