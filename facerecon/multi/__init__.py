"""Multi-image reconstruction (SPEC §5): many photos of a person become one face.

:mod:`~facerecon.multi.aggregate` turns the per-photo fits of a person into one identity and
albedo (the paper's K-means and its baselines), :mod:`~facerecon.multi.grouping` groups the faces
of unlabelled photos into people, :mod:`~facerecon.multi.video` turns a video into frames. The
joint fit (α and δ shared by a person's photos) is the fitter's own ``groups``.
"""

from facerecon.multi.aggregate import AGGREGATORS, PhotoQuality, aggregate, kmeans_centroids, quality_weights
from facerecon.multi.grouping import group_vectors
from facerecon.multi.video import read_frames

__all__ = ["AGGREGATORS", "PhotoQuality", "aggregate", "kmeans_centroids", "quality_weights", "group_vectors",
           "read_frames"]
