"""Carry shipped R-Nets over to a new learned albedo model, without retraining.

    python tools/remap_rnet_albedo.py --old OLD_albedo_pca.npz [--new facerecon/resources/albedo_pca.npz]
        [facerecon/resources/rnet_default.pt facerecon/resources/rnet_alone.pt]

An R-Net regresses albedo coefficients δ of the albedo model it was trained with; under another
model the same numbers paint another face (and the default engine centres its albedo prior on
them). The albedo the net meant, ``m_old + B_old δ``, is affine in δ, and so is its least-squares
projection onto the new model: ``δ' = A δ + c`` with ``A = (B_newᵀ B_new)⁻¹ B_newᵀ B_old`` and
``c = (B_newᵀ B_new)⁻¹ B_newᵀ (m_old − m_new)`` over the vertices both cover. The net's δ outputs
are one linear layer's rows, so the map folds into that layer exactly (``W' = A W``,
``b' = A b + c``). Each model file is rewritten atomically, its ``train_config`` noting the
albedo model it now predicts for (``albedo_sha256``: the pipeline refuses a network whose
fingerprint is not the installed model's).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from facerecon.assets import resource_path
from facerecon.atomic import atomic_path
from facerecon.facemodel.albedo import LEARNED_FILE
from facerecon.nets.rnet import RNetConfig


def albedo_map(old: Path, new: Path) -> tuple[np.ndarray, np.ndarray]:
    """(A (K_new, K_old), c (K_new,)): δ' = A δ + c takes the old model's albedo to its
    least-squares nearest in the new one."""
    with np.load(old) as o, np.load(new) as n:
        if not np.array_equal(o["vertex_ids"], n["vertex_ids"]):
            raise ValueError(f"{old} and {new} cover different vertices")
        b_old = o["basis"].astype(np.float64).reshape(len(o["basis"]), -1).T
        b_new = n["basis"].astype(np.float64).reshape(len(n["basis"]), -1).T
        dm = (o["mean"].astype(np.float64) - n["mean"].astype(np.float64)).ravel()
    sol = np.linalg.lstsq(b_new, np.column_stack([b_old, dm]), rcond=None)[0]
    return sol[:, :-1], sol[:, -1]


def remap(model: Path, a: np.ndarray, c: np.ndarray, albedo_sha: str) -> None:
    """Fold δ' = A δ + c into ``model``'s output layer (in place, atomically)."""
    doc = torch.load(model, map_location="cpu", weights_only=True)
    sizes = RNetConfig(**doc["config"]).sizes()
    start = sizes["alpha"] + sizes["beta"]
    sl = slice(start, start + sizes["delta"])
    if a.shape != (sizes["delta"], sizes["delta"]):
        raise ValueError(f"{model}: {sizes['delta']} albedo outputs, the map is {a.shape}")
    st = doc["state_dict"]
    scale = st["scale"][0, sl].double().numpy()
    offset = st["offset"][0, sl].double().numpy()
    w, b = st["head.weight"].double(), st["head.bias"].double()
    at = torch.from_numpy(a)
    # δ = offset + scale·(W h + b)  →  δ' = A δ + c, written back in the same form
    inv = torch.from_numpy(1.0 / scale)[:, None]
    new_w = inv * (at @ (torch.from_numpy(scale)[:, None] * w[sl]))
    new_b = inv[:, 0] * (at @ torch.from_numpy(offset + scale * b[sl].numpy()) + torch.from_numpy(c - offset))
    w[sl], b[sl] = new_w, new_b
    st["head.weight"] = w.to(st["head.weight"].dtype)
    st["head.bias"] = b.to(st["head.bias"].dtype)
    extra = doc.setdefault("extra", {})
    extra["train_config"] = {**(extra.get("train_config") or {}), "albedo_sha256": albedo_sha}
    with atomic_path(model) as tmp:
        torch.save(doc, tmp)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", type=Path,
                    default=[resource_path("rnet_default.pt"), resource_path("rnet_alone.pt")])
    ap.add_argument("--old", type=Path, required=True, help="the albedo model the nets predict for now")
    ap.add_argument("--new", type=Path, default=resource_path(LEARNED_FILE), help="the albedo model to carry them to")
    args = ap.parse_args()
    a, c = albedo_map(args.old, args.new)
    sha = hashlib.sha256(args.new.read_bytes()).hexdigest()
    for m in args.models:
        remap(m, a, c, sha)
        print(f"{m}: albedo outputs carried to {args.new} (sha256 {sha[:12]}…)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
