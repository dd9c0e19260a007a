"""Analysis by synthesis: fit x = (α, β, δ, γ, p) to aligned 224×224 crops by gradient descent
on the hybrid loss. Needs no trained network; batched; runs on CPU or GPU.

Stages, coarse to fine, each callable on its own and each starting from any :class:`FaceParams`
(PnP's, a previous stage's, or a regressor's output):

0. :meth:`Fitter.init_pose` — pose from the 68 landmarks by PnP on the mean face (closed form);
1. :meth:`Fitter.landmark_stage` — landmarks only: pose, expression and identity (cheap: no
   rendering), with the jaw contour points re-assigned to the model's silhouette as the head turns;
2. :meth:`Fitter.full_stage` — everything, with the full :class:`~facerecon.losses.HybridLoss`:
   photometric (skin attention), landmarks, FaceNet perceptual, coefficient and texture terms.

Photos can be grouped into people (``groups``, one label per photo): photos of one person share
identity α and albedo δ, while pose, expression β and light γ stay per photo. A photo alone is a
group of one; a group of N copies of one photo gives that photo's own fit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Literal, Sequence

import cv2
import numpy as np
import torch

from facerecon.assets import resource_path
from facerecon.config import ConfigError, at_least
from facerecon.facemodel.forehead import ForeheadDepth
from facerecon.facemodel.model import FaceModel
from facerecon.fitting.adam import Adam
from facerecon.forward import ForwardModel
from facerecon.losses import HybridLoss, LossTerms, LossWeights, landmark_weights
from facerecon.params import FaceParams
from facerecon.render import Camera, matrix_to_euler

#: ``progress(done, total)``: called after each step.
Progress = Callable[[int, int], None]


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
    hold_identity: bool = False
    """Keep the identity α where the fit starts (a given start's α: a known identity, e.g. from a
    scan or a fit of the person's other photos; else the prior's centre with ``start_at_prior``,
    else the mean face) and fit only pose, expression, albedo and light. Also a diagnostic: what the
    loss says of a given shape (BENCHMARKS.md, "What the objective prefers")."""
    lr: float = 0.02
    """Adam learning rate for coefficients (α, β, δ, γ)."""
    lr_pose: float = 0.005
    """Adam learning rate for the rotation angles (radians)."""
    lr_trans: float = 1.0
    """Adam learning rate for the translation (mm)."""
    lr_final: float = 1.0
    """Fraction of each learning rate reached at the last step of a stage, along a cosine (1:
    constant rates). Below 1 the last steps settle instead of hopping around the optimum."""
    settle_steps: int = 0
    """Steps of a settling phase after stage 2 (counted apart from ``steps``): the jaw contour
    stays where stage 2 left it, FaceNet runs every step and the rates fall from ``settle_lr`` ×
    to 0 along a cosine, so the fit comes to rest at an optimum instead of stopping mid-stride."""
    settle_lr: float = 0.25
    """Fraction of each learning rate at the start of the settling phase."""
    start_at_prior: bool = False
    """Start identity, albedo and light at the prior's centre (engine rnet-prior: R-Net's
    prediction) instead of at the mean face; pose still from PnP, expression neutral. A short
    fit then starts near its answer: with 35 full-stage steps, 0.10 mm closer to the real-skin
    scan than from the mean face."""
    prior_offset: float = 0.0
    """Where the prior is centred on a prediction (engine rnet-prior, which uses 0.7), move its
    identity centre to α − w·ō, ō the photo population's common offset (the mean fitted identity
    of 383 LFW people, facerecon/resources/identity_offset.json). R-Net learned from fits that
    carry ō in full, more than either data term asks for; with 0.7 the fits carry the photometric
    term's own share and came 0.08 / 0.11 mm closer to the real-skin scan (from the scan) at the
    same LFW identity (BENCHMARKS.md, "The prior's centre moved"). 0: the prediction itself.
    Applied by :meth:`Fitter.fit`; with ``start_at_prior`` the fit starts there too."""
    identity_metric: str = ""
    """A .npy file holding an (n_id, n_id) symmetric matrix M: where the prior is centred on a
    prediction (engine rnet-prior), its identity term is (α − α₀)ᵀ M (α − α₀) instead of
    ‖α − α₀‖², so it can be stiff where the regressor is reliable and loose where it is not
    (tools/identity_metric.py; empty: the plain norm)."""
    forehead_stiffness: float = 1.0
    """Where the prior is centred on a prediction (engine rnet-prior): its identity term's stiffness
    along the one identity direction that moves the forehead forward or back against the inner face
    (facerecon.facemodel.forehead), as a fraction of its stiffness elsewhere. No landmark lies on
    the forehead, so a stiff prior keeps it where the regressor put it, which is where photos of
    people usually have it (1: as stiff as elsewhere; 0: free, only the photo sets it). 0.03 measured
    0.03 mm closer to the real-skin scan with scale but LFW identity AUC 0.011 lower (BENCHMARKS.md,
    "The prior loosened along the forehead")."""
    average_steps: int = 0
    """Return the mean of the unknowns over the last N steps of stage 2 (Polyak averaging)
    instead of the last step's: at a constant rate the fit hops around its optimum, and the mean
    of the hops sits nearer the optimum than any one of them (0: the last step's unknowns)."""
    perceptual: bool = True
    """Use the FaceNet perceptual term in stage 2 (slower on CPU)."""
    perceptual_every: int = 4
    """Evaluate the FaceNet term every N-th step of stage 2 only (it is most of a CPU step; every
    2nd to 5th step measured within 0.05 mm of each other on the Lee Perry-Smith views and the
    synthetic faces; every 4th keeps one photo under 5 s on a 2-vCPU CPU)."""
    perceptual_box: tuple[float, float, float, float] = (0.1, 0.12, 0.9, 0.92)
    """Crop of the 224 aligned image given to FaceNet (fractions x0, y0, x1, y1)."""
    perceptual_blur: float = 0.0
    """Gaussian blur (standard deviation, pixels of the 224 crop) of the render and the photo
    before FaceNet. The z-buffer switches whole pixels as the face moves, and FaceNet reacts to
    single pixels, so its term is rough along the geometry; a blur spreads each switch over its
    neighbours and makes the term smoother (0: no blur)."""
    photo_blur: float = 0.0
    """Gaussian blur (standard deviation, pixels of the 224 crop) of the render over the photo and
    of the photo before the photometric term: compares the shading's broad pattern rather than
    detail the face model cannot reproduce (skin texture, a scan's fine relief; 0: no blur)."""
    nose_mouth_weight: float = 20.0
    """Landmark weight ω of the 29 nose and mouth points (the paper's 20; eyes and brows: 1). With
    20 they carry 95 % of the landmark term; engine rnet-prior uses 5: LFW identity closer to the
    person, the real-skin heads 0.01–0.03 mm closer (BENCHMARKS.md, "Where the pitch comes from")."""
    contour: bool = True
    """Re-assign the 17 jaw landmarks to the model's silhouette (turned faces)."""
    contour_back_mm: float = 10.0
    """How far behind its fixed vertex (mm, in the mean face) a landmark of the jaw's sides (0-4,
    12-16) may slide towards the silhouette; far-turned faces show their jaw line further back."""
    contour_lower_back_mm: float = 10.0
    """The same for the lower jaw either side of the chin (5-7, 9-11), whose band runs along the
    jaw's underside."""
    contour_every: int = 10
    """Steps between contour re-assignments."""
    jaw_weight: float = 0.3
    """Landmark weight ω of the jaw contour points (nose/mouth: 20, others: 1); below 1 because
    detectors place the contour loosely (measured better on the Lee Perry-Smith views)."""
    facing_cos: float = 0.0
    """Brow, eye, nose and mouth landmarks (17-67) count by min(1, c / facing_cos), c the cosine
    between the face's surface there and the direction to the camera at the current pose
    (ForwardModel.landmark_facing; 0 where c <= 0): points a turned head hides, whose place a
    detector can only guess, count less, in the pose's start (PnP) and in both stages. 0: off."""
    brow_weight: float = 1.0
    """Landmark weight ω of the 10 brow points (17-26). A brow sits on the brow ridge at a height
    that differs from person to person and moves with expression; 0, 0.3 and 3 measured within
    0.02 mm of 1 on the real-skin renders, the forehead unmoved (BENCHMARKS.md, "What the objective
    prefers")."""
    chin_weight: float | None = None
    """Landmark weight ω of the chin point (8) alone (None: ``jaw_weight``). Detectors put the chin
    above the face's own chin point, the more so on turned and tilted heads."""
    landmark_spread_px: float = 0.0
    """Each landmark counts by 1 / (1 + (s / landmark_spread_px)²), s its spread over the detector's
    jittered boxes (crop pixels; :attr:`~facerecon.imageio.PreparedFace.landmark_spread`): points
    the detector is unsure of (a turned face's eyes and brows, an occluded jaw) count less, in both
    stages. Landmarks given without a spread count fully. 0: off. At 2 px the real-skin heads came
    0.03–0.05 mm closer rigid, tied with scale and on LFW identity, but 300-W's fitted landmarks went
    0.10 NME points further from the annotation (BENCHMARKS.md, "the detector's own spread")."""
    antialias: bool = False
    """Blend the render across silhouette edges (facerecon.render.antialias), so that the
    photometric and FaceNet terms change continuously as the face moves; without it a pixel
    jumps from one surface to another as an edge passes its centre, which the gradient does
    not see. Off: on the fit it measured no less batch-dependent, further from the real-skin
    scan and slower (BENCHMARKS.md, "Is the objective smooth")."""
    rgb_light: bool = False
    """27 RGB light coefficients instead of the paper's 9 monochromatic ones."""
    albedo: Literal["spectral", "learned"] = "learned"
    """Albedo model the face model is loaded with: "learned" (PCA of 1,824 de-lit real photos,
    facerecon/resources/albedo_pca.npz; measured closer to the scan on real-skin renders) or
    "spectral" (smooth modes built from the geometry; no research-only data behind it)."""
    landmarks: Literal["ict", "300w", "300w-photo"] = "300w-photo"
    """Which mesh vertices stand for the 68 landmarks: "300w-photo" (47 of "300w"'s points moved
    0.8–4.8 mm to where fits shaped by the photometric term alone put 300-W train's annotated
    points, so the landmark term asks for the face the shading shows; real skin 0.04 / 0.03 mm
    closer, LFW AUC 0.0035 lower, fitted-landmark NME on 300-W test 0.22 points higher; the shape
    gain and most of the NME cost sit in the mouth points; BENCHMARKS.md "chosen on
    photometric-only fits"); "300w" (50 of ICT's 68 points moved to where fits with the landmark
    term put them; the default until 2026-12-05); both mirror-symmetric, jaw anchors included,
    in facerecon/resources/landmarks_300w*.json; or "ict" (the kit's own list)."""
    weights: LossWeights = field(default_factory=lambda: LossWeights(coef_exp=20.0, landmark=2e-4, perceptual=0.4))
    """Loss weights: the paper's, except ‖β‖² weighted 20 instead of 0.8 — ICT's ARKit
    blendshapes at 1.0 are full expressions, not std-scaled PCA modes, and with 0.8 the fit put
    ~15 blendshape units of expression on a neutral scan; 20 rather than 10 (until 2026-12-03)
    puts less of it there (real skin with scale 0.018 mm closer) at the same 300-W landmark
    error and LFW identity (BENCHMARKS.md, "Stage G") — the landmark term at an eighth of
    the paper's weight (2e-4): on the Lee Perry-Smith scan painted with held-out real skin it
    measured closer to the scan than 4e-4, 8e-4 and 1.6e-3, and the LFW identity vectors
    followed the person better (BENCHMARKS.md, "Accuracy on real skin", "Identity"), at a larger
    2D landmark error — and the FaceNet term at twice the paper's (0.4): LFW identity AUC 0.908
    against 0.897, the same distance to the real-skin scan (0.8 was further), at a larger batch
    dependence (BENCHMARKS.md, "The FaceNet weight")."""

    def __post_init__(self) -> None:
        at_least(self, 0, "landmark_steps", "steps", "settle_steps", "average_steps")
        at_least(self, 1, "perceptual_every", "contour_every")
        at_least(self, 0.0, "forehead_stiffness", "lr", "lr_pose", "lr_trans", "lr_final", "settle_lr",
                 "perceptual_blur", "photo_blur", "nose_mouth_weight", "contour_back_mm", "contour_lower_back_mm", "jaw_weight", "brow_weight",
                 "chin_weight", "landmark_spread_px")
        if not -1.0 <= self.facing_cos <= 1.0:
            raise ConfigError("facing_cos", f"must be a cosine, from -1 to 1 (got {self.facing_cos})")
        box = tuple(self.perceptual_box)
        if len(box) != 4 or not (0.0 <= box[0] < box[2] <= 1.0 and 0.0 <= box[1] < box[3] <= 1.0):
            raise ConfigError("perceptual_box", f"must be x0 y0 x1 y1 with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 "
                              f"(got {' '.join(map(str, box))})")


def forehead_metric(model: FaceModel, stiffness: float, metric: torch.Tensor | None = None) -> torch.Tensor:
    """The identity prior's metric M (n_id, n_id) with its stiffness along the forehead's direction û
    (:meth:`~facerecon.facemodel.forehead.ForeheadDepth.direction`) scaled by ``stiffness``:
    P M P with P = I − (1 − √stiffness) ûûᵀ, so that from the plain norm (``metric`` None: I)
    M = I − (1 − stiffness) ûûᵀ."""
    u = torch.as_tensor(ForeheadDepth(model).direction(), dtype=torch.float32, device=model.mean.device)
    u = u / u.norm()
    eye = torch.eye(model.n_id, device=u.device)
    P = eye - (1.0 - float(stiffness) ** 0.5) * torch.outer(u, u)
    return P @ (eye if metric is None else metric.to(u)) @ P


@dataclass
class FitResult:
    """Fitted parameters (batched, one row per photo) and the final loss terms per photo."""

    params: FaceParams
    losses: LossTerms
    landmarks_2d: torch.Tensor
    """The model's 68 landmarks projected into the crop (B,68,2), pixels (contour-corrected)."""
    history: list[dict[str, float]]
    """Mean loss terms after each step of the full stage."""
    groups: torch.Tensor | None = None
    """(B,) the person index of each photo when photos were grouped (None: each photo alone)."""


def group_index(groups: Sequence | torch.Tensor | None, batch: int, device=None) -> torch.Tensor | None:
    """Person index (B,) in 0..G-1 for per-photo labels (any hashable values, first-seen order
    irrelevant: sorted unique labels); None when every photo is alone (the per-photo fit)."""
    if groups is None:
        return None
    labels = groups.detach().cpu().numpy() if isinstance(groups, torch.Tensor) else np.asarray(list(groups))
    if len(labels) != batch:
        raise ValueError(f"{len(labels)} group labels for {batch} photos")
    _, inverse = np.unique(labels, return_inverse=True)
    if inverse.max(initial=-1) + 1 == batch:
        return None
    return torch.as_tensor(inverse.reshape(-1), dtype=torch.long, device=device)


class _Unknowns:
    """The optimised tensors of a stage: per-photo pose, β, γ and, per person, α and δ."""

    def __init__(self, params: FaceParams, index: torch.Tensor | None, device: torch.device) -> None:
        p = params.map(lambda t: t.detach().clone().to(device))
        self.index = index
        self.angles, self.trans, self.beta, self.gamma = p.angles, p.trans, p.beta, p.gamma
        self.alpha, self.delta = self._per_person(p.alpha), self._per_person(p.delta)

    def _per_person(self, t: torch.Tensor) -> torch.Tensor:
        """(B,n) per photo -> (G,n): the mean over each person's photos."""
        if self.index is None:
            return t
        g = int(self.index.max()) + 1
        total = t.new_zeros(g, t.shape[1]).index_add(0, self.index, t)
        count = torch.bincount(self.index, minlength=g).to(t.dtype)[:, None]
        return total / count

    def params(self) -> FaceParams:
        """Per-photo parameters (B rows; α and δ gathered from the person)."""
        alpha, delta = self.alpha, self.delta
        if self.index is not None:
            alpha, delta = alpha[self.index], delta[self.index]
        return FaceParams(alpha, self.beta, delta, self.gamma, self.angles, self.trans)

    def clamp(self) -> None:
        with torch.no_grad():
            self.beta.clamp_(0.0, 1.0)

    def tensors(self) -> list[torch.Tensor]:
        return [self.angles, self.trans, self.alpha, self.beta, self.delta, self.gamma]


def _detached(params: FaceParams | None, device: torch.device) -> FaceParams | None:
    """A constant copy of ``params`` on ``device`` (a prior's centre: no gradient flows into it)."""
    return None if params is None else params.map(lambda t: t.detach().to(device))


class _Average:
    """Running mean of ``tensors`` over the last ``last`` of ``total`` steps (Polyak averaging);
    :meth:`apply` writes it into the tensors. With ``last`` = 0 it does nothing."""

    def __init__(self, tensors: list[torch.Tensor], last: int, total: int) -> None:
        self.tensors, self.first = tensors, total - min(last, total)
        self.sums = [torch.zeros_like(t) for t in tensors] if last > 0 else []
        self.count = 0

    def add(self, step: int) -> None:
        """Count the tensors' values after step ``step`` (0-based) when it is one of the last."""
        if self.sums and step >= self.first:
            with torch.no_grad():
                for s, t in zip(self.sums, self.tensors):
                    s.add_(t)
            self.count += 1

    def apply(self) -> None:
        if self.count:
            with torch.no_grad():
                for s, t in zip(self.sums, self.tensors):
                    t.copy_(s / self.count)


def _schedule(steps: int, final: float, settle_steps: int = 0, settle_lr: float = 0.0) -> Callable[[int], float]:
    """The factor on each group's rate at step k: a cosine from 1 at step 0 to ``final`` at step
    ``steps - 1``; then ``settle_steps`` more along a cosine from ``settle_lr`` to 0 (reached one
    step after the last)."""
    import math

    span = max(steps - 1, 1)

    def factor(k: int) -> float:
        if k < steps or settle_steps <= 0:
            return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(k, span) / span))
        return settle_lr * 0.5 * (1 + math.cos(math.pi * (k - steps) / settle_steps))

    return factor


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


#: The package file holding the photo population's common offset ō (``tools/common_offset.py``).
OFFSET_FILE = "identity_offset.json"


@lru_cache(maxsize=1)
def _offset_values() -> tuple[float, ...]:
    doc = json.loads(resource_path(OFFSET_FILE).read_text(encoding="utf-8"))
    return tuple(float(x) for x in doc["alpha"])


def common_offset(n_id: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """ō (n_id,): the mean fitted identity α over a population of photographed people
    (``facerecon/resources/identity_offset.json``), the direction every fit shares."""
    values = _offset_values()
    if len(values) != n_id:
        raise ValueError(f"{resource_path(OFFSET_FILE)}: an offset of {len(values)} identity coefficients, "
                         f"the face model has {n_id}")
    return torch.tensor(values, dtype=torch.float32, device=device)


def rnet_prior(predicted: FaceParams) -> FaceParams:
    """The centre of engine "rnet-prior"'s coefficient prior from R-Net's prediction: its identity
    α and albedo δ; expression β stays centred at neutral (0). Centring β on the prediction too
    measured further from the real-skin scan and worse on 300-W landmarks (BENCHMARKS.md, "A
    learned prior"): the net's β is its least reliable part (it even predicts weights below 0,
    outside the blendshapes' range)."""
    return FaceParams(predicted.alpha, torch.zeros_like(predicted.beta), predicted.delta, predicted.gamma,
                      predicted.angles, predicted.trans)


class Fitter:
    """Fit the face model to aligned crops: ``Fitter(model).fit(images, landmarks, attention)``.

    Holds one :class:`~facerecon.forward.ForwardModel` and one
    :class:`~facerecon.losses.HybridLoss`; the stages below are its only other pieces.
    """

    def __init__(self, model: FaceModel, camera: Camera | None = None, facenet=None,
                 config: FitConfig | None = None) -> None:
        self.config = cfg = config or FitConfig()
        self.model = model
        self.forward = ForwardModel(model, camera, contour=cfg.contour, antialias=cfg.antialias,
                                    contour_back_mm=cfg.contour_back_mm,
                                    contour_lower_back_mm=cfg.contour_lower_back_mm)
        metric = None
        if cfg.identity_metric:
            metric = torch.as_tensor(np.load(cfg.identity_metric), dtype=torch.float32, device=self.device)
            if metric.shape != (model.n_id, model.n_id):
                raise ValueError(f"{cfg.identity_metric}: identity metric of shape {tuple(metric.shape)}, "
                                 f"the face model has {model.n_id} identity modes")
        if cfg.forehead_stiffness != 1.0:
            metric = forehead_metric(model, cfg.forehead_stiffness, metric)
        self.loss = HybridLoss(cfg.weights, model.skin_mask, facenet=facenet if cfg.perceptual else None,
                               omega=landmark_weights(cfg.nose_mouth_weight, cfg.jaw_weight, self.device,
                                                     chin=cfg.chin_weight, brows=cfg.brow_weight),
                               identity_metric=metric,
                               perceptual_box=cfg.perceptual_box, perceptual_blur=cfg.perceptual_blur,
                               photo_blur=cfg.photo_blur)

    @property
    def device(self) -> torch.device:
        return self.model.mean.device

    @property
    def camera(self) -> Camera:
        return self.forward.camera

    def forward_for(self, camera: Camera | None) -> ForwardModel:
        """The forward model under ``camera`` (this fitter's own when None)."""
        return self.forward if camera is None or camera is self.forward.camera else self.forward.with_camera(camera)

    def spread_weight(self, spread: torch.Tensor | None) -> torch.Tensor | None:
        """Per-photo landmark factors (B,68) from the detector's spread (B,68) in crop pixels
        (``landmark_spread_px``); None when off or no spread is given."""
        if spread is None or self.config.landmark_spread_px <= 0:
            return None
        return 1.0 / (1.0 + (spread.to(self.device).float() / self.config.landmark_spread_px) ** 2)

    def _visibility(self, forward: ForwardModel, params: FaceParams,
                    point_weight: torch.Tensor | None = None) -> torch.Tensor | None:
        """Per-photo landmark factors (B,68): ``facing_cos``'s (1 on the jaw) times ``point_weight``
        (:meth:`spread_weight`); None when both are off."""
        if self.config.facing_cos <= 0:
            return point_weight
        vis = (forward.landmark_facing(params) / self.config.facing_cos).clamp(0.0, 1.0)
        vis[:, :17] = 1.0
        return vis if point_weight is None else vis * point_weight

    # --- stage 0 ------------------------------------------------------------------------------
    def init_pose(self, landmarks: torch.Tensor, camera: Camera | None = None) -> FaceParams:
        """Neutral mean face posed by PnP on the inner 51 of (B,68,2) landmarks (crop pixels),
        seen by ``camera`` (this fitter's when None; its focal length may be one per photo)."""
        camera = camera or self.camera
        b = landmarks.shape[0]
        params = FaceParams.zeros(b, self.model.n_id, self.model.n_exp, self.model.n_tex,
                                  rgb_light=self.config.rgb_light, device=self.device)
        mean_lmk = self.model.mean[self.model.landmark_idx].detach().cpu().numpy()
        image_lmk = landmarks.detach().cpu().numpy()

        def solve(i: int, points: np.ndarray) -> None:
            ang, t = pnp_pose(mean_lmk[points], image_lmk[i, points], camera.item(i))
            params.angles[i] = torch.as_tensor(ang, dtype=torch.float32)
            params.trans[i] = torch.as_tensor(t, dtype=torch.float32)

        for i in range(b):
            solve(i, np.arange(17, 68))
        vis = self._visibility(self.forward_for(camera), params)
        if vis is not None:  # again on the points this pose shows squarely (at least 30 of the 51)
            for i in range(b):
                keep = 17 + np.flatnonzero(vis[i, 17:].cpu().numpy() >= 1.0)
                if 30 <= len(keep) < 51:
                    solve(i, keep)
        return params

    # --- stage 1 ------------------------------------------------------------------------------
    def landmark_stage(self, params: FaceParams, landmarks: torch.Tensor, groups=None,
                       progress: Progress | None = None, prior: FaceParams | None = None,
                       camera: Camera | None = None, spread: torch.Tensor | None = None) -> FaceParams:
        """Pose, expression (and identity, with ``landmark_identity``) from the landmarks alone,
        starting from ``params``; ``config.landmark_steps`` Adam steps. ``prior``: per-photo
        coefficients the prior is centred on (None: 0); ``camera``: the crops' camera (None: this
        fitter's); ``spread``: the landmarks' detector spread (B,68), crop pixels (None: unknown).
        Returns detached params."""
        cfg, dev = self.config, self.device
        forward = self.forward_for(camera)
        landmarks = landmarks.to(dev).float()
        x = _Unknowns(params, group_index(groups, params.batch, dev), dev)
        coefs = [x.beta, x.alpha] if cfg.landmark_identity and not cfg.hold_identity else [x.beta]
        for t in (x.angles, x.trans, *coefs):
            t.requires_grad_()
        opt = Adam([([x.angles], cfg.lr_pose), ([x.trans], cfg.lr_trans), (coefs, cfg.lr)],
                   _schedule(cfg.landmark_steps, cfg.lr_final))
        prior = _detached(prior, dev)
        point_weight = self.spread_weight(spread)
        ids, vis = None, None
        for step in range(cfg.landmark_steps):
            p = x.params()
            if step % cfg.contour_every == 0:
                ids, vis = None, self._visibility(forward, p, point_weight)
            lm, ids = forward.landmarks(p, ids)
            loss = self.loss.landmarks_only(lm, landmarks, p, prior, visibility=vis).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            x.clamp()
            if progress:
                progress(step + 1, cfg.landmark_steps)
        return x.params().map(lambda t: t.detach())

    # --- stage 2 ------------------------------------------------------------------------------
    def full_stage(self, params: FaceParams, images: torch.Tensor, landmarks: torch.Tensor,
                   attention: torch.Tensor | None = None, groups=None, progress: Progress | None = None,
                   prior: FaceParams | None = None, camera: Camera | None = None,
                   spread: torch.Tensor | None = None) -> FitResult:
        """Every unknown under the full hybrid loss, starting from ``params``; ``config.steps``
        Adam steps, FaceNet every ``perceptual_every``-th step, the contour re-assigned every
        ``contour_every``-th; then ``config.settle_steps`` settling steps (contour kept, FaceNet
        every step, rates falling to 0); with ``config.average_steps`` the mean of the unknowns over
        that many last steps is returned. Images (B,3,224,224) in [0,1], landmarks (B,68,2) crop
        pixels, attention (B,1,224,224); ``prior``: per-photo coefficients the prior is centred on
        (None: 0); ``camera``: the crops' camera (None: this fitter's); ``spread``: the landmarks'
        detector spread (B,68), crop pixels (None: unknown)."""
        cfg, dev = self.config, self.device
        forward = self.forward_for(camera)
        point_weight = self.spread_weight(spread)
        images, landmarks = images.to(dev), landmarks.to(dev).float()
        attention = attention.to(dev) if attention is not None else None
        index = group_index(groups, params.batch, dev)
        prior = _detached(prior, dev)
        x = _Unknowns(params, index, dev)
        coefs = ([] if cfg.hold_identity else [x.alpha]) + [x.beta, x.delta, x.gamma]
        for t in (x.angles, x.trans, *coefs):
            t.requires_grad_()
        settle = max(int(cfg.settle_steps), 0)
        opt = Adam([([x.angles], cfg.lr_pose), ([x.trans], cfg.lr_trans), (coefs, cfg.lr)],
                   _schedule(cfg.steps, cfg.lr_final, settle, cfg.settle_lr))
        use_per = self.loss.uses_perceptual
        target_emb = None
        if use_per:
            with torch.no_grad():
                target_emb = self.loss.embed(images)
        total = cfg.steps + settle
        history: list[dict[str, float]] = []
        ids, terms, vis = None, None, None
        averaged = _Average(x.tensors(), max(int(cfg.average_steps), 0), total)
        for step in range(total + 1):
            final = step == total
            if final:
                averaged.apply()
            settling = settle > 0 and step >= cfg.steps  # (with no settling phase the last step is as before)
            with torch.set_grad_enabled(not final):
                p = x.params()
                reassign = step % cfg.contour_every == 0 and not (settling and step > 0)
                out = forward(p, landmark_ids=None if reassign else ids)
                ids = out.landmark_ids
                if reassign:
                    vis = self._visibility(forward, p, point_weight)
                terms = self.loss(out, p, images, landmarks, attention,
                                  perceptual=use_per and (final or settling or step % cfg.perceptual_every == 0),
                                  target_embedding=target_emb, prior=prior, visibility=vis)
            history.append(terms.as_dict())
            if final:
                break
            opt.zero_grad()
            terms.total.sum().backward()
            opt.step()
            x.clamp()
            averaged.add(step)
            if progress:
                progress(step + 1, total)
        fitted = x.params().map(lambda t: t.detach())
        with torch.no_grad():
            lm2d, _ = forward.landmarks(fitted)
        return FitResult(params=fitted, losses=terms, landmarks_2d=lm2d, history=history, groups=index)

    # --- all stages -----------------------------------------------------------------------------
    def fit(self, images: torch.Tensor, landmarks: torch.Tensor, attention: torch.Tensor | None = None,
            init: FaceParams | None = None, groups=None, progress: Progress | None = None,
            prior: FaceParams | None = None, camera: Camera | None = None,
            spread: torch.Tensor | None = None) -> FitResult:
        """Fit (B,3,224,224) crops in [0,1] with their (B,68,2) landmarks (crop pixels) and skin
        attention (B,1,224,224): PnP (unless ``init`` is given), landmark stage, full stage.
        ``groups`` (B labels) makes photos with the same label share identity and albedo.
        ``prior`` (per-photo coefficients, e.g. a regressor's prediction) centres the Gaussian
        prior on α, β, δ there instead of at the model's mean (the paper's), its α moved by
        −``config.prior_offset``·ō (:func:`common_offset`); with
        ``config.start_at_prior`` (and no ``init``) the fit also starts there (α, δ, γ).
        ``camera`` is the crops' camera (None: this fitter's; a per-photo focal length for photos
        taken from different distances). ``spread`` (B,68) is each landmark's spread over the
        detector's jittered boxes, crop pixels (used with ``config.landmark_spread_px``; None:
        unknown). ``progress(step, total)`` is called after each step of both stages."""
        cfg = self.config
        landmarks = landmarks.to(self.device).float()
        total = cfg.landmark_steps + cfg.steps + max(int(cfg.settle_steps), 0)
        params = init if init is not None else self.init_pose(landmarks, camera)
        if prior is not None and cfg.prior_offset:
            shift = cfg.prior_offset * common_offset(self.model.n_id, prior.alpha.device)
            prior = FaceParams(prior.alpha - shift, prior.beta, prior.delta, prior.gamma, prior.angles, prior.trans)
        if init is None and prior is not None and cfg.start_at_prior:
            centre = _detached(prior, params.alpha.device)
            params = FaceParams(centre.alpha.clone(), params.beta, centre.delta.clone(), centre.gamma.clone(),
                                params.angles, params.trans)
        params = self.landmark_stage(params, landmarks, groups,
                                     progress and (lambda done, _: progress(done, total)), prior, camera, spread)
        return self.full_stage(params, images, landmarks, attention, groups,
                               progress and (lambda done, _: progress(cfg.landmark_steps + done, total)), prior,
                               camera, spread)


__all__ = ["FitConfig", "FitResult", "Fitter", "common_offset", "group_index", "pnp_pose", "rnet_prior"]
