"""The three training objectives of R-Net, each a loss per image (B,) from predicted FaceParams.

(a) **self-supervised** — the paper's: the prediction is rendered by the project's
    :class:`~facerecon.forward.ForwardModel` and scored against the photo, its landmarks and skin
    attention by the project's :class:`~facerecon.losses.HybridLoss` (the fitter's loss, unchanged);
(b) **distillation** — against a fitter's labels: :func:`label_loss` compares posed vertices
    (mm), the unposed face (identity + expression, mm), projected landmarks (pixels) and shaded
    colours of the prediction and the label, both
    through the same forward model (coefficients themselves are never compared: α, β and pose
    trade off, and equal faces can have different coefficients);
(c) **synthetic** — the same :func:`label_loss` against the known parameters of faces rendered by
    :mod:`facerecon.synthesis`;
(d) **identity consistency** — :func:`identity_spread`: photos of one person in a batch should give
    one identity shape (batches of K photos per person, as DECA's shape consistency).

:class:`Objectives` holds the forward model and the losses; the trainer mixes the terms by weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from facerecon.forward import ForwardModel, ForwardOutput
from facerecon.losses import HybridLoss, LossTerms
from facerecon.params import FaceParams
from facerecon.training.config import LabelWeights


@dataclass
class LabelTerms:
    """Per-image values (B,) of the geometry loss, unweighted, and the weighted total."""

    total: torch.Tensor
    vertices: torch.Tensor
    """Mean distance of posed vertices, mm."""
    shape: torch.Tensor
    """Mean distance of the unposed vertices (identity + expression, model space), mm."""
    landmarks: torch.Tensor
    """Mean distance of the 68 projected (fixed-vertex) landmarks, pixels."""
    color: torch.Tensor
    """Mean absolute difference of shaded vertex colours."""
    identity: torch.Tensor
    """Distance of the identity coefficients α (model standard deviations); 0 without them."""


def _distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distance over the last axis, smooth at 0 (same units as the inputs)."""
    return torch.sqrt((a - b).square().sum(-1) + 1e-8)


def vertex_subset(n_vertices: int, count: int, device=None) -> torch.Tensor:
    """``count`` evenly spaced vertex indices (all of them when ``count`` is 0 or too large)."""
    if count <= 0 or count >= n_vertices:
        return torch.arange(n_vertices, device=device)
    return torch.linspace(0, n_vertices - 1, count, device=device).round().long()


def label_loss(pred: ForwardOutput, target: ForwardOutput, landmark_idx: torch.Tensor, vertex_ids: torch.Tensor,
               weights: LabelWeights, identity: tuple[torch.Tensor, torch.Tensor] | None = None) -> LabelTerms:
    """Geometry loss per image (B,) between two forward passes of the same model and camera:
    posed vertices ``vertex_ids`` (mm), the same vertices unposed (the face's shape, mm: free of
    the depth and pose a photo pins down only loosely), the 68 landmark vertices
    ``landmark_idx`` projected (pixels) and shaded colours of ``vertex_ids``; with ``identity``
    (predicted α, label α), each (B,80), also the distance between them."""
    verts = _distance(pred.verts_cam[:, vertex_ids], target.verts_cam[:, vertex_ids]).mean(-1)
    shape = _distance(pred.verts[:, vertex_ids], target.verts[:, vertex_ids]).mean(-1)
    lmk = _distance(pred.xy[:, landmark_idx], target.xy[:, landmark_idx]).mean(-1)
    color = (pred.colors[:, vertex_ids] - target.colors[:, vertex_ids]).abs().mean((1, 2))
    ident = _distance(*identity) if identity is not None else torch.zeros_like(verts)
    total = (weights.vertices * verts + weights.shape * shape + weights.landmarks * lmk + weights.color * color
             + weights.identity * ident)
    return LabelTerms(total, verts, shape, lmk, color, ident)


def identity_spread(shapes: torch.Tensor, person: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image (B,): the mean distance of its identity shape (B,V,3) from the mean shape of the
    batch's images of the same ``person`` (B,) (same units as ``shapes``), and whether that person
    has another image in the batch (the distance is 0 for those who do not)."""
    same = (person[:, None] == person[None, :]).to(shapes.dtype)
    count = same.sum(1)
    centre = torch.einsum("ij,jvc->ivc", same / count[:, None], shapes)
    return _distance(shapes, centre).mean(-1) * (count > 1), count > 1


class Objectives:
    """The losses of training, over one forward model: ``hybrid`` (self-supervised) and
    ``geometry`` (distillation and synthetic)."""

    def __init__(self, forward: ForwardModel, loss: HybridLoss, label_weights: LabelWeights) -> None:
        self.forward = forward
        self.loss = loss
        self.label_weights = label_weights
        model = forward.model
        self.vertex_ids = vertex_subset(model.n_vertices, label_weights.vertex_count, device=forward.device)
        self.landmark_idx = model.landmark_idx.to(forward.device)

    def self_supervised(self, params: FaceParams, images: torch.Tensor, landmarks: torch.Tensor,
                        attention: torch.Tensor | None, *, perceptual: bool = True
                        ) -> tuple[LossTerms, ForwardOutput]:
        """The paper's hybrid loss of ``params`` rendered against photos (B,3,S,S) in [0,1],
        their landmarks (B,68,2) crop pixels and skin attention (B,1,S,S); with the forward pass."""
        out = self.forward(params)
        return self.loss(out, params, images, landmarks, attention, perceptual=perceptual), out

    def target(self, params: FaceParams) -> ForwardOutput:
        """Forward pass (no rendering, no gradient) of known parameters: labels or truth."""
        with torch.no_grad():
            return self.forward(params, render=False)

    def identity(self, params: FaceParams, person: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`identity_spread` of the identity shapes (``params.alpha``, neutral expression,
        model space, mm) over the label vertices, grouped by ``person`` (B,)."""
        model = self.forward.model
        shapes = model.shape(params.alpha)[:, self.vertex_ids]
        return identity_spread(shapes, person.to(shapes.device))

    def geometry(self, params: FaceParams, target: FaceParams | ForwardOutput,
                 out: ForwardOutput | None = None) -> LabelTerms:
        """:func:`label_loss` of predicted ``params`` (or their forward pass ``out``, reused when
        the caller has it) against known parameters ``target`` (or their forward pass)."""
        if out is None:
            out = self.forward(params, render=False)
        identity = None
        if isinstance(target, FaceParams):
            identity = (params.alpha, target.alpha.to(params.alpha.device))
            target = self.target(target)
        return label_loss(out, target, self.landmark_idx, self.vertex_ids, self.label_weights, identity)


def masked_mean(values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of (B,) ``values`` over the images whose weight is non-zero (0 when there are none)."""
    if weights is None:
        return values.mean()
    w = weights.to(values.dtype)
    return (values * w).sum() / w.sum().clamp(min=1.0)


__all__ = ["LabelTerms", "Objectives", "identity_spread", "label_loss", "masked_mean", "vertex_subset"]
