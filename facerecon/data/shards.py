"""The shard format: aligned faces on disk, compact, appendable and readable at random.

A SHARDS folder holds

- ``meta.json``: ``format`` ("facerecon-shards"), ``version``, ``crop_size`` (224), ``val_fraction``,
  ``person_rule`` and ``config`` (how the set was made: facerecon version, sources, shard size);
- ``shard-00000.npz``, ``shard-00001.npz``, …: uncompressed ``np.savez`` archives, each with
  ``images`` uint8 (N,224,224,3) aligned RGB crops, ``landmarks`` float32 (N,68,2) crop pixels and
  ``attention`` uint8 (N,224,224) skin attention × 255 (rounded);
- ``records.jsonl``: one JSON object per photo: ``key`` (its path below the source folder given,
  '/'-separated: the stable id), ``shard``, ``row``, ``source`` (absolute path), ``person``,
  ``split`` ("train" or "val", by person: see :func:`facerecon.data.split.split_of`), ``size``
  ([height, width] of the photo, pixels) and ``M`` (2×3 photo→crop transform);
- ``failures.jsonl``: ``key``, ``source``, ``reason`` (one line) per photo that could not be used.

Every file is written atomically (temporary file + rename); the records are written after the
shard they point into, so rows beyond the records of a shard (an interrupted write) are ignored.
Arrays are stored uncompressed so that :class:`ShardDataset` memory-maps them: any row is read
without loading its shard.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from facerecon.atomic import atomic_path, atomic_write_json, atomic_write_text

FORMAT = "facerecon-shards"
VERSION = 1
CROP_SIZE = 224
N_LANDMARKS = 68
#: Arrays of a shard and their per-row shape and dtype.
ARRAYS: dict[str, tuple[tuple[int, ...], np.dtype]] = {
    "images": ((CROP_SIZE, CROP_SIZE, 3), np.dtype(np.uint8)),
    "landmarks": ((N_LANDMARKS, 2), np.dtype(np.float32)),
    "attention": ((CROP_SIZE, CROP_SIZE), np.dtype(np.uint8)),
}
SPLITS = ("train", "val", "all")


class ShardError(ValueError):
    """A shards folder that cannot be read; ``str()`` is one line naming the file."""


@dataclass
class ShardRecord:
    """One photo of a shards folder (a line of ``records.jsonl``)."""

    key: str
    """Stable id: the photo's path below the source folder given ('/'-separated)."""
    shard: int
    """Index of its shard file (``shard-{shard:05d}.npz``)."""
    row: int
    """Row in that shard."""
    source: str
    """Absolute path of the photo."""
    person: str
    """Person label (LFW: the person's folder)."""
    split: str
    """"train" or "val"."""
    size: list[int] = field(default_factory=list)
    """[height, width] of the photo, pixels."""
    M: list[list[float]] = field(default_factory=list)
    """2×3 photo→crop transform (crop = M @ [x, y, 1])."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass
class Failure:
    """A photo that could not be used (a line of ``failures.jsonl``)."""

    key: str
    source: str
    reason: str
    """One line: the file and why."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def shard_path(root: str | os.PathLike, index: int) -> Path:
    """``ROOT/shard-{index:05d}.npz``."""
    return Path(root) / f"shard-{index:05d}.npz"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ShardError(f"{path}: line {n}: not JSON ({exc.msg})") from None
    return out


def read_meta(root: str | os.PathLike) -> dict[str, Any]:
    """``meta.json`` of a shards folder; ShardError (one line) when missing or not ours."""
    path = Path(root) / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ShardError(f"{path}: missing (not a shards folder: make one with `facerecon data prepare`)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ShardError(f"{path}: unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ShardError(f"{path}: not a facerecon shards folder")
    if int(meta.get("version", -1)) > VERSION:
        raise ShardError(f"{path}: format version {meta.get('version')} is newer than this facerecon reads ({VERSION})")
    if int(meta.get("crop_size", -1)) != CROP_SIZE:
        raise ShardError(f"{path}: crop size {meta.get('crop_size')}, expected {CROP_SIZE}")
    return meta


def read_records(root: str | os.PathLike) -> list[ShardRecord]:
    """Every photo of a shards folder, in the order they were written."""
    path = Path(root) / "records.jsonl"
    known = set(ShardRecord.__dataclass_fields__)
    try:
        return [ShardRecord(**{k: v for k, v in d.items() if k in known}) for d in _read_jsonl(path)]
    except TypeError as exc:
        raise ShardError(f"{path}: bad record ({exc})") from None


def read_failures(root: str | os.PathLike) -> list[Failure]:
    """Every photo that could not be used, in the order they failed."""
    return [Failure(d.get("key", ""), d.get("source", ""), d.get("reason", ""))
            for d in _read_jsonl(Path(root) / "failures.jsonl")]


def write_meta(root: Path, meta: dict[str, Any]) -> None:
    atomic_write_json(root / "meta.json", meta, indent=1)


def write_jsonl(path: Path, items: list) -> None:
    """Rewrite ``path`` atomically with one ``item.to_json()`` per line."""
    atomic_write_text(path, "".join(item.to_json() + "\n" for item in items))


def write_shard(root: Path, index: int, images: np.ndarray, landmarks: np.ndarray, attention: np.ndarray) -> Path:
    """Write (or replace) one shard atomically; arrays as in :data:`ARRAYS` with N rows each."""
    arrays = {"images": images, "landmarks": landmarks, "attention": attention}
    n = len(images)
    for name, (shape, dtype) in ARRAYS.items():
        a = arrays[name]
        if a.shape != (n, *shape) or a.dtype != dtype:
            raise ValueError(f"shard {index}: {name} is {a.dtype}{a.shape}, expected {dtype}{(n, *shape)}")
    dst = shard_path(root, index)
    with atomic_path(dst) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    return dst


_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header (30 bytes)


def open_npz(path: str | os.PathLike, mmap: bool = True) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``: read-only memory maps for uncompressed members (``np.savez``),
    loaded arrays for compressed ones or when ``mmap`` is False. ShardError (one line) if unreadable."""
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
        with open(path, "rb") as fh:
            for info in infos:
                name = info.filename.removesuffix(".npy")
                if not mmap or info.compress_type != zipfile.ZIP_STORED:
                    with zipfile.ZipFile(path) as zf, zf.open(info) as member:
                        out[name] = np.lib.format.read_array(member, allow_pickle=False)
                    continue
                fh.seek(info.header_offset)
                header = _LOCAL_HEADER.unpack(fh.read(_LOCAL_HEADER.size))
                if header[0] != b"PK\x03\x04":
                    raise ValueError(f"bad zip header for {info.filename}")
                fh.seek(info.header_offset + _LOCAL_HEADER.size + header[-2] + header[-1])
                version = np.lib.format.read_magic(fh)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(fh)
                if dtype.hasobject:
                    raise ValueError(f"{info.filename} holds Python objects")
                if int(np.prod(shape)) == 0:
                    out[name] = np.zeros(shape, dtype)
                    continue
                out[name] = np.memmap(path, dtype=dtype, mode="r", offset=fh.tell(), shape=shape,
                                      order="F" if fortran else "C")
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ShardError(f"{path}: unreadable shard ({exc})") from None
    return out


class ShardDataset(Dataset):
    """Aligned faces of a shards folder as a torch dataset.

    ``split``: "train", "val" or "all". Item ``i`` is a dict: ``image`` float32 (3,224,224) RGB in
    [0, 1]; ``landmarks`` float32 (68,2) crop pixels; ``attention`` float32 (1,224,224) in [0, 1]
    (stored in steps of 1/255); ``person`` int, the index of the photo's person in :attr:`people`
    (every person of the folder, sorted, whatever the split); ``key`` str, the photo's stable id.

    Shards are memory-mapped on first use, per process (so DataLoader workers each map their own).
    """

    def __init__(self, root: str | os.PathLike, split: Literal["train", "val", "all"] = "train",
                 uint8: bool = False) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)} (got {split!r})")
        self.root = Path(root)
        self.meta = read_meta(self.root)
        self.split = split
        self.uint8 = uint8
        """Items keep ``image`` and ``attention`` as stored (uint8, 0-255): a quarter of the bytes
        through the loader's workers and the upload, converted on the device (:func:`photos_to_float`)."""
        records = read_records(self.root)
        self.people: list[str] = sorted({r.person for r in records})
        """Every person label of the folder, sorted; ``item["person"]`` indexes it."""
        self._person_index = {p: i for i, p in enumerate(self.people)}
        self.records: list[ShardRecord] = [r for r in records if split == "all" or r.split == split]
        """The photos of this split, in the order they were written."""
        self._maps: dict[int, dict[str, np.ndarray]] = {}

    @property
    def keys(self) -> list[str]:
        """The stable id of each item, in item order."""
        return [r.key for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_maps"] = {}  # memory maps are re-opened in each worker, never pickled
        return state

    def arrays(self, shard: int) -> dict[str, np.ndarray]:
        """The (memory-mapped) arrays of shard ``shard``."""
        if shard not in self._maps:
            self._maps[shard] = open_npz(shard_path(self.root, shard))
        return self._maps[shard]

    def raw(self, index: int) -> tuple[ShardRecord, np.ndarray, np.ndarray, np.ndarray]:
        """``(record, image uint8 (224,224,3), landmarks float32 (68,2), attention uint8 (224,224))``."""
        r = self.records[index]
        a = self.arrays(r.shard)
        if r.row >= len(a["images"]):
            raise ShardError(f"{shard_path(self.root, r.shard)}: has {len(a['images'])} rows, "
                             f"records.jsonl wants row {r.row} ({r.key})")
        return r, np.array(a["images"][r.row]), np.array(a["landmarks"][r.row]), np.array(a["attention"][r.row])

    def __getitem__(self, index: int) -> dict[str, Any]:
        r, image, landmarks, attention = self.raw(index)
        image_t, attention_t = torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(attention)[None]
        if not self.uint8:
            image_t, attention_t = image_t.float().div_(255.0), attention_t.float().div_(255.0)
        return {
            "image": image_t,
            "landmarks": torch.from_numpy(landmarks.astype(np.float32, copy=False)),
            "attention": attention_t,
            "person": self._person_index[r.person],
            "key": r.key,
        }


def photos_to_float(batch: dict[str, Any], device: torch.device | str | None = None) -> dict[str, Any]:
    """A batch of :class:`ShardDataset` items on ``device`` with float32 ``image``, ``landmarks``
    and ``attention`` (images and attention in [0, 1]), whether the items were uint8 or float;
    the other entries as they are."""
    out = dict(batch)
    for k in ("image", "landmarks", "attention"):
        t = batch.get(k)
        if isinstance(t, torch.Tensor):
            t = t.to(device, non_blocking=True) if device is not None else t
            out[k] = t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()
    return out


__all__ = ["ARRAYS", "CROP_SIZE", "FORMAT", "Failure", "ShardDataset", "ShardError", "ShardRecord", "VERSION",
           "open_npz", "photos_to_float", "read_failures", "read_meta", "read_records", "shard_path", "write_jsonl",
           "write_meta", "write_shard"]
