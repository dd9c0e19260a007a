"""Browser sessions: one temporary folder each, the jobs in it, expiry, and safe file look-up.

A job is one photo (or video frame) fitted on its own, or one person: every photo of a batch
fitted and combined into one face, each photo a :class:`Member` of the job with its own progress.

Layout of a session's folder (all names chosen here, never taken from the client)::

    <root>/<session id>/uploads/0001.jpg        the uploaded bytes (or a video's frames)
    <root>/<session id>/results/<job id>/...    what write_reconstruction (a photo) or
                                                write_person (a person) wrote, + a zip

:meth:`Session.result_file` is the only way a path leaves this module for serving: the name must
be one the job wrote and the resolved path must lie inside the job's results folder.
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
from urllib.parse import quote

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


def file_stems(names: list[str], fallback: str = "photo") -> list[str]:
    """Safe, distinct file stems for display names (a person's overlays): the name without its
    photo suffix, letters, digits, ``.``, ``_`` and ``-`` only (others become ``_``), no leading dot, at most 60
    characters; a repeated stem gets ``-2``, ``-3``, …; an empty one becomes ``fallback``."""
    out: list[str] = []
    for raw in names:
        base = re.sub(r"\.(jpe?g|png|webp|bmp|tiff?)$", "", raw, flags=re.I)
        stem = re.sub(r"[^\w.-]+", "_", base).strip("._-")[:60].rstrip("._-") or fallback
        unique, k = stem, 1
        while unique in out:
            k += 1
            unique = f"{stem}-{k}"
        out.append(unique)
    return out


@dataclass
class Member:
    """One photo (or video frame) of a person job, and what became of it."""

    name: str
    """Display name (the uploaded file's name; a frame adds its time)."""
    source: Path | None
    """The file to fit (inside the session's uploads folder); None when it failed at upload."""
    state: str = "queued"
    """queued, running, done (fitted, then used in the face) or failed."""
    stage: str = "waiting for the worker"
    progress: float = 0.0
    """0..1 for its own progress bar."""
    error: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    """Its own fit's figures (pose, landmark error) and, once combined, its weight in the face."""
    overlay: str | None = None
    """Key in the job's ``files`` of its overlay (the person's face posed as in this photo)."""

    def to_json(self, files_url: Callable[[str], str], files: dict[str, str]) -> dict[str, Any]:
        """The member as the page sees it; ``files_url`` turns a file name into its URL."""
        doc: dict[str, Any] = {"name": self.name, "state": self.state, "stage": self.stage,
                               "progress": round(self.progress, 4), "error": self.error, "figures": self.figures}
        if self.overlay and self.overlay in files:
            doc["overlay"] = files_url(files[self.overlay])
        return doc


@dataclass
class Job:
    """One photo (or one video frame) to fit, or one person's photos to fit and combine, and
    what became of it."""

    id: str
    name: str
    """Display name (the uploaded file's name; a frame adds its time; "Person N" for a person)."""
    source: Path | None
    """The file to fit (inside the session's uploads folder); None for a job failed at upload
    and for a person (whose files are its members')."""
    kind: str = "photo"
    """"photo" (one face from one photo) or "person" (one face from all of :attr:`members`)."""
    created: float = field(default_factory=time.time)
    state: str = "queued"
    """queued, running, done, failed or cancelled; a person starts as collecting (its photos
    are being uploaded) until the page starts it."""
    stage: str = "waiting for the worker"
    progress: float = 0.0
    """0..1 for the progress bar."""
    error: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    """{key: path relative to the job's results folder} once done (the keys write_reconstruction
    or write_person returned, + zip)."""
    figures: dict[str, Any] = field(default_factory=dict)
    """Key figures of the fit: pose in degrees, landmark error, times."""
    started: float | None = None
    finished: float | None = None
    progress_known: bool = True
    """False while a stage runs that reports no progress (the page shows a busy bar)."""
    members: list[Member] = field(default_factory=list)
    """A person's photos, in upload order."""
    aggregate: str | None = None
    """A person's aggregator (one of :data:`facerecon.multi.aggregate.AGGREGATORS`)."""

    def to_json(self, base_url: str, queue_position: int | None = None) -> dict[str, Any]:
        """The job as the page sees it; file URLs start with ``base_url``."""
        def url(name: str) -> str:
            return f"{base_url}/jobs/{self.id}/files/{quote(name)}"

        doc: dict[str, Any] = {
            "id": self.id, "kind": self.kind, "name": self.name, "state": self.state, "stage": self.stage,
            "progress": round(self.progress, 4), "progress_known": self.progress_known, "error": self.error,
            "figures": self.figures, "queue_position": queue_position,
        }
        if self.files:
            doc["files"] = {k: url(name) for k, name in self.files.items()}
        if self.kind == "person":
            doc["aggregate"] = self.aggregate
            doc["members"] = [m.to_json(url, self.files) for m in self.members]
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

    def add_person(self, aggregate: str) -> Job | None:
        """A new person job collecting photos (named "Person N"), or None when the session
        already has :attr:`WebConfig.max_files` people or is closed."""
        with self.lock:
            people = sum(j.kind == "person" for j in self.jobs.values())
            if self.closed or people >= self.config.max_files:
                return None
            job = Job(secrets.token_urlsafe(9), f"Person {people + 1}", None, kind="person", state="collecting",
                      stage="receiving the photos", aggregate=aggregate)
            self.jobs[job.id] = job
        return job

    def person(self, job_id: str) -> Job | None:
        """The person job ``job_id`` of this session, or None."""
        with self.lock:
            job = self.jobs.get(job_id)
        return job if job is not None and job.kind == "person" else None

    def add_member(self, job: Job, name: str, source: Path | None, error: str | None = None) -> Member | None:
        """Add a photo to a person still collecting (failed at once when ``error`` is given);
        None when the person has already been started."""
        member = Member(name, source)
        if error is not None:
            member.state, member.stage, member.error = "failed", "failed", error
        with self.lock:
            if job.state != "collecting":
                return None
            job.members.append(member)
        return member

    def start_person(self, job: Job) -> bool:
        """Close a person's batch and mark it queued (the caller hands it to the worker); False
        when it was not collecting."""
        with self.lock:
            if job.state != "collecting":
                return False
            job.state, job.stage = "queued", "waiting for the worker"
        return True

    def update(self, item: Job | Member, **changes: Any) -> None:
        """Change a job's (or a member's) fields under the session lock (the worker thread calls this)."""
        with self.lock:
            for k, v in changes.items():
                setattr(item, k, v)

    def result_file(self, job_id: str, name: str) -> Path | None:
        """The path of a file a finished job wrote, or None: unknown job or name, or a path that
        would leave the job's results folder. ``name`` is relative to that folder, exactly as the
        job recorded it (``face.glb``, ``overlays/photo.png``)."""
        with self.lock:
            job = self.jobs.get(job_id)
            allowed = set(job.files.values()) if job is not None else set()
        if name not in allowed or not ID_PATTERN.match(job_id):
            return None
        folder = self.results_dir(job_id).resolve()
        path = (folder / name).resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            return None
        return path

    def delete(self) -> None:
        """Mark closed and remove the folder with everything in it."""
        with self.lock:
            self.closed = True
            for job in self.jobs.values():
                if job.state in ("collecting", "queued", "running"):
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
