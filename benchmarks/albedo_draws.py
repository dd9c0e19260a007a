"""Do random draws of an albedo model look like skin? (issue 10, item 2)

    python benchmarks/albedo_draws.py [--draws 200]

For each albedo model (learned, spectral): ``--draws`` random δ ~ N(0,1) (seed 0), the per-vertex
albedo over ICT's face, head and neck (the "head" region's first 11,248 vertices) clamped to
[0,1] as rendered; reports the fraction of vertices off skin hue (not R > G > B − 0.03), the
fraction of draws with more than 2 % of them, clipped vertices, and the spread of a draw's mean
luminance (5th–95th percentile: skin tones).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from facerecon.facemodel import load_face_model
from facerecon.facemodel.albedo import off_skin_hue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=200)
    args = ap.parse_args()
    print("| albedo model | off-skin-hue vertices | draws with > 2 % off-hue | clipped vertices | mean luminance, 5–95 % |")
    print("|---|---|---|---|---|")
    for kind in ("spectral", "learned"):
        m = load_face_model("head", albedo=kind)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            a = m.albedo(torch.randn(args.draws, m.n_tex, generator=g)).clamp(0, 1).numpy()[:, :11248]
        off = off_skin_hue(a)
        clip = (a.max(-1) >= 0.999) | (a.min(-1) <= 0.001)
        luma = (a @ np.array([0.299, 0.587, 0.114])).mean(1)
        print(f"| {kind} | {off.mean():.1%} | {np.mean(off.mean(1) > 0.02):.1%} | {clip.mean():.1%} | "
              f"{np.percentile(luma, 5):.2f}–{np.percentile(luma, 95):.2f} |")


if __name__ == "__main__":
    main()
