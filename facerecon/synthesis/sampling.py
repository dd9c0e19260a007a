"""Random draws of synthetic faces: identity, expression, albedo, pose, SH light, framing.

Every sample is drawn from its own random stream ``(seed, index)``: the same seed gives the same
samples whatever the batch size, the count or the device. Lengths in mm, angles in degrees in
the config and radians in the draws, sizes in pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from facerecon.imageio.align import template_landmarks
from facerecon.render import Camera, euler_to_matrix


@dataclass
class SynthConfig:
    """How samples are drawn and rendered. Lengths in mm, angles in degrees, sizes in pixels."""

    size: int = 224
    focal: float = 1015.0                  # pixels at ``size``
    frame_scale: float = 1.0               # face size relative to the aligned-crop template
    distance_jitter: float = 0.06          # relative framing jitter, uniform ±
    shift_mm: float = 6.0                  # x/y framing jitter, uniform ±
    id_scale: float = 1.0
    tex_scale: float = 1.0
    max_expressions: int = 4               # 0..this many blendshapes active per sample
    expression_max: float = 1.0            # active weights uniform in [0, this]
    max_yaw_deg: float = 60.0
    max_pitch_deg: float = 20.0
    max_roll_deg: float = 15.0
    ambient: tuple[float, float] = (0.6, 1.0)        # SH DC term, uniform
    directional: tuple[float, float] = (0.0, 0.45)   # magnitude of the first band
    second_band: float = 0.06                        # std of each second-band coefficient
    noise_std: float = 0.012               # sensor noise std drawn uniformly in [0, this]
    background: str = "photos"             # "photos", "noise" or "grey"
    supersample: int = 2
    region: str = "fit"                    # face-model region rendered and saved
    skin_samples: str | None = None        # folder of de-lit photo albedo samples: real skin instead of the basis
    distance_mm: tuple[float, float] | None = None  # camera distance range, log-uniform (None: ``focal``'s)


def config_record(cfg: SynthConfig) -> dict:
    """The config as JSON-able values."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}


def random_light(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """(9,) SH coefficients: ambient DC, a first band towards a random direction in the
    half-space in front of the face (camera frame, +z towards the camera), small second band."""
    g = np.zeros(9)
    g[0] = rng.uniform(*cfg.ambient)
    d = rng.standard_normal(3)
    d[2] = abs(d[2]) + 0.3
    d /= np.linalg.norm(d)
    mag = rng.uniform(*cfg.directional)
    g[1], g[2], g[3] = d[1] * mag, d[2] * mag, d[0] * mag  # basis order: 1, y, z, x, ...
    g[4:] = rng.normal(0.0, cfg.second_band, 5)
    return g


def random_pose(rng: np.random.Generator, cfg: SynthConfig, yaw_deg: float | None = None,
                pitch_deg: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(angles (3,) radians: pitch, yaw, roll; framing jitter (3,) uniform in [-1, 1] for x, y
    shift and distance, turned into a translation by :func:`frame_translation`)."""
    pitch = rng.uniform(-cfg.max_pitch_deg, cfg.max_pitch_deg) if pitch_deg is None else pitch_deg
    yaw = rng.uniform(-cfg.max_yaw_deg, cfg.max_yaw_deg) if yaw_deg is None else yaw_deg
    roll = rng.uniform(-cfg.max_roll_deg, cfg.max_roll_deg)
    return np.radians([pitch, yaw, roll]), rng.uniform(-1.0, 1.0, 3)


def _inner_frame(lmk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroid (B,3) and RMS radius (B,) of the 51 inner landmarks (B,68,3)."""
    inner = lmk[:, 17:]
    c = inner.mean(1)
    return c, (inner - c[:, None]).pow(2).sum(-1).mean(1).sqrt()


def _template_frame(reference: torch.Tensor, cfg: SynthConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The alignment template's inner-landmark centroid (2,) and size (pixels), and the reference
    face's frontal inner-landmark size (mm)."""
    tpl = torch.tensor(template_landmarks(cfg.size)[17:], dtype=reference.dtype, device=reference.device)
    tc = tpl.mean(0)
    t_size = (tpl - tc).pow(2).sum(-1).mean().sqrt() * cfg.frame_scale
    inner_xy = reference[17:, :2]
    return tc, t_size, (inner_xy - inner_xy.mean(0)).pow(2).sum(-1).mean().sqrt()


def distance_focal(distance: torch.Tensor, reference: torch.Tensor, cfg: SynthConfig) -> torch.Tensor:
    """(B,) focal lengths (pixels at ``cfg.size``) at which the reference face (68 landmarks, mm),
    ``distance`` (B,) mm from the camera, fills the aligned crop as the template does: a close
    camera keeps the face's size in the crop and changes only its perspective."""
    _, t_size, s_ref_xy = _template_frame(reference, cfg)
    return distance * t_size / s_ref_xy


def frame_translation(lmk_model: torch.Tensor, angles: torch.Tensor, jitter: torch.Tensor,
                      reference: torch.Tensor, cfg: SynthConfig, focal: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """(B,3) translation (mm) that frames each face like the pipeline's aligned crops.

    The target is the alignment template (:func:`facerecon.imageio.align.template_landmarks`,
    scaled by ``cfg.frame_scale``): the reference face (``reference``: 68 landmarks of the
    mean face, model space, mm), seen frontally, gets the template's inner-landmark centroid
    and size. Every face is then placed so that the centroid of its inner landmarks projects to
    the same point and its inner-landmark size appears the same, shifted by ``jitter`` ×
    ``shift_mm`` sideways and scaled by 1 + ``jitter`` × ``distance_jitter`` in distance.
    ``focal`` (B,) pixels: each face's own camera (:func:`distance_focal`); None: ``cfg.focal``.
    """
    tc, t_size, s_ref_xy = _template_frame(reference, cfg)
    _, s_ref = _inner_frame(reference[None])
    f = torch.as_tensor(cfg.focal if focal is None else focal, dtype=reference.dtype, device=reference.device)
    d_ref = f * s_ref_xy / t_size  # depth of the reference centroid
    c, s = _inner_frame(lmk_model)
    rc = (euler_to_matrix(angles) @ c[:, :, None])[..., 0]
    depth = d_ref * (s / s_ref) * (1 + jitter[:, 2] * cfg.distance_jitter)
    centre = Camera(size=cfg.size).center
    tx = (tc[0] - centre) * depth / f + jitter[:, 0] * cfg.shift_mm - rc[:, 0]
    ty = -(tc[1] - centre) * depth / f + jitter[:, 1] * cfg.shift_mm - rc[:, 1]
    tz = -depth - rc[:, 2]
    return torch.stack([tx, ty, tz], 1)


def draw_sample(seed: int, index: int, cfg: SynthConfig, n_id: int, n_exp: int, n_tex: int) -> dict:
    """All random numbers of sample ``index``, from its own stream (seed, index)."""
    rng = np.random.default_rng([int(seed), int(index)])
    alpha = rng.standard_normal(n_id) * cfg.id_scale
    beta = np.zeros(n_exp)
    k = int(rng.integers(0, cfg.max_expressions + 1))
    if k:
        beta[rng.choice(n_exp, size=min(k, n_exp), replace=False)] = rng.uniform(0, cfg.expression_max, min(k, n_exp))
    delta = rng.standard_normal(n_tex) * cfg.tex_scale
    angles, jitter = random_pose(rng, cfg)
    gamma = random_light(rng, cfg)
    noise = float(rng.uniform(0, cfg.noise_std))
    # from a stream of its own: a sample is the same face, pose, light, skin and background with or
    # without a distance range (only its camera differs)
    distance = float("nan")
    if cfg.distance_mm:
        distance = float(np.exp(np.random.default_rng([int(seed), int(index), 1]).uniform(*np.log(cfg.distance_mm))))
    return {"alpha": alpha, "beta": beta, "delta": delta, "gamma": gamma, "angles": angles,
            "jitter": jitter, "noise_std": noise, "distance": distance, "rng": rng}


__all__ = ["SynthConfig", "config_record", "random_light", "random_pose", "distance_focal", "frame_translation",
           "draw_sample"]
