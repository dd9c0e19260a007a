"""Is one configuration's LFW identity AUC really above another's, or is it the people drawn?

    python benchmarks/identity_bootstrap.py A.npz B.npz [--resamples 200] [--seed 0] [--ari-seeds 10]

A and B are ``identity_lfw.py --cache`` files of the same photos. Paired bootstrap over people:
each resample draws the people with replacement (kept once each, so no person is paired with a
copy of itself), and scores both configurations' verification AUC (cosine of the identity
vectors α, same person vs different) on those people's photos. Prints both full-set AUCs and the
mean, 95 % interval and share above 0 of AUC(B) − AUC(A), then each one's K-means ARI (K = number of
people) as the mean over ``--ari-seeds`` K-means seeds (one seed's ARI moves by a few hundredths).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facerecon.multi.identity import verification_auc


def load_alpha(path: Path) -> dict[str, np.ndarray]:
    """Identity vectors α per photo key from an ``identity_lfw.py`` cache (layout's first entry)."""
    d = np.load(path, allow_pickle=True)
    layout = json.loads(str(d["layout"]))  # [["alpha", 80], ...], written by identity_lfw.py
    if layout[0][0] != "alpha":
        raise SystemExit(f"{path}: layout does not start with alpha ({layout[0]})")
    n = int(layout[0][1])
    return dict(zip(map(str, d["keys"]), d["vectors"].astype(np.float64)[:, :n]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--resamples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ari-seeds", type=int, default=10, help="K-means seeds whose ARI is averaged (0: none)")
    args = ap.parse_args()
    a, b = load_alpha(args.a), load_alpha(args.b)
    keys = sorted(set(a) & set(b))
    if len(keys) < len(a) or len(keys) < len(b):
        print(f"scoring the {len(keys)} photos both files hold ({len(a)} in A, {len(b)} in B)")
    person = np.array([Path(k).parent.name for k in keys])
    va, vb = np.stack([a[k] for k in keys]), np.stack([b[k] for k in keys])
    print(f"AUC A {verification_auc(va, person):.4f}  B {verification_auc(vb, person):.4f}")
    rng = np.random.default_rng(args.seed)
    people = np.unique(person)
    diffs = []
    for _ in range(args.resamples):
        pick = np.unique(rng.choice(people, len(people), replace=True))
        m = np.isin(person, pick)
        diffs.append(verification_auc(vb[m], person[m]) - verification_auc(va[m], person[m]))
    d = np.array(diffs)
    lo, hi = np.percentile(d, [2.5, 97.5])
    print(f"AUC(B) - AUC(A): mean {d.mean():+.4f}, 95 % interval {lo:+.4f} to {hi:+.4f}, "
          f"above 0 in {100 * (d > 0).mean():.0f} % of {args.resamples} resamples")
    if args.ari_seeds > 0:
        from identity_lfw import identity_figures

        ari = {n: np.mean([identity_figures(v, person, seed)["kmeans_ari"] for seed in range(args.ari_seeds)])
               for n, v in (("A", va), ("B", vb))}
        print(f"K-means ARI, mean of {args.ari_seeds} seeds: A {ari['A']:.3f}  B {ari['B']:.3f}")


if __name__ == "__main__":
    main()
