"""The outer surface of the face mesh (facerecon/facemodel/surface.py): ray-cast occlusion finds
vertices no camera sees, and the shipped list of ICT's hidden vertices holds what it says."""

from __future__ import annotations

import numpy as np
import pytest

from facerecon.facemodel.surface import hidden_vertices, occlusion, outer_surface


def _plate(z: float, up: bool, x0: float = 0.0, n: int = 11, size: float = 100.0):
    """A square grid plate at height z, normals +z (``up``) or −z: (verts, faces)."""
    g = np.linspace(0, size, n)
    xx, yy = np.meshgrid(g + x0, g)
    verts = np.c_[xx.ravel(), yy.ravel(), np.full(n * n, z)]
    i = np.arange(n * n).reshape(n, n)
    a, b, c, d = i[:-1, :-1].ravel(), i[:-1, 1:].ravel(), i[1:, :-1].ravel(), i[1:, 1:].ravel()
    faces = np.r_[np.c_[a, b, d], np.c_[a, d, c]]
    return verts, (faces if up else faces[:, ::-1])


def test_occlusion_tells_a_slot_from_open_skin():
    """Two plates 2 mm apart facing each other (a slot, as inside a nostril) and a third plate in the
    open: the slot's middle vertices block every ray (their rays leave within 45° of the normal and
    the slot is 50 times wider than deep), the open plate's none."""
    parts = [_plate(0.0, True), _plate(2.0, False), _plate(0.0, True, x0=300.0)]
    verts = np.concatenate([p[0] for p in parts])
    faces = np.concatenate([p[1] + 121 * k for k, p in enumerate(parts)])
    occ = occlusion(verts, faces, directions=16)
    middle = [60, 121 + 60]                        # the centre vertex of each slot plate
    assert occ[middle].tolist() == [1.0, 1.0]
    assert occ[242:].max() == 0.0                  # the open plate
    assert occlusion(verts, faces, directions=16, subset=np.array(middle + [242 + 60])).tolist() == [1.0, 1.0, 0.0]


def test_outer_surface_drops_hidden_corners_and_orphans():
    faces = np.array([[0, 1, 2], [1, 3, 2], [3, 4, 2]])
    hidden = np.array([False, False, False, True, False])
    kept, new = outer_surface(faces, hidden)
    assert kept.tolist() == [0, 1, 2]              # vertex 4 loses its only triangle
    assert new.tolist() == [[0, 1, 2]]


def test_shipped_hidden_vertices_are_the_insides_of_nostrils_and_lips(ict_archive):
    """The shipped list agrees with a fresh ray cast on a sample; it holds no landmark but the three
    between the closed lips; all lie behind the nose tip, and those within 50 mm of it within 30 mm
    of the midline (nostrils, lips; farther out: the eye corners' folds and the ear canals)."""
    from facerecon.facemodel import load_face_model

    face_model = load_face_model("face")
    hidden = hidden_vertices(face_model.n_vertices)
    assert 500 < hidden.sum() < 900
    lmk = face_model.landmark_idx.numpy()
    assert np.flatnonzero(hidden[lmk]).tolist() == [60, 64, 66]
    mean = face_model.mean.numpy().astype(np.float64)
    rel = mean[hidden] - mean[lmk[30]]
    near = np.linalg.norm(rel, axis=1) < 50
    assert rel[:, 2].max() < 0 and near.sum() > 400 and np.abs(rel[near, 0]).max() < 30
    rng = np.random.default_rng(0)
    sample_hidden = rng.choice(np.flatnonzero(hidden), 30, replace=False)
    sample_open = rng.choice(np.flatnonzero(~hidden), 30, replace=False)
    occ = occlusion(mean, face_model.faces.numpy(), subset=np.r_[sample_hidden, sample_open])
    assert (occ[:30] > 0.9).all() and (occ[30:] <= 0.9).all()
    with pytest.raises(ValueError, match="not 5"):
        hidden_vertices(5)


def test_scoring_mesh_outer_is_the_full_mesh_less_the_hidden_vertices(ict_archive):
    from facerecon.facemodel import load_face_model
    from facerecon.facemodel.surface import scoring_mesh

    face = load_face_model("face")
    verts, faces, lmk = face.mean.numpy(), face.faces.numpy(), face.landmark_idx.numpy()
    full, p_full = scoring_mesh(verts, faces, lmk)
    outer, p_outer = scoring_mesh(verts, faces, lmk, "outer")
    hidden = hidden_vertices(len(verts))
    assert len(full.vertices) == len(verts) and np.array_equal(p_full, verts[lmk].astype(np.float64))
    assert len(outer.vertices) <= len(verts) - hidden.sum()
    # every outer vertex is a non-hidden vertex of the full mesh, at the same place
    hidden_points = {tuple(p) for p in verts[hidden].astype(np.float64)}
    assert not any(tuple(p) in hidden_points for p in np.asarray(outer.vertices))
    assert np.isnan(p_outer).any(axis=1).nonzero()[0].tolist() == [60, 64, 66]
    assert np.array_equal(p_outer[30], p_full[30])
    with pytest.raises(ValueError, match="surface"):
        scoring_mesh(verts, faces, lmk, "inner")
