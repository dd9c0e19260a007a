"""Measure the two box maps that let dlib's 68-point predictor work from a CNN (MMOD) detector box
(``facerecon.imageio.detect``), and check them on 300-W test.

1. CNN box → HOG box: on 300-W train photos (every ``--step``-th) whose largest HOG box scores
   ≥ 0.5 and overlaps a CNN box (IoU ≥ 0.3): the HOG box's centre offset and size relative to the
   CNN box's size (√area), medians → ``CNN_TO_HOG_BOX``.
2. 68 landmarks → HOG box: on the same photos, the predictor's landmarks in the HOG box; the box's
   centre offset from the centroid of points 17–67 and its size, in units of their RMS radius,
   medians → ``LANDMARK_TO_BOX``.
3. On 300-W test (the annotated .pts): landmark NME (outer eye corners) from the HOG box against
   the CNN box mapped by (1) and re-boxed by (2) 0–3 times, on the photos where both detectors find
   the face, and the photos only one of them finds.
4. False faces: 300-W train photos (every ``--step``-th) with the annotated face painted over in the
   photo's mean colour (as ``measure_detector_threshold.py``): how many still give a face, HOG
   alone against HOG with the CNN fallback (``FaceDetector``'s default).

    .venv/bin/python scripts/measure_cnn_boxes.py     # ~3 min on 2 cores
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import facerecon.imageio.detect as det_module
from facerecon.assets import shared_path
from facerecon.imageio.detect import FaceDetector, box_from_landmarks, hog_box_from_cnn, iou
from facerecon.imageio.load import load_image
from facerecon.imageio.pts import read_pts


def photos(folder: Path, step: int) -> list[tuple[Path, Path]]:
    out = []
    for pts in sorted(folder.glob("*.pts"))[::step]:
        img = next((pts.with_suffix(s) for s in (".jpg", ".png") if pts.with_suffix(s).exists()), None)
        if img is not None:
            out.append((img, pts))
    return out


def centre_size(box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, np.sqrt(max(0.0, x1 - x0) * max(0.0, y1 - y0))])


def nme(lm: np.ndarray, pts: np.ndarray) -> float:
    return float(np.linalg.norm(lm - pts, axis=1).mean() / np.linalg.norm(pts[36] - pts[45]) * 100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--step", type=int, default=4, help="use every STEP-th 300-W train photo")
    ap.add_argument("--skip-negatives", action="store_true", help="leave out part 4")
    args = ap.parse_args()
    root = shared_path("faces", "300w")
    det = FaceDetector()

    cnn_rows, lm_rows = [], []
    for img, _ in photos(root / "train", args.step):
        rgb = np.ascontiguousarray(load_image(img))
        hog = det.find_boxes(rgb)
        if not hog or hog[0][1] < 0.5:
            continue
        box = hog[0][0]
        h = centre_size(box)
        cnn = [c for c, _ in det.find_cnn_boxes(rgb) if iou(c, box) >= 0.3]
        if cnn:
            c = centre_size(cnn[0])
            cnn_rows.append(((h[0] - c[0]) / c[2], (h[1] - c[1]) / c[2], h[2] / c[2]))
        inner = det.landmarks(rgb, box)[17:68].astype(np.float64)
        centroid = inner.mean(0)
        r = np.sqrt(((inner - centroid) ** 2).sum(1).mean())
        lm_rows.append(((h[0] - centroid[0]) / r, (h[1] - centroid[1]) / r, h[2] / r))
    cnn_map, lm_map = np.median(cnn_rows, 0), np.median(lm_rows, 0)
    print(f"CNN_TO_HOG_BOX = ({cnn_map[0]:.4f}, {cnn_map[1]:.4f}, {cnn_map[2]:.4f})  "
          f"(n={len(cnn_rows)}, std {np.std(cnn_rows, 0).round(3).tolist()}; in use {det_module.CNN_TO_HOG_BOX})")
    print(f"LANDMARK_TO_BOX = ({lm_map[0]:.4f}, {lm_map[1]:.4f}, {lm_map[2]:.4f})  "
          f"(n={len(lm_rows)}, std {np.std(lm_rows, 0).round(3).tolist()}; in use {det_module.LANDMARK_TO_BOX})")

    both, hog_only, cnn_only, neither = [], 0, [], 0
    for img, pts_file in photos(root / "test", 1):
        rgb = np.ascontiguousarray(load_image(img))
        pts = read_pts(pts_file)
        hog = det.find_boxes(rgb)
        cnn = det.find_cnn_boxes(rgb)
        if not cnn:
            hog_only += bool(hog)
            neither += not hog
            continue
        lm = det.landmarks(rgb, hog_box_from_cnn(cnn[0][0]))
        rebox = [nme(lm, pts)]
        for _ in range(3):
            lm = det.landmarks(rgb, box_from_landmarks(lm))
            rebox.append(nme(lm, pts))
        if hog:
            both.append([nme(det.landmarks(rgb, hog[0][0]), pts), hog[0][1], *rebox])
        else:
            cnn_only.append(rebox)
    b = np.array(both)
    print(f"300-W test, {len(b)} photos both detectors find: NME (% of outer-eye distance), mean / share > 8 %")
    print(f"  HOG box: {b[:, 0].mean():.2f} / {(b[:, 0] > 8).mean() * 100:.1f} %")
    for k in range(4):
        print(f"  CNN box, mapped, re-boxed {k}×: {b[:, 2 + k].mean():.2f} / {(b[:, 2 + k] > 8).mean() * 100:.1f} %")
    weak = b[b[:, 1] < 0.5]
    if len(weak):
        print(f"  of them HOG score < 0.5 ({len(weak)}): HOG {weak[:, 0].mean():.2f}, CNN re-boxed 2× {weak[:, 4].mean():.2f}")
    c = np.array(cnn_only).reshape(-1, 4)
    print(f"only the CNN finds: {len(c)} photos, NME re-boxed 2× {c[:, 2].round(2).tolist()}; "
          f"only HOG: {hog_only}; neither: {neither}")
    if args.skip_negatives:
        return
    hog_only_det = FaceDetector(cnn_fallback=False)
    false = {"hog": 0, "hog+cnn": 0}
    negatives = photos(root / "train", args.step)
    for img, pts_file in negatives:
        rgb = np.ascontiguousarray(load_image(img))
        gt = read_pts(pts_file)
        c, half = (gt.min(0) + gt.max(0)) / 2, (gt.max(0) - gt.min(0)) * 0.75
        x0, y0 = np.maximum(0, c - half).astype(int)
        x1, y1 = (c + half).astype(int)
        rgb[y0:y1, x0:x1] = rgb.reshape(-1, 3).mean(0).astype(np.uint8)
        for name, d in (("hog", hog_only_det), ("hog+cnn", det)):
            false[name] += d(rgb) is not None
    print(f"face painted out, {len(negatives)} photos: a (false) face in {false['hog']} with HOG alone, "
          f"{false['hog+cnn']} with the CNN fallback")


if __name__ == "__main__":
    main()
