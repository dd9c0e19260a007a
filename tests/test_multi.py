"""Multi-image reconstruction: aggregators, K-means across people, grouping, video frames, the
texture fused from several photos, and ``facerecon reconstruct --multi / --group`` end to end."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from facerecon.multi.aggregate import PhotoQuality, aggregate, kmeans_centroids, landmark_fisher, quality_weights
from facerecon.multi.grouping import group_vectors
from facerecon.params import FaceParams

from .conftest import need_shared


@pytest.fixture(scope="module")
def head(ict_archive):
    from facerecon.facemodel import load_face_model

    return load_face_model("head")


def _people(n_photos: list[int], seed: int = 0, spread: float = 0.05) -> tuple[FaceParams, np.ndarray, torch.Tensor]:
    """Per-photo params of several people: each person's α, δ plus small per-photo noise."""
    g = torch.Generator().manual_seed(seed)
    truth = torch.randn(len(n_photos), 80, generator=g)
    rows, owner = [], []
    for i, n in enumerate(n_photos):
        p = FaceParams.zeros(n)
        p.alpha = truth[i] + spread * torch.randn(n, 80, generator=g)
        p.delta = 0.5 * truth[i] + spread * torch.randn(n, 80, generator=g)
        p.angles[:, 1] = torch.linspace(-0.4, 0.4, n)
        rows.append(p)
        owner += [i] * n
    return FaceParams.cat(rows), np.array(owner), truth


def test_quality_weights_by_hand():
    q = [PhotoQuality(0.0, 0.0, 0.0), PhotoQuality(3.0, 0.0, 0.0), PhotoQuality(0.0, 60.0, 0.0),
         PhotoQuality(0.0, 0.0, 0.1)]
    raw = np.array([1.0, math.exp(-1), 0.25, math.exp(-1)])  # e^-(3/3), cos²60° = 1/4, e^-(0.1/0.1)
    np.testing.assert_allclose(quality_weights(q), raw / raw.sum(), rtol=1e-12)


def test_mean_median_quality_by_hand():
    p = FaceParams.zeros(3)
    p.alpha[:, 0] = torch.tensor([1.0, 2.0, 9.0])
    p.delta[:, 1] = torch.tensor([0.0, 3.0, 3.0])
    p.beta[:, 2] = torch.tensor([0.5, 0.2, 0.9])
    mean, w = aggregate(p, "mean")
    assert float(mean.alpha[0, 0]) == pytest.approx(4.0) and float(mean.delta[0, 1]) == pytest.approx(2.0)
    np.testing.assert_allclose(w, [1 / 3] * 3)
    assert torch.equal(mean.beta, torch.zeros(1, 53))  # the person's face is neutral
    med, _ = aggregate(p, "median")
    assert float(med.alpha[0, 0]) == 2.0 and float(med.delta[0, 1]) == 3.0
    med2, _ = aggregate(p[[0, 2]], "median")  # even count: the mean of the two middle values
    assert float(med2.alpha[0, 0]) == pytest.approx(5.0)
    q = [PhotoQuality(0.0, 0.0, 0.0), PhotoQuality(0.0, 0.0, 0.0), PhotoQuality(0.0, 90.0, 0.0)]  # 3rd: weight ~0
    qual, w = aggregate(p, "quality", qualities=q)
    np.testing.assert_allclose(w, [0.5, 0.5, 0.0], atol=1e-9)
    assert float(qual.alpha[0, 0]) == pytest.approx(1.5, abs=1e-6)


def test_segments_and_confidence_recover_a_shared_identity(face_model):
    """Photos that agree on α give that α back (segments: least squares on the blended surface;
    confidence: Fisher-weighted mean); a photo with zero quality weight is ignored."""
    from facerecon.forward import ForwardModel

    p, _, truth = _people([3], spread=0.0)
    p.alpha = p.alpha * 0.5
    seg, w = aggregate(p, "segments", model=face_model, qualities=[PhotoQuality(1, 0, 0.05)] * 3)
    torch.testing.assert_close(seg.alpha, p.alpha[:1], rtol=0, atol=0.02)
    other = p.map(lambda t: t.clone())
    other.alpha[2] = -other.alpha[2]
    q = [PhotoQuality(1, 0, 0.05), PhotoQuality(1, 0, 0.05), PhotoQuality(1, 90, 0.05)]
    seg2, w2 = aggregate(other, "segments", model=face_model, qualities=q)
    assert w2[2] < 1e-6
    torch.testing.assert_close(seg2.alpha, p.alpha[:1], rtol=0, atol=0.02)
    conf, _ = aggregate(p, "confidence", forward=ForwardModel(face_model))
    torch.testing.assert_close(conf.alpha, p.alpha[:1], rtol=0, atol=1e-5)


def test_landmark_fisher_matches_finite_differences(face_model):
    from facerecon.forward import ForwardModel

    fw = ForwardModel(face_model)
    p, _, _ = _people([1], spread=0.0)
    p.alpha = p.alpha * 0.3
    fisher = landmark_fisher(p, fw, sigma_px=1.0)[0]
    ids = fw.landmarks(p)[1]
    for k in (0, 5, 40):
        e = torch.zeros(1, 80)
        e[0, k] = 1e-2
        hi = FaceParams(p.alpha + e, p.beta, p.delta, p.gamma, p.angles, p.trans)
        lo = FaceParams(p.alpha - e, p.beta, p.delta, p.gamma, p.angles, p.trans)
        d = (fw.landmarks(hi, ids)[0] - fw.landmarks(lo, ids)[0]) / 2e-2
        assert float(fisher[k]) == pytest.approx(float((d ** 2).sum()), rel=1e-2)


def test_landmark_fisher_sees_each_photo_through_its_own_camera(face_model):
    """Photos with one focal length each: each row is that photo's Fisher information through its
    own camera (a 400 mm lens sees the landmarks move 0.4 times as far per unit of α here)."""
    from facerecon.forward import ForwardModel
    from facerecon.render import Camera

    p, _, _ = _people([2], spread=0.3)
    cam = Camera(focal=torch.tensor([406.0, 1015.0]))
    both = landmark_fisher(p, ForwardModel(face_model, cam), sigma_px=1.0)
    for i in range(2):
        alone = landmark_fisher(p[i], ForwardModel(face_model, cam.item(i)), sigma_px=1.0)[0]
        torch.testing.assert_close(both[i], alone)
    default = landmark_fisher(p[:1], ForwardModel(face_model), sigma_px=1.0)[0]
    assert float(both[0].sum() / default.sum()) == pytest.approx(0.4 ** 2, rel=1e-3)


def test_kmeans_across_people_finds_them():
    p, owner, truth = _people([4, 3, 5], seed=1)
    centroids, labels, purity = kmeans_centroids(p, owner, "identity")
    np.testing.assert_array_equal(purity, [1.0, 1.0, 1.0])
    assert len(set(labels)) == 3
    for i in range(3):
        torch.testing.assert_close(centroids.alpha[i], p.alpha[torch.as_tensor(owner == i)].mean(0))
        assert float((centroids.alpha[i] - truth[i]).abs().max()) < 0.2


def test_group_vectors_k_given_and_estimated():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 64))
    truth = np.repeat(np.arange(4), 5)[rng.permutation(20)]
    x = centres[truth] + 0.15 * rng.normal(size=(20, 64))
    for k in (4, None):
        labels = group_vectors(x, k)
        # same partition as the truth, labels numbered in order of first appearance
        assert labels[0] == 0 and set(labels) == {0, 1, 2, 3}
        assert all(len(set(labels[truth == t])) == 1 for t in range(4))
    assert group_vectors(x[:1]).tolist() == [0]
    with pytest.raises(ValueError, match="cannot make 30 groups of 20 faces"):
        group_vectors(x, 30)


def test_video_frames_sampled_and_blurred_ones_dropped(tmp_path):
    import cv2

    from facerecon.imageio import ImageError
    from facerecon.multi.video import read_frames

    rng = np.random.default_rng(0)
    sharp = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    for i in range(30):  # 3 s at 10 fps; frames 10-19 blurred
        frame = cv2.GaussianBlur(sharp, (0, 0), 6) if 10 <= i < 20 else sharp
        writer.write(frame)
    writer.release()
    frames = read_frames(path, every_s=0.5)
    assert [f.index for f in frames] == [0, 5, 20, 25]
    assert frames[1].time_s == pytest.approx(0.5)
    (tmp_path / "bad.avi").write_bytes(b"not a video")
    with pytest.raises(ImageError, match="bad.avi"):
        read_frames(tmp_path / "bad.avi")


def test_texture_fused_from_two_views_covers_more(head):
    """A left and a right three-quarter view together see more of the face than either alone."""
    from facerecon.export.person import MemberPhoto, fuse_textures
    from facerecon.forward import ForwardModel
    from facerecon.render import Camera

    cam = Camera()
    members = []
    for yaw in (0.6, -0.6):
        p = FaceParams.zeros(1)
        p.angles[0, 1] = yaw
        with torch.no_grad():
            img = ForwardModel(head, cam)(p, background=0.5).image[0]
        photo = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        members.append(MemberPhoto(f"y{yaw}", photo, np.array([[1.0, 0, 0], [0, 1.0, 0]]), p, 0.5, {}))
    bake, both = fuse_textures(head, members, cam, 128)
    assert bake.texture.shape == (128, 128, 3)
    singles = [fuse_textures(head, [m], cam, 128)[1] for m in members]
    assert both["texels_seen_by_several_photos"] > 0.05
    assert all(both["texels_seen_by_no_photo"] < s["texels_seen_by_no_photo"] - 0.05 for s in singles)


def test_each_photo_is_baked_through_its_own_camera(head):
    """A photo taken 400 mm away (its lens known) is sampled through its own camera, not the
    writer's default one: the fused texture is the one baked with that camera throughout."""
    from dataclasses import replace

    from facerecon.export.person import MemberPhoto, fuse_textures
    from facerecon.forward import ForwardModel
    from facerecon.render import Camera

    close = Camera(focal=1015.0 * 0.4)
    p = FaceParams.zeros(1)
    p.angles[0, 1] = 0.5
    p.trans[0, 2] = -400.0
    with torch.no_grad():
        img = ForwardModel(head, close)(p, background=0.5).image[0]
    photo = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    member = MemberPhoto("close", photo, np.array([[1.0, 0, 0], [0, 1.0, 0]]), p, 1.0, {}, camera=close)
    own, own_fig = fuse_textures(head, [member], Camera(), 64)
    want, want_fig = fuse_textures(head, [replace(member, camera=None)], close, 64)
    wrong, _ = fuse_textures(head, [replace(member, camera=None)], Camera(), 64)
    assert own_fig == want_fig
    np.testing.assert_array_equal(own.texture, want.texture)
    assert np.abs(own.texture.astype(int) - wrong.texture.astype(int)).mean() > 1


FAST = ["--landmark-steps", "15", "--steps", "3", "--no-perceptual", "--texture-size", "128", "--quiet"]


def test_cli_multi_people_folders(tmp_path, capsys, ict_archive):
    from facerecon.cli import main

    lfw = need_shared("faces", "lfw")
    root = tmp_path / "people"
    for name in ("Colin_Powell", "Tony_Blair"):
        (root / name).mkdir(parents=True)
        for k in (1, 2):
            shutil.copy(lfw / name / f"{name}_000{k}.jpg", root / name)
    (root / "Tony_Blair" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (root / "Nobody").mkdir()
    (root / "Nobody" / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    assert main(["reconstruct", "--multi", str(root), "-o", str(out), "--aggregate", "joint", *FAST]) == 0
    err = capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    people = {p["person"]: p for p in report["people"]}
    assert set(people) == {"Colin_Powell", "Tony_Blair"} and all(p["status"] == "ok" for p in people.values())
    assert any("Nobody" in line and "no usable photo" in line for line in report["problems"])
    assert "broken.jpg" in err and "Nobody" in err
    assert [f["input"].endswith("broken.jpg") for f in people["Tony_Blair"]["failed"]] == [True]
    for name in people:
        folder = out / name
        assert {"face.obj", "face.glb", "face.ply", "params.json", "members.json", "landmarks.json",
                "preview.png"} <= {p.name for p in folder.iterdir()}
        # the preview: the person's textured face from two sides, each panel the texture's colours
        import cv2
        import trimesh

        preview = cv2.imread(str(folder / "preview.png"))
        assert preview.shape == (512, 1028, 3)
        ply = np.asarray(trimesh.load(folder / "face.ply", process=False).visual.vertex_colors)[:, :3]
        centre = preview[200:300, 206:306].reshape(-1, 3)[:, ::-1].mean(0)  # the front panel's face, RGB
        hue = lambda c: c / c.sum()  # noqa: E731 - shading scales a colour, keeps its proportions
        assert np.abs(hue(centre) - hue(ply.mean(0))).max() < 0.05
        members = json.loads((folder / "members.json").read_text())
        assert [m["source"].rsplit("/", 1)[1] for m in members["members"]] == [f"{name}_0001.jpg", f"{name}_0002.jpg"]
        assert sorted(p.name for p in (folder / "overlays").iterdir()) == [f"{name}_0001.png", f"{name}_0002.png"]
        # joint: both photos carry the person's one identity
        v = [np.array(m["person_params_vector"]) for m in members["members"]]
        np.testing.assert_allclose(v[0][:80], v[1][:80])
        params = json.loads((folder / "params.json").read_text())
        np.testing.assert_allclose(list(params["identity"].values()), v[0][:80], atol=1e-6)
        assert max(abs(x) for x in params["expression"].values()) == 0.0
    # a second run does not overwrite without --overwrite
    assert main(["reconstruct", "--multi", str(root), "-o", str(out), *FAST]) == 1


def test_cli_group_finds_the_people(tmp_path, capsys, ict_archive):
    from facerecon.cli import main

    lfw = need_shared("faces", "lfw")
    photos = []
    for name in ("Colin_Powell", "Serena_Williams", "Gerhard_Schroeder"):
        photos += [lfw / name / f"{name}_000{k}.jpg" for k in (1, 2, 3)]
    out = tmp_path / "out"
    assert main(["reconstruct", "--group", *map(str, photos), "-o", str(out), "--people", "3", "--aggregate",
                 "mean", *FAST]) == 0
    assert "9 faces grouped into 3 people\n" in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    groups = [sorted(p.rsplit("/", 1)[1].rsplit("_", 1)[0] for p in person["photos"]) for person in report["people"]]
    assert sorted(groups) == sorted([[n] * 3 for n in ("Colin_Powell", "Gerhard_Schroeder", "Serena_Williams")])
    # K estimated: each estimated person holds photos of one real person only (it may split one)
    est = tmp_path / "est"
    assert main(["reconstruct", "--group", *map(str, photos), "-o", str(est), "--aggregate", "mean", *FAST]) == 0
    found = json.loads((est / "report.json").read_text())["people"]
    assert 3 <= len(found) <= 4
    assert all(len({p.rsplit("/", 1)[1].rsplit("_", 1)[0] for p in person["photos"]}) == 1 for person in found)
    assert [p["person"] for p in report["people"]] == ["person_01", "person_02", "person_03"]


def test_python_api_one_call(tmp_path, ict_archive):
    """reconstruct_person: a list of photos in, one face out, a bad photo listed, not fatal;
    reconstruct_groups: unknown people grouped by K."""
    from facerecon.fitting import FitConfig
    from facerecon.pipeline import FaceReconstructor

    lfw = need_shared("faces", "lfw")
    recon = FaceReconstructor(config=FitConfig(landmark_steps=10, steps=2, perceptual=False))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    photos = [lfw / "Colin_Powell" / f"Colin_Powell_000{k}.jpg" for k in (1, 2)]
    person = recon.reconstruct_person([photos[0], bad, photos[1]], aggregate="median", name="colin")
    assert person.name == "colin" and len(person.members) == 2 and person.method == "median"
    assert [f.source for f in person.failed] == [str(bad)] and "empty file" in person.failed[0].reason
    torch.testing.assert_close(person.params.alpha[0], person.member_params.alpha[1])
    with pytest.raises(ValueError, match="no usable photo"):
        recon.reconstruct_person([bad])
    serena = [lfw / "Serena_Williams" / f"Serena_Williams_000{k}.jpg" for k in (1, 2)]
    people = recon.reconstruct_groups([photos[0], serena[0], photos[1], serena[1]], people=2, aggregate="mean")
    assert [p.name for p in people] == ["person_01", "person_02"]
    assert [[m.source for m in p.members] for p in people] == [[str(photos[0]), str(photos[1])],
                                                              [str(serena[0]), str(serena[1])]]


def test_cli_multi_video_is_a_person(tmp_path, ict_archive):
    """A video in the --multi folder is one person: its sharp frames are the photos."""
    import cv2

    from facerecon.cli import main

    lfw = need_shared("faces", "lfw")
    root = tmp_path / "people"
    root.mkdir()
    frames = [cv2.resize(cv2.imread(str(lfw / "Tony_Blair" / f"Tony_Blair_000{k}.jpg")), (256, 256)) for k in (1, 2, 3)]
    writer = cv2.VideoWriter(str(root / "blair.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 4.0, (256, 256))
    for k in range(12):  # 3 s at 4 fps: each photo for 1 s, the middle second blurred
        f = frames[k // 4]
        writer.write(cv2.GaussianBlur(f, (0, 0), 5) if 4 <= k < 8 else f)
    writer.release()
    out = tmp_path / "out"
    assert main(["reconstruct", "--multi", str(root), "-o", str(out), "--aggregate", "joint", *FAST]) == 0
    members = json.loads((out / "blair" / "members.json").read_text())["members"]
    assert sorted(p.name for p in (out / "blair" / "overlays").iterdir())[0] == "blair_frame_000000.png"
    assert [m["source"] for m in members] == ["blair_frame_000000", "blair_frame_000002", "blair_frame_000008",
                                             "blair_frame_000010"]


def test_badly_detected_frames_by_hand():
    from facerecon.multi.video import badly_detected

    # median 2.0: 4.5 > 2×2 and > 3 px -> bad; 3.5 is under 2×median; 2 frames are too few to judge
    assert badly_detected([2.0, 1.8, 4.5, 2.2, 3.5]).tolist() == [False, False, True, False, False]
    assert badly_detected([0.5, 0.6, 1.4]).tolist() == [False, False, False]  # under the 3 px floor
    assert badly_detected([1.0, 9.0]).tolist() == [False, False]
