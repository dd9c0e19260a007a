"""How much of dlib's error on 300-W is a fixed offset: dlib's 68 points (as the pipeline detects
them) against the annotation, after mapping each photo's points onto a common template by the
similarity that fits dlib's own points (so nothing of the annotation enters the mapping).

    python benchmarks/dlib_offset.py [--cache dlib300w.npz] [--json OUT]

Learned on 300-W train, scored on test (NME over the outer-eye-corner distance, %): dlib as it is;
dlib plus the mean offset (template frame, carried back into each photo); dlib plus an offset
regressed (ridge) on the leading modes of its own normalised shape (a shape-dependent bias, e.g.
on turned faces); dlib moved by whole pixels. Also the offset's plain mean in photo pixels, to tell
a coordinate convention (a whole-pixel shift) from a bias in the shape.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facerecon.assets import shared_path
from facerecon.evaluation.landmarks import labelled_images, nme
from facerecon.imageio.align import apply_affine, similarity_transform
from facerecon.imageio.detect import FaceDetector, NoFaceError
from facerecon.imageio.pts import read_pts


def detect_all(folders: list[Path]) -> dict[str, np.ndarray]:
    """dlib's points (the face nearest the annotation), the annotation and the split of every photo."""
    det = FaceDetector()
    names, dlib, ann = [], [], []
    for folder in folders:
        for img, pts in labelled_images(folder):
            a = read_pts(pts)
            try:
                faces = det.detect(img, all_faces=True)
            except NoFaceError:
                continue
            dlib.append(min(faces, key=lambda f: np.abs(f.landmarks - a).mean()).landmarks)
            ann.append(a)
            names.append(f"{folder.name}/{img.name}")
    return {"names": np.array(names), "dlib": np.array(dlib, np.float64), "ann": np.array(ann, np.float64)}


def template(points: np.ndarray, rounds: int = 5) -> np.ndarray:
    """Generalised Procrustes mean of (N,68,2) shapes, centred, unit RMS radius."""
    t = points.mean(0)
    for _ in range(rounds):
        t = np.mean([apply_affine(similarity_transform(p, t), p) for p in points], 0)
        t = (t - t.mean(0)) / np.sqrt(((t - t.mean(0)) ** 2).sum(1).mean())
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, help="npz of the detections: read if present, written if not")
    ap.add_argument("--modes", type=int, default=8, help="shape modes the ridge offset may depend on")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.cache and args.cache.is_file():
        z = dict(np.load(args.cache))
    else:
        z = detect_all([shared_path("faces", "300w", "train"), shared_path("faces", "300w", "test")])
        if args.cache:
            np.savez_compressed(args.cache, **z)
    D, A = z["dlib"].astype(np.float64), z["ann"].astype(np.float64)
    train = np.array([str(n).startswith("train/") for n in z["names"]])
    test = ~train
    tpl = template(D[train])
    maps = [similarity_transform(d, tpl) for d in D]  # photo -> template, 2×3
    Dc = np.array([apply_affine(m, d) for d, m in zip(D, maps)])
    Ac = np.array([apply_affine(m, a) for a, m in zip(A, maps)])
    offset = (Ac - Dc).reshape(len(D), -1)

    def back(off: np.ndarray) -> np.ndarray:  # template-frame offsets -> photo pixels, added to dlib's
        return np.array([d + o.reshape(68, 2) @ np.linalg.inv(m[:, :2]).T for d, o, m in zip(D, off, maps)])

    X = Dc.reshape(len(D), -1)
    mu = X[train].mean(0)
    modes = np.linalg.svd(X[train] - mu, full_matrices=False)[2][: args.modes]
    F = np.c_[(X - mu) @ modes.T, np.ones(len(X))]
    reg = 0.1 * train.sum() * np.diag([1.0] * args.modes + [0.0])
    W = np.linalg.solve(F[train].T @ F[train] + reg, F[train].T @ offset[train])
    rows = {"dlib": D, "dlib + mean offset": back(np.tile(offset[train].mean(0), (len(D), 1))),
            f"dlib + offset on {args.modes} shape modes": back(F @ W),
            "dlib + (1, 0) px": D + np.array([1.0, 0.0]), "dlib + (1, 1) px": D + np.array([1.0, 1.0])}
    report = {"photos": {"train": int(train.sum()), "test": int(test.sum())},
              "mean_offset_px": {k: (A[m] - D[m]).mean((0, 1)).round(3).tolist() for k, m in (("train", train), ("test", test))}}
    print(f"300-W, dlib's points against the annotation: {train.sum()} train photos (offsets learned), "
          f"{test.sum()} test (scored)")
    print(f"mean annotation − dlib, photo px (x, y): train {report['mean_offset_px']['train']}, "
          f"test {report['mean_offset_px']['test']}")
    for name, P in rows.items():
        e = 100 * nme(P, A)
        report[name] = {"train": float(e[train].mean()), "test": float(e[test].mean()),
                        "test_median": float(np.median(e[test]))}
        print(f"{name:34s} NME train {e[train].mean():.3f} %   test {e[test].mean():.3f} % (median {np.median(e[test]):.3f})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
