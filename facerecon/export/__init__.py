"""Outputs of a reconstruction: textured meshes (OBJ/MTL/PNG, PLY, GLB), the UV texture baked from
the photo, the overlay on the photo, and the JSON records; every file is written atomically.

Entry point for ``facerecon reconstruct``: :func:`write_reconstruction`.
"""

from facerecon.export.atlas import UVAtlas, build_atlas, model_atlas
from facerecon.atomic import AtomicFiles, atomic_write_bytes, atomic_write_text
from facerecon.export.mesh import encode_png, write_glb, write_obj, write_ply
from facerecon.export.overlay import overlay
from facerecon.export.photo import PosedMesh, posed_mesh
from facerecon.export.reconstruction import FILES, params_document, params_from_document, write_reconstruction
from facerecon.export.texture import TextureBake, bake_texture, bake_texture_maps

__all__ = [
    "UVAtlas", "build_atlas", "model_atlas", "AtomicFiles", "atomic_write_bytes", "atomic_write_text",
    "encode_png", "write_glb", "write_obj", "write_ply", "overlay", "PosedMesh", "posed_mesh", "FILES",
    "params_document", "params_from_document", "write_reconstruction", "TextureBake", "bake_texture",
    "bake_texture_maps",
]
