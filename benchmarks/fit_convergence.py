"""Has the fit converged after its stage-2 steps? (issue 10, item 4)

    python benchmarks/fit_convergence.py [--photos 3] [--steps 100 200 400] [--json OUT] [FitConfig options]

The first photos of :mod:`batch_invariance`'s list are fitted alone with stage 2 run for each
number of steps (same start, the rest of the configuration as given); each run's mesh (ICT's
narrow face, identity + expression, model space) is compared with the longest run's: mean vertex
distance, mm, next to the loss terms at the end. A converged fit moves little between the runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_invariance import photo_list, setup  # noqa: E402

from facerecon.assets import shared_path  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=3)
    ap.add_argument("--stage2", type=int, nargs="+", default=[100, 200, 400], help="stage-2 step counts")
    ap.add_argument("--json")
    args, config, recon, items = setup(ap)
    longest = max(args.stage2)
    rows = []
    for i, item in enumerate(items):
        meshes, losses = {}, {}
        for steps in args.stage2:
            recon.fitter.config = replace(config, steps=steps)
            r = recon.fit_prepared([item])[0]
            meshes[steps], losses[steps] = r.vertices(recon.model), r.losses
        moved = {s: float(np.linalg.norm(meshes[s] - meshes[longest], axis=1).mean()) for s in args.stage2}
        rows.append({"photo": i, "mm_from_longest": moved, "losses": losses})
        print(f"photo {i}: " + ", ".join(f"{s} steps {moved[s]:.3f} mm from {longest}" for s in args.stage2 if s != longest)
              + " | perceptual " + " → ".join(f"{losses[s]['perceptual']:.3f}" for s in args.stage2)
              + " | total " + " → ".join(f"{losses[s]['total']:.4f}" for s in args.stage2), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"config": asdict(config), "rows": rows,
                                               "photos": [str(p.relative_to(shared_path())) for p in photo_list(args.photos)]},
                                              indent=1))


if __name__ == "__main__":
    main()
