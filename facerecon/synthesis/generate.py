"""Generate&Render: synthetic faces whose every parameter is known, as batched tensors.

Random :class:`~facerecon.params.FaceParams` (see :mod:`facerecon.synthesis.sampling`) are
evaluated by the forward model and rendered at 224×224 (2× supersampled edges) over real-photo
backgrounds (:mod:`facerecon.synthesis.backgrounds`). :func:`generate_batches` yields batches
(training data), :func:`generate` single samples; :mod:`facerecon.synthesis.records` saves them.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from facerecon.forward import ForwardModel, shade_vertices
from facerecon.params import FaceParams
from facerecon.render import Camera, Renderer, project
from facerecon.synthesis.backgrounds import PhotoBackgrounds, make_background
from facerecon.synthesis.sampling import SynthConfig, distance_focal, draw_sample, frame_translation


def render_over(verts_cam: torch.Tensor, faces: torch.Tensor, colors: torch.Tensor,
                background: torch.Tensor, focal: float | torch.Tensor, size: int, supersample: int = 2
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render camera-space meshes over backgrounds with ``supersample``² samples per pixel.

    Args:
        verts_cam: (B,V,3) mm, camera space. faces: (F,3). colors: (B,V,3) in [0,1].
        background: (B,3,size,size) in [0,1]. focal: pixels at ``size``, or (B,) one per mesh.

    Returns:
        image (B,3,size,size) [0,1], coverage (B,1,size,size) in [0,1], depth (B,1,H',W') mm at
        the supersampled resolution (0 on background).
    """
    ss = max(int(supersample), 1)
    cam = Camera(focal=focal * ss, size=size * ss)
    out = Renderer(cam)(verts_cam, faces, colors, background=0.0)
    img, cov = out.image, out.mask
    if ss > 1:
        img, cov = F.avg_pool2d(img, ss), F.avg_pool2d(cov, ss)
    return (img + (1 - cov) * background).clamp(0, 1), cov, out.depth


def landmark_visibility(lmk_cam: torch.Tensor, depth: torch.Tensor, focal: float | torch.Tensor, tol_mm: float = 4.0
                        ) -> torch.Tensor:
    """(B,68) bool: the landmark is not hidden by the face (its depth is within ``tol_mm`` of
    the depth buffer at its pixel). ``depth`` (B,1,H,W) at focal length ``focal`` (pixels, or (B,))."""
    b, _, h, w = depth.shape
    xy, z = project(lmk_cam, Camera(focal=focal, size=w))
    px = xy[..., 0].floor().long().clamp(0, w - 1)
    py = xy[..., 1].floor().long().clamp(0, h - 1)
    buf = depth[torch.arange(b, device=depth.device)[:, None], 0, py, px]
    inside = (xy[..., 0] >= 0) & (xy[..., 0] < w) & (xy[..., 1] >= 0) & (xy[..., 1] < h)
    return inside & (buf > 0) & (z <= buf + tol_mm)


def _to_tensor(draws: list[dict], key: str, device) -> torch.Tensor:
    return torch.tensor(np.stack([d[key] for d in draws]), dtype=torch.float32, device=device)


def photo_backgrounds(kind: str) -> PhotoBackgrounds | None:
    """The 300-W background bank for ``kind == "photos"`` when the shared photos exist, else None
    (samples then get the procedural fallback, recorded per sample)."""
    if kind != "photos":
        return None
    try:
        return PhotoBackgrounds()
    except FileNotFoundError:
        return None


def index_batches(n: int, start: int, batch_size: int, progress: bool = False, desc: str = "synth"
                  ) -> Iterator[list[int]]:
    """Sample indices ``start .. start+n-1`` in lists of ``batch_size``, with a progress bar."""
    from tqdm import tqdm

    with tqdm(total=n, unit="img", desc=desc, disable=not progress) as bar:
        for b0 in range(start, start + n, batch_size):
            idx = list(range(b0, min(b0 + batch_size, start + n)))
            yield idx
            bar.update(len(idx))


def generate_batches(n: int, seed: int = 0, config: SynthConfig | None = None, *,
                     device: str | torch.device = "cpu", batch_size: int = 16, model=None,
                     start: int = 0, progress: bool = False) -> Iterator[dict[str, Any]]:
    """Yield batches of synthetic samples ``start .. start+n-1`` as dicts of batched tensors.

    Keys: ``index`` (B,) int64; ``params`` the true :class:`FaceParams` (α, β, δ, γ, angles in
    radians, translation in mm); ``image`` (B,3,S,S) [0,1]; ``mask`` (B,1,S,S) face coverage
    {0,1}; ``verts`` (B,V,3) true mesh in model space, mm; ``landmarks3d`` (B,68,3) mm;
    ``landmarks2d`` (B,68,2) pixels (renderer convention, the model's fixed landmark vertices);
    ``landmarks_visible`` (B,68) bool; ``focal`` (B,) pixels, the camera each sample was
    rendered through (``config.focal`` unless ``config.distance_mm`` draws a distance per sample);
    plus ``meta``: a list of per-sample dicts (background source, noise level, camera distance).
    ``model`` is a loaded face model (default: ``load_face_model(config.region)``).
    """
    from facerecon.facemodel import load_face_model

    cfg = config or SynthConfig()
    if model is None:
        model = load_face_model(region=cfg.region)
    model = model.to(device)
    forward = ForwardModel(model, Camera(focal=cfg.focal, size=cfg.size), contour=False)
    with torch.no_grad():
        reference = model.landmarks(model.mean[None])[0]
    photos = photo_backgrounds(cfg.background)
    skins = None
    if cfg.skin_samples:
        from facerecon.synthesis.skins import SkinBank

        skins = SkinBank(cfg.skin_samples, model)
    for idx in index_batches(n, start, batch_size, progress, "synth"):
        draws = [draw_sample(seed, i, cfg, model.n_id, model.n_exp, model.n_tex) for i in idx]
        t = {k: _to_tensor(draws, k, device) for k in ("alpha", "beta", "delta", "gamma", "angles", "jitter")}
        bgs, metas = [], []
        for d in draws:
            bg, info = make_background(cfg.background, d["rng"], cfg.size, photos)
            bgs.append(bg)
            metas.append({"background": info, "noise_std": d["noise_std"]})
        if skins is not None:  # real skin: one photo's albedo per sample, δ = 0 (not the basis)
            picked = [skins.pick(d["rng"]) for d in draws]
            for m, (_, name) in zip(metas, picked):
                m["skin_sample"] = name
            t["delta"] = torch.zeros_like(t["delta"])
        focal = torch.full((len(idx),), float(cfg.focal), device=device)
        seen = forward
        if cfg.distance_mm:  # each sample its own camera distance, the face its usual size in the crop
            distance = torch.tensor([d["distance"] for d in draws], dtype=torch.float32, device=device)
            focal = distance_focal(distance, reference, cfg)
            seen = forward.with_camera(Camera(focal=focal, size=cfg.size))
            for m, d in zip(metas, draws):
                m["distance_mm"] = d["distance"]
        with torch.no_grad():
            params = FaceParams(t["alpha"], t["beta"], t["delta"], t["gamma"], t["angles"],
                                torch.zeros(len(idx), 3, device=device))
            params.trans = frame_translation(forward.landmarks3d(params), params.angles, t["jitter"], reference, cfg,
                                             focal=focal if cfg.distance_mm else None)
            out = seen(params, render=False)
            colors = out.colors
            if skins is not None:
                colors, _ = shade_vertices(out.verts_cam, model.faces, skins.tensor([a for a, _ in picked], device),
                                           params.gamma)
            background = torch.tensor(np.stack(bgs), device=device).permute(0, 3, 1, 2)
            image, cov, depth = render_over(out.verts_cam, model.faces, colors, background, seen.camera.focal,
                                            cfg.size, cfg.supersample)
            noise = torch.tensor(np.stack([d["rng"].standard_normal((3, cfg.size, cfg.size)) * d["noise_std"]
                                           for d in draws]), dtype=torch.float32, device=device)
            image = (image + noise).clamp(0, 1)
            lmk_cam = model.landmarks(out.verts_cam)
            visible = landmark_visibility(lmk_cam, depth, seen.camera.focal * cfg.supersample)
        yield {
            "index": torch.tensor(idx, dtype=torch.int64), "params": params,
            "image": image, "mask": (cov >= 0.5).float(), "verts": out.verts,
            "landmarks3d": model.landmarks(out.verts), "landmarks2d": out.landmarks,
            "landmarks_visible": visible,
            "focal": focal,
            "meta": metas,
        }


def generate(n: int, seed: int = 0, config: SynthConfig | None = None, **kwargs
             ) -> Iterator[dict[str, Any]]:
    """Yield ``n`` synthetic samples one by one: the keys of :func:`generate_batches` without the
    batch axis (``params`` keeps a batch of 1; ``meta`` becomes that sample's dict, ``index`` an int)."""
    for batch in generate_batches(n, seed, config, **kwargs):
        for j in range(len(batch["index"])):
            yield {k: (v[j] if isinstance(v, (torch.Tensor, list, FaceParams)) else v) for k, v in batch.items()
                   if k != "index"} | {"index": int(batch["index"][j])}


__all__ = ["render_over", "landmark_visibility", "photo_backgrounds", "index_batches", "generate_batches", "generate"]
