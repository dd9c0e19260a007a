"""Anti-aliased silhouette edges: the edge table is the mesh's, a straight edge's pixels are covered
by exactly the fraction of the pixel the geometry says, the image changes continuously as the
edge moves, and its gradient matches finite differences; pixels away from edges are untouched."""

from __future__ import annotations

import pytest
import torch

from facerecon.render import Camera, Renderer
from facerecon.render.antialias import EdgeTable
from facerecon.render.renderer import RASTER_SHIFT

#: 1 mm at 1 m is 1 pixel; the image centre is 32 px from its left border.
CAM = Camera(focal=1000.0, size=64)
FACES = torch.tensor([[0, 1, 2], [0, 2, 3]])
COLOR = torch.tensor([0.9, 0.5, 0.2])


def half_plane(edge_x: float, slant: float = 0.0) -> torch.Tensor:
    """A quad at 1 m covering the image right of a near-vertical edge ``edge_x`` pixels from the
    image's left border (pixel j covers [j, j+1); at the middle row; ``slant`` pixels of x per pixel
    of y), its other edges far outside."""
    x = edge_x - RASTER_SHIFT - CAM.center
    return torch.tensor([[x - 400 * slant, -400.0, -1000.0], [900.0, -400.0, -1000.0],
                         [900.0, 400.0, -1000.0], [x + 400 * slant, 400.0, -1000.0]])[None]


def render(verts: torch.Tensor, antialias: bool = True):
    out = Renderer(CAM, antialias=antialias)(verts, FACES, COLOR.expand(1, 4, 3))
    return torch.cat([out.image, out.mask], 1)


def test_edge_table_of_two_triangles():
    t = EdgeTable(FACES)
    assert t.edges.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [2, 3]]
    assert t.edge_faces.tolist() == [[0, -1], [0, 1], [1, -1], [0, -1], [1, -1]]
    assert t.face_edges.tolist() == [[0, 3, 1], [1, 4, 2]]  # v0v1, v1v2, v2v0
    xy = torch.tensor([[[0.0, 0], [1, 0], [1, 1], [0, 1]]])
    assert t.silhouette(xy, FACES).tolist() == [[True, False, True, True, True]]  # the diagonal is inside
    folded = xy.clone()
    folded[0, 3] = torch.tensor([2.0, 0.5])  # the second triangle flipped over the diagonal
    assert t.silhouette(folded, FACES)[0, 1]


@pytest.mark.parametrize("edge_x", [20.3, 20.5, 20.8, 31.05])
def test_a_straight_edge_covers_each_row_by_its_exact_length(edge_x):
    img = render(half_plane(edge_x))
    row = img[0, 3, 32]
    assert float(row.sum()) == pytest.approx(CAM.size - edge_x, abs=1e-4)
    hard = render(half_plane(edge_x), antialias=False)[0, 3, 32]
    assert float(hard.sum()) == round(CAM.size - edge_x)  # pixel centres: whole pixels only
    # only the pixel the edge passes through is partial; colour is premultiplied by coverage
    partial = ((row > 1e-6) & (row < 1 - 1e-6)).nonzero().flatten().tolist()
    assert partial == [int(edge_x)] or (edge_x % 1 == 0.5 and partial == [])
    torch.testing.assert_close(img[0, :3, 32], COLOR[:, None] * row[None])


@pytest.mark.parametrize("slant", [0.0, 0.37, -0.8])
def test_the_image_changes_continuously_as_an_edge_moves(slant):
    """0.005 px steps across two pixel centres: each step changes a pixel by at most its share
    (inside the image: a pixel on its border has no outer neighbour to blend with)."""
    steps = [render(half_plane(20.3 + 0.005 * k, slant))[..., 1:-1, 1:-1] for k in range(300)]
    aa = max(float((b - a).abs().max()) for a, b in zip(steps, steps[1:]))
    assert aa < 0.02
    hard = [render(half_plane(20.3 + 0.005 * k, slant), antialias=False) for k in range(0, 300, 10)]
    assert max(float((b - a).abs().max()) for a, b in zip(hard, hard[1:])) == pytest.approx(1.0)


@pytest.mark.parametrize("slant", [0.0, 0.37])
def test_the_gradient_of_an_edge_position_matches_finite_differences(slant):
    torch.manual_seed(0)
    weights = torch.rand(1, 4, CAM.size, CAM.size)
    shift = torch.tensor([1.0, 0.0, 0.0])

    def f(x):
        return (render(half_plane(20.0, slant) + x * shift) * weights).sum()

    for x0 in (0.2, 0.55):
        x = torch.tensor(x0, requires_grad=True)
        f(x).backward()
        h = 0.01
        fd = (float(f(torch.tensor(x0 + h))) - float(f(torch.tensor(x0 - h)))) / (2 * h)
        assert float(x.grad) == pytest.approx(fd, rel=0.01)
        assert abs(fd) > 10.0
    # without anti-aliasing the coverage moves but the gradient does not see it
    x = torch.tensor(0.2, requires_grad=True)
    out = Renderer(CAM)(half_plane(20.0, slant) + x * shift, FACES, COLOR.expand(1, 4, 3))
    (torch.cat([out.image, out.mask], 1) * weights).sum().backward()
    assert x.grad is None or abs(float(x.grad)) < 1e-6


def test_pixels_away_from_edges_are_untouched_and_a_nearer_surface_blends_with_the_one_behind():
    near = half_plane(30.4)
    behind = half_plane(10.0)
    behind[..., 2] = -1100.0  # a second quad 10 cm further back, seen left of the first
    verts = torch.cat([near, behind], 1)
    faces = torch.cat([FACES, FACES + 4])
    colors = torch.cat([COLOR.expand(4, 3), torch.tensor([0.1, 0.2, 0.3]).expand(4, 3)])[None]
    aa = Renderer(CAM, antialias=True)(verts, faces, colors)
    hard = Renderer(CAM)(verts, faces, colors)
    changed = (aa.image - hard.image).abs().amax(1)[0] > 0
    assert changed.any(dim=0).nonzero().flatten().tolist() == [30]  # the near edge only
    assert torch.equal(aa.mask, hard.mask)  # both sides are covered
    # pixel 30 (centre 30.5) is covered 0.6 by the near quad, 0.4 by the one behind
    want = 0.6 * COLOR + 0.4 * torch.tensor([0.1, 0.2, 0.3])
    torch.testing.assert_close(aa.image[0, :, 32, 30], want)


def test_the_fit_config_turns_it_on_for_the_fitter(face_model):
    from facerecon.fitting.engine import FitConfig, Fitter

    assert Fitter(face_model, config=FitConfig(antialias=True, perceptual=False)).forward.renderer.antialias
    assert not Fitter(face_model, config=FitConfig(perceptual=False)).forward.renderer.antialias
