"""Skin classifier: shipped parameters, numpy/torch agreement, attention rule, held-out accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facerecon.assets import resource_path
from facerecon.evaluation.landmarks import labelled_images
from facerecon.imageio.skin import FEATURES, SkinClassifier
from tests.conftest import load_script
from tests.conftest import need_shared as need


@pytest.fixture(scope="module")
def skin() -> SkinClassifier:
    return SkinClassifier.load()


def test_shipped_parameters_are_a_few_numbers(skin):
    doc = json.loads(resource_path("skin_gnb.json").read_text())
    assert doc["features"] in FEATURES and doc["classes"] == ["nonskin", "skin"]
    n = len(FEATURES[doc["features"]])
    assert np.array(doc["mean"]).shape == (2, n) and np.array(doc["var"]).shape == (2, n)
    assert sum(skin.prior) == pytest.approx(1.0)
    assert SkinClassifier.from_dict(skin.to_dict()) == skin


def test_typical_colours(skin):
    colours = np.array([[224, 172, 140], [198, 134, 104], [141, 85, 60],  # light/mid/dark skin
                        [40, 90, 200], [60, 170, 60], [0, 0, 0], [250, 250, 250]], np.uint8)
    p = skin.probability(colours)
    assert p.shape == (7,) and p.dtype == np.float32
    assert np.all(p[:3] > 0.5), p
    assert np.all(p[3:] < 0.5), p


def test_attention_rule_and_torch_agreement(skin):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    imgs[0, :10] = (210, 150, 120)
    p = skin.probability(imgs)
    a = skin.attention(imgs)
    assert a.shape == (3, 20, 30)
    assert np.all(a[p > 0.5] == 1.0) and np.array_equal(a[p <= 0.5], p[p <= 0.5])
    assert np.all(a[0, :10] == 1.0)
    t = torch.from_numpy(imgs).permute(0, 3, 1, 2).double() / 255.0
    at = skin.attention_torch(t)
    assert at.shape == (3, 1, 20, 30)
    assert np.allclose(at[:, 0].numpy(), a, atol=1e-5)
    # differentiable: gradients flow to the image through the sigmoid part
    t.requires_grad_(True)
    skin.probability_torch(t).sum().backward()
    assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def _fit_script():
    return load_script("scripts/fit_skin_model.py")


def test_accuracy_on_held_out_labelled_pixels(skin):
    # 300-W test photos were never used for fitting; labelled exactly as the fitting script does
    pairs = labelled_images(need("faces", "300w", "test"))[::16][:20]
    fit = _fit_script()
    x, y = fit.gather([p for p, _ in pairs], None, np.random.default_rng(0))
    res = fit.accuracy(skin, x, y)
    assert res["n_pixels"] > 200_000
    # measured on these 20 photos: accuracy 81.0 %, balanced 76.8 %; 300-W test overall 82.5 %
    assert res["accuracy"] > 0.75
    assert res["balanced_accuracy"] > 0.70
    assert 0.25 < res["skin_fraction"] < 0.55  # labels are sane: a face crop is not all skin
