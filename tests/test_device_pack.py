"""tools/device_pack.py: the int8 copies stay within half a quantisation step of the originals,
and unpacked shards hold every carried crop ``repeat`` times under distinct keys."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import device_pack  # noqa: E402

from facerecon.data.shards import ShardDataset, ShardRecord, write_jsonl, write_meta, write_shard  # noqa: E402


def test_int8_copies_are_within_half_a_step():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 7, 3)).astype(np.float32) * np.array([1, 10, 0.1, 3, 0], np.float32)[:, None, None]
    q, scale = device_pack.quantise(a)
    assert q.dtype == np.int8 and scale.shape == (5, 1, 1)
    back = device_pack.dequantise(q, scale)
    peak = np.abs(a).reshape(5, -1).max(1)
    # per row: the peak maps to ±127 exactly, every value within half a step (peak / 254)
    assert np.all(np.abs(back - a).reshape(5, -1).max(1) <= peak / 254 + 1e-7)
    assert np.all(np.abs(q).reshape(5, -1).max(1)[:4] == 127) and not back[4].any()
    arrays = {"w": a, "faces": np.arange(6).reshape(2, 3), "name": np.array("x")}
    packed = device_pack.pack_arrays(arrays, {"w"})
    assert set(packed) == {"q/w", "s/w", "a/faces", "a/name"}
    out = device_pack.unpack_arrays(packed)
    np.testing.assert_array_equal(out["faces"], arrays["faces"])
    assert out["w"].dtype == np.float32 and np.allclose(out["w"], a, atol=float(peak.max()) / 254 + 1e-7)


def _shards(root: Path, n: int) -> Path:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)
    landmarks = rng.uniform(0, 224, (n, 68, 2)).astype(np.float32)
    attention = rng.integers(0, 256, (n, 224, 224), dtype=np.uint8)
    root.mkdir(parents=True)
    write_meta(root, {"format": "facerecon-shards", "version": 1, "crop_size": 224, "val_fraction": 0.0})
    write_shard(root, 0, images, landmarks, attention)
    write_jsonl(root / "records.jsonl", [ShardRecord(key=f"p{i}.jpg", shard=0, row=i, source=f"/x/p{i}.jpg",
                                                     person=f"p{i}", split="train") for i in range(n)])
    return root


def test_shards_travel_and_come_back_repeated(tmp_path):
    src = _shards(tmp_path / "src", 3)
    carry = tmp_path / "carry"
    line = device_pack.pack_shards(src, carry / "shards", photos=2)
    assert "2 photos" in line and json.loads((carry / "shards" / "meta.json").read_text())["crop_size"] == 224
    done = device_pack.unpack(carry, tmp_path / "dev", repeat=3, shard_size=4)
    assert done == [f"{tmp_path / 'dev' / 'shards'} (6 rows)"]
    original, copy = ShardDataset(src, "all"), ShardDataset(tmp_path / "dev" / "shards", "train")
    assert copy.keys == [f"p{i}.jpg#{r}" for r in range(3) for i in range(2)]
    assert len({r.shard for r in copy.records}) == 2  # 4 rows a shard file
    for j in range(6):
        _, image, landmarks, attention = copy.raw(j)
        _, want_image, want_landmarks, want_attention = original.raw(j % 2)
        np.testing.assert_array_equal(image, want_image)
        np.testing.assert_array_equal(landmarks, want_landmarks)
        np.testing.assert_array_equal(attention, want_attention)
    with pytest.raises(ValueError, match="no training photos"):
        device_pack.pack_shards(_shards(tmp_path / "empty", 0), carry / "e", photos=2)
