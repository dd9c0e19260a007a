"""Fit the skin / non-skin Gaussian naive Bayes pixel classifier from 300-W train.

Each training photo is aligned with its ground-truth landmarks exactly as at run time (224 crop).
Labels, in the crop:
- skin: inside the face outline (jaw points 0-16 closed over the brows 26..17), shrunk by a few
  pixels, minus the eyes, the brows (thick polylines) and the mouth (outer lip polygon);
- non-skin: outside the face outline grown by a margin, minus the forehead (above the brows,
  across the jaw width) and the neck (below the jaw): those are skin in most photos but lie
  outside the outline, so they are left unlabelled rather than called non-skin;
- never: pixels outside the original photo (the black padding of the 300-W crops and the
  black border of the warp).
Images are split by a seeded shuffle into fit / held-out sets (``--holdout``, 20 %); accuracy is
measured on every labelled pixel of the held-out images (and on 300-W test, when present).

    .venv/bin/python scripts/fit_skin_model.py              # writes facerecon/resources/skin_gnb.json
    .venv/bin/python scripts/fit_skin_model.py --compare    # held-out accuracy of each feature set
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from sklearn.naive_bayes import GaussianNB

from facerecon.assets import resource_path, shared_path
from facerecon.imageio.pts import read_pts
from facerecon.imageio.align import align
from facerecon.imageio.load import load_image
from facerecon.imageio.skin import FEATURES, SkinClassifier, skin_features

NONSKIN, SKIN, UNLABELLED = 0, 1, 255


def photo_region(image: np.ndarray, dark: int = 12) -> np.ndarray:
    """Mask (H,W) uint8 of the original photo inside a 300-W crop: everything but the black
    padding, which fills whole rows / columns at the borders (the photo is a rectangle)."""
    h, w = image.shape[:2]
    bright = image.max(axis=2) > dark
    rows = np.flatnonzero(bright.mean(axis=1) > 0.02)
    cols = np.flatnonzero(bright.mean(axis=0) > 0.02)
    mask = np.zeros((h, w), np.uint8)
    if len(rows) and len(cols):
        mask[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1] = 1
    return mask


def label_crop(lm: np.ndarray, valid: np.ndarray, size: int = 224) -> np.ndarray:
    """Label map (size,size) uint8: 1 skin, 0 non-skin, 255 unlabelled, from crop landmarks."""
    s = size / 224.0
    r = lambda v: max(1, int(round(v * s)))  # noqa: E731 - pixel sizes scale with the crop
    P = lambda idx: np.round(lm[list(idx)]).astype(np.int32)  # noqa: E731

    face = np.zeros((size, size), np.uint8)
    cv2.fillPoly(face, [P(list(range(17)) + list(range(26, 16, -1)))], 1)
    holes = np.zeros_like(face)
    for poly in (range(36, 42), range(42, 48), range(48, 60)):
        cv2.fillPoly(holes, [P(poly)], 1)
    for brow in (range(17, 22), range(22, 27)):
        cv2.polylines(holes, [P(brow)], False, 1, thickness=r(9))
    holes = cv2.dilate(holes, np.ones((r(7), r(7)), np.uint8))
    inner = cv2.erode(face, np.ones((r(7), r(7)), np.uint8))
    skin = (inner == 1) & (holes == 0)

    near = cv2.dilate(face, np.ones((r(21), r(21)), np.uint8))
    skinlike = np.zeros_like(face)
    x_left, x_right = lm[0, 0], lm[16, 0]
    brow_top = lm[17:27, 1].min()
    forehead = np.array([[x_left, brow_top + r(4)], [x_right, brow_top + r(4)],
                         [x_right, -size], [x_left, -size]])
    cv2.fillPoly(skinlike, [np.round(forehead).astype(np.int32)], 1)
    neck = np.concatenate([lm[2:15], [[lm[14, 0], 3 * size], [lm[2, 0], 3 * size]]])
    cv2.fillPoly(skinlike, [np.round(neck).astype(np.int32)], 1)
    nonskin = (near == 0) & (skinlike == 0)

    labels = np.full((size, size), UNLABELLED, np.uint8)
    ok = valid.astype(bool)
    labels[skin & ok] = SKIN
    labels[nonskin & ok] = NONSKIN
    return labels


def labelled_pixels(image_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(pixels (N,3) uint8, labels (N,) 0/1) of one 300-W photo, in its aligned crop."""
    image = load_image(image_path)
    gt = read_pts(image_path.with_suffix(".pts"))
    face = align(image, gt)
    valid = cv2.warpAffine(photo_region(image) * 255, face.M, (224, 224),
                           flags=cv2.INTER_NEAREST, borderValue=0)
    valid = cv2.erode((valid > 0).astype(np.uint8), np.ones((5, 5), np.uint8))
    labels = label_crop(face.landmarks, valid)
    keep = labels != UNLABELLED
    return face.crop[keep], labels[keep]


def gather(files: list[Path], per_image: int | None, rng: np.random.Generator):
    """Concatenate labelled pixels of many photos; ``per_image`` random pixels each (None: all)."""
    xs, ys = [], []
    for f in files:
        x, y = labelled_pixels(f)
        if per_image is not None and len(y) > per_image:
            idx = rng.choice(len(y), per_image, replace=False)
            x, y = x[idx], y[idx]
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def accuracy(model: SkinClassifier, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy and per-class recall of P(skin) > 0.5 on labelled pixels."""
    pred = model.probability(x) > 0.5
    yb = y.astype(bool)
    rec_skin = float(pred[yb].mean())
    rec_non = float((~pred[~yb]).mean())
    return {
        "accuracy": float((pred == yb).mean()),
        "balanced_accuracy": 0.5 * (rec_skin + rec_non),
        "skin_recall": rec_skin,
        "nonskin_recall": rec_non,
        "skin_fraction": float(yb.mean()),
        "n_pixels": int(len(y)),
    }


def fit(x: np.ndarray, y: np.ndarray, features: str) -> SkinClassifier:
    """Fit sklearn's GaussianNB on features of pixels; return the numpy-evaluated model."""
    gnb = GaussianNB().fit(skin_features(x, features).astype(np.float64), y)
    assert list(gnb.classes_) == [NONSKIN, SKIN]
    return SkinClassifier(
        features=features,
        prior=tuple(float(p) for p in gnb.class_prior_),
        mean=tuple(tuple(float(v) for v in row) for row in gnb.theta_),
        var=tuple(tuple(float(v) for v in row) for row in gnb.var_),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path, default=shared_path("faces", "300w", "train"))
    ap.add_argument("--test", type=Path, default=shared_path("faces", "300w", "test"))
    ap.add_argument("--features", default="ycrcb45", choices=sorted(FEATURES))
    ap.add_argument("--holdout", type=float, default=0.2, help="share of train images held out")
    ap.add_argument("--per-image", type=int, default=4000, help="random pixels per fit image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare", action="store_true", help="report every feature set, write nothing")
    ap.add_argument("--out", type=Path, default=resource_path("skin_gnb.json"))
    args = ap.parse_args(argv)
    if args.train is None or not args.train.is_dir():
        print("300-W train folder not found (../shared/faces/300w/train)", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    files = sorted(p for p in args.train.glob("*.jpg") if p.with_suffix(".pts").is_file())
    order = rng.permutation(len(files))
    n_hold = int(round(args.holdout * len(files)))
    held = [files[i] for i in sorted(order[:n_hold])]
    fit_files = [files[i] for i in sorted(order[n_hold:])]
    x_fit, y_fit = gather(fit_files, args.per_image, rng)
    x_hold, y_hold = gather(held, None, rng)
    test = None
    if args.test is not None and args.test.is_dir():
        test = gather(sorted(p for p in args.test.glob("*.jpg") if p.with_suffix(".pts").is_file()),
                      None, rng)
    print(f"fit: {len(fit_files)} images, {len(y_fit):,} pixels ({100 * y_fit.mean():.1f}% skin); "
          f"held out: {len(held)} images, {len(y_hold):,} pixels", file=sys.stderr)

    kinds = sorted(FEATURES) if args.compare else [args.features]
    results = {}
    for kind in kinds:
        model = fit(x_fit, y_fit, kind)
        res = {"heldout": accuracy(model, x_hold, y_hold)}
        if test is not None:
            res["test_300w"] = accuracy(model, *test)
        results[kind] = (model, res)
        h = res["heldout"]
        line = (f"{kind:7s} held-out acc {100 * h['accuracy']:.2f}%  balanced {100 * h['balanced_accuracy']:.2f}%"
                f"  (skin recall {100 * h['skin_recall']:.1f}%, non-skin recall {100 * h['nonskin_recall']:.1f}%)")
        if test is not None:
            line += f"  | 300w/test acc {100 * res['test_300w']['accuracy']:.2f}%"
        print(line)
    if args.compare:
        return 0
    model, res = results[args.features]
    doc = model.to_dict()
    doc["fitted_on"] = (f"{len(fit_files)} of {len(files)} 300-W train photos, aligned 224 crops, "
                        f"{len(y_fit):,} pixels; seed {args.seed}; scripts/fit_skin_model.py")
    doc["evaluation"] = {"heldout_train_images": len(held), **res}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
