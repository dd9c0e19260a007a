"""Write ``facerecon/resources/ict_face_hidden.json``: the vertices of ICT's face region that no
camera sees (inside the nostrils and the lips), found by ray casting on the mean face.

    python tools/hidden_vertices.py [--directions 24] [--threshold 0.9]

A vertex is hidden when more than ``--threshold`` of its rays hit the mesh again
(:func:`facerecon.facemodel.surface.occlusion`). About a minute on one CPU core.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from facerecon.assets import resource_path
from facerecon.atomic import atomic_path
from facerecon.facemodel import load_face_model
from facerecon.facemodel.surface import HIDDEN_FILE, occlusion


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--directions", type=int, default=24, help="rays per vertex")
    ap.add_argument("--threshold", type=float, default=0.9, help="share of blocked rays above which a vertex is hidden")
    args = ap.parse_args()
    face = load_face_model("face")
    occ = occlusion(face.mean.numpy(), face.faces.numpy(), args.directions)
    hidden = np.flatnonzero(occ > args.threshold)
    lmk = face.landmark_idx.numpy()
    if lmk[30] in set(hidden.tolist()):
        raise SystemExit("the nose tip came out hidden: check the mesh")
    print(f"hidden landmarks (between the closed lips, where the mean face keeps them): "
          f"{np.flatnonzero(np.isin(lmk, hidden)).tolist()}")
    data = {"region": "face", "n_vertices": int(face.n_vertices), "directions": args.directions,
            "threshold": args.threshold, "made_by": "tools/hidden_vertices.py on the ICT mean face",
            "hidden": hidden.tolist()}
    with atomic_path(resource_path(HIDDEN_FILE)) as tmp:
        open(tmp, "w").write(json.dumps(data) + "\n")
    print(f"{len(hidden)} of {face.n_vertices} vertices hidden -> {resource_path(HIDDEN_FILE)}")


if __name__ == "__main__":
    main()
