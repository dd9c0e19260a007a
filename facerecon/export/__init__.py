"""Outputs of a reconstruction: textured meshes (OBJ/MTL/PNG, PLY, GLB) of the head closed from
inside, the UV texture baked from one photo or several and completed where none saw the face,
the overlay and comparison pictures, and the JSON records; every file is written atomically.

Entry point for ``facerecon reconstruct``: :func:`write_reconstruction`. Several photos of one
person: :func:`bake_texture_multi`.
"""

from facerecon.export.atlas import UVAtlas, build_atlas, model_atlas
from facerecon.atomic import AtomicFiles, atomic_write_bytes, atomic_write_text
from facerecon.export.headmesh import export_model
from facerecon.export.mesh import encode_png, write_glb, write_obj, write_ply
from facerecon.export.overlay import compare_image, overlay
from facerecon.export.photo import PosedMesh, posed_mesh
from facerecon.export.reconstruction import FILES, params_document, params_from_document, write_reconstruction
from facerecon.export.texture import (TextureBake, bake_texture, bake_texture_maps, bake_texture_multi,
                                      vertex_colors_from_texture)

__all__ = [
    "UVAtlas", "build_atlas", "model_atlas", "AtomicFiles", "atomic_write_bytes", "atomic_write_text",
    "export_model", "encode_png", "write_glb", "write_obj", "write_ply", "compare_image", "overlay", "PosedMesh",
    "posed_mesh", "FILES", "params_document", "params_from_document", "write_reconstruction", "TextureBake",
    "bake_texture", "bake_texture_maps", "bake_texture_multi", "vertex_colors_from_texture",
]
