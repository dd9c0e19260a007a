"""Identity on real photos, no scan needed: does the fitted identity follow the person?

    python benchmarks/identity_lfw.py [--people 40] [--every 10] [--cache FILE] [--json OUT] [fitting options]
    python benchmarks/identity_lfw.py --complement [--shard I/N] --cache FILE ...   # the other people

Subset (fixed): the LFW people with ≥ 5 photos, sorted by name, every ``--every``-th (10) from the
first, the first ``--people`` (40) of them, their first 5 photos. Every photo is fitted alone
(the pipeline's default configuration unless options are given). Figures, over the per-photo
identity vectors α: verification AUC of cosine similarity (all same-person pairs against all
different-person pairs), the ratio of mean within-person to between-person cosine distance, and
the adjusted Rand index of K-means with K = number of people (10 initialisations). The ICT mean
face scores AUC 0.5 and ARI 0 by construction (every vector equal). A fit can be consistent and
wrong: this figure goes with the scan instruments, never alone.

Fits are cached per photo in ``--cache`` (compact .npz, float16 vectors), so an interrupted run
resumes and later sessions can reuse them (e.g. as fitter labels).

``--complement`` fits the LFW people with ≥ 5 photos that the subset leaves out instead (383 with
the defaults: a population that shares nobody with the subset, for ``identity_noise.py``);
``--shard I/N`` takes every N-th of the chosen people from the I-th, for parallel runs.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from facerecon.assets import shared_path
from facerecon.cli import set_cpu_threads
from facerecon.cli.engine_args import add_engine_arguments, add_fitting_arguments, engine_options, engine_record, fit_config
from facerecon.multi.identity import pair_similarities, verification_auc
from facerecon.params import FaceParams


def subset(people: int, every: int, photos: int = 5, complement: bool = False) -> list[tuple[str, list[Path]]]:
    """(name, photo paths) of the fixed LFW subset, or of every other person with enough photos."""
    root = shared_path("faces", "lfw")
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and len(list(d.glob("*.jpg"))) >= photos)
    chosen = names[::every][:people]
    if complement:
        chosen = [n for n in names if n not in set(chosen)]
    return [(n, sorted((root / n).glob("*.jpg"))[:photos]) for n in chosen]


def identity_figures(vectors: np.ndarray, owner: np.ndarray, seed: int = 0) -> dict[str, float]:
    """AUC, within/between cosine-distance ratio and K-means ARI of (N,D) vectors of ``owner`` people."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    v, s, same = pair_similarities(vectors, owner)
    labels = KMeans(n_clusters=len(set(owner)), n_init=10, random_state=seed).fit(v).labels_
    return {"auc": verification_auc(vectors, owner),
            "within_between_ratio": float((1 - s[same]).mean() / (1 - s[~same]).mean()),
            "kmeans_ari": float(adjusted_rand_score(owner, labels))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=40)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--complement", action="store_true", help="fit the people the subset leaves out instead")
    parser.add_argument("--shard", default="0/1", help="I/N: every N-th chosen person from the I-th")
    parser.add_argument("--cache", type=Path, help="per-photo fits (.npz), read and extended")
    parser.add_argument("--json")
    add_engine_arguments(parser.add_argument_group("engine"))
    add_fitting_arguments(parser)
    args = parser.parse_args()
    set_cpu_threads(None)
    from facerecon.atomic import atomic_path
    from facerecon.pipeline import FaceReconstructor

    options = engine_options(args)
    config = fit_config(args, options["engine"])
    # what made the cached fits: the fit config, and the R-Net engine when one is used
    config_doc = asdict(config) | ({"engine": engine_record(options)} if options["engine"] != "fit" else {})
    try:
        shard, shards = (int(x) for x in args.shard.split("/"))
        if not 0 <= shard < shards:
            raise ValueError
    except ValueError:
        parser.error(f"--shard {args.shard}: expected I/N with 0 <= I < N")
    chosen = subset(args.people, args.every, complement=args.complement)[shard::shards]
    root = shared_path()
    keys = [str(p.relative_to(root)) for _, ps in chosen for p in ps]
    owner = np.repeat(np.arange(len(chosen)), 5)
    cache: dict[str, np.ndarray] = {}
    if args.cache and args.cache.exists():
        with np.load(args.cache) as z:
            stored = json.loads(str(z["config"]))
            # fields added to FitConfig after a cache was made, at the values that reproduce it
            for key, value in (("albedo", "spectral"), ("lr_final", 1.0), ("antialias", False),
                               ("perceptual_blur", 0.0), ("start_at_prior", False), ("prior_offset", 0.0)):
                stored.setdefault(key, value)
            stored.get("weights", {}).setdefault("photo_robust", 0.0)
            if stored != json.loads(json.dumps(config_doc, default=str)):
                parser.error(f"{args.cache} holds fits made with another fitting configuration: "
                             "give another --cache file")
            cache = {k: z["vectors"][i].astype(np.float32) for i, k in enumerate(z["keys"].tolist())}
    recon = FaceReconstructor(config=config, **options)
    t0, fitted = time.perf_counter(), 0
    for b in range(0, len(keys), 5):
        todo = [k for k in keys[b:b + 5] if k not in cache]
        if not todo:
            continue
        done, failed = recon.reconstruct_many([root / k for k in todo], batch_size=5, progress=False)
        for f in failed:
            print(f"failed: {f.reason}", flush=True)
        for rec in done:
            cache[str(Path(rec.source).relative_to(root))] = rec.params.to_vector()[0].numpy()
        fitted += len(done)
        print(f"{b + 5}/{len(keys)} photos ({fitted} fitted, {(time.perf_counter() - t0) / max(fitted, 1):.1f} s each)",
              flush=True)
        if args.cache:
            ordered = sorted(cache)
            with atomic_path(args.cache, mkdir=True) as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, keys=np.array(ordered),
                                    vectors=np.stack([cache[k] for k in ordered]).astype(np.float16),
                                    layout=json.dumps(list(FaceParams.zeros(1).sizes().items())),
                                    config=json.dumps(config_doc, default=str))
    have = [i for i, k in enumerate(keys) if k in cache]
    vec = np.stack([cache[keys[i]] for i in have]).astype(np.float64)
    alpha = vec[:, :80]
    figures = {"photos": len(have), "people": int(len(set(owner[have]))), "alpha": identity_figures(alpha, owner[have])}
    print(json.dumps(figures, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": config_doc, "subset": [n for n, _ in chosen], "figures": figures}, f, indent=1)


if __name__ == "__main__":
    main()
