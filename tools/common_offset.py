"""Write the photo population's common offset ō into the package (``facerecon/resources/identity_offset.json``).

Fits of many people's photos share one offset from the face model's mean face: the mean over
people of their fitted identities α (BENCHMARKS.md, "How much of one photo's face is that photo?").
Engine rnet-prior moves its prior's identity centre against it (``FitConfig.prior_offset``). This
reads ``identity_lfw.py --cache`` files (a person counts once, however many photos they have) and
writes ō with where it came from:

    python tools/common_offset.py benchmarks/labels/lfw_complement383_U_*.npz \\
        --out facerecon/resources/identity_offset.json

The shipped file is made from the 383 LFW people the 40-person identity subset leaves out, so
that the subset's figures are not scored on people the offset was taken from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labels_offset import population_mean  # noqa: E402  (a sibling tool)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("population", type=Path, nargs="+", help="identity_lfw.py --cache files")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write (replaced atomically)")
    ap.add_argument("--n-id", type=int, default=80, help="identity coefficients (the face model's)")
    args = ap.parse_args(argv)
    try:
        with np.load(args.population[0], allow_pickle=False) as z:
            config = json.loads(str(z["config"]))
        offset = population_mean(args.population, args.n_id)
        people = set()
        for path in args.population:
            with np.load(path, allow_pickle=False) as z:
                people |= {str(k).split("/")[-2] for k in z["keys"].tolist()}
    except (OSError, ValueError, KeyError) as exc:
        print(f"common_offset: {exc}", file=sys.stderr)
        return 1
    doc = {"description": "the photo population's common offset: mean over people of each person's mean fitted "
                          "identity alpha (ICT-FaceKit identity modes)",
           "people": len(people), "sources": [p.name for p in args.population],
           "fitted_with": {k: config.get(k) for k in ("engine", "landmarks", "albedo", "steps", "start_at_prior")},
           "alpha": [round(float(x), 6) for x in offset]}
    tmp = args.out.with_name(args.out.name + ".partial")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"{args.out}: ō of {len(people)} people, |ō| = {np.linalg.norm(offset):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
