"""The R-Net's training photos (tools/rnet_data.py) leave out every photo an instrument scores."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from tests.conftest import load_script, need_shared

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    need_shared("faces", "lfw")
    return load_script("tools/rnet_data.py")


def test_training_photos_exclude_the_instruments_photos():
    tool = _tool()
    photos = tool.training_photos()
    keys = [p.key for p in photos]
    assert len(keys) == len(set(keys)) > 10_000
    assert not any(k.startswith("300w/test/") for k in keys)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT / "tools"))
    from albedo_samples import photo_set
    from identity_lfw import subset
    from multi_grouping import lfw_subset

    scored_people = {n for n, _ in subset(40, 10)} | {n for o in range(3) for n, _ in lfw_subset(10, 5, o)}
    assert len(scored_people) > 60  # 40 + 3 × 10 people, a few in two subsets
    lfw = [p for p in photos if p.key.startswith("lfw/")]
    assert lfw and not {p.person for p in lfw} & scored_people
    assert max(Counter(p.person for p in lfw).values()) == 20  # no person floods the set
    held = {p.resolve() for p in photo_set("heldout")}
    assert not any(Path(p.path).resolve() in held for p in photos)
    # UTKFace and 300-W photos are each their own person; sources are interleaved
    assert all(p.person == p.key for p in photos if not p.key.startswith("lfw/"))
    assert {k.split("/")[0] for k in keys[:50]} == {"lfw", "utkface", "300w"}
