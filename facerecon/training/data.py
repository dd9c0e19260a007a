"""What the trainer reads: photo batches (any map-style dataset whose items are dicts with
``image`` (3,S,S) float in [0,1] or uint8, ``landmarks`` (68,2) crop pixels, ``attention`` (1,S,S),
``person`` int and ``key`` str — :class:`facerecon.data.shards.ShardDataset`'s items), fitter
labels by key, and synthetic batches with known parameters.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from typing import Any, Hashable, Iterator, Mapping, Sequence, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from facerecon.params import FaceParams
from facerecon.render.camera import resize_px

#: Sample indices of one process's synthetic stream are ``rank × SYNTH_STREAM + i``: disjoint
#: streams per process, each long enough for any run.
SYNTH_STREAM = 2 ** 40
T = TypeVar("T")


def shard_datasets(root: str | os.PathLike, uint8: bool = True) -> tuple[Any, Any]:
    """The training and validation splits of a shard folder (held-out people validate); items
    with uint8 images (``uint8``, converted on the training device) or float ones."""
    from facerecon.data.shards import ShardDataset

    return ShardDataset(root, split="train", uint8=uint8), ShardDataset(root, split="val", uint8=uint8)


def read_label_folder(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, float]]:
    """Fitter labels of a folder: {key: (FaceParams vector, the fit's final loss)}."""
    from facerecon.data.labels import read_labels

    return read_labels(path)


def label_fit_config(path: str | os.PathLike) -> dict[str, Any]:
    """The fit config a labels folder records in its config.json ({} when it records none)."""
    import json
    from pathlib import Path

    file = Path(path) / "config.json"
    if not file.is_file():
        return {}
    return dict(json.loads(file.read_text(encoding="utf-8")).get("fit_config") or {})


def _record_field(dataset: Any, name: str) -> list | None:
    """Field ``name`` of each item's record, in item order, when the dataset lists its items
    cheaply (``records`` that all have it, as :class:`~facerecon.data.shards.ShardDataset`), else None."""
    records = getattr(dataset, "records", None)
    if records is None or not all(hasattr(r, name) for r in records):
        return None
    return [getattr(r, name) for r in records]


def dataset_people(dataset: Any) -> set | None:
    """The person labels of a dataset's items when it lists them cheaply, else None."""
    people = _record_field(dataset, "person")
    return None if people is None else set(people)


def item_people(dataset: Any) -> list | None:
    """The person label of each item, in item order, when the dataset lists them cheaply, else None."""
    return _record_field(dataset, "person")


def item_keys(dataset: Any) -> list[str] | None:
    """The key of each item, in item order, when the dataset lists them cheaply, else None."""
    return _record_field(dataset, "key")


def key_people(*datasets: Any) -> dict[str, Hashable]:
    """{item key: person} over ``datasets`` (None entries skipped); ValueError when one of them
    does not list its items' keys and people (what per-person label means need)."""
    out: dict[str, Hashable] = {}
    for data in datasets:
        if data is None:
            continue
        keys, people = item_keys(data), item_people(data)
        if keys is None or people is None:
            raise ValueError("--label-person-mean needs a dataset that lists each photo's key and person (shards)")
        out.update(zip(keys, people))
    return out


def person_batches(people: Sequence[Hashable], batch_size: int, group: int, seed: int) -> list[list[int]]:
    """One epoch of batches (item indices) in which a person's photos come ``group`` at a time, as
    DECA trains on K photos per person: every person's photos are shuffled and cut into runs of
    ``group`` (a person with fewer photos, or the rest of one with more, gives runs of one), the runs
    are shuffled, and batches are filled run by run; a run that does not fit the rest of a batch
    opens the next one, and runs of one fill the gaps. Every index appears at most once; the last
    incomplete batch is dropped. ``group`` 1 is a plain seeded permutation cut into batches."""
    if batch_size < 1 or group < 1:
        raise ValueError("batch_size and group must be at least 1")
    if group > batch_size:
        raise ValueError(f"{group} photos per person do not fit a batch of {batch_size}")
    rng = np.random.default_rng(seed)
    by_person: dict[Hashable, list[int]] = {}
    for i, p in enumerate(people):
        by_person.setdefault(p, []).append(i)
    runs: list[list[int]] = []
    for p in sorted(by_person, key=str):
        idx = [by_person[p][j] for j in rng.permutation(len(by_person[p]))]
        whole = len(idx) // group * group if group > 1 else 0
        runs += [idx[k:k + group] for k in range(0, whole, group)] + [[i] for i in idx[whole:]]
    order = rng.permutation(len(runs))
    batches: list[list[int]] = []
    current: list[int] = []
    waiting: list[list[int]] = []  # runs that did not fit the current batch, first into the next
    for r in (runs[k] for k in order):
        if len(current) + len(r) > batch_size:
            waiting.append(r)
            continue
        current += r
        while len(current) == batch_size:
            batches.append(current)
            current = []
            while waiting and len(current) + len(waiting[0]) <= batch_size:
                current += waiting.pop(0)
    return batches


class LabelTable:
    """Fitter labels as one (N,P) tensor, looked up by item key; labels whose fit loss exceeds
    ``max_loss`` are left out (those images then count 0 in the distillation term)."""

    def __init__(self, labels: Mapping[str, tuple[np.ndarray, float]], sizes: dict[str, int],
                 max_loss: float | None = None, device: str | torch.device = "cpu") -> None:
        width = sum(sizes.values())
        keep = {k: np.asarray(v, np.float32).reshape(-1) for k, (v, loss) in labels.items()
                if max_loss is None or (math.isfinite(float(loss)) and float(loss) <= max_loss)}
        bad = [k for k, v in keep.items() if v.shape[0] != width]
        if bad:
            raise ValueError(f"label {bad[0]!r} has {keep[bad[0]].shape[0]} numbers; the network predicts {width}")
        self.sizes = sizes
        self.index = {k: i for i, k in enumerate(sorted(keep))}
        rows = [keep[k] for k in sorted(keep)] or [np.zeros(width, np.float32)]
        self.table = torch.as_tensor(np.stack(rows), device=device)
        self.fallback = FaceParams.zeros(1, sizes["alpha"], sizes["beta"], sizes["delta"],
                                         rgb_light=sizes["gamma"] == 27, device=device).to_vector()[0]

    def __len__(self) -> int:
        return len(self.index)

    def average_identity(self, person_of: Mapping[str, Hashable]) -> int:
        """Replace every label's identity α and albedo δ by the mean over its person's labelled
        photos (``person_of``: key → person; keys not in it keep their own), so that distillation
        learns a person's identity from all of their photos rather than from one photo's fit (a
        many-photo teacher). Expression, light and pose stay each photo's own. Returns how many
        labels now share a person's mean (those of people with two or more labelled photos)."""
        params = FaceParams.from_vector(self.table, self.sizes)
        groups: dict[Hashable, list[int]] = {}
        for key, row in self.index.items():
            if key in person_of:
                groups.setdefault(person_of[key], []).append(row)
        shared = 0
        for rows in groups.values():
            if len(rows) < 2:
                continue
            shared += len(rows)
            for name in ("alpha", "delta"):
                t = getattr(params, name)
                t[rows] = t[rows].mean(0, keepdim=True)
        self.table = params.to_vector()
        return shared

    def lookup(self, keys: list[str]) -> tuple[FaceParams, torch.Tensor]:
        """Labels of ``keys`` as FaceParams (B rows; the mean face where a key has no label) and
        (B,) a 1/0 mask of the keys that have one."""
        rows = [self.index.get(k, -1) for k in keys]
        found = torch.tensor([r >= 0 for r in rows], dtype=torch.float32, device=self.table.device)
        vec = torch.stack([self.table[r] if r >= 0 else self.fallback for r in rows])
        return FaceParams.from_vector(vec, self.sizes), found


def prefetch(batches: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``batches`` read ``depth`` ahead by a background thread (the device computes meanwhile:
    for a loader without worker processes, whose reads from memory-mapped shards and stacking
    release the GIL). An error in the thread is raised here; closing the returned generator
    stops the thread and waits for it (at most the batch it is reading)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as exc:  # handed to the consumer, raised there
            q.put((done, exc))

    thread = threading.Thread(target=work, name="facerecon-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # let a put waiting for room see the stop, then the thread end:
            try:                  # a daemon thread left inside a read aborts the interpreter's exit
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def fit_size(batch: dict[str, Any], size: int) -> dict[str, Any]:
    """Resample a photo batch to ``size`` pixels when its images are another size (landmarks
    scaled with them); ``batch`` is returned as it is otherwise."""
    s = batch["image"].shape[-1]
    if s == size:
        return batch
    out = dict(batch)
    out["image"] = F.interpolate(batch["image"], size=(size, size), mode="bilinear", align_corners=False,
                                 antialias=s > size)
    if batch.get("attention") is not None:
        out["attention"] = F.interpolate(batch["attention"], size=(size, size), mode="bilinear",
                                         align_corners=False)
    out["landmarks"] = resize_px(batch["landmarks"], s, size)
    return out


def synthetic_batches(seed: int, start: int, batch_size: int, synth_config, model, device) -> Iterator[dict]:
    """Endless synthetic batches of samples ``start, start+1, …`` (each sample is a pure function
    of (seed, index), so a run resumed at step k restarts the stream at ``start + k×batch``)."""
    from facerecon.synthesis import generate_batches

    return generate_batches(SYNTH_STREAM, seed, synth_config, device=device, batch_size=batch_size,
                            model=model, start=start)


__all__ = ["LabelTable", "SYNTH_STREAM", "dataset_people", "fit_size", "item_keys", "item_people", "key_people", "label_fit_config",
           "person_batches", "prefetch", "read_label_folder", "shard_datasets", "synthetic_batches"]
