"""The morphable face model as a batched torch module: coefficients -> vertices (mm), albedo."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facerecon.assets import resource_path
from facerecon.facemodel import ict
from facerecon.facemodel.albedo import LEARNED_FILE, AlbedoBasis, build_spectral_albedo, load_learned_albedo, skin_region
from facerecon.geometry import vertex_normals

#: Named vertex subsets. ICT's "face" part (0–9408) reaches the ears and the scalp; its "narrow"
#: face area (0–6705) is the face proper (brows to chin, no ears), as in the paper's face model.
#: "fit" and "narrow" add the eyeballs (they fill the eye holes and measurably help scan
#: accuracy); "head" adds head and neck for display.
REGIONS: dict[str, tuple[str, ...]] = {
    "face": ("face",),
    "fit": ("face", "eyeball_left", "eyeball_right"),
    "narrow": ("face_narrow", "eyeball_left", "eyeball_right"),
    "head": ("face", "head_neck", "eyeball_left", "eyeball_right"),
    # what facerecon's mesh files hold: the head closed from inside (mouth and eye sockets,
    # gums, tongue and teeth: no see-through mouth or eye holes), ICT's vertex order kept
    "export": ("face", "head_neck", "mouth_socket", "eye_socket_left", "eye_socket_right", "gums_tongue",
               "teeth", "eyeball_left", "eyeball_right"),
    "full": (),
}

N_ID, N_EXP, N_TEX = ict.N_ID, 53, 80


def _part_ids(*names: str) -> np.ndarray:
    return np.concatenate([np.arange(*ict.PARTS[n]) for n in names])


def _derived_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Arrays computed at cache-build time: the spectral albedo model and the skin region."""
    mean, faces, lmk = arrays["mean"].astype(np.float64), arrays["faces"], arrays["landmark_idx"]
    face_ids = _part_ids("face")
    iris = _part_ids("iris_left", "iris_right")
    sclera = np.setdiff1d(_part_ids("eyeball_left", "eyeball_right"), iris)
    alb = build_spectral_albedo(mean, faces, lmk, _part_ids("face", "head_neck"), face_ids, iris, sclera)
    return {
        "albedo_mean": alb.mean,
        "albedo_basis": alb.basis,
        "skin_mask": skin_region(mean, lmk, face_ids),
    }


@lru_cache(maxsize=4)
def _load_arrays(cache_file: str) -> dict[str, np.ndarray]:
    return ict.read_npz(Path(cache_file))


class FaceModel(nn.Module):
    """A linear morphable model over a set of vertices; every output is batched.

    Shape ``S(α, β) = S̄ + B_id α + B_exp β`` in millimetres (y up, +z towards the viewer);
    albedo ``T(δ) = T̄ + B_t δ`` as RGB in [0, 1]. Move it with ``.to(device)`` like any module.
    """

    def __init__(self, arrays: dict[str, np.ndarray], vertex_ids: np.ndarray | None = None,
                 name: str = "ict-facekit", region: str = "full") -> None:
        super().__init__()
        n_all = len(arrays["mean"])
        ids = np.arange(n_all) if vertex_ids is None else np.asarray(vertex_ids, dtype=np.int64)
        remap = -np.ones(n_all, np.int64)
        remap[ids] = np.arange(len(ids))
        keep = (remap[arrays["faces"]] >= 0).all(1)
        lmk = remap[arrays["landmark_idx"]]
        if (lmk < 0).any():
            raise ValueError(f"region '{region}' does not contain all 68 landmark vertices")
        self.name, self.region = name, region
        self.albedo_kind = "spectral"  # which albedo model (see ALBEDO_MODELS); set by load_face_model
        self.landmark_set = "ict"  # which landmark vertices (see LANDMARK_SETS); set by load_face_model
        self.vertex_ids = ids  # indices into the full ICT mesh
        self.expression_names: list[str] = [str(s) for s in arrays["exp_names"]]
        self.source_sha256 = str(arrays.get("source_sha256", ""))
        v = len(ids)

        def buf(key: str, value) -> None:
            self.register_buffer(key, torch.as_tensor(value), persistent=False)

        def basis(key: str) -> np.ndarray:
            # np.take along the vertex axis gives a C-contiguous copy; fancy indexing ([:, ids])
            # gives a transposed layout that the reshape copies a second time (7x slower)
            return np.take(arrays[key], ids, axis=1).reshape(-1, v * 3)

        buf("mean", arrays["mean"][ids])
        buf("id_basis", basis("id_basis"))
        buf("exp_basis", basis("exp_basis"))
        buf("albedo_mean", arrays["albedo_mean"][ids])
        buf("albedo_basis", basis("albedo_basis"))
        buf("faces", remap[arrays["faces"][keep]])
        buf("landmark_idx", lmk)
        buf("vertex_uv", arrays["vertex_uv"][ids])
        buf("skin_mask", arrays["skin_mask"][ids])
        # exact UV layout (seams kept) for texture export
        self.uv_coords = arrays["uv_coords"]
        self.faces_uv = arrays["faces_uv"][keep] if len(arrays["faces_uv"]) else arrays["faces_uv"]
        self.jawlines = {k: remap[arrays[k]] for k in ("jaw_left", "jaw_right", "jaw_left_ext", "jaw_right_ext") if k in arrays}

    # sizes -----------------------------------------------------------------------------------
    @property
    def n_vertices(self) -> int:
        return int(self.mean.shape[0])

    @property
    def n_id(self) -> int:
        return int(self.id_basis.shape[0])

    @property
    def n_exp(self) -> int:
        return int(self.exp_basis.shape[0])

    @property
    def n_tex(self) -> int:
        return int(self.albedo_basis.shape[0])

    # model -----------------------------------------------------------------------------------
    def shape(self, alpha: torch.Tensor | None = None, beta: torch.Tensor | None = None) -> torch.Tensor:
        """Vertices (B,V,3) in mm from identity ``alpha`` (B,n_id) and expression ``beta`` (B,n_exp).

        Either may be None (zero); shorter coefficient vectors use the leading modes.
        """
        ref = alpha if alpha is not None else beta
        batch = 1 if ref is None else ref.shape[0]
        offset = self.mean.reshape(1, -1).expand(batch, -1)
        if alpha is not None:
            offset = offset + alpha @ self.id_basis[: alpha.shape[-1]]
        if beta is not None:
            offset = offset + beta @ self.exp_basis[: beta.shape[-1]]
        return offset.reshape(batch, -1, 3)

    def albedo(self, delta: torch.Tensor | None = None) -> torch.Tensor:
        """Per-vertex albedo (B,V,3), RGB in [0,1] before clamping, from ``delta`` (B,n_tex)."""
        if delta is None:
            return self.albedo_mean[None]
        out = self.albedo_mean.reshape(1, -1) + delta @ self.albedo_basis[: delta.shape[-1]]
        return out.reshape(delta.shape[0], -1, 3)

    def landmarks(self, verts: torch.Tensor) -> torch.Tensor:
        """The 68 iBUG landmark positions (B,68,3) of vertices (B,V,3)."""
        return verts[:, self.landmark_idx]

    def vertex_normals(self, verts: torch.Tensor) -> torch.Tensor:
        """Area-weighted unit vertex normals (B,V,3) of vertices (B,V,3) over this model's triangles."""
        return vertex_normals(verts, self.faces)

    def with_albedo(self, basis: AlbedoBasis) -> "FaceModel":
        """A copy of this model whose albedo model is ``basis`` (given over this model's vertices)."""
        import copy

        other = copy.copy(self)
        other._buffers = dict(self._buffers)
        dev = self.mean.device
        other.albedo_mean = torch.as_tensor(basis.mean, dtype=torch.float32, device=dev)
        other.albedo_basis = torch.as_tensor(basis.basis, dtype=torch.float32, device=dev).reshape(len(basis.basis), -1)
        other.albedo_kind = basis.kind
        return other

    def extra_repr(self) -> str:
        return (f"name={self.name}, region={self.region}, vertices={self.n_vertices}, "
                f"triangles={len(self.faces)}, n_id={self.n_id}, n_exp={self.n_exp}, n_tex={self.n_tex}")


def region_vertex_ids(region: str) -> np.ndarray | None:
    """Full-mesh vertex indices of a named region (None for the whole mesh)."""
    if region not in REGIONS:
        raise ValueError(f"unknown region '{region}' (choose from {', '.join(REGIONS)})")
    parts = REGIONS[region]
    return _part_ids(*parts) if parts else None


#: Albedo models ``load_face_model`` offers: the smooth spectral basis built from the geometry, or
#: the statistical one learned from de-lit real photos (``facerecon/resources/albedo_pca.npz``).
ALBEDO_MODELS = ("learned", "spectral")


@lru_cache(maxsize=2)
def _with_learned_albedo(cache_file: str) -> dict[str, np.ndarray]:
    arrays = dict(_load_arrays(cache_file))
    base = AlbedoBasis(arrays["albedo_mean"], arrays["albedo_basis"])
    learned = load_learned_albedo(resource_path(LEARNED_FILE), base)
    arrays["albedo_mean"], arrays["albedo_basis"] = learned.mean, learned.basis
    return arrays


#: Which mesh points stand for the 68 iBUG landmarks: ``"ict"`` = the vertices ICT-FaceKit lists
#: (``idx_to_landmark_verts``); the others are chosen on 300-W train by
#: ``scripts/calibrate_landmarks.py`` (mirror-symmetric; for the jaw, the anchors of the moving
#: contour), each the vertices nearest where a set of fitted faces put the annotated points:
#: ``"300w"`` on fits made with the landmark term (whose identity had bent towards the old points),
#: ``"300w-photo"`` on fits whose shape comes from the photometric term alone, so the landmark term
#: asks for the face the shading shows. File per set, under ``facerecon/resources``:
LANDMARK_FILES = {"300w": "landmarks_300w.json", "300w-photo": "landmarks_300w_photo.json"}
LANDMARK_SETS = ("ict", *LANDMARK_FILES)


@lru_cache(maxsize=None)
def landmark_vertices(name: str) -> np.ndarray:
    """The 68 full-mesh vertex indices of the chosen landmark set ``name`` (a key of
    :data:`LANDMARK_FILES`)."""
    import json

    path = resource_path(LANDMARK_FILES[name])
    ids = np.asarray(json.loads(path.read_text())["vertex_ids"], dtype=np.int64)
    if ids.shape != (68,):
        raise ValueError(f"{path.name}: expected 68 vertex ids, found {ids.shape}")
    return ids


def model_cache_file(source: str | os.PathLike | None = None, allow_download: bool = True) -> Path:
    """The model cache file (``.npz``) :func:`load_face_model` reads, built from the kit on first
    use; ``source`` as there (a cache file given is used as it is)."""
    src = ict.find_source(source, allow_download=allow_download)
    return ict.cached_model_file(src, build_extra=_derived_arrays)


def load_face_model(region: str = "fit", source: str | os.PathLike | None = None,
                    device: str | torch.device | None = None, allow_download: bool = True,
                    albedo: str = "spectral", landmarks: str = "ict") -> FaceModel:
    """Load ICT-FaceKit as a :class:`FaceModel` over ``region`` (a key of :data:`REGIONS`) with
    the albedo model ``albedo`` (one of :data:`ALBEDO_MODELS`) and the landmark vertices
    ``landmarks`` (one of :data:`LANDMARK_SETS`).

    ``source`` is a folder, tar or zip of the kit; see :func:`facerecon.facemodel.ict.find_source`
    for where it is looked up otherwise. The first call builds a compact cache (seconds).
    """
    if albedo not in ALBEDO_MODELS:
        raise ValueError(f"unknown albedo model '{albedo}' (choose from {', '.join(ALBEDO_MODELS)})")
    cache = model_cache_file(source, allow_download=allow_download)
    if landmarks not in LANDMARK_SETS:
        raise ValueError(f"unknown landmark set '{landmarks}' (choose from {', '.join(LANDMARK_SETS)})")
    arrays = _load_arrays(str(cache)) if albedo == "spectral" else _with_learned_albedo(str(cache))
    if landmarks != "ict":
        arrays = {**arrays, "landmark_idx": landmark_vertices(landmarks)}
    model = FaceModel(arrays, region_vertex_ids(region), region=region)
    model.albedo_kind = albedo
    model.landmark_set = landmarks
    return model.to(device) if device is not None else model
