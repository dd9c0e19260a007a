"""The face model reproduces ICT-FaceKit's own files and puts landmarks on the right features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon.facemodel import load_face_model
from facerecon.facemodel.ict import FaceModelSourceError, download_ict, find_source


def raw_vertices(path) -> np.ndarray:
    """Vertices of an OBJ file in mm, parsed independently of facerecon's reader."""
    rows = [line.split()[1:4] for line in path.read_text().splitlines() if line.startswith("v ")]
    return np.asarray(rows, dtype=np.float64) * 10.0


@pytest.fixture(scope="module")
def full_model(ict_archive):
    return load_face_model("full")


def test_mean_is_neutral_mesh_in_mm(full_model, ict_objs):
    ref = raw_vertices(ict_objs / "generic_neutral_mesh.obj")
    assert full_model.mean.shape == (26719, 3)
    np.testing.assert_allclose(full_model.mean.numpy(), ref, atol=1e-4)


@pytest.mark.parametrize("k", [0, 7, 79])
def test_identity_mode_reproduces_obj(full_model, ict_objs, k):
    alpha = torch.zeros(1, full_model.n_id)
    alpha[0, k] = 1.0
    verts = full_model.shape(alpha)[0].numpy()
    ref = raw_vertices(ict_objs / f"identity{k:03d}.obj")
    np.testing.assert_allclose(verts, ref, atol=2e-4)  # float32 mm


@pytest.mark.parametrize("name", ["jawOpen", "mouthSmile_L"])
def test_blendshape_reproduces_obj(full_model, ict_objs, name):
    beta = torch.zeros(1, full_model.n_exp)
    beta[0, full_model.expression_names.index(name)] = 1.0
    verts = full_model.shape(None, beta)[0].numpy()
    np.testing.assert_allclose(verts, raw_vertices(ict_objs / f"{name}.obj"), atol=2e-4)


def test_sizes_and_regions(face_model, full_model):
    assert (face_model.n_id, face_model.n_exp, face_model.n_tex) == (80, 53, 80)
    assert len(face_model.expression_names) == 53 and "jawOpen" in face_model.expression_names
    face = load_face_model("face")
    assert face.n_vertices == 9409 and face_model.n_vertices == 9409 + 2 * 1570
    # the same landmark vertices in every region, and every triangle index valid
    for m in (face, face_model, full_model):
        assert int(m.faces.max()) < m.n_vertices and int(m.faces.min()) >= 0
        np.testing.assert_allclose(m.mean[m.landmark_idx].numpy(), full_model.mean[full_model.landmark_idx].numpy())
    # a region's shape and albedo are the full model's (checked against ICT's OBJs above) at its
    # vertices, for coefficients that touch every mode
    g = torch.Generator().manual_seed(1)
    alpha, beta, delta = torch.randn(2, 80, generator=g), torch.rand(2, 53, generator=g), torch.randn(2, 80, generator=g)
    ids = torch.as_tensor(face_model.vertex_ids)
    np.testing.assert_allclose(face_model.shape(alpha, beta).numpy(), full_model.shape(alpha, beta)[:, ids].numpy(), atol=1e-3)
    np.testing.assert_allclose(face_model.albedo(delta).numpy(), full_model.albedo(delta)[:, ids].numpy(), atol=1e-5)


def test_landmarks_on_features(face_model):
    lm = face_model.landmarks(face_model.mean[None])[0].numpy()
    assert lm.shape == (68, 3)
    # nose tip (30) is the front-most landmark and on the midline
    assert np.argmax(lm[:, 2]) == 30 and abs(lm[30, 0]) < 1.0
    # outer eye corners (36 right, 45 left) mirror each other; inter-ocular width is human (mm)
    np.testing.assert_allclose(lm[36] * [-1, 1, 1], lm[45], atol=0.5)
    assert 80 < lm[45, 0] - lm[36, 0] < 110
    # eyes above the nose tip, mouth below it, chin (8) lowest
    assert lm[36:48, 1].min() > lm[30, 1] > lm[48:68, 1].max() > lm[8, 1]


def test_batched_shapes_and_devices(face_model):
    g = torch.Generator().manual_seed(0)
    alpha, beta = torch.randn(4, 80, generator=g), torch.rand(4, 53, generator=g)
    v = face_model.shape(alpha, beta)
    assert v.shape == (4, face_model.n_vertices, 3)
    # row b depends only on coefficients b
    np.testing.assert_allclose(v[2].numpy(), face_model.shape(alpha[2:3], beta[2:3])[0].numpy(), atol=1e-4)
    # random identities stay head-sized
    width = v[..., 0].amax(1) - v[..., 0].amin(1)
    assert ((width > 140) & (width < 230)).all()
    assert face_model.landmarks(v).shape == (4, 68, 3)
    assert face_model.albedo(torch.zeros(4, 80)).shape == (4, face_model.n_vertices, 3)


def test_normals_face_outwards(face_model):
    n = face_model.vertex_normals(face_model.mean[None])[0]
    assert torch.allclose(n.norm(dim=-1), torch.ones(len(n)), atol=1e-4)
    tip = int(face_model.landmark_idx[30])
    assert n[tip, 2] > 0.9  # nose tip normal points at the viewer


def test_normals_batched_match_reference(face_model):
    """Area-weighted normals per image of a batch equal a plain per-face accumulation."""
    g = torch.Generator().manual_seed(0)
    verts = face_model.shape(torch.randn(3, 80, generator=g), torch.rand(3, 53, generator=g) * 0.3)
    n = face_model.vertex_normals(verts).numpy()
    f = face_model.faces.numpy()
    for b in range(3):
        v = verts[b].double().numpy()
        fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        ref = np.zeros_like(v)
        for i in range(3):
            np.add.at(ref, f[:, i], fn)
        ref /= np.linalg.norm(ref, axis=1, keepdims=True)
        np.testing.assert_allclose(n[b], ref, atol=1e-4)


def test_albedo_plausible_and_smooth(face_model):
    mean = face_model.albedo()[0]
    assert mean.min() >= 0 and mean.max() <= 1
    skin = mean[face_model.skin_mask]
    assert (skin[:, 0] > skin[:, 1]).all() and (skin[:, 1] > skin[:, 2]).all()  # skin is reddish
    g = torch.Generator().manual_seed(1)
    samples = face_model.albedo(torch.randn(64, 80, generator=g))
    assert ((samples >= 0) & (samples <= 1)).float().mean() > 0.99
    # smooth on the surface: neighbours differ far less than random vertex pairs
    delta = samples - face_model.albedo_mean
    e = face_model.faces[:, :2]
    face_verts = (face_model.faces < 9409).all(1)
    e = e[face_verts]
    edge_diff = (delta[:, e[:, 0]] - delta[:, e[:, 1]]).abs().mean()
    perm = torch.randperm(9409, generator=g)
    rand_diff = (delta[:, :9409] - delta[:, perm]).abs().mean()
    assert edge_diff < 0.1 * rand_diff


def test_skin_region_covers_forehead_cheeks_nose(face_model):
    mask = face_model.skin_mask
    v = face_model.mean
    lm = v[face_model.landmark_idx]
    sk = v[mask]
    assert 500 < int(mask.sum()) < 4000
    assert (sk[:, 1] > lm[17:27, 1].max()).sum() > 100  # forehead
    assert ((sk[:, 1] < lm[40, 1]) & (sk[:, 0] < lm[31, 0])).sum() > 50  # right cheek
    assert ((sk[:, 1] < lm[47, 1]) & (sk[:, 0] > lm[35, 0])).sum() > 50  # left cheek
    assert ((sk[:, 0].abs() < 8) & (sk[:, 1] < lm[27, 1]) & (sk[:, 1] > lm[33, 1])).sum() > 20  # nose
    # never on eyes or mouth
    mouth_box = (sk[:, 1] < lm[48:68, 1].max() + 1) & (sk[:, 1] > lm[48:68, 1].min() - 1) & (sk[:, 0].abs() < lm[54, 0])
    assert not mouth_box.any()


def test_source_order_and_download(tmp_path, monkeypatch):
    """find_source looks, in order, at the explicit path, $FACERECON_ICT, the shared archive and
    last a download; a missing path or $FACERECON_ICT is an error naming it, never a fallback."""
    import facerecon.facemodel.ict as ict

    downloads = []

    def fake_download(*args, **kwargs):  # no network in tests: record the call
        downloads.append((args, kwargs))
        return tmp_path / "downloaded.zip"

    monkeypatch.setattr(ict, "download_ict", fake_download)
    explicit = tmp_path / "explicit.tar.xz"
    explicit.write_bytes(b"x")
    env = tmp_path / "env.zip"
    env.write_bytes(b"y")
    shared = tmp_path / "shared"
    shared_archive = shared / "facemodel" / "ict-facekit-facexmodel.tar.xz"
    shared_archive.parent.mkdir(parents=True)
    shared_archive.write_bytes(b"z")
    monkeypatch.setenv("FACERECON_SHARED", str(shared))  # a shared folder holding the archive

    # 1. the explicit path wins over $FACERECON_ICT and the shared archive
    monkeypatch.setenv("FACERECON_ICT", str(env))
    assert find_source(explicit) == explicit
    assert find_source(str(explicit), allow_download=False) == explicit
    # a missing explicit path raises, naming it, instead of falling back to $FACERECON_ICT
    missing = tmp_path / "nope.zip"
    for allow in (False, True):
        with pytest.raises(FaceModelSourceError, match="nope.zip") as err:
            find_source(missing, allow_download=allow)
        assert str(missing) in str(err.value)
    # 2. $FACERECON_ICT wins over the shared archive; missing, it raises naming it
    assert find_source() == env
    monkeypatch.setenv("FACERECON_ICT", str(tmp_path / "gone.tar.xz"))
    with pytest.raises(FaceModelSourceError, match="gone.tar.xz"):
        find_source()
    # 3. the shared archive beside the checkout, before any download
    monkeypatch.delenv("FACERECON_ICT")
    assert find_source() == shared_archive
    assert find_source(allow_download=False) == shared_archive
    assert downloads == []
    # 4. none of them: a download, or an error when downloads are not allowed
    shared_archive.unlink()
    with pytest.raises(FaceModelSourceError, match="download"):
        find_source(allow_download=False)
    assert downloads == []
    assert find_source() == tmp_path / "downloaded.zip"
    assert len(downloads) == 1


def test_download_ict_writes_atomically(tmp_path):
    src = tmp_path / "src" / "kit.tar.xz"
    src.parent.mkdir()
    src.write_bytes(bytes(range(256)) * 1000)
    dest = tmp_path / "dest"
    got = download_ict(src.as_uri(), dest_dir=dest)
    assert got == dest / "ict-facekit-kit.tar.xz" and got.read_bytes() == src.read_bytes()
    assert not list(dest.glob(".download-*"))  # no temporary left
    src.write_bytes(b"changed")
    assert download_ict(src.as_uri(), dest_dir=dest) == got  # cached: not fetched again
    assert got.stat().st_size == 256_000


def test_building_the_cache_says_so_on_stderr_and_keeps_stdout_for_reports(tmp_path, monkeypatch, capsys):
    """`evaluate landmarks --json` on a fresh machine printed the message into its JSON."""
    from facerecon.facemodel import ict

    monkeypatch.setattr(ict, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(ict, "build_arrays", lambda src: {"mean": np.zeros(3)})
    monkeypatch.setattr(ict, "_source_checksum", lambda src: "0" * 64)
    src = tmp_path / "kit.tar.xz"
    src.write_bytes(b"x")
    out = ict.cached_model_file(src)
    captured = capsys.readouterr()
    assert out.exists() and captured.out == "" and "building the face model cache" in captured.err


def test_a_model_cache_file_is_a_source(tmp_path, monkeypatch, ict_archive):
    """$FACERECON_ICT may name a model cache (.npz) built on another machine: its arrays are
    used as they are (float16 ones as float32), and a foreign or stale file fails naming it."""
    from facerecon.facemodel import ict, model_cache_file

    arrays = ict.read_npz(model_cache_file())
    small = {k: a.astype(np.float16) if k in ("id_basis", "exp_basis") else a for k, a in arrays.items()}
    cache = tmp_path / "carried.npz"
    np.savez(cache, **small)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("FACERECON_ICT", str(cache))
    assert model_cache_file() == cache
    model = load_face_model("narrow")
    assert model.id_basis.dtype == model.mean.dtype == torch.float32
    rounded = arrays["id_basis"].astype(np.float16).astype(np.float32)
    want = np.take(rounded, model.vertex_ids, axis=1).reshape(len(rounded), -1)
    np.testing.assert_array_equal(model.id_basis.numpy(), want)
    np.testing.assert_array_equal(model.mean.numpy(), arrays["mean"][model.vertex_ids])
    assert not list((tmp_path / "xdg").rglob("ict-*.npz"))  # nothing rebuilt
    np.savez(cache, **{**small, "build_version": np.array(ict.BUILD_VERSION - 1)})
    with pytest.raises(FaceModelSourceError, match=f"carried.npz: face model cache of build version {ict.BUILD_VERSION - 1}"):
        load_face_model("narrow")
    np.savez(cache, mean=arrays["mean"])
    with pytest.raises(FaceModelSourceError, match="carried.npz: not a face model cache"):
        load_face_model("narrow")
