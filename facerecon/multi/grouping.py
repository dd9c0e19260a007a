"""Identity unknown: group the faces of many photos into people.

Each face becomes a vector (FaceNet embedding of its aligned crop, the paper's x-vector, or the
identity part α, δ of it) and the vectors are clustered: with the number of people K given, by
K-means (several initialisations, lowest inertia); without, by average-linkage clustering that
merges faces while their mean cosine distance stays under a threshold, so that K follows from the
data (measured on LFW mixtures, BENCHMARKS.md).
"""

from __future__ import annotations

import numpy as np

#: Average-linkage cosine-distance threshold for FaceNet embeddings when K is not given: between
#: LFW's same-person (mean cosine 0.67) and different-person (0.21) similarities; 0.5 found the
#: number of people best on LFW mixtures of 5/20/100 people (benchmarks/multi_grouping.py).
FACENET_DISTANCE_THRESHOLD = 0.5


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine geometry for K-means)."""
    v = np.asarray(vectors, dtype=np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def group_vectors(vectors: np.ndarray, k: int | None = None, *, threshold: float = FACENET_DISTANCE_THRESHOLD,
                  method: str = "kmeans", n_init: int = 10, seed: int = 0) -> np.ndarray:
    """Person labels (N,) 0..K−1 for (N,D) vectors, in order of first appearance.

    ``k`` given: K-means on unit vectors (``method="kmeans"``, the paper's) or average-linkage
    clustering into K groups (``"linkage"``). ``k`` None: average-linkage clustering on cosine
    distance, cut at ``threshold``.
    """
    if method not in ("kmeans", "linkage"):
        raise ValueError(f"unknown grouping method {method!r} (kmeans or linkage)")
    x = normalise(vectors)
    n = len(x)
    if n == 0:
        return np.zeros(0, np.int64)
    if k is not None and not 1 <= k <= n:
        raise ValueError(f"cannot make {k} groups of {n} faces")
    if n == 1 or k == 1:
        labels = np.zeros(n, np.int64)
    elif k is not None and method == "kmeans":
        from sklearn.cluster import KMeans

        labels = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(x).labels_
    else:
        from sklearn.cluster import AgglomerativeClustering

        labels = AgglomerativeClustering(n_clusters=k, distance_threshold=None if k else threshold,
                                         metric="cosine", linkage="average").fit(x).labels_
    _, first = np.unique(labels, return_index=True)
    order = {lab: i for i, lab in enumerate(labels[np.sort(first)])}
    return np.array([order[lab] for lab in labels], dtype=np.int64)


__all__ = ["FACENET_DISTANCE_THRESHOLD", "normalise", "group_vectors"]
