"""Photo-like renders of a real head scan with known geometry: our stand-in for MICC.

The Lee Perry-Smith scan (in mm, 68 landmarks known, see :mod:`facerecon.evaluation.scans`) is
placed in the face model's frame (a rigid fit of its inner landmarks to the ICT mean face's, so
poses mean the same as for synthetic faces), painted with a plausible skin albedo (it has no
usable texture: facerecon's mean skin colour with darker brows and reddish lips placed by the
scan's landmarks, a per-image skin tone and a slight low-frequency variation), lit by random
SH light and rendered at 224×224 from several views over the same photo backgrounds as
:mod:`facerecon.synthesis`. The ground truth is the scan mesh itself plus each image's
pose, camera and projected landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Iterator

import numpy as np
import torch

from facerecon.forward import shade_vertices
from facerecon.render import Camera, project, transform
from facerecon.synthesis.backgrounds import make_background
from facerecon.synthesis.generate import index_batches, landmark_visibility, photo_backgrounds, render_over
from facerecon.synthesis.sampling import SynthConfig, frame_translation, random_light, random_pose

#: Default views: yaw in degrees, cycled over the samples (pitch and roll are drawn small).
DEFAULT_YAWS = (0.0, 20.0, -20.0, 40.0, -40.0)


@dataclass
class ScanInModelFrame:
    """A scan moved into the face model's frame (mm): ``x_model = R @ x_scan + t``."""

    name: str
    vertices: np.ndarray   # (V,3) mm, model frame
    faces: np.ndarray      # (F,3)
    landmarks: np.ndarray  # (68,3) mm, model frame
    rotation: np.ndarray   # (3,3) scan frame -> model frame
    translation: np.ndarray  # (3,) mm
    albedo: np.ndarray     # (V,3) base skin albedo in [0,1]


@lru_cache(maxsize=2)
def lee_perry_smith_in_model_frame() -> ScanInModelFrame:
    """The Lee Perry-Smith scan rigidly fitted (no scale) to the ICT mean face's inner landmarks."""
    from facerecon.evaluation.scan import umeyama
    from facerecon.evaluation.scans import load_lee_perry_smith
    from facerecon.facemodel.albedo import mean_albedo

    mesh, lmk = load_lee_perry_smith()
    ict = ict_mean_landmarks()
    _, rot, t = umeyama(lmk[17:], ict[17:], with_scale=False)
    verts = np.asarray(mesh.vertices) @ rot.T + t
    lm = lmk @ rot.T + t
    n = len(verts)
    # mean_albedo reads landmark positions by vertex index: append them as extra points
    alb = mean_albedo(np.vstack([verts, lm]), np.arange(n, n + 68), np.arange(n),
                      np.zeros(0, np.int64), np.zeros(0, np.int64))[:n]
    return ScanInModelFrame("lee-perry-smith", verts, np.asarray(mesh.faces, dtype=np.int64), lm,
                            rot, t, np.clip(alb, 0, 1))


@lru_cache(maxsize=1)
def ict_mean_landmarks() -> np.ndarray:
    """The ICT-FaceKit mean face's 68 landmarks (68,3), model frame, mm: the framing reference."""
    from facerecon.facemodel import load_face_model

    fm = load_face_model(region="face")
    return fm.landmarks(fm.mean[None])[0].double().cpu().numpy()


def _skin_variation(rng: np.random.Generator, verts: np.ndarray) -> np.ndarray:
    """(V,3) multiplicative albedo factor: a per-image skin tone and ±4% low-frequency waves."""
    tone = rng.uniform(0.8, 1.1) * (1 + rng.uniform(-0.05, 0.05, 3))
    wave = np.zeros(len(verts))
    for _ in range(4):
        k = rng.standard_normal(3)
        k *= 2 * np.pi / (np.linalg.norm(k) * rng.uniform(40.0, 120.0))
        wave += np.sin(verts @ k + rng.uniform(0, 2 * np.pi))
    return tone[None, :] * (1 + 0.02 * wave)[:, None]


def generate_scan_photos(n: int, seed: int = 0, config: SynthConfig | None = None, *,
                         yaws: tuple[float, ...] = DEFAULT_YAWS, max_pitch_deg: float = 8.0,
                         max_roll_deg: float = 5.0, scan: ScanInModelFrame | None = None,
                         device: str | torch.device = "cpu", batch_size: int = 8, start: int = 0,
                         progress: bool = False) -> Iterator[dict[str, Any]]:
    """Yield ``n`` renders of the scan, one dict per image (tensors without a batch axis).

    Sample i looks from yaw ``yaws[i % len(yaws)]`` degrees, with pitch and roll uniform within
    ``max_pitch_deg`` / ``max_roll_deg``. Keys as :func:`facerecon.synthesis.generate`
    minus the model coefficients: ``index``, ``image``, ``mask``, ``gamma``, ``angles``,
    ``trans``, ``landmarks3d`` (model frame, mm), ``landmarks2d`` (pixels), ``landmarks_visible``,
    ``focal``, ``meta``. The mesh is ``scan.vertices``/``scan.faces`` (model frame, mm), the same
    for every image.
    """
    cfg = replace(config or SynthConfig(), max_pitch_deg=max_pitch_deg, max_roll_deg=max_roll_deg)
    scan = scan or lee_perry_smith_in_model_frame()
    verts = torch.tensor(scan.vertices, dtype=torch.float32, device=device)
    faces = torch.tensor(scan.faces, dtype=torch.int64, device=device)
    lmk = torch.tensor(scan.landmarks, dtype=torch.float32, device=device)
    reference = torch.tensor(ict_mean_landmarks(), dtype=torch.float32, device=device)
    photos = photo_backgrounds(cfg.background)
    for idx in index_batches(n, start, batch_size, progress, "scan photos"):
        angs, trs, gams, albs, bgs, metas, noises = [], [], [], [], [], [], []
        for i in idx:
            rng = np.random.default_rng([int(seed), int(i), 1])
            yaw = float(yaws[i % len(yaws)])
            a, jit = random_pose(rng, cfg, yaw_deg=yaw)
            angs.append(a)
            trs.append(jit)
            gams.append(random_light(rng, cfg))
            albs.append(np.clip(scan.albedo * _skin_variation(rng, scan.vertices), 0, 1))
            noise_std = float(rng.uniform(0, cfg.noise_std))
            bg, info = make_background(cfg.background, rng, cfg.size, photos)
            bgs.append(bg)
            noises.append(rng.standard_normal((3, cfg.size, cfg.size)) * noise_std)
            metas.append({"background": info, "noise_std": noise_std, "scan": scan.name,
                          "view_yaw_deg": yaw})
        f32 = lambda x: torch.tensor(np.stack(x), dtype=torch.float32, device=device)  # noqa: E731
        angles, jitter, gamma, albedo = f32(angs), f32(trs), f32(gams), f32(albs)
        b = len(idx)
        with torch.no_grad():
            trans = frame_translation(lmk[None].expand(b, -1, -1), angles, jitter, reference, cfg)
            vc = transform(verts[None].expand(b, -1, -1), angles, trans)
            colors, _ = shade_vertices(vc, faces, albedo, gamma)
            background = f32(bgs).permute(0, 3, 1, 2)
            image, cov, depth = render_over(vc, faces, colors, background, cfg.focal, cfg.size,
                                            cfg.supersample)
            image = (image + f32(noises)).clamp(0, 1)
            lmk_cam = transform(lmk[None].expand(b, -1, -1), angles, trans)
            lmk2d, _ = project(lmk_cam, Camera(focal=cfg.focal, size=cfg.size))
            visible = landmark_visibility(lmk_cam, depth, cfg.focal * cfg.supersample)
        for j, i in enumerate(idx):
            yield {"index": i, "image": image[j], "mask": (cov[j] >= 0.5).float(), "gamma": gamma[j],
                   "angles": angles[j], "trans": trans[j], "landmarks3d": lmk,
                   "landmarks2d": lmk2d[j], "landmarks_visible": visible[j],
                   "focal": torch.tensor(float(cfg.focal)), "meta": metas[j]}
