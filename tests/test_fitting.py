"""The fitting engine recovers known parameters from a synthetic render."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facerecon.facemodel import load_face_model
from facerecon.fitting.engine import FitConfig, Fitter, pnp_pose
from facerecon.params import FaceParams
from facerecon.render import Camera, project, transform


@pytest.fixture(scope="module")
def narrow(ict_archive):
    return load_face_model("narrow")


def _truth(batch: int, seed: int = 0) -> FaceParams:
    g = torch.Generator().manual_seed(seed)
    p = FaceParams.zeros(batch)
    p.alpha = torch.randn(batch, 80, generator=g) * 0.8
    p.beta = (torch.rand(batch, 53, generator=g) < 0.05).float() * 0.5
    p.delta = torch.randn(batch, 80, generator=g) * 0.5
    p.gamma[:, 0] = 0.9
    p.gamma[:, 1:4] = 0.2 * torch.randn(batch, 3, generator=g)
    p.angles = torch.tensor([[0.05, 0.35, 0.03], [-0.08, -0.5, -0.05]])[:batch]
    p.trans = torch.tensor([[3.0, -8.0, -990.0], [-4.0, -12.0, -1010.0]])[:batch]
    return p


def test_pnp_recovers_pose(narrow):
    cam = Camera()
    angles = torch.tensor([[0.1, -0.4, 0.05]])
    trans = torch.tensor([[5.0, -10.0, -950.0]])
    lm3d = narrow.mean[narrow.landmark_idx]
    xy, _ = project(transform(lm3d[None], angles, trans), cam)
    ang, t = pnp_pose(lm3d.numpy(), xy[0].numpy(), cam)
    np.testing.assert_allclose(ang, angles[0].numpy(), atol=1e-3)
    np.testing.assert_allclose(t, trans[0].numpy(), atol=0.5)


def test_fit_recovers_synthetic_face(narrow):
    truth = _truth(2)
    fitter = Fitter(narrow, config=FitConfig(perceptual=False, landmark_steps=80, steps=40))
    with torch.no_grad():
        out, verts, _ = fitter.render(truth, background=0.3)
        lm, _ = fitter.landmarks_2d(verts[:, fitter._sub], truth)
    lm = lm + 0.5 * torch.randn(lm.shape, generator=torch.Generator().manual_seed(1))
    res = fitter.fit(out.image, lm)
    q = res.params
    # pose within a few degrees, landmarks reprojected within ~2 px
    assert (q.angles - truth.angles).abs().max() < math.radians(4)
    assert (res.landmarks_2d - lm).norm(dim=-1).mean() < 2.5
    # photometric error went down a lot, and the face shape moved towards the truth
    assert res.history[-1]["photo"] < 0.5 * res.history[0]["photo"]
    face = torch.as_tensor(narrow.vertex_ids < 9409)

    def shape_err(alpha):
        v = narrow.shape(alpha)[:, face]
        t = narrow.shape(truth.alpha)[:, face]
        v, t = v - v.mean(1, keepdim=True), t - t.mean(1, keepdim=True)
        return (v - t).norm(dim=-1).mean()

    assert shape_err(q.alpha) < shape_err(torch.zeros_like(q.alpha))
    assert ((q.beta >= 0) & (q.beta <= 1)).all()


def test_fit_with_gpu_zbuffer_matches_cpu(narrow):
    """The GPU path (vectorised torch z-buffer) run on CPU gives the same fit as numba's."""
    from facerecon.render import Renderer

    truth = _truth(2, seed=3)
    config = FitConfig(perceptual=False, landmark_steps=20, steps=8)
    fits = []
    for backend in ("numba", "torch"):
        fitter = Fitter(narrow, config=config)
        fitter.renderer = Renderer(fitter.camera, backend=backend)
        with torch.no_grad():
            out, verts, _ = fitter.render(truth, background=0.3)
            lm, _ = fitter.landmarks_2d(verts[:, fitter._sub], truth)
        fits.append(fitter.fit(out.image, lm))
    a, b = fits
    for k in ("alpha", "beta", "delta", "gamma", "angles", "trans"):
        np.testing.assert_allclose(getattr(a.params, k).numpy(), getattr(b.params, k).numpy(), atol=2e-4, rtol=1e-4)
    assert abs(a.history[-1]["photo"] - b.history[-1]["photo"]) < 1e-5
