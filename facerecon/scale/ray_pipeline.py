"""Many photos through Ray Data: read paths → prepare (detect, align: CPU tasks) → fit or R-Net
(actors, each holding one :class:`~facerecon.pipeline.FaceReconstructor`; one GPU each with
``device="cuda"``) → write each result folder (CPU tasks, the export writer of ``facerecon
reconstruct``) → a report of ok/failed inputs. Beside GPU workers the preparation runs as CPU
tasks; with CPU workers Ray Data fuses it into them (same resources), which also keeps a machine
whose CPUs all went to workers from waiting for a free one.

Ray is an optional extra (``pip install 'facerecon[ray]'``). :func:`reconstruct_dataset` joins
the Ray instance already started in this process, else the cluster at ``RAY_ADDRESS``, else
starts a local one (``ray.init()``). On a cluster, the photos and ``out`` must be paths that
every node reads and writes (a shared filesystem): the tasks open and write them where they run.

A photo that cannot be read, has no face, fails to fit or to write is reported failed with a
one-line reason; the others go on. Each output folder is what ``facerecon reconstruct`` writes
for the largest face of the photo.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facerecon.fitting.engine import FitConfig
from facerecon.imageio.focal import DEFAULT_LENS
from facerecon.pipeline import DEFAULT_ENGINE, DEFAULT_REFINE, ENGINES, engine_config, shipped_model

#: Columns of the rows between stages (every stage returns all of them).
_COLUMNS = ("index", "path", "open", "folder", "error", "payload", "result")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def default_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """One distinct output folder name per photo: its stem, ``-2``, ``-3``… on repeats
    (compared case-insensitively), in input order."""
    taken: set[str] = set()
    names = []
    for p in paths:
        base = Path(p).stem or "photo"
        name, n = base, 1
        while name.casefold() in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name.casefold())
        names.append(name)
    return names


def check_engine(engine: str, rnet: Any, refine: int, config: FitConfig) -> None:
    """Raise ValueError (one line) when the engine settings cannot run, before any worker starts:
    an unknown engine, an R-Net engine without a network, ``rnet`` with engine "fit", a negative
    ``refine``, a checkpoint that is missing or whose layout, albedo model or region differs from
    the fitter's (checked on the CPU against the face model of ``config``)."""
    from facerecon.facemodel import load_face_model
    from facerecon.nets.rnet import RNet, load_checkpoint
    from facerecon.pipeline import refine_split, rnet_layout_problem

    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    if engine == "fit":
        if rnet is not None:
            raise ValueError("an R-Net was given, but engine 'fit' does not use it "
                             "(engine 'rnet', 'rnet+fit' or 'rnet-prior')")
        return
    if rnet is None:
        rnet, missing = shipped_model(engine)
        if rnet is None:
            raise ValueError(f"engine {engine!r} needs an R-Net checkpoint (rnet=PATH): {missing}")
    refine_split(refine)
    trained: dict = {}
    if isinstance(rnet, RNet):
        net, name = rnet, "the R-Net"
    else:
        name = os.fspath(rnet)
        if not os.path.isfile(name):
            raise ValueError(f"{name}: no such R-Net checkpoint file")
        try:
            net, extra = load_checkpoint(name, map_location="cpu")
        except ValueError:
            raise
        except Exception as exc:  # torch.load's errors on a file that is not a checkpoint vary
            raise ValueError(f"{name}: not a readable R-Net checkpoint ({_one_line(exc)})") from None
        trained = dict(extra.get("train_config") or {})
    model = load_face_model(config.region, albedo=config.albedo, landmarks=config.landmarks)
    problem = rnet_layout_problem(net, model, config.rgb_light, trained)
    if problem:
        raise ValueError(f"{name} cannot drive this fitter: {problem}")


# --- stage 1: prepare (CPU tasks) ------------------------------------------------------------------
@lru_cache(maxsize=2)
def _preparer(focal_35mm: float | str = DEFAULT_LENS):
    """One detector and skin model per worker process (tasks reuse their process)."""
    from facerecon.imageio import Preparer

    return Preparer(focal_35mm=focal_35mm)


def _prepare_row(row: dict[str, Any], focal_35mm: float | str = DEFAULT_LENS) -> dict[str, Any]:
    """Load the photo (from its absolute path ``open``: a worker's working folder is not the
    caller's) and find its largest face; ``payload`` = pickled (photo, PreparedFace) with the
    photo's path as given, or ``error`` = why not, naming the path as given."""
    from dataclasses import replace

    out = {k: row.get(k) for k in _COLUMNS}
    if out["error"]:
        return out
    try:
        photo, faces = _preparer(focal_35mm).prepare_source(row["open"])
        if not faces:
            from facerecon.imageio import NoFaceError

            raise NoFaceError(row["path"])
        face = replace(faces[0], source=row["path"])
        out["payload"] = pickle.dumps((photo, face), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # one bad photo never stops the others
        out["error"] = _one_line(exc).replace(row["open"], row["path"])
    return out


# --- stage 2: fit or R-Net (actors) ---------------------------------------------------------------
class FitWorker:
    """A Ray Data callable class: holds one FaceReconstructor (face model, FaceNet, R-Net) for
    its lifetime and reconstructs one batch of prepared faces per call, together."""

    def __init__(self, device: str, config: FitConfig, engine: str, rnet: Any, refine: int, threads: int) -> None:
        import torch

        from facerecon.pipeline import FaceReconstructor

        if torch.device(device).type == "cpu":
            torch.set_num_threads(max(1, threads))
        self.recon = FaceReconstructor(device=device, config=config, engine=engine, rnet=rnet, refine=refine)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [{k: batch[k][i] for k in _COLUMNS} for i in range(len(batch["index"]))]
        todo = [r for r in rows if not r["error"]]
        if todo:
            items = [pickle.loads(r["payload"]) for r in todo]
            t0 = time.perf_counter()
            try:
                recs = self.recon.fit_prepared(items)
                seconds = (time.perf_counter() - t0) / len(todo)
                for r, rec in zip(todo, recs):
                    r["result"] = pickle.dumps({"params": rec.params, "landmarks_fit": rec.landmarks_fit,
                                                "losses": rec.losses, "seconds": seconds, "camera": rec.camera},
                                               protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # e.g. out of device memory: this batch fails, the run goes on
                for r in todo:
                    r["error"] = f"{r['path']}: reconstruction failed: {_one_line(exc)}"
        return {k: np.array([r[k] for r in rows], dtype=object) for k in _COLUMNS}


# --- stage 3: write (CPU tasks) ---------------------------------------------------------------------
@lru_cache(maxsize=2)
def _head_model(albedo: str, landmarks: str = "ict"):
    """The export's face model (region "head") with the fit's albedo model and landmark set,
    once per process."""
    from facerecon.facemodel import load_face_model

    return load_face_model("head", albedo=albedo, landmarks=landmarks)


def _write_row(row: dict[str, Any], *, config: FitConfig, engine_record: dict | None, texture_size: int,
               units: str, up: str) -> dict[str, Any]:
    """Write one result folder with ``write_reconstruction``; returns the report entry's fields."""
    from facerecon.export.reconstruction import write_reconstruction
    from facerecon.render import Camera

    entry = {"index": int(row["index"]), "path": str(row["path"]), "folder": str(row["folder"]),
             "error": str(row["error"]), "files": "[]", "seconds": 0.0, "losses": "{}"}
    if row["error"]:
        return entry
    photo, prep = pickle.loads(row["payload"])
    res = pickle.loads(row["result"])
    extra = {"losses": res["losses"], "fit_config": asdict(config)}
    if engine_record:
        extra["engine"] = engine_record
    try:
        written = write_reconstruction(
            row["folder"], photo=photo, aligned=prep, params=res["params"], face_model_head=_head_model(config.albedo, config.landmarks),
            camera=res.get("camera") or Camera(), landmarks_photo=prep.landmarks_photo, source_path=prep.source,
            fitted_landmarks_photo_px=res["landmarks_fit"], extra=extra,
            texture_size=texture_size, units=units, up=up,
        )
    except OSError as exc:
        entry["error"] = f"{row['path']}: cannot write {row['folder']}: {exc.strerror or exc}"
        return entry
    except Exception as exc:
        entry["error"] = f"{row['path']}: cannot write {row['folder']}: {_one_line(exc)}"
        return entry
    entry["files"] = json.dumps(sorted(Path(p).name for p in written.values()))
    entry["seconds"] = float(res["seconds"])
    entry["losses"] = json.dumps(res["losses"])
    return entry


# --- the pipeline -------------------------------------------------------------------------------------
def reconstruct_dataset(paths: Sequence[str | os.PathLike], out: str | os.PathLike, *, engine: str = DEFAULT_ENGINE,
                        rnet: Any = None, fit_config: FitConfig | None = None, num_workers: int = 2,
                        device: str = "cpu", batch_size: int = 8, refine: int = DEFAULT_REFINE,
                        names: Sequence[str] | None = None, texture_size: int = 1024, units: str = "m",
                        up: str = "y", overwrite: bool = False, cpus_per_worker: float = 1.0,
                        progress: bool = False, focal_35mm: float | str = DEFAULT_LENS) -> dict[str, Any]:
    """Reconstruct every photo of ``paths`` into ``out/<name>/`` with Ray Data; returns the report
    ``{"inputs": [...], "summary": {"ok": n, "failed": m}}`` (entries as in ``report.json`` of
    ``facerecon reconstruct``, in input order).

    ``engine``/``rnet``/``refine``: as :class:`~facerecon.pipeline.FaceReconstructor` (``rnet`` a
    checkpoint path); ``fit_config``: the fitting (default: the engine's, :func:`~facerecon.pipeline.engine_config`); ``num_workers``:
    reconstruction actors, each with one GPU when ``device`` is CUDA, else ``cpus_per_worker``
    CPUs (and as many torch threads, at least 1); ``batch_size``: faces fitted together by an
    actor; ``names``: output folder per photo, relative to ``out`` (default: the stems, made
    distinct); ``texture_size`` (texels), ``units`` ("m"/"mm"), ``up`` ("y"/"z"): as the CLI;
    ``focal_35mm``: the photos' lens, as :class:`~facerecon.imageio.Preparer` takes it.
    An output folder that exists and is not empty is reported failed unless ``overwrite``.
    Raises ValueError (one line) for settings that cannot run, before any worker starts.
    """
    import ray
    import torch

    config = fit_config or engine_config(engine)  # (ValueError for an unknown engine)
    if num_workers < 1 or batch_size < 1:
        raise ValueError("num_workers and batch_size must be at least 1")
    if cpus_per_worker <= 0:
        raise ValueError("cpus_per_worker must be above 0")
    check_engine(engine, rnet, refine, config)
    if engine != "fit" and rnet is None:  # the shipped model (check_engine found it): named in the report
        rnet = shipped_model(engine)[0]
    paths = [os.fspath(p) for p in paths]
    names = list(names) if names is not None else default_names(paths)
    if len(names) != len(paths):
        raise ValueError(f"{len(names)} names for {len(paths)} photos")
    cuda = torch.device(device).type == "cuda"
    root = Path(out).absolute()
    rows = []
    for i, (p, name) in enumerate(zip(paths, names)):
        folder = root / name
        busy = folder.exists() and (not folder.is_dir() or any(folder.iterdir()))
        error = f"{p}: {folder} already exists (use --overwrite to replace it)" if busy and not overwrite else ""
        rows.append({"index": i, "path": p, "open": os.path.abspath(p), "folder": str(folder), "error": error,
                     "payload": b"", "result": b""})
    engine_record = None
    if engine != "fit":
        engine_record = {"engine": engine, "rnet": os.fspath(rnet) if isinstance(rnet, (str, os.PathLike)) else None}
        if engine == "rnet+fit":
            engine_record["refine"] = int(refine)

    entries = [{"index": r["index"], "path": r["path"], "folder": r["folder"], "error": r["error"]}
               for r in rows if r["error"]]
    todo = [r for r in rows if not r["error"]]
    if todo:
        if not ray.is_initialized():
            ray.init()  # RAY_ADDRESS when set (an existing cluster), else a local instance
        root.mkdir(parents=True, exist_ok=True)
        worker_rnet = os.path.abspath(rnet) if isinstance(rnet, (str, os.PathLike)) else rnet
        ctx = ray.data.DataContext.get_current()
        bars, ctx.enable_progress_bars = ctx.enable_progress_bars, progress
        # blocks are what workers share out: batch_size rows each, yet at least one per worker
        blocks = min(len(todo), max(-(-len(todo) // batch_size), num_workers))
        try:
            try:
                ds = ray.data.from_items(todo, override_num_blocks=blocks)
            except TypeError:  # Ray before 2.10 names it parallelism
                ds = ray.data.from_items(todo, parallelism=blocks)
            # on CPU, Ray Data fuses this into the workers below; beside GPU workers it stays CPU tasks
            ds = ds.map(_prepare_row, fn_kwargs={"focal_35mm": focal_35mm})
            ds = ds.map_batches(
                FitWorker, batch_size=batch_size, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=num_workers),
                fn_constructor_kwargs={"device": device, "config": config, "engine": engine, "rnet": worker_rnet,
                                       "refine": refine, "threads": int(cpus_per_worker)},
                num_gpus=1 if cuda else 0, num_cpus=1 if cuda else cpus_per_worker,
            )
            ds = ds.map(_write_row, fn_kwargs={"config": config, "engine_record": engine_record,
                                               "texture_size": texture_size, "units": units, "up": up})
            entries += ds.take_all()
        finally:
            ctx.enable_progress_bars = bars
    entries.sort(key=lambda e: e["index"])
    report_inputs = []
    for e in entries:
        if e["error"]:
            report_inputs.append({"input": e["path"], "status": "failed", "output_folder": e["folder"],
                                  "reason": e["error"]})
        else:
            report_inputs.append({"input": e["path"], "status": "ok", "output_folder": e["folder"], "outputs": [
                {"folder": e["folder"], "files": json.loads(e["files"]), "seconds": round(e["seconds"], 3),
                 "losses": json.loads(e["losses"])}]})
    ok = sum(e["status"] == "ok" for e in report_inputs)
    return {"inputs": report_inputs, "summary": {"ok": ok, "failed": len(report_inputs) - ok}}


__all__ = ["reconstruct_dataset", "check_engine", "default_names", "FitWorker"]
