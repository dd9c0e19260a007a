"""Many photos of one person -> one face: the paper's K-means aggregation and its baselines.

Every aggregator takes the per-photo fits of a person (:class:`FaceParams`, one row per photo)
and returns the person's identity α and albedo δ (one row); pose, expression and light stay per
photo. Methods (SPEC §5 and the comparisons of the paper):

- ``kmeans`` — the paper: one vector per photo, K-means with K = number of people over every
  photo of every person (several initialisations, lowest inertia kept); a person's x is the
  centroid of the cluster holding most of their photos (see :func:`kmeans_centroids`);
- ``mean`` — shape averaging; ``median`` — per-coefficient median;
- ``quality`` — Piotraschke & Blanz 2016 "G": a weighted mean with one quality weight per photo
  (:func:`quality_weights`: landmark residual, head turn, photometric residual);
- ``segments`` — Piotraschke & Blanz 2016 "S": per face segment, each photo weighted by its
  quality and by how squarely it sees that segment; the blended surface is projected back onto
  the identity basis by regularised least squares;
- ``confidence`` — Deng et al. 2019-style per-coefficient confidence: each photo's coefficients
  weighted by how strongly its landmarks constrain them (the diagonal of JᵀJ of the projected
  landmarks with respect to α — the Fisher information of the landmark term);
- ``joint`` (beyond the paper) is a fit, not a formula: the pipeline refits all photos together
  with α and δ shared, started from the ``mean`` aggregate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from facerecon.facemodel.model import FaceModel
from facerecon.forward import ForwardModel
from facerecon.params import FaceParams

AGGREGATORS = ("kmeans", "mean", "median", "quality", "segments", "confidence", "joint")

#: iBUG-68 landmark groups that name the face segments of the "segments" aggregator.
SEGMENT_LANDMARKS: dict[str, list[int]] = {
    "jaw_right": list(range(0, 7)), "chin": list(range(6, 11)), "jaw_left": list(range(10, 17)),
    "brow_right": list(range(17, 22)), "brow_left": list(range(22, 27)), "nose": list(range(27, 36)),
    "eye_right": list(range(36, 42)), "eye_left": list(range(42, 48)), "mouth": list(range(48, 68)),
}


@dataclass
class PhotoQuality:
    """What makes one photo's fit trustworthy (the inputs of :func:`quality_weights`)."""

    landmark_error_px: float
    """Mean distance of the fitted to the detected 68 landmarks, crop pixels."""
    yaw_deg: float
    """Head turn of the fit, degrees (0 = frontal)."""
    photo_loss: float
    """Final photometric term of the fit (mean colour distance over skin, [0, √3])."""
    detector_score: float = 1.0
    """Face detector score (dlib HOG, ~0–3)."""

    def as_dict(self) -> dict[str, float]:
        return {"landmark_error_px": round(self.landmark_error_px, 4), "yaw_deg": round(self.yaw_deg, 3),
                "photo_loss": round(self.photo_loss, 5), "detector_score": round(self.detector_score, 4)}


def quality_weights(qualities: list[PhotoQuality], landmark_px: float = 3.0, photo: float = 0.1) -> np.ndarray:
    """Normalised weights (N,) of a person's photos: ``exp(−landmark error / landmark_px) ×
    cos²(yaw) × exp(−photometric residual / photo)``, so that a badly fitted, a strongly turned or
    a poorly explained photo counts less. Scales chosen so that typical values (2–4 px, 0–40°,
    0.05–0.15) change a weight by a factor 2–4, not by orders of magnitude."""
    w = np.array([math.exp(-q.landmark_error_px / landmark_px) * math.cos(math.radians(q.yaw_deg)) ** 2
                  * math.exp(-q.photo_loss / photo) for q in qualities], dtype=np.float64)
    w = np.maximum(w, 1e-12)
    return w / w.sum()


def _weighted_mean(t: torch.Tensor, w: np.ndarray) -> torch.Tensor:
    wt = torch.as_tensor(w, dtype=t.dtype, device=t.device)[:, None]
    return (wt * t).sum(0, keepdim=True) / wt.sum()


def _person(params: FaceParams, alpha: torch.Tensor, delta: torch.Tensor) -> FaceParams:
    """The person's row: aggregated α, δ; neutral expression; the other parts from the photos'
    means (light) and the first photo (pose), as a reference only."""
    return FaceParams(alpha, torch.zeros_like(params.beta[:1]), delta, params.gamma.mean(0, keepdim=True),
                      params.angles[:1].clone(), params.trans[:1].clone())


def segment_ids(model: FaceModel) -> np.ndarray:
    """(V,) segment index of every vertex of ``model``: the group of its nearest landmark on the mean face."""
    mean = model.mean.detach().cpu().numpy()
    lmk = mean[model.landmark_idx.cpu().numpy()]
    names = list(SEGMENT_LANDMARKS)
    owner = np.zeros(68, np.int64)
    for s, name in enumerate(names):
        owner[SEGMENT_LANDMARKS[name]] = s
    d = ((mean[:, None, :] - lmk[None]) ** 2).sum(-1)
    return owner[d.argmin(1)]


def aggregate_segments(params: FaceParams, model: FaceModel, weights: np.ndarray, prior: float = 0.05
                       ) -> torch.Tensor:
    """Identity α (1,n) of the segment-wise blend of the photos' identity shapes.

    Per segment and photo the weight is the photo's quality times how squarely it sees the
    segment (mean of max(0, n_z)² over the segment's vertex normals, rotated by the photo's pose);
    per vertex the shapes are blended with their segment's weights, and α solves
    ``min ‖B_id α − (S_blend − S̄)‖² + prior·‖α‖²`` (mm², over the face part).
    """
    from facerecon.render import euler_to_matrix

    dev = model.mean.device
    with torch.no_grad():
        shapes = model.shape(params.alpha.to(dev))  # (N,V,3) identity only
        normals = model.vertex_normals(shapes)
        facing = (normals @ euler_to_matrix(params.angles.to(dev)).transpose(1, 2))[..., 2].clamp(min=0) ** 2
    seg = torch.as_tensor(segment_ids(model), device=dev)
    n_seg = int(seg.max()) + 1
    per_seg = torch.zeros(len(shapes), n_seg, device=dev).index_add(1, seg, facing)
    per_seg = per_seg / torch.bincount(seg, minlength=n_seg).clamp(min=1)[None]
    w_seg = per_seg * torch.as_tensor(weights, dtype=per_seg.dtype, device=dev)[:, None] + 1e-9  # (N,S)
    w_v = w_seg[:, seg]  # (N,V)
    blend = (w_v[..., None] * shapes).sum(0) / w_v.sum(0)[:, None]
    face = torch.as_tensor(model.vertex_ids < 9409, device=dev)
    basis = model.id_basis[: params.alpha.shape[1]].reshape(params.alpha.shape[1], -1, 3)[:, face].reshape(
        params.alpha.shape[1], -1)  # (n, 3F)
    target = (blend - model.mean)[face].reshape(-1)
    lhs = basis @ basis.T + prior * torch.eye(len(basis), device=dev)
    return torch.linalg.solve(lhs.double(), (basis @ target).double()).float()[None]


def landmark_fisher(params: FaceParams, forward: ForwardModel, sigma_px: float = 2.0) -> torch.Tensor:
    """(N,n_id) diagonal Fisher information of each photo's 68 projected landmarks about α:
    ``diag(JᵀJ)/σ²`` with J = ∂ landmarks (pixels) / ∂ α at the photo's own fit, through the
    forward model's camera (each photo's own where its focal length is one per photo)."""
    out = []
    for i in range(params.batch):
        p = params[i].map(lambda t: t.detach().to(forward.device))
        fwd = forward.with_camera(forward.camera.item(i)) if forward.camera.per_item else forward

        def lm_of(alpha: torch.Tensor, p=p, fwd=fwd) -> torch.Tensor:
            q = FaceParams(alpha, p.beta, p.delta, p.gamma, p.angles, p.trans)
            return fwd.landmarks(q, fwd.landmarks(p)[1])[0].reshape(-1)

        jac = torch.autograd.functional.jacobian(lm_of, p.alpha, vectorize=True)  # (136, 1, n)
        jac = jac.reshape(jac.shape[0], -1)
        out.append((jac ** 2).sum(0) / sigma_px ** 2)
    return torch.stack(out)


def aggregate(params: FaceParams, method: str, *, model: FaceModel | None = None,
              qualities: list[PhotoQuality] | None = None, forward: ForwardModel | None = None) -> tuple[FaceParams, np.ndarray]:
    """One person's FaceParams (one row) from the fits of their photos (N rows), and the weight
    each photo got (N,) (for ``confidence``: the mean over coefficients).

    ``kmeans`` with one person is the mean (the centroid of one cluster); across several people
    use :func:`kmeans_centroids`. ``joint`` returns the mean, the start of the joint fit.
    ``segments`` needs the ``model``; ``quality``/``segments`` use ``qualities`` (equal weights
    without); ``confidence`` needs a ``forward`` model.
    """
    if method not in AGGREGATORS:
        raise ValueError(f"unknown aggregator {method!r} (choose from {', '.join(AGGREGATORS)})")
    n = params.batch
    equal = np.full(n, 1.0 / n)
    if method in ("mean", "kmeans", "joint"):
        return _person(params, params.alpha.mean(0, keepdim=True), params.delta.mean(0, keepdim=True)), equal
    if method == "median":  # the mean of the two middle values for an even count
        return _person(params, params.alpha.quantile(0.5, dim=0, keepdim=True),
                       params.delta.quantile(0.5, dim=0, keepdim=True)), equal
    w = quality_weights(qualities) if qualities else equal
    if method == "quality":
        return _person(params, _weighted_mean(params.alpha, w), _weighted_mean(params.delta, w)), w
    if method == "segments":
        if model is None:
            raise ValueError("the segments aggregator needs the face model")
        alpha = aggregate_segments(params, model, w).to(params.alpha.device)
        return _person(params, alpha, _weighted_mean(params.delta, w)), w
    # confidence
    if forward is None:
        raise ValueError("the confidence aggregator needs a forward model")
    fisher = landmark_fisher(params, forward).to(params.alpha.device) * torch.as_tensor(
        w, dtype=params.alpha.dtype, device=params.alpha.device)[:, None] + 1e-6
    alpha = (fisher * params.alpha).sum(0, keepdim=True) / fisher.sum(0, keepdim=True)
    per_photo = (fisher / fisher.sum(0, keepdim=True)).mean(1).cpu().numpy()
    return _person(params, alpha, _weighted_mean(params.delta, w)), per_photo / per_photo.sum()


def kmeans_features(params: FaceParams, features: str = "all") -> np.ndarray:
    """The vectors K-means clusters: ``all`` — the whole x as the paper (α, β, δ, γ, pose, with
    the translation in metres so that no part dwarfs the rest); ``identity`` — α and δ only."""
    if features == "identity":
        return torch.cat([params.alpha, params.delta], 1).detach().cpu().numpy().astype(np.float64)
    if features == "all":
        p = params.map(lambda t: t.detach().cpu().double())
        return torch.cat([p.alpha, p.beta, p.delta, p.gamma, p.angles, p.trans / 1000.0], 1).numpy()
    raise ValueError(f"unknown K-means features {features!r} (all or identity)")


def kmeans_centroids(params: FaceParams, people: np.ndarray, features: str = "all", n_init: int = 10,
                     seed: int = 0) -> tuple[FaceParams, np.ndarray, np.ndarray]:
    """The paper's K-means aggregation over the photos of several people at once.

    ``people`` (N,) is each photo's person (K = number of distinct people). Returns the persons'
    FaceParams (K rows, in sorted person order: α and δ from the centroid of the cluster holding
    most of that person's photos), the cluster label of every photo (N,), and the purity per
    person (share of their photos in that cluster)."""
    from sklearn.cluster import KMeans

    ids, inv = np.unique(np.asarray(people), return_inverse=True)
    k = len(ids)
    x = kmeans_features(params, features)
    if k == 1:
        labels = np.zeros(len(x), np.int64)
    else:
        labels = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(x).labels_
    rows, purity = [], []
    for p in range(k):
        mine = labels[inv == p]
        cluster = np.bincount(mine).argmax()
        purity.append(float((mine == cluster).mean()))
        members = params[torch.as_tensor(labels == cluster)]
        rows.append(_person(members, members.alpha.mean(0, keepdim=True), members.delta.mean(0, keepdim=True)))
    return FaceParams.cat(rows), labels, np.array(purity)


__all__ = ["AGGREGATORS", "PhotoQuality", "quality_weights", "aggregate", "aggregate_segments", "segment_ids",
           "landmark_fisher", "kmeans_features", "kmeans_centroids"]
