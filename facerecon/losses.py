"""The paper's hybrid loss (SPEC §4): each term a plain function, the weights in one dataclass.

All functions are batched and return one value per image (B,) so that callers can weight,
mask or average images as they need. :class:`HybridLoss` is the whole loss as one object: the
fitter uses it on a batch of photos, and a trainer uses it unchanged on a batch of different
people (the paper's training), each with the same :class:`LossWeights`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch

from facerecon.config import at_least

if TYPE_CHECKING:
    from facerecon.forward import ForwardOutput
    from facerecon.params import FaceParams

#: iBUG-68 indices of the nose (27–35) and mouth (48–67): landmark weight ω = 20 there.
NOSE_MOUTH = list(range(27, 36)) + list(range(48, 68))
#: iBUG-68 indices of the brows (17–26): landmark weight ω = ``FitConfig.brow_weight`` there (1 by default).
BROWS = list(range(17, 27))


@dataclass
class LossWeights:
    """Weights of the hybrid loss; defaults are the paper's."""

    photo: float = 1.9
    """Skin-attention-weighted photometric term."""
    landmark: float = 1.6e-3
    """68-point landmark term (squared pixels of the 224 crop)."""
    perceptual: float = 0.2
    """FaceNet cosine distance between photo and render."""
    coef: float = 3e-4
    """Coefficient regulariser."""
    texture: float = 5.0
    """Albedo variance over the skin region."""
    coef_id: float = 1.0
    """Inside the regulariser: weight of ‖α‖² (identity)."""
    coef_exp: float = 0.8
    """Inside the regulariser: weight of ‖β‖² (expression)."""
    coef_tex: float = 1.7e-3
    """Inside the regulariser: weight of ‖δ‖² (albedo)."""
    photo_robust: float = 0.0
    """Robust photometric term: pixels whose colour residual r (RGB distance, [0,1] units) is large
    count with weight 1/(1+(r/τ)²), τ this value (0: off, the paper's plain L2,1). Hair, beards,
    glasses and highlights the model cannot explain then stop pulling the shape."""

    def __post_init__(self) -> None:
        at_least(self, 0.0, *(f.name for f in fields(self)))  # a negative weight rewards the error


def landmark_weights(nose_mouth: float = 20.0, jaw: float = 1.0, device=None,
                     chin: float | None = None, brows: float = 1.0) -> torch.Tensor:
    """ω (68,): ``nose_mouth`` on nose and mouth points, ``jaw`` on the 17 contour points, ``brows`` on
    the 10 brow points, 1 elsewhere (the eyes); ``chin`` (None: ``jaw``) on the chin point, 8, alone."""
    w = torch.ones(68, device=device)
    w[BROWS] = brows
    w[NOSE_MOUTH] = nose_mouth
    w[:17] = jaw
    if chin is not None:
        w[8] = chin
    return w


def photo_loss(render: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
               attention: torch.Tensor | None = None, robust: float = 0.0) -> torch.Tensor:
    """``Σ_{i∈M} A_i R_i ‖I_i − I'_i‖₂ / Σ_{i∈M} A_i R_i`` per image (B,).

    Images (B,3,H,W) in [0,1]; ``mask`` (B,1,H,W) the rendered face coverage M; ``attention``
    (B,1,H,W) the skin attention A (1 where skin probability > 0.5, else the probability);
    ``robust`` τ > 0 adds the weight R_i = 1/(1+(r_i/τ)²) of each pixel's residual r_i (held
    fixed in the gradient, as in iteratively reweighted least squares); τ = 0: R = 1.
    """
    w = mask if attention is None else mask * attention
    dist = torch.sqrt(((render - target) ** 2).sum(1, keepdim=True) + 1e-8)
    if robust > 0:
        w = w / (1 + (dist.detach() / robust) ** 2)
    return (w * dist).sum((1, 2, 3)) / w.sum((1, 2, 3)).clamp(min=1e-6)


def landmark_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``(1/68) Σ ω_n ‖q_n − q'_n‖²`` per image (B,), points (B,68,2) in pixels."""
    sq = ((pred - target) ** 2).sum(-1)
    if weights is not None:
        sq = sq * weights
    return sq.mean(-1)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B,C,H,W) images blurred by a Gaussian of standard deviation ``sigma`` pixels (separable,
    kernel radius ⌈3σ⌉, borders repeated); ``sigma`` <= 0 returns the images unchanged."""
    if sigma <= 0:
        return images
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = images.shape[1]
    out = torch.nn.functional.pad(images, (r, r, r, r), mode="replicate")
    out = torch.nn.functional.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return torch.nn.functional.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def perceptual_loss(emb_a: torch.Tensor, emb_b: torch.Tensor) -> torch.Tensor:
    """``1 − cos(f(I), f(I'))`` per image (B,) from embeddings (B,D)."""
    return 1.0 - torch.nn.functional.cosine_similarity(emb_a, emb_b, dim=-1)


def coef_loss(alpha: torch.Tensor, beta: torch.Tensor, delta: torch.Tensor,
              w_id: float = 1.0, w_exp: float = 0.8, w_tex: float = 1.7e-3) -> torch.Tensor:
    """``1.0‖α‖² + 0.8‖β‖² + 1.7e-3‖δ‖²`` per image (B,)."""
    return w_id * alpha.square().sum(-1) + w_exp * beta.square().sum(-1) + w_tex * delta.square().sum(-1)


def texture_loss(albedo: torch.Tensor, skin_mask: torch.Tensor) -> torch.Tensor:
    """``Σ_c var(T_c over the skin region R)`` per image (B,); albedo (B,V,3), mask (V,) bool."""
    return albedo[:, skin_mask].var(dim=1, unbiased=False).sum(-1)


@dataclass
class LossTerms:
    """Per-image values (B,) of each term (unweighted) and the weighted total."""

    total: torch.Tensor
    photo: torch.Tensor
    landmark: torch.Tensor
    perceptual: torch.Tensor
    coef: torch.Tensor
    texture: torch.Tensor

    def as_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach().mean()) for k in ("total", "photo", "landmark", "perceptual", "coef", "texture")}


def hybrid_loss(weights: LossWeights, *, photo: torch.Tensor, landmark: torch.Tensor,
                perceptual: torch.Tensor | None, coef: torch.Tensor, texture: torch.Tensor) -> LossTerms:
    """Weighted sum of the terms (each (B,)); a missing perceptual term counts as 0."""
    per = perceptual if perceptual is not None else torch.zeros_like(photo)
    total = (weights.photo * photo + weights.landmark * landmark + weights.perceptual * per
             + weights.coef * coef + weights.texture * texture)
    return LossTerms(total, photo, landmark, per, coef, texture)


class HybridLoss:
    """The paper's hybrid loss (SPEC §4) over a forward pass: per image (B,) terms and total.

    ``skin_mask`` (V,) bool is the albedo-variance region R over the face model's vertices;
    ``facenet`` an embedding network with ``embed(images, box)`` (None: no perceptual term);
    ``omega`` the landmark weights ω (68,) (default: :func:`landmark_weights`); ``perceptual_box``
    the crop (fractions x0, y0, x1, y1) of the image given to FaceNet; ``perceptual_blur`` the
    standard deviation (pixels) of a Gaussian blur of both images before FaceNet (0: none);
    ``photo_blur`` the same for the photometric term (the render over the photo and the photo);
    ``identity_metric`` (n_id, n_id) a symmetric matrix M for the identity term of a prior centred
    on a prediction, (α − α₀)ᵀ M (α − α₀) (None: ‖α − α₀‖²).
    """

    def __init__(self, weights: LossWeights, skin_mask: torch.Tensor, *, facenet=None,
                 omega: torch.Tensor | None = None,
                 perceptual_box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
                 perceptual_blur: float = 0.0, identity_metric: torch.Tensor | None = None,
                 photo_blur: float = 0.0) -> None:
        self.weights = weights
        self.identity_metric = identity_metric
        self.skin_mask = skin_mask
        self.facenet = facenet
        self.omega = omega if omega is not None else landmark_weights(device=skin_mask.device)
        self.perceptual_box = perceptual_box
        self.perceptual_blur = float(perceptual_blur)
        self.photo_blur = float(photo_blur)

    @property
    def uses_perceptual(self) -> bool:
        """Whether the FaceNet term is on (a network was given and its weight is not 0)."""
        return self.facenet is not None and self.weights.perceptual > 0

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """FaceNet embeddings (B,D) of the ``perceptual_box`` crop of (B,3,H,W) images in [0,1],
        blurred first by ``perceptual_blur``."""
        return self.facenet.embed(gaussian_blur(images, self.perceptual_blur), self.perceptual_box)

    def coef(self, params: "FaceParams", prior: "FaceParams | None" = None) -> torch.Tensor:
        """The coefficient regulariser per image (B,): ‖α‖², ‖β‖², ‖δ‖² with their inner weights —
        or, given ``prior`` (per-image coefficients, e.g. a regressor's prediction), the same
        norms of the differences ‖α − α₀‖², …: a Gaussian prior centred there instead of at 0."""
        w = self.weights
        if prior is None:
            return coef_loss(params.alpha, params.beta, params.delta, w.coef_id, w.coef_exp, w.coef_tex)
        d = params.alpha - prior.alpha
        if self.identity_metric is None:
            return coef_loss(d, params.beta - prior.beta, params.delta - prior.delta, w.coef_id, w.coef_exp, w.coef_tex)
        rest = coef_loss(d, params.beta - prior.beta, params.delta - prior.delta, 0.0, w.coef_exp, w.coef_tex)
        return w.coef_id * ((d @ self.identity_metric.to(d)) * d).sum(-1) + rest

    def landmarks_only(self, predicted: torch.Tensor, landmarks: torch.Tensor, params: "FaceParams",
                       prior: "FaceParams | None" = None, visibility: torch.Tensor | None = None) -> torch.Tensor:
        """Landmark + coefficient terms only (B,), weighted: the loss of a landmark-only stage
        (``prior``: the coefficient prior's centre, see :meth:`coef`; ``visibility`` (B,68): a
        per-photo factor on ω)."""
        w = self.weights
        return (w.landmark * landmark_loss(predicted, landmarks, self._omega(predicted, visibility))
                + w.coef * self.coef(params, prior))

    def _omega(self, like: torch.Tensor, visibility: torch.Tensor | None) -> torch.Tensor:
        omega = self.omega.to(like.device)
        return omega if visibility is None else omega * visibility.to(omega)

    def __call__(self, out: "ForwardOutput", params: "FaceParams", images: torch.Tensor, landmarks: torch.Tensor,
                 attention: torch.Tensor | None = None, *, perceptual: bool = True,
                 target_embedding: torch.Tensor | None = None, prior: "FaceParams | None" = None,
                 visibility: torch.Tensor | None = None) -> LossTerms:
        """All terms for a rendered forward pass ``out`` of ``params`` (rendered over black, the
        forward model's default) against photos (B,3,H,W) in [0,1], their landmarks (B,68,2)
        pixels and skin attention (B,1,H,W).

        ``perceptual=False`` skips FaceNet this time (it counts 0); ``target_embedding`` (B,D)
        is the photos' embedding when the caller keeps it across steps (else computed here);
        ``prior`` centres the coefficient prior (see :meth:`coef`; None: at 0, the paper's);
        ``visibility`` (B,68) multiplies ω per photo.
        """
        per = None
        # the render over the photo (the image is rendered over black, so premultiplied by the
        # coverage: exact for the fractional coverage of anti-aliased edge pixels too)
        use_per = perceptual and self.uses_perceptual
        composite = out.image + images * (1 - out.mask) if (use_per or self.weights.photo > 0) else None
        if use_per:
            if target_embedding is None:
                with torch.no_grad():
                    target_embedding = self.embed(images)
            per = perceptual_loss(self.embed(composite), target_embedding)
        # with no photometric weight and no FaceNet term nothing is rendered (the landmark stage)
        photo = (photo_loss(gaussian_blur(composite, self.photo_blur), gaussian_blur(images, self.photo_blur),
                            out.mask, attention, self.weights.photo_robust)
                 if self.weights.photo > 0 or per is not None else landmarks.new_zeros(landmarks.shape[0]))
        return hybrid_loss(
            self.weights, photo=photo,
            landmark=landmark_loss(out.landmarks, landmarks, self._omega(landmarks, visibility)), perceptual=per,
            coef=self.coef(params, prior), texture=texture_loss(out.albedo, self.skin_mask),
        )
