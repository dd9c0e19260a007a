"""Build the 2D point-distribution model of the 68 landmarks (facerecon/resources/point_model.json).

300-W train's annotated shapes and their mirror images (so the model is left-right symmetric),
generalised Procrustes alignment, PCA: the mean and the leading ``--modes`` modes with their
variances. The detector uses it to complete eye and brow points it is unsure of (glasses frames).

    .venv/bin/python scripts/fit_point_model.py [--modes 12]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from facerecon.assets import resource_path, shared_path
from facerecon.imageio.point_model import PointModel
from facerecon.imageio.pts import read_pts

sys.path.insert(0, str(Path(__file__).parent))
from build_align_template import MIRROR  # noqa: E402  (the iBUG 68 left/right permutation)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", type=int, default=12)
    ap.add_argument("--out", type=Path, default=resource_path("point_model.json"))
    args = ap.parse_args()
    root = shared_path("faces", "300w", "train")
    if root is None:
        raise SystemExit("300-W train not found (../shared/faces/300w/train)")
    shapes = [read_pts(f) for f in sorted(root.glob("*.pts"))]
    mirrored = [s[MIRROR] * [-1.0, 1.0] for s in shapes]
    model = PointModel.fit(np.stack(shapes + mirrored), n_modes=args.modes)
    doc = {"source": f"300-W train, {len(shapes)} annotated shapes and their mirror images",
           **model.to_dict()}
    args.out.write_text(json.dumps(doc))
    print(f"{args.out}: mean + {args.modes} modes from {2 * len(shapes)} shapes; "
          f"variance kept {model.var.sum():.4f} (unit-RMS shape units)")


if __name__ == "__main__":
    main()
