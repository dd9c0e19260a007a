"""Labels for the regressor: every face of a shards folder fitted by analysis by synthesis.

A LABELS folder holds

- ``config.json``: ``format`` ("facerecon-labels"), ``version``, ``fit_config`` (the
  :class:`~facerecon.fitting.FitConfig` as JSON), ``batch_size``, ``sizes`` (the
  :class:`~facerecon.params.FaceParams` layout), ``shards`` (the folder labelled), ``prior``
  (what the fitter's coefficient prior was centred on: null for the model's mean, else a record
  such as ``{"engine": "rnet-prior", "rnet": …, "sha256": …}``) and ``mixed_with`` (other fit
  configs let in with ``force``);
- ``labels-NNNNN.npz``, one per batch ``NNNNN`` of ``batch_size`` consecutive photos (record order):
  ``keys`` str (N,), ``params`` float16 (N, D) = ``FaceParams.to_vector()``, ``trans`` float32
  (N,3) the translation again (float16 would keep a face ~1 m away only to the mm), ``sizes`` int64 (6,)
  and ``parts`` str (6,) (the layout, ``PARTS`` order), ``loss`` float32 (N,) the final weighted
  total loss of each photo.

A batch whose chunk already holds all its keys is skipped, so a stopped run goes on where it
stopped; ``shard="i/n"`` takes every n-th batch from the i-th, so n jobs cover the set once and
their chunks never clash. :func:`read_labels` merges every chunk by key.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from facerecon import __version__
from facerecon.atomic import atomic_path, atomic_write_json
from facerecon.data.shards import ShardDataset
from facerecon.data.split import take_shard
from facerecon.fitting.engine import FitConfig, Fitter
from facerecon.params import PARTS, FaceParams

LABEL_FORMAT = "facerecon-labels"
LABEL_VERSION = 1


def chunk_path(out: str | os.PathLike, batch: int) -> Path:
    """``OUT/labels-{batch:05d}.npz``."""
    return Path(out) / f"labels-{batch:05d}.npz"


def config_json(config: FitConfig) -> dict[str, Any]:
    """The fit config as plain JSON values (tuples as lists), for storing and comparing."""
    return json.loads(json.dumps(asdict(config)))


def _with_defaults(stored: dict) -> dict:
    """A stored fit config with the fields it predates filled in by today's defaults (a field added
    later defaults to the behaviour before it, so labels made then stay resumable)."""

    def merge(defaults: dict, have: dict) -> dict:
        out = dict(defaults)
        for k, v in have.items():
            out[k] = merge(defaults[k], v) if isinstance(v, dict) and isinstance(defaults.get(k), dict) else v
        return out

    return merge(config_json(FitConfig()), stored)


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """``name: old -> new`` for every field that differs (nested dicts flattened with dots)."""
    out = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differences(x, y, f"{prefix}{k}.")
        elif x != y:
            out.append(f"{prefix}{k}: {x} -> {y}")
    return out


def _open_config(out: Path, config: FitConfig, batch_size: int, sizes: dict[str, int], shards: Path,
                 force: bool, prior: dict | None = None) -> None:
    """Create ``config.json``, or check this run against it (ValueError, one line, on a mismatch)."""
    path = out / "config.json"
    wanted = config_json(config)
    if not path.exists():
        atomic_write_json(path, {"format": LABEL_FORMAT, "version": LABEL_VERSION, "facerecon": __version__,
                                 "fit_config": wanted, "batch_size": batch_size, "sizes": sizes,
                                 "shards": os.path.abspath(shards), "prior": prior, "mixed_with": []})
        return
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != LABEL_FORMAT:
        raise ValueError(f"{path}: not a facerecon labels folder")
    if int(doc.get("batch_size", -1)) != batch_size:
        raise ValueError(f"{path}: labels made with batch size {doc.get('batch_size')}, not {batch_size} "
                         "(chunks are numbered by batch: use the same batch size or a new folder)")
    if doc.get("sizes") != sizes:
        raise ValueError(f"{path}: labels laid out as {doc.get('sizes')}, this fit gives {sizes}")
    if _prior_key(doc.get("prior")) != _prior_key(prior) and not force:
        raise ValueError(f"{path}: labels made with the prior centred on {_describe_prior(doc.get('prior'))}, "
                         f"this run centres it on {_describe_prior(prior)}; use --force to mix them")
    stored = _with_defaults(doc.get("fit_config") or {})
    if stored != wanted and wanted not in [_with_defaults(c) for c in doc.get("mixed_with", [])]:
        diff = _differences(stored, wanted)
        if not force:
            raise ValueError(f"{path}: labels made with another fit config ({'; '.join(diff[:4])}"
                             f"{'; …' if len(diff) > 4 else ''}); use --force to mix them")
        doc.setdefault("mixed_with", []).append(wanted)
        atomic_write_json(path, doc)


def _prior_key(prior: dict | None) -> tuple | None:
    """What makes two priors the same: the engine and the checkpoint's content (its path may
    differ from machine to machine)."""
    return None if not prior else (prior.get("engine"), prior.get("sha256"))


def _describe_prior(prior: dict | None) -> str:
    if not prior:
        return "the model's mean"
    return f"{prior.get('engine', 'a prediction')} {Path(str(prior.get('rnet', '?'))).name}"


def _chunk_keys(path: Path) -> set[str] | None:
    """The keys of a chunk, or None if it is missing or unreadable (then it is made again)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return set(z["keys"].tolist())
    except (OSError, ValueError, KeyError, EOFError):
        return None


def write_chunk(path: Path, keys: list[str], params: FaceParams, loss: torch.Tensor) -> Path:
    """Write one label chunk atomically: params as float16 vectors (the translation also as
    float32), loss as float32."""
    sizes = params.sizes()
    vectors = params.to_vector().detach().cpu().numpy().astype(np.float16)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, keys=np.array(keys, dtype=str), params=vectors,
                 trans=params.trans.detach().cpu().numpy().astype(np.float32),
                 sizes=np.array([sizes[p] for p in PARTS], np.int64), parts=np.array(PARTS, dtype=str),
                 loss=loss.detach().cpu().numpy().astype(np.float32).reshape(-1))
    return path


def make_fitter(config: FitConfig, device: str | torch.device = "cpu") -> Fitter:
    """The :class:`Fitter` :class:`~facerecon.pipeline.FaceReconstructor` would build: face model
    over ``config.region``, default camera, FaceNet when the perceptual term is on."""
    from facerecon.facemodel import load_face_model
    from facerecon.render import Camera

    device = torch.device(device)
    model = load_face_model(config.region, albedo=config.albedo, landmarks=config.landmarks).to(device)
    facenet = None
    if config.perceptual and config.weights.perceptual > 0:
        from facerecon.nets.facenet import FaceNet

        facenet = FaceNet.from_package(device=device)
    return Fitter(model, Camera(), facenet, config)


def _layout(fitter: Fitter) -> dict[str, int]:
    m = fitter.model
    return FaceParams.zeros(1, m.n_id, m.n_exp, m.n_tex, rgb_light=fitter.config.rgb_light).sizes()


@dataclass
class LabelResult:
    """What one :func:`label_shards` run did."""

    fitted: int = 0
    """Batches fitted in this run."""
    skipped: int = 0
    """Batches of this job whose chunk was already there."""
    photos: int = 0
    """Photos fitted in this run."""
    batches: int = 0
    """Batches of this job (``shard``), fitted or skipped."""


def label_shards(shards: str | os.PathLike, out: str | os.PathLike, batch_size: int = 8,
                 shard: str | tuple[int, int] | None = None, fit_config: FitConfig | None = None,
                 device: str | torch.device = "cpu", limit: int | None = None, force: bool = False,
                 progress: bool = True, workers: int = 0, fitter: Fitter | None = None,
                 prior: Callable[[torch.Tensor, torch.Tensor], FaceParams] | None = None,
                 prior_record: dict | None = None) -> LabelResult:
    """Fit every photo of the shards folder ``shards`` (all splits), ``batch_size`` at a time, and
    write one label chunk per batch into ``out``.

    ``shard`` ("i/n"): only batches i, i+n, i+2n, …; ``limit``: only the first N photos;
    ``fitter``: a ready :class:`Fitter` (else one is built from ``fit_config`` on ``device``);
    ``workers``: DataLoader processes reading the shards; ``prior(images, landmarks)``: the
    per-photo centre of the fitter's coefficient prior (e.g. R-Net's prediction, engine
    "rnet-prior"; None: the model's mean), described in ``config.json`` by ``prior_record``.
    Raises ValueError (one line) when ``out`` holds labels of another fit config or prior
    (unless ``force``) or batch size, or a chunk whose photos are not its batch's (shards prepared
    again since): existing labels are never overwritten by other photos' labels.
    """
    from tqdm import tqdm

    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1 (got {batch_size})")
    dataset = ShardDataset(shards, "all")
    n = len(dataset) if limit is None else min(len(dataset), max(0, limit))
    batches = [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]
    mine = take_shard(list(enumerate(batches)), shard)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys = dataset.keys
    todo = []
    clash: tuple[int, int] | None = None  # a chunk holding photos that are not its batch's
    for b, rows in mine:
        have = _chunk_keys(chunk_path(out, b))
        wanted = {keys[i] for i in rows}
        if have is not None and not have <= wanted and clash is None:
            clash = (b, len(have - wanted))
        if have is None or not have >= wanted:
            todo.append((b, rows))
    result = LabelResult(skipped=len(mine) - len(todo), batches=len(mine))
    if not todo:
        return result
    fitter = fitter or make_fitter(fit_config or FitConfig(), device)
    if prior is not None and not prior_record:
        raise ValueError("a prior needs a prior_record describing it (config.json keeps it)")
    _open_config(out, fitter.config, batch_size, _layout(fitter), Path(shards), force,
                 prior_record if prior is not None else None)
    if clash is not None:
        # never overwrite other photos' labels (the shards were prepared again and batch b now
        # holds other photos): hours of fitting would be lost
        raise ValueError(f"{chunk_path(out, clash[0])}: holds labels of {clash[1]} photos that are not in "
                         f"batch {clash[0]} of {shards} (the shards changed since it was written); "
                         "label these shards into another folder")
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=[rows for _, rows in todo], num_workers=workers)
    total = sum(len(rows) for _, rows in mine)
    with tqdm(total=total, initial=total - sum(len(rows) for _, rows in todo), unit="photo", desc="label",
              disable=not progress, file=sys.stderr) as bar:
        for (b, rows), batch in zip(todo, loader):
            if list(batch["key"]) != [keys[i] for i in rows]:  # never: the loader keeps the order
                raise RuntimeError(f"batch {b}: the loader returned other photos than asked for")
            centre = prior(batch["image"], batch["landmarks"]) if prior is not None else None
            fit = fitter.fit(batch["image"], batch["landmarks"], batch["attention"], prior=centre)
            write_chunk(chunk_path(out, b), list(batch["key"]), fit.params, fit.losses.total)
            result.fitted += 1
            result.photos += len(rows)
            bar.update(len(rows))
            bar.set_postfix(loss=f"{float(fit.losses.total.mean()):.4g}")
    return result


def read_labels(labels: str | os.PathLike) -> dict[str, tuple[np.ndarray, float]]:
    """Every label of a labels folder: {key: (params float32 (D,), final total loss)}.

    Chunks are read in name order; a key in several chunks keeps the last. Raises ValueError (one
    line, naming the chunk) on an unreadable chunk or one laid out differently from the others.
    """
    root = Path(labels)
    if not root.is_dir():
        raise ValueError(f"{root}: not a labels folder (make one with `facerecon label`)")
    out: dict[str, tuple[np.ndarray, float]] = {}
    layout = None
    for path in sorted(root.glob("labels-*.npz")):
        try:
            with np.load(path, allow_pickle=False) as z:
                keys, params, sizes, loss = z["keys"], z["params"], z["sizes"], z["loss"]
                trans = z["trans"] if "trans" in z.files else None
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise ValueError(f"{path}: unreadable label chunk ({exc})") from None
        if layout is None:
            layout = sizes.tolist()
        elif sizes.tolist() != layout:
            raise ValueError(f"{path}: layout {sizes.tolist()} differs from the other chunks' {layout}")
        if params.shape != (len(keys), int(sizes.sum())) or loss.shape != (len(keys),):
            raise ValueError(f"{path}: params {params.shape} / loss {loss.shape} do not match {len(keys)} keys")
        values = params.astype(np.float32)
        if trans is not None:  # PARTS order ends with the translation
            values[:, -3:] = trans
        for i, key in enumerate(keys.tolist()):
            out[key] = (values[i], float(loss[i]))
    return out


def read_label_sizes(labels: str | os.PathLike) -> dict[str, int]:
    """The :class:`FaceParams` layout of a labels folder (for ``FaceParams.from_vector``)."""
    root = Path(labels)
    path = root / "config.json"
    if path.exists():
        sizes = json.loads(path.read_text(encoding="utf-8")).get("sizes")
        if sizes:
            return {k: int(sizes[k]) for k in PARTS}
    for chunk in sorted(root.glob("labels-*.npz")):
        with np.load(chunk, allow_pickle=False) as z:
            return dict(zip(z["parts"].tolist(), map(int, z["sizes"].tolist())))
    raise ValueError(f"{root}: no labels (config.json or labels-*.npz)")


__all__ = ["LABEL_FORMAT", "LabelResult", "chunk_path", "config_json", "label_shards", "make_fitter",
           "read_label_sizes", "read_labels", "write_chunk"]
