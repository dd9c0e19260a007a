"""Re-score saved real-skin fits with their coefficients combined or altered, on the scan protocol
of ``lps_realskin.py`` (no fitting): what part of a result comes from identity, what from
expression, and what an average of two engines would score.

    python benchmarks/lps_realskin.py --no-neutral --save-params A.npz [options]      # once per engine
    python benchmarks/realskin_rescore.py A.npz B.npz --weights 0 0.25 0.5 [--beta blend|a|zero|shrink]
    python benchmarks/realskin_rescore.py A.npz --offset benchmarks/labels/lfw_complement383_U_*.npz \
        --weights -0.25 0 0.25 0.5 --beta a        # A moved along the common offset of many photos' fits

Row i of A and B must be the same render (same textures and views, checked). For each weight w the
mesh is the face model at α = (1−w)·α_A + w·α_B with expression β: ``blend`` the same mix of β,
``a`` A's own β, ``zero`` none (the neutral mesh), ``shrink`` A's β scaled by (1−w). With ``--offset`` B is A with
α − ō, ō the mean α over the people of ``identity_lfw.py --cache`` files (their common offset from
the mean face), so w is how much of ō is taken away (negative: added). Printed per view and on
average, rigid / with scale, mm (``--surface outer``: on the outer surface alone).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from facerecon.evaluation.scan import evaluate_scan
from facerecon.evaluation.scans import load_lee_perry_smith
from facerecon.facemodel import load_face_model
from facerecon.facemodel.surface import SURFACES, scoring_mesh
from facerecon.params import FaceParams


def without_offset(params: np.ndarray, offset: np.ndarray, amount: float = 1.0) -> np.ndarray:
    """Saved fits (N, D) with their identity α (the first ``len(offset)`` columns) moved by
    −amount × ``offset``; every other coefficient kept."""
    out = np.array(params, dtype=np.float64, copy=True)
    out[:, :len(offset)] -= amount * np.asarray(offset, np.float64)
    return out.astype(params.dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="lps_realskin.py --save-params file of the first engine")
    ap.add_argument("b", nargs="?", help="the same of the second engine (may be the first again)")
    ap.add_argument("--offset", nargs="+", metavar="CACHE",
                    help="instead of B: A less the mean α over the people of these identity_lfw.py caches")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.5, 1.0], help="weights w of B")
    ap.add_argument("--beta", choices=("blend", "a", "zero", "shrink"), default="blend")
    ap.add_argument("--surface", choices=SURFACES, default="full",
                    help="score every vertex, or the outer surface alone (no nostril or lip insides)")
    args = ap.parse_args()
    if (args.b is None) == (args.offset is None):
        ap.error("give one of B and --offset")
    a = np.load(args.a)
    if args.offset:
        sys.path.insert(0, str(Path(__file__).parent))
        from scan_case import population_offset  # a sibling script

        b = dict(a)
        b["params"] = without_offset(a["params"], population_offset([Path(c) for c in args.offset],
                                                                       FaceParams.zeros(1).sizes()["alpha"]))
    else:
        b = np.load(args.b)
    if not (np.array_equal(a["view"], b["view"]) and np.array_equal(a["texture"], b["texture"])):
        raise SystemExit(f"{args.a} and {args.b} hold different renders")
    sizes = FaceParams.zeros(1).sizes()
    face = load_face_model("face")
    faces, lmk = face.faces.numpy(), face.landmark_idx.numpy()
    scan, scan_lmk = load_lee_perry_smith()
    views = list(dict.fromkeys(a["view"].tolist()))
    for w in args.weights:
        per_view: dict[str, list] = {v: [] for v in views}
        for i, view in enumerate(a["view"].tolist()):
            pa = FaceParams.from_vector(torch.tensor(a["params"][i:i + 1]).float(), sizes)
            pb = FaceParams.from_vector(torch.tensor(b["params"][i:i + 1]).float(), sizes)
            alpha = (1 - w) * pa.alpha + w * pb.alpha
            beta = {"blend": (1 - w) * pa.beta + w * pb.beta, "a": pa.beta, "zero": None,
                    "shrink": (1 - w) * pa.beta}[args.beta]
            with torch.no_grad():
                verts = face.shape(alpha, beta)[0].numpy().astype(np.float64)
            mesh, points = scoring_mesh(verts, faces, lmk, args.surface)
            per_view[view].append([evaluate_scan(mesh, scan, points, scan_lmk, allow_scale=s).rmse_mm
                                   for s in (False, True)])
        everything = np.array([r for v in views for r in per_view[v]])
        print(f"w {w:.2f}, beta {args.beta}: mean {everything[:, 0].mean():.3f} / {everything[:, 1].mean():.3f} | "
              + "  ".join(f"{v} {np.mean(per_view[v], 0)[0]:.2f} / {np.mean(per_view[v], 0)[1]:.2f}" for v in views),
              flush=True)


if __name__ == "__main__":
    main()
