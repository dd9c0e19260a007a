"""The benchmarks' paired comparison (benchmarks/paired.py) pairs the same items of two runs."""

from __future__ import annotations

import pytest

from tests.conftest import load_script


def _paired():
    return load_script("benchmarks/paired.py")


def test_paired_difference_is_over_the_common_items():
    mod = _paired()
    a = {"x": 1.0, "y": 2.0, "z": 3.0, "only_a": 9.0}
    b = {"x": 0.5, "y": 2.5, "z": 2.0, "only_b": -9.0}
    r = mod.paired(a, b, resamples=500, seed=0)
    assert r["items"] == 3 and r["b_lower"] == 2
    assert r["a"] == pytest.approx(2.0) and r["b"] == pytest.approx(5 / 3)
    assert r["diff"] == pytest.approx(-1 / 3)
    assert -1.0 <= r["lo"] <= r["diff"] <= r["hi"] <= 0.5  # bootstrap means stay within the differences


def test_measures_reads_real_skin_rows_and_landmark_reports():
    mod = _paired()
    rows = [{"method": "mean face", "scale": False, "rmse_mm": 3.0, "view": "-", "texture": "-"},
            {"method": "fit", "scale": False, "rmse_mm": 2.5, "view": "front", "texture": 0},
            {"method": "fit", "scale": True, "rmse_mm": 2.2, "view": "front", "texture": 0},
            {"method": "fit neutral", "scale": True, "rmse_mm": 2.1, "view": "front", "texture": 0}]
    got = mod.measures({"rows": rows})
    assert got == {"real skin, mesh, rigid (mm)": {"0/front": 2.5}, "real skin, mesh, with scale (mm)": {"0/front": 2.2},
                   "real skin, neutral mesh, with scale (mm)": {"0/front": 2.1}}
    report = {"per_image": [{"name": "a.png", "nme_eyes": 0.04}, {"name": "b.png", "nme_eyes": None}]}
    assert mod.measures(report) == {"NME, eye corners (points)": {"a.png": pytest.approx(4.0)}}
    with pytest.raises(ValueError, match="neither"):
        mod.measures({"auc": 0.9})
