"""Read ICT-FaceKit (MIT licence) from a folder, a tar/zip archive or a download, and cache a
compact model file (``.npz``) under the user cache folder.

ICT ships its model as OBJ files in centimetres: a neutral mesh, 100 identity meshes
(``identityNNN = neutral + mode_NNN``, modes scaled so coefficients are ~N(0,1)) and 53
ARKit-named expression blendshapes (``expr = neutral + delta``). The cache holds the mean shape
and the first ``N_ID`` identity modes and all expressions as offsets, in **millimetres**.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tarfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from facerecon.assets import cache_dir, shared_path
from facerecon.atomic import atomic_path

#: Where users outside this environment get the kit (the repository's archive).
ICT_URL = "https://github.com/ICT-VGL/ICT-FaceKit/archive/refs/heads/master.zip"
#: Bumped whenever the cache content changes, so stale caches are rebuilt.
BUILD_VERSION = 4
N_ID = 80
CM_TO_MM = 10.0

#: Vertex ranges of the kit's geometry parts (inclusive start, exclusive end), from its README.
PARTS: dict[str, tuple[int, int]] = {
    "face": (0, 9409),
    "face_narrow": (0, 6706),
    "head_neck": (9409, 11248),
    "mouth_socket": (11248, 13294),
    "eye_socket_left": (13294, 13678),
    "eye_socket_right": (13678, 14062),
    "gums_tongue": (14062, 17039),
    "teeth": (17039, 21451),
    "eyeball_left": (21451, 23021),
    "eyeball_right": (23021, 24591),
    "iris_left": (22221, 23021),
    "iris_right": (23791, 24591),
}


class FaceModelSourceError(RuntimeError):
    """The face model files could not be found or read."""


def _file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download_ict(url: str = ICT_URL, dest_dir: Path | None = None) -> Path:
    """Download the ICT-FaceKit archive to ``dest_dir`` (default: the cache) and return its path.

    Any URL ``urllib`` opens works, including ``file://`` (used by the tests). The file is
    written to a temporary name and renamed, so an interrupted download leaves nothing behind.
    """
    dest_dir = Path(dest_dir) if dest_dir else cache_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = Path(urllib.parse.urlparse(url).path).name or "ict-facekit.zip"
    dest = dest_dir / f"ict-facekit-{name}"
    if dest.exists():
        return dest
    with atomic_path(dest) as tmp, urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
        shutil.copyfileobj(resp, out, 1 << 20)
    return dest


def find_source(path: str | os.PathLike | None = None, allow_download: bool = True) -> Path:
    """Locate the ICT-FaceKit files, in this order: ``path``; ``$FACERECON_ICT``; the shared
    archive beside the checkout; a download of the repository archive (cached). ``path`` and
    ``$FACERECON_ICT`` may also name a model cache ``.npz`` built from the kit (another
    machine's), used as it is."""
    for cand, what in ((path, "given path"), (os.environ.get("FACERECON_ICT"), "$FACERECON_ICT")):
        if cand:
            p = Path(cand).expanduser()
            if not p.exists():
                raise FaceModelSourceError(f"{p}: ICT-FaceKit not found ({what} does not exist)")
            return p
    shared = shared_path("facemodel", "ict-facekit-facexmodel.tar.xz")
    if shared is not None:
        return shared
    if not allow_download:
        raise FaceModelSourceError(
            "ICT-FaceKit not found: pass a path, set $FACERECON_ICT, or allow the download"
        )
    return download_ict()


def _iter_source(src: Path) -> Iterator[tuple[str, bytes]]:
    """Yield (name relative to the kit root, bytes) for FaceXModel files and the README."""

    def rel(name: str) -> str | None:
        parts = name.replace("\\", "/").split("/")
        if "FaceXModel" in parts:
            i = parts.index("FaceXModel")
            return "/".join(parts[i:])
        if parts[-1] in ("README.md", "LICENSE") and len(parts) <= 2:
            return parts[-1]
        return None

    if src.is_dir():
        root = src.parent if src.name == "FaceXModel" else src
        for p in sorted(root.rglob("*")):
            if p.is_file() and (r := rel(str(p.relative_to(root)))):
                yield r, p.read_bytes()
    elif zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as zf:
            for info in zf.infolist():
                if not info.is_dir() and (r := rel(info.filename)):
                    yield r, zf.read(info)
    else:
        try:
            tf = tarfile.open(src, "r:*")
        except (tarfile.TarError, OSError) as exc:
            raise FaceModelSourceError(f"{src}: not a folder, zip or tar archive ({exc})") from exc
        with tf:
            for member in tf:  # streamed: compressed tars are read once, front to back
                if member.isfile() and (r := rel(member.name)):
                    f = tf.extractfile(member)
                    if f is not None:
                        yield r, f.read()


def parse_obj(data: bytes) -> dict[str, np.ndarray]:
    """Parse an OBJ's vertices (``v``), texture coordinates (``vt``) and polygon faces.

    Returns ``v`` (N,3), ``vt`` (T,2), and for faces ``f``/``ft`` as lists of index tuples
    (0-based). Only what ICT uses is supported (polygons with ``v/vt`` or ``v`` indices).
    """
    text = data.decode("utf-8", errors="replace")
    v_lines, vt_lines, faces, faces_t = [], [], [], []
    for line in text.splitlines():
        if line.startswith("v "):
            v_lines.append(line[2:])
        elif line.startswith("vt "):
            vt_lines.append(line[3:])
        elif line.startswith("f "):
            idx = [tok.split("/") for tok in line[2:].split()]
            faces.append(tuple(int(t[0]) - 1 for t in idx))
            if all(len(t) > 1 and t[1] for t in idx):
                faces_t.append(tuple(int(t[1]) - 1 for t in idx))
    v = np.array(" ".join(v_lines).split(), dtype=np.float64).reshape(-1, 3)
    vt = np.array(" ".join(vt_lines).split(), dtype=np.float64).reshape(-1, 2) if vt_lines else np.zeros((0, 2))
    return {"v": v, "vt": vt, "f": faces, "ft": faces_t}  # type: ignore[dict-item]


def _triangulate(polys: list[tuple[int, ...]]) -> np.ndarray:
    """Fan-split polygons into triangles, keeping the winding (counter-clockwise = front)."""
    tris = [(p[0], p[i], p[i + 1]) for p in polys for i in range(1, len(p) - 1)]
    return np.asarray(tris, dtype=np.int64)


def _parse_jawlines(readme: str) -> dict[str, np.ndarray]:
    """Read the moving jaw-line vertex lists from the kit's README (empty dict if absent)."""
    out: dict[str, np.ndarray] = {}
    keys = {
        "Right jawline": "jaw_right",
        "Left jawline": "jaw_left",
        "Right extended jawline": "jaw_right_ext",
        "Left extended jawline": "jaw_left_ext",
    }
    for title, key in keys.items():
        m = re.search(re.escape(title) + r"[^:\n]*:\s*\n\s*([0-9,\s]+)", readme)
        if m:
            out[key] = np.array([int(x) for x in re.findall(r"\d+", m.group(1))], dtype=np.int64)
    return out


def build_arrays(src: Path) -> dict[str, np.ndarray]:
    """Read every needed file of the kit at ``src`` into the arrays of the compact model."""
    neutral = None
    identities: dict[int, np.ndarray] = {}
    expressions: dict[str, np.ndarray] = {}
    indices = None
    readme = ""
    licence = ""
    for name, data in _iter_source(src):
        base = name.split("/")[-1]
        if base == "generic_neutral_mesh.obj":
            neutral = parse_obj(data)
        elif m := re.fullmatch(r"identity(\d{3})\.obj", base):
            if int(m.group(1)) < N_ID:
                identities[int(m.group(1))] = parse_obj(data)["v"]
        elif base == "vertex_indices.json":
            indices = json.loads(data)
        elif base == "README.md" and "/" not in name:
            readme = data.decode("utf-8", errors="replace")
        elif base == "LICENSE" and "/" not in name:
            licence = data.decode("utf-8", errors="replace")
        elif base.endswith(".obj"):
            expressions[base[:-4]] = parse_obj(data)["v"]
    if neutral is None or indices is None:
        raise FaceModelSourceError(f"{src}: no FaceXModel/generic_neutral_mesh.obj or vertex_indices.json")
    missing_id = [k for k in range(N_ID) if k not in identities]
    names = list(indices["expressions"])
    missing_exp = [n for n in names if n not in expressions]
    if missing_id or missing_exp:
        raise FaceModelSourceError(
            f"{src}: incomplete kit (missing identity modes {missing_id[:5]}, expressions {missing_exp[:5]})"
        )
    v0 = neutral["v"]
    n_v = len(v0)
    for what, arr in [*((f"identity{k:03d}", a) for k, a in identities.items()), *expressions.items()]:
        if arr.shape != v0.shape:
            raise FaceModelSourceError(f"{src}: {what}.obj has {len(arr)} vertices, neutral has {n_v}")
    polys, polys_t = neutral["f"], neutral["ft"]
    faces = _triangulate(polys)
    faces_uv = _triangulate(polys_t) if len(polys_t) == len(polys) else np.zeros((0, 3), np.int64)
    uv = np.zeros((n_v, 2), np.float64)
    if len(faces_uv):
        uv[faces.ravel()] = neutral["vt"][faces_uv.ravel()]
    arrays = {
        "mean": (v0 * CM_TO_MM).astype(np.float32),
        "id_basis": np.stack([(identities[k] - v0) * CM_TO_MM for k in range(N_ID)]).astype(np.float32),
        "exp_basis": np.stack([(expressions[n] - v0) * CM_TO_MM for n in names]).astype(np.float32),
        "exp_names": np.array(names),
        "faces": faces,
        "uv_coords": neutral["vt"].astype(np.float32),
        "faces_uv": faces_uv,
        "vertex_uv": uv.astype(np.float32),
        "landmark_idx": np.asarray(indices["idx_to_landmark_verts"], dtype=np.int64),
        "licence": np.array(licence),
    }
    for key, val in _parse_jawlines(readme).items():
        arrays[key] = val
    return arrays


def _cache_key(src: Path) -> str:
    st = src.stat()
    ident = f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}|v{BUILD_VERSION}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def _source_checksum(src: Path) -> str:
    if src.is_file():
        return _file_sha256(src)
    h = hashlib.sha256()
    root = src.parent if src.name == "FaceXModel" else src
    for p in sorted(root.rglob("*")):
        if p.is_file() and ("FaceXModel" in p.parts):
            h.update(str(p.relative_to(root)).encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def cached_model_file(src: Path, build_extra=None, progress: bool = True) -> Path:
    """Return the cache file for ``src``, building it on first use.

    ``build_extra(arrays) -> dict`` adds derived arrays (albedo basis, skin region) at build
    time. The file records the sha256 of the source as ``source_sha256``.
    """
    if is_model_cache(src):
        return check_model_cache(src)
    out = cache_dir() / f"ict-{_cache_key(src)}.npz"
    if out.exists():
        return out
    if progress:
        # stderr: a command's stdout may be a JSON report (evaluate --json)
        print(f"facerecon: building the face model cache from {src} (once)...", file=sys.stderr, flush=True)
    arrays = build_arrays(src)
    if build_extra is not None:
        arrays.update(build_extra(arrays))
    arrays["source_sha256"] = np.array(_source_checksum(src))
    arrays["source_path"] = np.array(str(src))
    arrays["build_version"] = np.array(BUILD_VERSION)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return out


def is_model_cache(src: Path) -> bool:
    """Whether ``src`` is a model cache file (``.npz``, e.g. one built on another machine) rather
    than the kit itself."""
    return src.is_file() and src.suffix == ".npz"


def check_model_cache(path: Path) -> Path:
    """``path`` when it is a model cache of this build version; FaceModelSourceError (one line,
    naming the file) otherwise."""
    try:
        with np.load(path, allow_pickle=False) as z:
            have = set(z.files)
            version = int(z["build_version"]) if "build_version" in have else None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise FaceModelSourceError(f"{path}: not a readable face model cache ({exc})") from exc
    missing = sorted({"mean", "id_basis", "exp_basis", "faces", "albedo_basis", "build_version"} - have)
    if missing:
        raise FaceModelSourceError(f"{path}: not a face model cache (no {', '.join(missing)})")
    if version != BUILD_VERSION:
        raise FaceModelSourceError(f"{path}: face model cache of build version {version}, this facerecon "
                                   f"reads {BUILD_VERSION}: build it again from the kit")
    return path


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Load every array of a cache file into memory (floating arrays as float32, whatever the
    file stores)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return {k: a.astype(np.float32) if a.dtype.kind == "f" and a.dtype != np.float32 else a
            for k, a in arrays.items()}


__all__ = [
    "ICT_URL",
    "PARTS",
    "FaceModelSourceError",
    "download_ict",
    "find_source",
    "build_arrays",
    "cached_model_file",
    "check_model_cache",
    "is_model_cache",
    "parse_obj",
    "read_npz",
]
