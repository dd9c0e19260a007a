"""FaceDetector on real photos: one face, several faces, small faces (upsampling), no face."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest

from facerecon.imageio.detect import DEFAULT_MIN_SCORES, DetectedFace, FaceDetector, NoFaceError
from facerecon.imageio.load import load_image


from tests.conftest import need_shared as need  # noqa: E402


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def lfw_photos() -> list[Path]:
    root = need("faces", "lfw")
    return sorted(root.glob("*/*.jpg"))[::400][:6]


def test_one_face_per_lfw_photo(detector, lfw_photos):
    assert len(lfw_photos) == 6
    for path in lfw_photos:
        faces = detector.detect(path)
        assert len(faces) == 1
        f = faces[0]
        assert isinstance(f, DetectedFace)
        assert f.landmarks.shape == (68, 2) and f.landmarks.dtype == np.float32
        x0, y0, x1, y1 = f.box
        assert 0 <= x0 < x1 <= 250 and 0 <= y0 < y1 <= 250
        # LFW deep-funneled photos are centred on the face
        assert abs((x0 + x1) / 2 - 125) < 30 and abs((y0 + y1) / 2 - 125) < 35
        assert f.score > DEFAULT_MIN_SCORES[f.upsample]
        # the landmarks lie on the face: their centre is inside the box, eyes above the mouth
        cx, cy = f.landmarks.mean(0)
        assert x0 < cx < x1 and y0 < cy < y1
        assert f.landmarks[36:48, 1].mean() < f.landmarks[48:68, 1].mean()


def test_largest_by_default_all_on_request(detector, lfw_photos):
    big = load_image(lfw_photos[0])
    small = cv2.resize(load_image(lfw_photos[1]), (170, 170), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((250, 440, 3), np.uint8)
    canvas[:, :250] = big
    canvas[40:210, 260:430] = small
    faces = detector.detect(canvas, all_faces=True)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    assert faces[0].box[2] <= 255 and faces[1].box[0] >= 255  # left = big photo, right = small
    default = detector.detect(canvas)
    assert len(default) == 1 and default[0].box == faces[0].box


def test_small_face_found_by_upsampling(detector, lfw_photos):
    tiny = cv2.resize(load_image(lfw_photos[0]), (80, 80), interpolation=cv2.INTER_AREA)
    assert detector.find_boxes(tiny)  # found at all ...
    face = detector.detect(tiny)[0]
    assert face.upsample >= 1  # ... but only after upsampling (face ~35 px < HOG's 80 px window)
    no_upsampling = copy.copy(detector)  # shares the loaded models
    no_upsampling.min_scores = DEFAULT_MIN_SCORES[:1]
    with pytest.raises(NoFaceError):
        no_upsampling.detect(tiny)


def test_no_face_raises_one_line_error_naming_the_file(detector, tmp_path):
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 4)
    path = tmp_path / "wall.png"
    cv2.imwrite(str(path), smooth)
    with pytest.raises(NoFaceError) as info:
        detector.detect(path)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert msg.startswith(f"{path}: no face found") and "\n" not in msg
    assert detector(smooth) is None  # predictor form: None instead of an exception
    with pytest.raises(NoFaceError, match=r"^holiday\.jpg: no face"):
        detector.detect(smooth, source="holiday.jpg")


def test_large_photo_is_searched_downscaled(detector, lfw_photos):
    photo = load_image(lfw_photos[2])
    ref = detector.detect(photo)[0]
    big = cv2.resize(photo, (2000, 2000), interpolation=cv2.INTER_CUBIC)  # 4 MP > 2.5 MP limit
    face = detector.detect(big)[0]
    assert np.allclose(np.array(face.box) / 8, ref.box, atol=6)
    # landmarks come from the full-resolution photo, so they scale with it
    assert np.abs((face.landmarks + 0.5) / 8 - 0.5 - ref.landmarks).mean() < 2.0


def test_confident_face_beats_a_larger_weak_box():
    """scikit-image's astronaut: the NASA patch is a larger, weak box; the face must win."""
    skdata = pytest.importorskip("skimage.data")
    from facerecon.imageio.detect import FaceDetector

    faces = FaceDetector().detect(np.asarray(skdata.astronaut()))
    x0, y0, x1, y1 = faces[0].box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert 170 < cx < 290 and 60 < cy < 190 and faces[0].score > 1.0
