"""Multi-image reconstruction on the real-skin renders: the Lee Perry-Smith scan painted with
held-out real skin (``lps_realskin.py``'s renders, nothing from facerecon's albedo model), each
texture seen from its 6 views as one person's photo set.

    python benchmarks/multi_realskin.py [--textures 4] [--sets 3 6] [--surface full|outer|both] [--json OUT]
        [engine and fitting options]

Per texture, every view is fitted alone; a set of N views takes the first N of front, yaw+20,
yaw−20, yaw+40, yaw−40, pitch+15; every aggregator of :mod:`facerecon.multi.aggregate` and the
joint fit combine the set. Every face is scored neutral (identity only: the scan is neutral) by
``evaluate_scan`` (95 mm crop, ICP, point-to-plane RMSE, mm), rigid and with scale, next to the
mean and the best single view of the same set and the ICT mean face; figures are means over the
textures (which differ in skin, light and occluders, not in the head).
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

sys.path.insert(0, str(Path(__file__).parent))
from lps_realskin import prepare, real_skin_renders, scene  # noqa: E402

from facerecon.cli import set_cpu_threads  # noqa: E402
from facerecon.cli.engine_args import add_engine_arguments, add_fitting_arguments, engine_options, engine_record, fit_config  # noqa: E402
from facerecon.evaluation.real_skin import VIEWS  # noqa: E402
from facerecon.evaluation.scan import evaluate_scan  # noqa: E402
from facerecon.facemodel import load_face_model  # noqa: E402
from facerecon.facemodel.surface import scoring_mesh  # noqa: E402
from facerecon.multi.aggregate import AGGREGATORS  # noqa: E402
from facerecon.pipeline import FaceReconstructor  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=Path, default=Path("work/albedo/heldout"))
    ap.add_argument("--textures", type=int, default=4)
    ap.add_argument("--sets", type=int, nargs="+", default=[3, 6])
    ap.add_argument("--methods", nargs="+", default=list(AGGREGATORS), choices=AGGREGATORS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--surface", choices=("full", "outer", "both"), default="full",
                    help="score every vertex of the face region (full), its outer surface alone (outer: no "
                         "nostril or lip insides; facerecon.facemodel.surface), or both")
    ap.add_argument("--json")
    add_engine_arguments(ap.add_argument_group("engine"))
    add_fitting_arguments(ap)
    args = ap.parse_args()
    set_cpu_threads(None)
    face = load_face_model("face")
    samples, pick, scan, scan_lmk, transfer, backgrounds = scene(face, args.samples, args.textures)
    options = engine_options(args)
    config = fit_config(args, options["engine"])
    recon = FaceReconstructor(config=config, **options, joint_config=fit_config(args, options["engine"], joint=True))

    surfaces = ("full", "outer") if args.surface == "both" else (args.surface,)

    def score(alpha: torch.Tensor) -> dict[str, list[float]]:
        """{surface: [rigid, with scale] RMSE, mm} of the neutral face of identity ``alpha``."""
        with torch.no_grad():
            verts = face.shape(alpha.detach().cpu().reshape(1, -1))[0].numpy()
        out = {}
        for surface in surfaces:
            pred, lm3d = scoring_mesh(verts, face.faces.numpy(), face.landmark_idx.numpy(), surface)
            out[surface] = [evaluate_scan(pred, scan, lm3d, scan_lmk, allow_scale=s).rmse_mm for s in (False, True)]
        return out

    mean_face = score(torch.zeros(1, face.n_id))
    for surface, (rigid, scaled) in mean_face.items():
        print(f"mean face, {surface}: {rigid:.3f} / {scaled:.3f} mm", flush=True)
    views = list(VIEWS)
    members: dict[int, list] = {}
    seconds: dict[int, list[float]] = {}
    for k, _, occluder, view, photo, lm_true in real_skin_renders(samples, pick, views, args.seed, transfer,
                                                                  scan_lmk, backgrounds):
        prep, _ = prepare(recon, photo, lm_true)
        t0 = time.perf_counter()
        members.setdefault(k, []).append(recon.fit_prepared([(photo, prep)])[0])
        seconds.setdefault(k, []).append(time.perf_counter() - t0)
        print(f"t{k} {view:8s} {occluder:7s} fitted ({seconds[k][-1]:.1f} s)", flush=True)
    singles = {k: [score(m.params.alpha) for m in ms] for k, ms in members.items()}
    rows = []
    for n in args.sets:
        # per[surface][method]: one [rigid, with scale] per texture
        per: dict[str, dict[str, list[list[float]]]] = {}
        time_spent: dict[str, float] = {}
        for k, ms in members.items():
            for surface in surfaces:
                s = np.array([one[surface] for one in singles[k][:n]])
                per.setdefault(surface, {}).setdefault("single, mean of the set", []).append(s.mean(0).tolist())
                per[surface].setdefault("single, best of the set", []).append(s.min(0).tolist())
            for method in args.methods:
                t0 = time.perf_counter()
                person = recon.combine(ms[:n], method, f"t{k}-{n}")
                time_spent[method] = time_spent.get(method, 0.0) + time.perf_counter() - t0 + sum(seconds[k][:n])
                got = score(person.params.alpha)
                for surface in surfaces:
                    per[surface].setdefault(method, []).append(got[surface])
                print(f"{n} views, t{k}, {method}: "
                      + ", ".join(f"{sf} {r:.3f} / {sc:.3f}" for sf, (r, sc) in got.items()) + " mm", flush=True)
        row = {"views": n, "mean_face": mean_face[surfaces[0]],
               "methods": {m: np.mean(v, axis=0).tolist() for m, v in per[surfaces[0]].items()},
               "per_texture": per[surfaces[0]], "seconds_per_set": {m: t / len(members) for m, t in time_spent.items()}}
        if args.surface == "both":  # the first surface's figures keep the keys they always had
            row.update({"mean_face_outer": mean_face["outer"], "per_texture_outer": per["outer"],
                        "methods_outer": {m: np.mean(v, axis=0).tolist() for m, v in per["outer"].items()}})
        rows.append(row)
        for surface in surfaces:
            key = "methods" if surface == surfaces[0] else "methods_outer"
            for m, (rigid, scaled) in row[key].items():
                print(f"{n} views  {surface:5s} {m:26s} {rigid:.3f} / {scaled:.3f} mm", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"config": asdict(config),
                                               "engine": engine_record(options) or {"engine": "fit"},
                                               "textures": [samples[i]["name"] for i in pick], "views": views,
                                               "surface": surfaces[0] if len(surfaces) == 1 else "both",
                                               "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
