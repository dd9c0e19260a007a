"""How close can the face model get to the Lee Perry-Smith scan at all? Fits identity and
expression (and a similarity placement) straight to the scan's surface in 3D, then scores the
result with the same protocol as ``lps_fit.py`` (95 mm crop, ICP, point-to-plane, face part).

    python benchmarks/lps_capacity.py [--prior 0.01 0.1 1] [--json OUT]

This is the floor a photo-based fit can reach with this model; the gap between it, the
photo fits and the mean face says where the error comes from (model space vs. fitting).
"""

from __future__ import annotations

import argparse
import json

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


def fit_to_scan(prior: float, with_scale: bool, exp_weight: float = 10.0, rounds: int = 30,
                steps: int = 20) -> tuple[np.ndarray, dict]:
    """Identity+expression vertices (V,3, mm, model space) fitted to the Lee Perry-Smith scan
    (:func:`fit_model_to_scan`) and the fit's figures."""
    scan, scan_lmk = load_lee_perry_smith()
    verts, _, info = fit_model_to_scan(scan, scan_lmk, prior, with_scale, exp_weight, rounds, steps)
    return verts, info


def fit_model_to_scan(scan: trimesh.Trimesh, scan_lmk: np.ndarray, prior: float, with_scale: bool,
                      exp_weight: float = 10.0, rounds: int = 30, steps: int = 20
                      ) -> tuple[np.ndarray, np.ndarray, dict]:
    """The face model's identity+expression fitted to a scan's surface (mm; ``scan_lmk`` its 68
    iBUG landmarks, mm, for the start): vertices (V,3, mm, model space), identity α (n_id,) and
    figures.

    Minimises the mean squared point-to-plane distance (mm²) of the face part's vertices within
    95 mm of the nose tip to the scan, + ``prior`` (‖α‖² + exp_weight ‖β‖²); correspondences
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
    beta = torch.zeros(1, model.n_exp, dtype=torch.float64, requires_grad=True)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    t = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    log_s = torch.zeros((), dtype=torch.float64, requires_grad=True)
    R0t, t0t = torch.tensor(R0), torch.tensor(t0)
    s_init = float(s0) if with_scale else 1.0
    params = [alpha, beta, w, t] + ([log_s] if with_scale else [])
    opt = torch.optim.LBFGS(params, lr=1, max_iter=steps, line_search_fn="strong_wolfe")

    def place() -> torch.Tensor:
        v = model.shape(alpha, beta)[0][keep]
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
            loss = (r * r).mean() + prior * ((alpha ** 2).sum() + exp_weight * (beta ** 2).sum())
            loss.backward()
            return loss

        opt.step(closure)
    with torch.no_grad():
        verts = model.shape(alpha, beta)[0].numpy()
        info = {"alpha_norm": float(alpha.norm()), "beta_norm": float(beta.norm()),
                "placement_scale": float(s_init * torch.exp(log_s)) if with_scale else 1.0}
    return verts, alpha.detach()[0].numpy(), info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", type=float, nargs="+", default=[0.001, 0.01, 0.1, 1.0],
                        help="weights of ‖α‖² + 10‖β‖² against the mean squared distance (mm²)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    scan, scan_lmk = load_lee_perry_smith()
    model = load_face_model("face")
    faces = model.faces.numpy()
    lmk_idx = model.landmark_idx.numpy()
    rows = []
    for prior in args.prior:
        for with_scale in (False, True):
            verts, info = fit_to_scan(prior, with_scale)
            r = evaluate_scan(trimesh.Trimesh(verts, faces, process=False), scan, verts[lmk_idx], scan_lmk,
                              allow_scale=with_scale)
            rows.append({"prior": prior, "scale": with_scale, "rmse_mm": r.rmse_mm, "median_mm": r.median_mm,
                         "eval_scale": r.scale, **info})
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
