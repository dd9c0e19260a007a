"""How sure is R-Net of each identity direction? A metric for engine rnet-prior's identity prior.

Engine ``rnet-prior`` centres the fitter's identity prior on R-Net's prediction α_R with the same
stiffness in every direction (‖α − α_R‖²). But R-Net's predictions vary between people in a few
directions only (their variance is about a tenth of the model's), and in the others it says
nearly the same for everyone. If α_R is the mean of α given the photo, the law of total variance
gives what is left unknown: Cov(α | photo) ≈ I − Cov(α_R) (the model's prior is N(0, I)). Its
inverse is a prior that is stiff where R-Net's prediction carries a person's identity and at the
model's own strength where it carries none:

    M = (I − Σ)⁻¹, eigenvalues of I − Σ held in [floor, 1]      (--model calibrated)

with Σ the covariance of α_R over real photos of people R-Net was not trained on (LFW people of
its validation split, none of the identity benchmark's). ``--model noise`` instead treats the
spread of one person's predictions as noise: I − Σ_between + Σ_within. ``--model loose`` is the
opposite of ``calibrated``: M = I − Σ itself (eigenvalues in [floor, 1]), a prior looser where
R-Net's predictions spread (measured closer to the real-skin scan; BENCHMARKS.md).

    python tools/identity_metric.py --out work/metric/calibrated.npy [--rnet CKPT] [--floor 0.1]

then ``--identity-metric work/metric/calibrated.npy`` on any fitting command (engine rnet-prior).
The predictions are cached beside the output (``.alpha.npz``), so other models and floors are
computed without running R-Net again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))


def val_people(min_photos: int = 2, max_photos: int = 20) -> list[tuple[str, list[Path]]]:
    """LFW people of R-Net's validation split, outside every benchmark subset, with their photos."""
    from rnet_data import FACES, excluded_lfw_people

    from facerecon.data.split import split_of

    skip = excluded_lfw_people()
    out = []
    for d in sorted((FACES / "lfw").iterdir()):
        photos = sorted(d.glob("*.jpg")) if d.is_dir() else []
        if d.name not in skip and split_of(d.name) == "val" and len(photos) >= min_photos:
            out.append((d.name, photos[:max_photos]))
    return out


def predict_identities(people: list[tuple[str, list[Path]]], rnet: str | None) -> tuple[np.ndarray, np.ndarray]:
    """R-Net's α (N, n_id) for every photo with a detected face, and its person index (N,)."""
    from tqdm import tqdm

    from facerecon.imageio import NoFaceError
    from facerecon.pipeline import FaceReconstructor, crop_tensors

    recon = FaceReconstructor(engine="rnet-prior", rnet=rnet)
    alphas, owner = [], []
    for i, (name, photos) in enumerate(tqdm(people, desc="R-Net on LFW val people", unit="person")):
        faces = []
        for p in photos:
            try:
                faces.append(recon.prepare(str(p))[1][0])
            except (NoFaceError, OSError, ValueError) as e:
                print(f"{p}: skipped ({e})", file=sys.stderr)
        if faces:
            crops, lmk, _ = crop_tensors(faces)
            alphas.append(recon.predict(crops, lmk).alpha.cpu().numpy())
            owner += [i] * len(faces)
    return np.concatenate(alphas).astype(np.float64), np.asarray(owner)


def identity_metric(alpha: np.ndarray, owner: np.ndarray, model: str = "calibrated", floor: float = 0.1
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The metric M (n, n) and the eigenvalues of the left-unknown covariance it inverts."""
    n = alpha.shape[1]
    if model in ("calibrated", "loose"):
        left = np.eye(n) - np.cov(alpha.T)
    elif model == "noise":
        people, inv = np.unique(owner, return_inverse=True)
        means = np.stack([alpha[owner == p].mean(0) for p in people])
        resid = alpha - means[inv]
        within = resid.T @ resid / (len(alpha) - len(people))
        between = np.cov(means.T) - within * len(people) / len(alpha)
        left = np.eye(n) - between + within
    else:
        raise ValueError(f"model must be 'calibrated', 'loose' or 'noise' (got {model!r})")
    evals, evecs = np.linalg.eigh((left + left.T) / 2)
    held = np.clip(evals, floor, 1.0)
    if model == "loose":
        return (evecs * held) @ evecs.T, held
    return (evecs / held) @ evecs.T, held


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="the metric, .npy (float32)")
    ap.add_argument("--rnet", help="R-Net checkpoint (default: the one engine rnet-prior ships with)")
    ap.add_argument("--model", choices=("calibrated", "loose", "noise"), default="calibrated")
    ap.add_argument("--floor", type=float, default=0.1,
                    help="smallest eigenvalue kept of the left-unknown covariance (the metric's largest is 1/floor)")
    args = ap.parse_args()
    cache = args.out.with_suffix(".alpha.npz")
    if cache.exists():
        data = np.load(cache)
        alpha, owner = data["alpha"].astype(np.float64), data["owner"]
    else:
        from facerecon.cli import set_cpu_threads

        set_cpu_threads(None)
        alpha, owner = predict_identities(val_people(), args.rnet)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, alpha=alpha.astype(np.float32), owner=owner)
    metric, held = identity_metric(alpha, owner, args.model, args.floor)
    np.save(args.out, metric.astype(np.float32))
    print(f"{len(alpha)} photos of {len(np.unique(owner))} people; left-unknown variance by direction: "
          f"smallest {np.round(np.sort(held)[:6], 2).tolist()}, mean {held.mean():.3f}; "
          f"metric eigenvalues {np.linalg.eigvalsh(metric).min():.2f}..{np.linalg.eigvalsh(metric).max():.2f} -> {args.out}")


if __name__ == "__main__":
    main()
