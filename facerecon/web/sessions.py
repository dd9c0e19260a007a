"""Browser sessions: one temporary folder each, the jobs in it, expiry, and safe file look-up.

Layout of a session's folder (all names chosen here, never taken from the client)::

    <root>/<session id>/uploads/0001.jpg        the uploaded bytes (or a video's frames)
    <root>/<session id>/results/<job id>/...    what write_reconstruction wrote, + a zip

:meth:`Session.result_file` is the only way a path leaves this module for serving: the name must
be one the job wrote and the resolved path must lie inside the session's folder.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from facerecon.web.config import WebConfig

#: Session and job ids: URL-safe random tokens (never a path component the client chose).
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")

#: Longest display name kept for an upload.
MAX_NAME = 120


def display_name(raw: str) -> str:
    """A client's file name reduced to something safe to show: last path part, printable, short."""
    base = re.split(r"[\\/]", raw or "")[-1]
    text = "".join(c for c in base if c.isprintable()).strip() or "upload"
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"


@dataclass
class Job:
    """One photo (or one video frame) to fit, and what became of it."""

    id: str
    name: str
    """Display name (the uploaded file's name; a frame adds its time)."""
    source: Path | None
    """The file to fit (inside the session's uploads folder); None for a job failed at upload."""
    created: float = field(default_factory=time.time)
    state: str = "queued"
    """queued, running, done, failed or cancelled."""
    stage: str = "waiting for the worker"
    progress: float = 0.0
    """0..1 for the progress bar."""
    error: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    """{key: file name in the job's results folder} once done (keys of write_reconstruction + zip)."""
    figures: dict[str, Any] = field(default_factory=dict)
    """Key figures of the fit: pose in degrees, landmark error, times."""
    started: float | None = None
    finished: float | None = None

    def to_json(self, base_url: str, queue_position: int | None = None) -> dict[str, Any]:
        """The job as the page sees it; file URLs start with ``base_url``."""
        doc: dict[str, Any] = {
            "id": self.id, "name": self.name, "state": self.state, "stage": self.stage,
            "progress": round(self.progress, 4), "error": self.error, "figures": self.figures,
            "queue_position": queue_position,
        }
        if self.files:
            doc["files"] = {k: f"{base_url}/jobs/{self.id}/files/{name}" for k, name in self.files.items()}
        return doc


class Session:
    """One browser page's uploads and results, in its own temporary folder."""

    def __init__(self, sid: str, folder: Path, config: WebConfig) -> None:
        self.id = sid
        self.folder = folder
        self.config = config
        self.created = self.last_seen = time.monotonic()
        self.jobs: dict[str, Job] = {}
        self.uploads = 0
        self.closed = False
        self.lock = threading.Lock()
        """Guards :attr:`jobs`, :attr:`uploads` and every job's fields (short holds only)."""
        self.folder_lock = threading.Lock()
        """Held while files are written into the folder and while it is deleted."""
        (folder / "uploads").mkdir(parents=True)
        (folder / "results").mkdir()

    def touch(self) -> None:
        """Mark the session as seen now (it expires :attr:`WebConfig.session_minutes` later)."""
        self.last_seen = time.monotonic()

    def reserve_upload(self) -> int | None:
        """Count one more upload and return its number (1, 2, …), or None when the limit is reached."""
        with self.lock:
            if self.closed or self.uploads >= self.config.max_files:
                return None
            self.uploads += 1
            return self.uploads

    def release_upload(self) -> None:
        """Give back an upload slot (the upload was refused)."""
        with self.lock:
            self.uploads = max(0, self.uploads - 1)

    def upload_path(self, number: int, suffix: str, frame: int | None = None) -> Path:
        """Where upload ``number`` (or its video frame) is stored: a name made here, not the client's."""
        suffix = suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", suffix) else ".bin"
        name = f"{number:04d}{suffix}" if frame is None else f"{number:04d}_frame{frame:02d}.png"
        return self.folder / "uploads" / name

    def results_dir(self, job_id: str) -> Path:
        """The folder a job's outputs are written to."""
        if not ID_PATTERN.match(job_id):
            raise ValueError(f"bad job id {job_id!r}")
        return self.folder / "results" / job_id

    def add_job(self, name: str, source: Path | None) -> Job:
        """A new queued job (the caller hands it to the worker)."""
        job = Job(secrets.token_urlsafe(9), name, source)
        with self.lock:
            self.jobs[job.id] = job
        return job

    def update(self, job: Job, **changes: Any) -> None:
        """Change a job's fields under the session lock (the worker thread calls this)."""
        with self.lock:
            for k, v in changes.items():
                setattr(job, k, v)

    def result_file(self, job_id: str, name: str) -> Path | None:
        """The path of a file a finished job wrote, or None: unknown job or name, or a path that
        would leave the session's folder."""
        with self.lock:
            job = self.jobs.get(job_id)
            allowed = set(job.files.values()) if job is not None else set()
        if name not in allowed or not ID_PATTERN.match(job_id):
            return None
        root = self.folder.resolve()
        path = (self.results_dir(job_id) / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    def delete(self) -> None:
        """Mark closed and remove the folder with everything in it."""
        with self.lock:
            self.closed = True
            for job in self.jobs.values():
                if job.state in ("queued", "running"):
                    job.state, job.stage = "cancelled", "session ended"
        with self.folder_lock:
            shutil.rmtree(self.folder, ignore_errors=True)


class SessionStore:
    """Every live session of a server, under one temporary root folder removed by :meth:`close`."""

    def __init__(self, config: WebConfig, root: Path | None = None) -> None:
        self.config = config
        if root is not None:
            Path(root).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="facerecon-web-", dir=root))
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.on_end: list[Callable[[Session], None]] = []
        """Called with each session that ends (the worker drops its queued jobs)."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def create(self) -> Session | None:
        """A new session with its folder, or None when :attr:`WebConfig.max_sessions` are live."""
        self.expire()
        with self._lock:
            if len(self._sessions) >= self.config.max_sessions:
                return None
            sid = secrets.token_urlsafe(18)
            session = Session(sid, self.root / sid, self.config)
            self._sessions[sid] = session
        return session

    def get(self, sid: str) -> Session | None:
        """The live session ``sid`` (marked as seen), or None."""
        if not ID_PATTERN.match(sid):
            return None
        with self._lock:
            session = self._sessions.get(sid)
        if session is not None:
            session.touch()
        return session

    def end(self, sid: str) -> bool:
        """End a session: its queued jobs are dropped and its folder deleted. False if unknown."""
        with self._lock:
            session = self._sessions.pop(sid, None) if ID_PATTERN.match(sid) else None
        if session is None:
            return False
        session.delete()
        for hook in self.on_end:
            hook(session)
        return True

    def expire(self, now: float | None = None) -> list[str]:
        """End every session unseen for :attr:`WebConfig.session_minutes`; returns their ids."""
        now = time.monotonic() if now is None else now
        limit = self.config.session_minutes * 60.0
        with self._lock:
            old = [sid for sid, s in self._sessions.items() if now - s.last_seen > limit]
        for sid in old:
            self.end(sid)
        return old

    def close(self) -> None:
        """End every session and remove the root folder."""
        with self._lock:
            sids = list(self._sessions)
        for sid in sids:
            self.end(sid)
        shutil.rmtree(self.root, ignore_errors=True)
