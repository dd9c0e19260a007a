"""Recovery of known parameters: fit ``facerecon synth`` samples (random identity, expression,
albedo, light, pose up to ±60° yaw, real-photo backgrounds) and compare with the truth.

    python benchmarks/synth_fit.py [--count 16] [--json OUT] [fitting options]

The synthetic 2D landmarks are the model's fixed landmark vertices projected (no moving jaw
contour), given to the fitter with 1 px noise and its contour re-assignment off, so the
landmark definition matches the data. Figures: face-part vertex error of the fitted shape
(identity + expression, centred, mm) against the true one, the same for the mean face, and the
pose error in degrees.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch

from facerecon.cli import set_cpu_threads
from facerecon.config import add_arguments, from_args
from facerecon.synthesis import generate_batches
from facerecon.facemodel import load_face_model
from facerecon.fitting.engine import FitConfig, Fitter
from facerecon.nets.facenet import FaceNet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--json")
    add_arguments(parser.add_argument_group("fitting"), FitConfig)
    args = parser.parse_args()
    set_cpu_threads(None)  # the CLI's thread default, so the seconds match `facerecon` runs
    config = replace(from_args(FitConfig, args), contour=False)
    model = load_face_model(config.region, landmarks=config.landmarks)
    fitter = Fitter(model, facenet=FaceNet.from_package() if config.perceptual else None, config=config)
    face = torch.as_tensor(model.vertex_ids < 9409)
    g = torch.Generator().manual_seed(1)
    rows = []
    seconds = 0.0
    for batch in generate_batches(args.count, seed=123, batch_size=args.batch, model=model):
        lm = batch["landmarks2d"] + torch.randn(batch["landmarks2d"].shape, generator=g)
        t0 = time.perf_counter()
        res = fitter.fit(batch["image"], lm)
        seconds += time.perf_counter() - t0
        q = res.params
        with torch.no_grad():
            truth = batch["params"]
            true = model.shape(truth.alpha, truth.beta)[:, face]
            fit = model.shape(q.alpha, q.beta)[:, face]
            mean = model.mean[face][None].expand_as(true)

            def err(a: torch.Tensor) -> torch.Tensor:
                a = a - a.mean(1, keepdim=True)
                t = true - true.mean(1, keepdim=True)
                return (a - t).norm(dim=-1).mean(1)

            pose = (q.angles - truth.angles).abs().rad2deg()
            true_id = model.shape(truth.alpha)[:, face]
            fit_id = model.shape(q.alpha)[:, face]
            id_err = (fit_id - fit_id.mean(1, keepdim=True) - true_id + true_id.mean(1, keepdim=True)).norm(dim=-1).mean(1)
            id_mean = (mean - mean.mean(1, keepdim=True) - true_id + true_id.mean(1, keepdim=True)).norm(dim=-1).mean(1)
        for i in range(len(q.alpha)):
            rows.append({"yaw_deg": float(truth.angles[i, 1].rad2deg()), "fit_mm": float(err(fit)[i]),
                         "mean_face_mm": float(err(mean)[i]), "pose_err_deg": pose[i].tolist(),
                         "identity_fit_mm": float(id_err[i]), "identity_mean_face_mm": float(id_mean[i])})
    fit_mm = np.array([r["fit_mm"] for r in rows])
    mean_mm = np.array([r["mean_face_mm"] for r in rows])
    pose = np.array([r["pose_err_deg"] for r in rows])
    summary = {
        "samples": len(rows),
        "fit_vertex_error_mm": float(fit_mm.mean()), "mean_face_vertex_error_mm": float(mean_mm.mean()),
        "fit_better_than_mean_share": float((fit_mm < mean_mm).mean()),
        "identity_only_fit_mm": float(np.mean([r["identity_fit_mm"] for r in rows])),
        "identity_only_mean_face_mm": float(np.mean([r["identity_mean_face_mm"] for r in rows])),
        "pose_error_deg_mean": pose.mean(0).tolist(), "seconds_per_photo": seconds / len(rows),
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
