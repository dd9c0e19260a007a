"""What an upload is (photo, video or neither, by its name) and which frames of a video are fitted."""

from __future__ import annotations

import os
from pathlib import PurePath

from facerecon.multi.video import VIDEO_SUFFIXES as _VIDEO, Frame, read_frames

#: Photo suffixes accepted by the page (the loader checks the content).
PHOTO_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
#: Video suffixes accepted by the page: those :mod:`facerecon.multi.video` reads.
VIDEO_SUFFIXES: tuple[str, ...] = tuple(sorted(_VIDEO))


def kind_of(name: str) -> str | None:
    """"photo", "video" or None (not accepted), from the file name's suffix."""
    suffix = PurePath(name).suffix.lower()
    if suffix in PHOTO_SUFFIXES:
        return "photo"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def sample_frames(path: str | os.PathLike, count: int, every_s: float = 0.5) -> list[Frame]:
    """At most ``count`` sharp frames spread over the video (one per ``every_s`` seconds at most;
    :func:`facerecon.multi.video.read_frames`). Raises ImageError (one line) for a bad video."""
    return read_frames(path, every_s=every_s, max_frames=count)
