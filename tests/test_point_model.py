"""The 68-point distribution model completes eye and brow points from the others."""

from __future__ import annotations

import numpy as np
import pytest

from facerecon.imageio.detect import eye_spread, point_spread
from facerecon.imageio.point_model import EYES_BROWS, PointModel


def _similarity(pts: np.ndarray, scale: float, angle: float, shift) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return scale * pts @ np.array([[c, -s], [s, c]]).T + np.asarray(shift)


def _toy_model() -> PointModel:
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(68, 2))
    mean -= mean.mean(0)
    mean /= np.sqrt((mean ** 2).sum(1).mean())
    q, _ = np.linalg.qr(rng.normal(size=(136, 3)))
    return PointModel(mean, q.T.reshape(3, 68, 2), np.array([0.04, 0.02, 0.01]), ridge=1e-9)


def test_complete_recovers_hidden_points_of_a_shape_the_model_spans():
    """A shape made from the model (modes 0.15, -0.1, 0.05, scaled ×80, turned 0.3 rad, moved):
    with its eye and brow points scrambled, completion puts them back where they were."""
    model = _toy_model()
    b = np.array([0.15, -0.1, 0.05])
    truth = _similarity(model.mean + np.tensordot(b, model.modes, 1), 80.0, 0.3, (200.0, 150.0))
    seen = truth.copy()
    seen[EYES_BROWS] += np.random.default_rng(1).normal(scale=30.0, size=(len(EYES_BROWS), 2))
    out = model.complete(seen, iters=30)
    assert np.abs(out[EYES_BROWS] - truth[EYES_BROWS]).max() < 1e-3
    others = np.setdiff1d(np.arange(68), EYES_BROWS)
    assert np.array_equal(out[others], seen[others])  # the points kept are not moved
    assert np.abs(seen[EYES_BROWS] - truth[EYES_BROWS]).max() > 10  # (the scramble was real)


def test_fit_finds_the_mean_and_the_one_mode_of_similar_shapes():
    """Shapes = a base shape ± t·(one direction), each moved by a random similarity: the model's
    mean is the base (up to similarity) and its first mode carries the variance."""
    model = _toy_model()
    base = model.mean
    # a direction no similarity makes: orthogonal to moving, scaling and turning the base
    tangent = np.stack([np.tile([1.0, 0.0], (68, 1)), np.tile([0.0, 1.0], (68, 1)), base,
                        base[:, ::-1] * [-1.0, 1.0]]).reshape(4, -1)
    q, _ = np.linalg.qr(tangent.T)
    d = model.modes[0].reshape(-1)
    direction = (d - q @ (q.T @ d)).reshape(68, 2)
    direction /= np.linalg.norm(direction)
    rng = np.random.default_rng(2)
    ts = np.linspace(-0.05, 0.05, 21)
    shapes = [_similarity(base + t * direction, rng.uniform(50, 90), rng.uniform(-0.4, 0.4), rng.uniform(0, 300, 2))
              for t in ts]
    fitted = PointModel.fit(np.stack(shapes), n_modes=2)
    from facerecon.imageio.align import similarity_transform

    M = similarity_transform(base, fitted.mean)  # the model's frame is the base's up to a similarity
    assert np.abs(base @ M[:, :2].T + M[:, 2] - fitted.mean).max() < 1e-6
    turned = direction @ M[:, :2].T
    cos = abs(float((fitted.modes[0] * turned).sum() / np.linalg.norm(turned)))
    assert cos > 0.99
    assert fitted.var[0] > 50 * fitted.var[1]
    assert fitted.var[0] == pytest.approx(np.var(ts), rel=0.1)


def test_shipped_model_completes_annotated_300w_test_shapes():
    """From the annotated jaw, nose and mouth of 300-W test, the eyes and brows come within 6 % of
    the eye distance on average (measured: 5.05 %), where the mean shape alone is further."""
    from tests.conftest import need_shared
    from facerecon.imageio.pts import read_pts

    model = PointModel.load()
    mean_only = PointModel(model.mean, model.modes[:0], model.var[:0])
    err, err_mean = [], []
    for f in sorted(need_shared("faces", "300w", "test").glob("*.pts"))[::5]:
        t = read_pts(f)
        eye = np.linalg.norm(t[36] - t[45])
        err.append(np.linalg.norm(model.complete(t)[EYES_BROWS] - t[EYES_BROWS], axis=1).mean() / eye)
        err_mean.append(np.linalg.norm(mean_only.complete(t)[EYES_BROWS] - t[EYES_BROWS], axis=1).mean() / eye)
    assert np.mean(err) < 0.06
    assert np.mean(err) < np.mean(err_mean) - 0.01


def test_eye_spread_by_hand():
    """Two runs a median apart by ±1 px on the eye and brow points, eye corners 100 px apart: 1 %."""
    median = np.zeros((68, 2))
    median[45, 0] = 100.0
    runs = np.stack([median.copy(), median.copy()])
    runs[0, EYES_BROWS, 1] += 1.0
    runs[1, EYES_BROWS, 1] -= 1.0
    runs[:, 0] += 50.0  # a jaw point's spread does not count
    assert eye_spread(point_spread(runs, median), median) == pytest.approx(0.01)
