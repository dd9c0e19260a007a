"""Analysis by synthesis: fit x = (α, β, δ, γ, p) to aligned 224×224 crops by gradient descent
on the hybrid loss. Needs no trained network; batched; runs on CPU or GPU.

Stages, coarse to fine:
0. pose from the 68 landmarks by PnP on the mean face (closed form per image);
1. landmarks only: pose and expression (cheap: no rendering), with the jaw contour points
   re-assigned to the model's silhouette as the head turns;
2. everything, with the full loss: photometric (skin attention), landmarks, FaceNet perceptual,
   coefficient and texture regularisers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from facerecon.facemodel.model import FaceModel
from facerecon.losses import (
    LossTerms, LossWeights, coef_loss, hybrid_loss, landmark_loss, landmark_weights, perceptual_loss,
    photo_loss, texture_loss,
)
from facerecon.params import FaceParams
from facerecon.render import Camera, Renderer, matrix_to_euler, project, sh_shading, transform


@dataclass
class FitConfig:
    """How the fitting engine runs; defaults chosen by measurement (see BENCHMARKS.md)."""

    region: str = "narrow"
    """Face-model region rendered for the photometric and perceptual terms ("narrow" or "fit")."""
    landmark_steps: int = 120
    """Steps of stage 1 (pose and expression from landmarks only)."""
    landmark_identity: bool = True
    """Let stage 1 move the identity α too (else only pose and expression, which then absorb
    identity: measured worse on the Lee Perry-Smith views)."""
    steps: int = 100
    """Steps of stage 2 (everything, full hybrid loss)."""
    lr: float = 0.02
    """Adam learning rate for coefficients (α, β, δ, γ)."""
    lr_pose: float = 0.005
    """Adam learning rate for the rotation angles (radians)."""
    lr_trans: float = 1.0
    """Adam learning rate for the translation (mm)."""
    perceptual: bool = True
    """Use the FaceNet perceptual term in stage 2 (slower on CPU)."""
    perceptual_every: int = 4
    """Evaluate the FaceNet term every N-th step of stage 2 only (it is most of a CPU step; every
    2nd to 5th step measured within 0.05 mm of each other on the Lee Perry-Smith views and the
    synthetic faces; every 4th keeps one photo under 5 s on a 2-vCPU CPU)."""
    perceptual_box: tuple[float, float, float, float] = (0.1, 0.12, 0.9, 0.92)
    """Crop of the 224 aligned image given to FaceNet (fractions x0, y0, x1, y1)."""
    contour: bool = True
    """Re-assign the 17 jaw landmarks to the model's silhouette (turned faces)."""
    contour_every: int = 10
    """Steps between contour re-assignments."""
    jaw_weight: float = 0.3
    """Landmark weight ω of the jaw contour points (nose/mouth: 20, others: 1); below 1 because
    detectors place the contour loosely (measured better on the Lee Perry-Smith views)."""
    rgb_light: bool = False
    """27 RGB light coefficients instead of the paper's 9 monochromatic ones."""
    weights: LossWeights = field(default_factory=lambda: LossWeights(coef_exp=10.0, landmark=8e-4))
    """Loss weights: the paper's, except ‖β‖² weighted 10 instead of 0.8 — ICT's ARKit
    blendshapes at 1.0 are full expressions, not std-scaled PCA modes, and with 0.8 the fit put
    ~15 blendshape units of expression on a neutral scan — and the landmark term at half weight
    (8e-4): measured closer to the scan's shape and to synthetic truth, at a slightly larger 2D
    landmark error (BENCHMARKS.md)."""


@dataclass
class FitResult:
    """Fitted parameters (batched) and the final loss terms per image."""

    params: FaceParams
    losses: LossTerms
    landmarks_2d: torch.Tensor
    """The model's 68 landmarks projected into the crop (B,68,2), pixels (contour-corrected)."""
    history: list[dict[str, float]]


class ContourLandmarks:
    """Moving jaw contour: for each jaw landmark 0–7 and 9–16, a band of candidate vertices at
    its height; the candidate projecting furthest outwards is the silhouette point.

    Works on a small vertex subset (``vertex_ids``: the 68 landmarks and all candidates) so the
    landmark stage never computes the whole mesh; ids it returns index that subset.
    """

    def __init__(self, model: FaceModel, band_mm: float = 2.5, back_mm: float = 10.0, enabled: bool = True) -> None:
        mean = model.mean.detach().cpu().numpy()
        lmk = model.landmark_idx.cpu().numpy()
        face = np.flatnonzero(model.vertex_ids < 9409)  # the kit's face part only
        jaw = [*range(8), *range(9, 17)]
        cands: list[np.ndarray] = []
        for k in jaw:
            p = mean[lmk[k]]
            sel = face[(np.abs(mean[face, 1] - p[1]) < band_mm)
                       & (np.sign(mean[face, 0]) == np.sign(p[0])) & (np.abs(mean[face, 0]) > 0.5 * abs(p[0]))
                       & (mean[face, 2] > p[2] - back_mm)]
            cands.append(np.unique(np.append(sel, lmk[k])) if enabled else np.array([lmk[k]]))
        width = max(len(c) for c in cands)
        table = np.stack([np.pad(c, (0, width - len(c)), mode="edge") for c in cands])
        sub, inverse = np.unique(np.concatenate([lmk, table.ravel()]), return_inverse=True)
        self.vertex_ids = torch.as_tensor(sub)  # (S,) model vertex ids
        self.landmarks = torch.as_tensor(inverse[:68])  # (68,) into the subset
        self.candidates = torch.as_tensor(inverse[68:].reshape(table.shape))  # (16, C) into the subset
        self.slots = torch.tensor(jaw)
        self.side = torch.tensor([-1.0 if k < 8 else 1.0 for k in jaw])

    def assign(self, xy: torch.Tensor) -> torch.Tensor:
        """Per-image landmark ids (B,68) into the subset, given its projected vertices (B,S,2)."""
        dev = xy.device
        cand = self.candidates.to(dev)
        u = xy[:, cand.reshape(-1), 0].reshape(xy.shape[0], *cand.shape)  # (B,16,C)
        # the subject's right (landmarks 0-7) is image left: outermost = smallest u
        score = u * self.side.to(dev)[None, :, None]
        best = cand[torch.arange(cand.shape[0], device=dev)[None], score.argmax(-1)]  # (B,16)
        ids = self.landmarks.to(dev)[None].repeat(xy.shape[0], 1)
        ids[:, self.slots.to(dev)] = best
        return ids


def pnp_pose(model_points: np.ndarray, image_points: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Head pose (angles (3,) radians, translation (3,) mm) from 3D–2D landmark pairs by PnP."""
    k = np.array([[camera.focal, 0, camera.center], [0, camera.focal, camera.center], [0, 0, 1]], float)
    # OpenCV's camera looks down +z with y down; ours looks down -z with y up: flip y and z.
    flip = np.diag([1.0, -1.0, -1.0])
    rvec0 = cv2.Rodrigues(flip)[0]  # frontal face: R_cv = flip
    tvec0 = np.array([[0.0], [0.0], [1000.0]])
    ok, rvec, tvec = cv2.solvePnP(model_points.astype(np.float64), image_points.astype(np.float64), k, None,
                                  rvec0, tvec0, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or tvec[2, 0] <= 0:
        return np.zeros(3), np.array([0.0, 0.0, -1000.0])
    rot = flip @ cv2.Rodrigues(rvec)[0]
    angles = matrix_to_euler(torch.as_tensor(rot[None], dtype=torch.float32))[0].numpy()
    return angles, (flip @ tvec)[:, 0]


class Fitter:
    """Fit the face model to aligned crops: ``Fitter(model).fit(images, landmarks, attention)``."""

    def __init__(self, model: FaceModel, camera: Camera | None = None, facenet=None,
                 config: FitConfig | None = None) -> None:
        self.model = model
        self.camera = camera or Camera()
        self.config = config or FitConfig()
        self.facenet = facenet
        self.renderer = Renderer(self.camera)
        self.contour = ContourLandmarks(model, enabled=self.config.contour)
        sub = self.contour.vertex_ids.to(self.device)
        v = model.n_vertices
        cols = (sub[:, None] * 3 + torch.arange(3, device=self.device)).reshape(-1)
        self._sub = sub
        self._sub_mean = model.mean[sub]
        self._sub_id = model.id_basis.reshape(-1, v * 3)[:, cols]
        self._sub_exp = model.exp_basis.reshape(-1, v * 3)[:, cols]

    @property
    def device(self) -> torch.device:
        return self.model.mean.device

    # --- pieces -----------------------------------------------------------------------------
    def init_pose(self, landmarks: torch.Tensor) -> FaceParams:
        """Stage 0: neutral mean face posed by PnP on the inner 51 landmarks."""
        b = landmarks.shape[0]
        params = FaceParams.zeros(b, self.model.n_id, self.model.n_exp, self.model.n_tex,
                                  rgb_light=self.config.rgb_light, device=self.device)
        mean_lmk = self.model.mean[self.model.landmark_idx].detach().cpu().numpy()
        for i in range(b):
            ang, t = pnp_pose(mean_lmk[17:], landmarks[i, 17:].detach().cpu().numpy(), self.camera)
            params.angles[i] = torch.as_tensor(ang, dtype=torch.float32)
            params.trans[i] = torch.as_tensor(t, dtype=torch.float32)
        return params

    def coef_loss(self, params: FaceParams) -> torch.Tensor:
        w = self.config.weights
        return coef_loss(params.alpha, params.beta, params.delta, w.coef_id, w.coef_exp, w.coef_tex)

    def sub_shape(self, params: FaceParams) -> torch.Tensor:
        """Vertices (B,S,3) mm of the landmark/contour subset only (cheap)."""
        flat = self._sub_mean.reshape(1, -1) + params.alpha @ self._sub_id + params.beta @ self._sub_exp
        return flat.reshape(params.batch, -1, 3)

    def landmarks_2d(self, sub_verts: torch.Tensor, params: FaceParams, ids: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected 68 landmarks (B,68,2) from subset vertices; jaw contour re-assigned unless
        ``ids`` (B,68) are given. Returns (points, ids)."""
        xy, _ = project(transform(sub_verts, params.angles, params.trans), self.camera)
        return self.pick_landmarks(xy, ids)

    def pick_landmarks(self, sub_xy: torch.Tensor, ids: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """The 68 landmarks (B,68,2) among already projected subset vertices (B,S,2)."""
        if ids is None:
            ids = self.contour.assign(sub_xy.detach())
        return torch.gather(sub_xy, 1, ids[..., None].expand(-1, -1, 2)), ids

    def render(self, params: FaceParams, background: torch.Tensor | float = 0.0):
        """Render the fitted face (fit region) into the crop; returns (RenderOutput, vertices)."""
        verts = self.model.shape(params.alpha, params.beta)
        vc = transform(verts, params.angles, params.trans)
        albedo = self.model.albedo(params.delta).clamp(0, 1)
        colors = sh_shading(albedo, self.model.vertex_normals(vc), params.gamma)
        return self.renderer(vc, self.model.faces, colors, background), verts, albedo

    # --- the fit ------------------------------------------------------------------------------
    def fit(self, images: torch.Tensor, landmarks: torch.Tensor, attention: torch.Tensor | None = None,
            init: FaceParams | None = None, progress=None) -> FitResult:
        """Fit (B,3,224,224) crops in [0,1] with their (B,68,2) landmarks (crop pixels) and skin
        attention (B,1,224,224). ``progress(step, total)`` is called after each step."""
        cfg, dev = self.config, self.device
        images, landmarks = images.to(dev), landmarks.to(dev).float()
        attention = attention.to(dev) if attention is not None else None
        w = cfg.weights
        omega = landmark_weights(jaw=cfg.jaw_weight, device=dev)
        params = init.map(lambda t: t.detach().clone().to(dev)) if init is not None else self.init_pose(landmarks)
        total_steps = cfg.landmark_steps + cfg.steps
        history: list[dict[str, float]] = []

        # stage 1: pose + expression from landmarks
        coefs = [params.beta, params.alpha] if cfg.landmark_identity else [params.beta]
        for t in (params.angles, params.trans, *coefs):
            t.requires_grad_()
        opt = torch.optim.Adam([
            {"params": [params.angles], "lr": cfg.lr_pose},
            {"params": [params.trans], "lr": cfg.lr_trans},
            {"params": coefs, "lr": cfg.lr},
        ])
        ids = None
        for step in range(cfg.landmark_steps):
            lm, ids = self.landmarks_2d(self.sub_shape(params), params,
                                        None if step % cfg.contour_every == 0 else ids)
            loss = (w.landmark * landmark_loss(lm, landmarks, omega) + w.coef * self.coef_loss(params)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                params.beta.clamp_(0.0, 1.0)
            if progress:
                progress(step + 1, total_steps)

        # stage 2: everything, full hybrid loss
        for k in ("alpha", "delta", "gamma"):
            getattr(params, k).requires_grad_()
        opt = torch.optim.Adam([
            {"params": [params.angles], "lr": cfg.lr_pose},
            {"params": [params.trans], "lr": cfg.lr_trans},
            {"params": [params.alpha, params.beta, params.delta, params.gamma], "lr": cfg.lr},
        ])
        use_per = cfg.perceptual and self.facenet is not None and w.perceptual > 0
        target_emb = None
        if use_per:
            with torch.no_grad():
                target_emb = self.facenet.embed(images, cfg.perceptual_box)
        terms = None
        for step in range(cfg.steps + 1):
            final = step == cfg.steps
            with torch.set_grad_enabled(not final):
                out, verts, albedo = self.render(params)
                # the render already projected every vertex: reuse it for the landmarks
                lm, ids = self.pick_landmarks(out.xy[:, self._sub], None if step % cfg.contour_every == 0 else ids)
                l_photo = photo_loss(out.image, images, out.mask, attention)
                l_per = None
                if use_per and (final or step % cfg.perceptual_every == 0):
                    composite = out.image * out.mask + images * (1 - out.mask)
                    l_per = perceptual_loss(self.facenet.embed(composite, cfg.perceptual_box), target_emb)
                terms = hybrid_loss(
                    w, photo=l_photo, landmark=landmark_loss(lm, landmarks, omega), perceptual=l_per,
                    coef=self.coef_loss(params),
                    texture=texture_loss(albedo, self.model.skin_mask),
                )
            history.append(terms.as_dict())
            if final:
                break
            opt.zero_grad(set_to_none=True)
            terms.total.sum().backward()
            opt.step()
            with torch.no_grad():
                params.beta.clamp_(0.0, 1.0)
            if progress:
                progress(cfg.landmark_steps + step + 1, total_steps)

        params = params.map(lambda t: t.detach())
        with torch.no_grad():
            lm2d, _ = self.landmarks_2d(self.sub_shape(params), params)
        return FitResult(params=params, losses=terms,
                         landmarks_2d=lm2d, history=history)
