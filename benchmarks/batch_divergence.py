"""Where does a photo's fit alone part from the same photo's fit in a batch of 2? (issue 10, item 4)

    python benchmarks/batch_divergence.py [--every 5] [FitConfig options]

The first two photos of ``batch_invariance.py``'s list; the first is fitted alone and then beside
the second. After every Adam step (both stages, in order) it prints the largest difference of the
first photo's unknowns between the two runs, per group: α, β, δ, γ (the coefficient group of
the full stage; the landmark stage has α, β) and the rotation angles (radians). A difference that
stays at float noise (1e-7) means the optimisation damps it; one that grows step after step is
the optimisation amplifying the batch size's float noise.
"""

from __future__ import annotations

import argparse

import torch

from facerecon.cli import set_cpu_threads
from facerecon.config import add_arguments, from_args
from facerecon.fitting.engine import FitConfig
from facerecon.pipeline import FaceReconstructor

from batch_invariance import prepared_photos


def record_steps(run) -> list[list[torch.Tensor]]:
    """Run ``run()`` and return, after each Adam step, copies of the last group's parameters and
    of the first group's (rotation angles in both stages)."""
    from facerecon.fitting.adam import Adam

    steps: list[list[torch.Tensor]] = []
    original = Adam.step

    def step(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        steps.append([t.detach().clone() for t in self.groups[-1].tensors] + [self.groups[0].tensors[0].detach().clone()])
        return out

    Adam.step = step
    try:
        run()
    finally:
        Adam.step = original
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--every", type=int, default=5, help="print every N-th step (and each stage's first)")
    add_arguments(ap.add_argument_group("fitting"), FitConfig)
    args = ap.parse_args()
    set_cpu_threads(None)
    config = from_args(FitConfig, args)
    recon = FaceReconstructor(config=config)
    items = prepared_photos(recon, 2)
    alone = record_steps(lambda: recon.fit_prepared(items[:1]))
    batch = record_steps(lambda: recon.fit_prepared(items[:2]))
    print("step  max |difference| of photo 1's unknowns per group (coefficients…, angles)")
    for k, (a, b) in enumerate(zip(alone, batch)):
        if k % args.every and k not in (0, config.landmark_steps):
            continue
        diffs = [float((x[0] - y[0]).abs().max()) for x, y in zip(a, b)]
        stage = "landmark" if k < config.landmark_steps else "full"
        print(f"{k:4d} {stage:8s} " + " ".join(f"{d:.1e}" for d in diffs))


if __name__ == "__main__":
    main()
