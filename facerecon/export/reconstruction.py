"""Everything ``facerecon reconstruct`` writes for one face, into one folder:

===================  ===============================================================
``face.obj``         textured mesh (+ ``face.mtl``, ``face_texture.png``), opens in Blender
``face.ply``         binary PLY, smooth normals, vertex colours read from the texture
``face_neutral.ply`` the same face without expression (identity only), same colours: what
                     evaluation protocols (neutral scans) and avatar rigs want
``face.glb``         binary glTF with the texture embedded (node scale 0.001: glTF is in m)
``overlay.png``      the shaded fit over the original photo (face and eyes only), landmarks drawn
``compare.png``      photo | exported model | overlay, side by side, cut to the face
``params.json``      every coefficient by name, pose, light, camera, face model, texture, conventions
``landmarks.json``   68 points: detected and fitted in photo pixels, 3D in the mesh (mm)
===================  ===============================================================

The mesh is ICT's head closed from inside (:func:`~facerecon.export.headmesh.export_model`:
mouth and eye sockets, teeth), in model space: head upright (+y), facing +z, neutral pose
(identity + expression; the fitted rotation and translation are in ``params.json``); OBJ and
PLY in ``units`` (default metres), GLB in metres through its root node. The texture is the
photo where it saw the face, completed by symmetry and the photo's skin colour elsewhere, with
painted eyes (:mod:`facerecon.export.texture`). All files are staged and appear together: a
failure leaves the folder as it was.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

import facerecon
from facerecon.atomic import AtomicFiles
from facerecon.export.atlas import model_atlas
from facerecon.export.headmesh import export_model
from facerecon.export.mesh import UNITS, encode_png, frame_comment, write_glb, write_obj, write_ply
from facerecon.export.overlay import compare_image, overlay
from facerecon.export.photo import posed_mesh, to_photo_np
from facerecon.export.texture import bake_texture_maps, vertex_colors_from_texture
from facerecon.params import PARTS, FaceParams
from facerecon.render.camera import Camera, euler_to_matrix

#: Output file names inside the folder.
FILES = {
    "obj": "face.obj", "mtl": "face.mtl", "texture": "face_texture.png", "ply": "face.ply",
    "ply_neutral": "face_neutral.ply",
    "glb": "face.glb", "overlay": "overlay.png", "compare": "compare.png", "params": "params.json",
    "landmarks": "landmarks.json",
}

#: Names of the 9 SH irradiance coefficients, in :func:`facerecon.render.sh_basis` order.
SH_NAMES = ("sh0_1", "sh1_y", "sh2_z", "sh3_x", "sh4_xy", "sh5_yz", "sh6_3zz-1", "sh7_xz", "sh8_xx-yy")

CONVENTIONS = {
    "model_space": "right-handed, millimetres; +x to the subject's left (image right in a frontal view), "
                   "+y up, +z out of the face towards the viewer",
    "meshes": "face.obj/face.ply/face.glb hold model-space vertices in the neutral pose "
              "(identity + expression, no rotation or translation); face.obj/face.ply are written in "
              "mesh_units (see units.meshes) with +y up; face.glb stores mm under a root node scaled by 0.001 "
              "because glTF's unit is the metre",
    "uv": "OBJ convention: u right, v up, (0,0) = bottom-left corner of face_texture.png",
    "camera_space": "camera at the origin looking down -z, +x right, +y up; v_cam = R(angles) v + translation",
    "rotation": "R = Rz(roll) Ry(yaw) Rx(pitch); positive yaw turns the face to its left",
    "crop_pixels": "224x224 aligned crop, centre of the top-left pixel at (0,0): "
                   "u = (size-1)/2 + focal x/(-z), v = (size-1)/2 - focal y/(-z)",
    "photo_pixels": "x right, y down, centre of the top-left pixel at (0,0) (OpenCV); "
                    "photo = crop_to_photo @ [u, v, 1]",
    "color": "albedo and shading act on the photo's RGB values in [0,1] (no gamma conversion)",
    "shading": "colour = albedo * sum_k gamma_k H_k(n_cam), H = 3-band SH irradiance basis with H_0 = 1",
}


def _num(x: Any) -> Any:
    """Plain JSON numbers: float32 values written with their shortest exact repr."""
    a = np.asarray(x)
    if a.ndim == 0:
        return float(str(np.float32(a))) if a.dtype.kind == "f" else a.item()
    return [_num(v) for v in a]


def _named(names: list[str], values: np.ndarray) -> dict[str, float]:
    if len(names) != len(values):
        raise ValueError(f"{len(values)} values for {len(names)} names")
    return {n: _num(v) for n, v in zip(names, values)}


def light_names(n: int) -> list[str]:
    """Names of ``n`` = 9 (monochrome) or 27 (RGB, per channel) SH light coefficients."""
    if n == 9:
        return list(SH_NAMES)
    if n == 27:
        return [f"{c}_{s}" for c in "rgb" for s in SH_NAMES]
    return [f"light_{i:03d}" for i in range(n)]


def params_document(params: FaceParams, model, camera: Camera, *, aligned=None, photo_shape=None,
                    source_path: str | os.PathLike | None = None, extra: dict | None = None) -> dict:
    """The content of ``params.json`` for one face (see :func:`write_reconstruction`)."""
    p = params.map(lambda t: t.detach().float().cpu())
    ang = p.angles[0].numpy().astype(np.float64)
    doc: dict[str, Any] = {
        "format": "facerecon.params",
        "format_version": 1,
        "facerecon_version": facerecon.__version__,
        "face_model": {
            "name": model.name,
            "source_sha256": model.source_sha256,
            "exported_region": model.region,
            "vertices": int(model.n_vertices),
            "triangles": int(len(model.faces)),
        },
        "units": {"shape": "mm", "translation": "mm", "angles": "radians (angles_deg: degrees)",
                  "focal": "pixels of the crop", "albedo": "RGB in [0,1]"},
        "conventions": CONVENTIONS,
        "identity": _named([f"identity_{i:03d}" for i in range(p.alpha.shape[1])], p.alpha[0].numpy()),
        "expression": _named(list(model.expression_names)[: p.beta.shape[1]], p.beta[0].numpy()),
        "albedo": _named([f"albedo_{i:03d}" for i in range(p.delta.shape[1])], p.delta[0].numpy()),
        "light": {
            "model": "spherical harmonics, 3 bands, " + ("RGB" if p.gamma.shape[1] == 27 else "monochromatic"),
            "coefficients": _named(light_names(p.gamma.shape[1]), p.gamma[0].numpy()),
        },
        "pose": {
            "angles_rad": {k: _num(v) for k, v in zip(("pitch", "yaw", "roll"), ang)},
            "angles_deg": {k: _num(math.degrees(v)) for k, v in zip(("pitch", "yaw", "roll"), ang)},
            "translation_mm": {k: _num(v) for k, v in zip("xyz", p.trans[0].numpy())},
            "rotation_matrix": [_num(r) for r in euler_to_matrix(p.angles.double())[0].numpy()],
        },
        "camera": {"model": "pinhole, principal point at the crop centre", "focal_px": float(camera.focal),
                   "size_px": int(camera.size), "near_mm": float(camera.near)},
        "vector": {"layout": [[name, int(getattr(p, name).shape[1])] for name in PARTS],
                   "values": _num(p.to_vector()[0].numpy())},
    }
    if aligned is not None:
        focal_photo = getattr(aligned, "focal_photo", None)
        doc["camera"]["photo_focal_px"] = None if focal_photo is None else _num(float(focal_photo))
        doc["camera"]["focal_from"] = "default (a face about 1 m away)" if focal_photo is None else "the photo's lens"
        doc["crop_to_photo"] = [_num(r) for r in np.asarray(aligned.M_inv, dtype=np.float64)]
        doc["photo_to_crop"] = [_num(r) for r in np.asarray(aligned.M, dtype=np.float64)]
    if photo_shape is not None or source_path is not None:
        doc["photo"] = {"path": None if source_path is None else str(source_path)}
        if photo_shape is not None:
            doc["photo"].update(width=int(photo_shape[1]), height=int(photo_shape[0]))
    if extra:
        doc["extra"] = extra
    return doc


def params_from_document(doc: dict) -> FaceParams:
    """Read :class:`FaceParams` (batch 1) back from a ``params.json`` document."""
    import torch

    vec = torch.tensor(doc["vector"]["values"], dtype=torch.float32)[None]
    return FaceParams.from_vector(vec, {name: int(n) for name, n in doc["vector"]["layout"]})


def _json_bytes(doc: dict) -> bytes:
    return (json.dumps(doc, indent=1, ensure_ascii=False, default=_json_default) + "\n").encode("utf-8")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.generic, np.ndarray)):
        return _num(o)
    if hasattr(o, "detach"):
        return _num(o.detach().cpu().numpy())
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def region_faces(model, region: str = "fit") -> np.ndarray:
    """The triangles of ``model`` whose vertices all belong to another named region of the same
    face model (e.g. the face and eyes of the "head" mesh, without scalp and neck)."""
    from facerecon.facemodel.model import region_vertex_ids

    ids = region_vertex_ids(region)
    faces = model.faces.detach().cpu().numpy()
    if ids is None:
        return faces
    keep = np.isin(np.asarray(model.vertex_ids)[faces], ids).all(1)
    return faces[keep]


def neutral_mesh(model, params: FaceParams) -> np.ndarray:
    """(V,3) float32 model-space vertices, mm, of the fitted identity without expression (β = 0)."""
    import torch

    with torch.no_grad():
        return model.shape(params.alpha.to(model.mean.device))[0].float().cpu().numpy()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def write_reconstruction(out_dir: str | os.PathLike, *, photo: np.ndarray, aligned, params: FaceParams,
                         face_model_head, camera: Camera | None = None, landmarks_photo: np.ndarray | None = None,
                         source_path: str | os.PathLike | None = None, extra: dict | None = None,
                         texture_size: int = 1024, fitted_landmarks_photo_px: np.ndarray | None = None,
                         overlay_region: str | None = "narrow", units: str = "m", up: str = "y",
                         mesh_region: str | None = "export") -> dict[str, Path]:
    """Write every output for one fitted face into ``out_dir`` (created if missing).

    Args:
        out_dir: the folder; existing files of the same names are replaced (atomically).
        photo: (H,W,3) uint8 RGB, the original photo.
        aligned: its :class:`~facerecon.imageio.align.AlignedFace`, or anything else with the
            2×3 matrices ``M`` (photo→crop) and ``M_inv`` (crop→photo), e.g. a ``PreparedFace``.
        params: the fitted :class:`FaceParams`, batch 1.
        face_model_head: the fitted face model (e.g. the "head" region); the mesh written is its
            ``mesh_region`` (:func:`~facerecon.export.headmesh.export_model`).
        camera: the camera of the fit (crop pixels), default ``Camera()``.
        landmarks_photo: (68,2) detected landmarks in photo pixels (optional).
        source_path: where the photo came from (recorded; never written to).
        extra: JSON-serialisable details to record under ``"extra"`` (losses, timings, …).
        texture_size: side of ``face_texture.png`` in texels.
        fitted_landmarks_photo_px: (68,2) the fit's own landmarks (photo pixels), recorded in
            landmarks.json and drawn in the overlay; default: the exported model's 68 landmarks
            projected with the forward model's moving jaw contour.
        overlay_region: the face-model region drawn in ``overlay.png`` and ``compare.png``
            ("narrow": the face from brows to chin, and the eyes; "fit": with ears and forehead;
            None: the whole exported mesh).
        units: length unit of face.obj and face.ply, "m" (the default: Blender, three.js and
            <model-viewer> read metres; MeshLab has no units) or "mm" (the model's own numbers).
        up: up axis of face.obj and face.ply: "y" (the model's, as glTF, three.js and MeshLab
            expect; Blender's OBJ importer converts it) or "z" (Blender's frame, for its PLY
            importer, which converts nothing by default).
        mesh_region: the face-model region written as the mesh (default "export": the head
            closed from inside); None: ``face_model_head`` itself.

    Returns:
        {key: path} for the keys of :data:`FILES`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / name for k, name in FILES.items()}
    if source_path is not None:
        src = Path(source_path)
        for p in paths.values():
            if _same_file(p, src):
                raise ValueError(f"refusing to overwrite the input file {src} with an output")
    if units not in UNITS:
        raise ValueError(f"units must be one of {', '.join(UNITS)}, got {units!r}")
    camera = camera or Camera()
    photo = np.asarray(photo)
    model = face_model_head if mesh_region is None else export_model(face_model_head, mesh_region)
    params = params.map(lambda t: t.detach().cpu())
    M_inv = np.asarray(aligned.M_inv, dtype=np.float64)

    posed = posed_mesh(model, params, camera)
    atlas = model_atlas(model)
    bake = bake_texture_maps(model, params, photo, M_inv, camera, size=texture_size, atlas=atlas, posed=posed)
    faces = model.faces.detach().cpu().numpy()
    ply_colors = vertex_colors_from_texture(bake.texture, atlas.uv, atlas.faces_uv, faces, model.n_vertices)

    lmk_idx = model.landmark_idx.detach().cpu().numpy()
    fitted = (to_photo_np(posed.landmarks_crop, M_inv) if fitted_landmarks_photo_px is None
              else np.asarray(fitted_landmarks_photo_px, dtype=np.float64).reshape(68, 2))
    detected = None if landmarks_photo is None else np.asarray(landmarks_photo, dtype=np.float64).reshape(68, 2)
    drawn = None if overlay_region is None else region_faces(model, overlay_region)
    over = overlay(photo, model, params, M_inv, camera, faces=drawn, detected_landmarks=detected,
                   fitted_landmarks=fitted, posed=posed)
    # the model panel shows the textured mesh (colours read from the texture), lit from the
    # camera a little so that its shape shows
    facing = np.clip(-(posed.normals_cam * posed.verts_cam).sum(1)
                     / np.maximum(np.linalg.norm(posed.verts_cam, axis=1), 1e-9), 0.0, 1.0)
    compare = compare_image(photo, model, params, M_inv, camera, posed=posed, overlay_faces=drawn,
                            detected_landmarks=detected, fitted_landmarks=fitted,
                            model_colors=ply_colors * (0.7 + 0.3 * facing)[:, None])

    pdoc = params_document(params, model, camera, aligned=aligned, photo_shape=photo.shape,
                           source_path=source_path, extra=extra)
    pdoc["units"]["meshes"] = {"obj_ply": units, "glb": "m (mm under a root node scaled by 0.001)",
                               "obj_ply_frame": frame_comment(units, up).removeprefix("facerecon: ")}
    pdoc["texture"] = {
        "file": FILES["texture"], "size_px": int(texture_size),
        "photo_pixels_per_texel": _num(bake.photo_scale),
        "photo_fraction": _num(float(bake.photo_weight[bake.covered].mean()) if bake.covered.any() else 0.0),
        "mirrored_fraction": _num(bake.completed_fraction),
        "skin_rgb": None if bake.skin_color is None else _num(bake.skin_color),
        "iris_rgb": None if bake.iris_color is None else _num(bake.iris_color),
        "iris_from_photo": bool(bake.iris_from_photo),
        "model_color_gain_rgb": _num(bake.color_gain),
    }
    ldoc: dict[str, Any] = {
        "format": "facerecon.landmarks",
        "format_version": 1,
        "scheme": "iBUG 300-W 68 points, 0-based",
        "units": {"photo_px": "pixels of the original photo", "model_mm": "mm"},
        "conventions": {"photo_px": CONVENTIONS["photo_pixels"],
                        "model_mm": f"the face.obj / face.ply vertices in mm (the files hold them in {units}, "
                                    f"{'+y' if up == 'y' else '+z'} up): " + CONVENTIONS["model_space"]},
        "photo": pdoc.get("photo"),
        "detected_photo_px": None if detected is None else _num(detected),
        "detected_eyes_completed": bool(getattr(aligned, "eyes_completed", False)),
        "fitted_photo_px": _num(fitted),
        "model_mm": _num(posed.verts[lmk_idx]),
        "mesh_vertex_index": [int(i) for i in lmk_idx],
    }
    if detected is not None:
        err = np.linalg.norm(detected - fitted, axis=1)
        ldoc["fit_error_px"] = {"mean": _num(err.mean()), "per_point": _num(err)}

    written: dict[str, Path] = {}
    png = encode_png(bake.texture)
    with AtomicFiles() as files:
        written.update(write_obj(paths["obj"], posed.verts, faces, atlas.uv, atlas.faces_uv, bake.texture,
                                 normals=posed.normals, files=files, texture_png=png, units=units, up=up))
        written["ply"] = write_ply(paths["ply"], posed.verts, faces, ply_colors, normals=posed.normals, files=files,
                                   units=units, up=up)
        neutral = neutral_mesh(model, params)
        written["ply_neutral"] = write_ply(paths["ply_neutral"], neutral, faces, ply_colors, files=files,
                                           units=units, up=up)
        written["glb"] = write_glb(paths["glb"], posed.verts, faces, atlas.uv, atlas.faces_uv, bake.texture,
                                   normals=posed.normals, files=files, texture_png=png)
        written["overlay"] = files.write_bytes(paths["overlay"], encode_png(over))
        written["compare"] = files.write_bytes(paths["compare"], encode_png(compare))
        written["params"] = files.write_bytes(paths["params"], _json_bytes(pdoc))
        written["landmarks"] = files.write_bytes(paths["landmarks"], _json_bytes(ldoc))
    return written


__all__ = ["FILES", "SH_NAMES", "CONVENTIONS", "light_names", "params_document", "params_from_document",
           "region_faces", "neutral_mesh", "write_reconstruction"]
