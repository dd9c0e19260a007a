"""Renderer: gradients match finite differences, both z-buffers agree, symmetric face renders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facerecon.render import (
    Camera, Renderer, ambient_gamma, default_translation, euler_to_matrix, matrix_to_euler,
    project, rasterize, resize_px, sh_basis, sh_shading, transform,
)


def _quad_scene(dtype=torch.float64):
    """Two triangles facing the camera at ~100 mm, plus a third, nearer one partly covering them."""
    verts = torch.tensor(
        [[[-10.0, -10.0, -100.0], [10.0, -10.0, -100.0], [10.0, 10.0, -100.0], [-10.0, 10.0, -100.0],
          [-3.0, -6.0, -80.0], [8.0, -2.0, -80.0], [0.0, 7.0, -80.0]]], dtype=dtype)
    verts = verts + 0.37 * torch.rand(verts.shape, dtype=dtype, generator=torch.Generator().manual_seed(3))
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6]])
    colors = torch.rand(1, 7, 3, dtype=dtype, generator=torch.Generator().manual_seed(0))
    return verts, faces, colors


def test_gradients_match_finite_differences():
    verts, faces, colors = _quad_scene()
    cam = Camera(focal=60.0, size=24)
    renderer = Renderer(cam)
    weights = torch.rand(1, 3, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ids = renderer(verts, faces, colors).tri_id

    def f(v, c):
        out = renderer(v, faces, c)
        assert torch.equal(out.tri_id, ids)  # finite steps must not change coverage
        return (out.image * weights).sum()

    assert torch.autograd.gradcheck(f, (verts.clone().requires_grad_(), colors.clone().requires_grad_()),
                                    eps=1e-6, atol=1e-5, rtol=1e-4)


def test_light_and_normal_gradients():
    g = torch.Generator().manual_seed(2)
    normals = torch.nn.functional.normalize(torch.randn(2, 50, 3, dtype=torch.float64, generator=g), dim=-1)
    albedo = torch.rand(2, 50, 3, dtype=torch.float64, generator=g)
    for gamma in (torch.randn(2, 9, dtype=torch.float64, generator=g), torch.randn(2, 27, dtype=torch.float64, generator=g)):
        assert torch.autograd.gradcheck(
            lambda a, n, gm: sh_shading(a, n, gm), (albedo.requires_grad_(), normals.requires_grad_(), gamma.requires_grad_()))


def test_ambient_light_is_albedo():
    n = torch.nn.functional.normalize(torch.randn(3, 10, 3), dim=-1)
    albedo = torch.rand(3, 10, 3)
    assert torch.allclose(sh_shading(albedo, n, ambient_gamma(3)), albedo)
    assert torch.allclose(sh_shading(albedo, n, ambient_gamma(3, rgb=True)), albedo)
    # first-order term: light from the camera (+z) brightens normals facing it
    b = sh_basis(torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]))
    assert b[0, 2] > 0 > b[1, 2]


def test_nearer_triangle_wins_and_depth():
    verts, faces, colors = _quad_scene(torch.float32)
    cam = Camera(focal=60.0, size=24)
    for order in ([0, 1, 2], [2, 1, 0]):
        out = Renderer(cam)(verts, faces[order], colors)
        centre = out.tri_id[0, 12, 12]
        assert int(order.index(2)) == int(centre)
        assert 79.6 < float(out.depth[0, 0, 12, 12]) < 80.01
        # corners of the image see the far quad or nothing
        assert float(out.depth[0, 0, 1, 12]) in (0.0,) or 99.6 < float(out.depth[0, 0, 1, 12]) < 100.01
    assert out.mask.shape == (1, 1, 24, 24) and out.image.shape == (1, 3, 24, 24)
    assert float(out.mask.sum()) > 100


def test_background_image():
    verts, faces, colors = _quad_scene(torch.float32)
    bg = torch.full((1, 3, 24, 24), 0.25)
    out = Renderer(Camera(focal=60.0, size=24))(verts, faces, colors, background=bg)
    assert torch.allclose(out.image[0, :, 0, 0], torch.tensor([0.25, 0.25, 0.25]))
    covered = out.mask[0, 0] > 0
    assert not torch.allclose(out.image[0, 0][covered], torch.tensor(0.25))


def test_rotations_roundtrip():
    angles = torch.tensor([[0.1, -0.7, 0.3], [-0.4, 0.5, -1.0], [0.0, 0.0, 0.0]])
    rot = euler_to_matrix(angles)
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(3, 3, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(3), atol=1e-6)
    assert torch.allclose(matrix_to_euler(rot), angles, atol=1e-5)
    # positive yaw turns the nose (+z) towards +x (the face's left, image right)
    nose = euler_to_matrix(torch.tensor([[0.0, 0.3, 0.0]])) @ torch.tensor([0.0, 0.0, 1.0])
    assert nose[0, 0] > 0


def test_projection_of_centre_and_scale():
    cam = Camera()
    pts = torch.tensor([[[0.0, 0.0, -1000.0], [10.0, 10.0, -1000.0]]])
    xy, depth = project(pts, cam)
    # pixel centres at whole numbers (OpenCV, dlib): the 224-px image's centre is at 111.5
    assert torch.allclose(xy[0, 0], torch.tensor([111.5, 111.5]))
    assert torch.allclose(xy[0, 1], torch.tensor([111.5 + 10.15, 111.5 - 10.15]))
    assert torch.allclose(depth, torch.tensor([[1000.0, 1000.0]]))


def _face_batch(face_model, angles):
    b = len(angles)
    verts = face_model.shape(torch.zeros(b, 80))
    vc = transform(verts, angles, default_translation(b))
    return vc, project(vc, Camera())


def test_numba_and_torch_zbuffers_agree(face_model):
    angles = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.8, 0.0], [-0.2, -0.5, 0.3], [0.3, 1.2, -0.2]])
    vc, (xy, depth) = _face_batch(face_model, angles)
    a = rasterize(xy, depth, face_model.faces, 224, 224, backend="numba")
    b = rasterize(xy, depth, face_model.faces, 224, 224, backend="torch")
    assert (a >= 0).sum() > 10000
    assert (a == b).float().mean() > 0.9999


def test_mean_face_render_is_symmetric(face_model):
    vc, _ = _face_batch(face_model, torch.zeros(1, 3))
    gamma = ambient_gamma(1) * 0.7
    gamma[:, 2] = 0.4  # frontal directional light
    colors = sh_shading(face_model.albedo(), face_model.vertex_normals(vc), gamma)
    out = Renderer(Camera())(vc, face_model.faces, colors)
    img, mask = out.image[0], out.mask[0, 0]
    assert mask.sum() > 15000
    flipped = img.flip(-1)
    both = (mask > 0) & (mask.flip(-1) > 0)
    assert (mask != mask.flip(-1)).float().mean() < 0.005
    assert (img - flipped).abs().amax(0)[both].mean() < 0.01


def test_gradient_reaches_shape_coefficients(face_model):
    alpha = torch.zeros(1, 80, requires_grad=True)
    gamma = ambient_gamma(1).requires_grad_()
    vc = transform(face_model.shape(alpha), torch.zeros(1, 3), default_translation(1))
    colors = sh_shading(face_model.albedo(), face_model.vertex_normals(vc), gamma)
    out = Renderer(Camera())(vc, face_model.faces, colors)
    out.image.sum().backward()
    assert alpha.grad.abs().sum() > 0 and torch.isfinite(alpha.grad).all()
    assert gamma.grad.abs().sum() > 0


def test_a_focal_length_per_batch_item_projects_each_as_its_own_camera():
    from facerecon.render.camera import project

    g = torch.Generator().manual_seed(0)
    v = torch.randn(3, 7, 3, generator=g) * 50
    v[..., 2] -= 600
    cam = Camera(focal=torch.tensor([400.0, 1015.0, 2500.0]))
    xy, depth = project(v, cam)
    assert cam.per_item and not Camera().per_item
    for i, f in enumerate((400.0, 1015.0, 2500.0)):
        assert cam.item(i).focal == f
        # by hand: u = c + f x / (-z), v = c - f y / (-z), c = (224 − 1)/2 (pixel centres at whole numbers)
        u = 111.5 + f * v[i, :, 0] / -v[i, :, 2]
        w = 111.5 - f * v[i, :, 1] / -v[i, :, 2]
        torch.testing.assert_close(xy[i], torch.stack([u, w], -1))
    assert Camera().item(2) == Camera()


@pytest.mark.parametrize("centre_mm", [(0.0, 0.0), (3.3, -7.8), (-11.45, 5.2)])
def test_rendered_pixels_and_projected_points_share_one_frame(centre_mm):
    """A band's projected middle line is where its rendered pixels are centred, counting pixel
    (i, j)'s centre at (j, i) as OpenCV and dlib do (the detected landmarks the fitter compares with
    projected points). A vertical band (then a horizontal one) crosses the whole image, so only its
    two long edges are inside; with anti-aliased edges each row's coverage-weighted mean of pixel
    centres is the middle to within 1/(8·width) (an edge pixel weighs its covered fraction f at its
    centre rather than at the covered part's, off by f(1−f)/2). Half a pixel off would be two
    conventions mixed."""
    cam = Camera(focal=1000.0, size=64)  # 1 mm at 1 m is 1 pixel
    x, y, h = centre_mm[0], centre_mm[1], 10.35  # band half-width, mm = px
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    rows, cols = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    middle, _ = project(torch.tensor([[[x, y, -1000.0]]]), cam)
    for axis, (lo, hi) in enumerate([((x - h, -400.0), (x + h, 400.0)), ((-400.0, y - h), (400.0, y + h))]):
        quad = torch.tensor([[[lo[0], lo[1], -1000.0], [hi[0], lo[1], -1000.0],
                              [hi[0], hi[1], -1000.0], [lo[0], hi[1], -1000.0]]])
        w = Renderer(cam, antialias=True)(quad, faces, torch.ones(1, 4, 3)).mask[0, 0].double()
        across = (cols, rows)[axis]
        assert float(w.sum()) == pytest.approx(64 * 2 * h, abs=1e-3)  # each line covered by the width
        seen = (w * across).sum() / w.sum()
        assert float(seen) == pytest.approx(float(middle[0, 0, axis]), abs=1 / (8 * 2 * h))


@pytest.mark.parametrize("size,to_size", [(224, 112), (224, 448), (64, 100)])
def test_resize_px_follows_a_point_through_opencv_resizing(size, to_size):
    """Where a blob centred at (x, y) lands when OpenCV resizes the image (bilinear, the crops'
    and training batches' resampling): its intensity-weighted centre in the resized image."""
    import cv2

    x, y = 0.37 * size + 0.21, 0.58 * size - 0.43
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    blob = np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * (0.06 * size) ** 2))
    out = cv2.resize(blob, (to_size, to_size), interpolation=cv2.INTER_LINEAR)
    r2, c2 = np.mgrid[0:to_size, 0:to_size].astype(np.float64)
    seen = np.array([(out * c2).sum(), (out * r2).sum()]) / out.sum()
    want = resize_px(torch.tensor([x, y], dtype=torch.float64), size, to_size).numpy()
    np.testing.assert_allclose(seen, want, atol=0.02 * to_size / size + 0.01)
