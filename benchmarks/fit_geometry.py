"""Where saved real-skin fits go wrong as a whole: their pose against the render's, and their
proportions against what the face model can reach.

    python benchmarks/fit_geometry.py pose FITS.npz [--scores FS.json]
    python benchmarks/fit_geometry.py proportions FITS.npz [MORE.npz ...] [--head H]

``pose``: each fit's head angles (degrees) less the render's nominal view (``real_skin.VIEWS``:
front 0, pitch +15°, yaw ±20° and ±40°). The scan's own frame is not ICT's, so the mean deviation
is an offset between the two frames; the spread about it is the fit's pose error. With
``--scores`` (a ``from_scan.py --json`` report of the same fits) it adds each render's error with
scale and how the size of the pitch error goes with it.

``proportions``: each fit's identity mesh (ICT's inner face, no expression) against the face
model's identity fitted to the head in 3D (``from_scan.py --capacity``'s floor): a similarity
Procrustes on the same vertices, then the least-squares scale along each of the floor's axes
(x across, y up, z towards the camera) divided by the overall one. 1 on every axis: the fit has
the floor's proportions; z 0.96: the fit is 4 % too deep for its width and height.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from facerecon.evaluation.real_skin import VIEWS
from facerecon.facemodel import ict
from facerecon.params import FaceParams

#: ICT's inner face ("face_narrow"): where the proportions are measured.
INNER_FACE = np.arange(*ict.PARTS["face_narrow"])


def pose_deviation(params: np.ndarray, views) -> np.ndarray:
    """(N,2) fitted pitch and yaw (degrees) less each render's nominal view; ``params`` (N,228)
    saved ``FaceParams`` vectors, ``views`` N names of ``real_skin.VIEWS``."""
    fp = FaceParams.from_vector(torch.as_tensor(np.asarray(params, np.float32)), FaceParams.zeros(1).sizes())
    angles = np.degrees(fp.angles.numpy().astype(np.float64))[:, :2]
    nominal = np.array([VIEWS[str(v)] for v in views], np.float64)
    return angles - nominal


def yaw_gain(deviation: np.ndarray, views) -> float:
    """Least-squares slope of fitted against nominal yaw over the turned views (1: turned as far
    as the render; above 1: turned further), the frames' yaw offset (the front views' mean) taken
    out; ``deviation`` from :func:`pose_deviation`."""
    nominal = np.array([VIEWS[str(v)][1] for v in views], np.float64)
    front = np.array([str(v) == "front" for v in views])
    fitted = nominal + deviation[:, 1] - (deviation[front, 1].mean() if front.any() else 0.0)
    turned = nominal != 0
    return float((fitted[turned] * nominal[turned]).sum() / (nominal[turned] ** 2).sum())


def axis_scales(vertices: np.ndarray, reference: np.ndarray) -> tuple[float, np.ndarray]:
    """(overall scale, (3,) per-axis scale / overall) mapping ``vertices`` (V,3) onto
    ``reference`` (V,3, the same vertices): rotation by orthogonal Procrustes about the
    centroids, then along each of the reference's axes the least-squares scale."""
    a = vertices - vertices.mean(0)
    b = reference - reference.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    a = a @ (u @ np.diag([1.0, 1.0, d]) @ vt)
    overall = float((a * b).sum() / (a * a).sum())
    return overall, (a * b).sum(0) / (a * a).sum(0) / overall


def _pose(args) -> None:
    z = np.load(args.fits)
    dev = pose_deviation(z["params"], z["view"])
    rows = None
    if args.scores:
        report = json.loads(Path(args.scores).read_text())
        entries = [v for k, v in report.items() if isinstance(v, dict) and "rows" in v]
        entry = report.get(Path(args.fits).name) or (entries[0] if len(entries) == 1 else None)
        if entry is None:
            raise SystemExit(f"{args.scores}: no entry named {Path(args.fits).name}")
        rows = {(r["texture"], r["view"]): r for r in entry["rows"]}
    spread = dev - dev.mean(0)
    print(f"{args.fits}: pitch {dev[:, 0].mean():+.2f}° ± {dev[:, 0].std():.2f}, "
          f"yaw {dev[:, 1].mean():+.2f}° ± {dev[:, 1].std():.2f} (mean ± sd over {len(dev)} renders)")
    print(f"  fitted yaw / the view's (least squares over the turned views): {yaw_gain(dev, z['view']):.3f}")
    scores = []
    for (pitch, yaw), t, v in zip(spread, z["texture"], z["view"]):
        line = f"  texture {int(t)} {str(v):9s} pitch {pitch:+6.1f}° yaw {yaw:+6.1f}°"
        if rows:
            s = rows[(int(t), str(v))]["scale"]
            scores.append(s)
            line += f"  with scale {s:.3f} mm"
        print(line)
    if scores:
        r = np.corrcoef(np.abs(spread[:, 0]), scores)[0, 1]
        print(f"correlation of |pitch error| with the render's error with scale: {r:+.2f}")


def _proportions(args) -> None:
    from from_scan import capacity_meshes, saved_meshes  # sibling script (main puts this folder on the path)

    from facerecon.facemodel import load_face_model

    model = load_face_model(region="full", albedo="learned", landmarks="300w-photo")
    head = args.head or str(np.load(args.fits[0]).get("head", "lps"))
    floor = capacity_meshes(model, head)["identity fitted to the scan"][INNER_FACE]
    with torch.no_grad():
        mean = model.shape(torch.zeros(1, model.id_basis.shape[0]), None)[0].numpy().astype(np.float64)
    overall, axes = axis_scales(mean[INNER_FACE], floor)
    print(f"floor: the model's identity fitted to {head} in 3D; scale, then x y z over it")
    print(f"  ICT mean face: {overall:.3f}  x {axes[0]:.3f}  y {axes[1]:.3f}  z {axes[2]:.3f}")
    for path in args.fits:
        fits = [axis_scales(v[INNER_FACE], floor) for _, _, v in saved_meshes(Path(path), model, neutral=True)]
        res = np.array([[*axes, overall] for overall, axes in fits])
        m, sd = res.mean(0), res.std(0)
        print(f"  {Path(path).name}: {m[3]:.3f}  x {m[0]:.3f}  y {m[1]:.3f}  z {m[2]:.3f}"
              f"  (sd {sd[0]:.3f} {sd[1]:.3f} {sd[2]:.3f}, {len(res)} fits)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("pose", help="fitted head angles against the render's view")
    p.add_argument("fits", help="lps_realskin.py --save-params file")
    p.add_argument("--scores", help="from_scan.py --json report of the same fits")
    q = sub.add_parser("proportions", help="per-axis scale of the fits' identity against the floor")
    q.add_argument("fits", nargs="+", help="lps_realskin.py --save-params files")
    q.add_argument("--head", help="the head the fits were made on (lps, lps-b, lps-c; default: as the first file says)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    (_pose if args.what == "pose" else _proportions)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
