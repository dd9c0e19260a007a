"""prepare()/Preparer: photo -> crops, landmarks both ways, attention; and the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facerecon.imageio import FaceDetector, ImageError, NoFaceError, PreparedFace, Preparer, prepare
from facerecon.imageio.load import load_image


from tests.conftest import need_shared as need  # noqa: E402


@pytest.fixture(scope="module")
def preparer() -> Preparer:
    return Preparer()


@pytest.fixture(scope="module")
def photo() -> Path:
    return sorted(need("faces", "lfw").glob("A*/*_0001.jpg"))[0]


def test_prepare_path(preparer, photo):
    faces = preparer.prepare(photo)
    assert len(faces) == 1
    f = faces[0]
    assert isinstance(f, PreparedFace)
    assert f.source == str(photo) and f.image_size == (250, 250)
    assert f.crop.shape == (224, 224, 3) and f.crop.dtype == np.uint8
    assert f.attention.shape == (224, 224) and f.attention.dtype == np.float32
    assert 0.0 <= f.attention.min() and f.attention.max() == 1.0
    # the cheeks (between eyes and mouth, beside the nose) are mostly classified as skin
    lm = f.landmarks_crop
    cheek = f.attention[int(lm[29, 1]) - 5:int(lm[33, 1]), int(lm[2, 0]) + 8:int(lm[31, 0]) - 4]
    assert cheek.mean() > 0.7
    assert f.landmarks_crop.shape == (68, 2) and f.landmarks_photo.shape == (68, 2)
    assert np.allclose(f.to_photo(f.landmarks_crop), f.landmarks_photo, atol=1e-3)
    assert np.allclose(f.M @ np.r_[f.M_inv, [[0, 0, 1]]], np.c_[np.eye(2), np.zeros(2)], atol=1e-9)
    assert f.score > 0 and len(f.box) == 4
    # the detector's spread, carried into crop pixels: the same share of the eye distance
    face = preparer.detector.find_faces(np.ascontiguousarray(load_image(photo)))[0]
    eyes = lambda lm: np.linalg.norm(lm[36] - lm[45])  # noqa: E731
    assert f.landmark_spread.shape == (68,) and f.landmark_spread.dtype == np.float32
    assert np.allclose(f.landmark_spread / eyes(f.landmarks_crop), face.spread / eyes(f.landmarks_photo), rtol=1e-3)


def test_prepare_function_with_array_and_errors(preparer, photo, tmp_path):
    rgb = load_image(photo)
    faces = prepare(rgb, preparer.detector, skin=preparer.skin)
    assert faces[0].source is None
    assert np.array_equal(faces[0].crop, preparer.prepare(photo)[0].crop)
    (tmp_path / "x.jpg").write_text("not a photo")
    with pytest.raises(ImageError, match=r"x\.jpg: not a recognised image"):
        preparer.prepare(tmp_path / "x.jpg")
    flat = tmp_path / "flat.png"
    from PIL import Image

    Image.new("RGB", (64, 64), (90, 120, 150)).save(flat)
    with pytest.raises(NoFaceError, match=r"flat\.png: no face found"):
        preparer.prepare(flat)


def test_prepare_source_loads_once_and_names_the_file(preparer, photo, tmp_path, monkeypatch):
    import facerecon.imageio as imageio
    from PIL import Image

    calls: list[object] = []

    def counting(source, *args, **kwargs):
        calls.append(source)
        return load_image(source, *args, **kwargs)

    monkeypatch.setattr(imageio, "load_image", counting)
    rgb, faces = preparer.prepare_source(photo)
    assert calls == [photo]  # loaded once; the faces are found on that same array
    assert np.array_equal(rgb, load_image(photo))
    assert len(faces) == 1 and faces[0].source == str(photo) and faces[0].image_size == rgb.shape[:2]
    calls.clear()
    assert np.array_equal(preparer.prepare(photo)[0].crop, faces[0].crop)
    assert calls == [photo]
    # a photo without a face: the one-line error names the file, not "<array>"
    noface = tmp_path / "noface.jpg"
    Image.new("RGB", (1, 1)).save(noface, format="PNG")
    with pytest.raises(NoFaceError) as info:
        preparer.prepare_source(noface)
    assert str(info.value).startswith(f"{noface}: no face found") and "\n" not in str(info.value)
    # an in-memory photo prepared with a name: errors use the name, faces record the source
    with pytest.raises(NoFaceError, match=r"^shot\.png: no face found"):
        preparer.prepare_loaded(load_image(noface), name="shot.png")
    assert preparer.prepare_loaded(rgb, source=str(photo))[0].source == str(photo)


def test_cli_evaluate_landmarks_json(capsys):
    from facerecon.cli import main

    need("faces", "300w", "test")
    assert main(["evaluate", "landmarks", "--limit", "4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_images"] == 4 and len(doc["per_image"]) == 4
    assert 0 < doc["mean_nme_eyes"] < 0.06 and doc["detection_rate"] == 1.0


def test_cli_evaluate_landmarks_eye_spread_limit(tmp_path, capsys):
    """Three 300-W test photos with glasses drawn: the default detector completes the unsure eye and
    brow points and lands closer to the annotation than with the completion off (limit 0)."""
    import shutil

    import cv2

    from facerecon.cli import main
    from facerecon.evaluation.real_skin import draw_occluder
    from facerecon.imageio.pts import read_pts

    root = need("faces", "300w", "test")
    for i, pts in enumerate(sorted(root.glob("*.pts"))[:3]):
        photo = draw_occluder(load_image(pts.with_suffix(".jpg")), read_pts(pts), "glasses", np.random.default_rng(i))
        cv2.imwrite(str(tmp_path / f"{pts.stem}.png"), photo[:, :, ::-1])
        shutil.copy(pts, tmp_path / pts.name)
    nme = {}
    for limit in ([], ["--eye-spread-limit", "0"]):
        assert main(["evaluate", "landmarks", "--images", str(tmp_path), "--json", "--no-progress", *limit]) == 0
        nme[len(limit) > 0] = json.loads(capsys.readouterr().out)["mean_nme_eyes"]
    assert nme[False] < nme[True] - 0.005
    assert main(["evaluate", "landmarks", "--images", str(tmp_path), "--eye-spread-limit", "-1"]) != 0


def test_cli_bench_input_survives_bad_files(tmp_path, photo, capsys):
    from facerecon.cli import main

    (tmp_path / "good.jpg").write_bytes(photo.read_bytes())
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    from PIL import Image

    Image.new("RGB", (80, 80), (200, 200, 200)).save(tmp_path / "noface.png")
    assert main(["bench", "input", "--images", str(tmp_path), "--no-progress"]) == 0
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    assert "Traceback" not in out + err
    assert "2 photo(s) could not be loaded" in out
    assert f"{tmp_path / 'empty.jpg'}: empty file" in out
    row = next(line for line in out.splitlines() if line.startswith(tmp_path.name))
    assert "50.0%" in row  # 2 loaded photos, 1 with a face


def test_small_face_note_speaks_only_for_an_enlarged_face():
    import math

    def face(scale: float) -> PreparedFace:
        c, s = math.cos(0.2), math.sin(0.2)
        M = np.array([[scale * c, -scale * s, 3.0], [scale * s, scale * c, 1.0]])  # photo -> crop
        lm = np.zeros((68, 2), np.float32)
        lm[36], lm[45] = (10.0, 20.0), (26.0, 32.0)  # outer eye corners 20 px apart (a 12-16-20 triangle)
        return PreparedFace(None, (60, 60), np.zeros((224, 224, 3), np.uint8), lm, lm,
                            np.zeros((224, 224), np.float32), M, M, (0, 0, 1, 1), 1.0)

    assert face(4.0).upsampling == pytest.approx(4.0)
    note = face(4.0).small_face_note()
    assert note is not None and "20 px apart" in note and "4.0x" in note
    assert face(1.4).small_face_note() is None  # LFW's 250 px photos
    assert face(4.0).small_face_note(limit=5.0) is None
