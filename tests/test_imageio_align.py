"""Alignment: template framing, exact similarity recovery, real photos landing on the template."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facerecon.evaluation.landmarks import labelled_images
from facerecon.imageio.align import (
    align, apply_affine, invert_affine, landmark_weights, similarity_transform, template_landmarks,
)
from facerecon.imageio.pts import read_pts
from facerecon.imageio.load import load_image


from tests.conftest import need_shared as need  # noqa: E402


def test_template_framing():
    t = template_landmarks()
    assert t.shape == (68, 2)
    assert np.linalg.norm(t[16] - t[0]) == pytest.approx(0.62 * 224, abs=0.05)
    centre = (t.min(0) + t.max(0)) / 2
    assert np.allclose(centre, (112, 124), atol=0.05)
    assert t.min() > 0 and t.max() < 224
    # upright and symmetric: eye corners level, nose tip on the vertical midline
    assert abs(t[36, 1] - t[45, 1]) < 0.01
    assert abs(t[30, 0] - 112) < 0.5
    assert t[19, 1] > 40  # room above the brows for the forehead
    assert np.allclose(template_landmarks(112), t / 2)


def _similarity(scale, angle_deg, tx, ty):
    a = np.radians(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def test_similarity_transform_recovers_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 300, (68, 2))
    M = _similarity(0.37, 23.0, 12.0, -40.0)
    dst = apply_affine(M, src)
    est = similarity_transform(src, dst, landmark_weights())
    assert np.allclose(est, M, atol=1e-9)
    assert np.allclose(apply_affine(invert_affine(M), dst), src, atol=1e-9)
    with pytest.raises(ValueError):
        similarity_transform(np.zeros((68, 2)), src)


def test_align_synthetic_photo_lands_exactly_on_template():
    t = template_landmarks()
    photo_from_crop = _similarity(2.5, -30.0, 300.0, 100.0)
    photo_lm = apply_affine(photo_from_crop, t)
    photo = np.zeros((800, 900, 3), np.uint8)
    face = align(photo, photo_lm)
    assert face.crop.shape == (224, 224, 3) and face.crop.dtype == np.uint8
    assert np.allclose(face.landmarks, t, atol=1e-4)
    assert np.allclose(face.M_inv, photo_from_crop, atol=1e-9)
    assert np.allclose(face.to_photo(face.landmarks), photo_lm, atol=1e-3)
    assert np.allclose(face.to_crop(photo_lm), face.landmarks, atol=1e-3)
    assert face.scale == pytest.approx(1 / 2.5)


@pytest.fixture(scope="module")
def test_pairs():
    return labelled_images(need("faces", "300w", "test"))[::33][:10]


def test_real_faces_warp_onto_template_and_crop_matches_photo(test_pairs):
    from facerecon.imageio.detect import FaceDetector

    detector = FaceDetector()
    t = template_landmarks()
    inner, redetected = [], []
    for img_path, pts_path in test_pairs:
        photo = load_image(img_path)
        gt = read_pts(pts_path)
        face = align(photo, gt)
        # the fitted similarity brings the inner points (17-67) close to the template
        inner.append(np.linalg.norm(face.landmarks[17:] - t[17:], axis=1).mean())
        # the crop's pixels really are the photo's: dlib finds the same landmarks in the crop
        found = detector(face.crop)
        assert found is not None
        redetected.append(np.linalg.norm(found - face.landmarks, axis=1).mean())
        # and a crop pixel equals the photo pixel it maps back to (nose tip, bilinear)
        x, y = face.to_photo(np.round(face.landmarks[30]))
        expected = cv2.getRectSubPix(photo.astype(np.float32), (1, 1), (float(x), float(y)))[0, 0]
        cx, cy = np.round(face.landmarks[30]).astype(int)
        assert np.abs(face.crop[cy, cx].astype(float) - expected).max() <= 2
    # measured: inner-point residual 2.6-9.4 px per face (mean 4.8); re-detection 1.7-2.4 px
    assert max(inner) < 14 and np.mean(inner) < 7
    assert max(redetected) < 4


def test_downscaled_warp_matches_direct_warp(test_pairs):
    photo = load_image(test_pairs[0][0])
    lm = read_pts(test_pairs[0][1])
    ref = align(photo, lm)
    big = cv2.resize(photo, None, fx=6, fy=6, interpolation=cv2.INTER_CUBIC)
    face = align(big, (lm + 0.5) * 6 - 0.5)  # face shrinks > 2x: pre-reduced path
    assert np.allclose(face.landmarks, ref.landmarks, atol=1e-3)
    assert np.abs(face.crop.astype(float) - ref.crop).mean() < 2.5
