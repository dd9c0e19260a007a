"""What the learned albedo model is made of: which de-lit photo samples ``tools/learn_albedo.py``
keeps, and the skin-hue rule that turns some away."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from facerecon.facemodel import ict, load_face_model
from facerecon.facemodel.albedo import off_skin_hue, sample_layout

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from learn_albedo import sample_rows  # noqa: E402

SKIN = (0.70, 0.50, 0.40)


def test_off_skin_hue_by_hand():
    """Skin orders its channels R > G > B (up to 0.03 of blue over green); green, blue-grey and
    purple do not."""
    rgb = np.array([[0.70, 0.50, 0.40],    # skin
                    [0.30, 0.20, 0.22],    # dark brow: B just within 0.03 of G
                    [0.40, 0.50, 0.30],    # green
                    [0.50, 0.45, 0.49],    # blue-grey: B 0.04 over G
                    [0.60, 0.30, 0.70]])   # purple
    assert off_skin_hue(rgb).tolist() == [False, False, True, True, True]


def fake_sample(path: Path, features_rgb: tuple[float, float, float] | None) -> Path:
    """A de-lit sample as tools/albedo_samples.py writes it: every face-part vertex skin coloured,
    seen squarely on skin; with ``features_rgb`` the brows, eyes, nostrils and lips that colour."""
    lo, hi = ict.PARTS["face"]
    alb = np.tile(np.array(SKIN, np.float32), (hi - lo, 1))
    if features_rgb is not None:
        full = load_face_model("full")
        mean = full.mean.numpy().astype(np.float64)
        _, feat = sample_layout(mean[lo:hi], mean[full.landmark_idx.numpy()])
        alb[feat] = features_rgb
    n = hi - lo
    np.savez(path, albedo=alb, weight=np.full(n, 255, np.uint8), skin=np.full(n, 255, np.uint8),
             vertex_ids=np.arange(lo, hi, dtype=np.int32), source=np.array(path.stem),
             params=np.zeros(10, np.float32))
    return path


def test_samples_with_features_off_skin_hue_are_left_out_only_when_asked(tmp_path):
    """A sample whose brows, eyes and lips came out blue-grey (a few % of the face part, kept
    through smoothing and mirroring) is skipped at ``max_off_hue`` 0.02 and kept at 1; a plain
    skin sample and one with dark-brown features are kept at both."""
    fake_sample(tmp_path / "a_skin.npz", None)
    fake_sample(tmp_path / "b_brown.npz", (0.30, 0.20, 0.15))
    fake_sample(tmp_path / "c_bluegrey.npz", (0.35, 0.40, 0.55))
    rows, _, used, skipped = sample_rows(tmp_path, symmetric=True, max_off_hue=0.02)
    assert used == ["a_skin", "b_brown"] and skipped == ["c_bluegrey"] and len(rows) == 2
    rows, _, used, skipped = sample_rows(tmp_path, symmetric=True)
    assert used == ["a_skin", "b_brown", "c_bluegrey"] and skipped == []
    lo, hi = ict.PARTS["face"]
    frac = off_skin_hue(rows[2][: hi - lo]).mean()
    assert 0.02 < frac < 0.5  # what the threshold saw: features, not the whole face
