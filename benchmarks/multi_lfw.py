"""Multi-image reconstruction on real photos (LFW): is a face built from several photos of a
person more consistent, and does it explain an unseen photo of them better, than one built from
a single photo?

    python benchmarks/multi_lfw.py [--people 10] [--offset 1] [--json OUT] [fitting options]

Subset: as ``benchmarks/multi_grouping.py`` (LFW people with ≥ 5 photos, every k-th name from
``--offset``, first 5 photos each). Every photo is fitted alone once (default pipeline). Then:

- split-half consistency: the face from photos {1, 2} against the face from photos {3, 4}
  (identity shapes over the ICT face part, centred, mean vertex distance in mm), next to the
  same distance between one photo of each half, and between different people;
- leave-one-out: for each photo, the identity and albedo from the other four (each aggregator)
  placed into that photo's own pose, expression and light; scored on it by the 68-landmark error
  (crop pixels, against dlib's), the photometric term (skin-attention-weighted colour distance)
  and FaceNet similarity (render over photo vs photo) — against the identity of one other photo
  (mean over the four), the mean face, and the photo's own fit (which has seen it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from multi_grouping import lfw_subset  # noqa: E402

from facerecon.cli import set_cpu_threads  # noqa: E402
from facerecon.cli.engine_args import add_engine_arguments, add_fitting_arguments, engine_options, engine_record, fit_config  # noqa: E402
from facerecon.params import FaceParams  # noqa: E402
from facerecon.pipeline import FaceReconstructor  # noqa: E402

METHODS = ("mean", "median", "quality", "segments", "confidence")
HALF_METHODS = (*METHODS, "joint")  # joint refits: measured on the split halves only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--offset", type=int, default=1)
    parser.add_argument("--json")
    add_engine_arguments(parser.add_argument_group("engine"))
    add_fitting_arguments(parser)
    args = parser.parse_args()
    set_cpu_threads(None)
    options = engine_options(args)
    config = fit_config(args, options["engine"])
    recon = FaceReconstructor(config=config, **options, joint_config=fit_config(args, options["engine"], joint=True))
    model, fitter = recon.model, recon.fitter
    face = torch.as_tensor(model.vertex_ids < 9409)
    from facerecon.nets.facenet import FaceNet

    facenet = fitter.loss.facenet or FaceNet.from_package()

    def id_shape(alpha: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            v = model.shape(alpha.reshape(1, -1))[0, face]
        return v - v.mean(0)

    def dist(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((id_shape(a) - id_shape(b)).norm(dim=-1).mean())

    people = []
    t0 = time.perf_counter()
    for name, paths in lfw_subset(args.people, 5, args.offset):
        done, failed = recon.reconstruct_many(paths, batch_size=5, progress=False)
        if len(done) == 5:
            people.append((name, done))
        print(f"{name}: {len(done)} fitted ({time.perf_counter() - t0:.0f} s)", flush=True)

    def score(rec, alpha: torch.Tensor, delta: torch.Tensor) -> dict[str, float]:
        """Landmark error (px), photometric term and FaceNet similarity of ``rec``'s photo, with
        the identity/albedo given and the photo's own pose, expression and light."""
        p = rec.params.map(lambda t: t.clone())
        p.alpha, p.delta = alpha.reshape(1, -1), delta.reshape(1, -1)
        prep = rec.prepared
        img = torch.from_numpy(prep.crop).permute(2, 0, 1).float()[None] / 255.0
        att = torch.from_numpy(np.asarray(prep.attention, np.float32))[None, None]
        lmk = torch.from_numpy(np.asarray(prep.landmarks_crop, np.float32))[None]
        with torch.no_grad():
            out = fitter.forward(p)
            from facerecon.losses import photo_loss

            photo = float(photo_loss(out.image, img, out.mask, att)[0])
            comp = out.image * out.mask + img * (1 - out.mask)
            sim = float(torch.nn.functional.cosine_similarity(
                facenet.embed(comp, config.perceptual_box), facenet.embed(img, config.perceptual_box))[0])
            lm = float((out.landmarks - lmk).norm(dim=-1).mean())
        return {"landmark_px": lm, "photo": photo, "facenet_sim": sim}

    halves, loo = [], []
    for pi, (name, recs) in enumerate(people):
        params = FaceParams.cat([r.params for r in recs])
        a = {m: recon.combine(recs[:2], m, name).params for m in HALF_METHODS}
        b = {m: recon.combine(recs[2:4], m, name).params for m in HALF_METHODS}
        others = [FaceParams.cat([r.params for r in o]) for j, (_, o) in enumerate(people) if j != pi]
        row = {"person": name, "single_vs_single_mm": float(np.mean([dist(params.alpha[i], params.alpha[j])
                                                                     for i in (0, 1) for j in (2, 3)])),
               "to_other_people_mm": float(np.mean([dist(params.alpha[0], o.alpha[0]) for o in others]))}
        row |= {f"{m}_half_vs_half_mm": dist(a[m].alpha, b[m].alpha) for m in HALF_METHODS}
        halves.append(row)
        for k in range(5):
            rest = [r for j, r in enumerate(recs) if j != k]
            r = {"person": name, "photo": k, "own_fit": score(recs[k], recs[k].params.alpha, recs[k].params.delta),
                 "mean_face": score(recs[k], 0 * recs[k].params.alpha, 0 * recs[k].params.delta)}
            singles = [score(recs[k], o.params.alpha, o.params.delta) for o in rest]
            r["single_other"] = {key: float(np.mean([s[key] for s in singles])) for key in singles[0]}
            for m in METHODS:
                agg = recon.combine(rest, m, name).params
                r[m] = score(recs[k], agg.alpha, agg.delta)
            loo.append(r)
        print(json.dumps(row), flush=True)

    # the paper's K-means over every photo of every person (K = people): purity per person, by
    # which part of x is clustered; and grouping (ARI) by each kind of vector
    from sklearn.metrics import adjusted_rand_score

    from facerecon.multi.aggregate import kmeans_centroids, kmeans_features
    from facerecon.multi.grouping import group_vectors

    all_params = FaceParams.cat([r.params for _, recs in people for r in recs])
    owner = np.repeat(np.arange(len(people)), 5)
    kmeans = {}
    for features in ("all", "identity"):
        _, labels, purity = kmeans_centroids(all_params, owner, features)
        kmeans[features] = {"purity_mean": float(purity.mean()), "ari": float(adjusted_rand_score(owner, labels))}
    embeddings = recon.embed([r for _, recs in people for r in recs])
    for kind, vec in (("facenet", embeddings), ("x_unit", kmeans_features(all_params, "all")),
                      ("identity_unit", kmeans_features(all_params, "identity"))):
        kmeans[f"group_{kind}_ari_k_given"] = float(adjusted_rand_score(owner, group_vectors(vec, len(people))))

    def avg(rows: list[dict], key: str) -> dict:
        return {metric: float(np.mean([r[key][metric] for r in rows])) for metric in rows[0][key]}

    summary = {
        "people": len(people),
        "split_half_mm": {k: float(np.mean([h[k] for h in halves])) for k in halves[0] if k != "person"},
        "leave_one_out": {key: avg(loo, key) for key in ("own_fit", "mean_face", "single_other", *METHODS)},
        "kmeans_and_grouping": kmeans,
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"engine": engine_record(options) or {"engine": "fit"}, "summary": summary,
                       "halves": halves, "leave_one_out": loo,
                       "subset": [n for n, _ in people]}, f, indent=1)


if __name__ == "__main__":
    main()
