"""Exports: mesh files reload with trimesh (mm, UVs, texture), the texture baker reproduces a
rendered "photo" where the face is seen and the model colour elsewhere, the overlay touches only
the face, the reconstruction folder holds the documented JSON, and failed writes leave nothing."""

from __future__ import annotations

import json
import math
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from facerecon.export.atlas import model_atlas
from facerecon.atomic import AtomicFiles, atomic_write_text
from facerecon.export.mesh import split_seams, write_glb, write_obj, write_ply
from facerecon.export.overlay import overlay
from facerecon.export.photo import posed_mesh
from facerecon.export.reconstruction import FILES, params_from_document, write_reconstruction
from facerecon.export.texture import bake_texture, bake_texture_maps, photo_vertex_weight, uv_raster
from facerecon.geometry import vertex_normals_np
from facerecon.imageio.align import AlignedFace
from facerecon.params import FaceParams
from facerecon.render import Camera, Renderer, transform

trimesh = pytest.importorskip("trimesh")


# ---------------------------------------------------------------------------------------------
# fixtures: the head model and a synthetic "photo" of a known, patterned face
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def head(ict_archive):
    from facerecon.facemodel import load_face_model

    return load_face_model("head")


def pattern_colors(verts: torch.Tensor) -> torch.Tensor:
    """A smooth colour pattern over the mesh (B,V,3) in [0.1, 0.9], unlike any model colour."""
    x, y = verts[..., 0], verts[..., 1]
    return 0.5 + 0.4 * torch.stack([torch.sin(x / 15.0), torch.sin(y / 11.0), torch.cos((x + y) / 17.0)], -1)


class Scene:
    """A head turned by 30°, rendered with :func:`pattern_colors` at 2× the crop size and pasted
    into a larger photo at an offset; ``M_inv`` maps crop pixels to photo pixels."""

    def __init__(self, model, scale: int = 2, pad: tuple[int, int] = (40, 60), yaw_deg: float = 30.0):
        g = torch.Generator().manual_seed(0)
        p = FaceParams.zeros(1)
        p.alpha = 0.6 * torch.randn(1, 80, generator=g)
        p.delta = 0.5 * torch.randn(1, 80, generator=g)
        p.beta[0, model.expression_names.index("jawOpen")] = 0.2
        p.angles = torch.tensor([[0.08, math.radians(yaw_deg), 0.03]])
        p.gamma = torch.tensor([[0.9, 0.15, 0.3, -0.2, 0.0, 0.0, 0.05, 0.0, 0.0]])
        p.trans = torch.tensor([[0.0, 15.0, -1350.0]])
        self.params, self.camera, self.scale = p, Camera(), scale
        size = 224 * scale
        verts = model.shape(p.alpha, p.beta)
        self.verts_cam = transform(verts, p.angles, p.trans)
        self.pattern = pattern_colors(verts)
        out = Renderer(self.camera.scaled(size))(self.verts_cam, model.faces, self.pattern, background=0.25)
        render = (out.image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        px, py = pad
        self.photo = np.full((size + 2 * py, size + 2 * px, 3), 64, np.uint8)
        self.photo[py:py + size, px:px + size] = render
        self.render_depth = out.depth[0, 0].numpy()
        self.pad = pad
        # crop pixel u (centres at whole numbers) -> render pixel (u + ½)·s − ½ -> photo pixel + pad
        c = (scale - 1) / 2
        self.M_inv = np.array([[scale, 0, px + c], [0, scale, py + c]], dtype=np.float64)
        self.M = np.array([[1 / scale, 0, -(px + c) / scale], [0, 1 / scale, -(py + c) / scale]])
        self.xy_render = out.xy[0].numpy()  # render pixels (continuous, centres at whole numbers)


@pytest.fixture(scope="module")
def scene(head):
    return Scene(head)


def texel_of_vertex(atlas, faces: np.ndarray, size: int) -> np.ndarray:
    """(V,2) int (row, col) of the texel under one UV corner of each vertex (−1 if none)."""
    rc = -np.ones((faces.max() + 1, 2), np.int64)
    uv = atlas.uv[atlas.faces_uv.ravel()]
    rows = np.clip(((1.0 - uv[:, 1]) * size).astype(np.int64), 0, size - 1)
    cols = np.clip((uv[:, 0] * size).astype(np.int64), 0, size - 1)
    rc[faces.ravel(), 0] = rows
    rc[faces.ravel(), 1] = cols
    return rc


def obj_vertices(path: Path) -> np.ndarray:
    rows = [line.split()[1:4] for line in path.read_text().splitlines() if line.startswith("v ")]
    return np.asarray(rows, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# mesh files
# ---------------------------------------------------------------------------------------------
def row_texture(size: int = 256) -> np.ndarray:
    """Texture whose red channel encodes the row and green the column (to check UV axes)."""
    r = np.repeat(np.arange(size, dtype=np.uint8)[:, None], size, 1)
    return np.stack([r, r.T, np.full_like(r, 128)], -1)


def test_obj_round_trip(head, tmp_path):
    atlas = model_atlas(head)
    verts = head.mean.numpy().astype(np.float64)
    faces = head.faces.numpy()
    tex = row_texture()
    paths = write_obj(tmp_path / "face.obj", verts, faces, atlas.uv, atlas.faces_uv, tex)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.mtl", "face.obj", "face_texture.png"]
    assert paths["obj"] == tmp_path / "face.obj"
    text = (tmp_path / "face.obj").read_text()
    assert "mtllib face.mtl\n" in text and "usemtl face\n" in text
    assert text.count("\nvn ") == len(verts) and text.count("\nvt ") == len(atlas.uv)
    assert "map_Kd face_texture.png" in (tmp_path / "face.mtl").read_text()  # relative path
    np.testing.assert_allclose(obj_vertices(tmp_path / "face.obj"), verts, atol=1e-4)  # mm kept

    mesh = trimesh.load(tmp_path / "face.obj", process=False)
    assert mesh.visual.material.image.size == (256, 256)
    uv = mesh.visual.uv
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    # trimesh samples the texture with OBJ's v-up convention: the red channel (row) must match
    # the row we intend for each UV, i.e. row = (1 − v)·S
    sampled = mesh.visual.to_color().vertex_colors[:, :3].astype(int)
    expect_row = np.clip((1.0 - uv[:, 1]) * 256, 0, 255)
    expect_col = np.clip(uv[:, 0] * 256, 0, 255)
    assert np.median(np.abs(sampled[:, 0] - expect_row)) <= 1.0
    assert np.median(np.abs(sampled[:, 1] - expect_col)) <= 1.0
    # every loaded vertex is one of ours (trimesh splits at UV seams)
    from scipy.spatial import cKDTree

    d, _ = cKDTree(verts).query(mesh.vertices)
    assert d.max() < 1e-3


# OBJ texture coordinates: u right, v up, (0, 0) the bottom-left corner of the texture image.
# A texture of four flat quadrants (rows < S/2 are the top half) shows where a UV lands.
QUADRANT_COLORS = {("top", "left"): (255, 0, 0), ("top", "right"): (0, 255, 0),
                   ("bottom", "left"): (0, 0, 255), ("bottom", "right"): (255, 255, 0)}


def quadrant_texture(size: int) -> np.ndarray:
    tex = np.zeros((size, size, 3), np.uint8)
    h = size // 2
    tex[:h, :h] = QUADRANT_COLORS["top", "left"]
    tex[:h, h:] = QUADRANT_COLORS["top", "right"]
    tex[h:, :h] = QUADRANT_COLORS["bottom", "left"]
    tex[h:, h:] = QUADRANT_COLORS["bottom", "right"]
    return tex


def quadrant_of(uv: np.ndarray, margin: float) -> list[tuple[tuple[str, str], np.ndarray]]:
    """For points or triangles of UVs (N,[3,]2) in the OBJ convention: ((half, side), mask of
    those lying entirely, ``margin`` away from the middle lines, in that quadrant)."""
    uv = uv.reshape(len(uv), -1, 2)
    u, v = uv[..., 0], uv[..., 1]
    halves = {"top": (v > 0.5 + margin).all(1), "bottom": (v < 0.5 - margin).all(1)}
    sides = {"left": (u < 0.5 - margin).all(1), "right": (u > 0.5 + margin).all(1)}
    return [((h, s), halves[h] & sides[s]) for h in halves for s in sides]


def parse_obj_faces(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``vt`` (T,2), vertex ids (F,3) and vt ids (F,3), 0-based, of an ``f v/vt/vn`` OBJ,
    parsed here independently of facerecon."""
    vt, f, ft = [], [], []
    for line in path.read_text().splitlines():
        if line.startswith("vt "):
            vt.append([float(x) for x in line.split()[1:3]])
        elif line.startswith("f "):
            corners = [c.split("/") for c in line.split()[1:]]
            f.append([int(c[0]) - 1 for c in corners])
            ft.append([int(c[1]) - 1 for c in corners])
    return np.asarray(vt), np.asarray(f), np.asarray(ft)


def test_obj_texture_coordinates_are_the_atlas_in_obj_convention(head, tmp_path):
    """The OBJ's ``vt`` are the atlas UVs as they are (v up, not 1 − v), the face upright in the
    texture, and the texel a face's ``vt`` points at (row (1 − v)·S, column u·S) is the texel of
    the atlas position: read back from the written PNG, each face's colour is its quadrant's."""
    atlas = model_atlas(head)
    verts = head.mean.numpy().astype(np.float64)
    faces = head.faces.numpy()
    size = 64
    write_obj(tmp_path / "face.obj", verts, faces, atlas.uv, atlas.faces_uv, quadrant_texture(size))
    vt, f, ft = parse_obj_faces(tmp_path / "face.obj")
    np.testing.assert_array_equal(f, faces)
    corner_uv = vt[ft]  # (F,3,2) as a viewer reads them
    np.testing.assert_allclose(corner_uv, atlas.uv[atlas.faces_uv], atol=1e-6)

    # known anatomy: the face is upright (v up) and seen from the front (the subject's right,
    # −x, on the image's left) in the texture, like a photo of the face
    uv_of = np.zeros((len(verts), 2))
    uv_of[f.ravel()] = corner_uv.reshape(-1, 2)
    lm = uv_of[head.landmark_idx.numpy()]
    assert lm[17:27, 1].min() > lm[36:48, 1].max()  # brows above the eyes
    assert lm[36:48, 1].min() > lm[30, 1] > lm[48:68, 1].max() > lm[8, 1]  # eyes, nose tip, mouth, chin
    assert lm[36, 0] < lm[39, 0] < lm[30, 0] < lm[42, 0] < lm[45, 0]  # right eye, nose, left eye
    assert lm[48, 0] < lm[54, 0] and lm[0, 0] < lm[16, 0]

    # pixel level: the texel under each face's vt centroid, from the PNG as written
    from PIL import Image

    png = np.asarray(Image.open(tmp_path / "face_texture.png").convert("RGB"))
    np.testing.assert_array_equal(png, quadrant_texture(size))
    centroid = corner_uv.mean(1)
    rows = np.floor((1.0 - centroid[:, 1]) * size).astype(int)
    cols = np.floor(centroid[:, 0] * size).astype(int)
    for quadrant, inside in quadrant_of(atlas.uv[atlas.faces_uv], margin=2 / size):
        assert inside.sum() > 100, quadrant  # every quadrant holds faces of the head
        np.testing.assert_array_equal(png[rows[inside], cols[inside]],
                                      np.broadcast_to(QUADRANT_COLORS[quadrant], (inside.sum(), 3)),
                                      err_msg=str(quadrant))


def test_obj_uvs_and_texture_as_trimesh_loads_them(head, tmp_path):
    """trimesh reads the same UVs per triangle corner as the atlas, and the colours it samples
    from the texture (its own OBJ-convention lookup) are those of each vertex's atlas quadrant."""
    atlas = model_atlas(head)
    verts = head.mean.numpy().astype(np.float64)
    faces = head.faces.numpy()
    size = 64
    write_obj(tmp_path / "face.obj", verts, faces, atlas.uv, atlas.faces_uv, quadrant_texture(size))
    mesh = trimesh.load(tmp_path / "face.obj", process=False)
    assert len(mesh.faces) == len(faces)  # triangle order kept; vertices split at UV seams
    np.testing.assert_allclose(mesh.vertices[mesh.faces], verts[faces], atol=1e-4)
    np.testing.assert_allclose(mesh.visual.uv[mesh.faces], atlas.uv[atlas.faces_uv], atol=1e-6)

    # the atlas UV of each loaded vertex, through the triangle corners
    atlas_uv = np.zeros((len(mesh.vertices), 2))
    atlas_uv[mesh.faces.ravel()] = atlas.uv[atlas.faces_uv.ravel()]
    sampled = mesh.visual.to_color().vertex_colors[:, :3]
    for quadrant, inside in quadrant_of(atlas_uv, margin=2 / size):
        assert inside.sum() > 100, quadrant
        np.testing.assert_array_equal(sampled[inside], np.broadcast_to(QUADRANT_COLORS[quadrant], (inside.sum(), 3)),
                                      err_msg=str(quadrant))


def test_obj_without_texture(tmp_path):
    verts = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]], float)
    paths = write_obj(tmp_path / "tri.obj", verts, np.array([[0, 1, 2]]))
    assert set(paths) == {"obj", "mtl"} and not (tmp_path / "tri_texture.png").exists()
    assert "f 1//1 2//2 3//3" in paths["obj"].read_text()
    np.testing.assert_allclose(vertex_normals_np(verts, np.array([[0, 1, 2]])), [[0, 0, 1]] * 3)


def test_ply_round_trip(head, tmp_path):
    verts = head.mean.numpy().astype(np.float64)
    faces = head.faces.numpy()
    colors = np.random.default_rng(0).random((len(verts), 3))
    path = write_ply(tmp_path / "face.ply", verts, faces, colors)
    assert path.read_bytes()[:80].find(b"format binary_little_endian") > 0
    mesh = trimesh.load(path, process=False)
    np.testing.assert_allclose(mesh.vertices, verts, atol=1e-4)
    np.testing.assert_array_equal(mesh.faces, faces)
    np.testing.assert_array_equal(mesh.visual.vertex_colors[:, :3], np.rint(colors * 255).astype(np.uint8))


def test_glb_round_trip(head, tmp_path):
    atlas = model_atlas(head)
    verts = head.mean.numpy().astype(np.float64)
    faces = head.faces.numpy()
    tex = row_texture(128)
    path = write_glb(tmp_path / "face.glb", verts, faces, atlas.uv, atlas.faces_uv, tex)
    data = path.read_bytes()
    magic, version, length = struct.unpack("<4sII", data[:12])
    assert (magic, version, length) == (b"glTF", 2, len(data))
    doc = json.loads(data[20:20 + struct.unpack("<I", data[12:16])[0]])
    assert doc["nodes"][0]["scale"] == [0.001] * 3  # glTF is in metres; the buffer keeps mm
    assert doc["materials"][0]["pbrMetallicRoughness"]["metallicFactor"] == 0.0

    scene = trimesh.load(path)
    (mesh,) = scene.geometry.values()
    vsrc, tsrc, fsplit = split_seams(faces, atlas.faces_uv)
    assert len(mesh.vertices) == len(vsrc)  # split at UV seams only
    np.testing.assert_allclose(mesh.vertices, verts[vsrc], atol=1e-4)  # mm
    np.testing.assert_allclose(mesh.visual.uv, atlas.uv[tsrc], atol=1e-6)  # back to OBJ convention
    assert mesh.visual.uv.min() >= 0 and mesh.visual.uv.max() <= 1
    assert mesh.visual.material.baseColorTexture.size == (128, 128)
    np.testing.assert_array_equal(np.asarray(mesh.visual.material.baseColorTexture.convert("RGB")), tex)
    dumped = scene.to_geometry()
    np.testing.assert_allclose(dumped.vertices, verts[vsrc] * 1e-3, atol=1e-7)  # metres in viewers


def test_atlas_is_one_nonoverlapping_texture(head):
    atlas = model_atlas(head)
    assert atlas.uv.min() >= 0 and atlas.uv.max() <= 1
    assert atlas.faces_uv.shape == head.faces.shape
    rects = [(c.dst_min, c.dst_min + c.src_size * c.scale) for c in atlas.charts]
    for i, (lo, hi) in enumerate(rects):
        assert (lo >= 0).all() and (hi <= 1 + 1e-6).all()
        for lo2, hi2 in rects[i + 1:]:
            assert (hi <= lo2 + 1e-9).any() or (hi2 <= lo + 1e-9).any(), "charts overlap"
    # the chart holding the landmarks (the face) is the biggest and densest
    lmk_faces = np.isin(head.faces.numpy(), head.landmark_idx.numpy()).any(1)
    face_chart = max(atlas.charts, key=lambda c: lmk_faces[c.faces].sum())
    assert face_chart.scale == max(c.scale for c in atlas.charts if len(c.faces) > 1000)


# ---------------------------------------------------------------------------------------------
# texture baking
# ---------------------------------------------------------------------------------------------
def _vertex_classes(head, scene):
    """Vertex sets: clearly seen (photo) and clearly hidden (back-facing / occluded)."""
    posed = posed_mesh(head, scene.params)
    view = -posed.verts_cam / np.linalg.norm(posed.verts_cam, axis=1, keepdims=True)
    facing = (posed.normals_cam * view).sum(1)
    xy = scene.xy_render
    col = np.clip(np.floor(xy[:, 0] + 0.5).astype(int), 0, scene.render_depth.shape[1] - 1)
    row = np.clip(np.floor(xy[:, 1] + 0.5).astype(int), 0, scene.render_depth.shape[0] - 1)
    zbuf = scene.render_depth[row, col]
    depth = -posed.verts_cam[:, 2]
    in_frame = (xy >= 2).all(1) & (xy < scene.render_depth.shape[0] - 2).all(1)
    region = photo_vertex_weight(head)
    seen = in_frame & (facing > 0.7) & (zbuf > 0) & (np.abs(depth - zbuf) < 0.5) & (region >= 1.0)
    back = facing < -0.2
    occluded = in_frame & (facing > 0.5) & (zbuf > 0) & (depth > zbuf + 4.0)
    faces = head.faces.numpy()

    def interior(mask: np.ndarray, rings: int = 2) -> np.ndarray:
        """Vertices whose ``rings`` neighbourhoods are all in ``mask`` (texels near a vertex may
        lie in the next triangle; thin parts like the ears flip facing within one ring)."""
        for _ in range(rings):
            bad = faces[~mask[faces].all(1)].ravel()
            mask = mask.copy()
            mask[bad] = False
        return mask

    # ICT maps the inner (back) side of each iris onto the texels of its front side, which the
    # visible front owns: those back vertices share their texels and are not tested
    uv = model_atlas(head).uv[model_atlas(head).faces_uv]
    flipped = ((uv[:, 1, 0] - uv[:, 0, 0]) * (uv[:, 2, 1] - uv[:, 0, 1])
               - (uv[:, 1, 1] - uv[:, 0, 1]) * (uv[:, 2, 0] - uv[:, 0, 0])) < 0
    shares_texels = np.zeros(len(back), bool)
    shares_texels[faces[flipped].ravel()] = True
    return posed, interior(seen, 1), interior(back & ~shares_texels), interior(occluded, 1)


@pytest.mark.parametrize("size, scale", [(512, 2), (256, 4)])  # 4×: photo finer than texture
def test_bake_reproduces_photo_where_seen_and_model_elsewhere(head, size, scale):
    scene = Scene(head, scale=scale)
    # the photo part of the bake, with the model colour elsewhere (completion and painted eyes
    # are tested in test_export_completion.py)
    bake = bake_texture_maps(head, scene.params, scene.photo, scene.M_inv, scene.camera, size=size,
                             complete=False, eyes=False)
    tex = bake.texture.astype(np.float64) / 255.0
    assert bake.texture.shape == (size, size, 3) and bake.texture.dtype == np.uint8
    assert (bake.texture.sum(-1) > 0).all(), "black texels left (gaps not filled)"
    assert 0 < ((bake.photo_weight > 0.05) & (bake.photo_weight < 0.95)).sum(), "no feathered border"
    if scale == 4:
        assert bake.photo_scale > 1.25  # the pre-filtered path ran

    posed, seen, back, occluded = _vertex_classes(head, scene)
    faces = head.faces.numpy()
    rc = texel_of_vertex(bake.atlas, faces, size)
    # only vertices whose texel lies in one of their own triangles: where the UV layout squeezes
    # many triangles into one texel (inside the lids and lips), a texel cannot hold each vertex
    ras = uv_raster(bake.atlas, size)
    owner = -np.ones(size * size, np.int64)
    owner[ras.pix] = ras.tri
    tri_at = owner[rc[:, 0] * size + rc[:, 1]]
    resolvable = (faces[tri_at] == np.arange(len(rc))[:, None]).any(1) & (tri_at >= 0)
    seen, back, occluded = seen & resolvable, back & resolvable, occluded & resolvable
    assert seen.sum() > 1000 and back.sum() > 1000 and occluded.sum() > 20
    w = bake.photo_weight[rc[:, 0], rc[:, 1]]
    got = tex[rc[:, 0], rc[:, 1]]
    pattern = scene.pattern[0].numpy()

    # seen: (nearly) all from the photo, matching the rendered pattern colour
    full = seen & (w > 0.99)
    assert full.sum() > 0.7 * seen.sum()
    err = np.abs(got[full] - pattern[full]).max(1)
    assert np.median(err) < 4 / 255 and np.percentile(err, 95) < 16 / 255

    # back-facing and occluded (eyeballs behind the lids): the model colour, no photo
    for hidden in (back, occluded):
        assert (w[hidden] == 0).all()
        model = np.clip(posed.color[hidden] * bake.color_gain, 0, 1)  # matched to the photo
        err = np.abs(got[hidden] - model).max(1)
        assert np.median(err) < 4 / 255 and np.percentile(err, 95) < 16 / 255


def test_bake_of_the_model_render_is_seamless(head):
    """When the photo is exactly the fitted model's render, photo and model colour agree, so the
    texture equals the model colour everywhere: no seam at the visibility border."""
    scene = Scene(head)
    posed = posed_mesh(head, scene.params)
    out = Renderer(scene.camera.scaled(448))(scene.verts_cam, head.faces, torch.from_numpy(posed.color)[None])
    photo = scene.photo.copy()
    px, py = scene.pad
    photo[py:py + 448, px:px + 448] = (out.image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    bake = bake_texture_maps(head, scene.params, photo, scene.M_inv, scene.camera, size=512, complete=False, eyes=False)
    np.testing.assert_allclose(bake.color_gain, 1.0, atol=0.02)
    mixed = bake.covered & (bake.photo_weight > 0.02)
    # except the irises: seen through the cornea within a few mm, they take the photo's colour
    # there (right for photos, where the cornea is clear; here the render shows the cornea's)
    from facerecon.facemodel.ict import PARTS

    ras = uv_raster(bake.atlas, 512)
    owner = np.full(512 * 512, -1)
    owner[ras.pix] = ras.tri
    vid = head.vertex_ids[head.faces.numpy()[owner, 0]].reshape(512, 512)
    for part in ("iris_left", "iris_right"):
        lo, hi = PARTS[part]
        mixed &= ~((vid >= lo) & (vid < hi))
    err = np.abs(bake.texture[mixed] / 255.0 - bake.model_color[mixed]).max(1)
    assert mixed.sum() > 10000
    assert np.median(err) < 3 / 255 and np.percentile(err, 99) < 20 / 255


def test_bake_speed_at_1024(head, scene):
    bake_texture(head, scene.params, scene.photo, scene.M_inv, scene.camera, size=1024)  # warm caches
    t = time.perf_counter()
    tex = bake_texture(head, scene.params, scene.photo, scene.M_inv, scene.camera, size=1024)
    elapsed = time.perf_counter() - t
    assert tex.shape == (1024, 1024, 3)
    assert elapsed < 3.0, f"bake took {elapsed:.2f} s"  # ~0.3 s on a quiet 2-core CPU


def test_bake_face_outside_photo(head, scene):
    """A face projected entirely off the photo gets the model colour everywhere."""
    M_inv = scene.M_inv.copy()
    M_inv[:, 2] += 5000
    bake = bake_texture_maps(head, scene.params, scene.photo, M_inv, scene.camera, size=128)
    assert bake.photo_weight.max() == 0 and not bake.visible.any()


# ---------------------------------------------------------------------------------------------
# overlay
# ---------------------------------------------------------------------------------------------
def test_overlay_changes_only_the_face(head, scene):
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, scene.photo.shape, dtype=np.uint8)
    det = rng.random((68, 2)) * 20 + 200
    out = overlay(photo, head, scene.params, scene.M_inv, scene.camera, detected_landmarks=det)
    assert out.shape == photo.shape and out.dtype == np.uint8
    posed = posed_mesh(head, scene.params)
    xy = scene.xy_render + np.array(scene.pad)  # photo pixels
    lo = np.floor(xy.min(0)).astype(int) - 4
    hi = np.ceil(xy.max(0)).astype(int) + 5
    changed = (out != photo).any(-1)
    outside = np.ones(changed.shape, bool)
    outside[max(lo[1], 0):hi[1], max(lo[0], 0):hi[0]] = False
    assert not changed[outside].any()
    assert changed.mean() > 0.1
    assert posed.verts_cam.shape[0] == head.n_vertices


def _painted_reach(image: np.ndarray, points: np.ndarray) -> float:
    """Largest distance (pixels) from a pixel painted at least half strength to the nearest point."""
    ys, xs = np.nonzero(image.max(-1) >= 128)
    d = np.hypot(xs[:, None] - points[None, :, 0], ys[:, None] - points[None, :, 1]).min(1)
    return float(d.max())


def test_landmark_dots_shrink_with_a_small_face():
    from facerecon.export.overlay import draw_landmarks
    # a face 24 px across in a 40 px photo: dots the size of a large photo's would cover it
    g = np.stack(np.meshgrid(np.linspace(8, 32, 9), np.linspace(8, 32, 8)), -1).reshape(-1, 2)[:68]
    small = draw_landmarks(np.zeros((40, 40, 3), np.uint8), g, (0, 255, 0))
    assert _painted_reach(small, g) < 1.2  # radius 0.5 (1.5, the old size, reaches 1.9)
    assert (small.max(-1) >= 128).mean() < 0.2
    # a large photo with a large face keeps dots of 1/250 of its side (4 px)
    big = draw_landmarks(np.zeros((1000, 1000, 3), np.uint8), g * 20, (0, 255, 0))
    assert 3.5 < _painted_reach(big, g * 20) < 5.0


# ---------------------------------------------------------------------------------------------
# the reconstruction folder
# ---------------------------------------------------------------------------------------------
def aligned_for(scene) -> AlignedFace:
    return AlignedFace(crop=np.zeros((224, 224, 3), np.uint8), landmarks=np.zeros((68, 2), np.float32),
                       M=scene.M, M_inv=scene.M_inv)


def test_write_reconstruction(head, scene, tmp_path):
    det = np.random.default_rng(2).random((68, 2)) * 100 + 150
    out = tmp_path / "photo1"
    written = write_reconstruction(out, photo=scene.photo, aligned=aligned_for(scene), params=scene.params,
                                   face_model_head=head, camera=scene.camera, landmarks_photo=det,
                                   source_path="/data/photo1.jpg", extra={"loss": 0.5}, texture_size=256)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES.values())  # no temporaries
    assert {k: p.name for k, p in written.items()} == FILES

    doc = json.loads((out / "params.json").read_text())
    assert list(doc["identity"]) == [f"identity_{i:03d}" for i in range(80)]
    assert list(doc["expression"]) == head.expression_names and len(doc["expression"]) == 53
    assert {"jawOpen", "mouthSmile_L", "eyeBlink_R", "browInnerUp_L"} <= set(doc["expression"])
    assert list(doc["albedo"]) == [f"albedo_{i:03d}" for i in range(80)]
    assert len(doc["light"]["coefficients"]) == 9
    assert doc["pose"]["angles_deg"]["yaw"] == pytest.approx(30.0, abs=1e-4)
    assert doc["pose"]["angles_rad"]["yaw"] == pytest.approx(math.radians(30.0), abs=1e-6)
    assert doc["pose"]["translation_mm"]["z"] == pytest.approx(-1350.0)
    assert doc["camera"] == {**doc["camera"], "focal_px": 1015.0, "size_px": 224}
    assert doc["face_model"]["name"] == head.name and doc["face_model"]["source_sha256"] == head.source_sha256
    assert doc["facerecon_version"] and doc["units"]["shape"] == "mm" and "model_space" in doc["conventions"]
    assert doc["expression"]["jawOpen"] == pytest.approx(0.2)
    assert doc["photo"] == {"path": "/data/photo1.jpg", "width": scene.photo.shape[1], "height": scene.photo.shape[0]}
    assert doc["extra"] == {"loss": 0.5}
    assert doc["texture"]["size_px"] == 256 and 0 < doc["texture"]["photo_fraction"] < 1
    back = params_from_document(doc)
    for name in ("alpha", "beta", "delta", "gamma", "angles", "trans"):
        torch.testing.assert_close(getattr(back, name), getattr(scene.params, name))

    lm = json.loads((out / "landmarks.json").read_text())
    np.testing.assert_allclose(lm["detected_photo_px"], det, atol=1e-4)
    verts = obj_vertices(out / "face.obj") * 1000.0  # written in metres by default
    assert (out / "face.obj").read_text().startswith("# facerecon: units m, +y up")
    np.testing.assert_allclose(lm["model_mm"], verts[lm["mesh_vertex_index"]], atol=1e-3)
    # fitted landmarks: the inner 51 are the projected landmark vertices; the jaw points slide
    # to the silhouette — each is the projection of a mesh vertex at its fixed point's height on
    # the mean face (±2.5 mm), at least as far out as the fixed point; the turned face moves some
    xy_all = scene.xy_render + np.array(scene.pad)
    fixed = xy_all[head.landmark_idx.numpy()]
    got = np.asarray(lm["fitted_photo_px"])
    np.testing.assert_allclose(got[17:], fixed[17:], atol=0.05)
    mean_y = head.mean[:, 1].numpy()
    for k in [*range(8), *range(9, 17)]:
        d = np.linalg.norm(xy_all - got[k], axis=1)
        height = np.abs(mean_y - mean_y[head.landmark_idx[k]])
        assert (d[height < 2.5 + 1e-3] < 0.05).any(), f"jaw point {k} is not a vertex of its band"
        assert (got[k, 0] <= fixed[k, 0] + 1e-3) if k < 8 else (got[k, 0] >= fixed[k, 0] - 1e-3)
    assert np.abs(got[:17] - fixed[:17]).max() > 1.0

    # meshes: neutral pose (identity + expression, no rotation) of the head closed from inside,
    # in ICT's vertex order (the "export" region), metres
    from facerecon.facemodel import load_face_model

    closed = load_face_model("export")
    assert doc["face_model"]["exported_region"] == "export" and doc["face_model"]["vertices"] == closed.n_vertices
    neutral = closed.shape(scene.params.alpha, scene.params.beta)[0].numpy()
    np.testing.assert_allclose(verts, neutral, atol=2e-3)
    ply = trimesh.load(out / "face.ply", process=False)
    np.testing.assert_allclose(ply.vertices * 1000.0, neutral, atol=2e-3)
    assert doc["units"]["meshes"]["obj_ply"] == "m"
    # face_neutral.ply: the same identity without expression, same colours and triangles
    bare = trimesh.load(out / "face_neutral.ply", process=False)
    np.testing.assert_allclose(bare.vertices * 1000.0, closed.shape(scene.params.alpha)[0].numpy(), atol=2e-3)
    assert np.array_equal(bare.faces, ply.faces) and np.array_equal(bare.visual.vertex_colors, ply.visual.vertex_colors)
    assert float(scene.params.beta.abs().max()) > 0 and np.abs(bare.vertices - ply.vertices).max() > 1e-4
    glb = trimesh.load(out / "face.glb")
    (mesh,) = glb.geometry.values()
    assert mesh.visual.material.baseColorTexture.size == (256, 256)
    from PIL import Image

    assert Image.open(out / "overlay.png").size == (scene.photo.shape[1], scene.photo.shape[0])
    assert Image.open(out / "compare.png").size == (3 * 512 + 8, 512)

    # writing again replaces the files in place, still without leftovers
    write_reconstruction(out, photo=scene.photo, aligned=aligned_for(scene), params=scene.params,
                         face_model_head=head, camera=scene.camera, texture_size=128)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES.values())
    assert json.loads((out / "landmarks.json").read_text())["detected_photo_px"] is None


def test_failed_write_leaves_folder_untouched(head, scene, tmp_path, monkeypatch):
    out = tmp_path / "photo1"
    out.mkdir()
    (out / "face.obj").write_text("old")
    import facerecon.export.reconstruction as rec

    def boom(doc):  # fails after the meshes and textures were staged
        raise RuntimeError("disk full")

    monkeypatch.setattr(rec, "_json_bytes", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_reconstruction(out, photo=scene.photo, aligned=aligned_for(scene), params=scene.params,
                             face_model_head=head, camera=scene.camera, texture_size=64)
    assert [p.name for p in out.iterdir()] == ["face.obj"]
    assert (out / "face.obj").read_text() == "old"


def test_refuses_to_overwrite_the_input_photo(head, scene, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    src = out / "overlay.png"
    src.write_bytes(b"the user's photo")
    with pytest.raises(ValueError, match="input file"):
        write_reconstruction(out, photo=scene.photo, aligned=aligned_for(scene), params=scene.params,
                             face_model_head=head, camera=scene.camera, source_path=src, texture_size=64)
    assert src.read_bytes() == b"the user's photo" and [p.name for p in out.iterdir()] == ["overlay.png"]


def test_atomic_files(tmp_path):
    with pytest.raises(KeyError):
        with AtomicFiles() as files:
            files.write_text(tmp_path / "a.txt", "a")
            raise KeyError("stop")
    assert list(tmp_path.iterdir()) == []
    atomic_write_text(tmp_path / "b.txt", "b")
    assert [p.name for p in tmp_path.iterdir()] == ["b.txt"]
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o666 & ~_umask()
    with pytest.raises(ValueError):  # bad input: nothing written, old file kept
        write_obj(tmp_path / "b.obj", np.zeros((3, 3)), np.array([[0, 1, 2]]), np.zeros((3, 2)),
                  texture=np.zeros((4, 4), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["b.txt"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_contour_distances_are_pixels_to_the_outline_and_to_depth_jumps():
    """A 6×8 raster: columns 0-5 covered (7 and 8 off the mesh), a 20 mm step between columns 2
    and 3. Distances by hand: to the silhouette, column 5 is 1 px from column 6; to the jump,
    columns 2 and 3 are on it (0) and column 5 is 2 px away (OpenCV's 3×3 L2 mask steps 0.955 px
    along a row: within 5 %). With no jump (a flat plane) nothing
    is further than the raster's size, never OpenCV's FLT_MAX, which overflowed the weights."""
    from facerecon.export.texture import _contour_distance

    class Raster:
        def __init__(self, depth):
            self._d = depth

        def depth(self):
            return self._d

    depth = np.full((6, 8), np.inf, np.float32)
    depth[:, :6] = 500.0
    depth[:, 3:6] = 520.0
    d_sil, d_jump = _contour_distance(Raster(depth), jump_mm=10.0)
    row = 3
    assert d_sil[row, 5] == pytest.approx(1.0, rel=0.05) and d_sil[row, 6] == 0
    assert d_jump[row, 2] == 0 and d_jump[row, 3] == 0
    assert d_jump[row, 5] == pytest.approx(2.0, rel=0.05)
    flat = np.full((6, 8), 500.0, np.float32)
    with np.errstate(over="raise"):
        d_sil, d_jump = _contour_distance(Raster(flat), jump_mm=10.0)
        (d_jump / np.float32(1e-6)).sum()  # the weights divide it by a width in pixels
    assert np.isfinite(d_jump).all() and d_jump.max() <= 6 + 8
    assert d_sil[0, 0] == pytest.approx(1.0, rel=0.05)  # beyond the border counts as off the mesh


def test_model_views_frame_and_light_a_known_plate():
    """A 100 × 100 mm square facing the viewer, painted red, from the front and turned 60°. By
    hand: framed to 90 % of a 200 px panel, it spans 180 px from the front; turned 60° it spans
    cos 60° of that across (90 px) and is lit by 0.35 + 0.65 cos 60° = 0.675 of its colour (the
    front: 1). Beyond it the panel is grey; the panels sit side by side with a 4 px white gap."""
    from facerecon.export.overlay import PANEL_BACKGROUND, model_views

    verts = np.array([[-50.0, -50, 0], [50, -50, 0], [50, 50, 0], [-50, 50, 0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    colors = np.tile([0.8, 0.1, 0.1], (4, 1))
    img = model_views(verts, faces, colors, size=200, yaws_deg=(0.0, 60.0), labels=False)
    assert img.shape == (200, 404, 3) and (img[:, 200:204] == 255).all()
    front, turned = img[:, :200].astype(int), img[:, 204:].astype(int)
    for panel, shade, width in ((front, 1.0, 180), (turned, 0.675, 90)):
        red = (np.abs(panel - PANEL_BACKGROUND).max(-1) > 30)
        cols = np.nonzero(red[100])[0]
        assert abs(len(cols) - width) <= 3 and abs(cols.mean() - 99.5) <= 2
        assert np.abs(panel[100, 100] - np.array([0.8, 0.1, 0.1]) * 255 * shade).max() <= 3
        assert (panel[2, 2] == PANEL_BACKGROUND).all()
