"""The landmark vertex sets: ICT's own list and the ones chosen on 300-W train."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facerecon.facemodel import load_face_model
from tests.conftest import load_script, need_shared

PAIRS = [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (31, 35), (32, 34), (36, 45), (37, 44), (38, 43),
         (39, 42), (40, 47), (41, 46), (48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63),
         (65, 67)]
MIDLINE = [27, 28, 29, 30, 33, 51, 57, 62, 66]


CHOSEN = ["300w", "300w-photo"]
#: the set each chosen set's calibration started from (it searches 6 mm around each point)
STARTED_FROM = {"300w": "ict", "300w-photo": "300w"}


@pytest.fixture(scope="module", params=CHOSEN)
def both(request, ict_archive):
    chosen = request.param
    return load_face_model("full", landmarks=STARTED_FROM[chosen]), load_face_model("full", landmarks=chosen)


def test_chosen_set_moves_points_a_little_and_stays_symmetric(both):
    start, cal = both
    a, b = start.landmark_idx.numpy(), cal.landmark_idx.numpy()
    assert cal.landmark_set in CHOSEN and start.landmark_set == STARTED_FROM[cal.landmark_set]
    moved = a != b
    assert moved.sum() >= 10
    mean = cal.mean.numpy()
    assert np.linalg.norm(mean[b] - mean[a], axis=1).max() < 6.0
    # mirror partners: x -> -x maps one onto the other (the ICT mesh is symmetric to < 0.5 mm)
    for i, j in PAIRS:
        np.testing.assert_allclose(mean[b[i]] * [-1, 1, 1], mean[b[j]], atol=0.5, err_msg=f"{i}/{j}")
    assert np.abs(mean[b[MIDLINE + [8]], 0]).max() < 0.6
    for k in range(8):  # the jaw anchors (which set the moving contour's bands) mirror too
        np.testing.assert_allclose(mean[b[k]] * [-1, 1, 1], mean[b[16 - k]], atol=0.5, err_msg=f"jaw {k}")


def test_chosen_points_stay_on_their_features(both):
    lm = both[1].landmarks(both[1].mean[None])[0].numpy()
    assert np.argmax(lm[:, 2]) == 30
    # brows above the eyes, upper lids above lower lids, nostrils under the nose tip, upper lip
    # above the lower lip, eyes between brows and mouth
    assert lm[17:27, 1].min() > lm[36:48, 1].max()
    assert (lm[[37, 38, 43, 44], 1] > lm[[41, 40, 47, 46], 1]).all()
    assert lm[31:36, 1].max() < lm[30, 1]
    assert lm[50:53, 1].min() > lm[56:59, 1].max()


def test_unknown_landmark_set_is_refused(ict_archive):
    with pytest.raises(ValueError, match="unknown landmark set 'dlib'"):
        load_face_model("narrow", landmarks="dlib")


def test_fit_config_chooses_the_set_for_fit_and_export(ict_archive):
    from facerecon.fitting.engine import FitConfig
    from facerecon.pipeline import FaceReconstructor

    for name in ("ict", *CHOSEN):
        recon = FaceReconstructor(config=FitConfig(landmarks=name, perceptual=False), engine="fit")
        assert recon.model.landmark_set == name
        head = recon.face_model("head")
        assert head.landmark_set == name
        # the export's model puts the same 3D landmarks where the fit's model does
        g = torch.Generator().manual_seed(1)
        alpha, beta = torch.randn(2, 80, generator=g), torch.rand(2, 53, generator=g)
        np.testing.assert_allclose(head.landmarks(head.shape(alpha, beta)).numpy(),
                                   recon.model.landmarks(recon.model.shape(alpha, beta)).numpy(), atol=1e-3)


def _script():
    return load_script("scripts/calibrate_landmarks.py")


def test_choose_finds_the_vertex_where_the_annotation_lies():
    """A symmetric grid of vertices seen front-on (x, −y as pixels): the annotation of a mirror
    pair lies on two mirrored vertices 2 mm from the current ones and of a mid-line point on a
    mid-line vertex; every other annotation lies on its current vertex, which then stays."""
    mod = _script()
    xs = np.arange(-40.0, 41.0, 1.0)
    gx, gy = np.meshgrid(xs, xs)
    verts = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], 1)
    idx = lambda x, y: int(np.nonzero((verts[:, 0] == x) & (verts[:, 1] == y))[0][0])  # noqa: E731
    rng = np.random.default_rng(0)
    current = np.array([idx(x, y) for x, y in zip(rng.integers(-30, -1, 68), rng.integers(-30, 31, 68))])
    for i, j in PAIRS:  # mirror pairs start mirrored, mid-line points on x = 0
        current[j] = idx(-verts[current[i], 0], verts[current[i], 1])
    for k in MIDLINE:
        current[k] = idx(0, int(rng.integers(-30, 31)))
    n = 5
    photo = np.repeat((verts[:, :2] * [1, -1])[None], n, 0) + rng.normal(0, 0.05, (n, len(verts), 2))
    truth = current.copy()
    x, y = verts[current[37], :2]
    truth[37], truth[44] = idx(x, y + 2), idx(-x, y + 2)
    truth[62] = idx(0, verts[current[62], 1] - 2)
    target = np.repeat((verts[truth, :2] * [1, -1])[None], n, 0)
    new, lines = mod.choose(photo, target, np.full(n, 60.0), verts, current, radius=6.0)
    np.testing.assert_array_equal(new, truth)
    assert len(lines) == len(PAIRS) + len(MIDLINE)


def test_training_uses_the_fitters_landmark_set_by_default():
    """R-Net's landmark loss and the fitter's must mean the same points (labels, refinement)."""
    from facerecon.fitting.engine import FitConfig
    from facerecon.training.config import TrainConfig

    assert TrainConfig().landmarks == FitConfig().landmarks == "300w-photo"


def test_script_contour_pick_is_the_fitters_contour(face_model):
    """The calibration scores a jaw anchor by the vertex the fitter's moving contour would take:
    on turned faces its numpy pick must equal ContourLandmarks' own assignment."""
    from facerecon.facemodel.contour import ContourLandmarks
    from facerecon.params import FaceParams
    from facerecon.render import Camera, project, transform

    mod = _script()
    p = FaceParams.zeros(4)
    p.angles[:, 1] = torch.tensor([-0.6, -0.2, 0.3, 0.7])  # yaw, radians
    p.alpha[:] = torch.randn(4, 80, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        xy, _ = project(transform(face_model.shape(p.alpha, p.beta), p.angles, p.trans), Camera())
    contour = ContourLandmarks(face_model)
    ids = contour.vertex_ids[contour.assign(xy[:, contour.vertex_ids])]  # (4,68) model vertex ids
    verts = face_model.mean.numpy()
    face = np.flatnonzero(face_model.vertex_ids < 9409)
    lmk = face_model.landmark_idx.numpy()
    for k in [0, 3, 7, 9, 13, 16]:
        pick = mod.contour_pick(xy.numpy(), verts, face, lmk[k], -1.0 if k < 8 else 1.0)
        np.testing.assert_array_equal(pick, ids[:, k].numpy(), err_msg=f"jaw {k}")


def test_choose_jaw_finds_anchors_whose_contour_meets_the_annotation(face_model):
    """Annotations planted where the fitter's contour would fall from a lower anchor pair (2–6 mm
    down the jaw) on faces at several yaws: the chosen anchors' contour picks reproduce them, the
    untouched slots keep their anchors, and the pair stays mirrored."""
    from facerecon.params import FaceParams
    from facerecon.render import Camera, project, transform

    mod = _script()
    p = FaceParams.zeros(5)
    p.angles[:, 1] = torch.tensor([-0.6, -0.3, 0.0, 0.3, 0.6])
    with torch.no_grad():
        xy = project(transform(face_model.shape(p.alpha, p.beta), p.angles, p.trans), Camera())[0].numpy()
    verts = face_model.mean.numpy()
    face = np.flatnonzero(face_model.vertex_ids < 9409)
    lmk = face_model.landmark_idx.numpy()
    mir = mod.mirror_map(verts)
    a = lmk[4]
    dist = np.linalg.norm(verts[face] - verts[a], axis=1)
    planted = face[(dist > 2) & (dist < 5.9) & (verts[face, 1] < verts[a, 1] - 2.5) & (mir[face] >= 0)][0]
    rows = np.arange(5)
    target = np.zeros((5, 68, 2))
    for k in range(17):
        anchor = {4: planted, 12: mir[planted]}.get(k, lmk[k])
        pick = np.full(5, anchor) if k == 8 else mod.contour_pick(xy, verts, face, anchor, -1.0 if k < 8 else 1.0)
        target[:, k] = xy[rows, pick]
    new, lines = mod.choose_jaw(xy, xy, target, np.full(5, 60.0), verts, face, lmk, radius=6.0)
    assert len(lines) == 9
    for k in (4, 12):
        pick = mod.contour_pick(xy, verts, face, new[k], -1.0 if k < 8 else 1.0)
        np.testing.assert_allclose(xy[rows, pick], target[:, k], atol=1e-4)
    assert new[4] != lmk[4] and new[12] == mir[new[4]]
    others = [k for k in range(17) if k not in (4, 12)]
    np.testing.assert_array_equal(new[others], lmk[others])


def test_script_records_what_its_fits_are_and_what_a_choice_was_made_on(ict_archive, tmp_path, monkeypatch):
    """``fit`` takes the fitter's options (here a photometric-only fit), records them beside the
    fits and refuses to add fits of another kind to the folder; ``choose --write SET`` writes
    that set's file with the round's record (what shaped the fitted faces)."""
    need_shared("faces", "300w", "train")
    mod = _script()
    folder = tmp_path / "fits"
    quick = ["--step", "2000", "--landmarks", "300w", "--engine", "fit", "--landmark-steps", "0", "--steps", "2",
             "--no-perceptual"]
    assert mod.main(["fit", str(folder), *quick, "--weights-landmark", "0"]) == 0
    made = json.loads((folder / "fits.json").read_text())
    assert made["engine"] == "fit" and made["config"]["weights"]["landmark"] == 0.0
    assert made["landmarks"] == "300w" and len(made["landmark_vertices"]) == 68
    with np.load(next(folder.glob("part*.npz"))) as z:
        assert z["params"].shape[0] == 1 and z["gt"].shape == (1, 68, 2)
    with pytest.raises(SystemExit, match="other landmark vertices or settings"):
        mod.main(["fit", str(folder), *quick])  # the landmark term back on: another kind of fit
    monkeypatch.setattr(mod, "resource_path", lambda name: tmp_path / name)
    assert mod.main(["choose", str(folder), "--write", "300w-photo"]) == 0
    doc = json.loads((tmp_path / "landmarks_300w_photo.json").read_text())
    assert len(doc["vertex_ids"]) == 68
    (rnd,) = doc["rounds"]
    assert rnd["engine"] == "fit" and rnd["landmark_weight"] == 0.0 and rnd["fitted_with"] == "300w"
    assert rnd["photos"] == 1 and rnd["jaw"] is False
