"""The camera's focal length from EXIF or a given 35 mm-equivalent lens, and what the fitter's
camera becomes from it (hand-computed figures)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from facerecon.imageio import PreparedFace, Preparer
from facerecon.imageio.focal import exif_focal, focal_from_35mm, read_focal


def _photo(path, size=(400, 300), **tags) -> None:
    im = Image.new("RGB", size, (128, 100, 90))
    exif = im.getexif()
    sub = exif.get_ifd(0x8769)
    for key, value in tags.items():
        sub[int(key[1:], 16)] = value
    im.save(path, exif=exif)


def test_35mm_equivalent_focal_in_pixels_by_hand():
    # a phone's 26 mm lens on a 4032x3024 photo: diagonal 5040 px, 36x24 mm frame diagonal 43.2666 mm
    assert focal_from_35mm(26, 4032, 3024) == pytest.approx(26 / math.sqrt(36 ** 2 + 24 ** 2) * 5040, rel=1e-9)
    assert focal_from_35mm(26, 4032, 3024) == pytest.approx(3028.6, abs=0.1)
    with pytest.raises(ValueError, match="> 0"):
        focal_from_35mm(0, 10, 10)


def test_exif_35mm_focal_of_a_resized_copy(tmp_path):
    # recorded at 4032x3024, the file is a 400x300 copy: same field of view, focal by its own diagonal
    _photo(tmp_path / "a.jpg", xA405=26, xA002=4032, xA003=3024)
    assert read_focal(tmp_path / "a.jpg") == pytest.approx(26 / 43.26662 * 500, rel=1e-5)


def test_a_cropped_photo_gives_no_focal(tmp_path):
    _photo(tmp_path / "c.jpg", size=(300, 300), xA405=26, xA002=4032, xA003=3024)
    assert read_focal(tmp_path / "c.jpg") is None
    # the recorded size of a portrait photo stored landscape (or the reverse) is not a crop
    _photo(tmp_path / "r.jpg", size=(300, 400), xA405=26, xA002=4032, xA003=3024)
    assert read_focal(tmp_path / "r.jpg") == pytest.approx(26 / 43.26662 * 500, rel=1e-5)


def test_focal_from_the_sensor_resolution(tmp_path):
    # 50 mm lens, 4000 sensor pixels per inch along a recorded width of 6000 px; the file is 1/15 of it
    _photo(tmp_path / "s.jpg", size=(400, 267), x920A=50.0, xA20E=4000.0, xA210=2, xA002=6000, xA003=4000)
    assert read_focal(tmp_path / "s.jpg") == pytest.approx(50 * 4000 / 25.4 * 400 / 6000, rel=1e-6)


def test_no_exif_or_no_file_gives_none(tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "plain.png")
    assert read_focal(tmp_path / "plain.png") is None
    assert read_focal(tmp_path / "missing.jpg") is None
    assert exif_focal(Image.new("RGB", (40, 30))) is None


def _face(M: np.ndarray, focal_photo=None) -> PreparedFace:
    z = np.zeros((68, 2), np.float32)
    return PreparedFace(None, (300, 400), np.zeros((224, 224, 3), np.uint8), z, z, np.zeros((224, 224), np.float32),
                        M, M, (0, 0, 1, 1), 1.0, focal_photo=focal_photo)


def test_crop_focal_scales_the_photo_focal_by_the_alignment():
    c, s = math.cos(0.3), math.sin(0.3)
    M = np.array([[0.5 * c, -0.5 * s, 10.0], [0.5 * s, 0.5 * c, -4.0]])  # photo -> crop: half size, turned
    assert _face(M, 3000.0).crop_focal(1015.0) == pytest.approx(1500.0)
    assert _face(M).crop_focal(1015.0) == 1015.0


def test_preparer_lens_settings(tmp_path):
    _photo(tmp_path / "a.jpg", xA405=26)
    rgb = np.zeros((300, 400, 3), np.uint8)
    path = tmp_path / "a.jpg"
    p = Preparer.__new__(Preparer)  # no detector needed to read a lens
    p.focal_35mm = "exif"
    assert p.photo_focal(path, rgb) == pytest.approx(26 / 43.26662 * 500, rel=1e-5)
    assert p.photo_focal(Image.open(path), rgb) == pytest.approx(26 / 43.26662 * 500, rel=1e-5)
    assert p.photo_focal(rgb, rgb) is None  # an array has no EXIF
    p.focal_35mm = "none"
    assert p.photo_focal(path, rgb) is None
    p.focal_35mm = 52.0
    assert p.photo_focal(rgb, rgb) == pytest.approx(52 / 43.26662 * 500, rel=1e-5)
    with pytest.raises(ValueError, match="exif"):
        Preparer(detector=object(), skin=object(), focal_35mm="auto")
    with pytest.raises(ValueError, match="> 0"):
        Preparer(detector=object(), skin=object(), focal_35mm=-3)
