"""Each term of the hybrid loss computes what SPEC §4 says."""

from __future__ import annotations

import torch

from facerecon.losses import (
    LossWeights, coef_loss, hybrid_loss, landmark_loss, landmark_weights, perceptual_loss, photo_loss,
    texture_loss,
)


def test_photo_loss_is_attention_weighted_mean_colour_distance():
    render = torch.zeros(1, 3, 4, 4)
    target = torch.zeros(1, 3, 4, 4)
    target[0, :, 0, 0] = torch.tensor([0.3, 0.4, 0.0])  # distance 0.5 at pixel (0,0)
    target[0, :, 3, 3] = 1.0  # outside the mask: ignored
    mask = torch.ones(1, 1, 4, 4)
    mask[0, 0, 3, 3] = 0
    assert torch.allclose(photo_loss(render, target, mask), torch.tensor([0.5 / 15]), atol=1e-4)
    att = torch.full((1, 1, 4, 4), 0.1)
    att[0, 0, 0, 0] = 1.0
    expected = (1.0 * 0.5) / (1.0 + 14 * 0.1)
    assert torch.allclose(photo_loss(render, target, mask, att), torch.tensor([expected]), atol=1e-4)
    assert photo_loss(target, target, mask).item() < 1e-3


def test_landmark_loss_weights_nose_and_mouth():
    w = landmark_weights()
    assert w[30] == 20 and w[50] == 20 and w[36] == 1 and w[0] == 1 and w.shape == (68,)
    target = torch.zeros(1, 68, 2)
    pred = target.clone()
    pred[0, 30] = torch.tensor([3.0, 4.0])  # 25 px² on a nose point
    assert torch.allclose(landmark_loss(pred, target, w), torch.tensor([20 * 25 / 68]))
    assert torch.allclose(landmark_loss(pred, target), torch.tensor([25 / 68]))


def test_coef_texture_perceptual():
    a, b, d = torch.ones(2, 80), torch.ones(2, 53), torch.ones(2, 80)
    assert torch.allclose(coef_loss(a, b, d), torch.full((2,), 80 + 0.8 * 53 + 1.7e-3 * 80))
    albedo = torch.full((2, 10, 3), 0.5)
    mask = torch.zeros(10, dtype=torch.bool)
    mask[:5] = True
    assert torch.allclose(texture_loss(albedo, mask), torch.zeros(2))
    albedo[1, 0, 0] = 1.0  # one red outlier in the region
    assert texture_loss(albedo, mask)[1] > 0 and texture_loss(albedo, mask)[0] == 0
    e = torch.nn.functional.normalize(torch.randn(3, 512), dim=-1)
    assert torch.allclose(perceptual_loss(e, e), torch.zeros(3), atol=1e-6)
    assert torch.allclose(perceptual_loss(e, -e), torch.full((3,), 2.0), atol=1e-6)


def test_hybrid_uses_paper_weights():
    w = LossWeights()
    assert (w.photo, w.landmark, w.perceptual, w.coef, w.texture) == (1.9, 1.6e-3, 0.2, 3e-4, 5.0)
    one = torch.ones(2)
    t = hybrid_loss(w, photo=one, landmark=one, perceptual=one, coef=one, texture=one)
    assert torch.allclose(t.total, torch.full((2,), 1.9 + 1.6e-3 + 0.2 + 3e-4 + 5.0))
    t = hybrid_loss(w, photo=one, landmark=one, perceptual=None, coef=one, texture=one)
    assert torch.allclose(t.total, torch.full((2,), 1.9 + 1.6e-3 + 3e-4 + 5.0))
