"""``facerecon reconstruct PHOTO... -o OUT``: one textured 3D face per photo."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from facerecon.config import add_arguments, from_args
from facerecon.fitting.engine import FitConfig

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reconstruct", help="reconstruct 3D faces from photos",
        description="Fit the face model to each photo and write OUT/<photo stem>/: face.obj/.mtl/"
                    "_texture.png, face.ply, face.glb, overlay.png, params.json, landmarks.json; "
                    "and OUT/report.json listing every input with ok/failed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("photos", nargs="+", type=Path, help="photos, or folders of photos")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=8, help="faces fitted together")
    p.add_argument("--all-faces", action="store_true", help="every face of a photo, not only the largest")
    p.add_argument("--overwrite", action="store_true", help="replace existing results in OUT")
    p.add_argument("--texture-size", type=int, default=1024, help="UV texture size, pixels")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_arguments(p.add_argument_group("fitting"), FitConfig)
    p.set_defaults(func=run)


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Photos as given, folders expanded to their image files (sorted, not recursive)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file()))
        else:
            out.append(p)  # missing or bad files are reported per input
    return out


def output_names(inputs: list[Path]) -> list[str]:
    """A distinct folder name per input: the photo's stem, with -2, -3… on collisions."""
    seen: dict[str, int] = {}
    names = []
    for p in inputs:
        stem = p.stem or "photo"
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        names.append(stem if n == 1 else f"{stem}-{n}")
    return names


def _write_json_atomic(path: Path, doc) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from facerecon import __version__
    from facerecon.cli import UserError
    from facerecon.export.reconstruction import write_reconstruction
    from facerecon.facemodel import load_face_model
    from facerecon.pipeline import FaceReconstructor, FailedInput

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA device")
    config = from_args(FitConfig, args)
    inputs = expand_inputs(args.photos)
    if not inputs:
        raise UserError("no photos found in the given folders")
    out_root: Path = args.out
    out_root.mkdir(parents=True, exist_ok=True)
    names = output_names(inputs)
    recon = FaceReconstructor(device=args.device, config=config)
    head = load_face_model("head")
    report = {"facerecon": __version__, "device": args.device, "inputs": []}
    entries: dict[int, dict] = {}

    def fail(i: int, reason: str) -> None:
        entries[i] = {"input": str(inputs[i]), "status": "failed", "reason": reason}
        tqdm.write(f"facerecon reconstruct: {reason}", file=sys.stderr)

    todo = []
    for i, path in enumerate(inputs):
        target = out_root / names[i]
        if target.exists() and any(target.iterdir()) and not args.overwrite:
            fail(i, f"{path}: {target} already exists (use --overwrite to replace it)")
        else:
            todo.append(i)
    faces_of: dict[int, int] = {}
    t_last = time.perf_counter()
    with tqdm(total=len(inputs), initial=len(inputs) - len(todo), unit="photo", desc="reconstruct",
              disable=args.quiet, file=sys.stderr) as bar:
        for j, rec in recon.iter_reconstruct([inputs[i] for i in todo], args.batch_size, args.all_faces):
            i = todo[j]
            if isinstance(rec, FailedInput):
                fail(i, rec.reason)
                bar.update(1)
                continue
            now = time.perf_counter()
            seconds, t_last = now - t_last, now
            k = faces_of[i] = faces_of.get(i, 0) + 1
            folder = out_root / (names[i] if k == 1 else f"{names[i]}_face{k}")
            try:
                written = write_reconstruction(
                    folder, photo=rec.photo, aligned=rec.prepared, params=rec.params, face_model_head=head,
                    camera=recon.camera, landmarks_photo=rec.prepared.landmarks_photo, source_path=rec.source,
                    extra={"losses": rec.losses, "fit_config": asdict(config),
                           "landmarks_fit_photo": rec.landmarks_fit.tolist()},
                    texture_size=args.texture_size,
                )
            except OSError as exc:
                fail(i, f"{inputs[i]}: cannot write {folder}: {exc.strerror or exc}")
                continue
            e = entries.setdefault(i, {"input": str(inputs[i]), "status": "ok", "outputs": []})
            e["outputs"].append({"folder": str(folder), "files": sorted(Path(p).name for p in written.values()),
                                 "seconds": round(seconds, 3), "losses": rec.losses})
            if k == 1:
                bar.update(1)
    report["inputs"] = [entries[i] for i in sorted(entries)]
    ok = sum(e["status"] == "ok" for e in report["inputs"])
    failed = [e for e in report["inputs"] if e["status"] != "ok"]
    report["summary"] = {"ok": ok, "failed": len(failed)}
    _write_json_atomic(out_root / "report.json", report)
    print(f"reconstructed {ok} of {len(inputs)} photos into {out_root}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} failed:", file=sys.stderr)
        for e in failed:
            print(f"  {e['reason']}", file=sys.stderr)
    return 0 if ok else 1

