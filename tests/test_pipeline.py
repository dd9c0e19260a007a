"""FaceReconstructor: photos loaded once, errors naming the file, batches paired with their inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import need_shared

#: Three different people, so that a result paired with the wrong photo cannot look right.
PEOPLE = ("Aaron_Peirsol", "Abdoulaye_Wade", "Adam_Sandler")
#: Where each photo (250×250) is pasted on a 350×350 grey canvas: faces 100 px apart in the photo.
OFFSETS = ((0, 0), (100, 100), (0, 100))


def shifted_photos(folder: Path, names: tuple[str, ...] = ("s0.png", "s1.png", "s2.png")) -> list[Path]:
    """Write three LFW photos of different people, each at a different place on a grey canvas."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for person, (oy, ox), name in zip(PEOPLE, OFFSETS, names):
        rgb = np.asarray(Image.open(need_shared("faces", "lfw", person, f"{person}_0001.jpg")).convert("RGB"))
        canvas = np.full((350, 350, 3), 128, np.uint8)
        canvas[oy:oy + 250, ox:ox + 250] = rgb
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(canvas).save(path, quality=95)
        out.append(path)
    return out


def no_face_photo(path: Path) -> Path:
    """A 1×1 PNG under a JPEG name: loads fine, holds no face."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (1, 1), (120, 90, 60)).save(path, format="PNG")
    return path


def mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean point-to-point distance of two (68, 2) landmark sets, pixels."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=1).mean())


@pytest.fixture(scope="module")
def recon():
    from facerecon.fitting.engine import FitConfig
    from facerecon.pipeline import FaceReconstructor

    need_shared("faces", "lfw")
    return FaceReconstructor(config=FitConfig(landmark_steps=5, steps=2, perceptual=False))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    return shifted_photos(tmp_path_factory.mktemp("shifted"))


@pytest.fixture(scope="module")
def detected(recon, photos) -> dict[str, np.ndarray]:
    """Each photo's detected landmarks (photo pixels), found one photo at a time."""
    return {str(p): recon.preparer.prepare(p)[0].landmarks_photo for p in photos}


def test_photos_differ(detected):
    """The pairing tests below only mean something if the photos' faces are far apart."""
    pts = list(detected.values())
    assert min(mean_distance(a, b) for i, a in enumerate(pts) for b in pts[i + 1:]) > 50


def test_prepare_loads_the_photo_once(recon, photos, monkeypatch):
    import facerecon.imageio as imageio
    import facerecon.pipeline as pipeline
    from facerecon.imageio.load import load_image

    calls: list[object] = []

    def counting(source, *args, **kwargs):
        calls.append(source)
        return load_image(source, *args, **kwargs)

    # every loader the way in can reach: the pipeline's (if it has one) and the Preparer's
    monkeypatch.setattr(pipeline, "load_image", counting, raising=False)
    monkeypatch.setattr(imageio, "load_image", counting)
    photo, faces = recon.prepare(photos[1])
    assert calls == [photos[1]]
    assert photo.shape == (350, 350, 3) and np.array_equal(photo, load_image(photos[1]))
    assert len(faces) == 1 and faces[0].source == str(photos[1]) and faces[0].image_size == (350, 350)


def test_no_face_error_names_the_file(recon, tmp_path, monkeypatch):
    from facerecon.imageio import NoFaceError

    monkeypatch.chdir(tmp_path)
    no_face_photo(tmp_path / "noface.jpg")
    for source in ("noface.jpg", tmp_path / "noface.jpg"):
        with pytest.raises(NoFaceError) as info:
            recon(source)
        msg = str(info.value)
        assert msg.startswith(f"{source}: no face found") and "<array>" not in msg and "\n" not in msg


def test_batch_results_paired_with_their_inputs(recon, photos, detected):
    """One batch of three different photos: each result is its own photo's (source, landmarks, fit)."""
    seen = []
    for i, rec in recon.iter_reconstruct(photos, batch_size=3):
        seen.append(i)
        assert rec.source == str(photos[i])
        assert rec.photo.shape == (350, 350, 3)
        assert mean_distance(rec.landmarks_fit, detected[str(photos[i])]) < 10
        # aligned crops look alike, so a mix-up inside the fitter's outputs would keep the
        # landmarks near; the same photo fitted alone must give the same fit
        (alone,) = recon(photos[i])
        assert np.allclose(rec.landmarks_fit, alone.landmarks_fit, atol=0.05)
        assert torch.allclose(rec.params.to_vector(), alone.params.to_vector(), atol=1e-3)
    assert seen == [0, 1, 2]


def test_reconstruct_many_splits_and_keeps_order(recon, photos, detected, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    noface = no_face_photo(tmp_path / "noface.jpg")
    sources = [photos[0], bad, photos[1], noface, photos[2]]
    done, failed = recon.reconstruct_many(sources, batch_size=2, progress=False)
    assert [r.source for r in done] == [str(p) for p in photos]
    for rec in done:
        assert mean_distance(rec.landmarks_fit, detected[rec.source]) < 10
        assert rec.params.alpha.shape[0] == 1 and set(rec.losses) >= {"total", "photo", "landmark"}
    assert [f.source for f in failed] == [str(bad), str(noface)]
    assert failed[0].reason.startswith(f"{bad}: not a recognised image")
    assert failed[1].reason.startswith(f"{noface}: no face found")


def test_a_photos_lens_sets_its_own_camera(recon, photos, tmp_path):
    """A photo whose EXIF records a 26 mm (35 mm-equivalent) lens is fitted through that lens
    (focal length in crop pixels = its pixels' focal × the alignment's scale, by hand), in the
    same batch as one without EXIF (the default camera); its face lands proportionally closer."""
    from dataclasses import replace

    from facerecon.imageio.focal import FULL_FRAME_DIAGONAL

    im = Image.open(photos[0])
    exif = im.getexif()
    exif.get_ifd(0x8769)[0xA405] = 26
    lens = tmp_path / "lens.jpg"
    im.save(lens, exif=exif, quality=95)
    assert recon.preparer.focal_35mm == "none"  # the default: EXIF's lens is not used
    assert recon.preparer.prepare(lens)[0].focal_photo is None
    recon.preparer.focal_35mm = "exif"
    try:
        with_lens, without = recon.iter_reconstruct([lens, photos[0]], batch_size=2)
    finally:
        recon.preparer.focal_35mm = "none"
    rec, plain = with_lens[1], without[1]
    focal_photo = 26 / FULL_FRAME_DIAGONAL * np.hypot(350, 350)
    assert rec.prepared.focal_photo == pytest.approx(focal_photo, rel=1e-6)
    scale = np.sqrt(abs(np.linalg.det(rec.prepared.M[:, :2])))
    assert rec.camera.focal == pytest.approx(focal_photo * scale, rel=1e-5)
    assert plain.camera.focal == recon.camera.focal and plain.prepared.focal_photo is None
    # the same face size in the crop: the landmarks' depth in proportion to the focal length
    from facerecon.render import transform

    def landmark_depth(r) -> float:
        lm3d = recon.fitter.forward.landmarks3d(r.params.map(lambda t: t.to(recon.device)))
        return float(-transform(lm3d, r.params.angles, r.params.trans)[..., 2].mean())

    ratio = rec.camera.focal / recon.camera.focal
    assert landmark_depth(rec) / landmark_depth(plain) == pytest.approx(ratio, rel=0.03)
    assert mean_distance(rec.landmarks_fit, plain.landmarks_fit) < 3

    # engine "rnet": R-Net's placement moved to the lens's distance, nothing else changed
    from facerecon.pipeline import FaceReconstructor

    net = FaceReconstructor(engine="rnet", preparer=recon.preparer)
    _, (prep,) = net.prepare(photos[0])
    ra = net.fit_prepared([(rec.photo, prep)])[0]
    rb = net.fit_prepared([(rec.photo, replace(prep, focal_photo=focal_photo))])[0]
    a, b = ra.params, rb.params
    k = focal_photo * np.sqrt(abs(np.linalg.det(prep.M[:, :2]))) / net.camera.focal
    assert k < 0.6  # a wide lens: the face much closer than the default camera's
    torch.testing.assert_close(b.trans[:, 2], a.trans[:, 2] * k)  # depth in proportion to the focal length
    torch.testing.assert_close(b.trans[:, :2], a.trans[:, :2])  # pixel = focal·x/z: the same place in the crop
    torch.testing.assert_close(b.alpha, a.alpha)
    inner_a, inner_b = ra.landmarks_fit[17:], rb.landmarks_fit[17:]
    assert np.linalg.norm(inner_a.mean(0) - inner_b.mean(0)) < 1.0  # the same crop (perspective aside)
