"""Learn facerecon's statistical albedo model from de-lit real photos (issue 10, item 2).

    python tools/albedo_samples.py --set xlarge --engine default --register [--shard I/2]   # resumable, ~2 s a photo
    python tools/learn_albedo.py --samples work/albedo/xlarge --symmetric --max-off-hue 0.02   # the shipped model
    python tools/remap_rnet_albedo.py --old PREVIOUS_albedo_pca.npz   # carry the shipped R-Nets over

(The first model, 2026-12-02, was ``--set train`` without registration or symmetry: 150 photos;
the forty-eighth session's ``--set large --symmetric``: 706 photos; the forty-ninth session's, shipped,
1,824 of ``xlarge``'s 2,200.)

Each sample (one photo, per-vertex de-lit colours of ICT's face part) is completed where the photo
could not be trusted (not seen squarely; hair or background at the face's border: see
:func:`facerecon.facemodel.albedo.trusted_samples`) by its mirror partner, else its median skin
colour; the head and neck take that skin colour too. Samples with too little trusted skin, or
whose skin colour is a colour cast rather than skin (:func:`read_albedo_sample`'s ``skin_gamut``),
are left out. PCA over the completed samples gives the
mean and the modes (scaled by their std) written to ``facerecon/resources/albedo_pca.npz`` (fp16).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import numpy as np

from facerecon.assets import resource_path
from facerecon.facemodel import ict, load_face_model
from facerecon.facemodel.albedo import (LEARNED_FILE, off_skin_hue, pca_albedo, read_albedo_sample, sample_layout,
                                       save_learned_albedo)


def completed(path: Path, partner: np.ndarray, features: np.ndarray, n_head: int) -> tuple[np.ndarray, dict]:
    """One sample completed over the face part + ``n_head`` head/neck vertices (V,3)."""
    face, skin, info = read_albedo_sample(path, partner, features)
    return np.vstack([face, np.tile(skin, (n_head, 1))]), info


def smoothing_operator(faces: np.ndarray, ids: np.ndarray):
    """Sparse (V,V) row-normalised 1-ring average (the vertex itself included) over ``ids``."""
    import scipy.sparse as sp

    remap = -np.ones(faces.max() + 1, np.int64)
    remap[ids] = np.arange(len(ids))
    f = remap[faces]
    f = f[(f >= 0).all(1)]
    rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0], np.arange(len(ids))])
    cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2], np.arange(len(ids))])
    a = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(ids), len(ids))).tocsr()
    a.data[:] = 1.0
    return sp.diags(1.0 / np.asarray(a.sum(1)).ravel()) @ a


def sample_rows(folder: Path, smooth_passes: int = 2, min_trusted: float = 0.25, symmetric: bool = False,
                max_off_hue: float = 1.0) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Completed, smoothed samples of every ``*.npz`` in ``folder``: (rows (N,V,3) in [0.02, 0.98],
    the full-mesh vertex ids (V,) they cover — ICT's face part, then its head and neck —, the
    sources used, the sources skipped: too little trusted skin, a colour cast, or more than
    ``max_off_hue`` of the face part off skin hue (:func:`off_skin_hue`)). ``symmetric``:
    each face part averaged with its mirror image (a photo's side light, one brow hidden by a
    turned head, a shadow on one cheek are not the person's albedo)."""
    full = load_face_model("full")
    face_ids = np.arange(*ict.PARTS["face"])
    head_ids = np.arange(*ict.PARTS["head_neck"])
    mean = full.mean.numpy().astype(np.float64)
    partner, features = sample_layout(mean[face_ids], mean[full.landmark_idx.numpy()])
    ids = np.concatenate([face_ids, head_ids])
    smooth = smoothing_operator(full.faces.numpy(), ids)
    rows, used, skipped = [], [], []
    for f in sorted(Path(folder).glob("*.npz")):
        x, info = completed(f, partner, features, len(head_ids))
        ok = info["trusted"] >= min_trusted and info["skin_gamut"]
        if ok:
            for _ in range(smooth_passes):
                x = smooth @ x
            x = np.clip(x, 0.02, 0.98)
            if symmetric:
                x[: len(face_ids)] = 0.5 * (x[: len(face_ids)] + x[partner])
            ok = off_skin_hue(x[: len(face_ids)]).mean() <= max_off_hue
        (used if ok else skipped).append(info["source"])
        if ok:
            rows.append(x)
    return np.stack(rows) if rows else np.zeros((0, len(ids), 3)), ids, used, skipped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=Path, default=Path("work/albedo/xlarge"))
    ap.add_argument("--modes", type=int, default=80)
    ap.add_argument("--min-trusted", type=float, default=0.25,
                    help="skip samples with fewer trusted face vertices than this fraction")
    ap.add_argument("--smooth", type=int, default=2,
                    help="1-ring averaging passes over each sample (per-vertex photo noise)")
    ap.add_argument("--symmetric", action="store_true",
                    help="average each sample's face with its mirror image before PCA")
    ap.add_argument("--max-off-hue", type=float, default=1.0,
                    help="skip samples with more than this fraction of face vertices off skin hue (not R > G > "
                         "B - 0.03: a coloured light left in, stubble de-lit to blue-grey); 1: keep all")
    ap.add_argument("--out", type=Path, default=resource_path(LEARNED_FILE))
    args = ap.parse_args()
    rows, ids, used, skipped = sample_rows(args.samples, args.smooth, args.min_trusted, args.symmetric,
                                           args.max_off_hue)
    if len(rows) < 10:
        print(f"{args.samples}: {len(rows)} usable samples, need at least 10", file=sys.stderr)
        return 2
    mean, basis, std = pca_albedo(rows, args.modes)
    info = {"photos": len(rows), "skipped": skipped, "sources": used, "modes": int(len(std)),
            "made_by": "tools/learn_albedo.py", "date": datetime.date.today().isoformat(),
            "licence_note": "learned from UTKFace and 300-W photos (non-commercial research use)"}
    info["smoothing_passes"] = args.smooth
    info["symmetric"] = args.symmetric
    info["max_off_hue"] = args.max_off_hue
    save_learned_albedo(args.out, ids, mean, basis, std, info)
    print(f"{args.out}: {len(rows)} photos, {len(std)} modes, std {std[0]:.3f} .. {std[-1]:.4f}, "
          f"{args.out.stat().st_size / 2**20:.1f} MiB; first 5 modes hold "
          f"{(std[:5]**2).sum() / (std**2).sum():.0%} of the variance", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
