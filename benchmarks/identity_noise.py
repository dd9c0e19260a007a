"""How much of a single photo's fitted identity is the person, and how much is that photo?

    python benchmarks/identity_noise.py --test TEST.npz --train TRAIN.npz [TRAIN.npz ...] [--json OUT]

Reads ``identity_lfw.py --cache`` files (5 photos per person, every photo fitted alone). No scan
is needed: the person's *own converged answer* (what the fitter would give with many photos of
them) is the reference, so these figures say how noisy one photo is, not how right the person is.
Distances are RMS over the ICT narrow face's vertices of the identity-only mesh (α alone), in mm,
as whole vertex offsets (``--metric surface``, the default) or along the mean face's vertex normals
only (``--metric normal``, as a point-to-plane scan error counts them), after removing
translation, rotation and scale (linearised about the mean face: what a similarity ICP removes).

From the ``--train`` people (none of them in ``--test``): the per-photo noise (within-person
spread), the spread of people's own answers, and the common offset of every fit from the ICT mean
face. On the ``--test`` people, leave-one-out: each photo's identity estimate against the mean of
the person's other 4 raw fits. That target is itself noisy by noise²/4 (independent of the photo
scored), which is subtracted, so the figure estimates the RMS distance from the person's own
converged answer; differences between estimators are unbiased (95 % bootstrap over people).

Estimators: the raw fit; the ICT mean face; the train fits' mean (a photo-independent face);
the fit shrunk towards that mean by the scalar s = spread² / (spread² + noise²); and the linear
least-squares (Wiener) estimate W·(α − m) + m with W = Σ_person (Σ_person + Σ_noise)⁻¹, the
covariances from the train people. Also printed: the cosine AUC of α (``identity_lfw.py``'s)
on the train people, and on the test people with α centred on the train fits' mean. With
``--scan-fits``, per ``lps_realskin.py --save-params`` file: one fit's distance from the Lee
Perry-Smith scan's own best fit (``lps_capacity.py``, prior 0.01), the fits' spread, their mean's
distance from it and from the train fits' mean, and the share of the scan's departure from that
mean which the fits' mean goes along.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from facerecon.atomic import atomic_path
from facerecon.facemodel import load_face_model
from facerecon.multi.identity import verification_auc


def model_basis(model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The identity-only mesh's mean (V,3), its offset per unit of each α mode (n_id,V,3), mm, and
    the mean's unit vertex normals (V,3)."""
    import trimesh

    with torch.no_grad():
        mean = model.shape(torch.zeros(1, model.n_id)).numpy()[0]
        basis = np.stack([model.shape(torch.eye(model.n_id)[i:i + 1]).numpy()[0] - mean for i in range(model.n_id)])
    normals = trimesh.Trimesh(mean, model.faces.numpy(), process=False).vertex_normals
    return mean.astype(np.float64), basis.astype(np.float64), np.asarray(normals, dtype=np.float64)


def similarity_metric(mean: np.ndarray, basis: np.ndarray, normals: np.ndarray | None = None) -> np.ndarray:
    """(K,K) G with αᵀGα = mean squared vertex offset (mm²) of the mesh mean + Σ α_k basis_k from
    the mean, after projecting out translation, small rotations and scale about the mean. With
    ``normals`` (V,3) only the offset along each vertex's normal counts, as a point-to-plane
    scan error counts it: a vertex sliding along the surface costs nothing."""
    n = mean.shape[0]
    c = mean - mean.mean(0)
    nuisance = [np.tile(e, (n, 1)) for e in np.eye(3)] + [np.cross(e, c) for e in np.eye(3)] + [c]

    def flat(x: np.ndarray) -> np.ndarray:
        return (x * normals).sum(-1) if normals is not None else x.reshape(*x.shape[:-2], -1)

    u, sv, _ = np.linalg.svd(np.stack([flat(x) for x in nuisance], 1), full_matrices=False)
    q = u[:, sv > 1e-9 * sv.max()]  # a nuisance that moves nothing along the normals drops out
    cols = flat(basis).T
    cols = cols - q @ (q.T @ cols)
    return cols.T @ cols / n


def load_people(paths: list[str], n_id: int) -> dict[str, np.ndarray]:
    """{person: (photos, n_id) α} from identity_lfw caches (keys faces/lfw/<person>/<file>)."""
    people: dict[str, list[np.ndarray]] = defaultdict(list)
    for path in paths:
        with np.load(path) as z:
            for key, vec in zip(z["keys"].tolist(), z["vectors"]):
                people[str(key).split("/")[-2]].append(vec[:n_id].astype(np.float64))
    return {p: np.stack(v) for p, v in people.items() if len(v) >= 2}


def covariances(people: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Grand mean, Σ_noise (within a person, per photo), Σ_person (people's own answers), photos per person."""
    groups = list(people.values())
    n = float(np.mean([len(g) for g in groups]))
    dev = np.concatenate([g - g.mean(0) for g in groups])
    noise = dev.T @ dev / sum(len(g) - 1 for g in groups)
    means = np.stack([g.mean(0) for g in groups])
    centre = means.mean(0)
    between = (means - centre).T @ (means - centre) / (len(groups) - 1)
    person = between - noise / n
    w, v = np.linalg.eigh((person + person.T) / 2)
    return centre, noise, (v * np.clip(w, 0, None)) @ v.T, n


def loo_errors(people: list[np.ndarray], estimators: dict, g: np.ndarray) -> tuple[dict[str, list[float]], float]:
    """Per person and estimator: mean over their photos of ‖estimate(photo) − mean of their other
    photos‖²_G (mm²); and the part of it that is the target's own noise (per-photo noise² / (k−1),
    k photos a person), to subtract for the distance to the person's converged answer."""
    err: dict[str, list[float]] = {k: [] for k in estimators}
    noise = []
    for a in people:
        k = len(a)
        others = (a.sum(0, keepdims=True) - a) / (k - 1)
        dev = a - a.mean(0)
        noise.append(np.einsum("ni,ij,nj->n", dev, g, dev).sum() / (k - 1))
        for name, f in estimators.items():
            d = f(a) - others
            err[name].append(float(np.einsum("ni,ij,nj->n", d, g, d).mean()))
    return err, float(np.mean(noise)) / (np.mean([len(a) for a in people]) - 1)


def scan_identity(prior: float = 0.01) -> np.ndarray:
    """α of the face model's best 3D fit to the Lee Perry-Smith scan (``lps_capacity.py``'s fit,
    with scale)."""
    import lps_capacity  # a sibling script: its directory is on sys.path when run as one
    from facerecon.evaluation.scans import load_lee_perry_smith

    return lps_capacity.fit_model_to_scan(*load_lee_perry_smith(), prior, True)[1]


def scan_figures(paths: list[str], g: np.ndarray, centre: np.ndarray, truth: np.ndarray) -> list[dict]:
    """Per ``lps_realskin.py --save-params`` file: how its fits' identities sit around the scan's."""
    def norm(x):
        return float(np.sqrt(x @ g @ x))

    rows = []
    for path in paths:
        a = np.load(path)["params"].astype(np.float64)[:, :len(truth)]
        mean = a.mean(0)
        away = truth - centre
        rows.append({"file": path, "fits": len(a),
                     "one_fit_from_scan_mm": float(np.sqrt(np.mean([(x - truth) @ g @ (x - truth) for x in a]))),
                     "spread_mm": float(np.sqrt(np.mean([(x - mean) @ g @ (x - mean) for x in a]))),
                     "mean_from_scan_mm": norm(mean - truth), "mean_from_population_mm": norm(mean - centre),
                     "share_of_scan_departure": float((mean - centre) @ g @ away / (away @ g @ away))})
        print(json.dumps(rows[-1]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test", nargs="+", required=True, help="identity_lfw caches of the people scored")
    ap.add_argument("--train", nargs="+", required=True, help="caches of other people (the covariances)")
    ap.add_argument("--metric", choices=("surface", "normal"), default="surface",
                    help="normal: offsets along the mean face's vertex normals only (as a point-to-plane scan "
                         "error counts them); surface: whole vertex offsets")
    ap.add_argument("--scan-fits", nargs="*", default=[],
                    help="lps_realskin.py --save-params files: their identities against the Lee Perry-Smith "
                         "scan's own best fit and the train population (about a minute for the scan's fit)")
    ap.add_argument("--also", nargs="*", default=[],
                    help="other identity_lfw caches: noise, spread and offset within each alone (no scoring)")
    ap.add_argument("--write-estimates", type=Path, metavar="DIR",
                    help="for each --scan-fits file, write its params with α replaced by each estimate "
                         "(<stem>_<estimate>.npz) for realskin_rescore.py")
    ap.add_argument("--boot", type=int, default=2000)
    ap.add_argument("--json")
    args = ap.parse_args()
    model = load_face_model("narrow")
    mean, basis, normals = model_basis(model)
    g = similarity_metric(mean, basis, normals if args.metric == "normal" else None)
    train, test = load_people(args.train, model.n_id), load_people(args.test, model.n_id)
    if set(train) & set(test):
        raise SystemExit(f"train and test share people: {sorted(set(train) & set(test))[:5]}")
    centre, noise, person, _ = covariances(train)
    tr_noise, tr_person = float(np.trace(g @ noise)), float(np.trace(g @ person))
    shrink = tr_person / (tr_person + tr_noise)
    wiener = person @ np.linalg.inv(person + noise)
    summary = {"train_people": len(train), "test_people": len(test),
               "noise_per_photo_mm": tr_noise ** 0.5, "person_spread_mm": tr_person ** 0.5,
               "common_offset_from_ict_mean_mm": float(centre @ g @ centre) ** 0.5, "scalar_shrink": shrink,
               # ICT's own population (α ~ N(0, I)) about its mean face, for scale
               "ict_population_spread_mm": float(np.trace(g)) ** 0.5}
    # the identity figure (cosine AUC of α) on the train people, and on the test people
    # with α centred on the train fits' mean (the offset common to every fit raises every cosine)
    for tag, people, shift in (("train", train, 0.0), ("test", test, 0.0), ("test_centred", test, centre)):
        owner = np.concatenate([[i] * len(a) for i, a in enumerate(people.values())])
        summary[f"auc_{tag}"] = verification_auc(np.concatenate(list(people.values())) - shift, owner)
    # how much the AUC of a subset the test's size varies: random draws of train people
    rng = np.random.default_rng(0)
    names = sorted(train)
    draws = []
    for _ in range(200):
        pick = rng.choice(len(names), min(len(test), len(names)), replace=False)
        alphas = [train[names[i]] for i in pick]
        owner = np.concatenate([[i] * len(a) for i, a in enumerate(alphas)])
        draws.append(verification_auc(np.concatenate(alphas), owner))
    summary["auc_train_draws_5_95"] = [float(x) for x in np.percentile(draws, [5, 95])]
    print(json.dumps(summary, indent=1))

    estimators = {
        "raw fit": lambda a: a,
        "ICT mean face": lambda a: np.zeros_like(a),
        "train fits' mean (photo-independent)": lambda a: np.broadcast_to(centre, a.shape),
        f"scalar shrink s={shrink:.2f}": lambda a: centre + shrink * (a - centre),
        "Wiener (matrix) shrink": lambda a: centre + (a - centre) @ wiener.T,
    }
    names = sorted(test)
    err, target_var = loo_errors([test[p] for p in names], estimators, g)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(names), (args.boot, len(names)))
    base = np.array(err["raw fit"])

    def rms_of(sq):
        """RMS mm to the person's own answer, from mean squared distances to the noisy target."""
        return np.sqrt(np.maximum(sq - target_var, 0))

    rows = []
    for name in estimators:
        e = np.array(err[name])
        diff = e - base
        # differences in RMS mm, bootstrap over people
        rms = rms_of(e.mean())
        lo, hi = np.percentile(rms_of(e[idx].mean(1)) - rms_of(base[idx].mean(1)), [2.5, 97.5])
        rows.append({"estimator": name, "rms_mm": float(rms), "vs_raw_mm": float(rms - rms_of(base.mean())),
                     "ci95": [float(lo), float(hi)], "mean_sq_diff_mm2": float(diff.mean())})
        print(f"{name:40s} {rms:.3f} mm   vs raw {rows[-1]['vs_raw_mm']:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    also = []
    for path in args.also:
        c, n, p, _ = covariances(load_people([path], model.n_id))
        also.append({"file": path, "noise_mm": float(np.trace(g @ n)) ** 0.5,
                     "spread_mm": float(np.trace(g @ p)) ** 0.5, "offset_mm": float(c @ g @ c) ** 0.5})
        print(json.dumps(also[-1] | {"noise_to_spread": also[-1]["noise_mm"] / also[-1]["spread_mm"]}))
    scan = []
    if args.scan_fits:
        truth = scan_identity()
        cosine = float(truth @ g @ centre) / float(truth @ g @ truth * (centre @ g @ centre)) ** 0.5
        print(f"the scan's best fit: {float(truth @ g @ truth) ** 0.5:.3f} mm from the ICT mean face, "
              f"{float((truth - centre) @ g @ (truth - centre)) ** 0.5:.3f} mm from the train fits' mean; cosine "
              f"with that mean's offset {cosine:.2f}")
        scan = scan_figures(args.scan_fits, g, centre, truth)
    for path in args.scan_fits if args.write_estimates else []:
        args.write_estimates.mkdir(parents=True, exist_ok=True)
        with np.load(path) as z:
            fits = dict(z)
        for tag, name in (("population", "train fits' mean (photo-independent)"),
                          ("shrink", f"scalar shrink s={shrink:.2f}"), ("wiener", "Wiener (matrix) shrink")):
            params = fits["params"].astype(np.float64)
            params[:, :model.n_id] = estimators[name](params[:, :model.n_id])
            with atomic_path(args.write_estimates / f"{Path(path).stem}_{tag}.npz") as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, **(fits | {"params": params.astype(np.float32)}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "rows": rows, "scan": scan, "also": also, "test": args.test,
                       "train": args.train}, f, indent=1)


if __name__ == "__main__":
    main()
