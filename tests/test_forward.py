"""The forward model: one chain from FaceParams to mesh, shading, image and landmarks.

Checked against an independent composition of the primitives it replaces (the pre-refactor
fitter's render: shape -> pose -> clamped albedo -> normals of the posed mesh -> SH shading ->
rasterizer), against a per-triangle loop for the normals, and against the fixed landmark vertices.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon.facemodel import load_face_model
from facerecon.forward import ForwardModel, shade_vertices
from facerecon.geometry import face_normals_np, vertex_normals, vertex_normals_np
from facerecon.params import FaceParams
from facerecon.render import Camera, Renderer, euler_to_matrix, project, sh_shading, transform


@pytest.fixture(scope="module")
def narrow(ict_archive):
    return load_face_model("narrow")


def _params(batch: int = 3, seed: int = 7) -> FaceParams:
    g = torch.Generator().manual_seed(seed)
    p = FaceParams.zeros(batch)
    p.alpha = 0.8 * torch.randn(batch, 80, generator=g)
    p.beta = 0.3 * torch.rand(batch, 53, generator=g)
    p.delta = 0.7 * torch.randn(batch, 80, generator=g)
    p.gamma = torch.tensor([[0.8, 0.1, 0.3, -0.1, 0.02, 0.0, -0.05, 0.01, 0.03]]).repeat(batch, 1)
    p.angles = torch.tensor([[0.05, 0.0, 0.0], [0.1, 0.6, 0.05], [-0.1, -0.4, -0.1]])[:batch]
    p.trans = torch.tensor([[0.0, 0.0, -1000.0], [3.0, -2.0, -990.0], [-4.0, 1.0, -1020.0]])[:batch]
    return p


def _normals_by_loop(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals, one triangle at a time (the textbook definition)."""
    n = np.zeros_like(verts, dtype=np.float64)
    for a, b, c in faces:
        fn = np.cross(verts[b] - verts[a], verts[c] - verts[a])
        n[a] += fn
        n[b] += fn
        n[c] += fn
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def test_vertex_normals_match_the_per_triangle_definition():
    rng = np.random.default_rng(0)
    verts = rng.normal(size=(40, 3))
    faces = np.array([rng.choice(40, 3, replace=False) for _ in range(70)])
    ref = _normals_by_loop(verts, faces)
    used = np.isin(np.arange(40), faces)
    np.testing.assert_allclose(vertex_normals_np(verts, faces)[used], ref[used], atol=1e-12)
    batched = vertex_normals(torch.tensor(np.stack([verts, 2 * verts])), torch.tensor(faces))
    np.testing.assert_allclose(batched[1].numpy()[used], ref[used], atol=1e-12)  # scale-free
    # a lone triangle in the xy plane, counter-clockwise seen from +z: normal +z
    tri = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_allclose(face_normals_np(tri, np.array([[0, 1, 2]])), [[0, 0, 1]])


def test_forward_equals_the_composed_primitives(narrow):
    p = _params()
    fw = ForwardModel(narrow)
    with torch.no_grad():
        out = fw(p, background=0.3)
        verts = narrow.shape(p.alpha, p.beta)
        vc = transform(verts, p.angles, p.trans)
        albedo = narrow.albedo(p.delta).clamp(0, 1)
        normals = torch.tensor(np.stack([_normals_by_loop(v, narrow.faces.numpy()) for v in vc.double().numpy()]))
        colors = sh_shading(albedo, normals.float(), p.gamma)
        ref = Renderer(Camera())(vc, narrow.faces, colors, 0.3)
    assert torch.equal(out.verts, verts) and torch.equal(out.verts_cam, vc) and torch.equal(out.albedo, albedo)
    torch.testing.assert_close(out.normals_cam, normals.float(), rtol=0, atol=1e-5)
    torch.testing.assert_close(out.colors, colors, rtol=0, atol=1e-5)
    assert torch.equal(out.rendered.tri_id, ref.tri_id) and torch.equal(out.mask, ref.mask)
    torch.testing.assert_close(out.image, ref.image, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.depth, ref.depth, rtol=0, atol=1e-3)
    # model-space normals: those of the unposed mesh
    n_model = torch.tensor(np.stack([_normals_by_loop(v, narrow.faces.numpy()) for v in verts.double().numpy()]))
    torch.testing.assert_close(out.normals(), n_model.float(), rtol=0, atol=1e-5)


def test_landmarks_cheap_path_full_path_and_fixed_vertices_agree(narrow):
    p = _params()
    with torch.no_grad():
        out = ForwardModel(narrow)(p, render=False)
        cheap, ids = ForwardModel(narrow).landmarks(p)
        fixed = ForwardModel(narrow, contour=False)(p, render=False).landmarks
        vc = transform(narrow.shape(p.alpha, p.beta), p.angles, p.trans)
        proj, _ = project(narrow.landmarks(vc), Camera())
    torch.testing.assert_close(cheap, out.landmarks, rtol=0, atol=1e-3)
    assert torch.equal(ids, out.landmark_ids)
    torch.testing.assert_close(fixed, proj, rtol=0, atol=1e-6)  # no contour: the 68 fixed vertices
    # the inner 51 never move; a turned face moves its far-side jaw points to the silhouette
    assert torch.equal(out.landmarks[:, 17:], proj[:, 17:])
    moved = (out.landmarks[:, :17] - proj[:, :17]).norm(dim=-1)
    assert moved[1].max() > 1.0 and moved[2].max() > 1.0  # the turned faces (yaw 0.6 and -0.4)
    # a jaw point on the silhouette is at least as far out as its fixed vertex (subject's right
    # = image left for landmarks 0-7)
    assert (out.landmarks[1, :8, 0] <= proj[1, :8, 0] + 1e-4).all()
    assert (out.landmarks[1, 9:17, 0] >= proj[1, 9:17, 0] - 1e-4).all()


def test_shade_vertices_is_lambertian_sh(narrow):
    """Light with the DC and z-band coefficients 1: a normal facing the camera gets albedo ×
    (1 + k1), k1 = the band-1 Lambertian factor (2π/3)·Y₁ over the DC's π·Y₀ = 2/√3 (by hand)."""
    tri = torch.tensor([[[0.0, 0, -1000], [10, 0, -1000], [0, 10, -1000]]])
    gamma = torch.zeros(1, 9)
    gamma[0, 0], gamma[0, 2] = 1.0, 1.0  # DC and the z band
    colors, normals = shade_vertices(tri, torch.tensor([[0, 1, 2]]), torch.full((1, 3, 3), 0.5), gamma)
    torch.testing.assert_close(normals, torch.tensor([[[0.0, 0, 1]] * 3]))
    k1 = 2 / np.sqrt(3)
    torch.testing.assert_close(colors, torch.full((1, 3, 3), 0.5 * (1 + k1)))


def test_with_camera_shares_the_model(narrow):
    fw = ForwardModel(narrow)
    big = fw.with_camera(Camera().scaled(448))
    p = _params(1)
    with torch.no_grad():
        a, b = fw(p), big(p)
    assert b.image.shape[-1] == 448 and big.model is fw.model
    # the same places in an image twice the size (pixel centres at whole numbers: (p + ½)·2 − ½)
    torch.testing.assert_close(b.landmarks, 2 * a.landmarks + 0.5, rtol=0, atol=1e-3)


def test_normals_rotate_with_the_pose(narrow):
    p = _params(2)
    with torch.no_grad():
        out = ForwardModel(narrow)(p, render=False)
    rot = euler_to_matrix(p.angles)  # float32 camera-space normals of a mesh 1 m away: ~1e-4 noise
    torch.testing.assert_close(out.normals_cam, out.normals() @ rot.transpose(1, 2), rtol=0, atol=1e-3)


def test_contour_back_mm_lets_near_side_jaw_points_slide_further_back(narrow):
    """A jaw point slides at most ``contour_back_mm`` behind its fixed vertex (mean face, mm). The
    candidate bands are nested, so on the face turned 0.6 rad a wider reach puts each near-side
    point (subject's right, image left: 0-7) at least as far out, and some strictly further."""
    p = _params()
    mean = narrow.mean
    with torch.no_grad():
        picks = {}
        for back in (10.0, 25.0):
            fw = ForwardModel(narrow, contour_back_mm=back)
            out = fw(p, render=False)
            picks[back] = out.landmarks
            vid = fw.contour.vertex_ids[out.landmark_ids]  # (B,68) model vertex ids
            behind = mean[narrow.landmark_idx, 2][None] - mean[vid, 2]  # mm behind the fixed vertex
            assert float(behind[:, :17].max()) <= back + 1e-4
            if back == 25.0:
                assert float(behind[:, :17].max()) > 10.0  # the wider reach is used
    assert (picks[25.0][1, :8, 0] <= picks[10.0][1, :8, 0] + 1e-4).all()
    assert float((picks[10.0][1, :8, 0] - picks[25.0][1, :8, 0]).max()) > 1.0  # pixels
    assert torch.equal(picks[25.0][:, 17:], picks[10.0][:, 17:])  # the inner 51 never move


def test_landmark_facing_matches_the_posed_surface(narrow):
    """``landmark_facing`` turns fixed mean-face normals by the pose. Independently: pose the mean
    mesh first, take its vertex normals there, average them over the same 8 mm neighbourhoods
    (a rigid motion keeps them) and dot with the direction to the camera at the origin."""
    from scipy.spatial import cKDTree

    p = _params()
    got = ForwardModel(narrow).landmark_facing(p).numpy()
    mean = narrow.mean.numpy().astype(np.float64)
    face = np.flatnonzero(np.asarray(narrow.vertex_ids) < 9409)
    lmk = narrow.landmark_idx.numpy()
    proxy = {60: 48, 61: 50, 62: 51, 63: 52, 64: 54, 65: 56, 66: 57, 67: 58}  # inner lip: the outer lip beside
    near = [face[cKDTree(mean[face]).query_ball_point(mean[lmk[proxy.get(k, k)]], 8.0)] for k in range(68)]
    for b in range(p.batch):
        rot = euler_to_matrix(p.angles[b:b + 1])[0].numpy().astype(np.float64)
        posed = mean @ rot.T + p.trans[b].numpy()
        normals = vertex_normals_np(posed, narrow.faces.numpy())
        for k, ids in enumerate(near):
            n = normals[ids].sum(0)
            n /= np.linalg.norm(n)
            to_cam = -posed[lmk[k]] / np.linalg.norm(posed[lmk[k]])
            assert got[b, k] == pytest.approx(float(n @ to_cam), abs=2e-3)
    assert got[0, 30] > 0.9  # the nose tip of the near-frontal face looks at the camera
