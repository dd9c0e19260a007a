"""The real-skin scan instrument (facerecon.evaluation.real_skin) and the learned albedo model's
maths (facerecon.facemodel.albedo.pca_albedo): values checked against known geometry and data."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from facerecon.evaluation.real_skin import bend_to_landmarks, draw_occluder, paint_scan, render_view, skin_transfer
from facerecon.facemodel.albedo import (AlbedoBasis, complete_samples, load_learned_albedo, pca_albedo,
                                        save_learned_albedo, trusted_samples)


def _rot(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def test_bend_is_the_similarity_when_landmarks_are_related_by_one():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(68, 3)) * 30
    pts = rng.normal(size=(200, 3)) * 30
    s, r, t = 1.3, _rot(25), np.array([5.0, -3.0, 10.0])
    out = bend_to_landmarks(pts, src, s * src @ r.T + t, smoothing=0.0)
    assert np.allclose(out, s * pts @ r.T + t, atol=1e-6)


def test_bend_puts_landmarks_exactly_on_their_targets():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(68, 3)) * 30
    dst = src + rng.normal(size=(68, 3)) * 3  # a non-rigid change
    assert np.allclose(bend_to_landmarks(src, src, dst, smoothing=0.0), dst, atol=1e-6)


def test_skin_transfer_of_a_scan_that_is_the_template_moved():
    """A "scan" that is the template itself, scaled and turned: every vertex finds itself."""
    box = trimesh.creation.icosphere(subdivisions=3, radius=80.0)
    v = np.asarray(box.vertices)
    lmk_ids = np.linspace(0, len(v) - 1, 68).astype(int)
    s, r, t = 1.1, _rot(-30), np.array([1.0, 2.0, 3.0])
    scan = trimesh.Trimesh(s * v @ r.T + t, box.faces, process=False)
    tr = skin_transfer(scan, np.asarray(scan.vertices)[lmk_ids], v, v[lmk_ids], subdivisions=0)
    assert np.array_equal(tr.source, np.arange(len(v)))
    assert tr.distance.max() < 1e-6
    # and painting reads the template's albedo through it; out-of-reach vertices take the skin
    alb = np.random.default_rng(2).uniform(size=(len(v), 3))
    assert np.allclose(paint_scan(tr, alb, np.array([0.5, 0.4, 0.3])), alb)
    tr.source[:5] = -1
    assert np.allclose(paint_scan(tr, alb, np.array([0.5, 0.4, 0.3]))[:5], [0.5, 0.4, 0.3])


def test_trusted_and_completed_samples():
    weight = np.array([1.0, 0.1, 1.0, 0.1, 0.9])
    skin = np.array([0.9, 0.9, 0.2, 0.9, 0.1])
    inner = np.array([False, False, False, False, True])
    # 0: seen + skin; 1: not seen; 2: seen but not skin on the border (hair); 4: inner, any colour
    assert trusted_samples(weight, skin, inner).tolist() == [True, False, False, False, True]
    alb = np.array([[0.1, 0.2, 0.3], [0.9, 0.9, 0.9], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.7, 0.6, 0.5]])
    partner = np.array([1, 0, 3, 2, 4])  # 0<->1, 2<->3 mirror pairs
    out = complete_samples(alb, trusted_samples(weight, skin, inner), partner, np.array([0.6, 0.5, 0.4]))
    assert np.allclose(out[0], alb[0]) and np.allclose(out[4], alb[4])
    assert np.allclose(out[1], alb[0])                       # from its mirror partner
    assert np.allclose(out[2], [0.6, 0.5, 0.4]) and np.allclose(out[3], [0.6, 0.5, 0.4])  # skin


@pytest.mark.parametrize("kind", ["fringe", "glasses"])
def test_occluders_cover_their_part_of_the_face(kind):
    img = np.full((200, 200, 3), 200, np.uint8)
    lm = np.zeros((68, 2))
    lm[17:27] = np.stack([np.linspace(60, 140, 10), np.full(10, 80.0)], 1)      # brows at y = 80
    lm[36:42] = [60, 100] + np.random.default_rng(0).normal(size=(6, 2))         # eyes at y = 100
    lm[42:48] = [140, 100] + np.random.default_rng(1).normal(size=(6, 2))
    lm[36], lm[45] = [50, 100], [150, 100]
    out = draw_occluder(img, lm, kind, np.random.default_rng(0))
    changed = np.abs(out.astype(int) - img).sum(2) > 30
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 300 and np.array_equal(img, np.full_like(img, 200))  # input untouched
    if kind == "fringe":   # hair from above, ending over the brows
        assert ys.max() < 80 and ys.min() < 20
    else:                  # frames around both eyes
        assert changed[95:106, 30:50].any() and changed[95:106, 150:170].any() and ys.max() < 130
    with pytest.raises(ValueError, match="unknown occluder"):
        draw_occluder(img, lm, "hat", np.random.default_rng(0))


def test_render_view_of_a_white_lit_grey_ball():
    """Ambient light 1 and a flat albedo: the covered pixels are the albedo, the rest background."""
    ball = trimesh.creation.icosphere(subdivisions=3, radius=60.0)
    tr = skin_transfer(ball, np.asarray(ball.vertices)[:68], np.asarray(ball.vertices), np.asarray(ball.vertices)[:68],
                       subdivisions=0)
    lmk = np.zeros((68, 3))
    lmk[36], lmk[45] = [-30, 0, 95], [30, 0, 95]  # turn centre at the ball's centre
    gamma = np.zeros(9)
    gamma[0] = 1.0
    img, xy = render_view(tr, np.full((len(tr.vertices), 3), 0.5), lmk, 0.0, 30.0, gamma,
                          np.zeros((64, 64, 3)), size=128)
    assert img.shape == (128, 128, 3)
    assert abs(int(img[64, 64, 0]) - 128) <= 1 and img[2, 2].max() == 0
    r = (img[:, :, 0] > 64).sum()  # a disc of radius focal·60/1000 px
    radius = 1015.0 * 128 / 224 * 0.75 * 60 / 1000
    assert abs(r - np.pi * radius**2) / (np.pi * radius**2) < 0.05


def test_pca_albedo_recovers_a_known_low_rank_model(tmp_path):
    rng = np.random.default_rng(0)
    v = 50
    mean = rng.uniform(0.3, 0.7, (v, 3))
    modes = np.linalg.qr(rng.normal(size=(v * 3, 3)))[0].T  # 3 orthonormal directions
    std = np.array([0.2, 0.1, 0.05])
    coef = rng.normal(size=(4000, 3))
    coef = (coef - coef.mean(0)) / coef.std(0, ddof=1)
    coef = np.linalg.qr(coef)[0] * np.sqrt(len(coef) - 1)  # exactly white: unit std, uncorrelated
    x = mean.reshape(1, -1) + (coef * std) @ modes
    m, basis, s = pca_albedo(x.reshape(-1, v, 3), 10)
    assert np.allclose(m, mean, atol=1e-9)          # centred, white coefficients: the true mean
    assert np.allclose(s[:3], std, rtol=1e-6) and np.all(s[3:] < 1e-9)
    # mode k is ± the true direction k scaled by its std
    b = basis[:3].reshape(3, -1)
    assert np.allclose(np.abs(b @ modes.T), np.diag(std), atol=1e-6)
    # stored (fp16) and read back over a larger mesh: covered vertices learned, others the base's
    base = AlbedoBasis(np.full((v + 10, 3), 0.9, np.float32), np.zeros((80, v + 10, 3), np.float32))
    save_learned_albedo(tmp_path / "a.npz", np.arange(5, v + 5), m, basis, s, {"photos": 4000})
    got = load_learned_albedo(tmp_path / "a.npz", base)
    assert got.kind == "learned" and got.basis.shape == (10, v + 10, 3)
    assert np.allclose(got.mean[5:v + 5], m, atol=1e-3) and np.allclose(got.mean[:5], 0.9)
    assert np.allclose(got.basis[:, 5:v + 5], basis, atol=1e-3) and not got.basis[:, :5].any()


def test_a_closer_camera_keeps_the_eyes_size_and_shows_more_perspective():
    """The eye corners (95 mm in front of the turn centre) project the same distance apart from
    0.4 m and from 1 m; a point 95 mm further back (the turn centre's plane) comes out smaller
    from close up by the pinhole ratio (by hand: f·x/z with the focal of ``render_focal``)."""
    from facerecon.evaluation.real_skin import TURN_DEPTH, render_focal

    ball = trimesh.creation.icosphere(subdivisions=1, radius=10.0)
    tr = skin_transfer(ball, np.asarray(ball.vertices)[:68], np.asarray(ball.vertices), np.asarray(ball.vertices)[:68],
                       subdivisions=0)
    lmk = np.zeros((68, 3))
    lmk[36], lmk[45] = [-45, 0, TURN_DEPTH], [45, 0, TURN_DEPTH]
    lmk[0], lmk[16] = [-45, 0, 0], [45, 0, 0]  # in the turn centre's plane
    gamma = np.zeros(9)
    spans = {}
    for d in (400.0, 1000.0):
        _, xy = render_view(tr, np.full((len(tr.vertices), 3), 0.5), lmk, 0.0, 0.0, gamma, np.zeros((8, 8, 3)),
                            size=64, distance=d)
        spans[d] = (xy[45, 0] - xy[36, 0], xy[16, 0] - xy[0, 0])
        f = render_focal(64, d)
        assert spans[d][0] == pytest.approx(f * 90 / (d - TURN_DEPTH), rel=1e-4)
        assert spans[d][1] == pytest.approx(f * 90 / d, rel=1e-4)
    assert spans[400.0][0] == pytest.approx(spans[1000.0][0], rel=1e-4)
    assert spans[400.0][1] / spans[400.0][0] == pytest.approx(305 / 400, rel=1e-4)
    assert spans[1000.0][1] / spans[1000.0][0] == pytest.approx(905 / 1000, rel=1e-4)


def test_registered_reading_follows_an_affine_misfit_exactly():
    """Where the photo's landmarks are an affine map of the fit's, every point moves by that map
    (a thin-plate spline reproduces affine motion whatever its smoothing)."""
    from tests.conftest import load_script

    registered = load_script("tools/albedo_samples.py").registered
    rng = np.random.default_rng(3)
    model_lmk = rng.uniform(40, 180, (51, 2))
    a, b = np.array([[1.03, 0.02], [-0.01, 0.98]]), np.array([2.5, -1.5])
    xy = rng.uniform(0, 224, (200, 2))
    moved = registered(xy, model_lmk, model_lmk @ a.T + b)
    np.testing.assert_allclose(moved, xy @ a.T + b, atol=1e-3)
    np.testing.assert_allclose(registered(xy, model_lmk, model_lmk), xy, atol=1e-4)


def test_registered_samples_read_the_photo_where_its_landmarks_are():
    """A crop whose red channel is x/448 (blue 0.5, so blue tells each vertex's irradiance): with the
    photo's landmarks 3 px right of the fit's, each vertex's colour is read 3 px right of where it
    projects; without them, where it projects."""
    import torch

    from facerecon.facemodel import load_face_model
    from facerecon.forward import ForwardModel
    from facerecon.params import FaceParams
    from tests.conftest import load_script

    tool = load_script("tools/albedo_samples.py")
    fwd = ForwardModel(load_face_model("narrow"))
    p = FaceParams.zeros(1)
    p.gamma[0, 1] = 0.3  # light from one side: irradiance varies over the face
    x = np.arange(224, dtype=np.float32)
    crop = np.zeros((224, 224, 3), np.float32)
    crop[..., 0], crop[..., 2] = x[None, :] / 448 * 255, 0.5 * 255
    ids = np.arange(fwd.model.n_vertices)
    with torch.no_grad():
        out = fwd(p)
    xy, lmk = out.xy[0].numpy(), out.landmarks[0].numpy()
    plain = tool.vertex_samples(fwd, p, crop, np.ones((224, 224), np.float32), ids)
    moved = tool.vertex_samples(fwd, p, crop, np.ones((224, 224), np.float32), ids,
                                photo_landmarks=lmk + np.array([3.0, 0.0]))
    ok = (plain[1] > 0.5) & (xy[:, 0] > 5) & (xy[:, 0] < 215)
    assert ok.sum() > 1000
    irr = 0.5 / plain[0][ok, 2]
    np.testing.assert_allclose(moved[0][ok, 2], plain[0][ok, 2], rtol=1e-4)
    np.testing.assert_allclose(plain[0][ok, 0] * irr * 448, xy[ok, 0], atol=0.05)
    np.testing.assert_allclose(moved[0][ok, 0] * irr * 448, xy[ok, 0] + 3.0, atol=0.05)


def test_flat_skin_renders_paint_the_median_skin_colour_only():
    """``lps_realskin.py --flat-skin``: under ambient light every covered pixel is the sample's skin
    colour whatever its pattern; without it the pattern shows."""
    from facerecon.params import FaceParams
    from tests.conftest import load_script

    bench = load_script("benchmarks/lps_realskin.py")
    ball = trimesh.creation.icosphere(subdivisions=3, radius=60.0)
    verts = np.asarray(ball.vertices)
    tr = skin_transfer(ball, verts[:68], verts, verts[:68], subdivisions=0)
    lmk = np.zeros((68, 3))
    lmk[36], lmk[45] = [-30, 0, 95], [30, 0, 95]
    rng = np.random.default_rng(0)
    ambient = FaceParams.zeros(1).to_vector()[0].numpy()
    skin = np.array([0.6, 0.45, 0.4])
    samples = [{"albedo": rng.uniform(0.2, 0.9, (len(verts), 3)), "skin": skin, "params": ambient} for _ in range(2)]

    class Black:
        def sample(self, rng, size):
            return np.zeros((size, size, 3)), None

    def covered(flat: bool) -> np.ndarray:
        (*_, photo, _), = bench.real_skin_renders(samples, np.array([0]), ["front"], 0, tr, lmk, Black(),
                                                    occluders=False, flat=flat)
        inner = photo[200:312, 200:312].reshape(-1, 3).astype(float)
        return inner

    flat, pattern = covered(True), covered(False)
    np.testing.assert_allclose(flat, np.tile(skin * 255, (len(flat), 1)), atol=1.0)
    assert pattern.std(0).min() > 10
