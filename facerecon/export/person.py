"""Everything a multi-image reconstruction writes for one person, into one folder:

``face.obj``/``face.mtl``/``face_texture.png``, ``face.ply``, ``face.glb`` — the person's neutral
face (aggregated identity, no expression) with a texture fused from all their photos;
``params.json`` — the person's coefficients; ``landmarks.json`` — the 68 landmarks on the mesh
(mm); ``preview.png`` — the textured face alone, from the front and turned 35°;
``overlays/<photo>.png`` — the person's face posed, lit and expressed as in each photo, over it;
``members.json`` — which photos formed the face, with each photo's parameters, weight and
quality figures. All files are staged and appear together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facerecon.atomic import AtomicFiles
from facerecon.export.atlas import model_atlas
from facerecon.export.mesh import encode_png, write_glb, write_obj, write_ply
from facerecon.export.overlay import model_views, overlay
from facerecon.export.photo import posed_mesh
from facerecon.export.reconstruction import _json_bytes, _num, params_document, region_faces
from facerecon.export.headmesh import export_model
from facerecon.export.texture import bake_texture_multi, sample_photo, vertex_colors_from_texture
from facerecon.params import FaceParams
from facerecon.render.camera import Camera


@dataclass
class MemberPhoto:
    """One photo of the person, as the writer needs it."""

    name: str
    """Output name of its overlay (no suffix, no folders)."""
    photo: np.ndarray
    """(H,W,3) uint8 RGB."""
    M_inv: np.ndarray
    """(2,3) crop -> photo matrix of its aligned face."""
    params: FaceParams
    """Batch 1: the person's α, δ with this photo's pose, expression and light."""
    weight: float
    """Its weight in the aggregate (texture fusion uses it too)."""
    record: dict
    """JSON-able facts for ``members.json`` (source path, quality, own fit, landmarks)."""
    landmarks_photo: np.ndarray | None = None
    """(68,2) detected landmarks, photo pixels (drawn in the overlay)."""
    camera: Camera | None = None
    """The camera its crop was fitted through (None: the writer's ``camera``)."""


def member_photos(person) -> list[MemberPhoto]:
    """The writer's view of the photos of a person: anything shaped like
    :class:`facerecon.pipeline.PersonReconstruction` (``members`` with ``source``, ``photo``,
    ``prepared``, ``params``, ``losses``, ``landmarks_fit``; ``qualities``, ``member_params``,
    ``weights``). Overlay names are the photos' stems, made unique."""
    seen: dict[str, int] = {}
    out = []
    for i, m in enumerate(person.members):
        stem = Path(m.source).stem if m.source else f"photo_{i + 1:02d}"
        seen[stem] = seen.get(stem, 0) + 1
        name = stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"
        record = {"source": m.source, "quality": person.qualities[i].as_dict(),
                  "own_fit": {"vector": m.params.to_vector()[0].tolist(), "losses": m.losses},
                  "landmarks_detected_photo_px": np.asarray(m.prepared.landmarks_photo).round(3).tolist(),
                  "landmarks_fitted_photo_px": np.asarray(m.landmarks_fit).round(3).tolist(),
                  "person_params_vector": person.member_params[i].to_vector()[0].tolist()}
        out.append(MemberPhoto(name, m.photo, np.asarray(m.prepared.M_inv), person.member_params[i],
                               float(person.weights[i]), record, np.asarray(m.prepared.landmarks_photo),
                               getattr(m, "camera", None)))
    return out


def fuse_textures(model, members: list[MemberPhoto], camera: Camera, size: int, atlas=None):
    """One texture from every photo (:func:`~facerecon.export.texture.bake_texture_multi`: each
    texel from the photos that see it most squarely, colour-matched, the rest completed through
    the face's symmetry; each photo through its own camera where it has one, else ``camera``).
    Returns the bake and figures (share of texels seen by 0, 1, 2+ photos)."""
    atlas = atlas or model_atlas(model)
    cams = [m.camera or camera for m in members]
    samples = [sample_photo(model, m.params, m.photo, m.M_inv, c, size=size, atlas=atlas)
               for m, c in zip(members, cams)]
    seen = sum((smp.weight > 0.5).astype(np.int64) for smp in samples)  # per covered texel, before evening out
    bake = bake_texture_multi(model, [m.params for m in members], [m.photo for m in members],
                              [m.M_inv for m in members], cams, size=size, atlas=atlas, samples=samples)
    figures = {"texels_seen_by_no_photo": _num(float((seen == 0).mean())),
               "texels_seen_by_one_photo": _num(float((seen == 1).mean())),
               "texels_seen_by_several_photos": _num(float((seen >= 2).mean()))}
    return bake, figures


def write_person(out_dir: str | os.PathLike, *, person: FaceParams, members: list[MemberPhoto], face_model_head,
                 camera: Camera | None = None, method: str = "mean", extra: dict | None = None,
                 texture_size: int = 1024, overlay_region: str | None = "narrow", units: str = "m",
                 up: str = "y", mesh_region: str | None = "export") -> dict[str, Path]:
    """Write one person's face and its records into ``out_dir`` (created if missing).

    ``person`` (batch 1) holds the aggregated identity and albedo; the mesh is written neutral
    (no expression) in model space, in ``units`` with ``up`` as for
    :func:`~facerecon.export.reconstruction.write_reconstruction` (the closed ``mesh_region``).
    Returns {key: path} for every file written.
    """
    out = Path(out_dir)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    camera = camera or Camera()
    model = face_model_head if mesh_region is None else export_model(face_model_head, mesh_region)
    person = person.map(lambda t: t.detach().cpu())
    neutral = FaceParams(person.alpha, 0 * person.beta, person.delta, person.gamma, person.angles, person.trans)
    posed = posed_mesh(model, neutral, camera)
    atlas = model_atlas(model)
    bake, tex_figures = fuse_textures(model, members, camera, texture_size, atlas)
    texture = bake.texture
    faces = model.faces.detach().cpu().numpy()
    ply_colors = vertex_colors_from_texture(texture, atlas.uv, atlas.faces_uv, faces, model.n_vertices)
    lmk_idx = model.landmark_idx.detach().cpu().numpy()
    faces_drawn = None if overlay_region is None else region_faces(model, overlay_region)
    overlays = {m.name: overlay(m.photo, model, m.params, m.M_inv, m.camera or camera, faces=faces_drawn,
                                detected_landmarks=m.landmarks_photo) for m in members}
    preview = model_views(posed.verts, faces, ply_colors)

    pdoc = params_document(neutral, model, camera, extra={"aggregate": method, "photos": len(members),
                                                          **(extra or {})})
    pdoc["units"]["meshes"] = {"obj_ply": units, "glb": "m (mm under a root node scaled by 0.001)",
                               "up": f"+{up}"}
    pdoc["texture"] = {"file": "face_texture.png", "size_px": int(texture_size), "fused_from_photos": len(members),
                       "mirrored_fraction": _num(bake.completed_fraction), **tex_figures}
    ldoc: dict[str, Any] = {
        "format": "facerecon.landmarks", "format_version": 1, "scheme": "iBUG 300-W 68 points, 0-based",
        "units": {"model_mm": "mm"}, "model_mm": _num(posed.verts[lmk_idx]),
        "mesh_vertex_index": [int(i) for i in lmk_idx],
        "per_photo": "members.json holds each photo's detected and fitted landmarks in its pixels",
    }
    mdoc = {"format": "facerecon.members", "format_version": 1, "aggregate": method,
            "members": [m.record | {"weight": _num(m.weight), "overlay": f"overlays/{m.name}.png"} for m in members],
            **({"details": extra} if extra else {})}
    written: dict[str, Path] = {}
    png = encode_png(texture)
    with AtomicFiles() as files:
        written.update(write_obj(out / "face.obj", posed.verts, faces, atlas.uv, atlas.faces_uv, texture,
                                 normals=posed.normals, files=files, texture_png=png, units=units, up=up))
        written["ply"] = write_ply(out / "face.ply", posed.verts, faces, ply_colors, normals=posed.normals,
                                   files=files, units=units, up=up)
        written["glb"] = write_glb(out / "face.glb", posed.verts, faces, atlas.uv, atlas.faces_uv, texture,
                                   normals=posed.normals, files=files, texture_png=png)
        written["params"] = files.write_bytes(out / "params.json", _json_bytes(pdoc))
        written["landmarks"] = files.write_bytes(out / "landmarks.json", _json_bytes(ldoc))
        written["members"] = files.write_bytes(out / "members.json", _json_bytes(mdoc))
        written["preview"] = files.write_bytes(out / "preview.png", encode_png(preview))
        for name, img in overlays.items():
            written[f"overlay:{name}"] = files.write_bytes(out / "overlays" / f"{name}.png", encode_png(img))
    return written


__all__ = ["MemberPhoto", "member_photos", "fuse_textures", "write_person"]
