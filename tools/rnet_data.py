"""The R-Net's training photos: every shared photo except those the project's instruments score.

    python tools/rnet_data.py prepare --out work/rnet/shards      # detect + align (resumable)
    python tools/rnet_data.py list                                 # counts per source, nothing written

Kept out (so R-Net figures are measured on photos it never saw):
* 300-W **test** (landmark NME instrument, real-skin lighting and held-out textures);
* the LFW identity subset (``benchmarks/identity_lfw.py``: people with ≥ 5 photos, every 10th
  name, 40 people) and the multi-image LFW subsets (``benchmarks/multi_lfw.py``, 10 people at
  offsets 0–2);
* the held-out albedo photos (``tools/albedo_samples.py --set heldout``, the real-skin textures).

LFW people give at most 20 photos each (a few people have hundreds). Keys are paths below ``../shared/faces`` (``lfw/Name/Name_0001.jpg``, ``utkface/…``,
``300w/train/…``); an LFW photo's person is its folder, every other photo is its own person.
Sources are interleaved (seeded) so that any prefix of the run mixes LFW, UTKFace and 300-W.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tools"))

FACES = ROOT.parent / "shared" / "faces"


def excluded_lfw_people() -> set[str]:
    """LFW names that the identity and multi-image benchmarks score."""
    from identity_lfw import subset

    names = {n for n, _ in subset(40, 10)}
    from multi_grouping import lfw_subset

    for offset in range(3):
        names |= {n for n, _ in lfw_subset(10, 5, offset)}
    return names


def training_photos(seed: int = 0, per_person: int = 20):
    """The interleaved list of :class:`facerecon.data.prepare.Photo` items (see module docstring)."""
    from albedo_samples import photo_set
    from facerecon.data.prepare import Photo

    held = {p.resolve() for p in photo_set("heldout")}
    skip_people = excluded_lfw_people()
    lfw = [Photo(p, p.relative_to(FACES).as_posix(), p.parent.name)
           for d in sorted((FACES / "lfw").iterdir()) if d.is_dir() and d.name not in skip_people
           for p in sorted(d.glob("*.jpg"))[:per_person]]
    utk = [Photo(p, p.relative_to(FACES).as_posix(), p.relative_to(FACES).as_posix())
           for p in sorted((FACES / "utkface").glob("*.jpg")) if p.resolve() not in held]
    w300 = [Photo(p, p.relative_to(FACES).as_posix(), p.relative_to(FACES).as_posix())
            for p in sorted((FACES / "300w" / "train").glob("*.jpg"))]
    rng = random.Random(seed)
    tagged = [(rng.random(), i, p) for i, p in enumerate(lfw + utk + w300)]
    return [p for _, _, p in sorted(tagged, key=lambda t: (t[0], t[1]))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["prepare", "list"])
    ap.add_argument("--out", type=Path, default=ROOT / "work" / "rnet" / "shards")
    ap.add_argument("--limit", type=int)
    args = ap.parse_args()
    photos = training_photos()
    counts = Counter(p.key.split("/")[0] for p in photos)
    print(f"{len(photos)} photos: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), flush=True)
    if args.action == "prepare":
        from facerecon.data.prepare import prepare_shards

        res = prepare_shards(photos, args.out, limit=args.limit)
        print(f"added {res.added}, skipped {res.skipped}, failed {len(res.failed)}, total {res.total}")


if __name__ == "__main__":
    main()
