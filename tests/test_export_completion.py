"""Texture completion: the mirror maps, the unseen half of a face rebuilt from the seen half, the
fill that meets the photo's skin, the multi-photo bake, and painted eyes with an iris.

The "photos" are renders of the exported head (ICT closed from inside) with *known* per-vertex
colours and no shading, so the texture they should give is known: a colour pattern that is
symmetric about the mean face's x = 0 plane (what mirroring can recover), or an asymmetric one
(what only a second photo can).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facerecon.export.atlas import model_atlas
from facerecon.export.headmesh import export_model
from facerecon.export.symmetry import mirror_vertices, texel_mirror
from facerecon.export.texture import bake_texture_maps, bake_texture_multi, photo_gains
from facerecon.export.uvraster import texel_geometry, uv_raster
from facerecon.facemodel.ict import PARTS
from facerecon.params import FaceParams
from facerecon.render import Camera, Renderer, transform
from tests.test_export import texel_of_vertex

SIZE = 512


@pytest.fixture(scope="module")
def model(ict_archive):
    from facerecon.facemodel import load_face_model

    return export_model(load_face_model("head"))


def sym_pattern(mean: np.ndarray) -> np.ndarray:
    """A smooth colour pattern (V,3) in [0.1, 0.9], symmetric about x = 0 (uses |x|)."""
    ax, y, z = np.abs(mean[:, 0]), mean[:, 1], mean[:, 2]
    return 0.5 + 0.4 * np.stack([np.sin(ax / 13.0 + y / 40.0), np.sin(y / 11.0), np.cos((ax + z) / 17.0)], -1)


def asym_pattern(mean: np.ndarray) -> np.ndarray:
    """A smooth colour pattern (V,3) in [0.1, 0.9] that differs between the two halves."""
    x, y = mean[:, 0], mean[:, 1]
    return 0.5 + 0.4 * np.stack([np.sin(x / 15.0), np.sin(y / 11.0), np.cos((x + y) / 17.0)], -1)


#: A light from the upper left of the camera (SH coefficients): shading varies across the face.
SIDE_LIGHT = (0.8, 0.15, 0.3, -0.35, 0.0, 0.0, 0.05, 0.0, 0.0)


def face_params(model, yaw_deg: float, seed: int = 0, light=(1.0,) + (0.0,) * 8, **expr: float) -> FaceParams:
    """A face turned by ``yaw_deg``, under ``light`` (default uniform: the renders below have no
    shading unless asked, so the fitted light must be uniform too)."""
    g = torch.Generator().manual_seed(seed)
    p = FaceParams.zeros(1)
    p.alpha = 0.6 * torch.randn(1, 80, generator=g)
    p.delta = 0.5 * torch.randn(1, 80, generator=g)
    for name, value in expr.items():
        p.beta[0, model.expression_names.index(name)] = value
    p.angles = torch.tensor([[0.08, math.radians(yaw_deg), 0.03]])
    p.gamma = torch.tensor([light], dtype=torch.float32)
    p.trans = torch.tensor([[0.0, 15.0, -1350.0]])
    return p


def render_photo(model, params: FaceParams, colors: np.ndarray, scale: int = 2, pad: tuple[int, int] = (40, 60),
                 gain: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The mesh drawn with per-vertex ``colors`` × ``gain`` (no shading) into a grey photo;
    returns the photo and the crop→photo matrix."""
    size = 224 * scale
    verts_cam = transform(model.shape(params.alpha, params.beta), params.angles, params.trans)
    c = torch.as_tensor(np.clip(colors * gain, 0, 1), dtype=torch.float32)[None]
    out = Renderer(Camera().scaled(size))(verts_cam, model.faces, c, background=0.25)
    px, py = pad
    photo = np.full((size + 2 * py, size + 2 * px, 3), 64, np.uint8)
    photo[py:py + size, px:px + size] = (out.image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    c = (scale - 1) / 2  # crop pixel u -> render pixel (u + ½)·scale − ½ -> photo pixel + pad
    return photo, np.array([[scale, 0, px + c], [0, scale, py + c]], dtype=np.float64)


def photo_px(posed) -> np.ndarray:
    """(V,2) where :func:`render_photo` (scale 2, pad (40, 60)) draws each vertex of a posed
    mesh, photo pixels (x right, y down)."""
    return posed.verts_cam[:, :2] / -posed.verts_cam[:, 2:] * 1015.0 * np.array([1, -1]) * 2 + 224 + np.array([40, 60])


def vertex_texels(model, atlas, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(V,2) texel of each vertex and (V,) whether that texel lies in one of the vertex's own
    triangles (elsewhere a texel cannot stand for the vertex)."""
    faces = model.faces.numpy()
    rc = texel_of_vertex(atlas, faces, size)
    ras = uv_raster(atlas, size)
    owner = -np.ones(size * size, np.int64)
    owner[ras.pix] = ras.tri
    tri_at = owner[rc[:, 0] * size + rc[:, 1]]
    ok = (tri_at >= 0) & (faces[np.maximum(tri_at, 0)] == np.arange(len(rc))[:, None]).any(1) & (rc[:, 0] >= 0)
    return rc, ok


def in_part(model, *names: str) -> np.ndarray:
    ids = np.asarray(model.vertex_ids)
    out = np.zeros(len(ids), bool)
    for n in names:
        out |= (ids >= PARTS[n][0]) & (ids < PARTS[n][1])
    return out


def interior(model, mask: np.ndarray, rings: int = 2) -> np.ndarray:
    faces = model.faces.numpy()
    for _ in range(rings):
        bad = faces[~mask[faces].all(1)].ravel()
        mask = mask.copy()
        mask[bad] = False
    return mask


# ---------------------------------------------------------------------------------------------
# mirror maps
# ---------------------------------------------------------------------------------------------
def test_vertex_mirror_pairs_the_landmarks(model):
    """The iBUG scheme's left/right landmark pairs are each other's mirror partners on the mean
    face, and the landmarks on the midline are their own."""
    mean = model.mean.numpy().astype(np.float64)
    partner, dist = mirror_vertices(mean)
    lm = model.landmark_idx.numpy()
    for a, b in [(36, 45), (39, 42), (37, 44), (41, 46), (48, 54), (31, 35), (0, 16), (4, 12), (17, 26), (21, 22)]:
        assert partner[lm[a]] == lm[b] and partner[lm[b]] == lm[a], (a, b)
    for k in (27, 28, 29, 30, 33, 51, 57, 62, 66, 8):
        assert partner[lm[k]] == lm[k], k
    used = np.unique(model.faces.numpy())
    assert np.percentile(dist[used], 99) < 0.05 and dist[used].max() < 1.0


def test_texel_mirror_map(model):
    """Each texel's partner lies at its mirror image on the mean face; partners of partners come
    back; the texel of the right eye's outer corner maps next to the left one's."""
    atlas = model_atlas(model)
    geo = texel_geometry(model, atlas, SIZE)
    mirror = texel_mirror(model, atlas, SIZE)
    flipped = geo.position * np.array([-1, 1, 1], np.float32)
    d = np.linalg.norm(geo.position[mirror.partner] - flipped, axis=1)
    np.testing.assert_allclose(d, mirror.distance, atol=1e-4)
    assert np.median(d) < 0.4 and np.percentile(d, 99) < 1.5
    back = np.linalg.norm(geo.position[mirror.partner[mirror.partner]] - geo.position, axis=1)
    assert np.percentile(back, 99) < 2.0
    mean = model.mean.numpy()
    lm = model.landmark_idx.numpy()
    t = np.argmin(np.linalg.norm(geo.position - mean[lm[36]], axis=1))
    assert np.linalg.norm(geo.position[mirror.partner[t]] - mean[lm[45]]) < 1.0


# ---------------------------------------------------------------------------------------------
# completion from one three-quarter photo
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def three_quarter(model):
    """A face turned 35° rendered with the symmetric pattern, and its bakes with and without
    completion."""
    mean = model.mean.numpy().astype(np.float64)
    truth = sym_pattern(mean)
    params = face_params(model, 35.0, jawOpen=0.2)
    photo, M_inv = render_photo(model, params, truth)
    bake = bake_texture_maps(model, params, photo, M_inv, size=SIZE)
    flat = bake_texture_maps(model, params, photo, M_inv, size=SIZE, complete=False)
    return truth, bake, flat


def test_unseen_half_is_completed_from_the_seen_half(model, three_quarter):
    truth, bake, flat = three_quarter
    rc, ok = vertex_texels(model, bake.atlas, SIZE)
    w = bake.photo_weight[rc[:, 0], rc[:, 1]]
    wm = bake.mirror_weight[rc[:, 0], rc[:, 1]]
    skin = interior(model, in_part(model, "face") & ok)
    unseen = skin & (w == 0) & (wm > 0.9)
    assert unseen.sum() > 300, unseen.sum()
    got = bake.texture[rc[:, 0], rc[:, 1]] / 255.0
    old = flat.texture[rc[:, 0], rc[:, 1]] / 255.0
    err = np.abs(got[unseen] - truth[unseen]).max(1)
    err_old = np.abs(old[unseen] - truth[unseen]).max(1)
    print(f"unseen half, max-channel error (0-255): completed median {255 * np.median(err):.1f} "
          f"p95 {255 * np.percentile(err, 95):.1f}; model colour (before) median {255 * np.median(err_old):.1f}")
    assert np.median(err) < 6 / 255 and np.percentile(err, 95) < 20 / 255
    assert np.median(err) < 0.25 * np.median(err_old)
    assert bake.completed_fraction > 0.05


def test_no_step_across_the_mirror_line(model, three_quarter):
    """Right next to x = 0 the two sides agree (the pattern is symmetric there)."""
    truth, bake, _ = three_quarter
    rc, ok = vertex_texels(model, bake.atlas, SIZE)
    mean = model.mean.numpy().astype(np.float64)
    got = bake.texture[rc[:, 0], rc[:, 1]] / 255.0
    face = interior(model, in_part(model, "face") & ok)
    from scipy.spatial import cKDTree

    _, partner = cKDTree(mean).query(mean * [-1, 1, 1])
    near = face & face[partner] & (mean[:, 0] > 0.5) & (mean[:, 0] < 3.0) & (mean[:, 2] > 60)
    step = np.abs(got[near] - got[partner[near]]).max(1)
    print(f"step across the mirror line (0-255): median {255 * np.median(step):.1f}, p95 {255 * np.percentile(step, 95):.1f}")
    assert near.sum() > 30 and np.median(step) < 4 / 255 and np.percentile(step, 95) < 12 / 255


def test_no_seam_where_the_photo_hands_over_to_the_mirror(model):
    """A face in one flat colour whose left half is 15 % brighter: the completed half copies the
    seen half, so photo and copy disagree by 15 % where the photo's weight runs out. The texture
    must change gradually there — small steps between neighbouring vertices, as anywhere else —
    not jump (a hard switch would step by the whole difference at once)."""
    mean = model.mean.numpy().astype(np.float64)
    base = np.array([0.62, 0.45, 0.36])
    bright = 1.0 + 0.15 * np.clip((mean[:, 0] + 5.0) / 10.0, 0.0, 1.0)  # subject's left (+x) brighter
    params = face_params(model, 35.0)
    photo, M_inv = render_photo(model, params, base[None] * bright[:, None])
    bake = bake_texture_maps(model, params, photo, M_inv, size=SIZE, eyes=False)
    rc, ok = vertex_texels(model, bake.atlas, SIZE)
    face = interior(model, in_part(model, "face") & ok, rings=3) & (np.abs(mean[:, 0]) > 15)
    w = bake.photo_weight[rc[:, 0], rc[:, 1]]
    wm = bake.mirror_weight[rc[:, 0], rc[:, 1]]
    got = bake.texture[rc[:, 0], rc[:, 1]] / 255.0
    faces = model.faces.numpy()
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    hand = (w > 0.02) & (w < 0.98) & (wm > 0.5) & face
    e = edges[hand[edges].all(1)]
    length = np.linalg.norm(mean[e[:, 0]] - mean[e[:, 1]], axis=1)
    step = np.abs(got[e[:, 0]] - got[e[:, 1]]).max(1) / np.maximum(length, 0.5)  # per mm
    # the two sources really disagree there (else there is nothing to hide)
    copied = face & (w == 0) & (wm > 0.95)
    assert len(e) > 100 and copied.sum() > 100
    gap = np.abs(np.median(got[copied], 0) - base * 1.15).max()
    print(f"hand-over: {len(e)} edges, step p99 {255 * np.percentile(step, 99):.1f}/255 per mm "
          f"(the two sources differ by {255 * gap:.0f}/255)")
    assert gap > 12 / 255
    assert np.percentile(step, 99) < 0.35 * gap


def test_fill_meets_the_photo_skin(model):
    """What neither the photo nor the mirror saw (scalp, back of the head) takes the photo's skin
    colour, and it approaches the seen skin without a step: from a frontal photo of a face in one
    skin colour, the scalp gets that colour, not the model's."""
    skin = np.array([0.55, 0.38, 0.30])
    colors = np.tile(skin, (model.n_vertices, 1))
    params = face_params(model, 0.0)
    photo, M_inv = render_photo(model, params, colors)
    bake = bake_texture_maps(model, params, photo, M_inv, size=256)
    np.testing.assert_allclose(bake.skin_color, skin, atol=2 / 255)
    rc, ok = vertex_texels(model, bake.atlas, 256)
    mean = model.mean.numpy()
    head = interior(model, in_part(model, "face", "head_neck") & ok)
    w = bake.photo_weight[rc[:, 0], rc[:, 1]]
    got = bake.texture[rc[:, 0], rc[:, 1]] / 255.0
    # everything the photo did not give, on the skin (not lips or brows: the template's features)
    back = head & (w < 0.05) & ((mean[:, 2] < 0) | (mean[:, 1] > 110) | (mean[:, 1] < -110))
    assert back.sum() > 500
    assert np.percentile(np.abs(got[back] - skin).max(1), 95) < 4 / 255


def test_the_light_of_the_photo_is_evened_out(model):
    """A face under a side light: the texture divided by the true albedo is one constant over
    the seen and the completed half (the fitted light's shading was divided out), where without
    that step the side turned from the light, and its mirror copy, carry the shadow."""
    from facerecon.export.photo import posed_mesh
    from facerecon.render import sh_shading

    mean = model.mean.numpy().astype(np.float64)
    albedo = 0.25 + 0.6 * (sym_pattern(mean) - 0.1) / 0.8
    params = face_params(model, 35.0, light=SIDE_LIGHT)
    posed = posed_mesh(model, params)
    shade = sh_shading(torch.ones(1, model.n_vertices, 3), torch.from_numpy(posed.normals_cam)[None], params.gamma)[0]
    photo, M_inv = render_photo(model, params, albedo * shade.numpy())
    rc, ok = vertex_texels(model, model_atlas(model), SIZE)
    face = interior(model, in_part(model, "face") & ok) & (albedo.min(1) > 0.3)
    spread = {}
    for strength in (1.0, 0.0):
        bake = bake_texture_maps(model, params, photo, M_inv, size=SIZE, eyes=False, delight_strength=strength)
        w = bake.photo_weight[rc[:, 0], rc[:, 1]]
        wm = bake.mirror_weight[rc[:, 0], rc[:, 1]]
        ratio = np.log(np.maximum(bake.texture[rc[:, 0], rc[:, 1]] / 255.0, 1e-3) / albedo)
        seen, done = face & (w > 0.95), face & (w == 0) & (wm > 0.95)
        assert seen.sum() > 500 and done.sum() > 200
        both = np.concatenate([ratio[seen], ratio[done]])
        spread[strength] = (np.percentile(both, 95, axis=0) - np.percentile(both, 5, axis=0)).max()
        step = np.abs(np.median(ratio[seen], axis=0) - np.median(ratio[done], axis=0)).max()
        print(f"delight {strength}: texture/albedo varies by {100 * spread[strength]:.1f} % (p5-p95), "
              f"seen vs completed half differ by {100 * step:.1f} %")
        if strength == 1.0:
            assert spread[strength] < 0.2 and step < 0.03
    assert spread[0.0] > 3 * spread[1.0]


def test_fill_continues_the_seen_colour_then_turns_to_skin(model):
    """The fill is no flat colour: next to what the photo saw it continues that colour (here a
    darker upper forehead, as hair or a tan would be), far from it (the back of the head) it is
    the photo's skin colour."""
    from scipy.spatial import cKDTree

    mean = model.mean.numpy().astype(np.float64)
    skin, dark = np.array([0.62, 0.46, 0.37]), np.array([0.34, 0.25, 0.2])
    t = np.clip((mean[:, 1] - 95.0) / 10.0, 0.0, 1.0)[:, None]
    params = face_params(model, 0.0)
    photo, M_inv = render_photo(model, params, skin * (1 - t) + dark * t)
    bake = bake_texture_maps(model, params, photo, M_inv, size=256, eyes=False)
    np.testing.assert_allclose(bake.skin_color, skin, atol=3 / 255)
    geo = texel_geometry(model, bake.atlas, 256)  # texels as points of the mean face
    pos = geo.position
    w = bake.photo_weight.reshape(-1)[geo.raster.pix]
    got = bake.texture.reshape(-1, 3)[geo.raster.pix] / 255.0
    head = (geo.part == 0) | (geo.part == 1)  # face, head_neck
    seen_dark = head & (w > 0.9) & (pos[:, 1] > 110)
    unseen = head & (w < 0.02)
    d, _ = cKDTree(pos[seen_dark]).query(pos)
    near, far = unseen & (d < 20.0) & (pos[:, 1] > 100), unseen & (d > 90.0)  # w fades over 15 mm
    assert seen_dark.sum() > 50 and near.sum() > 20 and far.sum() > 500
    to_dark = np.linalg.norm(got[near] - dark, axis=1)
    to_skin = np.linalg.norm(got[near] - skin, axis=1)
    print(f"fill next to the seen dark forehead: {255 * np.median(to_dark):.0f} from dark, "
          f"{255 * np.median(to_skin):.0f} from skin; far away {255 * np.median(np.abs(got[far] - skin).max(1)):.1f} from skin")
    assert np.median(to_dark) < np.median(to_skin)
    assert np.percentile(np.abs(got[far] - skin).max(1), 95) < 6 / 255


def test_background_along_the_far_side_and_a_white_collar_are_not_copied(model):
    """A fit a little too wide samples the background along the far side of the face (a dark
    blue wall in the "photo" below), and the neck shows a white collar. Where the far side's
    partner was seen squarely, the wall gives way to the partner's skin; around the face (under
    the chin) white is no skin colour and gives way to the fill."""
    import cv2

    from facerecon.export.photo import posed_mesh
    from facerecon.export.texture import sample_photo

    skin = np.array([0.66, 0.47, 0.38])
    params = face_params(model, 35.0)
    photo, M_inv = render_photo(model, params, np.tile(skin, (model.n_vertices, 1)))
    posed = posed_mesh(model, params)
    xy = photo_px(posed)
    face_px = (np.abs(photo.astype(int) - (skin * 255)).max(-1) < 30).astype(np.uint8)
    inside = cv2.distanceTransform(face_px, cv2.DIST_L2, 3)
    lm = xy[model.landmark_idx.numpy()]
    cols = np.arange(photo.shape[1])[None, :]
    # the side turned away: where the jaw point of the subject's left (landmark 14, +x) lies
    far_side = (cols > lm[30, 0]) if lm[14, 0] > lm[30, 0] else (cols < lm[30, 0])
    chin_y = lm[8, 1]
    rows = np.arange(photo.shape[0])[:, None]
    strip = (inside > 6) & (inside < 12) & far_side & (rows > lm[19, 1]) & (rows < chin_y - 10)
    collar = (face_px > 0) & (rows > chin_y + 12)
    photo[strip] = (60, 75, 100)
    photo[collar] = 245
    bake = bake_texture_maps(model, params, photo, M_inv, size=256, eyes=False)
    raw = sample_photo(model, params, photo, M_inv, size=256)
    geo = texel_geometry(model, bake.atlas, 256)
    tex = bake.texture.reshape(-1, 3)[geo.raster.pix] / 255.0
    white = raw.visible & (raw.color.min(1) > 0.9)
    wall = raw.visible & (np.abs(raw.color - np.array([60, 75, 100]) / 255).max(1) < 0.05)
    on_face = wall & (geo.part == 0) & (geo.position[:, 1] > -40)
    under_chin = white & (geo.position[:, 1] < model.mean[model.landmark_idx[8], 1].item() - 10)
    assert on_face.sum() > 50 and under_chin.sum() > 50
    err_face = np.abs(tex[on_face] - skin).max(1)
    err_chin = np.abs(tex[under_chin] - skin).max(1)
    print(f"wall sampled along the far side: {255 * np.median(err_face):.0f}/255 from skin in the texture; "
          f"under the chin: {255 * np.median(err_chin):.0f}/255")
    assert np.median(err_face) < 20 / 255 and np.median(err_chin) < 20 / 255


@pytest.mark.parametrize("band, kept", [((40, 70, 150), False), ((95, 95, 95), True)])
def test_a_blue_shirt_under_the_chin_gives_way_to_skin_a_grey_beard_stays(model, band, kept):
    """The neck below the chin shows a band no brighter than the face (so the white-collar rule
    does not see it): a blue shirt, greener and bluer than any skin, gives way to the skin fill;
    a grey beard, level in red, green and blue, keeps the photo's colour."""
    from facerecon.export.texture import sample_photo

    skin = np.array([0.66, 0.47, 0.38])
    params = face_params(model, 10.0)
    photo, M_inv = render_photo(model, params, np.tile(skin, (model.n_vertices, 1)))
    face_px = np.abs(photo.astype(int) - (skin * 255)).max(-1) < 30
    from facerecon.export.photo import posed_mesh

    posed = posed_mesh(model, params)
    xy = photo_px(posed)
    chin_y = xy[model.landmark_idx.numpy()][8, 1]
    rows = np.arange(photo.shape[0])[:, None]
    photo[face_px & (rows > chin_y + 12)] = band
    bake = bake_texture_maps(model, params, photo, M_inv, size=256, eyes=False)
    raw = sample_photo(model, params, photo, M_inv, size=256)
    geo = texel_geometry(model, bake.atlas, 256)
    tex = bake.texture.reshape(-1, 3)[geo.raster.pix] / 255.0
    shown = raw.visible & (np.abs(raw.color - np.array(band) / 255).max(1) < 0.03)
    under = shown & (geo.position[:, 1] < model.mean[model.landmark_idx[8], 1].item() - 10)
    assert under.sum() > 50
    to_skin = np.median(np.abs(tex[under] - skin).max(1))
    to_band = np.median(np.abs(tex[under] - np.array(band) / 255).max(1))
    print(f"band {band} under the chin: texture {255 * to_skin:.0f}/255 from skin, "
          f"{255 * to_band:.0f}/255 from the band")
    if kept:  # (the band's edge blends with the fill over the neck's fade: a few /255)
        assert to_band < 25 / 255 and to_band < to_skin / 2
    else:
        assert to_skin < 20 / 255 and to_skin < to_band / 4


def test_a_blue_fringe_over_the_forehead_stays(model):
    """Dyed hair is what the photo shows: a blue band over the top of the forehead (above the
    brows, where the texture takes the photo less surely than in the inner face) keeps its colour,
    though the same blue under the chin gives way to the skin (the test above)."""
    from facerecon.export.photo import posed_mesh
    from facerecon.export.texture import sample_photo

    skin, band = np.array([0.66, 0.47, 0.38]), (40, 70, 150)
    params = face_params(model, 10.0)
    photo, M_inv = render_photo(model, params, np.tile(skin, (model.n_vertices, 1)))
    face_px = np.abs(photo.astype(int) - (skin * 255)).max(-1) < 30
    posed = posed_mesh(model, params)
    xy = photo_px(posed)
    brow_y = xy[model.landmark_idx.numpy()][17:27, 1].min()
    rows = np.arange(photo.shape[0])[:, None]
    photo[face_px & (rows < brow_y - 25)] = band
    bake = bake_texture_maps(model, params, photo, M_inv, size=256, eyes=False)
    raw = sample_photo(model, params, photo, M_inv, size=256)
    geo = texel_geometry(model, bake.atlas, 256)
    tex = bake.texture.reshape(-1, 3)[geo.raster.pix] / 255.0
    from facerecon.facemodel.ict import PARTS

    shown = raw.visible & (np.abs(raw.color - np.array(band) / 255).max(1) < 0.03) & (raw.weight > 0.5)
    # where the rules act: beyond the inner face (ICT's narrow face), or where the photo is doubted
    shown &= (geo.ict_id >= PARTS["face_narrow"][1]) | (raw.weight < 0.9)
    assert shown.sum() > 50
    to_band = np.median(np.abs(tex[shown] - np.array(band) / 255).max(1))
    print(f"blue fringe: texture {255 * to_band:.0f}/255 from the band")
    assert to_band < 20 / 255


# ---------------------------------------------------------------------------------------------
# several photos
# ---------------------------------------------------------------------------------------------
def test_multi_photo_bake_takes_each_texel_from_the_photos_that_see_it(model):
    """Two photos of one face (asymmetric pattern), turned +10° and −50°, the second 20 %
    darker: every texel seen well by either matches the pattern (after the second photo's gain is
    undone), which mirroring one photo could not do; the gain is recovered."""
    mean = model.mean.numpy().astype(np.float64)
    truth = asym_pattern(mean)
    p1, p2 = face_params(model, 10.0), face_params(model, -50.0, jawOpen=0.1)
    photo1, m1 = render_photo(model, p1, truth)
    photo2, m2 = render_photo(model, p2, truth, gain=0.8)
    bake = bake_texture_multi(model, [p1, p2], [photo1, photo2], [m1, m2], size=SIZE, eyes=False)
    np.testing.assert_allclose(bake.photo_gains[0], 1.0, atol=0.02)
    np.testing.assert_allclose(bake.photo_gains[1], 1.25, atol=0.04)
    single = bake_texture_maps(model, p1, photo1, m1, size=SIZE, eyes=False)
    rc, ok = vertex_texels(model, bake.atlas, SIZE)
    face = interior(model, in_part(model, "face") & ok)
    w = bake.photo_weight[rc[:, 0], rc[:, 1]]
    w1 = single.photo_weight[rc[:, 0], rc[:, 1]]
    got = bake.texture[rc[:, 0], rc[:, 1]] / 255.0
    seen = face & (w > 0.9)
    only2 = seen & (w1 == 0)  # the second photo alone shows these
    assert only2.sum() > 200
    err = np.abs(got[seen] - truth[seen]).max(1)
    err2 = np.abs(got[only2] - truth[only2]).max(1)
    err_single = np.abs(single.texture[rc[:, 0], rc[:, 1]][only2] / 255.0 - truth[only2]).max(1)
    print(f"two photos: seen texels error median {255 * np.median(err):.1f} p95 {255 * np.percentile(err, 95):.1f}; "
          f"texels only photo 2 sees: {255 * np.median(err2):.1f} (one photo + mirror: {255 * np.median(err_single):.1f})")
    assert np.median(err) < 6 / 255 and np.percentile(err, 95) < 20 / 255
    assert np.median(err2) < 6 / 255 and np.median(err_single) > 3 * np.median(err2)


def test_multi_photo_bake_prefers_the_photo_that_sees_a_texel_squarely(model):
    """Both photos darken what they see at a slant (a falloff the fitted uniform light does not
    explain, as real photos do): where one photo sees a texel squarely and the other at a slant,
    the texture takes the square view, not the average."""
    from facerecon.export.photo import posed_mesh

    mean = model.mean.numpy().astype(np.float64)
    truth = asym_pattern(mean)
    views, facings = [], []
    for yaw in (10.0, -50.0):
        p = face_params(model, yaw)
        posed = posed_mesh(model, p)
        facing = -(posed.normals_cam * posed.verts_cam).sum(1) / np.linalg.norm(posed.verts_cam, axis=1)
        photo, m = render_photo(model, p, truth * (0.55 + 0.45 * np.clip(facing, 0, 1))[:, None])
        views.append((p, photo, m))
        facings.append(facing)
    bake = bake_texture_multi(model, [v[0] for v in views], [v[1] for v in views], [v[2] for v in views],
                              size=SIZE, eyes=False, match_photos=False)
    rc, ok = vertex_texels(model, bake.atlas, SIZE)
    face = interior(model, in_part(model, "face") & ok)
    square = face & (facings[0] > 0.95) & (facings[1] > 0.25) & (facings[1] < 0.5)
    got = bake.texture[rc[:, 0], rc[:, 1]] / 255.0
    err = np.abs(got[square] - truth[square] * (0.55 + 0.45 * facings[0][square, None])).max(1)
    print(f"{square.sum()} texels seen squarely by one photo, at a slant by the other: error median {255 * np.median(err):.1f}")
    assert square.sum() > 100 and np.median(err) < 8 / 255


def test_photo_gains_least_squares():
    """Three photos, only neighbours overlap (0–1, 1–2): the gains chain through photo 1."""
    from facerecon.export.texture import PhotoSample

    rng = np.random.default_rng(0)
    n = 3000
    albedo = rng.uniform(0.2, 0.8, (n, 3)).astype(np.float32)
    seen = [np.arange(n) < 2000, (np.arange(n) >= 1000), np.arange(n) >= 2200]
    seen[1] &= np.arange(n) < 2800
    scales = [np.array([1.0, 1.0, 1.0]), np.array([0.8, 0.9, 1.1]), np.array([1.2, 0.7, 0.9])]
    samples = [PhotoSample(raster=None, color=(albedo * k).astype(np.float32) * s[:, None], weight=s.astype(np.float32),
                           visible=s, facing=np.ones(n, np.float32), model_color=albedo, photo_scale=1.0)
               for s, k in zip(seen, scales)]  # photo 0 sees most: the reference, gain 1
    gains = photo_gains(samples)
    np.testing.assert_allclose(gains * np.stack(scales), 1.0, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# eyes
# ---------------------------------------------------------------------------------------------
def eye_regions(model, geo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texels of the eyeballs' outer spheres: near the front-most point of each (within 1 mm:
    pupil; 3–4.5 mm: iris ring) and 9–12 mm from it (sclera), found from the mean face alone."""
    mean = model.mean.numpy()
    pupil = np.zeros(len(geo.part), bool)
    iris = np.zeros_like(pupil)
    sclera = np.zeros_like(pupil)
    for side in ("left", "right"):
        lo, _ = PARTS[f"eyeball_{side}"]
        inner_lo, _ = PARTS[f"iris_{side}"]
        ids = np.asarray(model.vertex_ids)
        outer = (ids >= lo) & (ids < inner_lo)
        apex = mean[outer][np.argmax(mean[outer][:, 2])]
        on_eye = geo.part == (7 if side == "left" else 8)
        d = np.linalg.norm(geo.position - apex, axis=1)
        front = geo.normal[:, 2] > 0.3
        pupil |= on_eye & front & (d < 1.0)
        iris |= on_eye & front & (d > 3.0) & (d < 4.5)
        sclera |= on_eye & front & (d > 9.0) & (d < 12.0)
    return pupil, iris, sclera


def test_eyes_have_an_iris_and_pupil_in_the_photo_colour(model):
    """Eyeballs painted blue-eyed in the "photo": the baked eyes have a dark pupil, a blue iris
    darker than the sclera; with the lids shut (nothing of the iris seen) the iris is brown."""
    mean = model.mean.numpy()
    colors = np.tile(np.array([0.75, 0.55, 0.45]), (model.n_vertices, 1))
    ids = np.asarray(model.vertex_ids)
    for side in ("left", "right"):
        lo, hi = PARTS[f"eyeball_{side}"]
        eye = (ids >= lo) & (ids < hi)
        apex = mean[eye][np.argmax(mean[eye][:, 2])]
        ring = eye & (np.linalg.norm(mean - apex, axis=1) < 5.5)
        colors[eye] = (0.9, 0.9, 0.88)
        colors[ring] = (0.2, 0.35, 0.62)
    params = face_params(model, 5.0)
    photo, M_inv = render_photo(model, params, colors, scale=3, pad=(20, 20))
    bake = bake_texture_maps(model, params, photo, M_inv, size=SIZE)
    assert bake.iris_from_photo and bake.iris_color[2] > bake.iris_color[0] + 0.15
    geo = texel_geometry(model, bake.atlas, SIZE)
    tex = bake.texture.reshape(-1, 3)[geo.raster.pix] / 255.0
    pupil, iris, sclera = eye_regions(model, geo)
    assert pupil.sum() > 10 and iris.sum() > 50 and sclera.sum() > 50
    luma = tex @ np.array([0.299, 0.587, 0.114])
    assert np.median(luma[pupil]) < 0.08
    assert np.median(luma[iris]) < 0.6 * np.median(luma[sclera])
    assert np.median(tex[iris, 2] - tex[iris, 0]) > 0.1  # blue, like the photo's iris
    assert np.median(luma[sclera]) > 0.75

    shut = face_params(model, 5.0, eyeBlink_L=1.0, eyeBlink_R=1.0)
    photo, M_inv = render_photo(model, shut, colors, scale=3, pad=(20, 20))
    bake = bake_texture_maps(model, shut, photo, M_inv, size=256)
    assert not bake.iris_from_photo
    assert bake.iris_color[0] > bake.iris_color[2]  # the default brown


def test_texel_mirror_map_is_read_back_from_the_cache_folder(model, tmp_path, monkeypatch):
    """A second process reads the map from the user cache instead of recomputing it (1.5 s of a
    one-photo run); a changed atlas is another file; an unreadable file is recomputed."""
    import scipy.spatial

    from facerecon.export import symmetry

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(symmetry, "_MIRROR_CACHE", {})
    atlas = model_atlas(model)
    first = texel_mirror(model, atlas, 64)
    files = list((tmp_path / "facerecon").glob("texel-mirror-*.npz"))
    assert len(files) == 1
    monkeypatch.setattr(symmetry, "_MIRROR_CACHE", {})  # as a new process
    monkeypatch.setattr(scipy.spatial, "cKDTree", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = texel_mirror(model, atlas, 64)
    assert np.array_equal(again.partner, first.partner) and np.array_equal(again.distance, first.distance)
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(symmetry, "_MIRROR_CACHE", {})
    files[0].write_bytes(b"broken")
    assert np.array_equal(texel_mirror(model, atlas, 64).partner, first.partner)
    monkeypatch.setattr(symmetry, "_MIRROR_CACHE", {})
    texel_mirror(model, atlas, 32)
    assert len(list((tmp_path / "facerecon").glob("texel-mirror-*.npz"))) == 2
