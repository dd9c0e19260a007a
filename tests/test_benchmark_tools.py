"""The benchmarks' paired comparison (benchmarks/paired.py) pairs the same items of two runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import load_script, need_shared


def _paired():
    return load_script("benchmarks/paired.py")


def test_paired_difference_is_over_the_common_items():
    mod = _paired()
    a = {"x": 1.0, "y": 2.0, "z": 3.0, "only_a": 9.0}
    b = {"x": 0.5, "y": 2.5, "z": 2.0, "only_b": -9.0}
    r = mod.paired(a, b, resamples=500, seed=0)
    assert r["items"] == 3 and r["b_lower"] == 2
    assert r["a"] == pytest.approx(2.0) and r["b"] == pytest.approx(5 / 3)
    assert r["diff"] == pytest.approx(-1 / 3)
    assert -1.0 <= r["lo"] <= r["diff"] <= r["hi"] <= 0.5  # bootstrap means stay within the differences


def test_measures_reads_real_skin_rows_and_landmark_reports():
    mod = _paired()
    rows = [{"method": "mean face", "scale": False, "rmse_mm": 3.0, "view": "-", "texture": "-"},
            {"method": "fit", "scale": False, "rmse_mm": 2.5, "view": "front", "texture": 0},
            {"method": "fit", "scale": True, "rmse_mm": 2.2, "view": "front", "texture": 0},
            {"method": "fit neutral", "scale": True, "rmse_mm": 2.1, "view": "front", "texture": 0},
            {"method": "fit", "scale": True, "rmse_mm": 1.7, "view": "front", "texture": 0, "surface": "outer"}]
    got = mod.measures({"rows": rows})
    assert got == {"real skin, mesh, rigid (mm)": {"0/front": 2.5}, "real skin, mesh, with scale (mm)": {"0/front": 2.2},
                   "real skin, neutral mesh, with scale (mm)": {"0/front": 2.1},
                   "real skin, mesh, with scale, outer surface (mm)": {"0/front": 1.7}}
    report = {"per_image": [{"name": "a.png", "nme_eyes": 0.04}, {"name": "b.png", "nme_eyes": None}]}
    assert mod.measures(report) == {"NME, eye corners (points)": {"a.png": pytest.approx(4.0)}}
    with pytest.raises(ValueError, match="neither"):
        mod.measures({"auc": 0.9})


def test_paired_reads_one_entry_of_a_from_scan_report(tmp_path):
    mod = _paired()
    doc = {"ICT mean face": {"rigid": 2.3, "scale": 1.8},
           "fits.npz": {"rigid": 2.0, "rows": [{"texture": 0, "view": "front", "rigid": 2.0, "scale": 1.7},
                                               {"texture": 1, "view": "yaw+20", "rigid": 2.2, "scale": 1.6}]}}
    path = tmp_path / "fs.json"
    path.write_text(json.dumps(doc))
    got = mod.measures(mod.load(f"{path}#fits.npz"))
    assert got == {"from the scan, rigid (mm)": {"0/front": 2.0, "1/yaw+20": 2.2},
                   "from the scan, with scale (mm)": {"0/front": 1.7, "1/yaw+20": 1.6}}
    with pytest.raises(SystemExit, match="no entry 'other.npz'"):
        mod.load(f"{path}#other.npz")


def test_paired_pools_entries_of_different_skins(tmp_path):
    mod = _paired()
    a = _from_scan_report(tmp_path / "a.json", "lps", [{"texture": 0, "view": "front", "rigid": 2.0, "scale": 1.5}])
    b = _from_scan_report(tmp_path / "b.json", "lps", [{"texture": 4, "view": "front", "rigid": 2.4, "scale": 1.9}])
    got = mod.measures(mod.load(f"{a},{b}"))
    assert got == {"from the scan, rigid (mm)": {"0/front": 2.0, "4/front": 2.4},
                   "from the scan, with scale (mm)": {"0/front": 1.5, "4/front": 1.9}}
    with pytest.raises(SystemExit, match="share renders"):
        mod.load(f"{a},{a}")


def test_paired_reads_the_fits_final_terms_and_pools_real_skin_reports(tmp_path):
    mod = _paired()

    def report(path, texture: int, photo: float, landmark: float):
        terms = {"total": 0.1, "photo": photo, "landmark": landmark, "coef": 3.0}
        rows = [{"method": "mean face", "scale": s, "rmse_mm": 3.0, "view": "-", "texture": "-"} for s in (False, True)]
        rows += [{"method": "fit", "scale": s, "rmse_mm": 2.0, "view": "front", "texture": texture, "terms": terms}
                 for s in (False, True)]
        path.write_text(json.dumps({"rows": rows}))
        return str(path)

    a, b = report(tmp_path / "a.json", 0, 0.05, 12.0), report(tmp_path / "b.json", 4, 0.07, 9.0)
    got = mod.measures(mod.load(f"{a},{b}"))  # both mean faces dropped, each render once per measure
    assert got[mod.TERMS["photo"]] == {"0/front": 0.05, "4/front": 0.07}
    assert got[mod.TERMS["landmark"]] == {"0/front": 12.0, "4/front": 9.0}
    assert got["real skin, mesh, with scale (mm)"] == {"0/front": 2.0, "4/front": 2.0}
    with pytest.raises(SystemExit, match="share renders"):
        mod.load(f"{a},{a}")
    fs = _from_scan_report(tmp_path / "fs.json", "lps", [{"texture": 4, "view": "front", "rigid": 2.4, "scale": 1.9}])
    with pytest.raises(SystemExit, match="one kind at a time"):
        mod.load(f"{a},{fs}")


def _from_scan_report(path, head: str, rows: list[dict], entry: str = "fits.npz", mean_face=(4.0, 2.0)):
    path.write_text(json.dumps({"head": head, "ICT mean face": {"rigid": mean_face[0], "scale": mean_face[1]},
                                entry: {"rows": rows}}))
    return f"{path}#{entry}"


def test_per_view_pools_skins_and_gives_each_view_its_margin_and_interval(tmp_path):
    mod = load_script("benchmarks/per_view.py")
    a = _from_scan_report(tmp_path / "a.json", "lps", [
        {"texture": 0, "view": "front", "rigid": 1.0, "scale": 1.5},
        {"texture": 1, "view": "front", "rigid": 3.0, "scale": 1.5},
        {"texture": 0, "view": "yaw+40", "rigid": 4.0, "scale": 2.0}])
    b = _from_scan_report(tmp_path / "b.json", "lps", [{"texture": 4, "view": "front", "rigid": 2.0, "scale": 1.5}])
    rows, mean_face, head = mod.pool([a, b])
    assert len(rows) == 4 and head == "lps" and mean_face == {"rigid": 4.0, "scale": 2.0}
    got = mod.per_view(rows, mean_face, resamples=2000)
    front = got["rigid"]["front"]
    # by hand: front's three skins 1, 3, 2 mm average 2 mm, half the mean face's 4 mm
    assert front["skins"] == 3 and front["rmse"] == pytest.approx(2.0) and front["margin"] == pytest.approx(0.5)
    assert 0.25 <= front["lo"] < 0.5 < front["hi"] <= 0.75  # resampled means lie between 1 and 3 mm
    same = got["scale"]["front"]  # every skin 1.5 mm against 2: 25 % under, no spread at all
    assert same["margin"] == same["lo"] == same["hi"] == pytest.approx(0.25)
    assert got["rigid"]["yaw+40"]["margin"] == pytest.approx(0.0)
    assert mod.verdict(same, 0.15) == "above the target" and mod.verdict(same, 0.3) == "BELOW the target"
    assert mod.verdict(front, 0.5) == "target inside the interval"
    with pytest.raises(SystemExit, match="already in an earlier entry"):
        mod.pool([a, a])
    other = _from_scan_report(tmp_path / "c.json", "lps-b", [{"texture": 9, "view": "front", "rigid": 2, "scale": 1}])
    with pytest.raises(SystemExit, match="another head"):
        mod.pool([a, other])


def test_second_texture_draw_is_other_skins_over_the_same_range():
    pick = load_script("benchmarks/lps_realskin.py").pick_textures
    first, second = pick(54, 4, 0), pick(54, 4, 1)
    assert first.tolist() == [0, 18, 35, 53]  # the darkest and the lightest, evenly between
    assert second.tolist() == [7, 20, 33, 46]  # (k + 1/2) / 4 of the way: between them, none the same
    assert not set(first) & set(second)
    with pytest.raises(ValueError, match="draw 2"):
        pick(54, 4, 2)


def test_identity_held_for_each_render_from_a_saved_fit(tmp_path):
    from facerecon.params import FaceParams

    held_identities = load_script("benchmarks/lps_realskin.py").held_identities
    sizes = FaceParams.zeros(1).sizes()
    rows = torch.randn(2, sum(sizes.values()), generator=torch.Generator().manual_seed(0))
    path = tmp_path / "fits.npz"
    np.savez(path, params=rows.numpy(), view=np.array(["front", "yaw+40"]), texture=np.array([5, 5]))
    face = type("Face", (), {"n_id": FaceParams.from_vector(rows[:1], sizes).alpha.shape[1]})()
    alpha = held_identities(str(path), face, None, None)
    assert torch.equal(alpha(5, "yaw+40"), FaceParams.from_vector(rows[1:], sizes).alpha)
    assert torch.equal(alpha(5, "front"), FaceParams.from_vector(rows[:1], sizes).alpha)
    with pytest.raises(SystemExit, match="no fit of texture 4, view front"):
        alpha(4, "front")
    assert torch.equal(held_identities("mean", face, None, None)(0, "front"), torch.zeros(1, face.n_id))
    with pytest.raises(SystemExit, match="not capacity, capacity-landmarks, mean or a --save-params file"):
        held_identities(str(tmp_path / "missing.npz"), face, None, None)


def test_identity_held_at_capacity_with_or_without_the_landmarks(monkeypatch):
    """``--identity-at capacity`` asks the 3D fit for the surface alone, ``capacity-landmarks`` for
    the fit with the landmark weight; both hold the α it returns (a stub) for every render."""
    import sys
    import types

    mod = load_script("benchmarks/lps_realskin.py")
    calls = []

    def fit_model_to_scan(scan, scan_lmk, prior, with_scale, expression="free", landmark_weight=0.0):
        calls.append(landmark_weight)
        return None, np.full(3, 1.0 + landmark_weight), {}

    monkeypatch.setitem(sys.modules, "lps_capacity", types.SimpleNamespace(fit_model_to_scan=fit_model_to_scan))
    face = type("Face", (), {"n_id": 3})()
    surface = mod.held_identities("capacity", face, None, None)
    features = mod.held_identities("capacity-landmarks", face, None, None)
    assert calls == [0.0, mod.CAPACITY_LANDMARK_WEIGHT] and mod.CAPACITY_LANDMARK_WEIGHT > 0
    assert torch.equal(surface(0, "front"), torch.ones(1, 3))
    assert torch.equal(features(7, "yaw+40"), torch.full((1, 3), 1.0 + mod.CAPACITY_LANDMARK_WEIGHT))


def test_model_head_is_the_face_models_head_at_its_fit_to_the_scan(monkeypatch):
    """``--head lps-model``: ICT's head region at the α the 3D fit to the scan returns (here a stub
    returning a known α), its landmarks that mesh's landmark vertices."""
    import sys
    import types

    from facerecon.facemodel import load_face_model

    need_shared("scans")
    head = load_face_model("head")
    alpha = torch.zeros(1, head.n_id)
    alpha[0, 0] = 2.0
    calls = []

    def fit_model_to_scan(scan, scan_lmk, prior, with_scale, expression="free", landmark_weight=0.0):
        calls.append((len(scan.vertices), scan_lmk.shape, prior, with_scale, expression, landmark_weight))
        return None, alpha[0].numpy(), {}

    monkeypatch.setitem(sys.modules, "lps_capacity", types.SimpleNamespace(fit_model_to_scan=fit_model_to_scan))
    mesh, lmk = load_script("benchmarks/lps_realskin.py").model_head()
    want = head.shape(alpha, torch.zeros(1, head.n_exp))[0].numpy()
    assert calls and calls[0][1:] == ((68, 3), 0.01, False, "none", 0.0) and calls[0][0] > 5_000  # the scan
    np.testing.assert_allclose(mesh.vertices, want, atol=1e-4)
    np.testing.assert_array_equal(mesh.faces, head.faces.numpy())
    np.testing.assert_allclose(lmk, want[head.landmark_idx.numpy()], atol=1e-4)
    assert np.abs(want - head.mean.numpy()).max() > 0.5  # the α moved the head: not the mean face


def _write_pts(path, points) -> None:
    path.write_text("version: 1\nn_points: 68\n{\n" + "".join(f"{x} {y}\n" for x, y in points) + "}\n")


def test_paired_turned_keeps_the_photos_whose_annotation_is_turned(tmp_path):
    """A frontal annotation (nose tip midway between the jaw's ends) has ratio 1; one whose nose
    tip lies 90 px from one end and 10 px from the other, 9 (hand values). ``turned`` keeps the
    photos at or over the ratio."""
    mod = _paired()
    base = np.zeros((68, 2))
    base[0:3, 0], base[14:17, 0], base[30, 0] = 0.0, 100.0, 50.0  # frontal: 50 px either side
    side = base.copy()
    side[30, 0] = 90.0  # 90 px from points 0-2, 10 px from 14-16
    assert mod.turned_ratio(base) == pytest.approx(1.0) and mod.turned_ratio(side) == pytest.approx(9.0)
    _write_pts(tmp_path / "front.pts", base)
    _write_pts(tmp_path / "side.pts", side)
    doc = {"folder": str(tmp_path), "per_image": [{"name": "front.jpg", "nme_eyes": 0.04},
                                                  {"name": "side.jpg", "nme_eyes": 0.06}]}
    assert mod.turned(doc, 2.0) == {"side.jpg"} and mod.turned(doc, 1.0) == {"front.jpg", "side.jpg"}
    assert mod.turned(doc, 9.5) == set()


def test_identity_metric_inverts_what_the_predictions_leave_unknown():
    """tools/identity_metric.py: predictions spread with variance 0.75 along one axis and not at
    all along the others leave 0.25 unknown there and 1 elsewhere, so the metric is 4 along that
    axis and 1 elsewhere (hand values); the floor caps it; the noise model counts one person's
    spread against the between-person spread."""
    import numpy as np

    identity_metric = load_script("tools/identity_metric.py").identity_metric

    rng = np.random.default_rng(0)
    axis = np.linalg.qr(rng.normal(size=(5, 5)))[0][:, 0]
    t = rng.normal(size=4000)
    t = (t - t.mean()) / t.std(ddof=1) * np.sqrt(0.75)
    alpha = t[:, None] * axis[None] + 3.0  # a constant offset: a covariance ignores it
    owner = np.arange(4000)
    metric, held = identity_metric(alpha, owner, "calibrated", floor=0.1)
    np.testing.assert_allclose(metric, np.eye(5) + 3.0 * np.outer(axis, axis), atol=1e-9)
    np.testing.assert_allclose(np.sort(held), [0.25, 1, 1, 1, 1], atol=1e-9)
    loose, _ = identity_metric(alpha, owner, "loose", floor=0.1)
    np.testing.assert_allclose(loose, np.eye(5) - 0.75 * np.outer(axis, axis), atol=1e-9)
    capped, _ = identity_metric(alpha, owner, "calibrated", floor=0.5)
    np.testing.assert_allclose(capped, np.eye(5) + np.outer(axis, axis), atol=1e-9)
    # two people, each photo's prediction its person's value ± 0.1 along the axis: the between
    # spread is the signal (removed), the within spread the noise (added)
    pa = np.concatenate([np.full(500, 0.5), np.full(500, -0.5)])
    noise = np.tile([0.1, -0.1], 500)
    two = (pa + noise)[:, None] * axis[None]
    owner2 = np.repeat([0, 1], 500)
    within = 0.01 * 1000 / 998
    between = 0.5 - within * 2 / 1000  # cov of the two means (±0.5, unbiased) less the within share
    m2, _ = identity_metric(two, owner2, "noise", floor=0.01)
    left = 1.0 - between + within
    assert 0.5 < left < 0.52
    np.testing.assert_allclose(m2, np.eye(5) + (1 / left - 1) * np.outer(axis, axis), atol=1e-9)


def test_mirror_signs_tells_symmetric_from_antisymmetric_modes():
    """A 4-vertex mesh symmetric about x = 0 (two mirror pairs): pushing both vertices of a pair
    outwards is a symmetric mode, raising one and lowering its mirror an antisymmetric one, moving
    one vertex alone neither."""
    import numpy as np

    mod = load_script("benchmarks/fit_symmetry.py")
    mean = np.array([[-1.0, 0, 0], [1.0, 0, 0], [-2.0, 1, 0], [2.0, 1, 0]])
    widen = np.zeros((4, 3))
    widen[0, 0], widen[1, 0] = -1, 1           # x -> -x maps vertex 0's push onto vertex 1's
    tilt = np.zeros((4, 3))
    tilt[2, 1], tilt[3, 1] = 1, -1
    assert mod.mirror_signs(np.stack([widen, tilt, 2 * tilt]), mean).tolist() == [1, -1, -1]
    lone = np.zeros((4, 3))
    lone[2, 2] = 1
    with pytest.raises(ValueError, match=r"modes \[1\]"):
        mod.mirror_signs(np.stack([widen, lone]), mean)


def test_similarity_metric_is_the_procrustes_residual():
    """benchmarks/identity_noise.py: a mode that only moves, turns or scales the mesh costs nothing;
    any other mode costs what a least-squares similarity fit (Umeyama) leaves, per vertex (small
    amplitude, where the linearisation holds)."""
    import numpy as np

    from facerecon.evaluation.scan import umeyama

    mod = load_script("benchmarks/identity_noise.py")
    rng = np.random.default_rng(1)
    mean = rng.normal(size=(30, 3)) * [40.0, 50.0, 20.0]
    c = mean - mean.mean(0)
    w = np.array([0.3, -0.2, 0.5])
    nuisance = np.tile([1.0, -2.0, 0.5], (30, 1)) + np.cross(w, c) + 0.7 * c
    free = rng.normal(size=(30, 3))
    g = mod.similarity_metric(mean, np.stack([nuisance, free]))
    assert abs(g[0, 0]) < 1e-9 and abs(g[0, 1]) < 1e-9
    eps = 1e-4
    moved = mean + eps * free
    s, r, t = umeyama(moved, mean, with_scale=True)
    residual = ((s * moved @ r.T + t - mean) ** 2).sum(1).mean() / eps ** 2
    assert g[1, 1] == pytest.approx(residual, rel=1e-3)


def test_noise_split_and_leave_one_out_recover_a_known_population():
    """Simulated people (true identity ~ N(0, diag(4, 1, .25)), each photo adds N(0, diag(1, 1, 1))):
    the covariances come back; the leave-one-out figure, less the target's own noise, is the RMS
    distance to the true identity for the raw fit (3 = the noise's trace) and for the scalar
    shrink ((1−s)²·T + s²·N with T = 5.25, N = 3), checked against the truth itself."""
    import numpy as np

    mod = load_script("benchmarks/identity_noise.py")
    rng = np.random.default_rng(2)
    person_sd, photos = np.sqrt([4.0, 1.0, 0.25]), 5

    def population(n):
        truth = rng.normal(size=(n, 3)) * person_sd + [1.0, 0, 0]
        return truth, [t + rng.normal(size=(photos, 3)) for t in truth]

    _, train = population(4000)
    centre, noise, person, k = mod.covariances({str(i): a for i, a in enumerate(train)})
    assert k == photos
    np.testing.assert_allclose(centre, [1, 0, 0], atol=0.1)
    np.testing.assert_allclose(noise, np.eye(3), atol=0.05)
    np.testing.assert_allclose(person, np.diag([4.0, 1.0, 0.25]), atol=0.25)
    s = 5.25 / 8.25
    truth, test = population(4000)
    est = {"raw": lambda a: a, "shrink": lambda a: centre + s * (a - centre)}
    err, target = mod.loo_errors(test, est, np.eye(3))
    assert target == pytest.approx(3 / 4, rel=0.05)
    for name, expected in (("raw", 3.0), ("shrink", (1 - s) ** 2 * 5.25 + s ** 2 * 3.0)):
        direct = np.mean([((est[name](a) - t) ** 2).sum(1).mean() for a, t in zip(test, truth)])
        assert np.mean(err[name]) - target == pytest.approx(expected, rel=0.05)
        assert np.mean(err[name]) - target == pytest.approx(direct, rel=0.05)


def test_identity_lfw_complement_shares_nobody_with_the_subset():
    """benchmarks/identity_lfw.py: the fixed subset and its complement split the LFW people with
    ≥ 5 photos between them (the population statistics must not see the scored people)."""
    need_shared("faces", "lfw")
    mod = load_script("benchmarks/identity_lfw.py")
    fixed = [n for n, _ in mod.subset(40, 10)]
    rest = [n for n, _ in mod.subset(40, 10, complement=True)]
    lfw = mod.shared_path("faces", "lfw")
    everyone = [d.name for d in lfw.iterdir() if d.is_dir() and len(list(d.glob("*.jpg"))) >= 5]
    assert len(fixed) == 40 and not set(fixed) & set(rest)
    assert sorted(fixed + rest) == sorted(everyone)
    assert all(len(ps) == 5 for _, ps in mod.subset(40, 10, complement=True)[:3])


def test_normal_metric_counts_only_what_leaves_the_surface():
    """benchmarks/identity_noise.py --metric normal on a flat 6×5 grid (normals ±z): sliding the
    vertices within the plane costs nothing; lifting them costs what a plane z = a + b·x + c·y
    (translation and the two tilts, the only similarity moves along z) leaves, per vertex."""
    import numpy as np

    mod = load_script("benchmarks/identity_noise.py")
    x, y = np.meshgrid(np.arange(6.0), np.arange(5.0))
    mean = np.stack([x.ravel() * 10, y.ravel() * 10, np.zeros(30)], 1)
    normals = np.tile([0.0, 0.0, 1.0], (30, 1))
    rng = np.random.default_rng(3)
    slide = np.concatenate([rng.normal(size=(30, 2)), np.zeros((30, 1))], 1)
    lift = np.zeros((30, 3))
    lift[:, 2] = rng.normal(size=30)
    g = mod.similarity_metric(mean, np.stack([slide, lift]), normals)
    assert abs(g[0, 0]) < 1e-12 and abs(g[0, 1]) < 1e-12
    design = np.stack([np.ones(30), mean[:, 0], mean[:, 1]], 1)
    resid = lift[:, 2] - design @ np.linalg.lstsq(design, lift[:, 2], rcond=None)[0]
    assert g[1, 1] == pytest.approx((resid ** 2).mean(), rel=1e-9)


def test_utkface_groups_read_from_the_file_name():
    """benchmarks/identity_offset.py: UTKFace names are age_sex_race_date (sex 0 man, 1 woman;
    race 0 white, 1 black, 2 Asian, 3 Indian, 4 other); other photos belong to no group."""
    mod = load_script("benchmarks/identity_offset.py")
    assert mod.utk_group("utkface/part1/25_1_2_20170116174525125.jpg") == ["age 13-30", "women", "asian"]
    assert mod.utk_group("utkface/x/61_0_1_2017.jpg") == ["age >55", "men", "black"]
    assert mod.utk_group("utkface/x/12_0_0_2017.jpg")[0] == "age <13"
    assert mod.utk_group("lfw/Tiger_Woods/Tiger_Woods_0001.jpg") == []
    assert mod.utk_group("utkface/x/broken_name.jpg") == []


def test_identity_place_splits_offset_own_part_and_rest_orthogonally():
    """benchmarks/scan_case.py: an identity built as a·offset + b·own + r (r orthogonal to both in
    the metric) reads back as a, b and ‖r‖, and its squared distance from the scan's best fit is the
    sum of the three parts' (Pythagoras: the split is orthogonal). The best fit itself: distance 0,
    own share 1; the mean face: own share 0; without an offset the own part is the whole best fit."""
    import numpy as np

    need_shared("facemodel")
    mod = load_script("benchmarks/scan_case.py")
    rng = np.random.default_rng(3)
    n = mod.load_face_model("face").n_id
    truth, offset = rng.normal(size=n), rng.normal(size=n)
    place = mod.IdentityPlace(truth, offset)
    g = place.g
    norm = lambda x: float(np.sqrt(x @ g @ x))  # noqa: E731
    k_t = float(truth @ g @ offset / (offset @ g @ offset))
    own = truth - k_t * offset
    r = rng.normal(size=n)
    for u in (offset, own):
        r = r - (r @ g @ u) / (u @ g @ u) * u
    a, b = 0.7, 0.3
    got = place(a * offset + b * own + r)
    assert got["offset_amount"] == pytest.approx(a, abs=1e-9)
    assert got["own_share"] == pytest.approx(b, abs=1e-9)
    assert got["rest_mm"] == pytest.approx(norm(r), rel=1e-9)
    expected = (a - k_t) ** 2 * norm(offset) ** 2 + (b - 1) ** 2 * norm(own) ** 2 + norm(r) ** 2
    assert got["from_best_fit_mm"] ** 2 == pytest.approx(expected, rel=1e-9)
    at_truth = place(truth)
    assert at_truth["from_best_fit_mm"] == pytest.approx(0, abs=1e-9) and at_truth["own_share"] == pytest.approx(1)
    assert at_truth["offset_amount"] == pytest.approx(k_t)
    assert place(np.zeros(n))["own_share"] == 0 and place.departure_mm == pytest.approx(norm(truth))
    alone = mod.IdentityPlace(truth)(0.5 * truth)
    assert alone["own_share"] == pytest.approx(0.5) and "offset_amount" not in alone
    assert alone["from_best_fit_mm"] == pytest.approx(0.5 * norm(truth))


def test_scan_case_scores_each_photo_and_goes_on_past_a_bad_one(tmp_path):
    """benchmarks/scan_case.py on two renders of the Lee Perry-Smith scan and a broken file: the
    mean face scores what BENCHMARKS.md gives it (2.670 mm with scale), the model's 3D fit to the scan
    comes closer than any photo's fit, every photo gets an expressive and a neutral row and the
    person a mean and a joint row, the broken file is named among the failures, the meshes are
    written, and a second run will not overwrite them unasked."""
    import numpy as np
    from PIL import Image

    need_shared("scans", "lee-perry-smith")
    from facerecon.evaluation.scan_photos import generate_scan_photos

    mod = load_script("benchmarks/scan_case.py")
    photos = []
    for shot in generate_scan_photos(2, seed=0, yaws=(0.0, 20.0)):
        path = tmp_path / f"view{shot['index']}.png"
        img = (shot["image"].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(path)
        photos.append(str(path))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    out = tmp_path / "meshes"
    saved = tmp_path / "saved.npz"  # two earlier "fits" at the mean face, then other parameters
    n_id = mod.load_face_model("face").n_id
    np.savez(saved, params=np.concatenate([np.zeros((2, n_id)), np.ones((2, 30))], 1))
    # a "peer" whose mesh of every photo is the ICT mean face, in photo pixels (y down, z away, 3.7 px
    # per mm) with its vertices shuffled so that MediaPipe's landmark vertices hold ICT's: scored as
    # the mean face itself once brought back to mm at the mean face's eye width
    face = mod.load_face_model("face")
    index = load_script("benchmarks/peer_scores.py").peer_map()
    lmk = face.landmark_idx.numpy()
    rest = [v for v in range(len(face.mean)) if v not in set(lmk.tolist())]
    order = np.empty(len(face.mean), int)
    order[index] = lmk
    order[np.setdiff1d(np.arange(len(face.mean)), index)] = rest
    where = np.argsort(order)
    px = face.mean.numpy()[order] * np.array([3.7, -3.7, -3.7])
    peer = tmp_path / "peer.npz"
    np.savez(peer, names=np.array(photos), ok=np.ones(2, bool), vertices=np.stack([px, px]),
             triangles=where[face.faces.numpy()])
    argv = ["--photos", *photos, str(broken), "--scan", "lee-perry-smith", "--capacity-rounds", "4",
            "--saved-fits", str(saved), "--peer", str(peer),
            "--variant", "rnet=--engine rnet --steps 10 --no-perceptual", "--alignment", "scale", "--out", str(out)]
    result = mod.main(argv)
    rows = {r["what"]: r for r in result["rows"]}
    mean_face = rows["ICT mean face"]
    assert mean_face["scale_mm"] == pytest.approx(2.670, abs=0.01) and "rigid_mm" not in mean_face
    best = rows["identity fitted to the scan"]  # α*: the identity fitted alone, not the expressive fit's
    assert best["own_share"] == pytest.approx(1) and best["from_best_fit_mm"] == pytest.approx(0, abs=1e-6)
    assert rows["its identity alone"]["from_best_fit_mm"] > 0.1
    peer_rows = [r for r in result["rows"] if r["variant"] == "MediaPipe"]
    assert [r["what"] for r in peer_rows] == ["view0, as fitted", "view1, as fitted"]
    for r in peer_rows:
        assert r["scale_mm"] == pytest.approx(mean_face["scale_mm"], abs=1e-3)
        assert r["scale_outer_mm"] == r["scale_mm"]  # a peer's mesh has no hidden insides to leave out
    # the ICT meshes on their outer surface: the nostrils' and lips' insides carry much of the error
    assert mean_face["scale_outer_mm"] < mean_face["scale_mm"] - 0.4
    assert all(r["scale_outer_mm"] < r["scale_mm"] for r in result["rows"] if r["variant"] != "MediaPipe")
    earlier = rows["mean of 2 saved fits (neutral)"]
    assert earlier["scale_mm"] == pytest.approx(rows["ICT mean face"]["scale_mm"], abs=1e-6)
    assert earlier["own_share"] == 0 and earlier["offset_amount"] == 0 and earlier["each_rest_mm"] == 0
    fitted = [rows[f"view{i}, {kind}"] for i in (0, 1) for kind in ("as fitted", "neutral")]
    fitted += [rows[f"2 photos, {m} (neutral)"] for m in ("mean", "joint")]
    for r in fitted:
        assert best["scale_mm"] < r["scale_mm"] < 5.0 and r["variant"] == "rnet"
        assert r["from_best_fit_mm"] > 0.1 and "offset_amount" in r
    # from the scan (issue 10's direction) every ICT row is scored on the whole head: the mean of the
    # saved fits at the mean face scores as the mean face, the model's 3D fit is closer, and the
    # peer's mesh (the mean face's face region alone) is farther, as the scan's chin and forehead
    # points it does not cover count against it
    assert all("scale_from_scan_mm" in r for r in result["rows"])
    assert earlier["scale_from_scan_mm"] == pytest.approx(mean_face["scale_from_scan_mm"], abs=1e-6)
    assert rows["model fitted to the scan (3D)"]["scale_from_scan_mm"] < mean_face["scale_from_scan_mm"] - 0.1
    for r in peer_rows:
        assert r["scale_from_scan_mm"] > mean_face["scale_from_scan_mm"] + 0.1
    assert len(result["failed"]) == 1 and "broken.jpg" in result["failed"][0]
    assert sorted(p.name for p in (out / "rnet").iterdir()) == sorted(
        ["view0.ply", "view0_neutral.ply", "view1.ply", "view1_neutral.ply", "person_mean.ply", "person_joint.ply"])
    with pytest.raises(SystemExit, match="exists"):
        mod.main(argv)


def test_capacity_fit_keeps_expression_in_its_range():
    """lps_capacity.fit_model_to_scan: "none" holds β at 0, "unit" keeps it in [0, 1] (the photo
    fitter's range) and uses it, "free" lets it go below 0 on this scan; an unknown mode is refused."""
    import numpy as np

    need_shared("scans", "lee-perry-smith")

    from facerecon.evaluation.scans import load_lee_perry_smith

    fit = load_script("benchmarks/lps_capacity.py").fit_model_to_scan
    scan, scan_lmk = load_lee_perry_smith()
    got = {m: fit(scan, scan_lmk, 0.01, True, rounds=3, steps=10, expression=m) for m in ("free", "unit", "none")}
    beta = {m: np.array(g[2]["beta"]) for m, g in got.items()}
    assert not beta["none"].any() and got["none"][2]["beta_norm"] == 0
    assert beta["unit"].min() >= 0 and beta["unit"].max() <= 1 and beta["unit"].max() > 0.05
    assert beta["free"].min() < -0.05
    assert np.abs(got["none"][1]).max() > 0.5  # the identity still moves
    with pytest.raises(ValueError, match="expression"):
        fit(scan, scan_lmk, 0.01, True, rounds=1, expression="any")


def test_capacity_fit_landmark_weight_keeps_features_on_the_scans_points():
    """lps_capacity.fit_model_to_scan with landmark_weight > 0: the fitted shape's inner landmark
    vertices, aligned rigidly (Umeyama, computed here) onto the scan's points, lie much closer to
    them than the surface-only fit's, and the reported distance falls with them."""
    import numpy as np

    need_shared("scans", "lee-perry-smith")

    from facerecon.evaluation.scan import umeyama
    from facerecon.evaluation.scans import load_lee_perry_smith
    from facerecon.facemodel import load_face_model

    fit = load_script("benchmarks/lps_capacity.py").fit_model_to_scan
    scan, scan_lmk = load_lee_perry_smith()
    lmk_idx = load_face_model("face").landmark_idx.numpy()
    inner = np.arange(17, 68)

    def aligned_distance(verts):
        src, dst = verts[lmk_idx[inner]], scan_lmk[inner]
        _, rot, t = umeyama(src, dst, with_scale=False)
        return np.linalg.norm(src @ rot.T + t - dst, axis=1).mean()

    free = fit(scan, scan_lmk, 0.01, False, rounds=3, steps=10, expression="none")
    held = fit(scan, scan_lmk, 0.01, False, rounds=3, steps=10, expression="none", landmark_weight=1.0)
    assert aligned_distance(held[0]) < 0.75 * aligned_distance(free[0])
    assert 0 < held[2]["landmark_mm"] < 0.75 * free[2]["landmark_mm"]
    assert np.abs(held[1]).max() > 0.5  # the identity moved: not the mean face


def test_rescore_moves_only_identity_along_the_offset():
    """realskin_rescore.without_offset: α less amount × ō (hand values), every other coefficient and
    the dtype kept, the input untouched."""
    import numpy as np

    without_offset = load_script("benchmarks/realskin_rescore.py").without_offset
    params = np.array([[1.0, 2.0, 3.0, 7.0], [0.0, -1.0, 0.5, 8.0]], np.float32)
    got = without_offset(params, np.array([1.0, 0.0, 2.0]), amount=0.5)
    np.testing.assert_allclose(got, [[0.5, 2.0, 2.0, 7.0], [-0.5, -1.0, -0.5, 8.0]])
    assert got.dtype == np.float32 and params[0, 0] == 1.0
    np.testing.assert_allclose(without_offset(params, np.array([1.0, 0.0, 2.0]), amount=-1.0)[:, 0], [2.0, 1.0])


def test_labels_offset_moves_identity_by_the_people_mean(tmp_path):
    """tools/labels_offset.py: ō is the mean over people (not photos) of their mean α, every label's
    α loses amount × ō (hand values), the rest of a label and read_labels' view stay intact, the
    config records it, and an existing folder is refused."""
    import json

    import numpy as np
    import torch

    from facerecon.data.labels import read_labels, write_chunk
    from facerecon.params import FaceParams

    tool = load_script("tools/labels_offset.py")
    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"format": "facerecon-labels", "version": 1}))
    p = FaceParams.zeros(2, n_id=3, n_exp=2, n_tex=2)
    p.alpha[:] = torch.tensor([[1.0, 0.5, -1.0], [0.0, 2.0, 0.25]])
    p.beta[:] = 0.5
    write_chunk(src / "labels-00000.npz", ["a.jpg", "b.jpg"], p, torch.tensor([0.1, 0.2]))
    cache = tmp_path / "cache.npz"  # person P: α 2 and 4 (mean 3); person Q: (0, 2) -> ō = (1.5, 1) (photos: (2, 0.67))
    np.savez(cache, keys=np.array(["faces/lfw/P/1.jpg", "faces/lfw/P/2.jpg", "faces/lfw/Q/1.jpg"]),
             vectors=np.array([[2.0, 0, 0, 9], [4.0, 0, 0, 9], [0.0, 2, 0, 9]]))
    assert tool.main([str(src), str(tmp_path / "dst"), "--amount", "0.5", "--population", str(cache)]) == 0
    before, after = read_labels(src), read_labels(tmp_path / "dst")
    for key in ("a.jpg", "b.jpg"):
        np.testing.assert_allclose(after[key][0][:3], before[key][0][:3] - 0.5 * np.array([1.5, 1.0, 0.0]))
        np.testing.assert_array_equal(after[key][0][3:], before[key][0][3:])
        assert after[key][1] == before[key][1]
    doc = json.loads((tmp_path / "dst" / "config.json").read_text())
    assert doc["format"] == "facerecon-labels" and doc["offset_removed"]["amount"] == 0.5
    assert tool.main([str(src), str(tmp_path / "dst"), "--amount", "0.5", "--population", str(cache)]) == 1


def test_peer_mesh_triangles_are_the_3_cycles_of_its_edges():
    mod = load_script("benchmarks/peers/mediapipe_facemesh.py")
    # a square 0-1-2-3 split by the diagonal 0-2, and a dangling edge 3-4: two triangles, no more
    edges = [(0, 1), (1, 2), (2, 3), (3, 0), (2, 0), (4, 3)]
    assert mod.triangles(edges).tolist() == [[0, 1, 2], [0, 2, 3]]
    # a closed tetrahedron: its four faces
    assert len(mod.triangles([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)])) == 4


def test_peer_landmark_map_picks_the_vertex_that_follows_each_annotated_point(tmp_path):
    from facerecon.imageio.pts import pts_text

    mod = load_script("benchmarks/peer_scores.py")
    rng = np.random.default_rng(0)
    truth = rng.permutation(468)[:68]           # vertex that stands for iBUG point j
    names, verts = [], []
    for i in range(3):
        gt = rng.uniform(20, 230, (68, 2))
        gt[36], gt[45] = (80, 100), (180, 100)  # inter-ocular distance 100 px
        v = np.c_[rng.uniform(0, 256, (468, 2)), rng.normal(size=468)]
        v[truth, :2] = gt + rng.normal(0, 0.5, (68, 2))  # the right vertex, off by half a pixel
        (tmp_path / f"p{i}.pts").write_text(pts_text(gt))
        names.append(str(tmp_path / f"p{i}.png"))
        verts.append(v)
    peer = {"names": np.array(names), "ok": np.ones(3, bool), "vertices": np.array(verts)}
    assert mod.derive_map(peer).tolist() == truth.tolist()


def test_peer_vertices_to_mm_keep_handedness_and_set_the_eye_width():
    mod = load_script("benchmarks/peer_scores.py")
    index = np.arange(68)
    v = np.zeros((68, 3))
    v[36], v[45] = (100, 200, 0), (300, 200, 0)   # outer eye corners 200 px apart
    v[30] = (200, 260, -50)                       # nose tip: below the eyes (y down), nearer (z smaller)
    mm = mod.to_mm(v, index, 100.0)
    assert np.linalg.norm(mm[36] - mm[45]) == pytest.approx(100.0)
    assert mm[30, 1] < mm[36, 1] and mm[30, 2] > mm[36, 2]  # y up, z towards the camera
    # a proper similarity keeps the sign of every signed volume; a reflection (y flipped alone) would not
    v[8] = (200, 380, -10)                        # chin
    vol = lambda p: np.linalg.det(np.stack([p[45] - p[36], p[30] - p[36], p[8] - p[36]]))
    assert np.sign(vol(mod.to_mm(v, index, 100.0))) == np.sign(vol(v)) != 0


def test_peer_feature_errors_split_vertices_by_nearest_landmark():
    from types import SimpleNamespace

    mod = load_script("benchmarks/peer_scores.py")
    points = np.full((68, 3), np.nan)
    points[30] = (0, 0, 0)        # nose tip
    points[62] = (0, -30, 0)      # mouth
    points[60] = (0, -31, 0)      # a hidden landmark (NaN) would be nearer: here given, then taken away
    verts = np.array([[0, 1, 0], [0, -29, 0], [50, 0, 0], [0, -2, 0]], float)
    result = SimpleNamespace(vertex_indices=np.array([0, 1, 2, 3]), errors_mm=np.array([1.0, 2.0, 4.0, 3.0]),
                             signed_errors_mm=np.array([1.0, -2.0, 4.0, -3.0]))
    got = mod.feature_errors(result, verts, points)
    assert got["nose"] == (pytest.approx(np.sqrt((1 + 9) / 2)), pytest.approx(-1.0), 2)
    assert got["mouth"] == (2.0, -2.0, 1) and got["between"] == (4.0, 4.0, 1)
    assert np.isnan(got["eyes"][0]) and got["eyes"][2] == 0
    points[60] = np.nan
    assert mod.feature_errors(result, verts, points)["mouth"] == (2.0, -2.0, 1)


def test_from_scan_summary_and_feature_split_by_hand():
    """benchmarks/from_scan.py: the worst view's margin is taken over per-view means, and each scan
    point joins the feature of its nearest landmark within 12 mm, or a band, or the rest."""
    import numpy as np

    from facerecon.evaluation.scan import FromScanResult

    mod = load_script("benchmarks/from_scan.py")
    rows = [{"view": v, "rigid": r, "scale": s, "rigid_area": r, "scale_area": s}
            for v, r, s in (("front", 1.0, 0.8), ("front", 1.2, 1.0), ("side", 1.8, 1.2))]
    out = mod.summarise(rows, {"rigid": 2.0, "scale": 1.5})
    assert out["rigid"] == pytest.approx(4.0 / 3) and out["per_view_scale"] == {"front": 0.9, "side": 1.2}
    assert out["worst_view_margin_rigid"] == pytest.approx(1 - 1.8 / 2.0)
    assert out["worst_view_margin_scale"] == pytest.approx(1 - 1.2 / 1.5)
    lmk = np.zeros((68, 3))
    lmk[:, 0] = np.arange(68) * 100.0  # landmark i at x = 100 i, the nose tip (30) at x = 3000
    verts = np.array([[3005.0, 0, 0], [4005.0, 0, 0], [3000.0, -70.0, 0], [3000.0, 50.0, 0], [3550.0, 0, 0]])
    res = FromScanResult(rmse_mm=0, mean_mm=0, median_mm=0, area_rmse_mm=0, n_points=5, rim_share=0, scale=1,
                         icp_converged=True, errors_mm=np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
                         signed_errors_mm=np.array([1.0, -2.0, 3.0, -4.0, 5.0]), vertex_indices=np.arange(5))
    split = mod.feature_split(res, verts, lmk)
    assert split["nose"] == (1.0, 1.0)          # 5 mm from landmark 30
    # 70 mm under and 50 mm above the nose tip, 50 mm from any landmark
    assert split["eyes"] == (2.0, -2.0)         # 5 mm from landmark 40
    assert "mouth" not in split and "jaw" not in split
    assert split["under the chin"] == (3.0, 3.0) and split["above the brows"] == (4.0, -4.0)
    assert split["the rest (cheeks)"] == (5.0, 5.0)


def test_axis_scales_recover_a_known_stretch_and_ignore_a_rotation():
    mod = load_script("benchmarks/fit_geometry.py")
    g = np.array([[x, y, z] for x in (-2, -1, 1, 2) for y in (-1, 1) for z in (-3, 0, 3)], np.float64)
    # stretched by (1.1, 1.0, 0.9) and moved: the cloud's covariance is diagonal, so the Procrustes
    # rotation is the identity and each axis' least-squares scale is its factor; overall scale by
    # hand: sum_k f_k S_k / sum_k S_k with S_k = sum of squares along axis k (S = 60, 24, 144)
    ref = g * [1.1, 1.0, 0.9] + [5.0, -2.0, 7.0]
    overall, axes = mod.axis_scales(g, ref)
    s = np.array([60.0, 24.0, 144.0])
    assert np.allclose((g ** 2).sum(0), s)
    want = (np.array([1.1, 1.0, 0.9]) * s).sum() / s.sum()
    assert overall == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(axes, np.array([1.1, 1.0, 0.9]) / want, rtol=1e-12)
    # a rotation and a uniform scale: the same proportions, the scale found
    c, sn = np.cos(0.4), np.sin(0.4)
    rot = np.array([[c, 0, sn], [0, 1, 0], [-sn, 0, c]])
    overall, axes = mod.axis_scales(g, 1.07 * g @ rot.T)
    assert overall == pytest.approx(1.07, rel=1e-12)
    np.testing.assert_allclose(axes, 1.0, rtol=1e-12)


def test_pose_deviation_and_yaw_gain_by_hand():
    mod = load_script("benchmarks/fit_geometry.py")
    from facerecon.params import FaceParams

    views = ["front", "yaw+20", "yaw-40", "pitch+15"]
    fitted = np.radians([[1.0, 2.0, 0.0], [1.5, 24.0, 0.3], [0.5, -42.0, 0.0], [13.0, 2.0, 0.0]])
    p = FaceParams.zeros(4)
    p.angles = torch.tensor(fitted, dtype=torch.float32)
    dev = mod.pose_deviation(p.to_vector().numpy(), views)
    np.testing.assert_allclose(dev, [[1.0, 2.0], [1.5, 4.0], [0.5, -2.0], [-2.0, 2.0]], atol=1e-5)
    # the front's yaw (2°) is the frames' offset: yaws 22 and -44 against 20 and -40,
    # slope (22*20 + 44*40) / (20^2 + 40^2) = 2200 / 2000
    assert mod.yaw_gain(dev, views) == pytest.approx(1.1, rel=1e-5)


def test_from_scan_reports_the_size_it_aligned_and_its_per_view_mean():
    """``from_scan.score`` records the similarity ICP's scale: the same mesh shrunk by 0.9 needs
    1/0.9 times the scale to meet the scan (a known geometry). ``summarise`` averages it per view."""
    need_shared("scans", "lee-perry-smith")
    from facerecon.facemodel import load_face_model

    mod = load_script("benchmarks/from_scan.py")
    model = load_face_model("export")
    faces, lmk = model.faces.numpy(), model.landmark_idx.numpy()
    mean = model.mean.numpy().astype(np.float64)
    full = mod.score(mean, faces, lmk, features=False)
    small = mod.score(0.9 * mean, faces, lmk, features=False)
    assert 1.0 < full["icp_scale"] < 1.2  # the scan's head is larger than ICT's mean face
    assert small["icp_scale"] == pytest.approx(full["icp_scale"] / 0.9, rel=2e-3)
    assert small["scale"] == pytest.approx(full["scale"] * 1.0, rel=2e-2)  # with scale: the same shape, the same fit
    rows = [{"view": v, "texture": t, "rigid": 2.0, "scale": 1.5, "icp_scale": x}
            for v, t, x in (("front", 0, 1.06), ("front", 1, 1.08), ("yaw+40", 0, 1.10))]
    got = mod.summarise(rows, {"rigid": 2.5, "scale": 1.8})
    assert got["per_view_icp_scale"] == pytest.approx({"front": 1.07, "yaw+40": 1.10})
    assert got["icp_scale"] == pytest.approx(3.24 / 3)


def test_texture_hue_counts_the_green_and_blue_skin_texels(ict_archive, tmp_path):
    """Three exported textures: skin colour everywhere (0 %), a blue shirt everywhere (100 %), and
    blue on the texture's top half only: the share is the skin texels in rows 0–511 (counted from
    the raster's own pixel indices), whatever lies outside the skin parts."""
    import cv2

    from facerecon.export.atlas import model_atlas
    from facerecon.export.uvraster import PART_NAMES, texel_geometry
    from facerecon.facemodel import load_face_model

    mod = load_script("benchmarks/texture_hue.py")
    head = load_face_model("head", albedo="learned", landmarks="300w-photo")
    geo = texel_geometry(head, model_atlas(head), mod.SIZE)
    skin = (geo.part == PART_NAMES.index("face")) | (geo.part == PART_NAMES.index("head_neck"))
    skin_rgb, blue = (168, 120, 97), (50, 75, 150)
    half = np.full((1024, 1024, 3), skin_rgb, np.uint8)
    half[:512] = blue
    for name, img in (("skin", np.full((1024, 1024, 3), skin_rgb, np.uint8)),
                      ("blue", np.full((1024, 1024, 3), blue, np.uint8)), ("half", half)):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / "face_texture.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    shares = mod.cool_shares(tmp_path, geo, skin)
    assert shares["skin"] == [0.0, 0.0] and shares["blue"] == [1.0, 1.0]
    top = (geo.raster.pix // 1024 < 512)[skin].mean()
    assert 0.05 < top < 0.95
    assert shares["half"] == pytest.approx([top, top])
