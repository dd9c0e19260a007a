"""Synthetic ground truth (facerecon.synthesis, evaluation.scan_photos, ``facerecon synth``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facerecon.assets import shared_path

pytestmark = pytest.mark.skipif(shared_path("facemodel") is None, reason="face model not available")


@pytest.fixture(scope="module")
def model():
    from facerecon.facemodel import load_face_model

    return load_face_model(region="fit")


@pytest.fixture(scope="module")
def samples(model):
    from facerecon.synthesis import generate

    return list(generate(8, seed=11, model=model, batch_size=8))


def test_same_seed_same_samples_whatever_the_batching(model, samples):
    from facerecon.synthesis import generate

    again = list(generate(3, seed=11, model=model, batch_size=1, start=2))
    for a, b in zip(samples[2:5], again):
        assert a["index"] == b["index"] and a["meta"] == b["meta"]
        for key in ("alpha", "beta", "delta", "gamma", "angles", "trans"):
            torch.testing.assert_close(getattr(a["params"], key), getattr(b["params"], key), rtol=0, atol=1e-5)
        torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=1e-4)
    other = next(generate(1, seed=12, model=model))
    assert not torch.equal(other["params"].alpha, samples[0]["params"].alpha)


def test_parameters_are_in_their_ranges(samples):
    for s in samples:
        p = s["params"]
        assert p.batch == 1
        beta = p.beta[0]
        assert (beta >= 0).all() and (beta <= 1).all() and int((beta > 0).sum()) <= 4
        pitch, yaw, roll = np.degrees(p.angles[0].numpy())
        assert abs(yaw) <= 60 and abs(pitch) <= 20 and abs(roll) <= 15
        assert p.gamma[0, 0] >= 0.6  # ambient dominant
        assert s["image"].shape == (3, 224, 224) and 0 <= s["image"].min() and s["image"].max() <= 1
        assert p.trans[0, 2] < -500  # in front of the camera, about a metre away


def test_landmarks_inside_the_image_and_on_the_face(samples):
    import cv2

    for s in samples:
        xy = s["landmarks2d"].numpy()
        assert (xy >= 0).all() and (xy < 224).all()
        mask = cv2.dilate(s["mask"][0].numpy().astype(np.uint8), np.ones((5, 5), np.uint8))
        on = mask[xy[:, 1].astype(int), xy[:, 0].astype(int)] > 0
        assert on.all(), f"sample {s['index']}: landmarks {np.flatnonzero(~on)} off the face"
        assert s["landmarks_visible"][17:].float().mean() > 0.6  # inner points mostly visible
    # a frontal-ish face sees its nose, eyes and outer lips (inner-lip points 60-67 may hide
    # behind the lips, depending on the expression)
    frontal = min(samples, key=lambda s: abs(float(s["params"].angles[0, 1])))
    assert frontal["landmarks_visible"][27:60].all()


def test_saved_parameters_reproduce_the_saved_mesh_and_landmarks(tmp_path, model, samples):
    import trimesh

    from facerecon.imageio.pts import read_pts
    from facerecon.synthesis import params_from_record, save_sample
    from facerecon.render import Camera, project, transform

    paths = save_sample(samples[3], tmp_path, model.faces.numpy(), model=model)
    rec = json.loads(paths["params"].read_text())
    truth = params_from_record(rec)
    torch.testing.assert_close(truth.to_vector(), samples[3]["params"].to_vector(), rtol=0, atol=1e-5)
    verts = model.shape(truth.alpha, truth.beta)
    saved = trimesh.load(paths["mesh"], process=False)
    np.testing.assert_allclose(np.asarray(saved.vertices), verts[0].numpy(), atol=2e-3)  # float32 PLY
    assert len(saved.faces) == len(model.faces)
    cam = Camera(focal=rec["camera"]["focal_px"], size=rec["camera"]["size_px"])
    xy, _ = project(model.landmarks(transform(verts, truth.angles, truth.trans)), cam)
    np.testing.assert_allclose(xy[0].numpy(), np.asarray(rec["landmarks2d_px"]), atol=2e-3)
    np.testing.assert_allclose(read_pts(paths["pts"]), np.asarray(rec["landmarks2d_px"]), atol=2e-3)
    assert rec["model"]["n_vertices"] == model.n_vertices and len(rec["beta"]) == 53
    from PIL import Image

    assert Image.open(paths["image"]).size == (224, 224)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_backgrounds_come_from_outside_the_faces():
    import cv2
    from PIL import Image

    from facerecon.imageio.pts import read_pts
    from facerecon.synthesis.backgrounds import PhotoBackgrounds

    if shared_path("faces", "300w") is None:
        pytest.skip("300-W photos not available")
    bank = PhotoBackgrounds()
    rng = np.random.default_rng(0)
    for _ in range(25):
        img, info = bank.sample(rng, 224)
        src = shared_path(info["source"])
        x0, y0, x1, y1 = info["box"]
        fx0, fy0, fx1, fy1 = bank.face_box(read_pts(src.with_suffix(".pts")).astype(np.float64))
        assert x1 <= fx0 or x0 >= fx1 or y1 <= fy0 or y0 >= fy1, f"{src}: patch overlaps the face"
        photo = np.asarray(Image.open(src).convert("RGB"))
        patch = photo[y0:y1, x0:x1]
        assert (patch.max(-1) >= 6).all()  # no padding from outside the photo
        if info["flipped"]:
            patch = patch[:, ::-1]
        expect = cv2.GaussianBlur(cv2.resize(np.ascontiguousarray(patch), (224, 224),
                                             interpolation=cv2.INTER_CUBIC), (0, 0), info["blur_sigma_px"])
        assert np.abs(expect.astype(np.float32) / 255 - img).max() < 0.02  # it is that crop


def test_scan_photos_keep_the_scan_as_ground_truth():
    from facerecon.evaluation.scan_photos import generate_scan_photos, lee_perry_smith_in_model_frame
    from facerecon.render import Camera, project, transform

    if shared_path("scans", "lee-perry-smith", "LeePerrySmith.glb") is None:
        pytest.skip("scan not available")
    scan = lee_perry_smith_in_model_frame()
    shots = list(generate_scan_photos(5, seed=2, scan=scan))
    assert [s["meta"]["view_yaw_deg"] for s in shots] == [0.0, 20.0, -20.0, 40.0, -40.0]
    verts = torch.tensor(scan.vertices, dtype=torch.float32)[None]
    lmk = torch.tensor(scan.landmarks, dtype=torch.float32)[None]
    for s in shots:
        assert np.degrees(float(s["angles"][1])) == pytest.approx(s["meta"]["view_yaw_deg"], abs=1e-4)
        xy, _ = project(transform(lmk, s["angles"][None], s["trans"][None]), Camera())
        torch.testing.assert_close(xy[0], s["landmarks2d"], rtol=0, atol=1e-3)
        assert (s["landmarks2d"][17:] > 0).all() and (s["landmarks2d"][17:] < 224).all()
        assert s["mask"].mean() > 0.3  # a face-sized render
    # the scan's nose tip, rendered frontally, is where its landmark says
    front = shots[0]
    vc = transform(verts, front["angles"][None], front["trans"][None])
    tip = torch.argmax(vc[0, :, 2])
    xy, _ = project(vc[:, tip:tip + 1], Camera())
    assert torch.linalg.norm(xy[0, 0] - front["landmarks2d"][30]) < 6.0


def test_cli_synth_writes_everything(tmp_path, capsys):
    from facerecon.cli import main

    out = tmp_path / "synth"
    assert main(["synth", "--out", str(out), "--count", "3", "--seed", "4", "--batch-size", "2"]) == 0
    names = sorted(p.name for p in out.iterdir())
    for i in range(3):
        assert {f"{i:06d}.png", f"{i:06d}.json", f"{i:06d}.ply", f"{i:06d}.pts"} <= set(names)
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["written"] == 3 and manifest["config"]["max_yaw_deg"] == 60.0
    rec = json.loads((out / "000001.json").read_text())
    assert rec["image"] == "000001.png" and rec["mesh"] == "000001.ply"
    # bad input: one line, exit code 2
    capsys.readouterr()
    assert main(["synth", "--out", str(out / "000000.png"), "--count", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "000000.png" in err


def test_cli_synth_distance_records_each_samples_camera(tmp_path, capsys):
    """--distance MIN MAX: the manifest keeps the range, each sample's record its own short
    focal length (a face 400 mm away filling the crop: about a third of 1015 px); a bad range or
    --scan with it is one line and exit code 2."""
    from facerecon.cli import main

    out = tmp_path / "close"
    assert main(["synth", "--out", str(out), "--count", "2", "--distance", "400", "400", "--no-mesh",
                 "--background", "grey"]) == 0
    assert json.loads((out / "synth.json").read_text())["config"]["distance_mm"] == [400.0, 400.0]
    for i in range(2):
        focal = json.loads((out / f"{i:06d}.json").read_text())["camera"]["focal_px"]
        assert 250.0 < focal < 450.0, focal
    capsys.readouterr()
    for bad in (["--distance", "50", "400"], ["--distance", "400", "300"], ["--distance", "400", "500", "--scan",
                                                                               "lee-perry-smith"]):
        assert main(["synth", "--out", str(tmp_path / "bad"), "--count", "1", *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--distance" in err


def _fake_skin_samples(folder, colours):
    """Albedo sample files as tools/albedo_samples.py writes them: one flat colour per photo,
    every face-part vertex seen squarely on skin."""
    from facerecon.facemodel import ict

    folder.mkdir()
    ids = np.arange(*ict.PARTS["face"], dtype=np.int32)
    for i, c in enumerate(colours):
        np.savez(folder / f"p{i}.npz", albedo=np.tile(np.float16(c), (len(ids), 1)),
                 weight=np.full(len(ids), 255, np.uint8), skin=np.full(len(ids), 255, np.uint8),
                 params=np.zeros(228, np.float32), vertex_ids=ids, source=f"p{i}.jpg", loss=0.0)


def test_synth_with_real_skin_paints_the_samples_colour(tmp_path, model):
    """Faces painted from skin samples take the sample's colour (here a flat green no albedo
    model would give), keep the model's own eyes, and carry δ = 0 and the sample's name."""
    from facerecon.synthesis.generate import generate_batches
    from facerecon.synthesis.sampling import SynthConfig
    from facerecon.synthesis.skins import SkinBank

    green = (0.2, 0.6, 0.3)
    _fake_skin_samples(tmp_path / "skins", [green])
    bank = SkinBank(tmp_path / "skins", model)
    face = model.vertex_ids < 9409
    assert np.allclose(bank.albedo[0][face], green, atol=1e-3)
    assert np.allclose(bank.albedo[0][~face], model.albedo_mean.numpy()[~face])  # eyeballs: the model's
    cfg = SynthConfig(skin_samples=str(tmp_path / "skins"), background="grey", noise_std=0.0)
    batch = next(generate_batches(2, 0, cfg, batch_size=2, model=model))
    assert batch["meta"][0]["skin_sample"] == "p0" and not batch["params"].delta.any()
    img, mask = batch["image"], batch["mask"][:, 0] > 0
    g_over_r = img[:, 1][mask].mean() / img[:, 0][mask].mean()
    assert g_over_r > 2.0  # green skin: G/R = 3 in the albedo, shading is grey
    plain = next(generate_batches(2, 0, SynthConfig(background="grey", noise_std=0.0), batch_size=2, model=model))
    assert plain["image"][:, 1][plain["mask"][:, 0] > 0].mean() < plain["image"][:, 0][plain["mask"][:, 0] > 0].mean()


def test_a_close_camera_frames_the_face_like_the_crops_at_the_distance_asked(model):
    """distance_focal + frame_translation: the mean face, frontal, without jitter, has its inner
    landmarks' centroid exactly ``distance`` mm in front of the camera, and its inner landmarks
    fill the alignment template (same centre, same RMS size) whatever the distance."""
    from facerecon.imageio.align import template_landmarks
    from facerecon.render import Camera, project
    from facerecon.synthesis.sampling import SynthConfig, distance_focal, frame_translation

    cfg = SynthConfig(distance_jitter=0.0, shift_mm=0.0)
    ref = model.landmarks(model.mean[None])[0]
    distance = torch.tensor([350.0, 1000.0, 3000.0])
    focal = distance_focal(distance, ref, cfg)
    assert bool((focal[1:] / focal[:-1] - distance[1:] / distance[:-1]).abs().max() < 1e-4)  # focal ∝ distance
    faces = ref[None].expand(3, -1, -1)
    trans = frame_translation(faces, torch.zeros(3, 3), torch.zeros(3, 3), ref, cfg, focal=focal)
    cam = faces + trans[:, None]
    assert torch.allclose(-cam[:, 17:].mean(1)[:, 2], distance, rtol=1e-5)
    xy, _ = project(cam, Camera(focal=focal, size=cfg.size))
    tpl = torch.tensor(template_landmarks(cfg.size)[17:], dtype=torch.float32)
    size = (xy[:, 17:] - xy[:, 17:].mean(1, keepdim=True)).pow(2).sum(-1).mean(1).sqrt()
    t_size = (tpl - tpl.mean(0)).pow(2).sum(-1).mean().sqrt()
    assert bool(((size / t_size) - 1).abs().max() < 0.02), size / t_size
    assert bool((xy[:, 17:].mean(1) - tpl.mean(0)).norm(dim=-1).max() < 1.5)


def test_a_distance_range_changes_the_camera_not_the_face(model):
    """The same seed with and without a distance range: the same faces, poses and light; each
    sample's camera follows its drawn distance (the backdrop and noise stay), its landmarks are
    its mesh projected through that camera, the face keeps its place in the crop (a few pixels of perspective), and the default
    stream (no range) still renders through the pipeline's 1015 px camera."""
    from facerecon.render import Camera, project
    from facerecon.synthesis.generate import generate_batches
    from facerecon.synthesis.sampling import SynthConfig

    plain = next(generate_batches(4, 3, SynthConfig(background="grey"), batch_size=4, model=model))
    close = next(generate_batches(4, 3, SynthConfig(background="grey", distance_mm=(300.0, 600.0)),
                                  batch_size=4, model=model))
    for k in ("alpha", "beta", "delta", "gamma", "angles"):
        assert torch.equal(getattr(plain["params"], k), getattr(close["params"], k)), k
    assert torch.equal(plain["focal"], torch.full((4,), 1015.0))
    dist = torch.tensor([m["distance_mm"] for m in close["meta"]])
    assert bool(((dist >= 300) & (dist <= 600)).all()) and "distance_mm" not in plain["meta"][0]
    assert bool((close["focal"] < 0.6 * 1015).all())
    from facerecon.render import transform

    lmk_cam = transform(model.landmarks(close["verts"]), close["params"].angles, close["params"].trans)
    depth = -lmk_cam[:, 17:, 2].mean(1)  # the face (inner landmarks) sits at the drawn distance, ± its size
    assert bool(((depth / dist) - 1).abs().max() < 0.15), depth / dist
    xy, _ = project(lmk_cam, Camera(focal=close["focal"], size=224))
    assert torch.allclose(xy, close["landmarks2d"], atol=0.05)
    moved = (close["landmarks2d"][:, 17:] - plain["landmarks2d"][:, 17:]).norm(dim=-1).mean(1)
    assert bool((moved < 5.0).all()) and bool((moved > 0.1).all()), moved  # perspective, not placement
    assert not torch.allclose(close["image"], plain["image"], atol=0.05)
    grown = torch.nn.functional.max_pool2d(torch.maximum(close["mask"], plain["mask"]), 7, 1, 3)
    background = grown == 0  # off both faces and their antialiased edges
    assert torch.equal(close["image"].expand(-1, 3, -1, -1)[background.expand(-1, 3, -1, -1)],
                       plain["image"].expand(-1, 3, -1, -1)[background.expand(-1, 3, -1, -1)])  # same backdrop
