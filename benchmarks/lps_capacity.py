"""How close can the face model get to the Lee Perry-Smith scan at all? Fits identity and
expression (and a similarity placement) straight to the scan's surface in 3D, then scores the
result with the same protocol as ``lps_fit.py`` (95 mm crop, ICP, point-to-plane, face part).

    python benchmarks/lps_capacity.py [--prior 0.01 0.1 1] [--expression free unit none] [--rounds N]
        [--regions [--offset CACHE ...]] [--json OUT]

This is the floor a photo-based fit can reach with this model; the gap between it, the
photo fits and the mean face says where the error comes from (model space vs. fitting).
``--expression free`` (the historical figure) lets the expression weights take any value, also
below zero, which no photo fit does; ``unit`` keeps them in [0, 1] as the photo fitter does, and
``none`` fits the identity alone: the floor for a neutral mesh. ``--regions`` splits each fit with
scale by feature (nose, eyes, mouth, brows, between; outer surface, 60 and 95 mm crops).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import trimesh

from facerecon.evaluation.scan import crop_mesh, evaluate_scan, umeyama
from facerecon.evaluation.surface import SurfaceIndex
from facerecon.evaluation.scans import load_lee_perry_smith
from facerecon.facemodel import load_face_model


def _rotation(w: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (3,3) of an axis-angle vector ``w`` (radians)."""
    theta = torch.sqrt((w * w).sum() + 1e-12)
    k = w / theta
    kx = torch.zeros(3, 3, dtype=w.dtype)
    kx[0, 1], kx[0, 2], kx[1, 0], kx[1, 2], kx[2, 0], kx[2, 1] = -k[2], k[1], k[2], -k[0], -k[1], k[0]
    return torch.eye(3, dtype=w.dtype) + torch.sin(theta) * kx + (1 - torch.cos(theta)) * kx @ kx


#: How the expression weights β may move in the 3D fit: "free" (any real value, the historical
#: figure), "unit" (each in [0, 1], as the photo fitter keeps them), "none" (β = 0: identity only).
EXPRESSION_MODES = ("free", "unit", "none")


def fit_to_scan(prior: float, with_scale: bool, exp_weight: float = 10.0, rounds: int = 30,
                steps: int = 20, expression: str = "free", landmark_weight: float = 0.0) -> tuple[np.ndarray, dict]:
    """Identity+expression vertices (V,3, mm, model space) fitted to the Lee Perry-Smith scan
    (:func:`fit_model_to_scan`) and the fit's figures."""
    scan, scan_lmk = load_lee_perry_smith()
    verts, _, info = fit_model_to_scan(scan, scan_lmk, prior, with_scale, exp_weight, rounds, steps, expression,
                                       landmark_weight)
    return verts, info


def fit_model_to_scan(scan: trimesh.Trimesh, scan_lmk: np.ndarray, prior: float, with_scale: bool,
                      exp_weight: float = 10.0, rounds: int = 30, steps: int = 20, expression: str = "free",
                      landmark_weight: float = 0.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """The face model's identity+expression fitted to a scan's surface (mm; ``scan_lmk`` its 68
    iBUG landmarks, mm, for the start): vertices (V,3, mm, model space), identity α (n_id,) and
    figures (``beta``: the expression weights, one per blendshape; ``landmark_mm``: the mean distance
    of the model's inner landmark vertices, placed, to the scan's points). ``expression``: one of
    :data:`EXPRESSION_MODES` ("unit" writes β = min(u², 1), u the optimised variable).

    Minimises the mean squared point-to-plane distance (mm²) of the face part's vertices within
    95 mm of the nose tip to the scan, + ``landmark_weight`` × the mean squared distance (mm²) of the
    inner landmark vertices to the scan's points (0: the surface alone, which may slide the model's
    brows and eyes millimetres along it), + ``prior`` (‖α‖² + exp_weight ‖β‖²); correspondences
    are the exact closest scan points, recomputed each round, pairs farther than 10 mm dropped.
    """
    model = load_face_model("face").double()
    mean = model.mean.numpy()
    lmk_idx = model.landmark_idx.numpy()
    keep = np.linalg.norm(mean - mean[lmk_idx[30]], axis=1) <= 95.0
    inner = np.arange(17, 68)[np.isfinite(scan_lmk[17:]).all(1)]  # a scan's unknown points are NaN rows
    s0, R0, t0 = umeyama(mean[lmk_idx[inner]], scan_lmk[inner], with_scale=True)
    index = SurfaceIndex(crop_mesh(scan, scan_lmk[30], 120.0), spacing_mm=1.0)

    alpha = torch.zeros(1, model.n_id, dtype=torch.float64, requires_grad=True)
    if expression not in EXPRESSION_MODES:
        raise ValueError(f"expression must be one of {EXPRESSION_MODES} (got {expression!r})")
    # "unit" starts u at 0.05 (β = 0.0025): u = 0 would be a stationary point of u²
    u = torch.full((1, model.n_exp), 0.05 if expression == "unit" else 0.0, dtype=torch.float64,
                   requires_grad=expression != "none")

    def expression_weights() -> torch.Tensor:
        return (u * u).clamp(max=1.0) if expression == "unit" else u
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    t = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    log_s = torch.zeros((), dtype=torch.float64, requires_grad=True)
    R0t, t0t = torch.tensor(R0), torch.tensor(t0)
    lmk_target = torch.tensor(scan_lmk[inner])
    s_init = float(s0) if with_scale else 1.0
    params = [alpha, w, t] + ([u] if expression != "none" else []) + ([log_s] if with_scale else [])
    opt = torch.optim.LBFGS(params, lr=1, max_iter=steps, line_search_fn="strong_wolfe")

    def place(ids: np.ndarray = keep) -> torch.Tensor:
        v = model.shape(alpha, expression_weights())[0][ids]
        s = s_init * torch.exp(log_s) if with_scale else 1.0
        return s * (v @ (_rotation(w) @ R0t).T) + t0t + t

    for _ in range(rounds):
        with torch.no_grad():
            p = place().numpy()
        q, d, tri, _ = index.closest(p)
        ok = torch.tensor(d < 10.0)
        q = torch.tensor(q)
        n = torch.tensor(index.face_normals[tri])

        def closure() -> torch.Tensor:
            opt.zero_grad()
            r = ((place() - q) * n).sum(-1)[ok]
            beta = expression_weights()
            loss = (r * r).mean() + prior * ((alpha ** 2).sum() + exp_weight * (beta ** 2).sum())
            if landmark_weight:
                loss = loss + landmark_weight * ((place(lmk_idx[inner]) - lmk_target) ** 2).sum(-1).mean()
            loss.backward()
            return loss

        opt.step(closure)
    with torch.no_grad():
        beta = expression_weights()
        verts = model.shape(alpha, beta)[0].numpy()
        info = {"alpha_norm": float(alpha.norm()), "beta_norm": float(beta.norm()), "beta": beta[0].tolist(),
                "landmark_mm": float((place(lmk_idx[inner]) - lmk_target).norm(dim=-1).mean()),
                "placement_scale": float(s_init * torch.exp(log_s)) if with_scale else 1.0}
    return verts, alpha.detach()[0].numpy(), info


def feature_split(verts: np.ndarray, crop_mm: float) -> dict:
    """Per-feature errors (``peer_scores.feature_errors``) of model-order vertices (V,3, mm) against
    the Lee Perry-Smith scan: outer surface, ICP with scale, ``crop_mm`` crop."""
    sys.path.insert(0, str(Path(__file__).parent))
    from peer_scores import feature_errors

    from facerecon.facemodel.surface import scoring_mesh

    scan, scan_lmk = load_lee_perry_smith()
    model = load_face_model("face")
    mesh, points = scoring_mesh(verts, model.faces.numpy(), model.landmark_idx.numpy(), "outer")
    r = evaluate_scan(mesh, scan, points, scan_lmk, allow_scale=True, crop_radius_mm=crop_mm)
    split = {f: {"rmse_mm": e[0], "signed_mm": e[1], "vertices": e[2]}
             for f, e in feature_errors(r, mesh.vertices, points).items()}
    return {"rmse_mm": r.rmse_mm, **split}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", type=float, nargs="+", default=[0.001, 0.01, 0.1, 1.0],
                        help="weights of ‖α‖² + 10‖β‖² against the mean squared distance (mm²)")
    parser.add_argument("--expression", choices=EXPRESSION_MODES, nargs="+", default=["free"],
                        help="free: β any value; unit: β in [0, 1] as the photo fitter keeps it; none: identity only")
    parser.add_argument("--rounds", type=int, default=30, help="correspondence rounds of the 3D fit")
    parser.add_argument("--landmark-weight", type=float, default=0.0,
                        help="also hold the model's inner landmark vertices to the scan's points, this weight on "
                             "their mean squared distance (mm²); 0: the surface alone (it slides the brows ~6 mm)")
    parser.add_argument("--regions", action="store_true",
                        help="also split the fit with scale by feature (outer surface, 60 and 95 mm crops), "
                             "next to the ICT mean face")
    parser.add_argument("--offset", nargs="+", metavar="CACHE",
                        help="with --regions: also split the mean face moved by half and all of the common "
                             "offset, the mean α over the people of these identity_lfw.py caches "
                             "(e.g. benchmarks/labels/lfw_complement383_U_*.npz)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    scan, scan_lmk = load_lee_perry_smith()
    model = load_face_model("face")
    faces = model.faces.numpy()
    lmk_idx = model.landmark_idx.numpy()
    names = list(model.expression_names)
    rows = []
    if args.regions:
        mean = model.mean.numpy().astype(np.float64)
        rows.append({"fit": "ICT mean face", **{f"regions_{c}": feature_split(mean, c) for c in (60, 95)}})
        print(json.dumps(rows[-1]), flush=True)
        if args.offset:
            sys.path.insert(0, str(Path(__file__).parent))
            from scan_case import population_offset  # a sibling script

            offset = population_offset([Path(c) for c in args.offset], model.n_id)
            for w in (0.5, 1.0):
                with torch.no_grad():
                    verts = model.shape(torch.as_tensor(w * offset, dtype=torch.float32).reshape(1, -1))[0]
                rows.append({"fit": f"ICT mean face + {w:g} x the common offset",
                             **{f"regions_{c}": feature_split(verts.numpy().astype(np.float64), c) for c in (60, 95)}})
                print(json.dumps(rows[-1]), flush=True)
    for expression in args.expression:
        for prior in args.prior:
            for with_scale in (False, True):
                verts, info = fit_to_scan(prior, with_scale, rounds=args.rounds, expression=expression,
                                          landmark_weight=args.landmark_weight)
                r = evaluate_scan(trimesh.Trimesh(verts, faces, process=False), scan, verts[lmk_idx], scan_lmk,
                                  allow_scale=with_scale)
                beta = np.array(info.pop("beta"))
                top = {names[i]: round(float(beta[i]), 3) for i in np.argsort(-np.abs(beta))[:6]}
                rows.append({"expression": expression, "prior": prior, "scale": with_scale, "rmse_mm": r.rmse_mm,
                             "median_mm": r.median_mm, "eval_scale": r.scale, **info, "largest_beta": top})
                if args.regions and with_scale:
                    rows[-1].update({f"regions_{c}": feature_split(verts, c) for c in (60, 95)})
                print(json.dumps(rows[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
