"""How far forward a face's forehead sits relative to its inner face, against ICT's own population.

    python benchmarks/forehead_offset.py [--fits F.npz ...] [--lfw CACHE.npz] [--scan-alpha A.npy] [--json OUT]

The real-skin fits of the Lee Perry-Smith scan leave their largest error above the brows, in
every alignment and with any landmarks (BENCHMARKS.md, "Two settings re-measured under today's
default"). This tool asks whether that forehead is an unusual one, and how much of it a single
photo's fit recovers. Each identity α (ICT's head at α, no expression) is aligned to the mean face
by a similarity fitted on the inner face alone, so the forehead does not pull the alignment; its
*forehead offset* is then the mean displacement along the mean face's normals (mm; + = forward)
over the forehead (:mod:`facerecon.facemodel.forehead`, which the fitter's
``forehead_stiffness`` uses).

It prints the offset for ICT's population (α ~ N(0, I), its spread is what "unusual" means), the
face model's own 3D fit to the scan (``lps_realskin.capacity_identity`` with its landmarks held,
or ``--scan-alpha``), each ``lps_realskin.py --save-params`` file per view, an ``identity_lfw.py``
cache (single LFW photos), and the photo population's common offset ō of the default prior
(``facerecon/resources/identity_offset.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from facerecon.facemodel import load_face_model
from facerecon.facemodel.forehead import ForeheadDepth

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fits", nargs="*", default=[], type=Path, help="lps_realskin.py --save-params files")
    ap.add_argument("--lfw", type=Path, help="an identity_lfw.py cache (single-photo fits)")
    ap.add_argument("--scan-alpha", type=Path, help="the scan's 3D-fit identity (.npy) instead of fitting it")
    ap.add_argument("--samples", type=int, default=2000, help="draws of ICT's population")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    model = load_face_model("narrow", albedo="learned", landmarks="300w-photo")
    off = ForeheadDepth(model)
    n_id = model.id_basis.shape[0]
    out: dict = {"forehead_vertices": int(off.forehead.sum()), "inner_vertices": int(off.inner.sum())}
    rng = np.random.default_rng(0)
    pop = np.array([off(rng.standard_normal(n_id)) for _ in range(args.samples)])
    out["population"] = {"mean": float(pop.mean()), "sd": float(pop.std())}
    print(f"ICT's population (α ~ N(0, I), {args.samples} draws): {pop.mean():+.2f} mm, sd {pop.std():.2f}")

    if args.scan_alpha is not None:
        scan_alpha = np.load(args.scan_alpha).ravel()
    else:
        from lps_realskin import CAPACITY_LANDMARK_WEIGHT, capacity_identity

        from facerecon.evaluation.scans import load_lee_perry_smith

        scan_alpha = capacity_identity(*load_lee_perry_smith("lps"), CAPACITY_LANDMARK_WEIGHT)[0].numpy()
    scan = off(scan_alpha)
    z = (scan - pop.mean()) / pop.std()
    out["scan"] = {"offset": scan, "z": float(z), "population_share_above": float((pop > scan).mean())}
    print(f"the scan's 3D fit: {scan:+.2f} mm (z {z:+.2f}; {100 * (pop > scan).mean():.1f} % of the population above)")

    centre = json.loads((ROOT / "facerecon" / "resources" / "identity_offset.json").read_text())
    common = off(np.asarray(centre["alpha"], np.float64))
    out["common_offset"] = common
    print(f"the photo population's common offset ō: {common:+.2f} mm (the default prior's centre moves by −0.7 ō: "
          f"{-0.7 * common:+.2f})")

    for path in args.fits:
        data = np.load(path)
        per_view: dict[str, list[float]] = {}
        for vec, view in zip(data["params"][:, :n_id], data["view"]):
            per_view.setdefault(str(view), []).append(off(vec))
        out[str(path)] = {v: float(np.mean(o)) for v, o in per_view.items()}
        every = [x for o in per_view.values() for x in o]
        print(f"{path}: {np.mean(every):+.2f} mm over {len(every)} fits ({100 * np.mean(every) / scan:.0f} % of the "
              f"scan's); " + ", ".join(f"{v} {np.mean(o):+.2f}" for v, o in sorted(per_view.items())))
    if args.lfw is not None:
        vecs = np.load(args.lfw)["vectors"][:, :n_id]
        lfw = np.array([off(v) for v in vecs])
        out["lfw"] = {"mean": float(lfw.mean()), "sd": float(lfw.std()), "share_above_scan": float((lfw > scan).mean())}
        print(f"LFW, {len(lfw)} single-photo fits: {lfw.mean():+.2f} mm, sd {lfw.std():.2f}; "
              f"{100 * (lfw > scan).mean():.1f} % as far forward as the scan's")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
