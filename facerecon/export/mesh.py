"""Mesh files: Wavefront OBJ (+ MTL + PNG texture), binary PLY with vertex colours, binary glTF
(GLB) with an embedded texture.

Conventions for every writer: vertices are *given* in millimetres, model space (head upright
along +y, facing +z, right-handed), triangles counter-clockwise seen from outside, with smooth
(per-vertex) normals. OBJ and PLY are *written* in ``units`` "mm" or "m" (× 0.001; neither format
records units, so the file's first comment line says which) and with ``up`` "y" (as given) or
"z" ((x, y, z) → (x, −z, y): z up, the face towards −y, Blender's own frame). GLB is always y-up
with the mm vertices under a root node scaled by 0.001 (glTF's unit is the metre). UVs follow
the OBJ convention: u right, v *up*, (0, 0) at the bottom-left corner of the texture image, so
texel row ``r`` of an S×S image sits at ``v = 1 − (r + ½)/S``. Every file is written atomically.
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
#: Length units OBJ and PLY files can be written in: file units per millimetre.
UNITS = {"mm": 1.0, "m": MM_TO_M}
#: Up axes OBJ and PLY files can be written with.
UP_AXES = ("y", "z")


def file_frame(verts: np.ndarray, normals: np.ndarray, units: str = "mm", up: str = "y"
               ) -> tuple[np.ndarray, np.ndarray]:
    """Model-space vertices (V,3) mm and unit normals (V,3) in a file's ``units`` ("mm"/"m") and
    ``up`` axis ("y": as given; "z": (x, y, z) → (x, −z, y), a proper rotation about x)."""
    if units not in UNITS:
        raise ValueError(f"units must be one of {', '.join(UNITS)}, got {units!r}")
    if up not in UP_AXES:
        raise ValueError(f"up must be one of {', '.join(UP_AXES)}, got {up!r}")
    v = np.asarray(verts, dtype=np.float64) * UNITS[units]
    n = np.array(normals, dtype=np.float64)
    n[~(np.abs(n).sum(1) > 0)] = (0.0, 0.0, 1.0)  # vertices no triangle uses: any unit normal
    if up == "z":
        v = np.stack([v[:, 0], -v[:, 2], v[:, 1]], 1)
        n = np.stack([n[:, 0], -n[:, 2], n[:, 1]], 1)
    return v, n


def frame_comment(units: str, up: str) -> str:
    """The one-line description of a file's frame (without a comment marker)."""
    axes = "+y up, +z front" if up == "y" else "+z up, -y front"
    return f"facerecon: units {units}, {axes}, right-handed"


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
             object_name: str = "face", comment: str = frame_comment("mm", "y")) -> str:
    """The text of an OBJ file (1-based indices, ``f v/vt/vn``) of vertices and normals as they
    are to be written; see :func:`write_obj`."""
    lines = [f"# {comment}\n"]
    if mtl_name:
        lines.append(f"mtllib {mtl_name}\n")
    lines.append(f"o {object_name}\n")
    lines.append(_fmt_rows("v %.8g %.8g %.8g\n", verts))
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
              texture_png: bytes | None = None, units: str = "mm", up: str = "y") -> dict[str, Path]:
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
        units: "mm" (as given) or "m" (× 0.001) in the file.
        up: "y" (as given) or "z" (rotated so that z is up; see :func:`file_frame`).

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
        vf, nf = file_frame(v, n, units, up)
        out["obj"] = group.write_text(path, obj_text(vf, f, nf, t, ft, mtl_path.name, material_name, path.stem,
                                                     frame_comment(units, up)))
    return out


# ---------------------------------------------------------------------------------------------
# PLY
# ---------------------------------------------------------------------------------------------
def ply_bytes(verts: np.ndarray, faces: np.ndarray, normals: np.ndarray, colors: np.ndarray | None = None,
              comments: tuple[str, ...] = ()) -> bytes:
    """A binary little-endian PLY: float32 ``x y z nx ny nz``, uchar ``red green blue`` (from
    ``colors`` (V,3) in [0,1], rounded) if given, and triangles as ``uchar int`` lists. Vertices and
    normals are written as given."""
    v = np.asarray(verts, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    fields = [(name, "<f4") for name in ("x", "y", "z", "nx", "ny", "nz")]
    if colors is not None:
        fields += [(name, "u1") for name in ("red", "green", "blue")]
    vert = np.empty(len(v), dtype=fields)
    for k, name in enumerate("xyz"):
        vert[name] = v[:, k]
        vert["n" + name] = normals[:, k]
    if colors is not None:
        rgb = np.clip(np.rint(np.nan_to_num(np.asarray(colors, dtype=np.float64)) * 255.0), 0, 255).astype(np.uint8)
        for k, name in enumerate(("red", "green", "blue")):
            vert[name] = rgb[:, k]
    tri = np.empty(len(f), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    tri["n"] = 3
    tri["idx"] = f
    header = ["ply", "format binary_little_endian 1.0", *(f"comment {c}" for c in comments),
              f"element vertex {len(v)}", *(f"property {'float' if t == '<f4' else 'uchar'} {n}" for n, t in fields),
              f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    return ("\n".join(header) + "\n").encode("ascii") + vert.tobytes() + tri.tobytes()


def write_ply(path: str | os.PathLike, verts, faces, colors=None, *, normals=None,
              files: AtomicFiles | None = None, units: str = "mm", up: str = "y") -> Path:
    """Write a binary little-endian PLY: positions and smooth vertex normals (float) and, if
    given, vertex colours ``colors`` (V,3) RGB in [0,1] (clipped, stored as uint8 sRGB values).

    ``verts`` (V,3) are model-space mm, written in ``units`` "mm" or "m" with ``up`` "y" or "z"
    (see :func:`file_frame`; a header comment records both). ``normals`` default to the mesh's
    area-weighted vertex normals. ``files``: stage into this group instead of committing at once.
    """
    v = _as_array(verts, np.float64, (3,), "verts")
    f = _as_array(faces, np.int64, (3,), "faces")
    if f.size and (f.max() >= len(v) or f.min() < 0):
        raise ValueError("faces index outside verts")
    n = vertex_normals_np(v, f) if normals is None else _as_array(normals, np.float64, (3,), "normals")
    if len(n) != len(v):
        raise ValueError("normals must have one row per vertex")
    c = None
    if colors is not None:
        c = _as_array(colors, np.float64, (3,), "colors")
        if len(c) != len(v):
            raise ValueError("colors must have one row per vertex")
    vf, nf = file_frame(v, n, units, up)
    comments = (frame_comment(units, up),) + (("vertex colours: sRGB",) if c is not None else ())
    data = ply_bytes(vf, f, nf, c, comments)
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
    "MM_TO_M", "UNITS", "UP_AXES", "file_frame", "frame_comment", "staging", "split_seams", "encode_png",
    "obj_text", "mtl_text", "write_obj", "ply_bytes", "write_ply", "glb_bytes", "write_glb",
]
