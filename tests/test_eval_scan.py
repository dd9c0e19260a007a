"""The scan-comparison instrument (facerecon.evaluation.scan) measured against known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import trimesh

from facerecon.evaluation.heatmap import render_error_heatmap
from facerecon.evaluation.scan import (
    MeshError,
    evaluate_from_scan,
    evaluate_scan,
    load_landmarks,
    load_mesh,
    umeyama,
    visible_part,
)
from tests.conftest import need_shared


def _rotation(pitch_deg: float, yaw_deg: float, roll_deg: float) -> np.ndarray:
    a, b, c = np.radians([pitch_deg, yaw_deg, roll_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _head_like(subdivisions: int = 5, bumps: bool = True, uv: bool = False) -> trimesh.Trimesh:
    """A closed head-sized surface in mm (y up, +z front) with a nose and brow (asymmetric
    in every axis) so that the alignment has a unique answer. ``uv``: tessellate a UV sphere
    instead of an icosphere (vertices that are not on the other tessellation)."""
    sphere = trimesh.creation.uv_sphere(count=(96, 96)) if uv else \
        trimesh.creation.icosphere(subdivisions=subdivisions)
    v = np.asarray(sphere.vertices) * np.array([75.0, 100.0, 85.0])
    if bumps:
        front = v[:, 2] > 0
        d = np.linalg.norm(v[:, :2] - np.array([0.0, -10.0]), axis=1)
        v[:, 2] += 25.0 * np.exp(-(d / 18.0) ** 2) * front
        v[:, 2] += 8.0 * np.exp(-((v[:, 1] - 30.0) / 10.0) ** 2) * np.exp(-(v[:, 0] / 50.0) ** 2) * front
    return trimesh.Trimesh(v, np.asarray(sphere.faces), process=False)


def _moved(mesh: trimesh.Trimesh, rot: np.ndarray, t: np.ndarray, s: float = 1.0) -> trimesh.Trimesh:
    return trimesh.Trimesh(s * np.asarray(mesh.vertices) @ rot.T + t, np.asarray(mesh.faces), process=False)


@pytest.fixture(scope="module")
def head() -> trimesh.Trimesh:
    return _head_like()


def test_identical_meshes_give_zero(head):
    r = evaluate_scan(head, head)
    assert r.rmse_mm < 1e-9 and r.max_mm < 1e-9
    assert r.n_points > 1000
    np.testing.assert_allclose(r.rotation, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(r.translation, 0.0, atol=1e-9)
    assert r.scale == 1.0 and not r.scale_allowed


@pytest.mark.parametrize("init", ["axes", "landmarks"])
def test_known_rigid_motion_is_recovered(head, init):
    rot, t = _rotation(10, 25, -5), np.array([5.0, -3.0, 20.0])
    pred = _moved(head, rot, t)
    kwargs = {}
    if init == "landmarks":
        # 68 "landmarks": any vertices, the nose tip (max z) at index 30
        ids = np.linspace(0, len(head.vertices) - 1, 68).astype(int)
        ids[30] = int(np.argmax(head.vertices[:, 2]))
        kwargs = dict(pred_landmarks=np.asarray(pred.vertices)[ids],
                      scan_landmarks=np.asarray(head.vertices)[ids])
    r = evaluate_scan(pred, head, **kwargs)
    assert r.init == init
    assert r.rmse_mm < 1e-6
    # the alignment is the inverse motion
    np.testing.assert_allclose(r.rotation @ rot, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(r.rotation @ t + r.translation, 0.0, atol=1e-5)


def test_large_rotation_needs_the_axis_candidates(head):
    """A half-turn about y: the principal-axes start with its flips must still find it."""
    rot = _rotation(0, 170, 0)
    pred = _moved(head, rot, np.array([10.0, 0.0, 0.0]))
    r = evaluate_scan(pred, head, crop_radius_mm=math.inf)
    assert r.rmse_mm < 1e-6
    np.testing.assert_allclose(r.rotation @ rot, np.eye(3), atol=1e-6)


def test_remeshed_surface_error_is_small():
    """Same analytic surface, different tessellation: the instrument sees only facet error."""
    scan = _head_like(subdivisions=5)
    pred = _moved(_head_like(uv=True), _rotation(3, -8, 2), np.array([2.0, 1.0, -4.0]))
    r = evaluate_scan(pred, scan)
    assert 1e-3 < r.rmse_mm < 0.2
    np.testing.assert_allclose(r.rotation @ _rotation(3, -8, 2), np.eye(3), atol=5e-3)


def test_one_mm_normal_offset_measures_one_mm(head):
    offset = trimesh.Trimesh(np.asarray(head.vertices) + head.vertex_normals, np.asarray(head.faces),
                             process=False)
    # the distance measure alone (no alignment): vertices 1 mm off a fine convex-ish surface
    r = evaluate_scan(offset, head, align="none")
    assert abs(r.median_mm - 1.0) < 1e-3
    assert abs(r.rmse_mm - 1.0) < 5e-3
    assert abs(r.p90_mm - 1.0) < 5e-3
    assert (r.signed_errors_mm > 0).mean() > 0.99  # outside the scan
    # with ICP on a closed ellipsoid (no rigid motion can undo an offset) and no crop
    ell = _head_like(bumps=False)
    off = trimesh.Trimesh(np.asarray(ell.vertices) + ell.vertex_normals, np.asarray(ell.faces),
                          process=False)
    r = evaluate_scan(off, ell, crop_radius_mm=math.inf)
    assert abs(r.rmse_mm - 1.0) < 5e-3 and abs(r.mean_mm - 1.0) < 5e-3
    np.testing.assert_allclose(r.translation, 0.0, atol=1e-2)


def test_scale_is_recovered_only_when_allowed(head):
    rot, t = _rotation(-6, 15, 4), np.array([-4.0, 7.0, 12.0])
    pred = _moved(head, rot, t, s=1.1)
    scaled = evaluate_scan(pred, head, allow_scale=True)
    assert scaled.scale_allowed
    assert abs(scaled.scale - 1 / 1.1) < 1e-6
    assert scaled.rmse_mm < 1e-6
    rigid = evaluate_scan(pred, head, allow_scale=False)
    assert rigid.scale == 1.0 and not rigid.scale_allowed
    assert rigid.rmse_mm > 0.5  # a 10% larger face cannot fit rigidly
    assert scaled.summary()["scale"] == pytest.approx(1 / 1.1)


def test_crop_radius_is_respected(head):
    tip = head.vertices[np.argmax(head.vertices[:, 2])]
    for radius in (40.0, 95.0):
        r = evaluate_scan(head, head, crop_radius_mm=radius)
        dist = np.linalg.norm(head.vertices - tip, axis=1)
        assert r.n_points == int((dist <= radius).sum())
        assert set(r.vertex_indices) == set(np.flatnonzero(dist <= radius))
        assert np.all(np.linalg.norm(r.aligned_pred.vertices[r.vertex_indices] - tip, axis=1) <= radius)
    # scan geometry far outside the sphere (shoulders, a stray object) changes nothing
    box = trimesh.creation.box(extents=(50, 50, 50))
    box.apply_translation([0, -300, 0])
    scan = trimesh.util.concatenate([head, box])
    pred = _moved(head, _rotation(0, 10, 0), np.array([0.0, 0.0, 5.0]))
    a = evaluate_scan(pred, head)
    b = evaluate_scan(pred, scan)
    assert b.rmse_mm == pytest.approx(a.rmse_mm, abs=1e-9)
    assert b.n_points == a.n_points


def test_umeyama_similarity():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(20, 3)) * 30
    rot, t = _rotation(20, -40, 70), np.array([1.0, 2.0, 3.0])
    dst = 1.3 * src @ rot.T + t
    dst[5] = np.nan  # missing landmark is ignored
    s, r, tt = umeyama(src, dst)
    assert s == pytest.approx(1.3)
    np.testing.assert_allclose(r, rot, atol=1e-9)
    np.testing.assert_allclose(tt, t, atol=1e-9)
    s, r, _ = umeyama(src, dst, with_scale=False)
    assert s == 1.0 and np.linalg.det(r) == pytest.approx(1.0)


def test_files_units_landmarks_and_heatmap(tmp_path, head):
    # mesh in centimetres, read back in mm
    cm = trimesh.Trimesh(np.asarray(head.vertices) / 10.0, np.asarray(head.faces), process=False)
    (tmp_path / "scan.ply").write_bytes(cm.export(file_type="ply"))
    (tmp_path / "pred.obj").write_text(head.export(file_type="obj"))
    scan = load_mesh(tmp_path / "scan.ply", units_to_mm=10.0)
    pred = load_mesh(tmp_path / "pred.obj")
    np.testing.assert_allclose(scan.vertices, head.vertices, atol=1e-4)
    assert len(pred.vertices) == len(head.vertices)  # vertex order kept
    # landmarks as vertex indices (JSON) and as coordinates (text)
    ids = np.arange(68) * 100
    (tmp_path / "lm.json").write_text(json.dumps({"vertex_indices": ids.tolist()}))
    np.savetxt(tmp_path / "lm.txt", np.asarray(head.vertices)[ids] / 10.0)
    a = load_landmarks(tmp_path / "lm.json", pred.vertices)
    b = load_landmarks(tmp_path / "lm.txt", units_to_mm=10.0)
    np.testing.assert_allclose(a, b, atol=1e-4)
    r = evaluate_scan(pred, scan)
    out = render_error_heatmap(r, tmp_path / "heat.png")
    from PIL import Image

    img = Image.open(out)
    assert img.size[0] > img.size[1] > 100
    # bad inputs: one clear error naming the file
    (tmp_path / "bad.obj").write_text("this is not a mesh\n")
    with pytest.raises(MeshError, match="bad.obj"):
        load_mesh(tmp_path / "bad.obj")
    with pytest.raises(MeshError, match="missing.ply: no such file"):
        load_mesh(tmp_path / "missing.ply")
    (tmp_path / "lm_bad.txt").write_text("1 2\n3 4\n5 6\n")
    with pytest.raises(MeshError, match="lm_bad.txt"):
        load_landmarks(tmp_path / "lm_bad.txt")
    with pytest.raises(MeshError, match="units"):
        evaluate_scan(pred, trimesh.Trimesh(np.asarray(head.vertices) * 1000, head.faces,
                                            process=False), crop_radius_mm=95.0,
                      scan_landmarks=np.full((68, 3), 1e6))


def test_surface_index_is_exact_and_finds_open_edges():
    from facerecon.evaluation.surface import SurfaceIndex

    rng = np.random.default_rng(3)
    sphere = trimesh.creation.icosphere(subdivisions=3)
    cap = trimesh.Trimesh(np.asarray(sphere.vertices) * 50.0, sphere.faces, process=False)
    keep = cap.vertices[cap.faces][:, :, 2].mean(1) > -10.0  # an open cap
    cap = trimesh.Trimesh(cap.vertices, cap.faces[keep], process=False)
    # stretch some triangles so that triangle sizes vary a lot
    v = np.asarray(cap.vertices).copy()
    v[:, 0] *= np.where(v[:, 0] > 0, 2.5, 1.0)
    cap = trimesh.Trimesh(v, cap.faces, process=False)
    pts = rng.normal(size=(3000, 3)) * 70.0
    q, d, tri, rim = SurfaceIndex(cap, spacing_mm=1.0).closest(pts)
    q2, d2, _ = trimesh.proximity.closest_point(cap, pts)
    np.testing.assert_allclose(d, d2, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(pts - q, axis=1), d, atol=1e-9)
    # points below the cap's open rim find it; points right above the cap do not
    below = pts[:, 2] < -60.0
    assert rim[below].all()
    above = (pts[:, 2] > 0) & (np.linalg.norm(pts[:, :2], axis=1) < 20)
    assert not rim[above].any()


def test_reverse_figures_and_coverage(head):
    same = evaluate_scan(head, head)
    assert same.scan_to_pred_rmse_mm < 1e-9 and same.scan_coverage == pytest.approx(1.0)
    # a prediction that only has the front half of the face: half the scan area is not covered
    v = np.asarray(head.vertices)
    front = v[head.faces][:, :, 0].mean(1) > 0.0
    half = trimesh.Trimesh(v, head.faces[front], process=False)
    r = evaluate_scan(half, head, align="none")
    assert r.rmse_mm < 1e-9 and r.scan_to_pred_rmse_mm < 1e-6
    assert 0.4 < r.scan_coverage < 0.6
    # both directions see a 1 mm offset
    off = trimesh.Trimesh(v + head.vertex_normals, head.faces, process=False)
    r = evaluate_scan(off, head, align="none")
    assert abs(r.scan_to_pred_median_mm - 1.0) < 5e-3 and abs(r.scan_to_pred_rmse_mm - 1.0) < 1e-2


def _with_inner_ball(mesh: trimesh.Trimesh, center=(0.0, -10.0, 60.0), radius: float = 10.0) -> trimesh.Trimesh:
    """``mesh`` plus a closed ball inside it (as a head model's eyeballs or teeth)."""
    ball = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    ball.apply_translation(center)
    return trimesh.util.concatenate([trimesh.Trimesh(mesh.vertices, mesh.faces, process=False), ball])


def test_from_scan_ignores_what_is_inside_the_prediction(head):
    """A scan 1 mm outside the prediction measures 1 mm from the scan, with a ball inside the
    prediction that the prediction -> scan direction counts (it lies ~45 mm inside)."""
    v = np.asarray(head.vertices)
    scan = trimesh.Trimesh(v + head.vertex_normals, head.faces, process=False)
    pred = _with_inner_ball(head)
    r = evaluate_from_scan(pred, scan, align="none")
    assert abs(r.median_mm - 1.0) < 1e-3 and abs(r.rmse_mm - 1.0) < 5e-3
    assert abs(r.area_rmse_mm - 1.0) < 1e-2
    assert (r.signed_errors_mm > 0).mean() > 0.99  # the scan lies outside the prediction
    assert r.rim_share == 0.0 and r.scale == 1.0
    assert evaluate_scan(pred, scan, align="none").rmse_mm > 5.0  # the other direction sees the ball
    # a prediction with only the front half: the scan it misses is counted, on its open boundary
    front = v[head.faces][:, :, 0].mean(1) > 0.0
    half = evaluate_from_scan(trimesh.Trimesh(v, head.faces[front], process=False), head, align="none")
    assert 0.3 < half.rim_share < 0.7 and half.rmse_mm > 10.0


def test_from_scan_figures_are_in_the_scan_mm_whatever_the_prediction_size(head):
    """A prediction with 70 % of the scan's nose and brow (no similarity matches them): scaling,
    turning and moving it leaves the scan's errors unchanged and divides the scale."""
    ell = _head_like(bumps=False)  # the same tessellation as ``head``: shared landmark vertices
    v = np.asarray(ell.vertices) + 0.7 * (np.asarray(head.vertices) - np.asarray(ell.vertices))
    pred = trimesh.Trimesh(v, ell.faces, process=False)
    ids = np.linspace(0, len(head.vertices) - 1, 68).astype(int)
    ids[30] = int(np.argmax(head.vertices[:, 2]))
    scan_lmk = np.asarray(head.vertices)[ids]
    a = evaluate_from_scan(pred, head, v[ids], scan_lmk, allow_scale=True)
    big = _moved(pred, _rotation(5, -20, 3), np.array([30.0, -5.0, 8.0]), s=1.6)
    b = evaluate_from_scan(big, head, np.asarray(big.vertices)[ids], scan_lmk, allow_scale=True)
    assert 0.5 < a.rmse_mm < 2.0  # 30 % of the bumps are missing
    assert b.rmse_mm == pytest.approx(a.rmse_mm, rel=2e-3)
    assert b.area_rmse_mm == pytest.approx(a.area_rmse_mm, rel=2e-3)
    assert b.scale == pytest.approx(a.scale / 1.6, rel=2e-3)
    # the ICP's trimming is in the scan's mm too: the same points are left out of the fit
    assert np.median(b.errors_mm) == pytest.approx(np.median(a.errors_mm), rel=5e-3)


def test_visible_part_drops_a_body_inside(head):
    """The ball inside the head is what no scanner sees; the crop is kept."""
    pytest.importorskip("rtree")
    mesh = _with_inner_ball(head)
    seen = visible_part(mesh)
    assert len(seen.faces) == len(head.faces)
    assert np.linalg.norm(np.asarray(seen.vertices) - [0.0, -10.0, 60.0], axis=1).min() > 30.0
    tip = head.vertices[np.argmax(head.vertices[:, 2])]
    near = visible_part(mesh, tip, 60.0)
    assert np.linalg.norm(np.asarray(near.vertices) - tip, axis=1).max() <= 60.0
    assert 0 < len(near.faces) < len(head.faces)


def test_cli_scan_json_heatmap_and_errors(tmp_path, head, capsys):
    from facerecon.cli import main

    moved = _moved(head, _rotation(5, 12, 0), np.array([3.0, 0.0, -2.0]))
    (tmp_path / "scan.ply").write_bytes(head.export(file_type="ply"))
    (tmp_path / "pred.ply").write_bytes(moved.export(file_type="ply"))
    code = main(["evaluate", "scan", "--pred", str(tmp_path / "pred.ply"),
                 "--scan", str(tmp_path / "scan.ply"), "--json", "--scale",
                 "--heatmap", str(tmp_path / "out" / "heat.png"),
                 "--save-aligned", str(tmp_path / "out" / "aligned.ply")])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rmse_mm"] < 1e-4 and out["alignment"] == "similarity"  # float32 PLY
    assert out["scale"] == pytest.approx(1.0, abs=1e-5)
    assert (tmp_path / "out" / "heat.png").stat().st_size > 1000
    aligned = load_mesh(tmp_path / "out" / "aligned.ply")
    np.testing.assert_allclose(aligned.vertices, head.vertices, atol=1e-4)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp files
    # human-readable output
    assert main(["evaluate", "scan", "--pred", str(tmp_path / "pred.ply"),
                 "--scan", str(tmp_path / "scan.ply")]) == 0
    assert "RMSE" in capsys.readouterr().out
    # bad input: exit code 2 and one line naming the file
    (tmp_path / "broken.ply").write_text("ply\nnonsense\n")
    code = main(["evaluate", "scan", "--pred", str(tmp_path / "broken.ply"),
                 "--scan", str(tmp_path / "scan.ply")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "broken.ply" in err


def test_cli_from_scan_measures_the_scan_to_the_whole_prediction(tmp_path, capsys):
    """A prediction with a ball inside, against a scan 1 mm outside it: from the scan at most 1 mm
    (ICP undoes most of the offset of a cap by a shift), from the prediction the ball's ~45 mm."""
    from facerecon.cli import main

    head = _head_like(subdivisions=4)
    scan = trimesh.Trimesh(np.asarray(head.vertices) + head.vertex_normals, head.faces, process=False)
    (tmp_path / "scan.ply").write_bytes(scan.export(file_type="ply"))
    (tmp_path / "pred.ply").write_bytes(_with_inner_ball(head).export(file_type="ply"))
    args = ["evaluate", "scan", "--pred", str(tmp_path / "pred.ply"), "--scan", str(tmp_path / "scan.ply"),
            "--from-scan"]
    assert main(args + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rmse_mm"] > 5.0
    assert out["from_scan"]["rmse_mm"] < 1.02 and out["from_scan"]["rim_share"] == 0.0
    assert main(args) == 0
    assert "from the scan" in capsys.readouterr().out


def test_lee_perry_smith_in_mm_with_landmarks_on_its_surface():
    from facerecon.assets import shared_path
    from facerecon.evaluation.surface import SurfaceIndex
    from facerecon.evaluation.scans import lee_perry_smith_record, load_lee_perry_smith

    if shared_path("scans", "lee-perry-smith", "LeePerrySmith.glb") is None:
        pytest.skip("shared scan not available")
    mesh, lmk = load_lee_perry_smith()
    rec = lee_perry_smith_record()
    assert lmk.shape == (68, 3) and np.isfinite(lmk).all()
    # the scale reference holds: outer eye corners as far apart as the stated target
    assert np.linalg.norm(lmk[36] - lmk[45]) == pytest.approx(rec["scale_reference"]["target_mm"], rel=1e-3)
    # a head-sized head (a units error would be 10x off): 140-190 mm wide at the forehead
    forehead = np.abs(mesh.vertices[:, 1] - (lmk[17:27, 1].mean() + 40.0)) < 3
    width = np.ptp(mesh.vertices[forehead, 0])
    assert 140 < width < 190
    # landmarks were cast onto the surface; the nose tip is in front
    d, _ = SurfaceIndex(mesh).distance(lmk)
    assert d.max() < 1.0
    assert lmk[30, 2] > np.percentile(mesh.vertices[:, 2], 99)


def test_declared_units_of_facerecon_meshes(tmp_path):
    """A facerecon OBJ/PLY says its unit in its header; the evaluator reads it (metres -> ×1000)."""
    import numpy as np

    from facerecon.evaluation.scan import declared_units_to_mm
    from facerecon.export.mesh import write_obj, write_ply

    verts = np.array([[0.0, 0, 0], [10, 0, 0], [0, 10, 0]])
    faces = np.array([[0, 1, 2]])
    write_obj(tmp_path / "m.obj", verts, faces, units="m")
    write_ply(tmp_path / "mm.ply", verts, faces, units="mm")
    (tmp_path / "other.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    assert declared_units_to_mm(tmp_path / "m.obj") == 1000.0
    assert declared_units_to_mm(tmp_path / "mm.ply") == 1.0
    assert declared_units_to_mm(tmp_path / "other.obj") is None


def test_an_alignment_that_needs_a_wild_scale_is_refused(head):
    """ICP with a free scale has a degenerate minimum: a prediction shrunk onto a speck of the
    scan's surface measures ~0 mm. A prediction in metres (scale 1000 needed) or one that matches
    nowhere must raise, not score; a 10 % scale still scores (test_scale_is_recovered_only_when_allowed)."""
    ids = np.linspace(0, len(head.vertices) - 1, 68).astype(int)
    ids[30] = int(np.argmax(head.vertices[:, 2]))     # the nose tip at index 30
    in_metres = _moved(head, np.eye(3), np.zeros(3), s=0.001)
    with pytest.raises(MeshError, match="scale of 1e"):
        evaluate_scan(in_metres, head, np.asarray(in_metres.vertices)[ids], np.asarray(head.vertices)[ids],
                      allow_scale=True, crop_radius_mm=math.inf)


def test_cli_scores_the_face_region_of_a_facerecon_mesh(tmp_path, capsys, ict_archive):
    """A mesh in the vertex order of facerecon's export region (face, head, mouth and eye sockets,
    teeth...): by default only its face region is scored, so the ICT mean face exported that way
    measures what the built-in face-only mean face does (BENCHMARKS.md: 3.175 mm rigid); --pred-part
    all scores every part, outer the face less its hidden insides; a mesh in no ICT order cannot be
    cut."""
    import trimesh

    from facerecon.cli import main
    from facerecon.facemodel import load_face_model

    need_shared("scans", "lee-perry-smith")
    export = load_face_model("export")
    path = tmp_path / "face.ply"
    mesh = trimesh.Trimesh(export.mean.numpy(), export.faces.numpy(), process=False)
    path.write_bytes(mesh.export(file_type="ply"))

    def run(*extra):
        assert main(["evaluate", "scan", "--pred", str(path), "--scan", "lee-perry-smith",
                     "--pred-landmarks", "ict", "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    assert main(["evaluate", "scan", "--pred", "ict-mean-face", "--scan", "lee-perry-smith", "--json"]) == 0
    builtin = json.loads(capsys.readouterr().out)
    auto, everything, outer = run(), run("--pred-part", "all"), run("--pred-part", "outer")
    assert auto["pred_part"] == "face" and auto["rmse_mm"] == pytest.approx(builtin["rmse_mm"], abs=2e-3)
    assert auto["rmse_mm"] == pytest.approx(3.175, abs=0.01) and auto["n_points"] == builtin["n_points"]
    assert everything["pred_part"] == "all" and everything["n_points"] > 2 * auto["n_points"]
    assert outer["pred_part"] == "outer" and outer["n_points"] < auto["n_points"]
    assert outer["rmse_mm"] < auto["rmse_mm"]
    other = tmp_path / "other.ply"
    other.write_bytes(trimesh.creation.icosphere(3, radius=80.0).export(file_type="ply"))
    assert main(["evaluate", "scan", "--pred", str(other), "--scan", "lee-perry-smith", "--pred-part", "outer"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other.ply" in err and "ICT" in err


def _warp_landmarks() -> np.ndarray:
    """68 landmarks (mm) where only what the warps read is set: nose tip 30 at (5, 0, 100), eye
    corners 36–47 at y 40, z 80 (36, 39, 42, 45), brows 17–26 at y 50 (top 50), chin 8 at y −70."""
    lmk = np.zeros((68, 3))
    lmk[30] = (5.0, 0.0, 100.0)
    lmk[36:48] = (0.0, 40.0, 80.0)
    lmk[17:27] = (0.0, 50.0, 70.0)
    lmk[8] = (5.0, -70.0, 60.0)
    return lmk


def test_head_warps_scale_the_scan_as_described():
    """Each reshaped head moves points by the scalings :data:`HEAD_WARPS` states (hand-computed
    from the landmarks above), the recorded head not at all, and every warp keeps order along
    each axis (one-to-one)."""
    from facerecon.evaluation.scans import HEAD_WARPS, warp_head

    lmk = _warp_landmarks()
    pts = np.array([[25.0, 40.0, 90.0],    # eye level: x unchanged in lps-b
                    [25.0, 80.0, 90.0],    # 15 mm over the brows and up: x 8 % closer to the nose's 5
                    [25.0, -70.0, 90.0],   # chin level: x 8 % further out
                    [25.0, -10.0, 90.0],   # 10 mm under the nose tip: lps-c stretches by 1 + 0.08 · S(0.5)
                    [25.0, -40.0, 90.0]])  # past 20 mm: by 1.08
    assert np.array_equal(warp_head(pts, lmk, "lps"), pts)
    b = warp_head(pts, lmk, "lps-b")
    assert b[:, 0] == pytest.approx([25.0, 5 + 20 * 0.92, 5 + 20 * 1.08, b[3, 0], b[4, 0]])
    assert np.array_equal(b[:, 1:], pts[:, 1:])
    down = (10 / 70) ** 2 * (3 - 2 * 10 / 70)  # smoothstep of 10 mm under the nose of 70 to the chin
    assert b[3, 0] == pytest.approx(5 + 20 * (1 + 0.08 * down))
    c = warp_head(pts, lmk, "lps-c")
    assert c[:, 2] == pytest.approx(80.0 + 10.0 * 0.9) and np.array_equal(c[:, 0], pts[:, 0])
    assert c[:3, 1] == pytest.approx([40.0, 80.0, -70.0 * 1.08])
    assert c[3:, 1] == pytest.approx([-10.0 * (1 + 0.08 * 0.5), -40.0 * 1.08])
    line = np.linspace(-150, 150, 3001)
    for name in HEAD_WARPS:
        for axis in range(3):
            p = np.tile([25.0, 10.0, 90.0], (len(line), 1))
            p[:, axis] = line
            assert (np.diff(warp_head(p, lmk, name)[:, axis]) > 0).all(), (name, axis)
    with pytest.raises(ValueError, match="unknown head 'lps-z'"):
        warp_head(pts, lmk, "lps-z")


def test_reshaped_heads_carry_their_landmarks_with_the_surface():
    """A reshaped Lee Perry-Smith head is the scan and its landmarks moved by one warp: the
    landmarks stay on the (reshaped) surface, and the outer surface is reshaped the same way."""
    from facerecon.evaluation.surface import SurfaceIndex
    from facerecon.evaluation.scans import lee_perry_smith_surface, load_lee_perry_smith, warp_head

    need_shared("scans", "lee-perry-smith", "LeePerrySmith.glb")
    mesh, lmk = load_lee_perry_smith()
    warped, wlmk = load_lee_perry_smith("lps-b")
    assert np.allclose(wlmk, warp_head(lmk, lmk, "lps-b")) and not np.allclose(wlmk, lmk)
    assert np.allclose(warped.vertices, warp_head(mesh.vertices, lmk, "lps-b"))
    d, _ = SurfaceIndex(warped).distance(wlmk)
    assert d.max() < 1.0
    outer, olmk = lee_perry_smith_surface("lps-c")
    assert np.allclose(olmk, warp_head(lmk, lmk, "lps-c"))
    assert np.allclose(outer.vertices, warp_head(lee_perry_smith_surface()[0].vertices, lmk, "lps-c"))
