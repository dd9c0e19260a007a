"""The forehead's depth against the inner face (facemodel.forehead) and the fitter's identity prior
loosened along the direction that moves it (FitConfig.forehead_stiffness)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon.facemodel.forehead import ForeheadDepth, forehead_offset, forehead_regions
from facerecon.fitting.engine import FitConfig, Fitter, forehead_metric


def test_forehead_offset_sees_a_forehead_bump_through_any_similarity():
    # a curved face: 68 landmark points with the nose tip at the origin and brows at y 38-40 mm
    ys, xs = np.mgrid[-70:90:4.0, -60:61:4.0]
    mean = np.stack([xs.ravel(), ys.ravel(), -0.004 * (xs.ravel() ** 2 + ys.ravel() ** 2)], 1)
    normals = np.tile([0.0, 0.0, 1.0], (len(mean), 1))
    lmk = np.zeros((68, 3))
    lmk[17:27, 1] = np.linspace(38.0, 40.0, 10)
    forehead, inner = forehead_regions(mean, normals, lmk)
    assert forehead.any() and inner.any()
    assert (mean[forehead, 1] >= 45.0).all() and (mean[inner, 1] < 38.0).all()
    assert not forehead[(mean[:, 1] >= 45.0) & (np.linalg.norm(mean, axis=1) >= 95.0)].any()
    # any similarity of the mean face: no offset; the forehead moved 2 mm forward: +2 whatever the pose
    c, s = np.cos(0.3), np.sin(0.3)
    R = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    moved = 1.1 * mean @ R.T + np.array([5.0, -3.0, 900.0])
    assert forehead_offset(moved, mean, normals, forehead, inner) == pytest.approx(0.0, abs=1e-9)
    bumped = mean.copy()
    bumped[forehead, 2] += 2.0
    assert forehead_offset(1.1 * bumped @ R.T + 7.0, mean, normals, forehead, inner) == pytest.approx(2.0)


def test_direction_is_the_offsets_gradient_and_its_norm_the_populations_spread(face_model):
    depth = ForeheadDepth(face_model)
    g = depth.direction()
    eye = np.eye(face_model.n_id) * 0.5  # central differences of the (non-linear) offset itself
    numeric = np.array([depth(e) - depth(-e) for e in eye])
    assert np.abs(g - numeric).max() < 0.01 * np.abs(numeric).max()
    rng = np.random.default_rng(0)
    population = np.array([depth(rng.standard_normal(face_model.n_id)) for _ in range(400)])
    assert population.std() == pytest.approx(np.linalg.norm(g), rel=0.1)  # 3.4 mm on ICT's model
    assert 2.0 < np.linalg.norm(g) < 5.0


def test_forehead_metric_loosens_that_direction_alone(face_model):
    u = ForeheadDepth(face_model).direction()
    u = torch.as_tensor(u / np.linalg.norm(u), dtype=torch.float32)
    M = forehead_metric(face_model, 0.04)
    assert torch.allclose(M, M.T, atol=1e-6)
    assert float(u @ M @ u) == pytest.approx(0.04, abs=1e-5)
    v = torch.randn(face_model.n_id, generator=torch.Generator().manual_seed(0))
    v = v - (v @ u) * u  # across the forehead direction the prior is unchanged
    assert torch.allclose(M @ v, v, atol=1e-5)
    M2 = forehead_metric(face_model, 0.04, 2.0 * torch.eye(face_model.n_id))  # on top of a given metric
    assert float(u @ M2 @ u) == pytest.approx(0.08, abs=1e-5) and torch.allclose(M2 @ v, 2.0 * v, atol=1e-5)


def test_the_fitter_loosens_its_prior_only_when_asked(face_model):
    assert Fitter(face_model, config=FitConfig()).loss.identity_metric is None
    loose = Fitter(face_model, config=FitConfig(forehead_stiffness=0.25)).loss.identity_metric
    assert torch.allclose(loose, forehead_metric(face_model, 0.25))
