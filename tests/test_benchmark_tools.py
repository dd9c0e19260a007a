"""The benchmarks' paired comparison (benchmarks/paired.py) pairs the same items of two runs."""

from __future__ import annotations

import pytest

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
            {"method": "fit neutral", "scale": True, "rmse_mm": 2.1, "view": "front", "texture": 0}]
    got = mod.measures({"rows": rows})
    assert got == {"real skin, mesh, rigid (mm)": {"0/front": 2.5}, "real skin, mesh, with scale (mm)": {"0/front": 2.2},
                   "real skin, neutral mesh, with scale (mm)": {"0/front": 2.1}}
    report = {"per_image": [{"name": "a.png", "nme_eyes": 0.04}, {"name": "b.png", "nme_eyes": None}]}
    assert mod.measures(report) == {"NME, eye corners (points)": {"a.png": pytest.approx(4.0)}}
    with pytest.raises(ValueError, match="neither"):
        mod.measures({"auc": 0.9})


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
