"""Copy a labels folder with part of the photo population's common offset taken out of every identity.

Fits of many people's photos share one offset from the face model's mean face: the mean over
people of their fitted identities α, ō (BENCHMARKS.md, "How much of one photo's face is that
photo?"). This writes DST as SRC with every label's α replaced by α − amount·ō; expression, albedo,
light, pose, translation and loss stay as they were. DST/config.json records the amount and where
ō came from (``offset_removed``). It is for training R-Net on labels that carry less of the offset
(``facerecon train --labels DST``):

    python tools/labels_offset.py labels/shared-faces-default-g work/labels/default-g-cal --amount 0.35 \\
        --population benchmarks/labels/lfw_complement383_U_*.npz

``--population`` takes ``identity_lfw.py --cache`` files (keys ``…/<person>/<photo>``, ``vectors``
holding α first); a person counts once, however many photos they have. DST must not exist.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def population_mean(paths: list[Path], n_id: int) -> np.ndarray:
    """ō: the mean over people of each person's mean α (n_id,), from identity caches."""
    people: dict[str, list[np.ndarray]] = defaultdict(list)
    for path in paths:
        with np.load(path, allow_pickle=False) as z:
            for key, vec in zip(z["keys"].tolist(), z["vectors"]):
                people[str(key).split("/")[-2]].append(np.asarray(vec[:n_id], np.float64))
    if not people:
        raise ValueError(f"{', '.join(map(str, paths))}: no fits in these caches")
    return np.mean([np.mean(v, 0) for v in people.values()], 0)


def write_shifted(src: Path, dst: Path, offset: np.ndarray, amount: float, source: list[str]) -> int:
    """Write DST = SRC with α − amount·offset in every chunk; returns how many labels were moved."""
    if not (src / "config.json").is_file():
        raise ValueError(f"{src}: not a labels folder (no config.json)")
    if dst.exists():
        raise ValueError(f"{dst}: exists (choose a new folder)")
    doc = json.loads((src / "config.json").read_text(encoding="utf-8"))
    tmp = dst.with_name(dst.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=False)
    moved = 0
    for path in sorted(src.glob("labels-*.npz")):
        with np.load(path, allow_pickle=False) as z:
            chunk = {k: z[k] for k in z.files}
        parts = chunk["parts"].tolist()
        if parts[0] != "alpha" or int(chunk["sizes"][0]) != len(offset):
            raise ValueError(f"{path}: identity is not the first {len(offset)} coefficients "
                             f"({parts}, {chunk['sizes'].tolist()})")
        params = chunk["params"].astype(np.float64)
        params[:, :len(offset)] -= amount * offset
        chunk["params"] = params.astype(chunk["params"].dtype)
        np.savez(tmp / path.name, **chunk)
        moved += len(params)
    doc["offset_removed"] = {"amount": amount, "population": source, "from": str(src),
                             "offset": [round(float(x), 6) for x in offset]}
    (tmp / "config.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    tmp.rename(dst)  # the folder appears whole or not at all
    return moved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path, help="labels folder made by `facerecon label`")
    ap.add_argument("dst", type=Path, help="new labels folder to write (must not exist)")
    ap.add_argument("--amount", type=float, required=True,
                    help="how much of ō to take away (units of ō; 0.35 takes a label from 0.80 to 0.45 of it)")
    ap.add_argument("--population", type=Path, nargs="+", required=True, help="identity_lfw.py --cache files")
    args = ap.parse_args(argv)
    try:
        first = next(iter(sorted(args.src.glob("labels-*.npz"))), None)
        if first is None:
            raise ValueError(f"{args.src}: no label chunks")
        with np.load(first, allow_pickle=False) as z:
            n_id = int(z["sizes"][0])
        offset = population_mean(args.population, n_id)
        n = write_shifted(args.src, args.dst, offset, args.amount, [str(p) for p in args.population])
    except (OSError, ValueError, KeyError) as exc:
        print(f"labels_offset: {exc}", file=sys.stderr)
        return 1
    print(f"{args.dst}: {n} labels, α less {args.amount} × the population's mean α "
          f"(|ō| = {np.linalg.norm(offset):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
