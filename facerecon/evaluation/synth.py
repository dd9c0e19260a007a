"""Synthetic ground truth: Generate&Render faces whose every parameter is known.

Random identities (α ~ N(0,1)·``id_scale``), sparse expressions (a few blendshapes active,
β in [0,1]), albedos (δ ~ N(0,1)·``tex_scale``), poses (yaw up to ±60°, smaller pitch and roll)
and spherical-harmonics lights (ambient dominant, one directional band, a little second band),
rendered with the project renderer at 224×224 (2× supersampled edges) over real-photo
backgrounds: crops of ``../shared/faces/300w`` photos taken *outside* the annotated face (the
ground-truth landmark box, widened for forehead and hair), enlarged and blurred like an
out-of-focus background.

Every sample is drawn from its own random stream ``(seed, index)``: the same seed gives the same
samples whatever the batch size, the count or the device.

Python API: :func:`generate` (per-sample dicts of tensors, in memory), :func:`generate_batches`
(batched dicts, e.g. as training data) and :func:`save_sample` (PNG, parameters JSON, PLY mesh,
300-W ``.pts``). The CLI is ``facerecon synth``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from facerecon.assets import shared_path

#: Landmark convention of ``landmarks2d``: renderer pixels, pixel (i, j) has its centre at
#: (j + 0.5, i + 0.5). ``.pts`` files are written in the 0-based pixel-centre convention of dlib
#: and OpenCV (renderer coordinates − 0.5).
PTS_OFFSET = -0.5


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


# ---------------------------------------------------------------------------------------------
# backgrounds


class PhotoBackgrounds:
    """Background images cut from 300-W photos outside the annotated face.

    300-W crops (``faces/300w/{train,test}``) come with ground-truth landmarks; the excluded face
    area is their bounding box widened by ``side`` of its width on each side, ``top`` of its
    height above (forehead, hair) and ``bottom`` below. Patches that touch it, or that hold
    black "outside the photo" padding, are never chosen: the patch corner is drawn among the
    positions whose whole patch is clear of both.
    """

    def __init__(self, root: str | os.PathLike | None = None, side: float = 0.25, top: float = 0.6,
                 bottom: float = 0.15, min_patch: int = 28, max_patch: int = 96, cache: int = 64):
        base = Path(root) if root is not None else shared_path("faces", "300w")
        if base is None or not Path(base).is_dir():
            raise FileNotFoundError("faces/300w not found in the shared data folder")
        self.files = sorted(p for p in Path(base).rglob("*.jpg") if p.with_suffix(".pts").is_file())
        if not self.files:
            raise FileNotFoundError(f"{base}: no .jpg with a .pts beside it")
        self.side, self.top, self.bottom = side, top, bottom
        self.min_patch, self.max_patch = min_patch, max_patch
        self._cache: OrderedDict[Path, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_size = cache

    def face_box(self, pts: np.ndarray) -> np.ndarray:
        """Excluded area (x0, y0, x1, y1) in pixels for 68 landmarks (68,2)."""
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        w, h = x1 - x0, y1 - y0
        return np.array([x0 - self.side * w, y0 - self.top * h, x1 + self.side * w, y1 + self.bottom * h])

    def _load(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        from PIL import Image

        from facerecon.evaluation.landmarks import read_pts

        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"))
        item = (img, self.face_box(read_pts(path.with_suffix(".pts")).astype(np.float64)))
        self._cache[path] = item
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return item

    def _valid_corners(self, img: np.ndarray, face: np.ndarray, s: int) -> np.ndarray:
        """(K,2) top-left corners (x, y) of s×s patches clear of the face area and of padding."""
        h, w = img.shape[:2]
        bad = (img.max(-1) < 6).astype(np.int32)  # black "outside the photo"
        x0, y0, x1, y1 = np.floor(face[:2]).astype(int).tolist() + np.ceil(face[2:]).astype(int).tolist()
        bad[max(y0, 0):max(min(y1, h), 0), max(x0, 0):max(min(x1, w), 0)] = 1
        integ = np.pad(bad.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        counts = integ[s:, s:] - integ[:-s, s:] - integ[s:, :-s] + integ[:-s, :-s]
        ys, xs = np.nonzero(counts == 0)
        return np.stack([xs, ys], 1)

    def sample(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
        """One background (size,size,3) float32 in [0,1] and where it came from
        (``source``: path relative to the shared folder, ``box``: x0, y0, x1, y1 in its pixels)."""
        import cv2

        for _ in range(100):
            path = self.files[int(rng.integers(len(self.files)))]
            img, face = self._load(path)
            s = int(rng.integers(self.min_patch, self.max_patch + 1))
            corners = np.zeros((0, 2), int)
            while s >= self.min_patch:
                if s < min(img.shape[:2]):
                    corners = self._valid_corners(img, face, s)
                    if len(corners):
                        break
                s = int(s * 0.8)
            if not len(corners):
                continue
            x, y = (int(v) for v in corners[int(rng.integers(len(corners)))])
            patch = img[y:y + s, x:x + s]
            flipped = bool(rng.random() < 0.5)
            if flipped:
                patch = patch[:, ::-1]
            out = cv2.resize(np.ascontiguousarray(patch), (size, size), interpolation=cv2.INTER_CUBIC)
            sigma = float(rng.uniform(0.5, 2.5))
            out = cv2.GaussianBlur(out, (0, 0), sigma)
            root = shared_path()
            rel = str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)
            return out.astype(np.float32) / 255.0, {"source": rel, "box": [x, y, x + s, y + s],
                                                    "flipped": flipped,
                                                    "blur_sigma_px": round(sigma, 3)}
        raise RuntimeError("no background patch found outside the face areas in 100 photos")


def procedural_background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    """A smooth random colour field (size,size,3) in [0,1]: the fallback without photos."""
    import cv2

    coarse = rng.uniform(0.1, 0.9, size=(4, 4, 3)).astype(np.float32)
    img = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(img, 0, 1), {"source": "procedural"}


def make_background(kind: str, rng: np.random.Generator, size: int,
                    photos: PhotoBackgrounds | None) -> tuple[np.ndarray, dict]:
    """Background (size,size,3) float32 of ``kind`` ("photos", "noise", "grey")."""
    if kind == "photos" and photos is not None:
        return photos.sample(rng, size)
    if kind in ("photos", "noise"):
        return procedural_background(rng, size)
    if kind == "grey":
        return np.full((size, size, 3), 0.5, np.float32), {"source": "grey"}
    raise ValueError(f"unknown background kind {kind!r} (photos, noise or grey)")


# ---------------------------------------------------------------------------------------------
# random draws


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


def frame_translation(lmk_model: torch.Tensor, angles: torch.Tensor, jitter: torch.Tensor,
                      reference: torch.Tensor, cfg: SynthConfig) -> torch.Tensor:
    """(B,3) translation (mm) that frames each face like the pipeline's aligned crops.

    The target is the alignment template (:func:`facerecon.imageio.align.template_landmarks`,
    scaled by ``cfg.frame_scale``): the reference face (``reference``: 68 landmarks of the
    mean face, model space, mm), seen frontally, gets the template's inner-landmark centroid
    and size. Every face is then placed so that the centroid of its inner landmarks projects to
    the same point and its inner-landmark size appears the same, shifted by ``jitter`` ×
    ``shift_mm`` sideways and scaled by 1 + ``jitter`` × ``distance_jitter`` in distance.
    """
    from facerecon.imageio.align import template_landmarks
    from facerecon.render import euler_to_matrix

    tpl = torch.tensor(template_landmarks(cfg.size)[17:], dtype=reference.dtype, device=reference.device)
    tc = tpl.mean(0)
    t_size = (tpl - tc).pow(2).sum(-1).mean().sqrt() * cfg.frame_scale
    c_ref, s_ref = _inner_frame(reference[None])
    inner_xy = reference[17:, :2]
    s_ref_xy = (inner_xy - inner_xy.mean(0)).pow(2).sum(-1).mean().sqrt()
    d_ref = cfg.focal * s_ref_xy / t_size  # depth of the reference centroid
    c, s = _inner_frame(lmk_model)
    rc = (euler_to_matrix(angles) @ c[:, :, None])[..., 0]
    depth = d_ref * (s / s_ref) * (1 + jitter[:, 2] * cfg.distance_jitter)
    centre = cfg.size / 2.0
    tx = (tc[0] - centre) * depth / cfg.focal + jitter[:, 0] * cfg.shift_mm - rc[:, 0]
    ty = -(tc[1] - centre) * depth / cfg.focal + jitter[:, 1] * cfg.shift_mm - rc[:, 1]
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
    return {"alpha": alpha, "beta": beta, "delta": delta, "gamma": gamma, "angles": angles,
            "jitter": jitter, "noise_std": noise, "rng": rng}


# ---------------------------------------------------------------------------------------------
# rendering


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (B,V,3) of any triangle mesh."""
    v0, v1, v2 = verts[:, faces[:, 0]], verts[:, faces[:, 1]], verts[:, faces[:, 2]]
    fn = torch.cross(v1 - v0, v2 - v0, dim=-1)
    n = torch.zeros_like(verts)
    for i in range(3):
        n = n.index_add(1, faces[:, i], fn)
    return F.normalize(n, dim=-1, eps=1e-12)


def render_over(verts_cam: torch.Tensor, faces: torch.Tensor, colors: torch.Tensor,
                background: torch.Tensor, focal: float, size: int, supersample: int = 2
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render camera-space meshes over backgrounds with ``supersample``² samples per pixel.

    Args:
        verts_cam: (B,V,3) mm, camera space. faces: (F,3). colors: (B,V,3) in [0,1].
        background: (B,3,size,size) in [0,1].

    Returns:
        image (B,3,size,size) [0,1], coverage (B,1,size,size) in [0,1], depth (B,1,H',W') mm at
        the supersampled resolution (0 on background).
    """
    from facerecon.render import Camera, Renderer

    ss = max(int(supersample), 1)
    cam = Camera(focal=focal * ss, size=size * ss)
    out = Renderer(cam)(verts_cam, faces, colors, background=0.0)
    img, cov = out.image, out.mask
    if ss > 1:
        img, cov = F.avg_pool2d(img, ss), F.avg_pool2d(cov, ss)
    return (img + (1 - cov) * background).clamp(0, 1), cov, out.depth


def landmark_visibility(lmk_cam: torch.Tensor, depth: torch.Tensor, focal: float, tol_mm: float = 4.0
                        ) -> torch.Tensor:
    """(B,68) bool: the landmark is not hidden by the face (its depth is within ``tol_mm`` of
    the depth buffer at its pixel). ``depth`` (B,1,H,W) at focal length ``focal`` (pixels)."""
    from facerecon.render import Camera, project

    b, _, h, w = depth.shape
    xy, z = project(lmk_cam, Camera(focal=focal, size=w))
    px = xy[..., 0].floor().long().clamp(0, w - 1)
    py = xy[..., 1].floor().long().clamp(0, h - 1)
    buf = depth[torch.arange(b, device=depth.device)[:, None], 0, py, px]
    inside = (xy[..., 0] >= 0) & (xy[..., 0] < w) & (xy[..., 1] >= 0) & (xy[..., 1] < h)
    return inside & (buf > 0) & (z <= buf + tol_mm)


def _to_tensor(draws: list[dict], key: str, device) -> torch.Tensor:
    return torch.tensor(np.stack([d[key] for d in draws]), dtype=torch.float32, device=device)


def generate_batches(n: int, seed: int = 0, config: SynthConfig | None = None, *,
                     device: str | torch.device = "cpu", batch_size: int = 16, model=None,
                     start: int = 0, progress: bool = False) -> Iterator[dict[str, Any]]:
    """Yield batches of synthetic samples ``start .. start+n-1`` as dicts of batched tensors.

    Keys: ``index`` (B,) int64; ``image`` (B,3,S,S) [0,1]; ``mask`` (B,1,S,S) face coverage
    {0,1}; ``alpha`` (B,80), ``beta`` (B,53), ``delta`` (B,80), ``gamma`` (B,9), ``angles``
    (B,3) radians (pitch, yaw, roll), ``trans`` (B,3) mm; ``verts`` (B,V,3) true mesh in model
    space, mm; ``landmarks3d`` (B,68,3) mm; ``landmarks2d`` (B,68,2) pixels (renderer
    convention); ``landmarks_visible`` (B,68) bool; ``focal`` (B,) pixels; plus ``meta``: a
    list of per-sample dicts (background source, noise level). ``model`` is a loaded face
    model (default: ``load_face_model(config.region)``).
    """
    from facerecon.facemodel import load_face_model
    from facerecon.render import project, sh_shading, transform

    cfg = config or SynthConfig()
    if model is None:
        model = load_face_model(region=cfg.region)
    model = model.to(device)
    faces = model.faces.to(device)
    with torch.no_grad():
        reference = model.landmarks(model.mean[None])[0]
    photos = None
    if cfg.background == "photos":
        try:
            photos = PhotoBackgrounds()
        except FileNotFoundError:
            photos = None  # procedural fallback, recorded per sample
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="img", desc="synth")
    for b0 in range(start, start + n, batch_size):
        idx = list(range(b0, min(b0 + batch_size, start + n)))
        draws = [draw_sample(seed, i, cfg, model.n_id, model.n_exp, model.n_tex) for i in idx]
        alpha, beta, delta = (_to_tensor(draws, k, device) for k in ("alpha", "beta", "delta"))
        gamma, angles, jitter = (_to_tensor(draws, k, device) for k in ("gamma", "angles", "jitter"))
        bgs, metas = [], []
        for d in draws:
            bg, info = make_background(cfg.background, d["rng"], cfg.size, photos)
            bgs.append(bg)
            metas.append({"background": info, "noise_std": d["noise_std"]})
        with torch.no_grad():
            verts = model.shape(alpha, beta)
            trans = frame_translation(model.landmarks(verts), angles, jitter, reference, cfg)
            albedo = model.albedo(delta).clamp(0, 1)
            vc = transform(verts, angles, trans)
            colors = sh_shading(albedo, model.vertex_normals(vc), gamma)
            background = torch.tensor(np.stack(bgs), device=device).permute(0, 3, 1, 2)
            image, cov, depth = render_over(vc, faces, colors, background, cfg.focal, cfg.size,
                                            cfg.supersample)
            noise = torch.tensor(np.stack([d["rng"].standard_normal((3, cfg.size, cfg.size)) * d["noise_std"]
                                           for d in draws]), dtype=torch.float32, device=device)
            image = (image + noise).clamp(0, 1)
            lmk_cam = model.landmarks(vc)
            from facerecon.render import Camera

            lmk2d, _ = project(lmk_cam, Camera(focal=cfg.focal, size=cfg.size))
            visible = landmark_visibility(lmk_cam, depth, cfg.focal * cfg.supersample)
        yield {
            "index": torch.tensor(idx, dtype=torch.int64),
            "image": image, "mask": (cov >= 0.5).float(),
            "alpha": alpha, "beta": beta, "delta": delta, "gamma": gamma,
            "angles": angles, "trans": trans, "verts": verts,
            "landmarks3d": model.landmarks(verts), "landmarks2d": lmk2d, "landmarks_visible": visible,
            "focal": torch.full((len(idx),), float(cfg.focal), device=device),
            "meta": metas,
        }
        if bar is not None:
            bar.update(len(idx))
    if bar is not None:
        bar.close()


def generate(n: int, seed: int = 0, config: SynthConfig | None = None, **kwargs
             ) -> Iterator[dict[str, Any]]:
    """Yield ``n`` synthetic samples one by one: the keys of :func:`generate_batches` without the
    batch axis (``meta`` becomes that sample's dict, ``index`` a Python int)."""
    for batch in generate_batches(n, seed, config, **kwargs):
        for j in range(len(batch["index"])):
            yield {k: (v[j] if isinstance(v, (torch.Tensor, list)) else v) for k, v in batch.items()
                   if k != "index"} | {"index": int(batch["index"][j])}


# ---------------------------------------------------------------------------------------------
# saving


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def png_bytes(image: torch.Tensor) -> bytes:
    """(3,H,W) [0,1] tensor -> PNG file bytes (8-bit RGB)."""
    import io

    from PIL import Image

    arr = (image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def pts_text(landmarks2d: np.ndarray) -> str:
    """300-W ``.pts`` text for (68,2) renderer-convention pixels (written 0-based: −0.5)."""
    pts = np.asarray(landmarks2d, dtype=np.float64) + PTS_OFFSET
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts)
    return f"version: 1\nn_points: {len(pts)}\n{{\n{body}\n}}\n"


def mesh_ply_bytes(verts: np.ndarray, faces: np.ndarray) -> bytes:
    """Binary PLY of a triangle mesh (coordinates as given, mm)."""
    import trimesh

    return trimesh.Trimesh(np.asarray(verts, dtype=np.float64), np.asarray(faces), process=False).export(file_type="ply")


def sample_record(sample: dict, model=None, extra: dict | None = None) -> dict:
    """The JSON-able ground truth of one sample: every coefficient, pose, camera, landmarks."""

    def lst(key, nd=6):
        return np.round(sample[key].detach().cpu().double().numpy(), nd).tolist()

    ang = sample["angles"].detach().cpu().double().numpy()
    size = int(sample["image"].shape[-1])
    rec: dict = {"index": int(sample["index"])}
    for key in ("alpha", "beta", "delta", "gamma"):
        if key in sample:
            rec[key] = lst(key)
    rec |= {
        "pose": {"angles_rad": np.round(ang, 8).tolist(), "angles_deg": np.round(np.degrees(ang), 5).tolist(),
                 "angle_order": "pitch (x), yaw (y), roll (z); R = Rz Ry Rx",
                 "trans_mm": lst("trans")},
        "camera": {"focal_px": float(sample["focal"]), "size_px": size,
                   "principal_point_px": [size / 2.0, size / 2.0],
                   "convention": "camera at the origin looking down -z, y up; model->camera x_cam = R x + t"},
        "landmarks2d_px": np.round(sample["landmarks2d"].detach().cpu().double().numpy(), 4).tolist(),
        "landmarks2d_convention": "pixel (i, j) has its centre at (j + 0.5, i + 0.5); the .pts file is 0-based (-0.5)",
        "landmarks_visible": sample["landmarks_visible"].detach().cpu().numpy().astype(bool).tolist(),
        "landmarks3d_mm": lst("landmarks3d", 4),
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
    _atomic_write(paths["image"], png_bytes(sample["image"]))
    rec = sample_record(sample, model, extra)
    if mesh:
        paths["mesh"] = out / f"{stem}.ply"
        _atomic_write(paths["mesh"], mesh_ply_bytes(sample["verts"].detach().cpu().numpy(), faces))
        rec["mesh"] = paths["mesh"].name
    rec["image"] = paths["image"].name
    _atomic_write(paths["pts"], pts_text(sample["landmarks2d"].detach().cpu().numpy()).encode())
    _atomic_write(paths["params"], (json.dumps(rec, indent=1) + "\n").encode())
    return paths


def config_record(cfg: SynthConfig) -> dict:
    """The config as JSON-able values."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}


def coefficients_from_record(rec: dict, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """alpha, beta, delta, gamma (1,n), angles (1,3) radians, trans (1,3) mm from a saved JSON."""
    t = lambda v: torch.tensor([v], dtype=torch.float32, device=device)  # noqa: E731
    return {"alpha": t(rec["alpha"]), "beta": t(rec["beta"]), "delta": t(rec["delta"]),
            "gamma": t(rec["gamma"]), "angles": t(rec["pose"]["angles_rad"]),
            "trans": t(rec["pose"]["trans_mm"])}
