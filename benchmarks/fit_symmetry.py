"""How much of a fitted face is its left-right asymmetric part, and is that part signal or noise?

ICT-FaceKit's mesh is exactly mirror-symmetric and each identity mode is either symmetric or
antisymmetric under the mirror (x -> -x with the mirrored vertex order). This splits cached fits'
identity vectors α into the two parts and scores each: LFW verification AUC of the parts
(``identity_lfw.py --cache`` file), and the real-skin scan distance of the meshes with the
antisymmetric modes set to 0 (``lps_realskin.py --save-params`` file), against the fits as they are.

    python benchmarks/fit_symmetry.py --lfw work/bench/id_ref.npz --realskin work/bench/rs_ref.npz
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

from facerecon.evaluation.scan import evaluate_scan
from facerecon.evaluation.scans import load_lee_perry_smith
from facerecon.facemodel import load_face_model
from facerecon.multi.identity import verification_auc


def mirror_signs(basis: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(n,) +1 for each mode of ``basis`` (n, V, 3) that the mirror leaves as it is, -1 for one it
    negates; raises if a mode is neither (the mesh or the basis is not mirror-symmetric)."""
    _, perm = cKDTree(mean).query(mean * [-1, 1, 1])
    mirrored = basis[:, perm] * [-1, 1, 1]
    cos = (mirrored * basis).sum((1, 2)) / (np.linalg.norm(basis, axis=(1, 2)) ** 2)
    if np.any(np.abs(np.abs(cos) - 1) > 0.05):
        raise ValueError(f"modes {np.where(np.abs(np.abs(cos) - 1) > 0.05)[0].tolist()} are not (anti)symmetric")
    return np.sign(cos)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", help="identity_lfw.py --cache file")
    ap.add_argument("--realskin", help="lps_realskin.py --save-params file")
    args = ap.parse_args()
    face = load_face_model("face")
    mean = face.mean.numpy().astype(np.float64)
    n_id, n_exp = face.id_basis.shape[0], face.exp_basis.shape[0]
    s = mirror_signs(face.id_basis.numpy().astype(np.float64).reshape(n_id, -1, 3), mean)
    print(f"antisymmetric identity modes ({int((s < 0).sum())} of {n_id}): {np.where(s < 0)[0].tolist()}")
    if args.lfw:
        d = np.load(args.lfw, allow_pickle=True)
        alpha = d["vectors"][:, :n_id].astype(np.float64)
        people = np.array([str(k).split("/")[-2] for k in d["keys"]])
        for name, a in (("as fitted", alpha), ("symmetric part", alpha * (s > 0)), ("antisymmetric part", alpha * (s < 0))):
            print(f"LFW {name}: AUC {verification_auc(a, people):.4f}")
    if args.realskin:
        scan, scan_lmk = load_lee_perry_smith()
        r = np.load(args.realskin, allow_pickle=True)
        p = torch.tensor(r["params"].astype(np.float32))
        res = {}
        for name, keep in (("as fitted", np.ones(n_id)), ("antisymmetric modes 0", (s > 0).astype(np.float64))):
            with torch.no_grad():
                verts = face.shape(p[:, :n_id] * torch.tensor(keep, dtype=torch.float32), p[:, n_id:n_id + n_exp]).numpy()
            res[name] = np.array([[evaluate_scan(trimesh.Trimesh(v, face.faces.numpy(), process=False), scan,
                                                 v[face.landmark_idx.numpy()], scan_lmk, allow_scale=sc).rmse_mm
                                   for sc in (False, True)] for v in verts])
            print(f"real skin, {name}: rigid / with scale {res[name][:, 0].mean():.3f} / {res[name][:, 1].mean():.3f} mm",
                  flush=True)
        d = res["antisymmetric modes 0"] - res["as fitted"]
        print(f"antisymmetric modes 0 - as fitted: rigid {d[:, 0].mean():+.4f}, with scale {d[:, 1].mean():+.4f} mm; "
              f"closer on {(d[:, 0] < 0).sum()} / {(d[:, 1] < 0).sum()} of {len(d)}")


if __name__ == "__main__":
    main()
