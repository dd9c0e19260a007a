"""A video is a set of frames: sampled at a fixed interval, with blurred frames rejected."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerecon.imageio.load import ImageError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


@dataclass
class Frame:
    """One sampled frame of a video."""

    image: np.ndarray
    """(H,W,3) uint8 RGB."""
    index: int
    """Frame number in the video."""
    time_s: float
    """Time stamp, seconds."""
    sharpness: float
    """Variance of the Laplacian of the grey frame (higher = sharper)."""

    @property
    def name(self) -> str:
        return f"frame_{self.index:06d}"


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: the usual focus measure (blur lowers it)."""
    import cv2

    grey = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def read_frames(path: str | os.PathLike, every_s: float = 0.5, max_frames: int = 60,
                min_sharpness_ratio: float = 0.4) -> list[Frame]:
    """Frames every ``every_s`` seconds (at most ``max_frames``, spread over the video); frames
    whose sharpness is under ``min_sharpness_ratio`` × the median of the sampled frames are
    dropped as blurred. Raises :class:`ImageError` (one line) for an unreadable video."""
    import cv2

    cap = cv2.VideoCapture(os.fspath(path))
    if not cap.isOpened():
        raise ImageError(path, "cannot open the video (unknown format or codec)")
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        step = max(1, int(round(every_s * fps)))
        wanted = list(range(0, count, step)) if count > 0 else []
        if len(wanted) > max_frames:
            wanted = [wanted[int(i)] for i in np.linspace(0, len(wanted) - 1, max_frames)]
        frames: list[Frame] = []
        index = 0
        targets = set(wanted)
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if (not wanted and index % step == 0) or index in targets:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                frames.append(Frame(rgb, index, index / fps, sharpness(rgb)))
                if len(frames) >= max_frames:
                    break
            index += 1
    finally:
        cap.release()
    if not frames:
        raise ImageError(path, "no frames could be read from the video")
    median = float(np.median([f.sharpness for f in frames]))
    return [f for f in frames if f.sharpness >= min_sharpness_ratio * median]


def badly_detected(landmark_errors_px: list[float], factor: float = 2.0, floor_px: float = 3.0) -> np.ndarray:
    """(N,) bool: frames whose fitted-to-detected landmark error is over ``factor`` × the median
    of the video's frames and over ``floor_px`` — a detector that latched onto something else, or
    landmarks thrown off by motion. (Frames with no face at all fail on their own.)"""
    err = np.asarray(landmark_errors_px, dtype=np.float64)
    if len(err) < 3:
        return np.zeros(len(err), bool)
    return (err > factor * np.median(err)) & (err > floor_px)


__all__ = ["VIDEO_SUFFIXES", "Frame", "sharpness", "is_video", "read_frames", "badly_detected"]
