"""Photos -> shards: detect, align and store every photo's largest face (see :mod:`.shards`).

Detection, alignment and skin attention are :class:`facerecon.imageio.Preparer`'s; this module
only decides names, people and splits, and writes. A run is resumable: photos already in
``records.jsonl`` or ``failures.jsonl`` are skipped, the last shard is filled up before a new one
is started, and what was prepared is written every ``flush_every`` photos and when the run stops
(Ctrl-C included).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

import numpy as np

from facerecon import __version__
from facerecon.data.shards import (
    ARRAYS, CROP_SIZE, FORMAT, VERSION, Failure, ShardRecord, open_npz, read_failures, read_meta, read_records,
    shard_path, write_jsonl, write_meta, write_shard,
)
from facerecon.data.split import DEFAULT_VAL_FRACTION, check_val_fraction, split_of
from facerecon.imageio import ImageError, NoFaceError, Preparer
from facerecon.imageio.load import one_line

#: How a photo's person label is chosen (see :func:`person_label`).
PERSON_RULES = ("auto", "folder", "photo")
#: Photo suffixes looked for in folders when no ``find`` function is given.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Photo:
    """One photo to prepare."""

    path: Path
    """The file."""
    key: str
    """Stable id: its path below the folder given ('/'-separated), or its name if given alone."""
    person: str
    """Person label: photos with equal labels are one person (never split over train and val)."""


def person_label(key: str, path: Path, rule: str = "auto") -> str:
    """The person of a photo by ``rule``:

    - ``auto``: the folder holding the photo below the folder given (LFW's ``<Name>/``, as a
      '/'-path when deeper); a photo directly in the folder given, or given alone, is its own
      person (300-W, UTKFace);
    - ``folder``: the name of the folder holding the photo, always;
    - ``photo``: every photo is its own person.
    """
    if rule == "auto":
        parent = PurePosixPath(key).parent.as_posix()
        return key if parent == "." else parent
    if rule == "folder":
        return Path(os.path.abspath(path)).parent.name
    if rule == "photo":
        return key
    raise ValueError(f"person rule must be one of {', '.join(PERSON_RULES)} (got {rule!r})")


def _find_images(folder: Path) -> list[Path]:
    """Image files below ``folder``, recursively, sorted; hidden files and folders skipped."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / f for f in files
                     if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES)
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def collect_photos(paths: Iterable[str | os.PathLike], person: str = "auto",
                   find: Callable[[Path], list[Path]] | None = None) -> list[Photo]:
    """Photos of files and folders (searched recursively by ``find``), with keys and people.

    A path that is not a folder is taken as a photo even if missing (it fails when prepared).
    Raises ValueError (one line) when two different files get the same key.
    """
    if person not in PERSON_RULES:
        raise ValueError(f"person rule must be one of {', '.join(PERSON_RULES)} (got {person!r})")
    find = find or _find_images
    photos: list[Photo] = []
    for given in map(Path, paths):
        if given.is_dir():
            for f in find(given):
                key = PurePosixPath(*f.relative_to(given).parts).as_posix()
                photos.append(Photo(f, key, person_label(key, f, person)))
        else:
            photos.append(Photo(given, given.name, person_label(given.name, given, person)))
    return unique_photos(photos)


def unique_photos(photos: Sequence[Photo]) -> list[Photo]:
    """``photos`` without repeats of one file; ValueError (one line) when two files share a key."""
    seen: dict[str, Photo] = {}
    out = []
    for p in photos:
        other = seen.get(p.key)
        if other is None:
            seen[p.key] = p
            out.append(p)
        elif os.path.abspath(other.path) != os.path.abspath(p.path):
            raise ValueError(f"{one_line(str(p.path))}: same key {p.key!r} as {one_line(str(other.path))} "
                             "(give their common parent folder instead)")
    return out


@dataclass
class PrepareResult:
    """What one :func:`prepare_shards` run did."""

    added: int = 0
    """Photos written to shards in this run."""
    failed: list[Failure] = field(default_factory=list)
    """Photos that failed in this run (one-line reasons)."""
    skipped: int = 0
    """Photos already in the records or failures of an earlier run."""
    total: int = 0
    """Photos in the folder's records after the run."""


class _Writer:
    """The records, failures and the shard being filled, written out on :meth:`flush`."""

    def __init__(self, out: Path, meta: dict, shard_size: int) -> None:
        self.out, self.meta, self.shard_size = out, meta, shard_size
        self.records = read_records(out)
        self.failures = read_failures(out)
        self.rows: dict[str, list[np.ndarray]] = {name: [] for name in ARRAYS}
        self.dirty = False
        self.shard = 0
        if self.records:
            last = max(r.shard for r in self.records)
            kept = sorted(r.row for r in self.records if r.shard == last)
            if kept != list(range(len(kept))):
                raise ValueError(f"{out / 'records.jsonl'}: rows of shard {last} are not 0..{len(kept) - 1}")
            if len(kept) < shard_size:  # go on filling the last shard
                arrays = open_npz(shard_path(out, last), mmap=False)
                for name in ARRAYS:
                    if len(arrays[name]) < len(kept):
                        raise ValueError(f"{shard_path(out, last)}: {len(arrays[name])} rows, "
                                         f"records.jsonl lists {len(kept)}")
                    self.rows[name] = list(arrays[name][: len(kept)])
                self.shard = last
            else:
                self.shard = last + 1

    def done_keys(self) -> set[str]:
        return {r.key for r in self.records} | {f.key for f in self.failures}

    def add(self, record: ShardRecord, image: np.ndarray, landmarks: np.ndarray, attention: np.ndarray) -> None:
        record.shard, record.row = self.shard, len(self.rows["images"])
        self.rows["images"].append(image)
        self.rows["landmarks"].append(landmarks)
        self.rows["attention"].append(attention)
        self.records.append(record)
        self.dirty = True
        if len(self.rows["images"]) >= self.shard_size:
            self.flush()
            self.shard += 1
            self.rows = {name: [] for name in ARRAYS}

    def fail(self, failure: Failure) -> None:
        self.failures.append(failure)
        self.dirty = True

    def flush(self) -> None:
        """Write the shard being filled, then the records, failures and meta (each atomically)."""
        if not self.dirty:
            return
        if self.rows["images"]:
            write_shard(self.out, self.shard, *(np.stack(self.rows[name]) for name in ARRAYS))
        write_jsonl(self.out / "records.jsonl", self.records)
        write_jsonl(self.out / "failures.jsonl", self.failures)
        self.meta["count"] = len(self.records)
        self.meta["failures"] = len(self.failures)
        self.meta["shards"] = (max(r.shard for r in self.records) + 1) if self.records else 0
        self.meta["config"]["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_meta(self.out, self.meta)
        self.dirty = False


def _open_meta(out: Path, val_fraction: float | None, person: str, shard_size: int,
               sources: list[str]) -> dict:
    """The folder's meta (new, or the existing one checked against this run's settings)."""
    if (out / "meta.json").exists():
        meta = read_meta(out)
        if val_fraction is not None and abs(float(meta["val_fraction"]) - val_fraction) > 1e-12:
            raise ValueError(f"{out / 'meta.json'}: made with val fraction {meta['val_fraction']}, not "
                             f"{val_fraction} (the split must not change: use a new folder)")
        if meta.get("person_rule") != person:
            raise ValueError(f"{out / 'meta.json'}: made with person rule {meta.get('person_rule')!r}, not "
                             f"{person!r} (people must not change: use a new folder)")
        cfg = meta.setdefault("config", {})
        cfg["sources"] = list(dict.fromkeys([*cfg.get("sources", []), *sources]))
        cfg["shard_size"] = shard_size
        return meta
    return {
        "format": FORMAT, "version": VERSION, "crop_size": CROP_SIZE,
        "val_fraction": DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction,
        "person_rule": person,
        "count": 0, "failures": 0, "shards": 0,
        "config": {"facerecon": __version__, "detector": "dlib HOG + 68-point predictor, largest face",
                   "shard_size": shard_size, "sources": sources,
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }


def prepare_shards(sources: Sequence[str | os.PathLike | Photo], out: str | os.PathLike, shard_size: int = 256,
                   val_fraction: float | None = None, person: str = "auto", limit: int | None = None,
                   preparer: Preparer | None = None, progress: bool = True, flush_every: int = 32,
                   find: Callable[[Path], list[Path]] | None = None, retry_failed: bool = False) -> PrepareResult:
    """Detect, align and write the largest face of every photo of ``sources`` into shards in ``out``.

    ``sources``: files and folders (searched recursively by ``find``; keys and people by
    :func:`collect_photos` with rule ``person``), or :class:`Photo` items. ``val_fraction`` of the
    people go to "val" (default 0.1; an existing folder keeps its own and refuses another).
    ``limit``: only the first N photos (a later run goes on). A photo that fails is recorded in
    ``failures.jsonl`` and the run goes on; a later run skips it unless ``retry_failed``. Raises ValueError (one line) when no photo is found or
    the settings contradict the folder's.
    """
    from tqdm import tqdm

    if shard_size < 1:
        raise ValueError(f"shard size must be at least 1 (got {shard_size})")
    if val_fraction is not None:
        val_fraction = check_val_fraction(val_fraction)
    out = Path(out)
    given = [s for s in sources if not isinstance(s, Photo)]
    photos = [s for s in sources if isinstance(s, Photo)] + collect_photos(given, person, find)
    photos = unique_photos(photos)
    if not photos:
        raise ValueError("no photos found in " + ", ".join(one_line(str(s)) for s in sources) if sources
                         else "no photos given")
    if limit is not None:
        photos = photos[: max(0, limit)]
    out.mkdir(parents=True, exist_ok=True)
    meta = _open_meta(out, val_fraction, person, shard_size, [os.path.abspath(s) for s in given])
    fraction = float(meta["val_fraction"])
    writer = _Writer(out, meta, shard_size)
    if retry_failed:  # photos that failed before are tried again (their old failure is dropped)
        wanted = {p.key for p in photos}
        writer.failures = [f for f in writer.failures if f.key not in wanted]
    done = writer.done_keys()
    todo = [p for p in photos if p.key not in done]
    result = PrepareResult(skipped=len(photos) - len(todo))
    preparer = preparer or Preparer()
    try:
        with tqdm(total=len(photos), initial=result.skipped, unit="photo", desc="prepare", disable=not progress,
                  file=sys.stderr) as bar:
            since_flush = 0
            for photo in todo:
                source = os.path.abspath(photo.path)
                try:
                    rgb, faces = preparer.prepare_source(photo.path)
                    if not faces:
                        raise NoFaceError(str(photo.path))
                    face = faces[0]
                    if face.crop.shape != (CROP_SIZE, CROP_SIZE, 3):
                        raise ValueError(f"crop is {face.crop.shape}, expected {(CROP_SIZE, CROP_SIZE, 3)}")
                except (ImageError, NoFaceError) as exc:
                    writer.fail(Failure(photo.key, source, one_line(str(exc))))
                    result.failed.append(writer.failures[-1])
                except Exception as exc:  # noqa: BLE001 - one bad photo must not stop a long run
                    reason = one_line(f"{photo.path}: {type(exc).__name__}: {exc}")
                    writer.fail(Failure(photo.key, source, reason))
                    result.failed.append(writer.failures[-1])
                else:
                    attention = np.clip(np.rint(np.asarray(face.attention, np.float32) * 255.0), 0, 255)
                    record = ShardRecord(photo.key, -1, -1, source, photo.person, split_of(photo.person, fraction),
                                         [int(rgb.shape[0]), int(rgb.shape[1])],
                                         np.asarray(face.M, np.float64).round(6).tolist())
                    writer.add(record, np.ascontiguousarray(face.crop, np.uint8),
                               np.asarray(face.landmarks_crop, np.float32), attention.astype(np.uint8))
                    result.added += 1
                since_flush += 1
                if since_flush >= flush_every:
                    writer.flush()
                    since_flush = 0
                bar.update(1)
    finally:
        writer.flush()  # keep what was prepared, also on Ctrl-C or an error
    result.total = len(writer.records)
    return result


__all__ = ["PERSON_RULES", "Photo", "PrepareResult", "collect_photos", "person_label", "prepare_shards",
           "unique_photos"]
