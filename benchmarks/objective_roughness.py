"""Is the fitter's objective smooth enough for a line-searched method to settle a fit? (issue 10, item 4)

    python benchmarks/objective_roughness.py [--which 1 3] [--iters 10 20 40 80] [--profile-only] [FitConfig options]

For each photo of ``batch_invariance.py``'s list (default engine, fitted alone and beside its
neighbour in a batch of 2):

1. **Polish**: both stage-2 results are handed to L-BFGS (strong-Wolfe line search) on the fixed
   objective the fit ends on — jaw contour held, FaceNet on every evaluation, the same photo
   alone — in rounds of 10, 20, 40 and 80 iterations. Were the objective smooth, both starts
   would reach one optimum and their meshes would meet.
2. **Profile**: from the alone fit, the loss along the negative gradient (all unknowns, then
   each group alone), each in the fit's own units (an Adam step: ``lr`` of its group), at
   steps of 0.001 to 0.3 of a unit; printed is the change over the first-order prediction.
   A smooth objective gives ~1 at small steps; a value far from 1 (or of the other sign) at
   0.01 of a unit is a jump.
3. **Jumps**: how many pixels of the render change coverage, or jump in colour by more than
   0.02 inside the face, when the face moves sideways by 0.01 mm.
"""

from __future__ import annotations

import argparse
import time

import torch

from facerecon.fitting.engine import rnet_prior
from facerecon.params import FaceParams
from facerecon.pipeline import FaceReconstructor, crop_tensors

from batch_invariance import setup

NAMES = ("angles", "trans", "alpha", "beta", "delta", "gamma")


def tensors(items) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return crop_tensors([p for _, p in items])


class Objective:
    """The fit's final objective for one photo, as a function of its unknowns in Adam-step units."""

    def __init__(self, recon: FaceReconstructor, item, start: FaceParams, prior: FaceParams,
                 perceptual: bool = True) -> None:
        self.fitter = recon.fitter
        cfg = self.fitter.config
        self.scale = {"angles": cfg.lr_pose, "trans": cfg.lr_trans, "alpha": cfg.lr, "beta": cfg.lr,
                      "delta": cfg.lr, "gamma": cfg.lr}
        self.images, self.landmarks, self.attention = tensors([item])
        self.prior, self.perceptual = prior, perceptual
        with torch.no_grad():
            self.target = self.fitter.loss.embed(self.images) if perceptual else None
            _, self.ids = self.fitter.forward.landmarks(start)

    def params(self, z: dict[str, torch.Tensor]) -> FaceParams:
        p = {n: z[n] * self.scale[n] for n in NAMES}
        return FaceParams(p["alpha"], p["beta"].clamp(0, 1), p["delta"], p["gamma"], p["angles"], p["trans"])

    def units(self, params: FaceParams) -> dict[str, torch.Tensor]:
        return {n: (getattr(params, n).detach() / self.scale[n]).clone().requires_grad_() for n in NAMES}

    def __call__(self, z: dict[str, torch.Tensor]) -> torch.Tensor:
        p = self.params(z)
        out = self.fitter.forward(p, landmark_ids=self.ids)
        terms = self.fitter.loss(out, p, self.images, self.landmarks, self.attention, perceptual=self.perceptual,
                                 target_embedding=self.target, prior=self.prior)
        return terms.total.sum()


def polish(objective: Objective, start: FaceParams, iters: int) -> tuple[FaceParams, float, float, int]:
    z = objective.units(start)
    opt = torch.optim.LBFGS([z[n] for n in NAMES], lr=1, max_iter=iters, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)
    evals = [0]

    def closure():
        opt.zero_grad()
        loss = objective(z)
        loss.backward()
        evals[0] += 1
        return loss

    before = float(closure())
    opt.step(closure)
    after = float(closure())
    return objective.params(z).map(lambda t: t.detach()), before, after, evals[0]


def profile(objective: Objective, start: FaceParams, groups, steps) -> list[float]:
    z = objective.units(start)
    loss = objective(z)
    loss.backward()
    g = {n: z[n].grad.detach() * (1.0 if n in groups else 0.0) for n in NAMES}
    norm = float(torch.sqrt(sum((g[n] ** 2).sum() for n in NAMES)))
    base, out = float(loss.detach()), []
    for s in steps:
        with torch.no_grad():
            moved = {n: z[n] - s * g[n] / norm for n in NAMES}
            out.append((float(objective(moved)) - base) / (-s * norm))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--which", type=int, nargs="+", default=[1, 3], help="indices into batch_invariance's list")
    ap.add_argument("--iters", type=int, nargs="+", default=[10, 20, 40, 80])
    ap.add_argument("--profile-only", action="store_true", help="skip the L-BFGS polish")
    ap.set_defaults(photos=8)
    args, _, recon, items = setup(ap)
    model = recon.model

    def fit(batch):
        c, l, a = tensors(batch)
        prior = rnet_prior(recon.predict(c, l))
        return recon.fitter.fit(c, l, a, prior=prior).params, prior

    def verts(p: FaceParams) -> torch.Tensor:
        with torch.no_grad():
            return model.shape(p.alpha, p.beta)[0]

    steps = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]
    for i in args.which:
        j = i ^ 1
        alone, prior = fit([items[i]])
        pair, _ = fit([items[min(i, j)], items[max(i, j)]])
        k = int(i > j)
        pair = pair.map(lambda t: t[k:k + 1].clone())
        print(f"photo {i}: stage 2 alone vs batch 2: {float((verts(alone) - verts(pair)).norm(dim=1).mean()):.4f} mm",
              flush=True)
        objective = Objective(recon, items[i], alone, prior)
        a, b = alone, pair
        for n in ([] if args.profile_only else args.iters):
            t0 = time.process_time()
            a, fa0, fa, ea = polish(objective, a, n)
            b, fb0, fb, eb = polish(objective, b, n)
            print(f"  +{n} L-BFGS iterations: loss alone {fa0:.5f} -> {fa:.5f} ({ea} evaluations), from batch 2 "
                  f"{fb0:.5f} -> {fb:.5f} ({eb}); meshes apart {float((verts(a) - verts(b)).norm(dim=1).mean()):.4f} mm; "
                  f"alone moved {float((verts(a) - verts(alone)).norm(dim=1).mean()):.3f} mm "
                  f"({time.process_time() - t0:.1f} CPU s)", flush=True)
        for per in (True, False):
            obj = Objective(recon, items[i], alone, prior, perceptual=per)
            for groups in (NAMES, *((n,) for n in NAMES)):
                ratios = profile(obj, alone, groups, steps)
                name = "all" if len(groups) > 1 else groups[0]
                print(f"  profile, FaceNet {'on ' if per else 'off'}, {name:6s}: change / first-order at "
                      f"{', '.join(f'{s:g}' for s in steps)} units: {' '.join(f'{r:+.2f}' for r in ratios)}", flush=True)
        with torch.no_grad():
            o0 = recon.fitter.forward(alone)
            moved = alone.map(lambda t: t.clone())
            moved.trans[0, 0] += 0.01
            o1 = recon.fitter.forward(moved, landmark_ids=o0.landmark_ids)
            both = (o0.mask[0, 0] > 0) & (o1.mask[0, 0] > 0)
            jump = (o1.image - o0.image).abs().amax(1)[0]
            print(f"  0.01 mm sideways: {int((o0.mask != o1.mask).sum())} pixels change coverage, "
                  f"{int(((jump > 0.02) & both).sum())} inside the face jump > 0.02 (largest {float(jump[both].max()):.3f})",
                  flush=True)


if __name__ == "__main__":
    main()
