"""The fitting worker: one background thread, one job at a time, jobs in arrival order.

Fitting is CPU-heavy and torch is not made for many concurrent fits, so the server never fits in
its request handlers: they queue a :class:`~facerecon.web.sessions.Job` here and the page polls
its state. The thread loads the face model once at start, so the first photo does not wait for it.

A photo job is one photo fitted and written by ``write_reconstruction``; a person job is all its
photos fitted (``batch_size`` at a time, each with its own progress), combined into one face by
the job's aggregator (``FaceReconstructor.combine``) and written by ``write_person``.
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
from facerecon.web.sessions import Job, Member, Session, file_stems

#: Name of the zip of all of a job's files, inside its results folder.
ZIP_NAME = "facerecon_files.zip"


class Cancelled(Exception):
    """The job's session ended while it ran."""


def fit_figures(rec: Any) -> dict[str, Any]:
    """Key figures of one :class:`~facerecon.pipeline.Reconstruction`: pose and landmark error, and a
    note when the face is too small in the photo for detail."""
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
        "note": rec.prepared.small_face_note(),  # None, or a face too small in the photo for detail
    }


def write_zip(folder: Path, names: list[str]) -> Path:
    """Zip ``names`` (paths relative to ``folder``) into ``folder/ZIP_NAME``, atomically."""
    dest = folder / ZIP_NAME
    with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            zf.write(folder / name, arcname=name)
    return dest


class FitWorker:
    """Fits queued jobs one at a time in a daemon thread.

    ``build`` returns ``(reconstructor, head_model)``; it runs in the thread, once, at start.
    ``batch_size`` photos of a person are fitted together.
    """

    def __init__(self, build: Callable[[], tuple[Any, Any]], texture_size: int = 1024,
                 fit_config: Any = None, batch_size: int = 8) -> None:
        self._build = build
        self.texture_size = texture_size
        self.fit_config = fit_config
        self.batch_size = max(1, int(batch_size))
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
        """Run one job (a photo or a person); its fields record progress, result or reason."""
        if job.kind == "person":
            self.run_person(session, job)
        else:
            self.run_photo(session, job)

    def run_photo(self, session: Session, job: Job) -> None:
        """Fit one photo and write its files."""
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
                camera=rec.camera or self.recon.camera, landmarks_photo=rec.prepared.landmarks_photo,
                fitted_landmarks_photo_px=rec.landmarks_fit, extra=extra, texture_size=self.texture_size)
            files = {key: Path(p).name for key, p in written.items()}
            files["zip"] = write_zip(folder, sorted(set(files.values()))).name
        figures = fit_figures(rec)
        figures.update(fit_seconds=round(fit_s, 2), total_seconds=round(time.perf_counter() - t0, 2),
                       since_upload_seconds=round(time.time() - job.created, 2))
        session.update(job, state="done", stage="done", progress=1.0, files=files, figures=figures,
                       finished=time.time())

    def run_person(self, session: Session, job: Job) -> None:
        """Fit every photo of a person, combine them into one face by ``job.aggregate`` and write
        it with ``write_person``. A photo that fails is recorded on its member and the others go
        on; the job fails only when no photo is usable."""
        t0 = time.perf_counter()
        with session.lock:
            members = list(job.members)
        session.update(job, state="running", stage="finding the faces", progress=0.02, started=time.time())
        usable = self._find_faces(session, job, members)
        if not usable:
            failed = [m for m in members if m.state == "failed"]
            error = ("no photo or video of this person reached the server" if not failed else
                     f"no usable photo: {'none of the ' + str(len(failed)) + ' files' if len(failed) > 1 else 'the file'}"
                     " could be fitted (each one's reason is listed)")
            session.update(job, state="failed", stage="failed", error=error, finished=time.time())
            return
        t_fit = time.perf_counter()
        fits = self._fit_members(session, job, usable)
        fit_s = time.perf_counter() - t_fit
        session.update(job, stage=f"combining {len(fits)} photos into one face ({job.aggregate})",
                       progress=0.75, progress_known=False)
        t_combine = time.perf_counter()
        person = self._combine(job, members, fits)
        combine_s = time.perf_counter() - t_combine
        if session.closed:
            raise Cancelled
        session.update(job, stage="writing the files", progress=0.9, progress_known=True)
        files = self._write_person(session, job, person, fits)
        for (m, _), weight in zip(fits, person.weights):
            session.update(m, stage=f"used, weight {weight:.2f}", figures={**m.figures, "weight": round(float(weight), 3)})
        failed = [{"name": m.name, "reason": m.error} for m in members if m.state == "failed"]
        figures = {"photos_used": len(fits), "photos_given": len(members), "failed": failed,
                   "aggregate": person.method, "fit_seconds": round(fit_s, 2), "combine_seconds": round(combine_s, 2),
                   "total_seconds": round(time.perf_counter() - t0, 2),
                   "since_upload_seconds": round(time.time() - job.created, 2)}
        session.update(job, state="done", stage="done", progress=1.0, files=files, figures=figures,
                       finished=time.time())

    def _find_faces(self, session: Session, job: Job, members: list[Member]) -> list[tuple[Member, Any, Any]]:
        """Load each member's photo and find its largest face: ``[(member, photo, face)]`` for
        those with one; the others are marked failed with the reason."""
        from facerecon.imageio import ImageError, NoFaceError

        usable = []
        for k, m in enumerate(members):
            if session.closed:
                raise Cancelled
            if m.source is None:  # failed at upload (a video that could not be read)
                continue
            session.update(m, state="running", stage="finding the face", progress=0.02)
            try:
                photo, faces = self.recon.prepare(m.source)
            except (ImageError, NoFaceError) as exc:
                session.update(m, state="failed", stage="failed", error=getattr(exc, "reason", str(exc)))
            else:
                session.update(m, state="queued", stage="waiting to be fitted", progress=0.05)
                usable.append((m, photo, faces[0]))
            session.update(job, progress=0.02 + 0.08 * (k + 1) / len(members))
        return usable

    def _fit_members(self, session: Session, job: Job, usable: list[tuple[Member, Any, Any]]) -> list[tuple[Member, Any]]:
        """Fit the usable photos ``batch_size`` at a time, each member showing its step;
        returns ``[(member, Reconstruction)]`` in member order."""
        fits: list[tuple[Member, Any]] = []
        n = len(usable)
        for start in range(0, n, self.batch_size):
            chunk = usable[start:start + self.batch_size]

            def progress(done: int, total: int, chunk: list = chunk, start: int = start) -> None:
                if session.closed:
                    raise Cancelled
                for m, _, _ in chunk:
                    session.update(m, state="running", stage=f"fitting: step {done} of {total}",
                                   progress=0.05 + 0.9 * done / max(total, 1))
                last = start + len(chunk)
                session.update(job, stage=f"fitting photo{'s' if n > 1 else ''} "
                                          f"{start + 1}{f'–{last}' if last > start + 1 else ''} of {n}",
                               progress=0.1 + 0.65 * (start + len(chunk) * done / max(total, 1)) / n)

            recs = self.recon.fit_prepared([(photo, face) for _, photo, face in chunk], progress=progress)
            for (m, _, _), rec in zip(chunk, recs):
                session.update(m, state="done", stage="fitted", progress=1.0, figures=fit_figures(rec))
                fits.append((m, rec))
        return fits

    def _combine(self, job: Job, members: list[Member], fits: list[tuple[Member, Any]]) -> Any:
        """The person from the fitted photos (``FaceReconstructor.combine``), each photo known by
        its display name (never the server path of its upload)."""
        from facerecon.pipeline import FailedInput

        failed = [FailedInput(m.name, m.error or "failed") for m in members if m.state == "failed"]
        person = self.recon.combine([rec for _, rec in fits], job.aggregate, name=job.name, failed=failed)
        for rec, (m, _) in zip(person.members, fits):  # joint's refit takes each source from its upload
            rec.source = m.name
        return person

    def _write_person(self, session: Session, job: Job, person: Any, fits: list[tuple[Member, Any]]) -> dict[str, str]:
        """Write the person's files and the zip into the job's folder; returns the job's ``files``
        and points each fitted member at its overlay."""
        from facerecon.export.person import member_photos, write_person

        photos = member_photos(person)
        for photo, stem in zip(photos, file_stems([m.name for m, _ in fits])):
            photo.name = stem  # overlays/<stem>.png: a name made here from the display name, not a client path
        extra: dict[str, Any] = {**person.extra, "failed_photos": [
            {"name": f.source, "reason": f.reason} for f in person.failed]}
        if self.fit_config is not None:
            extra["fit_config"] = asdict(self.fit_config)
        with session.folder_lock:
            if session.closed:
                raise Cancelled
            folder = session.results_dir(job.id)
            written = write_person(folder, person=person.params, members=photos, face_model_head=self.head,
                                   camera=self.recon.camera, method=person.method, extra=extra,
                                   texture_size=self.texture_size)
            files = {key: Path(p).relative_to(folder).as_posix() for key, p in written.items()}
            files["zip"] = write_zip(folder, sorted(set(files.values()))).name
        key_of = {name: key for key, name in files.items()}
        for photo, (m, _) in zip(photos, fits):
            session.update(m, overlay=key_of.get(f"overlays/{photo.name}.png"))
        return files
