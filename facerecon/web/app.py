"""The Starlette application behind ``facerecon serve``: the page and a small JSON API.

===========================================  ===================================================
``GET /``                                    the page (``static/index.html``)
``GET /static/...``                          its scripts, styles and the vendored three.js
``GET /api/status``                          worker state, limits, modes, version
``POST /api/sessions``                       a new session: ``{"id": ..., "limits": ..., "modes": ...}``
``GET /api/sessions/{sid}``                  its jobs with state, progress, figures, file URLs
``POST /api/sessions/{sid}/uploads?name=N``  body = the file's bytes; queues one job per photo
                                             (a video: one per sampled frame)
``POST /api/sessions/{sid}/people?aggregate=A``  a person job collecting photos: ``{"job": ...}``
``POST /api/sessions/{sid}/uploads?name=N&person=J``  the file becomes a photo of person J (a
                                             video: one photo per sampled frame); nothing queued
``POST /api/sessions/{sid}/people/{jid}/start``  queue the person: its photos are fitted and
                                             combined into one face by its aggregator
``GET /api/sessions/{sid}/jobs/{jid}/files/{name}``  a file the job wrote (``?download=1``);
                                             a person's overlays are ``overlays/<photo>.png``
``DELETE /api/sessions/{sid}``               end it now (``POST .../end`` for ``sendBeacon``)
===========================================  ===================================================

A job is ``{"id", "kind": "photo"|"person", "name", "state", "stage", "progress", "figures",
"files": {key: url}, ...}``; a person adds ``"aggregate"`` and ``"members"`` (one per photo, each
with its own state, stage, progress, error, figures and overlay URL).

Errors are JSON ``{"error": "one line"}`` with the fitting HTTP status (400 bad request, 404
unknown session, person or file, 409 the person was already started, 413 too large, 415 not a
photo or video, 429 too many uploads or people, 503 too many sessions).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import threading
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import facerecon
from facerecon.atomic import atomic_path
from facerecon.imageio.load import ImageError
from facerecon.multi.aggregate import AGGREGATORS
from facerecon.web.config import AGGREGATE_DEFAULT, AGGREGATE_HELP, WebConfig
from facerecon.web.media import PHOTO_SUFFIXES, VIDEO_SUFFIXES, kind_of, sample_frames
from facerecon.web.sessions import Job, Session, SessionStore, display_name
from facerecon.web.worker import FitWorker

STATIC = Path(__file__).parent / "static"


class TooLarge(Exception):
    """The upload went past its size limit."""


def _error(status: int, message: str) -> JSONResponse:
    """A JSON error with a one-line message."""
    return JSONResponse({"error": message}, status_code=status)


def _csp(index_html: str) -> str:
    """Content-Security-Policy for the page: nothing from elsewhere; the inline import map by hash."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()}'"
        for m in re.findall(r'<script type="importmap">(.*?)</script>', index_html, re.S))
    return ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
            f"script-src 'self' {hashes}; connect-src 'self' blob:; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'")


def default_builder(fit_config: Any, device: str, joint_config: Any = None) -> Callable[[], tuple[Any, Any]]:
    """``build`` for :class:`FitWorker`: a FaceReconstructor and the "head" face model for export."""
    def build() -> tuple[Any, Any]:
        from facerecon.pipeline import FaceReconstructor

        recon = FaceReconstructor(device=device, config=fit_config, joint_config=joint_config)
        return recon, recon.face_model("head")
    return build


class WebApp:
    """The sessions, the worker and the request handlers of one server."""

    def __init__(self, config: WebConfig, worker: FitWorker, tmp_root: Path | None = None) -> None:
        self.config = config
        self.worker = worker
        self.store = SessionStore(config, tmp_root)
        self.store.on_end.append(worker.drop_session)
        self._reaper_stop = threading.Event()
        self.index_html = (STATIC / "index.html").read_text(encoding="utf-8")
        self.csp = _csp(self.index_html)

    # --- life cycle --------------------------------------------------------------------------
    def _reap(self) -> None:
        """Expire idle sessions every little while until the server stops."""
        period = max(1.0, min(60.0, self.config.session_minutes * 60.0 / 4))
        while not self._reaper_stop.wait(period):
            self.store.expire()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Start the worker and the expiry thread; on shutdown stop both and delete every file."""
        self.worker.start()
        reaper = threading.Thread(target=self._reap, name="facerecon-expire", daemon=True)
        reaper.start()
        try:
            yield
        finally:
            self._reaper_stop.set()
            self.worker.stop()
            self.store.close()

    # --- helpers -----------------------------------------------------------------------------
    def limits(self) -> dict[str, Any]:
        """The limits the page shows and checks before uploading."""
        c = self.config
        return {"max_photo_bytes": c.max_photo_bytes, "max_video_bytes": c.max_video_bytes,
                "max_files": c.max_files, "session_minutes": c.session_minutes,
                "video_frames": c.video_frames, "photo_suffixes": list(PHOTO_SUFFIXES),
                "video_suffixes": list(VIDEO_SUFFIXES)}

    def modes(self) -> dict[str, Any]:
        """What the page offers: single photos, or one person from all photos combined by an
        aggregator (menu entries in :data:`AGGREGATE_HELP`'s order, then any it lacks)."""
        names = [a for a in AGGREGATE_HELP if a in AGGREGATORS] + [a for a in AGGREGATORS if a not in AGGREGATE_HELP]
        return {"single": True, "person": True, "aggregate_default": AGGREGATE_DEFAULT,
                "aggregators": [{"name": a, "help": AGGREGATE_HELP.get(a, "")} for a in names]}

    def _session(self, request: Request) -> Session | None:
        """The live session named in the URL, or None."""
        return self.store.get(request.path_params["sid"])

    def session_json(self, session: Session) -> dict[str, Any]:
        """A session's state for the page."""
        base = f"/api/sessions/{session.id}"
        with session.lock:
            jobs = list(session.jobs.values())
            docs = [j.to_json(base) for j in jobs]
        for doc, job in zip(docs, jobs):
            if doc["state"] == "queued":
                doc["queue_position"] = self.worker.queue_position(job)
        return {"id": session.id, "worker": self.worker.status, "uploads": session.uploads,
                "limits": self.limits(), "jobs": docs}

    # --- handlers ----------------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        """The page, with its Content-Security-Policy."""
        return Response(self.index_html, media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": self.csp, "Cache-Control": "no-cache"})

    async def status(self, request: Request) -> Response:
        """Worker state, limits, version."""
        return JSONResponse({"facerecon": facerecon.__version__, "worker": self.worker.status,
                             "sessions": len(self.store), "limits": self.limits(), "modes": self.modes()})

    async def create_session(self, request: Request) -> Response:
        """A new session (503 when the server has its maximum)."""
        session = await run_in_threadpool(self.store.create)
        if session is None:
            return _error(503, f"the server already has {self.config.max_sessions} open sessions; "
                               "close a page or try again later")
        return JSONResponse({"id": session.id, "limits": self.limits(), "modes": self.modes()}, status_code=201)

    async def get_session(self, request: Request) -> Response:
        """A session's jobs (polled by the page; keeps the session alive)."""
        session = self._session(request)
        if session is None:
            return _error(404, "no such session (it ended or expired): reload the page")
        return JSONResponse(self.session_json(session))

    async def end_session(self, request: Request) -> Response:
        """End a session now and delete its files."""
        ended = await run_in_threadpool(self.store.end, request.path_params["sid"])
        return Response(status_code=204) if ended else _error(404, "no such session")

    async def create_person(self, request: Request) -> Response:
        """A person job that collects the photos uploaded with ``person=<its id>`` until started."""
        session = self._session(request)
        if session is None:
            return _error(404, "no such session (it ended or expired): reload the page")
        aggregate = request.query_params.get("aggregate", AGGREGATE_DEFAULT)
        if aggregate not in AGGREGATORS:
            return _error(400, f"unknown aggregate {display_name(aggregate)!r} (choose from {', '.join(AGGREGATORS)})")
        job = session.add_person(aggregate)
        if job is None:
            return _error(429, f"this page already has {self.config.max_files} people (the limit); "
                               "reload the page for a new session")
        return JSONResponse({"job": self._job_json(session, job)}, status_code=201)

    async def start_person(self, request: Request) -> Response:
        """Queue a person's photos for fitting and combining (409 if already started)."""
        session = self._session(request)
        job = None if session is None else session.person(request.path_params["jid"])
        if session is None or job is None:
            return _error(404, "no such person")
        if not session.start_person(job):
            return _error(409, f"{job.name} was already started")
        self.worker.submit(session, job)
        return JSONResponse({"job": self._job_json(session, job)})

    def _job_json(self, session: Session, job: Job) -> dict[str, Any]:
        """One job as the page sees it (read under the session lock)."""
        with session.lock:
            return job.to_json(f"/api/sessions/{session.id}")

    async def upload(self, request: Request) -> Response:
        """Store one uploaded file (the request body) and queue its job(s), or (``person=``)
        add it to a person collecting photos."""
        session = self._session(request)
        if session is None:
            return _error(404, "no such session (it ended or expired): reload the page")
        person = None
        if "person" in request.query_params:
            person = session.person(request.query_params["person"])
            if person is None:
                return _error(404, "no such person")
            if person.state != "collecting":
                return _error(409, f"{person.name} was already started: drop the photos again for a new person")
        name = display_name(request.query_params.get("name", ""))
        kind = kind_of(name)
        if kind is None:
            return _error(415, f"{name}: not a photo or video (accepted: "
                               f"{' '.join(PHOTO_SUFFIXES + VIDEO_SUFFIXES)})")
        limit = self.config.max_photo_bytes if kind == "photo" else self.config.max_video_bytes
        too_large = _error(413, f"{name}: larger than the {limit / 1e6:g} MB limit for a {kind}")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return too_large
        number = session.reserve_upload()
        if number is None:
            return _error(429, f"{name}: this page already sent {self.config.max_files} files "
                               "(the limit); reload the page for a new session")
        dest = session.upload_path(number, Path(name).suffix)
        size = 0
        try:
            with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge
                    fh.write(chunk)
        except TooLarge:
            session.release_upload()
            return too_large
        except OSError:
            session.release_upload()
            return _error(410, f"{name}: the session ended during the upload")
        if size == 0:
            dest.unlink(missing_ok=True)
            session.release_upload()
            return _error(400, f"{name}: the file is empty")
        if kind == "photo":
            inputs: list[tuple[str, Path | None]] | str = [(name, dest)]
        else:
            inputs = await self._video_frames(session, name, dest, number)
        if person is not None:
            return self._add_to_person(session, person, name, inputs)
        if isinstance(inputs, str):
            jobs = [session.add_job(name, None)]
            session.update(jobs[0], state="failed", stage="failed", error=inputs)
        else:
            jobs = [session.add_job(n, path) for n, path in inputs]
        for job in jobs:
            if job.state == "queued":
                self.worker.submit(session, job)
        base = f"/api/sessions/{session.id}"
        return JSONResponse({"jobs": [j.to_json(base) for j in jobs]}, status_code=201)

    def _add_to_person(self, session: Session, person: Job, name: str,
                       inputs: list[tuple[str, Path | None]] | str) -> Response:
        """Make an upload's photo(s) members of a person (a bad video: one failed member)."""
        entries = [(name, None, inputs)] if isinstance(inputs, str) else [(n, p, None) for n, p in inputs]
        for n, path, error in entries:
            if session.add_member(person, n, path, error) is None:
                return _error(409, f"{person.name} was started during the upload of {name}")
        return JSONResponse({"jobs": [self._job_json(session, person)]}, status_code=201)

    async def _video_frames(self, session: Session, name: str, video: Path, number: int
                            ) -> list[tuple[str, Path | None]] | str:
        """The sampled frames of an uploaded video, each saved as PNG beside it: ``[(display name,
        path)]``, or the one-line reason the video cannot be read."""
        try:
            frames = await run_in_threadpool(sample_frames, video, self.config.video_frames)
        except ImageError as exc:
            return exc.reason
        from PIL import Image

        out: list[tuple[str, Path | None]] = []
        for k, frame in enumerate(frames, 1):
            path = session.upload_path(number, ".png", frame=k)
            with atomic_path(path) as tmp:
                Image.fromarray(frame.image).save(tmp, format="PNG")
            out.append((f"{name} @ {frame.time_s:.1f} s", path))
        return out

    async def file(self, request: Request) -> Response:
        """A file a job wrote, inline or (``?download=1``) as an attachment."""
        session = self._session(request)
        path = None if session is None else session.result_file(request.path_params["jid"],
                                                                  request.path_params["name"])
        if path is None:
            return _error(404, "no such file")
        download = request.query_params.get("download") == "1"
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"}
        return FileResponse(path, headers=headers, filename=path.name if download else None,
                            content_disposition_type="attachment" if download else "inline")

    def routes(self) -> list:
        """The URL table."""
        return [
            Route("/", self.index),
            Route("/api/status", self.status),
            Route("/api/sessions", self.create_session, methods=["POST"]),
            Route("/api/sessions/{sid}", self.get_session, methods=["GET"]),
            Route("/api/sessions/{sid}", self.end_session, methods=["DELETE"]),
            Route("/api/sessions/{sid}/end", self.end_session, methods=["POST"]),
            Route("/api/sessions/{sid}/uploads", self.upload, methods=["POST"]),
            Route("/api/sessions/{sid}/people", self.create_person, methods=["POST"]),
            Route("/api/sessions/{sid}/people/{jid}/start", self.start_person, methods=["POST"]),
            Route("/api/sessions/{sid}/jobs/{jid}/files/{name:path}", self.file),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]


def create_app(config: WebConfig | None = None, *, fit_config: Any = None, joint_config: Any = None, device: str = "cpu",
               allowed_hosts: list[str] | None = None, build: Callable[[], tuple[Any, Any]] | None = None,
               tmp_root: Path | None = None) -> Starlette:
    """The ASGI app. ``fit_config``, ``joint_config``: the fitting of single photos and of a
    person's joint fit (None: the default engine's); ``allowed_hosts`` limits the Host header (DNS-rebinding guard; None: any);
    ``build`` replaces the default FaceReconstructor builder; ``tmp_root`` holds the sessions'
    temporary folders (default: the system's temporary folder)."""
    config = config or WebConfig()
    if fit_config is None:  # the default engine's own (the page runs the default engine)
        from facerecon.pipeline import default_engine, engine_config

        fit_config = engine_config(default_engine()[0])
        joint_config = joint_config or engine_config(default_engine()[0], joint=True)
    worker = FitWorker(build or default_builder(fit_config, device, joint_config), config.texture_size, fit_config,
                       config.batch_size)
    web = WebApp(config, worker, tmp_root)
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)] if allowed_hosts else []
    app = Starlette(routes=web.routes(), middleware=middleware, lifespan=web.lifespan)
    app.state.web = web
    return app
