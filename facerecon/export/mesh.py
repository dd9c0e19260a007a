"""Mesh files: Wavefront OBJ (+ MTL + PNG texture), binary PLY with vertex colours, binary glTF
(GLB) with an embedded texture.

Conventions for every writer: vertices in millimetres, model space (head upright along +y,
facing +z, right-handed), triangles counter-clockwise seen from outside. UVs follow the OBJ
convention: u right, v *up*, (0, 0) at the bottom-left corner of the texture image, so texel
row ``r`` of an S×S image sits at ``v = 1 − (r + ½)/S``. Every file is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from facerecon.atomic import AtomicFiles
from facerecon.geometry import vertex_normals_np

#: glTF's unit is the metre: GLB files carry the mm vertices under a root node scaled by this.
MM_TO_M = 1e-3


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _as_array(x, dtype, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=dtype)
    if a.ndim != 1 + len(shape_tail) or a.shape[1:] != shape_tail:
        raise ValueError(f"{name} must have shape (N,{','.join(map(str, shape_tail))}), got {a.shape}")
    return a


def split_seams(faces: np.ndarray, faces_uv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One vertex per distinct (position, UV) corner pair, as GPU formats (glTF) need.

    Returns ``vert_src`` (V',) the original vertex of each new vertex, ``uv_src`` (V',) its UV
    index, and the re-indexed ``faces`` (F,3). Vertices on a UV seam are duplicated; all others
    are kept once.
    """
    f = np.asarray(faces, dtype=np.int64)
    fu = np.asarray(faces_uv, dtype=np.int64)
    if f.shape != fu.shape:
        raise ValueError(f"faces {f.shape} and faces_uv {fu.shape} must have the same shape")
    base = int(fu.max(initial=0)) + 1
    uniq, inverse = np.unique(f.ravel() * base + fu.ravel(), return_inverse=True)
    return uniq // base, uniq % base, inverse.reshape(f.shape)


def encode_png(image: np.ndarray, compression: int = 3) -> bytes:
    """PNG bytes of an RGB (H,W,3) or grey (H,W) uint8 image (zlib ``compression`` 0–9)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif img.ndim != 2:
        raise ValueError(f"image must be (H,W,3) RGB or (H,W), got {img.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _fmt_rows(fmt: str, rows: np.ndarray) -> str:
    """``fmt`` (one line with a newline) applied to every row, formatted in C."""
    if len(rows) == 0:
        return ""
    return (fmt * len(rows)) % tuple(rows.ravel().tolist())


@contextmanager
def staging(files: AtomicFiles | None) -> Iterator[AtomicFiles]:
    """``files`` itself (the caller commits it with other files), or a group of its own that is
    committed when the block ends."""
    if files is not None:
        yield files
    else:
        with AtomicFiles() as own:
            yield own


def _texture_name(obj_path: Path) -> str:
    return f"{obj_path.stem}_texture.png"


# ---------------------------------------------------------------------------------------------
# OBJ
# ---------------------------------------------------------------------------------------------
def obj_text(verts: np.ndarray, faces: np.ndarray, normals: np.ndarray, uv: np.ndarray | None,
             faces_uv: np.ndarray | None, mtl_name: str | None, material_name: str,
             object_name: str = "face") -> str:
    """The text of an OBJ file (1-based indices, ``f v/vt/vn``); see :func:`write_obj`."""
    lines = ["# facerecon: units mm, +y up, +z front (model space)\n"]
    if mtl_name:
        lines.append(f"mtllib {mtl_name}\n")
    lines.append(f"o {object_name}\n")
    lines.append(_fmt_rows("v %.5f %.5f %.5f\n", verts))
    if uv is not None:
        lines.append(_fmt_rows("vt %.6f %.6f\n", uv))
    lines.append(_fmt_rows("vn %.5f %.5f %.5f\n", normals))
    if mtl_name:
        lines.append(f"usemtl {material_name}\n")
    lines.append("s 1\n")
    f1 = faces + 1
    if uv is not None:
        t1 = faces_uv + 1
        corners = np.stack([f1, t1, f1], -1).reshape(len(faces), 9)
        lines.append(_fmt_rows("f %d/%d/%d %d/%d/%d %d/%d/%d\n", corners))
    else:
        corners = np.stack([f1, f1], -1).reshape(len(faces), 6)
        lines.append(_fmt_rows("f %d//%d %d//%d %d//%d\n", corners))
    return "".join(lines)


def mtl_text(material_name: str, texture_name: str | None) -> str:
    """A Lambertian MTL material, ``map_Kd`` pointing at ``texture_name`` (relative) if given."""
    lines = [
        "# facerecon material\n",
        f"newmtl {material_name}\n",
        "Ka 1.000 1.000 1.000\n",
        "Kd 1.000 1.000 1.000\n" if texture_name else "Kd 0.800 0.650 0.550\n",
        "Ks 0.000 0.000 0.000\n",
        "Ns 10.0\n",
        "d 1.0\n",
        "illum 1\n",
    ]
    if texture_name:
        lines.append(f"map_Kd {texture_name}\n")
    return "".join(lines)


def write_obj(path: str | os.PathLike, verts, faces, uv=None, faces_uv=None, texture: np.ndarray | None = None,
              *, normals=None, material_name: str = "face", files: AtomicFiles | None = None,
              texture_png: bytes | None = None) -> dict[str, Path]:
    """Write a Wavefront OBJ with vertex normals, plus its material file and texture.

    ``path`` ``X.obj`` gives ``X.obj``, ``X.mtl`` and, with a ``texture``, ``X_texture.png``,
    all in one folder and referenced by bare file name (the folder can be moved). The three files
    appear together or not at all.

    Args:
        verts: (V,3) vertex positions, mm.
        faces: (F,3) vertex indices, counter-clockwise seen from outside.
        uv: (T,2) texture coordinates in [0,1], OBJ convention (v up, origin bottom-left).
        faces_uv: (F,3) indices into ``uv`` (UV seams allowed); default ``faces`` (then T = V).
        texture: (H,W,3) uint8 RGB image, row 0 = top of the texture (v = 1).
        normals: (V,3) unit vertex normals; default area-weighted normals of the mesh.
        material_name: the ``newmtl``/``usemtl`` name.
        files: stage into this :class:`AtomicFiles` group instead (the caller commits it).
        texture_png: ``encode_png(texture)`` if already encoded (saves encoding it twice).

    Returns:
        {"obj": path, "mtl": path, "texture": path (only with a texture)}.
    """
    path = Path(path)
    v = _as_array(verts, np.float64, (3,), "verts")
    f = _as_array(faces, np.int64, (3,), "faces")
    n = vertex_normals_np(v, f) if normals is None else _as_array(normals, np.float64, (3,), "normals")
    if len(n) != len(v):
        raise ValueError("normals must have one row per vertex")
    t = ft = None
    if uv is not None:
        t = _as_array(uv, np.float64, (2,), "uv")
        ft = f if faces_uv is None else _as_array(faces_uv, np.int64, (3,), "faces_uv")
        if ft.shape != f.shape or ft.max(initial=0) >= len(t) or ft.min(initial=0) < 0:
            raise ValueError("faces_uv must be (F,3) indices into uv")
    elif texture is not None:
        raise ValueError("a texture needs uv coordinates")
    if f.max(initial=0) >= len(v) or f.min(initial=0) < 0:
        raise ValueError("faces index outside verts")
    if texture is not None:
        tex = np.asarray(texture)
        if tex.dtype != np.uint8 or tex.ndim != 3 or tex.shape[2] != 3:
            raise ValueError(f"texture must be (H,W,3) uint8, got {tex.dtype} {tex.shape}")
    mtl_path = path.with_suffix(".mtl")
    tex_path = path.with_name(_texture_name(path)) if texture is not None else None
    out: dict[str, Path] = {}
    with staging(files) as group:
        if tex_path is not None:
            out["texture"] = group.write_bytes(tex_path, texture_png or encode_png(texture))
        out["mtl"] = group.write_text(mtl_path, mtl_text(material_name, tex_path.name if tex_path else None))
        out["obj"] = group.write_text(path, obj_text(v, f, n, t, ft, mtl_path.name, material_name, path.stem))
    return out


# ---------------------------------------------------------------------------------------------
# PLY
# ---------------------------------------------------------------------------------------------
def write_ply(path: str | os.PathLike, verts, faces, colors=None, *, normals=None,
              files: AtomicFiles | None = None) -> Path:
    """Write a binary little-endian PLY: positions (mm, float), normals and, if given, vertex
    colours ``colors`` (V,3) RGB in [0,1] (clipped, stored as uint8 with alpha 255).
    ``files``: stage into this group instead of committing at once."""
    import trimesh

    v = _as_array(verts, np.float64, (3,), "verts")
    f = _as_array(faces, np.int64, (3,), "faces")
    n = vertex_normals_np(v, f) if normals is None else _as_array(normals, np.float64, (3,), "normals")
    kwargs = {}
    if colors is not None:
        c = _as_array(colors, np.float64, (3,), "colors")
        if len(c) != len(v):
            raise ValueError("colors must have one row per vertex")
        rgb = np.clip(np.rint(np.nan_to_num(c) * 255.0), 0, 255).astype(np.uint8)
        kwargs["vertex_colors"] = np.concatenate([rgb, np.full((len(v), 1), 255, np.uint8)], 1)
    mesh = trimesh.Trimesh(vertices=v, faces=f, vertex_normals=n, process=False, validate=False, **kwargs)
    data = trimesh.exchange.ply.export_ply(mesh, encoding="binary", vertex_normal=True)
    with staging(files) as group:
        return group.write_bytes(path, data)


# ---------------------------------------------------------------------------------------------
# GLB
# ---------------------------------------------------------------------------------------------
def _glb_pack(doc: dict, blobs: list[bytes]) -> bytes:
    """A GLB container: header, JSON chunk, BIN chunk (``blobs`` laid out by ``doc``)."""
    import json
    import struct

    binary = b"".join(blobs)
    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return b"".join([
        struct.pack("<4sII", b"glTF", 2, total),
        struct.pack("<I4s", len(text), b"JSON"), text,
        struct.pack("<I4s", len(binary), b"BIN\0"), binary,
    ])


def glb_bytes(verts, faces, uv, faces_uv, texture: np.ndarray, *, normals=None, name: str = "face",
              metres: bool = True, texture_png: bytes | None = None) -> bytes:
    """The bytes of a binary glTF 2.0 holding one textured, triangulated mesh; see :func:`write_glb`."""
    v = _as_array(verts, np.float64, (3,), "verts")
    f = _as_array(faces, np.int64, (3,), "faces")
    t = _as_array(uv, np.float64, (2,), "uv")
    ft = _as_array(faces_uv, np.int64, (3,), "faces_uv")
    n = vertex_normals_np(v, f) if normals is None else _as_array(normals, np.float64, (3,), "normals")
    tex = np.asarray(texture)
    if tex.dtype != np.uint8 or tex.ndim != 3 or tex.shape[2] != 3:
        raise ValueError(f"texture must be (H,W,3) uint8, got {tex.dtype} {tex.shape}")
    if ft.shape != f.shape or ft.max(initial=0) >= len(t) or f.max(initial=0) >= len(v):
        raise ValueError("faces/faces_uv index out of range or not row-aligned")
    vsrc, tsrc, fsplit = split_seams(f, ft)
    pos = np.ascontiguousarray(v[vsrc], dtype=np.float32)
    nrm = n[vsrc]
    nrm = np.ascontiguousarray(nrm / np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12), dtype=np.float32)
    tc = np.ascontiguousarray(np.stack([t[tsrc, 0], 1.0 - t[tsrc, 1]], 1), dtype=np.float32)  # glTF: v down
    idx = np.ascontiguousarray(fsplit.ravel(), dtype=np.uint32)
    png = texture_png or encode_png(tex)

    blobs: list[bytes] = []
    views: list[dict] = []
    offset = 0

    def add_view(data: bytes, target: int | None = None) -> int:
        nonlocal offset
        pad = -offset % 4
        if pad:
            blobs.append(b"\0" * pad)
            offset += pad
        view = {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        blobs.append(data)
        offset += len(data)
        views.append(view)
        return len(views) - 1

    FLOAT, UINT = 5126, 5125
    ARRAY, ELEMENTS = 34962, 34963
    accessors = [
        {"bufferView": add_view(pos.tobytes(), ARRAY), "componentType": FLOAT, "count": len(pos), "type": "VEC3",
         "min": pos.min(0).tolist(), "max": pos.max(0).tolist()},
        {"bufferView": add_view(nrm.tobytes(), ARRAY), "componentType": FLOAT, "count": len(nrm), "type": "VEC3"},
        {"bufferView": add_view(tc.tobytes(), ARRAY), "componentType": FLOAT, "count": len(tc), "type": "VEC2"},
        {"bufferView": add_view(idx.tobytes(), ELEMENTS), "componentType": UINT, "count": len(idx), "type": "SCALAR"},
    ]
    image_view = add_view(png)
    node: dict = {"name": name, "mesh": 0}
    if metres:
        node["scale"] = [MM_TO_M] * 3
    doc = {
        "asset": {"version": "2.0", "generator": "facerecon"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [node],
        "meshes": [{"name": name, "primitives": [{
            "attributes": {"POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2}, "indices": 3, "material": 0, "mode": 4}]}],
        "materials": [{"name": name, "pbrMetallicRoughness": {
            "baseColorTexture": {"index": 0}, "metallicFactor": 0.0, "roughnessFactor": 0.9}}],
        "textures": [{"sampler": 0, "source": 0}],
        # linear filtering, trilinear mip-maps, clamp at the edges (the atlas has gutters)
        "samplers": [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}],
        "images": [{"bufferView": image_view, "mimeType": "image/png", "name": f"{name}_texture"}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": offset + (-offset % 4)}],
    }
    return _glb_pack(doc, blobs)


def write_glb(path: str | os.PathLike, verts, faces, uv, faces_uv, texture: np.ndarray, *, normals=None,
              name: str = "face", metres: bool = True, files: AtomicFiles | None = None,
              texture_png: bytes | None = None) -> Path:
    """Write a binary glTF 2.0 (``.glb``) with the texture embedded.

    Vertices are split where UVs have seams (glTF has one UV per vertex). The vertex buffer keeps
    millimetres; because glTF's unit is the metre, the mesh hangs under a node scaled by 0.001
    (``metres=True``), so viewers and Blender show the head at its real size. The material is
    non-metallic PBR with the texture (PNG) as base colour; vertex normals are included. Written
    directly from the glTF 2.0 specification (no trimesh round trip, no PNG re-encoding).

    Args: as :func:`write_obj`; ``uv`` (T,2) OBJ convention (flipped to glTF's on export).
    """
    data = glb_bytes(verts, faces, uv, faces_uv, texture, normals=normals, name=name, metres=metres,
                     texture_png=texture_png)
    with staging(files) as group:
        return group.write_bytes(path, data)


__all__ = [
    "MM_TO_M", "staging", "split_seams", "encode_png", "obj_text", "mtl_text",
    "write_obj", "write_ply", "glb_bytes", "write_glb",
]
