"""Identity consistency of per-photo identity vectors (α): cosine similarity over all pairs of
photos, same person against different. The LFW identity benchmark and R-Net's validation both
use it (it lives here, below training and evaluation, so that both can)."""

from __future__ import annotations

import numpy as np


def pair_similarities(vectors: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors (N,D), and over all pairs: cosine similarity and whether both are one person."""
    v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    iu = np.triu_indices(len(v), 1)
    return v, (v @ v.T)[iu], (owner[:, None] == owner[None, :])[iu]


def verification_auc(vectors: np.ndarray, owner: np.ndarray) -> float:
    """AUC of cosine similarity over all pairs: same person (positive) against different."""
    from sklearn.metrics import roc_auc_score

    _, s, same = pair_similarities(vectors, owner)
    return float(roc_auc_score(same, s))


__all__ = ["pair_similarities", "verification_auc"]
