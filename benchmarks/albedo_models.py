"""How well do learned albedo models describe held-out real skin, and do their draws look like it?

    python benchmarks/albedo_models.py --heldout work/albedo/heldout MODEL.npz [MODEL.npz ...]

The two measures statistical face models are judged by (Styner et al. 2003; Booth et al.'s LSFM),
on de-lit textures of photos no model learned from (``tools/albedo_samples.py --set heldout``,
completed and smoothed exactly as ``tools/learn_albedo.py`` treats its own samples), over ICT's
face part (the head and neck of a sample are its one skin colour):

* generalisation — a held-out texture projected onto the model's first k modes: the RMS
  per-vertex RGB distance left (8-bit levels), k = 10, 40 and all;
* specificity — for random draws δ ~ N(0, 1) (seed 0, clamped to [0, 1] as rendered), the mean
  per-vertex RGB distance to the nearest held-out texture: draws that look like real skin lie near
  some real texture.

Also, for the draws next to the held-out textures' own: blotchiness (mean RGB distance between a
texture's 2-pass and 32-pass 1-ring averages, 8-bit levels: patches of about 0.5–2 cm; real
textures have them at brows, eyes and lips), off-skin-hue vertices (not R > G > B − 0.03) and the
skin's chroma spread (rg chromaticity of the skin, brows, eyes, nostrils and lips left out: mean
distance from its median, ×100). The model's mean alone (every draw the mean) is the first row.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # the sample loader of learn_albedo.py


def load(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertex ids (V,), mean (V,3), basis (K,V,3)) of a learned albedo file."""
    with np.load(path) as d:
        return d["vertex_ids"].astype(np.int64), d["mean"].astype(np.float64), d["basis"].astype(np.float64)


def generalisation(x: np.ndarray, mean: np.ndarray, basis: np.ndarray, k: int) -> float:
    """RMS per-vertex RGB distance (8-bit levels) of textures ``x`` (N,V,3) from their projection
    onto the first ``k`` modes (least squares; the modes need not be orthogonal)."""
    b = basis[:k].reshape(k, -1).T if k else np.zeros((mean.size, 0))
    r = (x - mean).reshape(len(x), -1).T
    if k:
        r = r - b @ np.linalg.lstsq(b, r, rcond=None)[0]
    d = np.linalg.norm(r.T.reshape(len(x), -1, 3), axis=2)
    return float(np.sqrt((d ** 2).mean()) * 255)


def specificity(draws: np.ndarray, x: np.ndarray) -> float:
    """Mean over ``draws`` (D,V,3) of the mean per-vertex RGB distance (8-bit levels) to the
    nearest texture of ``x`` (N,V,3)."""
    best = [min(np.linalg.norm(d - t, axis=1).mean() for t in x) for d in draws]
    return float(np.mean(best) * 255)


def main() -> int:
    from learn_albedo import sample_rows, smoothing_operator

    from facerecon.facemodel import ict, load_face_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path, help="learned albedo files (albedo_pca.npz)")
    ap.add_argument("--heldout", type=Path, required=True, help="folder of held-out samples")
    ap.add_argument("--draws", type=int, default=100)
    args = ap.parse_args()
    rows, ids, used, _ = sample_rows(args.heldout)
    lo, hi = ict.PARTS["face"]
    n_face = hi - lo                                  # the rows start with the face part
    x = rows[:, :n_face]
    smooth = smoothing_operator(load_face_model("full").faces.numpy(), ids[:n_face])
    from facerecon.facemodel.albedo import off_skin_hue, sample_layout

    def rough(t: np.ndarray) -> float:
        fine = t.copy()
        for _ in range(2):
            fine = np.stack([smooth @ a for a in fine])
        coarse = fine.copy()
        for _ in range(30):
            coarse = np.stack([smooth @ a for a in coarse])
        return float(np.linalg.norm(fine - coarse, axis=2).mean() * 255)

    full = load_face_model("full")
    _, features = sample_layout(full.mean.numpy()[lo:hi].astype(np.float64),
                                full.mean.numpy()[full.landmark_idx.numpy()].astype(np.float64))
    skin = ~features

    def chroma_spread(t: np.ndarray) -> np.ndarray:
        """Per texture: mean distance of its skin vertices' rg chromaticity from their median (×100)."""
        c = t[:, skin, :2] / np.maximum(t[:, skin].sum(-1, keepdims=True), 1e-6)
        return np.linalg.norm(c - np.median(c, axis=1, keepdims=True), axis=2).mean(1) * 100

    def off_hue(t: np.ndarray) -> float:
        return float(off_skin_hue(t).mean())

    print(f"{len(x)} held-out textures ({args.heldout}), {n_face} face-part vertices; "
          f"their blotchiness {rough(x):.2f}, off-hue {off_hue(x):.1%}, skin chroma spread "
          f"{np.median(chroma_spread(x)):.2f} (median; 90th percentile {np.percentile(chroma_spread(x), 90):.2f})")
    print("| model | modes | generalisation k=10 / 40 / all | specificity | blotchiness of draws | off-hue "
          "| skin chroma spread, median / 90th pct |")
    print("|---|---|---|---|---|---|---|")
    for i, path in enumerate(args.models):
        vid, mean, basis = load(path)
        if not np.array_equal(vid, ids):
            raise SystemExit(f"{path}: covers other vertices than the samples")
        mean, basis = mean[:n_face], basis[:, :n_face]
        if i == 0:
            gen0 = generalisation(x, mean, basis, 0)
            spec0 = specificity(mean[None], x)
            print(f"| its mean alone ({path.name}) | 0 | {gen0:.2f} | {spec0:.2f} | {rough(mean[None]):.2f} | "
                  f"{off_hue(mean[None]):.1%} | {chroma_spread(mean[None])[0]:.2f} |")
        k = len(basis)
        g = [generalisation(x, mean, basis, m) for m in (10, 40, k)]
        rng = np.random.default_rng(0)
        d = np.clip(mean + np.einsum("dk,kvc->dvc", rng.standard_normal((args.draws, k)), basis), 0, 1)
        print(f"| {path} | {k} | {g[0]:.2f} / {g[1]:.2f} / {g[2]:.2f} | {specificity(d, x):.2f} | "
              f"{rough(d):.2f} | {off_hue(d):.1%} | {np.median(chroma_spread(d)):.2f} / "
              f"{np.percentile(chroma_spread(d), 90):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
