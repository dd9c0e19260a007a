"""Multi-image reconstruction on a real head shape (the paper's Table 2, on our stand-in for MICC).

    python benchmarks/multi_lps.py [--sets 3 5 10] [--methods ...] [--json OUT] [fitting options]

The Lee Perry-Smith scan rendered from 10 views under 10 lights (yaw 0/±20/±40/±10/±30°, pitch
−10…+15°, SH lights with the key light from different sides — see ``VIEWS``), painted with
facerecon's own mean-skin albedo (an inverse crime for the photometric term: the real-skin renders
of the "Accuracy on real photos" issue will replace it). Each render is fitted alone (the
default single-photo pipeline); a set of N views takes the first N. Per set: every aggregator of
:mod:`facerecon.multi.aggregate` and the joint fit, against the best and the mean single photo of
the same set and the ICT mean face. Every mesh is scored neutral (identity only, β = 0: the scan
is neutral) by ``evaluate_scan`` (95 mm crop, ICP, point-to-plane RMSE, mm), rigid and with scale.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import trimesh

sys.path.insert(0, str(Path(__file__).parent))
from lps_fit import prepare_view, render_scan_photos  # noqa: E402

from facerecon.cli import set_cpu_threads  # noqa: E402
from facerecon.cli.engine_args import add_engine_arguments, add_fitting_arguments, engine_options, engine_record, fit_config  # noqa: E402
from facerecon.evaluation.scan import evaluate_scan  # noqa: E402
from facerecon.facemodel import load_face_model  # noqa: E402
from facerecon.multi.aggregate import AGGREGATORS  # noqa: E402
from facerecon.pipeline import FaceReconstructor  # noqa: E402

#: name: (pitch, yaw) degrees, in set order (a set of N views is the first N).
VIEWS = {"v0": (0, 0), "v1": (5, 30), "v2": (-5, -30), "v3": (10, 15), "v4": (-10, -40),
         "v5": (0, 40), "v6": (15, -15), "v7": (-5, 20), "v8": (5, -20), "v9": (0, 10)}


def lights(seed: int = 3) -> dict[str, list[float]]:
    """One SH light per view: ambient 0.6–0.9, a key light from a random front direction."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in VIEWS:
        d = rng.normal(size=3)
        d[2] = abs(d[2]) + 0.5
        d /= np.linalg.norm(d)
        mag = rng.uniform(0.2, 0.45)
        out[name] = [float(rng.uniform(0.6, 0.9)), d[1] * mag, d[2] * mag, d[0] * mag, 0, 0, -0.04, 0, 0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--methods", nargs="+", default=list(AGGREGATORS), choices=AGGREGATORS)
    parser.add_argument("--json")
    add_engine_arguments(parser.add_argument_group("engine"))
    add_fitting_arguments(parser)
    args = parser.parse_args()
    set_cpu_threads(None)
    photos, scan, scan_lmk = render_scan_photos(views=VIEWS, lights=lights())
    options = engine_options(args)
    config = fit_config(args, options["engine"])
    recon = FaceReconstructor(config=config, **options, joint_config=fit_config(args, options["engine"], joint=True))
    face_model = load_face_model("face")
    faces = face_model.faces.numpy()
    cache: dict[tuple, dict] = {}

    def score(alpha: torch.Tensor) -> dict:
        key = tuple(np.round(alpha.detach().cpu().numpy().ravel(), 6))
        if key not in cache:
            with torch.no_grad():
                verts = face_model.shape(alpha.detach().cpu().reshape(1, -1))[0].numpy()
            pred = trimesh.Trimesh(verts, faces, process=False)
            lm3d = verts[face_model.landmark_idx.numpy()]
            cache[key] = {s: evaluate_scan(pred, scan, lm3d, scan_lmk, allow_scale=s).rmse_mm
                          for s in (False, True)}
        return cache[key]

    mean_face = score(torch.zeros(1, face_model.n_id))
    print(f"mean face: {mean_face}", flush=True)
    members, seconds = [], []
    for name in VIEWS:
        photo, lm_true = photos[name]
        prep, source = prepare_view(recon, photo, lm_true)
        t0 = time.perf_counter()
        members.append(recon.fit_prepared([(photo, prep)])[0])
        seconds.append(time.perf_counter() - t0)
        print(f"{name} {VIEWS[name]}: {score(members[-1].params.alpha)} ({seconds[-1]:.1f} s, {source})", flush=True)
    rows = []
    for n in args.sets:
        subset = members[:n]
        singles = [score(m.params.alpha) for m in subset]
        row = {"views": n, "mean_face": mean_face,
               "single_best": {str(s): min(x[s] for x in singles) for s in (False, True)},
               "single_mean": {str(s): float(np.mean([x[s] for x in singles])) for s in (False, True)},
               "methods": {}, "seconds": {}}
        for method in args.methods:
            t0 = time.perf_counter()
            person = recon.combine(subset, method, f"lps-{n}")
            row["seconds"][method] = time.perf_counter() - t0 + (sum(seconds[:n]))
            row["methods"][method] = {str(k): v for k, v in score(person.params.alpha).items()}
            print(f"{n} views, {method}: {row['methods'][method]} ({row['seconds'][method]:.1f} s in all)", flush=True)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": asdict(config), "engine": engine_record(options) or {"engine": "fit"},
                       "views": VIEWS, "rows": rows,
                       "single": [{"view": v, **{str(k): x for k, x in score(m.params.alpha).items()}}
                                  for v, m in zip(VIEWS, members)]}, f, indent=1)


if __name__ == "__main__":
    main()
