"""The limits of a ``facerecon serve`` server; field docstrings are its command-line help."""

from __future__ import annotations

from dataclasses import dataclass

#: The aggregator the page's "one person" mode starts with: ``facerecon reconstruct --aggregate``'s
#: default (the web layer may not import the command line; a test keeps the two equal).
AGGREGATE_DEFAULT = "joint"

#: One line per aggregator for the page's menu, in the order shown; its keys are exactly
#: :data:`facerecon.multi.aggregate.AGGREGATORS` (a test checks), so a new one is not forgotten.
AGGREGATE_HELP: dict[str, str] = {
    "joint": "one fit over all the photos, identity and albedo shared (closest to a real scan)",
    "kmeans": "the paper's K-means; with one person, its centroid is the mean",
    "mean": "the mean of the photos' identity and albedo",
    "median": "the per-coefficient median of the photos' fits",
    "quality": "an average weighted by how well each photo was fitted",
    "segments": "a quality-weighted average per face segment",
    "confidence": "per-coefficient weights from each photo's landmark information",
}


@dataclass
class WebConfig:
    """What one server accepts and how long it keeps it."""

    max_photo_mb: float = 20.0
    """Largest photo accepted, in MB (10^6 bytes); a larger upload is refused with 413."""
    max_video_mb: float = 200.0
    """Largest video accepted, in MB."""
    max_files: int = 32
    """Uploads accepted per browser session."""
    max_sessions: int = 16
    """Browser sessions kept at once; a new page is refused while that many are active."""
    session_minutes: float = 30.0
    """A session nobody has looked at for this long is deleted with all its files (an open page
    polls, so it stays; a closed page ends its session at once)."""
    video_frames: int = 5
    """Most frames taken from a video (spread over it, at most two a second, blurred ones dropped);
    each is fitted as a photo."""
    texture_size: int = 1024
    """Side of the baked face texture, texels."""
    batch_size: int = 8
    """Photos of one person fitted together (the page's "one person" mode)."""

    @property
    def max_photo_bytes(self) -> int:
        """:attr:`max_photo_mb` in bytes."""
        return int(self.max_photo_mb * 1e6)

    @property
    def max_video_bytes(self) -> int:
        """:attr:`max_video_mb` in bytes."""
        return int(self.max_video_mb * 1e6)
