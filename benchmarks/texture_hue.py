"""How much of the exported heads' skin is green, blue or cyan: what a fit sampled off the head.

    facerecon reconstruct PHOTOS... -o OUT        # once per version of the exporter
    python benchmarks/texture_hue.py OUT [OUT2 ...] [--json J]

Around the face (the neck, the ears, the top of the forehead) and along its silhouette the
texture bake samples what lies next to the head in the photo: a wall, a collar, a shirt. No skin,
lip, hair or beard colour is greener or bluer than it is red, so the share of a head's skin texels
(ICT's face and head_neck parts, 1024² texture) whose
:func:`~facerecon.export.completion.coolness` exceeds 0.2 (and 0.3) counts those samples in the
finished texture (BENCHMARKS.md, "Exports"). Prints, per folder, the mean share over the
reconstructions and how many have more than 0.1 % of their skin texels above 0.3.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from facerecon.export.atlas import model_atlas
from facerecon.export.completion import coolness
from facerecon.export.uvraster import PART_NAMES, texel_geometry
from facerecon.facemodel import load_face_model

SIZE = 1024


def cool_shares(folder: Path, geo, skin: np.ndarray) -> dict[str, list[float]]:
    """{reconstruction: [share of skin texels with coolness > 0.2, > 0.3]} for every
    ``*/face_texture.png`` below ``folder``."""
    out = {}
    for tex_path in sorted(folder.glob("*/face_texture.png")):
        tex = cv2.cvtColor(cv2.imread(str(tex_path)), cv2.COLOR_BGR2RGB)
        if tex.shape[:2] != (SIZE, SIZE):
            raise SystemExit(f"{tex_path}: texture of {tex.shape[1]}×{tex.shape[0]}, "
                             f"expected {SIZE}² (reconstruct's --texture-size)")
        c = coolness(tex.reshape(-1, 3)[geo.raster.pix][skin] / 255.0)
        out[tex_path.parent.name] = [float((c > 0.2).mean()), float((c > 0.3).mean())]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path, help="facerecon reconstruct output folders")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    head = load_face_model("head", albedo="learned", landmarks="300w-photo")
    geo = texel_geometry(head, model_atlas(head), SIZE)
    skin = (geo.part == PART_NAMES.index("face")) | (geo.part == PART_NAMES.index("head_neck"))
    result = {}
    for folder in args.folders:
        shares = cool_shares(folder, geo, skin)
        if not shares:
            raise SystemExit(f"{folder}: no */face_texture.png below it")
        a = np.array(list(shares.values()))
        result[str(folder)] = {"per_reconstruction": shares, "mean_share_0.2": float(a[:, 0].mean()),
                               "mean_share_0.3": float(a[:, 1].mean()), "over_0.1pct": int((a[:, 1] > 0.001).sum())}
        print(f"{folder}: {len(a)} heads; skin texels with coolness > 0.2: {100 * a[:, 0].mean():.3f} %, > 0.3: "
              f"{100 * a[:, 1].mean():.3f} %; heads with more than 0.1 % above 0.3: {int((a[:, 1] > 0.001).sum())}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
