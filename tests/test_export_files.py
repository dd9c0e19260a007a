"""What a user opens: the mesh closed from inside (mouth and eyes), units and up axes of OBJ and
PLY, smooth normals in every format, PLY colours read from the texture, an overlay of the face
only with a soft edge, and the side-by-side comparison."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from facerecon.export.atlas import model_atlas
from facerecon.export.headmesh import boundary_loops, export_model
from facerecon.export.mesh import write_glb, write_obj, write_ply
from facerecon.export.overlay import overlay
from facerecon.export.photo import posed_mesh
from facerecon.export.reconstruction import region_faces, write_reconstruction
from facerecon.facemodel.ict import PARTS
from facerecon.render import Renderer
from tests.test_export import Scene, aligned_for, obj_vertices

trimesh = pytest.importorskip("trimesh")


@pytest.fixture(scope="module")
def head(ict_archive):
    from facerecon.facemodel import load_face_model

    return load_face_model("head")


@pytest.fixture(scope="module")
def closed(head):
    return export_model(head)


def area_weighted_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Vertex normals computed here: the sum of the adjacent triangles' cross products, normalised."""
    cross = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    n = np.zeros_like(verts)
    for k in range(3):
        np.add.at(n, faces[:, k], cross)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def read_ply(path: Path) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """A binary little-endian PLY of float/uchar vertex properties and ``uchar int`` triangles,
    parsed here: (header lines, {property: values}, faces (F,3))."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    assert header[1] == "format binary_little_endian 1.0"
    props, n_v, n_f = [], 0, 0
    for line in header:
        parts = line.split()
        if parts[:2] == ["element", "vertex"]:
            n_v = int(parts[2])
        elif parts[:2] == ["element", "face"]:
            n_f = int(parts[2])
        elif parts[0] == "property" and parts[1] != "list":
            props.append((parts[2], {"float": "<f4", "uchar": "u1"}[parts[1]]))
    vert = np.frombuffer(data, dtype=props, count=n_v, offset=end)
    tri = np.frombuffer(data, dtype=[("n", "u1"), ("i", "<i4", (3,))], count=n_f, offset=end + vert.nbytes)
    assert (tri["n"] == 3).all()
    return header, {name: vert[name] for name, _ in props}, tri["i"].astype(np.int64)


# ---------------------------------------------------------------------------------------------
# closed from inside
# ---------------------------------------------------------------------------------------------
def ray_hits(verts: np.ndarray, faces: np.ndarray, origin: np.ndarray, direction: np.ndarray):
    """Möller–Trumbore against every triangle: (distances, triangle ids) of the hits, nearest first."""
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    e1, e2 = v1 - v0, v2 - v0
    p = np.cross(direction, e2)
    det = (e1 * p).sum(1)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = origin - v0
    u = (s * p).sum(1) * inv
    q = np.cross(s, e1)
    v = (q * direction).sum(1) * inv
    t = (q * e2).sum(1) * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    order = np.argsort(t[hit])
    return t[hit][order], np.flatnonzero(hit)[order]


def test_mouth_and_eyes_are_closed(head, closed):
    """The only holes left are the bottom of the neck and the gums' edges deep inside the mouth:
    none within 8 mm of the lips' or the eyes' landmarks (the head alone has three there)."""
    lm = closed.mean.numpy()[closed.landmark_idx.numpy()]
    features = np.concatenate([lm[36:48], lm[48:68]])

    def loops_near_features(model) -> int:
        mean = model.mean.numpy()
        return sum(np.linalg.norm(mean[loop][:, None] - features[None], axis=2).min() < 8.0
                   for loop in boundary_loops(model.faces.numpy()))

    assert loops_near_features(head) == 3  # mouth and both eyes open: what viewers looked through
    assert loops_near_features(closed) == 0
    f = closed.faces.numpy()
    assert ((f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])).all()  # no degenerate triangle
    assert len(np.unique(f)) == closed.n_vertices  # every vertex used
    ids = np.asarray(closed.vertex_ids)
    for loop in boundary_loops(closed.faces.numpy()):
        top = ids[loop].max()
        assert PARTS["head_neck"][0] <= top < PARTS["head_neck"][1] or PARTS["gums_tongue"][0] <= top < PARTS["gums_tongue"][1]


@pytest.mark.parametrize("jaw", [0.0, 0.6])
def test_rays_through_the_mouth_hit_the_inside_of_the_mouth(head, closed, jaw):
    """Rays straight into the open (or closed) mouth, between the inner lip landmarks, first meet
    a surface facing them that belongs to the mouth (lips, socket, teeth, tongue) — not the
    inside of the back of the head, as they did through ICT's head alone."""
    beta = torch.zeros(1, 53)
    beta[0, closed.expression_names.index("jawOpen")] = jaw
    direction = np.array([0.0, 0.0, -1.0])

    def first_hits(model):
        verts = model.shape(None, beta)[0].numpy().astype(np.float64)
        faces = model.faces.numpy()
        lm = verts[model.landmark_idx.numpy()]
        out = []
        for a, b in ((62, 66), (61, 67), (63, 65)):  # inner lip pairs: middle and sides
            for f in (0.3, 0.5, 0.7):
                p = lm[a] * (1 - f) + lm[b] * f
                t, tri = ray_hits(verts, faces, np.array([p[0], p[1], 300.0]), direction)
                n = np.cross(verts[faces[tri[0], 1]] - verts[faces[tri[0], 0]], verts[faces[tri[0], 2]] - verts[faces[tri[0], 0]])
                out.append((300.0 - t[0], np.asarray(model.vertex_ids)[faces[tri[0]]].max(), float(n @ direction)))
        return out

    mouth = [(PARTS[p][0], PARTS[p][1]) for p in ("mouth_socket", "gums_tongue", "teeth")]
    for z, top_id, facing in first_hits(closed):
        inside_mouth = any(lo <= top_id < hi for lo, hi in mouth) or top_id < PARTS["face"][1]
        assert facing < 0 and inside_mouth and z > 0, (z, top_id, facing)
    if jaw > 0:  # through ICT's head alone the open mouth showed the back of the head from inside
        assert any(facing > 0 for _, _, facing in first_hits(head))


# ---------------------------------------------------------------------------------------------
# units, axes, normals
# ---------------------------------------------------------------------------------------------
def test_obj_and_ply_units_and_up_axis(closed, tmp_path):
    verts = closed.mean.numpy().astype(np.float64)
    faces = closed.faces.numpy()
    atlas = model_atlas(closed)
    tex = np.full((8, 8, 3), 200, np.uint8)
    write_obj(tmp_path / "m.obj", verts, faces, atlas.uv, atlas.faces_uv, tex, units="m")
    write_obj(tmp_path / "mm.obj", verts, faces, atlas.uv, atlas.faces_uv, tex, units="mm")
    np.testing.assert_allclose(obj_vertices(tmp_path / "m.obj"), verts * 1e-3, atol=1e-8)
    np.testing.assert_allclose(obj_vertices(tmp_path / "mm.obj"), verts, atol=1e-4)
    assert (tmp_path / "m.obj").read_text().splitlines()[0] == "# facerecon: units m, +y up, +z front, right-handed"
    mesh = trimesh.load(tmp_path / "m.obj", process=False)
    assert 0.15 < np.ptp(mesh.vertices[:, 1]) < 0.4  # a head in metres, as Blender reads it

    write_ply(tmp_path / "m.ply", verts, faces, units="m")
    write_ply(tmp_path / "z.ply", verts, faces, units="m", up="z")
    np.testing.assert_allclose(trimesh.load(tmp_path / "m.ply", process=False).vertices, verts * 1e-3, atol=1e-7)
    header, z, zf = read_ply(tmp_path / "z.ply")
    assert "comment facerecon: units m, +z up, -y front, right-handed" in header
    got = np.stack([z["x"], z["y"], z["z"]], 1)
    np.testing.assert_allclose(got, np.stack([verts[:, 0], -verts[:, 2], verts[:, 1]], 1) * 1e-3, atol=1e-7)
    np.testing.assert_array_equal(zf, faces)
    # z-up: the face looks along −y (Blender's front view) and the top of the head is at +z
    lm = closed.landmark_idx.numpy()
    assert got[lm[30], 1] < got[:, 1].mean() and got[lm[27], 2] > got[lm[8], 2]
    # still right-handed, counter-clockwise outside: the normals in the file are the rotated ones
    n = np.stack([z["nx"], z["ny"], z["nz"]], 1)
    used = np.unique(faces)
    np.testing.assert_allclose(n[used], area_weighted_normals(got, faces)[used], atol=2e-3)
    with pytest.raises(ValueError):
        write_ply(tmp_path / "bad.ply", verts, faces, units="cm")


def test_smooth_normals_in_every_format(closed, tmp_path):
    verts = closed.shape()[0].numpy().astype(np.float64)
    faces = closed.faces.numpy()
    atlas = model_atlas(closed)
    used = np.unique(faces)
    expect = area_weighted_normals(verts, faces)
    tex = np.full((8, 8, 3), 128, np.uint8)
    _, ply, _ = read_ply(write_ply(tmp_path / "f.ply", verts, faces))
    np.testing.assert_allclose(np.stack([ply["nx"], ply["ny"], ply["nz"]], 1)[used], expect[used], atol=2e-3)
    text = write_obj(tmp_path / "f.obj", verts, faces, atlas.uv, atlas.faces_uv, tex)["obj"].read_text()
    vn = np.array([line.split()[1:] for line in text.splitlines() if line.startswith("vn ")], float)
    np.testing.assert_allclose(vn[used], expect[used], atol=2e-3)
    assert "\ns 1\n" in text and " 1/1/1 " not in text.split("\nf ", 1)[0]
    data = write_glb(tmp_path / "f.glb", verts, faces, atlas.uv, atlas.faces_uv, tex).read_bytes()
    doc = json.loads(data[20:20 + struct.unpack("<I", data[12:16])[0]])
    assert "NORMAL" in doc["meshes"][0]["primitives"][0]["attributes"]
    glb = next(iter(trimesh.load(tmp_path / "f.glb").geometry.values()))
    # one normal per position (split only at UV seams), equal to the smooth normal there
    from scipy.spatial import cKDTree

    _, idx = cKDTree(verts[used]).query(np.asarray(glb.vertices))
    np.testing.assert_allclose(glb.vertex_normals, expect[used][idx], atol=2e-3)


# ---------------------------------------------------------------------------------------------
# the reconstruction folder: PLY colours from the texture, overlay, comparison
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def written(head, tmp_path_factory):
    scene = Scene(head)
    out = tmp_path_factory.mktemp("rec") / "face1"
    write_reconstruction(out, photo=scene.photo, aligned=aligned_for(scene), params=scene.params,
                         face_model_head=head, camera=scene.camera, texture_size=512)
    return scene, out


def test_ply_colours_are_the_texture(written):
    """face.ply's vertex colours are what a viewer shows on face.obj: trimesh's own texture
    lookup at each vertex's UV (matched by position; the OBJ splits vertices at UV seams)."""
    _, out = written
    ply = trimesh.load(out / "face.ply", process=False)
    obj = trimesh.load(out / "face.obj", process=False)
    sampled = obj.visual.to_color().vertex_colors[:, :3].astype(np.float64)
    from scipy.spatial import cKDTree

    d, idx = cKDTree(ply.vertices).query(obj.vertices)
    assert np.percentile(d, 99) < 1e-6
    diff = np.abs(ply.visual.vertex_colors[idx, :3].astype(np.float64) - sampled).max(1)
    # vertices on a UV seam have one colour in the PLY but two places in the texture
    single = np.bincount(idx, minlength=len(ply.vertices))[idx] == 1
    print(f"PLY colour vs texture at the vertex (0-255): mean {diff.mean():.2f}, p95 {np.percentile(diff, 95):.1f}; "
          f"off seams mean {diff[single].mean():.2f}, p95 {np.percentile(diff[single], 95):.1f}")
    assert diff.mean() < 3.0 and np.percentile(diff[single], 95) < 8
    header = (out / "face.ply").read_bytes()[:400].decode("ascii", "replace")
    assert "comment facerecon: units m, +y up" in header and "property float nx" in header


def test_overlay_draws_only_the_face_with_a_soft_edge(head, closed):
    """Only pixels of the narrow face region (brows to chin, eyes) change — no scalp over the
    hair, no neck over the collar — and the blend fades in from that region's edge."""
    scene = Scene(head)
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, scene.photo.shape, dtype=np.uint8)
    faces = region_faces(closed, "narrow")
    out = overlay(photo, closed, scene.params, scene.M_inv, scene.camera, faces=faces, landmarks=False)
    mask_of = _photo_mask(closed, scene)

    import cv2

    narrow = mask_of(faces)
    whole = mask_of(closed.faces.numpy())
    changed = np.abs(out.astype(int) - photo).max(-1) > 0
    near = cv2.dilate(narrow.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert changed.sum() > 5000 and not (changed & ~near).any()
    assert (whole & ~near).sum() > 5000  # there was head (scalp, ears, neck) left undrawn
    inside = cv2.distanceTransform(narrow.astype(np.uint8), cv2.DIST_L2, 3)
    delta = np.abs(out.astype(float) - photo).mean(-1)
    assert delta[(inside > 0) & (inside <= 2)].mean() < 0.35 * delta[inside > 12].mean()


def _photo_mask(closed, scene):
    """A function: triangles (F,3) of ``closed`` -> (H,W) bool, where they cover the scene's photo."""
    posed = posed_mesh(closed, scene.params)
    vc = torch.from_numpy(posed.verts_cam)[None]
    render = Renderer(scene.camera.scaled(448))
    px, py = scene.pad
    h, w = scene.photo.shape[:2]

    def mask_of(f) -> np.ndarray:
        m = np.zeros((h, w), bool)
        m[py:py + 448, px:px + 448] = render(vc, torch.as_tensor(f), torch.ones_like(vc)).mask[0, 0].numpy() > 0
        return m

    return mask_of


def test_overlay_png_shows_only_the_face(written, closed):
    """overlay.png changes the photo only over the narrow face (and the landmark dots on it):
    the scalp over the hair and the neck over the collar are left as they were."""
    import cv2

    scene, out = written
    over = cv2.cvtColor(cv2.imread(str(out / "overlay.png")), cv2.COLOR_BGR2RGB)
    mask_of = _photo_mask(closed, scene)

    narrow = cv2.dilate(mask_of(region_faces(closed, "narrow")).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    whole = mask_of(closed.faces.numpy())
    changed = np.abs(over.astype(int) - scene.photo).max(-1) > 0
    assert changed.sum() > 5000 and not (changed & ~narrow).any()
    assert (whole & ~narrow).sum() > 5000


def test_compare_image(written):
    scene, out = written
    import cv2

    img = cv2.cvtColor(cv2.imread(str(out / "compare.png")), cv2.COLOR_BGR2RGB)
    assert img.shape == (512, 3 * 512 + 8, 3)
    photo_p, model_p, over_p = img[:, :512], img[:, 516:1028], img[:, 1032:]
    assert (img[:, 512:516] == 255).all() and (img[:, 1028:1032] == 255).all()
    # the model on grey: grey at the bottom corners, the head in the middle
    assert (model_p[-5:, :5] == (96, 96, 96)).all() and np.abs(model_p[256, 256].astype(int) - 96).max() > 20
    # the overlay panel is the photo panel but for the face in the middle
    diff = np.abs(over_p.astype(int) - photo_p).max(-1) > 8
    assert diff[160:352, 160:352].mean() > 0.5 and diff[40:80].mean() < 0.02 and diff[-40:].mean() < 0.02


def test_compare_overlay_stays_on_the_photo(head):
    """A photo cut through the face (its top third gone): the overlay panel blends the face only
    where there is photo, and beyond the photo's edge it is the photo panel's grey, as the model
    panel is; below the cut the face is drawn as before."""
    from facerecon.export.overlay import PANEL_BACKGROUND, compare_image
    from facerecon.export.photo import project_to_photo

    scene = Scene(head)
    cut = 200  # photo rows kept from here down; the face spans rows ~120-420 of the 568-row photo
    photo = np.ascontiguousarray(scene.photo[cut:])
    M_inv = scene.M_inv - np.array([[0, 0, 0], [0, 0, cut]], np.float64)
    inner = np.full((68, 2), 300.0)  # landmarks drawn inside the photo, away from the check
    img = compare_image(photo, head, scene.params, M_inv, scene.camera, fitted_landmarks=inner, labels=False)
    photo_p, over_p = img[:, :512].astype(int), img[:, 1032:].astype(int)
    grey = (photo_p == PANEL_BACKGROUND).all(-1)
    # the panel's rows above the photo: grey in the photo panel, and now in the overlay too
    rows = np.where(grey.all(1))[0]
    assert len(rows) > 40
    above = rows[rows < 256]
    face_cols = slice(150, 362)
    assert (over_p[above][:, face_cols] == PANEL_BACKGROUND).all()
    # the face still drawn on the photo below the cut
    below = slice(above.max() + 40, above.max() + 140)
    assert (np.abs(over_p[below, face_cols] - photo_p[below, face_cols]).max(-1) > 8).mean() > 0.5
    # (the mesh does project above the cut: otherwise this checks nothing)
    used = torch.as_tensor(posed_mesh(head, scene.params, scene.camera).verts_cam, dtype=torch.float32)[None]
    xy, _ = project_to_photo(used, scene.camera, M_inv)
    assert (xy[0, :, 1] < -20).sum() > 1000
