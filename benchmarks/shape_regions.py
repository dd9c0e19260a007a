"""Where on the face do photo fits of the Lee Perry-Smith renders miss? Vertex by vertex against
the face model's own best fit to the scan (``lps_capacity.py``'s 3D fit, prior 0.01), by region
and by axis, next to the ICT mean face.

    python benchmarks/lps_realskin.py --save-params FITS.npz [options]     # the photo fits
    python benchmarks/shape_regions.py FITS.npz [MORE.npz ...] [--json OUT]

Both meshes share ICT's topology, so the comparison needs no correspondence search: each mesh
(identity + expression, and identity only) is similarity-aligned (Umeyama) to the best fit over
the vertices within 95 mm of the nose tip, then the per-vertex distance (mm) is pooled by region
(nearest of the 68 landmarks within 15 mm: jaw, brows, nose, eyes, mouth; "other" is forehead
and cheeks away from every landmark) as an RMS, with its depth (model z) component. ``sz`` is the
least-squares depth stretch that would best match the best fit after alignment (> 1: the fit is
flatter than the scan). Tangential slips count here, unlike the scan's point-to-plane protocol,
so the figures are larger than ``lps_realskin``'s; they say where, not how much.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from facerecon.evaluation.scan import umeyama
from facerecon.facemodel import load_face_model
from facerecon.params import FaceParams

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lps_capacity import fit_to_scan  # noqa: E402

REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
           "mouth": range(48, 68)}


def region_labels(mean: np.ndarray, landmarks: np.ndarray, radius_mm: float = 15.0) -> np.ndarray:
    """Region name per vertex: that of the nearest landmark within ``radius_mm``, else "other"."""
    d = np.linalg.norm(mean[:, None] - landmarks[None], axis=2)
    near, dist = d.argmin(1), d.min(1)
    out = np.full(len(mean), "other", dtype=object)
    for name, idx in REGIONS.items():
        out[np.isin(near, list(idx)) & (dist < radius_mm)] = name
    return out


def compare(verts: np.ndarray, best: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-vertex offsets (N,3, mm) of ``verts`` from ``best`` over ``keep`` after similarity
    alignment, and the depth stretch sz that would best remove the remaining z offsets."""
    p, q = verts[keep].astype(np.float64), best[keep].astype(np.float64)
    s, R, t = umeyama(p, q, with_scale=True)
    a = s * p @ R.T + t
    pz, qz = a[:, 2] - a[:, 2].mean(), q[:, 2] - q[:, 2].mean()
    return a - q, float((pz * qz).sum() / (pz * pz).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fits", nargs="+", type=Path, help="lps_realskin.py --save-params files")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    face = load_face_model("face")
    mean = face.mean.numpy().astype(np.float64)
    lmk = face.landmark_idx.numpy()
    keep = np.linalg.norm(mean - mean[lmk[30]], axis=1) <= 95.0
    labels = region_labels(mean, mean[lmk])[keep]
    best, info = fit_to_scan(0.01, False)
    print(f"best 3D fit to the scan: |alpha| {info['alpha_norm']:.2f}, |beta| {info['beta_norm']:.2f}")

    def figures(offsets: list[np.ndarray], stretch: list[float]) -> dict:
        o = np.stack(offsets)  # M,N,3
        out = {}
        for name in [*REGIONS, "other", "all"]:
            m = np.ones(len(labels), bool) if name == "all" else labels == name
            out[name] = {"rms_mm": float(np.sqrt((o[:, m] ** 2).sum(-1).mean())),
                         "depth_rms_mm": float(np.sqrt((o[:, m, 2] ** 2).mean()))}
        out["sz"] = float(np.mean(stretch))
        return out

    results = {"mean face": figures(*map(list, zip(compare(mean, best, keep))))}
    for path in args.fits:
        d = np.load(path)
        fp = FaceParams.from_vector(torch.tensor(d["params"]).float(), FaceParams.zeros(1).sizes())
        with torch.no_grad():
            shapes = {"": face.shape(fp.alpha, fp.beta).numpy(), " neutral": face.shape(fp.alpha).numpy()}
        for tag, verts in shapes.items():
            offsets, stretch = zip(*(compare(v, best, keep) for v in verts))
            results[f"{path.name}{tag}"] = figures(list(offsets), list(stretch))

    cols = [*REGIONS, "other", "all"]
    print(f"{'':36s}" + "".join(f"{c:>13s}" for c in cols) + "       sz")
    for name, r in results.items():
        print(f"{name[:36]:36s}" + "".join(f"{r[c]['rms_mm']:6.2f} ({r[c]['depth_rms_mm']:4.2f})" for c in cols)
              + f"  {r['sz']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"best_fit": info, "results": results}, indent=1))


if __name__ == "__main__":
    main()
