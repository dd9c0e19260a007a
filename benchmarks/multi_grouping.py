"""Grouping faces into people (``facerecon reconstruct --group``) on LFW mixtures.

    python benchmarks/multi_grouping.py [--people 5 20 100] [--photos 5] [--json OUT]
                                        [--vectors facenet x identity] [--fit-limit 20]

Subset (fixed, documented): LFW people with at least ``--photos`` photos, sorted by name, every
k-th person so that the largest mixture spreads over the alphabet; their first ``--photos`` photos.
A mixture of P people takes the first P of that list. Per mixture: adjusted Rand index (ARI) of
K-means with K given, and of the estimate (average-linkage cosine threshold) with the K it found.
FaceNet vectors need no fit; the fit's x and identity vectors (α, δ) need a fit per photo, so they
are measured on mixtures up to ``--fit-limit`` people.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from facerecon.assets import shared_path
from facerecon.cli import set_cpu_threads


def lfw_subset(people: int, photos: int, offset: int = 0) -> list[tuple[str, list]]:
    """The first ``people`` of the fixed list: (name, first ``photos`` photo paths). The list is
    every k-th name (k = number of eligible people // ``people``) starting at ``offset``: offset 0
    chose the defaults (FaceNet box, threshold), other offsets give disjoint held-out people."""
    root = shared_path("faces", "lfw")
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and len(list(d.glob("*.jpg"))) >= photos)
    step = max(1, len(names) // max(people, 1))
    chosen = names[offset % step::step][:people]
    return [(n, sorted((root / n).glob("*.jpg"))[:photos]) for n in chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, nargs="+", default=[5, 20, 100])
    parser.add_argument("--photos", type=int, default=5)
    parser.add_argument("--offset", type=int, default=1, help="which every-k-th list (0 tuned the defaults)")
    parser.add_argument("--vectors", nargs="+", default=["facenet"], choices=["facenet", "x", "identity"])
    parser.add_argument("--fit-limit", type=int, default=20, help="largest mixture fitted for x/identity vectors")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.45, 0.5, 0.55])
    parser.add_argument("--boxes", nargs="+", default=["0.1,0.12,0.9,0.92"],
                        help="crops of the aligned 224 face given to FaceNet (x0,y0,x1,y1 fractions)")
    parser.add_argument("--json")
    args = parser.parse_args()
    set_cpu_threads(None)
    from sklearn.metrics import adjusted_rand_score

    from facerecon.fitting import FitConfig
    from facerecon.imageio import ImageError, NoFaceError
    from facerecon.multi.aggregate import kmeans_features
    from facerecon.multi.grouping import group_vectors
    from facerecon.params import FaceParams
    from facerecon.pipeline import FaceReconstructor

    biggest = max(args.people)
    subset = lfw_subset(biggest, args.photos, args.offset)
    recon = FaceReconstructor(config=FitConfig())
    t0 = time.perf_counter()
    prepared, owner = [], []
    for i, (_, paths) in enumerate(subset):
        for p in paths:
            try:
                photo, faces = recon.prepare(p)
            except (ImageError, NoFaceError):
                continue
            prepared.append((photo, faces[0], str(p)))
            owner.append(i)
    owner = np.array(owner)
    print(f"{len(prepared)} faces of {biggest} people prepared in {time.perf_counter() - t0:.1f} s", flush=True)
    vectors: dict[str, np.ndarray] = {}
    if "facenet" in args.vectors:
        from facerecon.pipeline import Reconstruction

        fake = [Reconstruction(s, ph, pr, FaceParams.zeros(1), np.zeros((68, 2))) for ph, pr, s in prepared]
        for box in args.boxes:
            b = tuple(float(v) for v in box.split(","))
            t0 = time.perf_counter()
            vectors[f"facenet[{box}]"] = np.concatenate([recon.embed(fake[i:i + 64], b) for i in range(0, len(fake), 64)])
            print(f"FaceNet {box}: {1000 * (time.perf_counter() - t0) / len(fake):.1f} ms per face", flush=True)
    fit_vectors = [v for v in args.vectors if v != "facenet"]
    if fit_vectors:
        n_fit = int((owner < args.fit_limit).sum())
        t0 = time.perf_counter()
        recs = []
        for b in range(0, n_fit, 8):
            recs += recon.fit_prepared([(ph, pr) for ph, pr, _ in prepared[b:min(b + 8, n_fit)]])
            print(f"fitted {len(recs)}/{n_fit}", flush=True)
        params = FaceParams.cat([r.params for r in recs])
        print(f"fits: {(time.perf_counter() - t0) / n_fit:.2f} s per photo", flush=True)
        for v in fit_vectors:
            vectors[v] = kmeans_features(params, "all" if v == "x" else "identity")
    rows = []
    for kind, vec in vectors.items():
        for people in sorted(args.people):
            sel = owner < people
            if len(vec) < sel.sum():
                continue
            x, truth = vec[: sel.sum()], owner[sel]
            t0 = time.perf_counter()
            given = group_vectors(x, people)
            row = {"vectors": kind, "people": people, "faces": int(sel.sum()),
                   "ari_k_given": float(adjusted_rand_score(truth, given)),
                   "seconds_k_given": time.perf_counter() - t0,
                   "ari_k_given_linkage": float(adjusted_rand_score(truth, group_vectors(x, people, method="linkage")))}
            for th in args.thresholds:
                est = group_vectors(x, None, threshold=th)
                row[f"ari_estimated@{th}"] = float(adjusted_rand_score(truth, est))
                row[f"k_estimated@{th}"] = int(est.max() + 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"subset": [(n, [str(p) for p in ps]) for n, ps in subset], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
