"""Atomic file output, for every file facerecon writes: each file is written to a temporary file
in its destination folder and moved into place with :func:`os.replace`, so a reader never sees a
half-written file and a failure leaves neither partial files nor temporaries behind.

This module sits at the bottom of the package (it imports nothing of facerecon) so that every
layer — the face-model cache, FaceNet's weight cache, synthesis, evaluation, export and the
command line — writes through it.

:class:`AtomicFiles` stages several files and moves them into place only when all were written
(an OBJ never appears without its MTL and texture). The moves themselves are separate
``os.replace`` calls: each file is atomic, the group is all-or-nothing except for a crash
between two renames.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Iterator


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Mode for new files: what ``open(path, "w")`` would give (mkstemp alone gives 0600).
_FILE_MODE = 0o666 & ~_read_umask()


class AtomicFiles:
    """Stage files, then move them all into place on success (``with`` block) or delete them all.

    >>> with AtomicFiles() as out:            # doctest: +SKIP
    ...     out.write_bytes("face.mtl", mtl)
    ...     out.write_bytes("face.obj", obj)   # both appear only if both were written
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []  # (temporary, destination)
        self._done = False

    def write_bytes(self, path: str | os.PathLike, data: bytes) -> Path:
        """Stage ``data`` for ``path`` (its folder must exist); returns the destination path."""
        dst = Path(path)
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, _FILE_MODE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._staged.append((Path(tmp), dst))
        return dst

    def write_text(self, path: str | os.PathLike, text: str) -> Path:
        """Stage UTF-8 text for ``path``."""
        return self.write_bytes(path, text.encode("utf-8"))

    def stage_path(self, path: str | os.PathLike) -> Path:
        """A temporary path beside ``path`` for writers that need a file name (``np.savez``,
        ``cv2.imwrite``, a download stream); it is moved to ``path`` on commit."""
        dst = Path(path)
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp" + dst.suffix)
        os.close(fd)
        os.chmod(tmp, _FILE_MODE)
        self._staged.append((Path(tmp), dst))
        return Path(tmp)

    def commit(self) -> list[Path]:
        """Move every staged file into place (in staging order); returns the destinations."""
        if self._done:
            raise RuntimeError("AtomicFiles already committed or aborted")
        try:
            for tmp, dst in self._staged:
                os.replace(tmp, dst)
        finally:
            self.abort()  # removes whatever was not moved (nothing, on success)
        return [dst for _, dst in self._staged]

    def abort(self) -> None:
        """Delete every staged temporary file that is still there."""
        self._done = True
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)

    def __enter__(self) -> "AtomicFiles":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, mkdir: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder + ``os.replace``);
    ``mkdir`` creates the folder first."""
    if mkdir:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with AtomicFiles() as out:
        out.write_bytes(path, data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, mkdir: bool = False) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"), mkdir=mkdir)


def atomic_write_json(path: str | os.PathLike, doc: Any, *, indent: int = 1, mkdir: bool = False,
                      default=None) -> Path:
    """Write ``doc`` as UTF-8 JSON (newline-terminated) to ``path`` atomically."""
    text = json.dumps(doc, indent=indent, ensure_ascii=False, default=default) + "\n"
    return atomic_write_text(path, text, mkdir=mkdir)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, mkdir: bool = False) -> Iterator[Path]:
    """``with atomic_path(dest) as tmp:`` write ``tmp`` by any means; it replaces ``dest`` when
    the block ends without an exception, and is deleted otherwise."""
    if mkdir:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with AtomicFiles() as out:
        yield out.stage_path(path)
