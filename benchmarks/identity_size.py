"""How big are the fitted faces? Overall size of the identity shapes in identity_lfw caches.

    python benchmarks/identity_size.py REFERENCE.npz OTHER.npz [OTHER.npz ...]

For the photos every cache holds (``identity_lfw.py --cache`` files), the RMS distance of the
identity-only mesh (ICT narrow face, α alone, mm) from its centroid — one number for a face's
overall size — per cache, and each other cache's size over the reference's, photo by photo.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from facerecon.facemodel import load_face_model
from facerecon.params import FaceParams


def load(path: str) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """{photo key: flat parameter vector} and the vector's layout from an identity_lfw cache."""
    d = np.load(path, allow_pickle=False)
    layout = {name: int(n) for name, n in json.loads(str(d["layout"]))}
    return dict(zip(map(str, d["keys"]), d["vectors"].astype(np.float32))), layout


def radius(model, vectors: list[np.ndarray], layout: dict[str, int]) -> np.ndarray:
    """RMS distance (mm) of each identity mesh's vertices from their centroid."""
    p = FaceParams.from_vector(torch.tensor(np.stack(vectors)), layout)
    with torch.no_grad():
        v = model.shape(p.alpha)
    return (v - v.mean(1, keepdim=True)).pow(2).sum(-1).mean(1).sqrt().numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("caches", nargs="+")
    args = ap.parse_args()
    model = load_face_model("narrow")
    loaded = [load(c) for c in args.caches]
    keys = sorted(set.intersection(*(set(v) for v, _ in loaded)))
    sizes = [radius(model, [v[k] for k in keys], lay) for v, lay in loaded]
    mean = model.mean
    print(f"{len(keys)} photos; ICT mean face {float((mean - mean.mean(0)).pow(2).sum(-1).mean().sqrt()):.2f} mm")
    for path, s in zip(args.caches, sizes):
        ratio = s / sizes[0]
        print(f"{path}: {s.mean():.2f} ± {s.std():.2f} mm; / reference {ratio.mean():.4f} ± {ratio.std():.4f}; "
              f"correlation with reference {np.corrcoef(s, sizes[0])[0, 1]:.2f}")


if __name__ == "__main__":
    main()
