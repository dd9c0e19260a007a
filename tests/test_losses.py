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


# ---------------------------------------------------------------------------------------------
# hand-computed values: each would change if the formula did (normaliser, weights, mean/sum)
# ---------------------------------------------------------------------------------------------
def test_photo_loss_normalises_each_image_by_its_own_weight():
    """Two images with very different mask areas and attention sums: each image's value is its
    own weighted mean, whatever the other image holds."""
    render = torch.zeros(2, 3, 4, 4)
    target = torch.zeros(2, 3, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    att = torch.zeros(2, 1, 4, 4)
    # image 0: all 16 pixels masked, colour difference (0.3, 0.4, 0) -> distance 0.5 everywhere;
    # attention 1 on the left half (8 px), 0.5 on the right half (8 px)
    target[0] = torch.tensor([0.3, 0.4, 0.0])[:, None, None]
    mask[0] = 1.0
    att[0, 0, :, :2] = 1.0
    att[0, 0, :, 2:] = 0.5
    # image 1: only 4 pixels masked; two at distance 1.0 (diff (0.6, 0, 0.8)) with attention 1,
    # two at distance 0.5 (diff (0, 0.3, 0.4)) with attention 0.5; the rest differ by 1 in
    # every channel (distance √3) but lie outside the mask
    target[1] = 1.0
    target[1, :, 0, 0] = target[1, :, 0, 1] = torch.tensor([0.6, 0.0, 0.8])
    target[1, :, 1, 0] = target[1, :, 1, 1] = torch.tensor([0.0, 0.3, 0.4])
    mask[1, 0, :2, :2] = 1.0
    att[1, 0, 0, :2] = 1.0
    att[1, 0, 1, :2] = 0.5
    att[1, 0, 2:, :] = 1.0  # attention outside the mask must not count either

    # with attention: image 0 (8·1·0.5 + 8·0.5·0.5) / (8·1 + 8·0.5) = 6/12;
    #                 image 1 (2·1·1.0 + 2·0.5·0.5) / (2·1 + 2·0.5) = 2.5/3
    got = photo_loss(render, target, mask, att)
    assert got.shape == (2,)
    torch.testing.assert_close(got, torch.tensor([0.5, 2.5 / 3]), atol=1e-4, rtol=0)
    # without attention (mask only): image 0 = 0.5; image 1 (2·1.0 + 2·0.5) / 4 = 0.75
    torch.testing.assert_close(photo_loss(render, target, mask), torch.tensor([0.5, 0.75]), atol=1e-4, rtol=0)
    # an image alone gives the same value as inside the batch
    torch.testing.assert_close(photo_loss(render[1:], target[1:], mask[1:], att[1:]),
                               torch.tensor([2.5 / 3]), atol=1e-4, rtol=0)


def test_landmark_weights_are_20_on_every_nose_and_mouth_point():
    expected = torch.ones(68)
    expected[27:36] = 20.0  # nose: bridge 27–30, lower nose 31–35
    expected[48:68] = 20.0  # mouth: outer lip 48–59, inner lip 60–67
    assert torch.equal(landmark_weights(), expected)
    jaw = landmark_weights(jaw=0.5)
    expected[:17] = 0.5  # the 17 contour points 0–16 only
    assert torch.equal(jaw, expected)
    expected[17:27] = 3.0  # the 10 brow points 17–26 only
    assert torch.equal(landmark_weights(jaw=0.5, brows=3.0), expected)


def test_landmark_loss_is_weighted_mean_of_squared_distances_per_image():
    w = landmark_weights()
    target = torch.rand(2, 68, 2, generator=torch.Generator().manual_seed(0)) * 224
    pred = target.clone()
    pred[0, 0] += torch.tensor([1.0, 2.0])    # jaw, ω 1:   5 px²
    pred[0, 35] += torch.tensor([0.0, -1.0])  # nose, ω 20: 1 px² -> 20
    pred[0, 48] += torch.tensor([2.0, 0.0])   # mouth, ω 20: 4 px² -> 80
    pred[0, 47] += torch.tensor([1.0, 1.0])   # eye, ω 1:   2 px²
    pred[1, 27] += torch.tensor([3.0, -4.0])  # nose, ω 20: 25 px² -> 500
    torch.testing.assert_close(landmark_loss(pred, target, w), torch.tensor([107.0 / 68, 500.0 / 68]),
                               atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(landmark_loss(pred, target), torch.tensor([12.0 / 68, 25.0 / 68]),
                               atol=1e-3, rtol=1e-4)


def test_coef_loss_weights_each_block_by_its_own_weight():
    alpha, beta, delta = torch.zeros(2, 80), torch.zeros(2, 53), torch.zeros(2, 80)
    alpha[0] = 0.5                               # ‖α‖² = 80 · 0.25 = 20
    beta[0, :2] = torch.tensor([3.0, 4.0])       # ‖β‖² = 25
    delta[0, 7] = 10.0                           # ‖δ‖² = 100
    delta[1] = 2.0                               # ‖δ‖² = 80 · 4 = 320
    # image 0: 1.0·20 + 0.8·25 + 1.7e-3·100 = 40.17;  image 1: 1.7e-3·320 = 0.544
    torch.testing.assert_close(coef_loss(alpha, beta, delta), torch.tensor([40.17, 0.544]))
    # explicit weights: 2·20 + 3·25 + 0.5·100 = 165;  0.5·320 = 160
    torch.testing.assert_close(coef_loss(alpha, beta, delta, 2.0, 3.0, 0.5), torch.tensor([165.0, 160.0]))
    w = LossWeights()
    assert (w.coef_id, w.coef_exp, w.coef_tex) == (1.0, 0.8, 1.7e-3)


def test_texture_loss_is_sum_of_per_channel_population_variance_over_the_skin():
    albedo = torch.zeros(2, 7, 3)
    skin = torch.tensor([True, True, False, True, True, False, False])
    # image 0 over the 4 skin vertices 0, 1, 3, 4: red 0, 1, 0, 1 (var 0.25); green 0.2, 0.2,
    # 0.6, 0.6 (var 0.04); blue constant 0.3 (var 0)  -> 0.29
    albedo[0, [0, 1, 3, 4]] = torch.tensor([[0.0, 0.2, 0.3], [1.0, 0.2, 0.3], [0.0, 0.6, 0.3], [1.0, 0.6, 0.3]])
    albedo[0, [2, 5, 6]] = torch.tensor([[5.0, -3.0, 9.0]])  # off the skin: ignored
    # image 1: every channel 0.1, 0.1, 0.1, 0.5 (mean 0.2, var (3·0.01 + 0.09)/4 = 0.03) -> 0.09
    albedo[1, [0, 1, 3, 4]] = torch.tensor([0.1, 0.1, 0.1, 0.5])[:, None]
    torch.testing.assert_close(texture_loss(albedo, skin), torch.tensor([0.29, 0.09]))


def test_perceptual_loss_is_one_minus_cosine_of_unnormalised_embeddings():
    a = torch.tensor([[3.0, 4.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    b = torch.tensor([[8.0, 6.0, 0.0], [0.0, 5.0, 0.0], [1.0, 1.0, 0.0]])
    # cos: (24 + 24) / (5 · 10) = 0.96;  orthogonal 0;  2 / (2 · √2) = 1/√2
    torch.testing.assert_close(perceptual_loss(a, b), torch.tensor([0.04, 1.0, 1.0 - 2 ** -0.5]))


def test_hybrid_loss_puts_each_weight_on_its_own_term():
    w = LossWeights()
    terms = dict(photo=torch.tensor([2.0, 0.0]), landmark=torch.tensor([3.0, 0.0]), perceptual=torch.tensor([5.0, 1.0]),
                 coef=torch.tensor([7.0, 0.0]), texture=torch.tensor([11.0, 0.0]))
    t = hybrid_loss(w, **terms)
    # 1.9·2 + 1.6e-3·3 + 0.2·5 + 3e-4·7 + 5·11 = 3.8 + 0.0048 + 1.0 + 0.0021 + 55
    torch.testing.assert_close(t.total, torch.tensor([59.8069, 0.2]))
    for name, value in terms.items():
        assert torch.equal(getattr(t, name), value)  # the unweighted terms are kept


def test_robust_photo_loss_down_weights_large_residuals_by_hand():
    """Two pixels, residuals 0.1 and 0.5 (red channel), τ = 0.1: weights 1/(1+1) and 1/(1+25)."""
    render = torch.zeros(1, 3, 1, 2)
    target = torch.zeros(1, 3, 1, 2)
    target[0, 0, 0, 0], target[0, 0, 0, 1] = 0.1, 0.5
    mask = torch.ones(1, 1, 1, 2)
    w1, w2 = 0.5, 1 / 26
    want = (w1 * 0.1 + w2 * 0.5) / (w1 + w2)
    assert torch.allclose(photo_loss(render, target, mask, robust=0.1), torch.tensor([want]), atol=1e-6)
    assert torch.allclose(photo_loss(render, target, mask), torch.tensor([0.3]), atol=1e-6)  # off: plain mean
    # the weights are held fixed in the gradient (IRLS): d/dI of Σ w r / Σ w with w constant
    r = render.clone().requires_grad_()
    photo_loss(r, target, mask, robust=0.1).sum().backward()
    assert torch.allclose(r.grad[0, 0, 0], torch.tensor([-w1, -w2]) / (w1 + w2), atol=1e-5)


def test_a_landmark_stage_renders_nothing():
    """With no photometric weight and no FaceNet term, HybridLoss never asks for the rendered
    image (a landmark stage of training costs no rasterisation); the terms it has are unchanged."""
    from facerecon.losses import HybridLoss, LossWeights
    from facerecon.params import FaceParams

    class NoRender:
        landmarks = torch.full((2, 68, 2), 3.0)
        albedo = torch.rand(2, 50, 3)

        @property
        def image(self):
            raise AssertionError("rendered")

        mask = image

    params = FaceParams.zeros(2)
    params.alpha = torch.ones(2, 80)
    skin = torch.ones(50, dtype=torch.bool)
    target = torch.zeros(2, 68, 2)
    loss = HybridLoss(LossWeights(photo=0.0, perceptual=0.0), skin)(NoRender(), params, torch.rand(2, 3, 8, 8), target)
    assert torch.equal(loss.photo, torch.zeros(2))
    ref = HybridLoss(LossWeights(photo=0.0, perceptual=0.0), skin)
    torch.testing.assert_close(loss.landmark, landmark_loss(NoRender.landmarks, target, ref.omega))
    assert torch.all(loss.coef > 0)
    try:
        HybridLoss(LossWeights(photo=1.0), skin)(NoRender(), params, torch.rand(2, 3, 8, 8), target)
    except AssertionError as exc:
        assert "rendered" in str(exc)
    else:
        raise AssertionError("a photometric weight must render")


def test_coef_prior_centred_on_given_coefficients_by_hand():
    """``prior`` moves the Gaussian prior's centre: the regulariser is the weighted squared
    distance to the given coefficients (hand values), and 0 at them."""
    from facerecon.losses import HybridLoss
    from facerecon.params import FaceParams

    p, c = FaceParams.zeros(2), FaceParams.zeros(2)
    p.alpha[0, :2] = torch.tensor([1.0, 2.0])
    c.alpha[0, :2] = torch.tensor([1.0, 0.0])  # α − α₀ = (0, 2): 4
    p.beta[1, 0], c.beta[1, 0] = 0.5, 0.2       # β − β₀ = 0.3: 0.09
    p.delta[1, 3] = 10.0                        # δ − δ₀ = 10: 100
    loss = HybridLoss(LossWeights(coef_id=1.0, coef_exp=10.0, coef_tex=1e-3), torch.ones(5, dtype=torch.bool))
    torch.testing.assert_close(loss.coef(p, c), torch.tensor([4.0, 0.9 + 0.1]))
    torch.testing.assert_close(loss.coef(p), torch.tensor([5.0, 2.5 + 0.1]))  # centred at 0
    assert torch.equal(loss.coef(c, c), torch.zeros(2))
    lm = torch.zeros(2, 68, 2)
    torch.testing.assert_close(loss.landmarks_only(lm, lm, p, c), loss.weights.coef * torch.tensor([4.0, 1.0]))


def test_identity_metric_weighs_the_prior_by_direction_by_hand():
    """With an identity metric M the prior's identity term is (α − α₀)ᵀ M (α − α₀) (hand values
    for a diagonal and an off-diagonal M); β and δ keep their plain norms; no prior: plain ‖α‖²."""
    from facerecon.losses import HybridLoss
    from facerecon.params import FaceParams

    p, c = FaceParams.zeros(2), FaceParams.zeros(2)
    p.alpha[0, :2] = torch.tensor([1.0, 2.0])   # image 0: α − α₀ = (1, 2, 0, …)
    p.alpha[1, 2] = 3.0                         # image 1: α − α₀ = (0, 0, 3, …)
    p.beta[1, 0] = 0.5                          # β − β₀ = 0.5: 10 · 0.25
    metric = torch.eye(80)
    metric[0, 0], metric[2, 2] = 4.0, 0.5
    metric[0, 1] = metric[1, 0] = 1.0           # (1, 2): 4·1 + 2·(1·1·2) + 1·4 = 12
    weights = LossWeights(coef_id=2.0, coef_exp=10.0, coef_tex=1e-3)
    loss = HybridLoss(weights, torch.ones(5, dtype=torch.bool), identity_metric=metric)
    torch.testing.assert_close(loss.coef(p, c), torch.tensor([2.0 * 12.0, 2.0 * 0.5 * 9.0 + 2.5]))
    torch.testing.assert_close(loss.coef(p), torch.tensor([2.0 * 5.0, 2.0 * 9.0 + 2.5]))
    plain = HybridLoss(weights, torch.ones(5, dtype=torch.bool), identity_metric=torch.eye(80))
    torch.testing.assert_close(plain.coef(p, c), HybridLoss(weights, torch.ones(5, dtype=torch.bool)).coef(p, c))


def test_gaussian_blur_matches_scipy_with_repeated_borders():
    """The blur before FaceNet is scipy's Gaussian filter (an independent implementation) with
    borders repeated, per channel, for integer and fractional σ; σ = 0 leaves the images alone."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    from facerecon.losses import gaussian_blur

    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 17, 23, generator=g, dtype=torch.float64)
    for sigma in (1.0, 2.0, 0.7):
        ours = gaussian_blur(images, sigma).numpy()
        # scipy's radius is int(truncate * σ + 0.5); truncate chosen so that it is ⌈3σ⌉ as ours
        r = int(np.ceil(3 * sigma))
        ref = gaussian_filter(images.numpy(), sigma=(0, 0, sigma, sigma), mode="nearest", truncate=r / sigma)
        np.testing.assert_allclose(ours, ref, atol=1e-12)
    assert gaussian_blur(images, 0.0) is images


def test_hybrid_loss_blurs_photo_and_render_alike_before_facenet():
    """With ``perceptual_blur`` both the photo's embedding and the composite's are taken of the
    blurred images: FaceNet (here a probe recording its input) sees exactly gaussian_blur(x)."""
    from facerecon.losses import HybridLoss, LossWeights, gaussian_blur
    from facerecon.params import FaceParams

    seen = []

    class Probe:
        def embed(self, images, box):
            seen.append(images.clone())
            return images.mean(dim=(2, 3))

    class Out:
        landmarks = torch.zeros(1, 68, 2)
        albedo = torch.rand(1, 50, 3)
        image = torch.zeros(1, 3, 12, 12)
        mask = torch.zeros(1, 1, 12, 12)

    Out.image[..., 3:9, 3:9] = 0.8
    Out.mask[..., 3:9, 3:9] = 1.0
    photo = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    skin = torch.ones(50, dtype=torch.bool)
    loss = HybridLoss(LossWeights(), skin, facenet=Probe(), perceptual_blur=1.5)
    loss(Out(), FaceParams.zeros(1), photo, torch.zeros(1, 68, 2))
    composite = Out.image + photo * (1 - Out.mask)
    torch.testing.assert_close(seen[0], gaussian_blur(photo, 1.5))
    torch.testing.assert_close(seen[1], gaussian_blur(composite, 1.5))
    assert not torch.allclose(seen[1], composite)


def test_visibility_scales_each_photos_landmark_weights():
    """``HybridLoss.landmarks_only(..., visibility=V)`` weighs point n of photo b by ω_n·V_bn: a
    point at 0 drops out of that photo's term alone (hand-computed as in the test above)."""
    from facerecon.losses import HybridLoss
    from facerecon.params import FaceParams

    loss = HybridLoss(LossWeights(coef=0.0), torch.ones(10, dtype=torch.bool), omega=landmark_weights())
    target = torch.zeros(2, 68, 2)
    pred = target.clone()
    pred[:, 48] += torch.tensor([2.0, 0.0])   # mouth, ω 20: 4 px² -> 80 in both photos
    pred[:, 36] += torch.tensor([0.0, 3.0])   # eye, ω 1: 9 px² in both photos
    vis = torch.ones(2, 68)
    vis[1, 48] = 0.0   # photo 1 does not count its mouth corner
    vis[0, 36] = 0.5   # photo 0 counts its eye corner half
    got = loss.landmarks_only(pred, target, FaceParams.zeros(2), visibility=vis) / LossWeights().landmark
    torch.testing.assert_close(got, torch.tensor([(80.0 + 4.5) / 68, 9.0 / 68]), atol=1e-4, rtol=1e-4)
    plain = loss.landmarks_only(pred, target, FaceParams.zeros(2)) / LossWeights().landmark
    torch.testing.assert_close(plain, torch.tensor([89.0 / 68, 89.0 / 68]), atol=1e-4, rtol=1e-4)


def test_photo_blur_compares_the_broad_pattern_only():
    """A render that is the photo plus a ±0.1 one-pixel checkerboard over the whole face costs
    0.1·√3 per pixel unblurred; blurred by σ = 2 px (a period-2 pattern is damped by
    exp(−2π²σ²/4) ≈ 3e−9) it costs nothing, while a uniform +0.1 offset keeps its 0.1·√3."""
    from facerecon.losses import HybridLoss, LossWeights
    from facerecon.params import FaceParams

    photo = torch.full((1, 3, 40, 40), 0.5)
    yy, xx = torch.meshgrid(torch.arange(40), torch.arange(40), indexing="ij")
    checker = 0.1 * (1 - 2 * ((yy + xx) % 2)).float()
    mask = torch.zeros(1, 1, 40, 40)
    mask[..., 10:30, 10:30] = 1.0

    def term(render: torch.Tensor, blur: float) -> float:
        class Out:
            landmarks = torch.zeros(1, 68, 2)
            albedo = torch.rand(1, 50, 3)
            image = render * mask
        Out.mask = mask
        loss = HybridLoss(LossWeights(perceptual=0.0), torch.ones(50, dtype=torch.bool), photo_blur=blur)
        return float(loss(Out(), FaceParams.zeros(1), photo, torch.zeros(1, 68, 2)).photo[0])

    assert abs(term(photo + checker, 0.0) - 0.1 * 3 ** 0.5) < 1e-4
    assert term(photo + checker, 2.0) < 1e-3  # the distance's 1e-4 floor, and the border's bit of checker
    # a uniform offset inside the face is kept wherever the blur stays within it (the border softens)
    offset = term(photo + 0.1, 2.0)
    assert 0.5 * 0.1 * 3 ** 0.5 < offset < 0.1 * 3 ** 0.5
