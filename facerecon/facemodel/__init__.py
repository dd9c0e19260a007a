"""Face model: ICT-FaceKit read into a batched linear morphable model (shape in mm, albedo).

``load_face_model(region)`` is the entry point; see :class:`FaceModel` for the API.
"""

from facerecon.facemodel.albedo import AlbedoBasis
from facerecon.facemodel.model import N_EXP, N_ID, N_TEX, REGIONS, FaceModel, load_face_model, model_cache_file

__all__ = ["AlbedoBasis", "FaceModel", "load_face_model", "model_cache_file", "REGIONS", "N_ID", "N_EXP", "N_TEX"]
