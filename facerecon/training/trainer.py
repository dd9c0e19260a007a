"""The R-Net training loop: ``Trainer(config, net, train_data, val_data, labels).train()``.

One step: a batch of photos (and, with the synthetic objective, as many synthetic faces) goes
through the network in one pass; the objectives of :mod:`facerecon.training.objectives` score
the predictions and are mixed by their weights; AdamW steps with a linear warm-up and cosine
decay of the learning rate and a clipped gradient norm. On CUDA the network runs in bf16/fp16
autocast and channels-last (the renderer and the losses stay float32).

Launched by ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in the environment) the trainer
joins the process group (NCCL on CUDA, gloo on CPU), wraps the network in
DistributedDataParallel, gives each process its share of the photos (DistributedSampler) and its
own synthetic stream, and lets only rank 0 write checkpoints and logs.

``OUT/last.pt`` (written atomically every ``checkpoint_every`` steps and at the end) carries the
network with its config, the optimiser, scheduler and grad-scaler states, the step, every
process's RNG states and the TrainConfig; a trainer whose ``OUT`` holds one resumes from it, so a
killed run continues where its last checkpoint left off and stops at the configured step count
(the data order, the synthetic stream and the learning rate are functions of the step; resumed
with another number of processes, the data order of the remaining steps differs). Log lines
and TensorBoard events the killed run wrote after its checkpoint are dropped on resume.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
import warnings
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, default_collate
from torch.utils.data.distributed import DistributedSampler

from facerecon.atomic import atomic_write_json, atomic_write_text
from facerecon.cpus import available_cpus
from facerecon.data.shards import photos_to_float
from facerecon.facemodel import FaceModel, load_face_model
from facerecon.facemodel.albedo import learned_albedo_sha256
from facerecon.forward import ForwardModel
from facerecon.losses import HybridLoss, landmark_weights
from facerecon.nets.rnet import RNet, load_checkpoint, save_checkpoint
from facerecon.params import FaceParams
from facerecon.render import Camera, same_crop_translation
from facerecon.training.config import TrainConfig
from facerecon.training.data import (SYNTH_STREAM, LabelTable, dataset_people, fit_size, item_people, key_people,
                                     person_batches, prefetch, synthetic_batches)
from facerecon.training.objectives import LabelTerms, Objectives, masked_mean

#: The hybrid-loss terms reported per objective and at validation.
HYBRID_TERMS = ("total", "photo", "landmark", "perceptual", "coef", "texture")
#: The geometry-loss terms (distillation, synthetic).
LABEL_TERMS = ("total", "vertices", "shape", "landmarks", "color", "identity")


# --- processes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False
    """This trainer initialised the process group (and destroys it in :meth:`Trainer.close`)."""

    @property
    def main(self) -> bool:
        """The process that writes checkpoints and logs."""
        return self.rank == 0


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """``auto`` → CUDA when available, else CPU; a bare ``cuda`` under torchrun → ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank or 0)
    return device


def setup_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): NCCL on CUDA, gloo on
    CPU; returns this process's place and device. A group the caller already made is used as is."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = resolve_device(device_name, local)
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, False), device
    if world <= 1:
        return DistInfo(), resolve_device(device_name)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, True), device


# --- small pieces -------------------------------------------------------------------------------
def load_model(region: str, albedo: str = "learned", device: torch.device | str | None = None,
               landmarks: str = "300w-photo") -> FaceModel:
    """The face model over ``region`` with the albedo model ``albedo`` ("spectral" or "learned")
    and the landmark vertices ``landmarks`` (one of ``facemodel.model.LANDMARK_SETS``)."""
    return load_face_model(region, device=device, albedo=albedo, landmarks=landmarks)


def data_workers(requested: int | None, cuda: bool = False) -> int:
    """Data-loading processes: ``requested``, or by default none on CUDA (a thread reads ahead,
    :meth:`Trainer.photo_stream`: on the H200 host worker processes handed batches over 2.2 to 4.9
    times slower, BENCHMARKS.md) and elsewhere 4 capped at the CPUs this process may run on (a
    DataLoader with more workers than CPUs only competes with the training step)."""
    if requested is not None:
        if requested < 0:
            raise ValueError(f"num_workers must be at least 0 (got {requested})")
        return requested
    return 0 if cuda else min(4, available_cpus())


def lr_factor(step: int, warmup: int, steps: int, final: float) -> float:
    """Learning-rate multiplier of optimiser step ``step`` (0-based): linear warm-up over
    ``warmup`` steps, then cosine from 1 to ``final`` at the last step."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(max((step - warmup) / max(steps - warmup - 1, 1), 0.0), 1.0)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(net: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on convolution and linear weights, none on batch norm and biases."""
    decay, plain = [], []
    for p in net.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else plain).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's random states (torch CPU and CUDA, numpy, Python) as checkpointable values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "numpy": {"keys": torch.from_numpy(np.asarray(keys, np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)},
            "python": random.getstate()}


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(tuple(state["python"]) if not isinstance(state["python"], tuple) else state["python"])


def draw_points(image: torch.Tensor, points: torch.Tensor, color: tuple[float, float, float],
                radius: int = 1) -> torch.Tensor:
    """Mark (N,2) pixel positions on a (3,H,W) image with (2r+1)² squares of ``color``, in place."""
    _, h, w = image.shape
    r = torch.arange(-radius, radius + 1, device=image.device)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    x = points[:, 0].floor().long()[:, None] + dx.reshape(1, -1)
    y = points[:, 1].floor().long()[:, None] + dy.reshape(1, -1)
    keep = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    image[:, y[keep], x[keep]] = torch.tensor(color, dtype=image.dtype, device=image.device)[:, None]
    return image


def comparison_grid(photos: torch.Tensor, renders: torch.Tensor, masks: torch.Tensor, target: torch.Tensor,
                    predicted: torch.Tensor) -> torch.Tensor:
    """(3, N·S, 3·S) rows of photo | render | overlay (render over the photo, given landmarks
    green, predicted red) for N images (N,3,S,S), masks (N,1,S,S), landmarks (N,68,2) pixels."""
    rows = []
    for i in range(photos.shape[0]):
        photo, render, mask = photos[i].float().cpu(), renders[i].float().cpu(), masks[i].float().cpu()
        overlay = photo * (1 - 0.7 * mask) + render * 0.7 * mask
        draw_points(overlay, target[i].float().cpu(), (0.0, 1.0, 0.0))
        draw_points(overlay, predicted[i].float().cpu(), (1.0, 0.0, 0.0))
        rows.append(torch.cat([photo, render.clamp(0, 1), overlay.clamp(0, 1)], 2))
    return torch.cat(rows, 1)


def _means(records: list[dict[str, float]]) -> dict[str, float]:
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        for k, v in r.items():
            sums[k] += v
            counts[k] += 1
    return {k: sums[k] / counts[k] for k in sums}


def identity_auc(people: list[int], alphas: list[np.ndarray]) -> float | None:
    """Verification AUC of the identity vectors (:func:`facerecon.multi.identity.verification_auc`,
    as the LFW identity benchmark); None without both same-person and different-person pairs."""
    owner = np.asarray(people)
    if len(alphas) < 3 or len(set(people)) in (1, len(people)):
        return None
    from facerecon.multi.identity import verification_auc

    return verification_auc(np.stack(alphas).astype(np.float64), owner)


# --- the trainer --------------------------------------------------------------------------------
class Trainer:
    """Train an :class:`~facerecon.nets.rnet.RNet` as ``config`` says.

    ``train_data``/``val_data``: map-style datasets of photo items (see
    :mod:`facerecon.training.data`; ``val_data`` holds people absent from ``train_data``);
    ``labels``: {key: (FaceParams vector, fit loss)} for distillation; ``model``: the face model
    (default: ``load_face_model(config.region)``); ``facenet``: the perceptual network (default:
    FaceNet from the package when the perceptual term is on). The network keeps its own weights
    unless ``config.out`` holds a checkpoint, which is then resumed.
    """

    def __init__(self, config: TrainConfig, net: RNet, train_data: Any = None, val_data: Any = None,
                 labels: Mapping[str, tuple[np.ndarray, float]] | None = None, *, model: FaceModel | None = None,
                 facenet: Any = None) -> None:
        config.validate()
        self.config = cfg = config
        if cfg.uses_photos and train_data is None:
            raise ValueError("the self-supervised, distillation and identity objectives need training photos (--data)")
        if cfg.distill > 0 and not labels:
            raise ValueError("the distillation objective needs fitter labels (--labels)")
        train_people, val_people = dataset_people(train_data), dataset_people(val_data)
        if train_people is not None and val_people is not None and train_people & val_people:
            raise ValueError(f"validation shares {len(train_people & val_people)} people with training")
        self.dist, self.device = setup_distributed(cfg.device)
        self.cuda = self.device.type == "cuda"
        self.out = Path(cfg.out)
        self.train_data, self.val_data = train_data, val_data

        self.net = net.to(self.device)
        if self.cuda:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.sizes = net.config.sizes()
        self.model_ddp: torch.nn.Module = self.net
        if self.dist.world > 1:
            self.model_ddp = DistributedDataParallel(self.net, device_ids=[self.device.index] if self.cuda else None)

        model = (model if model is not None else load_model(cfg.region, cfg.albedo, landmarks=cfg.landmarks)).to(self.device)
        self.face_model = model
        self.camera = Camera().scaled(net.config.input_size)
        if facenet is None and cfg.perceptual and cfg.loss.perceptual > 0 and cfg.self_supervised > 0:
            from facerecon.nets.facenet import FaceNet

            facenet = FaceNet.from_package(device=self.device)
        hybrid = HybridLoss(cfg.loss, model.skin_mask, facenet=facenet if cfg.perceptual else None,
                            omega=landmark_weights(jaw=cfg.jaw_weight, device=self.device),
                            perceptual_box=cfg.perceptual_box)
        self.objectives = Objectives(ForwardModel(model, self.camera, contour=cfg.contour), hybrid, cfg.label)
        self.labels = (LabelTable(labels, self.sizes, cfg.max_label_loss, self.device) if labels else None)
        if self.labels is not None and cfg.label_person_mean:
            shared = self.labels.average_identity(key_people(train_data, val_data))
            if self.dist.main:
                print(f"facerecon train: {shared} of {len(self.labels)} labels take their person's mean identity",
                      flush=True)

        self.optimizer = torch.optim.AdamW(param_groups(self.net, cfg.weight_decay), lr=cfg.lr,
                                           betas=tuple(cfg.betas))
        warmup, steps, final = cfg.warmup, cfg.steps, cfg.final_lr
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, warmup, steps, final))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.cuda and cfg.amp == "fp16")

        self.step = 0
        self.resumed_from: int | None = None
        self.history: deque[dict[str, float]] = deque(maxlen=10_000)
        self.last_metrics: dict[str, float] = {}
        self._train_people: set[int] = set()
        self._writer: Any = None
        self._writer_missing = False
        self._synth_model: FaceModel | None = None
        if not self.resume() and cfg.init:
            self.load_init(cfg.init)
        if self.dist.main:
            atomic_write_json(self.out / "config.json", cfg.record(), mkdir=True)

    # --- checkpoints ------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "last.pt"

    def train_record(self) -> dict[str, Any]:
        """The run's config as stored in its checkpoints, with the fingerprint of the learned albedo
        model the network's albedo outputs belong to (``albedo_sha256``)."""
        record = self.config.record()
        if self.config.albedo == "learned":
            record["albedo_sha256"] = learned_albedo_sha256()
        return record

    def save_checkpoint(self) -> Path | None:
        """Write ``OUT/last.pt`` (rank 0; every process must call this: the RNG states of all of
        them are gathered). Returns the path on rank 0, None elsewhere."""
        state = rng_state(self.device)
        states: list[Any] = [state]
        if self.dist.world > 1:
            states = [None] * self.dist.world
            dist.all_gather_object(states, state)
        if not self.dist.main:
            return None
        extra = {"step": self.step, "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                 "rng": states, "world_size": self.dist.world, "train_config": self.train_record(),
                 "metrics": dict(self.last_metrics)}
        path = save_checkpoint(self.checkpoint_path, self.net, extra)
        self._append_log({"event": "checkpoint", "step": self.step, "rank": self.dist.rank, "file": path.name})
        return path

    def _load_weights(self, path: str | os.PathLike, what: str) -> dict[str, Any]:
        """Load a checkpoint's weights into this run's network (same config, else ValueError naming
        ``what``); returns its ``extra``. A FaceNet trunk's frozen part is shared, not read again."""
        facenet = getattr(self.net.trunk, "facenet", None)
        saved, extra = load_checkpoint(path, map_location=self.device, facenet=facenet)
        if asdict(saved.config) != asdict(self.net.config):
            raise ValueError(f"{path}: {what} of another network ({saved.config}), this run has {self.net.config}")
        self.net.load_state_dict(saved.state_dict())
        return extra

    def load_init(self, path: str | os.PathLike) -> None:
        """Weights of another run's checkpoint (``config.init``): a new run starts from them."""
        self._load_weights(path, "--init checkpoint")

    def resume(self) -> bool:
        """Continue from ``OUT/last.pt`` when it exists: weights, optimiser, scheduler, scaler,
        step and RNG states. Returns whether a checkpoint was loaded."""
        path = self.checkpoint_path
        if not path.is_file():
            return False
        extra = self._load_weights(path, "checkpoint")
        self.optimizer.load_state_dict(extra["optimizer"])
        self.scheduler.load_state_dict(extra["scheduler"])
        if extra.get("scaler"):
            self.scaler.load_state_dict(extra["scaler"])
        self.step = self.resumed_from = int(extra["step"])
        self.last_metrics = dict(extra.get("metrics", {}))
        states = extra.get("rng") or []
        if states:
            set_rng_state(states[self.dist.rank] if len(states) == self.dist.world else states[0], self.device)
        if self.dist.main:
            self._truncate_log(self.step)
            print(f"facerecon train: resumed from {path} at step {self.step}", flush=True)
        return True

    # --- logs -------------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.out / "train.jsonl"

    def _append_log(self, record: dict[str, Any]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def _truncate_log(self, step: int) -> None:
        """Drop log lines of steps after ``step`` (written by a run killed after its checkpoint)."""
        if not self.log_path.is_file():
            return
        keep = [line for line in self.log_path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        atomic_write_text(self.log_path, "".join(line + "\n" for line in keep))

    def writer(self) -> Any:
        """The TensorBoard writer of rank 0 (None elsewhere, or without the tensorboard package)."""
        if self._writer is None and self.dist.main and not self._writer_missing:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                warnings.warn("tensorboard is not installed (pip install 'facerecon[train]'): no TensorBoard logs",
                              stacklevel=2)
                self._writer_missing = True
                return None
            purge = self.resumed_from + 1 if self.resumed_from is not None else None
            self._writer = SummaryWriter(str(self.out / "tb"), purge_step=purge)
        return self._writer

    def _log(self, kind: str, values: dict[str, float], image: torch.Tensor | None = None) -> None:
        if not self.dist.main:
            return
        self._append_log({"event": kind, "step": self.step, **values})
        writer = self.writer()
        if writer is None:
            return
        for k, v in values.items():
            writer.add_scalar(k if k.startswith(f"{kind}/") else f"{kind}/{k}", v, self.step)
        if image is not None:
            writer.add_image("val/photo|render|overlay", image.clamp(0, 1), self.step)
        writer.flush()

    def close(self) -> None:
        """Close the TensorBoard writer and leave the process group this trainer joined."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.dist.owns_group and dist.is_initialized():
            dist.destroy_process_group()

    # --- data -------------------------------------------------------------------------------------
    def _loader(self, dataset: Any, indices: list[int] | None, seed: int,
                batches: list[list[int]] | None = None) -> DataLoader:
        """Batches of ``dataset``: ``indices`` cut into batches of the configured size, or the
        given ``batches`` of indices."""
        if batches is not None:
            return DataLoader(dataset, batch_sampler=batches,
                              num_workers=data_workers(self.config.num_workers, self.cuda),
                              collate_fn=default_collate, pin_memory=self.cuda and self.config.pin_memory)
        return DataLoader(dataset, batch_size=self.config.batch_size, sampler=indices, drop_last=False,
                          num_workers=data_workers(self.config.num_workers, self.cuda), collate_fn=default_collate,
                          pin_memory=self.cuda and self.config.pin_memory,
                          generator=torch.Generator().manual_seed(seed))

    def photo_stream(self, start_step: int) -> Iterator[dict[str, Any]]:
        """:meth:`photo_batches` as training reads them: on CUDA with no loader processes
        (``num_workers`` 0), read ahead by a thread while the device computes."""
        batches = self.photo_batches(start_step)
        if self.cuda and data_workers(self.config.num_workers, self.cuda) == 0:
            return prefetch(batches, depth=2)
        return batches

    def photo_batches(self, start_step: int) -> Iterator[dict[str, Any]]:
        """Endless training batches of this process from step ``start_step`` on: epoch e is a
        DistributedSampler permutation (seed, e), or with ``photos_per_person`` K > 1 the batches of
        :func:`~facerecon.training.data.person_batches` (seed, e) dealt to the processes in turn;
        a resumed run skips the batches already used."""
        cfg, d = self.config, self.dist
        if cfg.photos_per_person > 1:
            yield from self._person_batches(start_step)
            return
        sampler = DistributedSampler(self.train_data, num_replicas=d.world, rank=d.rank, shuffle=True,
                                     seed=cfg.seed, drop_last=True)
        per_epoch = len(sampler) // cfg.batch_size
        if per_epoch == 0:
            raise ValueError(f"{len(self.train_data)} training images make no batch of {cfg.batch_size} "
                             f"for each of {d.world} processes")
        epoch, skip = divmod(start_step, per_epoch)
        while True:
            sampler.set_epoch(epoch)
            indices = list(sampler)[skip * cfg.batch_size: per_epoch * cfg.batch_size]
            yield from self._loader(self.train_data, indices, cfg.seed * 1_000_003 + epoch * 1009 + d.rank)
            epoch, skip = epoch + 1, 0

    def _person_batches(self, start_step: int) -> Iterator[dict[str, Any]]:
        """:meth:`photo_batches` with ``photos_per_person`` K > 1."""
        cfg, d = self.config, self.dist
        people = item_people(self.train_data)
        if people is None:
            raise ValueError("--photos-per-person needs a dataset that lists each photo's person (shards)")

        def epoch_batches(e: int) -> list[list[int]]:
            batches = person_batches(people, cfg.batch_size, cfg.photos_per_person, cfg.seed * 1_000_003 + e)
            per_process = len(batches) // d.world
            if per_process == 0:
                raise ValueError(f"{len(self.train_data)} training images make no batch of {cfg.batch_size} "
                                 f"for each of {d.world} processes")
            return batches[d.rank: per_process * d.world: d.world]

        epoch, skip = 0, start_step
        mine = epoch_batches(epoch)
        while skip >= len(mine):  # epochs differ a little in length: walk to the resumed step
            skip -= len(mine)
            epoch += 1
            mine = epoch_batches(epoch)
        while True:
            yield from self._loader(self.train_data, None, 0, batches=mine[skip:])
            epoch, skip = epoch + 1, 0
            mine = epoch_batches(epoch)

    def synthetic_config(self):
        """Synthetic faces framed and rendered as the network's crops."""
        from facerecon.synthesis import SynthConfig

        size = self.net.config.input_size
        cfg = self.config
        return SynthConfig(size=size, focal=self.camera.focal, background=cfg.synthetic_background,
                           region=cfg.synthetic_region, skin_samples=cfg.synthetic_skins,
                           id_scale=cfg.synthetic_id_scale,
                           distance_mm=tuple(cfg.synthetic_distance) if cfg.synthetic_distance else None)

    def synthetic_model(self) -> FaceModel:
        if self._synth_model is None:
            region = self.config.synthetic_region
            self._synth_model = (self.face_model if region == self.face_model.region
                                 else load_model(region, self.config.albedo, self.device, self.config.landmarks))
        return self._synth_model

    def synthetic_batches(self, start_step: int) -> Iterator[dict[str, Any]]:
        """Endless synthetic batches of this process from step ``start_step`` on (its own stream)."""
        b = self.config.batch_size
        start = self.dist.rank * SYNTH_STREAM + start_step * b
        close = synthetic_batches(self.config.seed, start, b, self.synthetic_config(), self.synthetic_model(),
                                  self.device)
        if self.config.synthetic_target != "far":
            return close
        usual = replace(self.synthetic_config(), distance_mm=None)  # the same faces from the usual distance
        far = synthetic_batches(self.config.seed, start, b, usual, self.synthetic_model(), self.device)
        return ({**c, "far_image": f["image"], "far_landmarks2d": f["landmarks2d"]} for c, f in zip(close, far))

    def _photos_to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return fit_size(photos_to_float(batch, self.device), self.net.config.input_size)

    # --- one step -----------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.cuda or self.config.amp == "off":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if self.config.amp == "bf16" else torch.float16)

    def _predict(self, module: torch.nn.Module, images: torch.Tensor, landmarks: torch.Tensor | None) -> torch.Tensor:
        """The network's flat parameters; ``landmarks`` (crop pixels) reach it only when its config
        takes them."""
        if self.cuda:
            images = images.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            vec = module(images, landmarks if self.net.config.landmark_input else None)
        return vec.float()

    def losses(self, vec: torch.Tensor, photos: dict[str, Any] | None, synth: dict[str, Any] | None,
               step: int) -> dict[str, torch.Tensor]:
        """Mixed objective of predictions ``vec`` (photos first, then synthetic faces): the
        weighted ``total`` and every term (batch means), as tensors."""
        cfg, obj = self.config, self.objectives
        params = FaceParams.from_vector(vec, self.sizes)
        n = photos["image"].shape[0] if photos is not None else 0
        total = vec.new_zeros(())
        logs: dict[str, torch.Tensor] = {}
        if photos is not None:
            p, out = params[:n], None
            if cfg.self_supervised > 0:
                per = obj.loss.uses_perceptual and step % cfg.perceptual_every == 0
                terms, out = obj.self_supervised(p, photos["image"], photos["landmarks"], photos.get("attention"),
                                                 perceptual=per)
                total = total + cfg.self_supervised * terms.total.mean()
                logs.update({f"self_supervised/{k}": getattr(terms, k).mean() for k in HYBRID_TERMS})
            if cfg.distill > 0:
                target, found = self.labels.lookup(list(photos["key"]))
                g = obj.geometry(p, target, out)
                total = total + cfg.distill * masked_mean(g.total, found)
                logs.update({f"distill/{k}": masked_mean(getattr(g, k), found) for k in LABEL_TERMS})
                logs["distill/labelled"] = found.mean()
            if cfg.identity_consistency > 0:
                spread, grouped = obj.identity(p, torch.as_tensor(photos["person"]))
                total = total + cfg.identity_consistency * masked_mean(spread, grouped)
                logs["identity/spread_mm"] = masked_mean(spread, grouped)
                logs["identity/grouped"] = grouped.float().mean()
        if synth is not None:
            m = synth["image"].shape[0]
            far = FaceParams.from_vector(vec[n + m:].detach(), self.sizes) if "far_image" in synth else None
            g = self._synthetic_terms(params[n:n + m], synth, far)
            total = total + cfg.synthetic * g.total.mean()
            logs.update({f"synthetic/{k}": getattr(g, k).mean() for k in LABEL_TERMS})
        logs["total"] = total
        return logs

    def _synthetic_terms(self, params: FaceParams, synth: dict[str, Any], far: FaceParams | None = None
                         ) -> LabelTerms:
        """Geometry terms of predictions against synthetic truth, or against ``far``: the
        network's own prediction of the same faces seen from the usual distance. A face rendered
        from another distance is compared where the network's camera sees the same crop (its
        depth scaled by the focal lengths' ratio); painted with a photo's skin, it has no albedo
        coefficients, so its colour term against the truth is left out."""
        if far is not None:
            return self.objectives.geometry(params, far)
        truth = synth["params"]
        placed = same_crop_translation(truth.trans, synth["focal"].to(truth.trans), float(self.camera.focal))
        g = self.objectives.geometry(params, FaceParams(truth.alpha, truth.beta, truth.delta, truth.gamma,
                                                        truth.angles, placed))
        if self.config.synthetic_skins:
            g.total = g.total - self.config.label.color * g.color
        return g

    def train_step(self, photos: dict[str, Any] | None, synth: dict[str, Any] | None) -> dict[str, float]:
        """One optimiser step on a photo batch and/or a synthetic batch; returns the terms."""
        cfg = self.config
        self.net.train()
        if photos is not None:
            photos = self._photos_to_device(photos)
            if "person" in photos:
                self._train_people.update(int(p) for p in torch.as_tensor(photos["person"]).reshape(-1).tolist())
        # one pass: photos, synthetic faces, and those faces from the usual distance (target "far")
        parts = [(photos["image"], photos["landmarks"])] if photos is not None else []
        if synth is not None:
            parts.append((synth["image"], synth["landmarks2d"]))
            if "far_image" in synth:
                parts.append((synth["far_image"], synth["far_landmarks2d"]))
        images, landmarks = (torch.cat(t) for t in zip(*parts))
        vec = self._predict(self.model_ddp, images, landmarks)
        logs = self.losses(vec, photos, synth, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(logs["total"]).backward()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(),
                                              cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        lr = self.optimizer.param_groups[0]["lr"]
        if self.scaler.is_enabled():
            self.scaler.step(self.optimizer)  # skips steps with inf/NaN gradients itself
        elif torch.isfinite(norm):  # the same on every process: gradients are all-reduced
            self.optimizer.step()
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        names = list(logs)
        values = torch.stack([logs[k].detach().float() for k in names] + [norm.detach().float()]).tolist()
        record = dict(zip(names + ["grad_norm"], values))
        record["lr"] = lr
        self.history.append({"step": self.step, **record})
        return record

    # --- the loop -----------------------------------------------------------------------------------
    def train(self, until: int | None = None) -> dict[str, float]:
        """Run from the current step to ``config.steps`` (or to step ``until``, without the final
        checkpoint: an interruption); returns the last validation metrics."""
        from tqdm import tqdm

        cfg = self.config
        end = cfg.steps if until is None else min(until, cfg.steps)
        if self.step >= end:
            return self.last_metrics
        use_photos = cfg.uses_photos
        photos = self.photo_stream(self.step) if use_photos else None
        synth = self.synthetic_batches(self.step) if cfg.synthetic > 0 else None
        bar = tqdm(total=cfg.steps, initial=self.step, unit="step", desc="train", dynamic_ncols=True,
                   disable=not (self.dist.main and cfg.progress))
        window: list[dict[str, float]] = []
        tick = time.perf_counter()
        try:
            while self.step < end:
                record = self.train_step(next(photos) if photos is not None else None,
                                         next(synth) if synth is not None else None)
                window.append(record)
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == end:
                    means = _means(window)
                    now = time.perf_counter()
                    # photos (and synthetic faces) per second of all processes over the window
                    means["images_per_s"] = (len(window) * cfg.batch_size * self.dist.world
                                             * (cfg.uses_photos + (cfg.synthetic > 0))
                                             / max(now - tick, 1e-9))
                    window, tick = [], now
                    self._log("train", means)
                    bar.set_postfix(loss=f"{means['total']:.4g}", lr=f"{means['lr']:.2e}", refresh=False)
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    self.save_checkpoint()
                if cfg.validate_every and (self.step % cfg.validate_every == 0 or self.step == cfg.steps):
                    self.validate()
        finally:
            bar.close()
            if photos is not None:
                photos.close()  # a read-ahead thread ends here, not at the interpreter's exit
        return self.last_metrics

    # --- validation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean loss terms over the validation people (every process scores its share; sums are
        all-reduced), the landmark error in crop pixels, the identity vectors' verification AUC over the
        validation people's photos (``val/identity_auc``), the distillation terms where labels exist
        and the geometry terms on held-out synthetic faces; logged on rank 0 with an image grid."""
        cfg, obj, d = self.config, self.objectives, self.dist
        was_training = self.net.training
        self.net.eval()
        sums: dict[str, torch.Tensor] = {}

        def add(name: str, value: torch.Tensor) -> None:
            sums[name] = sums.get(name, torch.zeros((), device=self.device, dtype=torch.float64)) + value.double().sum()

        grid, people = None, set()
        identities: list[tuple[int, np.ndarray]] = []  # (person, alpha) of every validation photo
        if self.val_data is not None:
            for k in (*HYBRID_TERMS, "landmark_px", "images", *(f"distill/{t}" for t in LABEL_TERMS),
                      "distill/labelled"):
                add(k, torch.zeros(()))
            indices = list(range(d.rank, len(self.val_data), d.world))
            for batch in self._loader(self.val_data, indices, cfg.seed):
                batch = self._photos_to_device(batch)
                people.update(int(p) for p in torch.as_tensor(batch["person"]).reshape(-1).tolist())
                params = FaceParams.from_vector(self._predict(self.net, batch["image"], batch["landmarks"]),
                                                self.sizes)
                terms, out = obj.self_supervised(params, batch["image"], batch["landmarks"], batch.get("attention"),
                                                 perceptual=obj.loss.uses_perceptual)
                identities += zip(torch.as_tensor(batch["person"]).reshape(-1).tolist(),
                                  params.alpha.detach().cpu().numpy())
                for k in HYBRID_TERMS:
                    add(k, getattr(terms, k))
                add("landmark_px", (out.landmarks - batch["landmarks"]).norm(dim=-1).mean(-1))
                add("images", torch.ones(params.batch))
                if self.labels is not None:
                    target, found = self.labels.lookup(list(batch["key"]))
                    g = obj.geometry(params, target, out)
                    for k in LABEL_TERMS:
                        add(f"distill/{k}", getattr(g, k) * found)
                    add("distill/labelled", found)
                if grid is None and d.main:
                    k = min(4, params.batch)
                    grid = comparison_grid(batch["image"][:k], out.image[:k], out.mask[:k], batch["landmarks"][:k],
                                           out.landmarks[:k])
        if cfg.synthetic > 0 and cfg.val_synthetic > 0:
            for k in (*(f"synthetic/{t}" for t in LABEL_TERMS), "synthetic/images"):
                add(k, torch.zeros(()))
            share = [len(range(r, cfg.val_synthetic, d.world)) for r in range(d.world)]
            mine, start = share[d.rank], sum(share[:d.rank])
            if mine:
                from facerecon.synthesis import generate_batches

                for batch in generate_batches(mine, cfg.seed + 1, self.synthetic_config(), device=self.device,
                                              batch_size=cfg.batch_size, model=self.synthetic_model(), start=start):
                    params = FaceParams.from_vector(self._predict(self.net, batch["image"], batch["landmarks2d"]),
                                                    self.sizes)
                    g = self._synthetic_terms(params, batch)
                    for k in LABEL_TERMS:
                        add(f"synthetic/{k}", getattr(g, k))
                    add("synthetic/images", torch.ones(params.batch))
        self.net.train(was_training)
        if not sums:
            return {}
        names = sorted(sums)
        totals = torch.stack([sums[k] for k in names])
        if d.world > 1:
            dist.all_reduce(totals)
            gathered: list[Any] = [None] * d.world
            dist.all_gather_object(gathered, (people, identities))
            people = set().union(*(g[0] for g in gathered))
            identities = [x for g in gathered for x in g[1]]
        total = dict(zip(names, totals.tolist()))
        metrics: dict[str, float] = {}
        if "images" in total:
            n = max(total["images"], 1.0)
            metrics.update({f"val/{k}": total[k] / n for k in (*HYBRID_TERMS, "landmark_px")})
            metrics["val/images"], metrics["val/people"] = total["images"], float(len(people))
            auc = identity_auc([p for p, _ in identities], [a for _, a in identities])
            if auc is not None:
                metrics["val/identity_auc"] = auc
            if total["distill/labelled"] > 0:
                metrics.update({f"val/distill/{k}": total[f"distill/{k}"] / total["distill/labelled"]
                                for k in LABEL_TERMS})
        if "synthetic/images" in total and total["synthetic/images"] > 0:
            metrics.update({f"val/synthetic/{k}": total[f"synthetic/{k}"] / total["synthetic/images"]
                            for k in LABEL_TERMS})
        shared = sorted(people & self._train_people)
        n_shared = torch.tensor(float(len(shared)), device=self.device)
        if d.world > 1:
            dist.all_reduce(n_shared)  # every process stops, or none
        if n_shared.item() > 0:
            raise ValueError(f"validation people {shared[:10]} were also trained on: "
                             "validate on held-out people only (the val split)")
        self.last_metrics = metrics
        self._log("val", metrics, grid)
        return metrics


__all__ = ["DistInfo", "Trainer", "comparison_grid", "draw_points", "identity_auc", "load_model", "lr_factor", "param_groups",
           "resolve_device", "setup_distributed"]
