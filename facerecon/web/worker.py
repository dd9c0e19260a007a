"""The fitting worker: one background thread, one job at a time, jobs in arrival order.

Fitting is CPU-heavy and torch is not made for many concurrent fits, so the server never fits in
its request handlers: they queue a :class:`~facerecon.web.sessions.Job` here and the page polls
its state. The thread loads the face model once at start, so the first photo does not wait for it.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
import zipfile
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facerecon.atomic import atomic_path
from facerecon.web.sessions import Job, Session

#: Name of the zip of all of a job's files, inside its results folder.
ZIP_NAME = "facerecon_files.zip"


class Cancelled(Exception):
    """The job's session ended while it ran."""


def fit_figures(rec: Any) -> dict[str, Any]:
    """Key figures of one :class:`~facerecon.pipeline.Reconstruction`: pose and landmark error."""
    pitch, yaw, roll = (math.degrees(float(a)) for a in rec.params.angles[0])
    detected = np.asarray(rec.prepared.landmarks_photo, np.float64).reshape(68, 2)
    fitted = np.asarray(rec.landmarks_fit, np.float64).reshape(68, 2)
    err = float(np.linalg.norm(detected - fitted, axis=1).mean())
    eyes = float(np.linalg.norm(detected[36] - detected[45]))  # outer eye corners
    return {
        "yaw_deg": round(yaw, 1), "pitch_deg": round(pitch, 1), "roll_deg": round(roll, 1),
        "landmark_error_px": round(err, 2),
        "landmark_error_eye_pct": round(100.0 * err / eyes, 1) if eyes > 0 else None,
        "photo_loss": round(float(rec.losses.get("photo", float("nan"))), 4),
        "photo_size": [int(rec.photo.shape[1]), int(rec.photo.shape[0])],
    }


def write_zip(folder: Path, names: list[str]) -> Path:
    """Zip ``names`` (files in ``folder``) into ``folder/ZIP_NAME``, atomically."""
    dest = folder / ZIP_NAME
    with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            zf.write(folder / name, arcname=name)
    return dest


class FitWorker:
    """Fits queued jobs one at a time in a daemon thread.

    ``build`` returns ``(reconstructor, head_model)``; it runs in the thread, once, at start.
    """

    def __init__(self, build: Callable[[], tuple[Any, Any]], texture_size: int = 1024,
                 fit_config: Any = None) -> None:
        self._build = build
        self.texture_size = texture_size
        self.fit_config = fit_config
        self._pending: deque[tuple[Session, Job]] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="facerecon-fit", daemon=True)
        self.status = "starting"
        """"starting", "loading the face model", "ready", or "failed: <reason>"."""
        self.recon: Any = None
        self.head: Any = None

    def start(self) -> None:
        """Start the thread (it loads the model, then waits for jobs)."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to end after the current job and wait for it up to ``timeout`` s."""
        with self._cond:
            self._stop = True
            self._pending.clear()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, session: Session, job: Job) -> None:
        """Queue a job."""
        with self._cond:
            self._pending.append((session, job))
            self._cond.notify()

    def drop_session(self, session: Session) -> None:
        """Forget the queued jobs of an ended session (a running one stops at its next step)."""
        with self._cond:
            self._pending = deque((s, j) for s, j in self._pending if s is not session)

    def queue_position(self, job: Job) -> int | None:
        """1 for the next job to run, 2 for the one after, …; None when not queued."""
        with self._cond:
            for i, (_, j) in enumerate(self._pending):
                if j is job:
                    return i + 1
        return None

    def _run(self) -> None:
        """The thread: build the reconstructor, then run queued jobs until stopped."""
        self.status = "loading the face model"
        try:
            self.recon, self.head = self._build()
            self.status = "ready"
        except Exception as exc:  # the page shows why nothing can be fitted
            self.status = f"failed: {type(exc).__name__}: {exc}"
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                session, job = self._pending.popleft()
            if self.recon is None:
                session.update(job, state="failed", stage="failed", error=f"the fitting could not start ({self.status})")
                continue
            try:
                self.run_job(session, job)
            except Cancelled:
                session.update(job, state="cancelled", stage="session ended")
            except Exception as exc:  # one bad job never stops the others
                traceback.print_exc()
                session.update(job, state="failed", stage="failed", error=f"internal error: {type(exc).__name__}: {exc}")

    def run_job(self, session: Session, job: Job) -> None:
        """Fit one job and write its files; its fields record progress, result or reason."""
        from facerecon.export.reconstruction import write_reconstruction
        from facerecon.imageio import ImageError, NoFaceError

        if session.closed:
            raise Cancelled
        t0 = time.perf_counter()
        session.update(job, state="running", stage="finding the face", progress=0.02, started=time.time())
        try:
            photo, faces = self.recon.prepare(job.source)
        except (ImageError, NoFaceError) as exc:
            session.update(job, state="failed", stage="failed", error=getattr(exc, "reason", str(exc)),
                           finished=time.time())
            return

        def progress(done: int, total: int) -> None:
            if session.closed:
                raise Cancelled
            session.update(job, stage=f"fitting: step {done} of {total}", progress=0.05 + 0.85 * done / max(total, 1))

        t_fit = time.perf_counter()
        rec = self.recon.fit_prepared([(photo, faces[0])], progress=progress)[0]
        fit_s = time.perf_counter() - t_fit
        session.update(job, stage="writing the files", progress=0.92)
        extra: dict[str, Any] = {"losses": rec.losses, "source_name": job.name}
        if self.fit_config is not None:
            extra["fit_config"] = asdict(self.fit_config)
        with session.folder_lock:
            if session.closed:
                raise Cancelled
            folder = session.results_dir(job.id)
            written = write_reconstruction(
                folder, photo=rec.photo, aligned=rec.prepared, params=rec.params, face_model_head=self.head,
                camera=self.recon.camera, landmarks_photo=rec.prepared.landmarks_photo,
                fitted_landmarks_photo_px=rec.landmarks_fit, extra=extra, texture_size=self.texture_size)
            files = {key: Path(p).name for key, p in written.items()}
            files["zip"] = write_zip(folder, sorted(set(files.values()))).name
        figures = fit_figures(rec)
        figures.update(fit_seconds=round(fit_s, 2), total_seconds=round(time.perf_counter() - t0, 2),
                       since_upload_seconds=round(time.time() - job.created, 2))
        session.update(job, state="done", stage="done", progress=1.0, files=files, figures=figures,
                       finished=time.time())
