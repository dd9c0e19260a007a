"""Where do fitted faces sit on average, and does that depend on who is photographed?

    python benchmarks/identity_offset.py REFERENCE.npz [--labels DIR ...] [--caches FILE ...]

REFERENCE is an ``identity_lfw.py`` cache; its fits' mean identity (α) is "the offset" from the
ICT mean face. For every other set (``facerecon label`` folders, identity caches): the size of its
own mean (mm, identity-only mesh over the narrow face, translation, rotation and scale removed,
``identity_noise.py --metric surface``) and its cosine with the offset. For the UTKFace photos among
the label folders, the same by age, sex and ethnicity (from UTKFace's file names
``age_sex_race_date``), with each group's spread about its own mean. Also: the offset's shape
at a few landmarks (mm, model axes: y up, z out of the face), and the offset along it of the
reference photos in the lowest and highest quartile of fitted smile.
"""

from __future__ import annotations

import argparse
import glob
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from facerecon.facemodel import load_face_model

RACES = ("white", "black", "asian", "indian", "other")
LANDMARKS = {8: "chin", 30: "nose tip", 48: "mouth corner R", 36: "outer eye corner R", 19: "brow R", 0: "jaw R"}


def read_sets(labels: list[str], caches: list[str], n_id: int) -> dict[str, tuple[list[str], np.ndarray]]:
    """{set name: (photo keys, (N, n_id) α)} from label folders and identity caches."""
    sets = {}
    for folder in labels:
        keys, alphas = [], []
        for f in sorted(glob.glob(str(Path(folder) / "labels-*.npz"))):
            with np.load(f) as z:
                keys += [str(k) for k in z["keys"]]
                alphas.append(z["params"][:, :n_id].astype(np.float64))
        sets[folder] = (keys, np.concatenate(alphas))
    for f in caches:
        with np.load(f) as z:
            sets[f] = ([str(k) for k in z["keys"]], z["vectors"][:, :n_id].astype(np.float64))
    return sets


def utk_group(key: str) -> list[str]:
    """Age, sex and ethnicity groups of a UTKFace photo key (empty for other photos)."""
    if not key.startswith("utkface/"):
        return []
    try:
        age, sex, race = (int(x) for x in Path(key).name.split("_")[:3])
    except ValueError:
        return []
    band = "<13" if age < 13 else "13-30" if age <= 30 else "31-55" if age <= 55 else ">55"
    return [f"age {band}", "men" if sex == 0 else "women", RACES[race] if race < len(RACES) else "unknown"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reference", help="identity_lfw cache whose fits' mean is the offset")
    ap.add_argument("--labels", nargs="*", default=[], help="facerecon label folders (labels-*.npz)")
    ap.add_argument("--caches", nargs="*", default=[], help="other identity_lfw caches")
    args = ap.parse_args()
    import identity_noise as noise  # a sibling script: its directory is on sys.path when run as one
    model = load_face_model("narrow")
    mean, basis, _ = noise.model_basis(model)
    g = noise.similarity_metric(mean, basis)

    def norm(x):
        return float(np.sqrt(x @ g @ x))

    with np.load(args.reference) as z:
        ref = z["vectors"].astype(np.float64)
    offset = ref[:, :model.n_id].mean(0)
    unit = g @ offset / norm(offset)
    print(f"offset: {norm(offset):.2f} mm from the ICT mean face ({len(ref)} photos of {args.reference})")
    for name, (keys, alpha) in read_sets(args.labels, args.caches, model.n_id).items():
        m = alpha.mean(0)
        print(f"{name}: {len(alpha)} photos, mean {norm(m):.2f} mm from the ICT mean, cosine with the offset "
              f"{m @ g @ offset / norm(m) / norm(offset):.2f}")
        groups = defaultdict(list)
        for i, k in enumerate(keys):
            for grp in utk_group(k):
                groups[grp].append(i)
        for grp, idx in sorted(groups.items()):
            a = alpha[idx]
            spread = np.sqrt(np.mean([norm(x - a.mean(0)) ** 2 for x in a]))
            print(f"   UTKFace {grp:10s} {len(idx):5d} photos: along the offset {a.mean(0) @ unit:.2f} mm, "
                  f"own spread {spread:.2f} mm")
    with torch.no_grad():
        shift = (model.shape(torch.tensor(offset, dtype=torch.float32)[None]) - model.shape(
            torch.zeros(1, model.n_id)))[0].numpy()
    shift -= shift.mean(0)
    lmk = model.landmark_idx.numpy()
    print("offset's shape at landmarks (x, y, z mm): " + "; ".join(
        f"{name} ({', '.join(f'{x:+.1f}' for x in shift[lmk[i]])})" for i, name in LANDMARKS.items()))
    names = model.expression_names
    smile = ref[:, model.n_id:model.n_id + model.n_exp][:, [j for j, n in enumerate(names) if "Smile" in n]].mean(1)
    along = ref[:, :model.n_id] @ unit
    lo, hi = smile <= np.quantile(smile, 0.25), smile >= np.quantile(smile, 0.75)
    print(f"along the offset: photos with the least fitted smile {along[lo].mean():.2f} mm, the most "
          f"{along[hi].mean():.2f} mm")


if __name__ == "__main__":
    main()
