"""Where facerecon finds data it does not ship: the shared data folder and the user cache."""

from __future__ import annotations

import os
from pathlib import Path

_PKG_DIR = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """The per-user cache folder (``$XDG_CACHE_HOME/facerecon``, default ``~/.cache/facerecon``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "facerecon"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_dir() -> Path | None:
    """The ``shared`` data folder beside the checkout, or ``$FACERECON_SHARED``; None if absent.

    Looked up from the package location and the working directory upwards, so it works for an
    editable install inside a checkout that has ``../shared`` next to it.
    """
    env = os.environ.get("FACERECON_SHARED")
    if env:
        return Path(env) if Path(env).is_dir() else None
    for start in (_PKG_DIR, Path.cwd().resolve()):
        for parent in [start, *start.parents]:
            cand = parent / "shared"
            if (cand / "facemodel").is_dir() or (cand / "faces").is_dir():
                return cand
    return None


def shared_path(*parts: str) -> Path | None:
    """A path inside the shared folder, or None when the folder or the path does not exist."""
    root = shared_dir()
    if root is None:
        return None
    path = root.joinpath(*parts)
    return path if path.exists() else None


def resource_path(name: str) -> Path:
    """A file shipped inside the package (``facerecon/resources``: alignment template, skin
    model, scan landmarks). ``data`` is left to training-data shards."""
    return _PKG_DIR / "resources" / name
