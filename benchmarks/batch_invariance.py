"""Does a photo's result depend on the photos fitted beside it? (issue 10, item 4)

    python benchmarks/batch_invariance.py [--photos 8] [--json OUT] [--engine E --rnet CKPT] [FitConfig options]

The first photo of every 40th LFW person (people with ≥ 3 photos, name order) is fitted alone, in
batches of 2 and in one batch of 8 (the same photos, the same order). Each photo's meshes (ICT's
narrow face, identity + expression, model space, mm) are compared with its fit alone: mean and
max vertex distance. A fit that converges to the photo's own optimum gives ~0; the float noise of
a different batch size, amplified by the optimisation, shows up here.
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
from facerecon.fitting.engine import FitConfig
from facerecon.pipeline import FaceReconstructor


def photo_list(n: int) -> list[Path]:
    root = shared_path("faces", "lfw")
    people = sorted(p for p in root.iterdir() if p.is_dir())
    return [sorted(p.glob("*.jpg"))[0] for p in people[::40][:n]]


def prepared_photos(recon: FaceReconstructor, n: int) -> list:
    """(photo, first face) of the first ``n`` photos of :func:`photo_list`, prepared by ``recon``."""
    items = []
    for p in photo_list(n):
        photo, faces = recon.prepare(str(p))
        items.append((photo, faces[0]))
    return items


def setup(ap: argparse.ArgumentParser) -> tuple[argparse.Namespace, FitConfig, FaceReconstructor, list]:
    """Parse ``ap`` (its ``--photos`` option, plus the engine and fitting options added here),
    build the reconstructor and prepare the photos: ``(args, config, reconstructor, items)``."""
    add_engine_arguments(ap.add_argument_group("engine"))
    add_fitting_arguments(ap)
    args = ap.parse_args()
    set_cpu_threads(None)
    args.engine_options = engine_options(args)
    config = fit_config(args, args.engine_options["engine"])
    recon = FaceReconstructor(config=config, **args.engine_options)
    return args, config, recon, prepared_photos(recon, args.photos)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--batches", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--json")
    args, config, recon, items = setup(ap)
    model = recon.model

    def run(batch: int) -> tuple[list[np.ndarray], float]:
        out, t0 = [], time.process_time()
        for s in range(0, len(items), batch):
            out += [r.vertices(model) for r in recon.fit_prepared(items[s:s + batch])]
        return out, (time.process_time() - t0) / len(items)

    alone, cpu1 = run(1)
    result = {"config": asdict(config), "engine": engine_record(args.engine_options) or {"engine": "fit"},
              "photos": [str(p.relative_to(shared_path())) for p in photo_list(args.photos)],
              "cpu_seconds_per_photo": {"1": cpu1}, "vs_alone_mm": {}}
    for b in args.batches:
        got, cpu = run(b)
        d = [np.linalg.norm(g - a, axis=1) for g, a in zip(got, alone)]
        result["cpu_seconds_per_photo"][str(b)] = cpu
        result["vs_alone_mm"][str(b)] = {"mean_per_photo": [float(x.mean()) for x in d],
                                         "max_per_photo": [float(x.max()) for x in d],
                                         "mean": float(np.mean([x.mean() for x in d])),
                                         "worst_max": float(max(x.max() for x in d))}
        print(f"batch {b}: mean {result['vs_alone_mm'][str(b)]['mean']:.4f} mm, worst vertex "
              f"{result['vs_alone_mm'][str(b)]['worst_max']:.4f} mm; CPU s/photo {cpu:.2f} (alone {cpu1:.2f})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
