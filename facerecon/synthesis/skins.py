"""Real skin for synthetic faces: albedo taken from de-lit photos instead of the model's basis.

A folder of per-photo albedo samples (``tools/albedo_samples.py``: ICT's face part, de-lit by each
photo's fitted light) becomes a bank of complete per-vertex albedos over a face model's region:
the face part from the sample (completed by mirror partners and the photo's skin colour,
:func:`facerecon.facemodel.albedo.read_albedo_sample`), the head and neck in the photo's skin
colour, eyes and mouth interior the model's own mean. Synthetic faces painted from it test the
fitter on skin its albedo model did not generate (``SynthConfig.skin_samples``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from facerecon.facemodel import ict
from facerecon.facemodel.albedo import read_albedo_sample, sample_layout


class SkinBank:
    """Complete albedos (N,V,3) over ``model``'s vertices from a folder of albedo samples."""

    def __init__(self, folder: str | os.PathLike, model) -> None:
        files = sorted(Path(folder).glob("*.npz"))
        if not files:
            raise FileNotFoundError(f"{folder}: no albedo samples (*.npz from tools/albedo_samples.py)")
        ids = np.asarray(model.vertex_ids)
        lo, hi = ict.PARTS["face"]
        face_full = np.arange(lo, hi)
        # mirror partners need the whole face part, whatever the model's region
        from facerecon.facemodel import load_face_model

        full = load_face_model("full", allow_download=False)
        mean = full.mean.numpy().astype(np.float64)
        partner, features = sample_layout(mean[face_full], mean[full.landmark_idx.numpy()])
        in_face = (ids >= lo) & (ids < hi)
        head = (ids >= ict.PARTS["head_neck"][0]) & (ids < ict.PARTS["head_neck"][1])
        base = model.albedo_mean.detach().cpu().numpy()
        self.names: list[str] = []
        bank = []
        for f in files:
            face, skin, _ = read_albedo_sample(f, partner, features)
            a = base.copy()
            a[in_face] = face[ids[in_face] - lo]
            a[head] = skin
            bank.append(a)
            self.names.append(f.stem)
        self.albedo = np.stack(bank).astype(np.float32)

    def __len__(self) -> int:
        return len(self.albedo)

    def pick(self, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """One albedo (V,3) and its sample's name, drawn by ``rng``."""
        i = int(rng.integers(len(self.albedo)))
        return self.albedo[i], self.names[i]

    def tensor(self, albedos: list[np.ndarray], device) -> torch.Tensor:
        return torch.tensor(np.stack(albedos), dtype=torch.float32, device=device)


__all__ = ["SkinBank"]
