"""Synthetic samples on disk: PNG image, JSON ground truth, 300-W ``.pts`` landmarks, PLY mesh.

Every file is written atomically. :func:`params_from_record` reads the true
:class:`~facerecon.params.FaceParams` back from a saved JSON.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from facerecon.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from facerecon.imageio.pts import pts_text
from facerecon.params import FaceParams

#: Landmark convention of ``landmarks2d`` (:func:`facerecon.render.project`'s): pixel (i, j) has
#: its centre at (j, i), as dlib and OpenCV count them and as :func:`facerecon.imageio.pts.read_pts`
#: returns ``.pts`` files, so the ``.pts`` files hold them unchanged.
PTS_OFFSET = 0.0


def png_bytes(image: torch.Tensor) -> bytes:
    """(3,H,W) [0,1] tensor -> PNG file bytes (8-bit RGB)."""
    import io

    from PIL import Image

    arr = (image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def mesh_ply_bytes(verts: np.ndarray, faces: np.ndarray) -> bytes:
    """Binary PLY of a triangle mesh (coordinates as given, mm)."""
    import trimesh

    return trimesh.Trimesh(np.asarray(verts, dtype=np.float64), np.asarray(faces), process=False).export(file_type="ply")


def sample_record(sample: dict, model=None, extra: dict | None = None) -> dict:
    """The JSON-able ground truth of one sample: every coefficient, pose, camera, landmarks.

    A face sample carries its true ``params`` (:class:`FaceParams`, batch 1); a scan render
    (no model coefficients) carries ``gamma``, ``angles`` and ``trans`` instead.
    """
    def lst(t: torch.Tensor, nd: int = 6) -> list:
        return np.round(t.detach().cpu().double().numpy(), nd).tolist()

    params = sample.get("params")
    if params is not None:
        coefs = {k: getattr(params, k)[0] for k in ("alpha", "beta", "delta", "gamma")}
        angles, trans = params.angles[0], params.trans[0]
    else:
        coefs = {"gamma": sample["gamma"]}
        angles, trans = sample["angles"], sample["trans"]
    ang = angles.detach().cpu().double().numpy()
    size = int(sample["image"].shape[-1])
    rec: dict = {"index": int(sample["index"])}
    rec |= {k: lst(v) for k, v in coefs.items()}
    rec |= {
        "pose": {"angles_rad": np.round(ang, 8).tolist(), "angles_deg": np.round(np.degrees(ang), 5).tolist(),
                 "angle_order": "pitch (x), yaw (y), roll (z); R = Rz Ry Rx",
                 "trans_mm": lst(trans)},
        "camera": {"focal_px": float(sample["focal"]), "size_px": size,
                   "principal_point_px": [(size - 1) / 2.0, (size - 1) / 2.0],
                   "convention": "camera at the origin looking down -z, y up; model->camera x_cam = R x + t"},
        "landmarks2d_px": np.round(sample["landmarks2d"].detach().cpu().double().numpy(), 4).tolist(),
        "landmarks2d_convention": "pixel (i, j) has its centre at (j, i) (OpenCV, dlib); the .pts file holds the same",
        "landmarks_visible": sample["landmarks_visible"].detach().cpu().numpy().astype(bool).tolist(),
        "landmarks3d_mm": lst(sample["landmarks3d"], 4),
    }
    if "meta" in sample:
        rec.update({k: v for k, v in sample["meta"].items()})
    if model is not None:
        rec["model"] = {"name": model.name, "region": model.region, "n_vertices": model.n_vertices,
                        "n_id": model.n_id, "n_exp": model.n_exp, "n_tex": model.n_tex,
                        "expression_names": list(model.expression_names),
                        "source_sha256": getattr(model, "source_sha256", "")}
    if extra:
        rec.update(extra)
    return rec


def save_sample(sample: dict, out_dir: str | os.PathLike, faces: np.ndarray, model=None,
                stem: str | None = None, mesh: bool = True, extra: dict | None = None) -> dict[str, Path]:
    """Write ``<stem>.png``, ``<stem>.json`` (ground truth), ``<stem>.pts`` and, with ``mesh``,
    ``<stem>.ply`` (true mesh, model space, mm), each atomically. Returns the paths."""
    out = Path(out_dir)
    stem = stem or f"{int(sample['index']):06d}"
    paths = {"image": out / f"{stem}.png", "params": out / f"{stem}.json", "pts": out / f"{stem}.pts"}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(paths["image"], png_bytes(sample["image"]))
    rec = sample_record(sample, model, extra)
    if mesh:
        paths["mesh"] = out / f"{stem}.ply"
        atomic_write_bytes(paths["mesh"], mesh_ply_bytes(sample["verts"].detach().cpu().numpy(), faces))
        rec["mesh"] = paths["mesh"].name
    rec["image"] = paths["image"].name
    atomic_write_text(paths["pts"], pts_text(sample["landmarks2d"].detach().cpu().numpy(), PTS_OFFSET))
    atomic_write_json(paths["params"], rec)
    return paths


def params_from_record(rec: dict, device: str | torch.device = "cpu") -> FaceParams:
    """The true :class:`FaceParams` (batch 1) of a saved face sample's JSON."""
    t = lambda v: torch.tensor([v], dtype=torch.float32, device=device)  # noqa: E731
    return FaceParams(t(rec["alpha"]), t(rec["beta"]), t(rec["delta"]), t(rec["gamma"]),
                      t(rec["pose"]["angles_rad"]), t(rec["pose"]["trans_mm"]))


__all__ = ["PTS_OFFSET", "png_bytes", "mesh_ply_bytes", "sample_record", "save_sample", "params_from_record"]
