"""``facerecon reconstruct PHOTO... -o OUT``: one textured 3D face per photo."""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from facerecon.cli import COMMANDS, int_at_least, multi
from facerecon.cli.engine_args import (add_engine_arguments, add_fitting_arguments, engine_options, engine_record,
                                       fit_config, lens_option)
from facerecon.fitting.engine import FitConfig
from facerecon.imageio.focal import DEFAULT_LENS
from facerecon.pipeline import DEFAULT_REFINE

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def register(subparsers) -> None:
    """Add the ``reconstruct`` sub-command."""
    p = subparsers.add_parser(
        "reconstruct", help=COMMANDS["reconstruct"],
        description="Fit the face model to each photo and write one folder per photo into OUT: "
                    "face.obj/.mtl/_texture.png, face.ply, face.glb, overlay.png, params.json, "
                    "landmarks.json; and OUT/report.json listing every input (ok/failed) with its "
                    "output folder and any notes (a face too small in the photo for detail). A photo "
                    "given directly goes to OUT/<stem>/; a photo found in a "
                    "folder goes to OUT/<its path below that folder, without suffix>/ (photos/alice/"
                    "frame.jpg given as photos/ -> OUT/alice/frame/). Names that still collide get "
                    "-2, -3, ... in input order; further faces (--all-faces) go to <name>_face2/, ... "
                    "An existing non-empty output folder is kept (and the photo reported failed) "
                    "unless --overwrite.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("photos", nargs="+", type=Path,
                   help="photos, or folders searched recursively for photos "
                        f"({' '.join(sorted(IMAGE_SUFFIXES))}; hidden files and folders skipped)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int_at_least(1), default=8, help="faces fitted together")
    p.add_argument("--all-faces", action="store_true", help="every face of a photo, not only the largest")
    p.add_argument("--overwrite", action="store_true", help="replace existing results in OUT")
    p.add_argument("--texture-size", type=int_at_least(64), default=1024, help="UV texture size, pixels (64 or more)")
    p.add_argument("--units", choices=("m", "mm"), default="m",
                   help="length unit of face.obj and face.ply (Blender and three.js read metres; face.glb is always m)")
    p.add_argument("--up", choices=("y", "z"), default="y",
                   help="up axis of face.obj and face.ply: y (glTF, three.js, MeshLab; Blender converts OBJ) "
                        "or z (for importers that convert no axes, such as Blender's PLY importer)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="only every N-th photo (sorted by path) from the I-th, so N jobs split the work; "
                        "output folders are as without --shard, the report is OUT/report-shard-I-of-N.json")
    engine = p.add_argument_group("engine")
    add_engine_arguments(engine)
    engine.add_argument("--ray", type=int, default=None, metavar="N",
                        help="spread the photos over N Ray workers (needs pip install 'facerecon[ray]'): a local "
                             "Ray instance, or the cluster at RAY_ADDRESS (then the photos, -o and --rnet must be "
                             "on a filesystem every node sees); each worker fits --batch-size faces at a time, on "
                             "one GPU with --device cuda, else on the CPUs of 'facerecon --threads N' (1 without it)")
    multi.add_arguments(p)
    add_fitting_arguments(p)
    p.set_defaults(func=run)




def build_reconstructor(args: argparse.Namespace, config: FitConfig, options: dict):
    """The FaceReconstructor of the options; a checkpoint it refuses becomes a UserError."""
    from facerecon.cli import UserError
    from facerecon.pipeline import FaceReconstructor

    try:
        return FaceReconstructor(device=args.device, config=config, **options,
                                 joint_config=fit_config(args, options["engine"], joint=True))
    except ValueError as exc:
        if options["engine"] == "fit":
            raise
        raise UserError(str(exc)) from None


@dataclass
class Found:
    """What one command-line path stands for: itself (a photo), or the photos of a folder."""

    given: Path
    """The path as given on the command line."""
    is_folder: bool
    photos: list[Path] = field(default_factory=list)
    """The photo itself, or the folder's photos (recursive, sorted)."""
    names: list[PurePosixPath] = field(default_factory=list)
    """Wanted output name per photo: its stem, or its path below the folder without suffix."""

    def summary(self) -> str:
        """One line for stderr, e.g. ``found 12 photos in photos/ (3 folders)``."""
        from facerecon.imageio.load import one_line

        where = one_line(os.path.join(str(self.given), ""))
        if not self.photos:
            return (f"{where}: no photos found (looked for {', '.join(sorted(IMAGE_SUFFIXES))} "
                    "in it and its subfolders)")
        n = len(self.photos)
        folders = len({p.parent for p in self.photos})
        text = f"found {n} photo{'s' if n != 1 else ''} in {where}"
        return text + (f" ({folders} folders)" if folders > 1 else "")


def _hidden(name: str) -> bool:
    return name.startswith(".")


def find_photos(folder: Path, exclude: Path | None = None) -> list[Path]:
    """Image files under ``folder``, recursively, sorted; hidden files/folders and ``exclude`` skipped."""
    skip = exclude.resolve() if exclude is not None else None
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not _hidden(d) and (skip is None or (here / d).resolve() != skip))
        found.extend(here / f for f in files
                     if not _hidden(f) and Path(f).suffix.lower() in IMAGE_SUFFIXES and (here / f).is_file())
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def expand_inputs(paths: list[Path], exclude: Path | None = None) -> list[Found]:
    """Each given path as photos with wanted output names (folders expanded recursively).

    Missing or unreadable files are kept as photos: they are reported per input later.
    ``exclude`` (the output folder) is never searched.
    """
    out: list[Found] = []
    for given in paths:
        if given.is_dir():
            photos = find_photos(given, exclude)
            names = [PurePosixPath(*p.relative_to(given).parts).with_suffix("") for p in photos]
            out.append(Found(given, True, photos, names))
        else:
            out.append(Found(given, False, [given], [PurePosixPath(given.stem or "photo")]))
    return out


def output_names(wanted: list[PurePosixPath]) -> list[str]:
    """A distinct output folder (relative to OUT, '/'-separated) per wanted name.

    A name that is already taken (compared case-insensitively) or that is a folder of another
    output (``alice`` beside ``alice/frame``) gets ``-2``, ``-3``… on its last part, in input order.
    """
    def key(name: str) -> str:
        return name.casefold()

    folders = {key(a.as_posix()) for w in wanted for a in w.parents if a.as_posix() != "."}
    taken: set[str] = set()
    names = []
    for w in wanted:
        base = w.as_posix() if w.name else "photo"
        name, n = base, 1
        while key(name) in taken or key(name) in folders:
            n += 1
            name = f"{base}-{n}"
        taken.add(key(name))
        names.append(name)
    return names


def _has_results(folder: Path, all_faces: bool) -> bool:
    """Whether ``folder`` (or, with ``all_faces``, one of its ``_faceN`` siblings) holds anything."""
    def nonempty(d: Path) -> bool:
        return d.exists() and (not d.is_dir() or any(d.iterdir()))

    if nonempty(folder):
        return True
    return all_faces and folder.parent.is_dir() and any(
        nonempty(d) for d in folder.parent.glob(glob.escape(folder.name) + "_face*"))


def _shard_spec(text: str | None) -> tuple[int, int] | None:
    """``--shard I/N`` as (I, N), None without it; a UserError (one line) when malformed."""
    if text is None:
        return None
    from facerecon.cli import UserError
    from facerecon.data.split import parse_shard_spec

    try:
        return parse_shard_spec(text)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Reconstruct every photo given; exit code 0 when at least one succeeded."""
    import torch
    from tqdm import tqdm

    from facerecon import __version__
    from facerecon.atomic import atomic_write_json
    from facerecon.cli import UserError
    from facerecon.export.reconstruction import write_reconstruction
    from facerecon.pipeline import FailedInput

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA device")
    out_root: Path = args.out
    if out_root.exists() and not out_root.is_dir():
        raise UserError(f"-o {out_root}: exists and is not a folder")
    shard = _shard_spec(args.shard)
    options = engine_options(args)
    config = fit_config(args, options["engine"])
    record = engine_record(options)
    if args.ray is not None:
        if args.ray < 1:
            raise UserError(f"--ray must be at least 1 (got {args.ray})")
        if args.multi or args.group or args.all_faces:
            raise UserError("--ray reconstructs the largest face of single photos; it does not work with "
                            "--multi, --group or --all-faces")
        if args.eye_spread_limit is not None:
            raise UserError("--eye-spread-limit is not passed to Ray workers (they use the default detection)")
    if args.multi or args.group:
        if args.multi and args.group:
            raise UserError("--multi and --group exclude each other")
        if shard is not None:
            raise UserError("--shard splits single photos; it does not work with --multi or --group")
        recon = build_reconstructor(args, config, options)
        return multi.run(args, recon, recon.face_model("head"), list(args.photos))
    found = expand_inputs(args.photos, exclude=out_root)
    inputs = [p for f in found for p in f.photos]
    empty = [f for f in found if f.is_folder and not f.photos]
    if not inputs:
        raise UserError("; ".join(f.summary() for f in empty) if empty else "no photos given")
    for f in found:
        if f.is_folder and f.photos:
            print(f"facerecon reconstruct: {f.summary()}", file=sys.stderr)
    names = output_names([n for f in found for n in f.names])
    if shard is not None:  # names come from all inputs, so every job gives a photo the same folder
        from facerecon.data.split import take_shard

        mine = take_shard(sorted(range(len(inputs)), key=lambda i: str(inputs[i])), shard)
        inputs, names = [inputs[i] for i in mine], [names[i] for i in mine]
        if not inputs:
            print(f"facerecon reconstruct: --shard {shard[0]}/{shard[1]}: no photo for this job", file=sys.stderr)
            return 0
    ray_run = None
    if args.ray is not None:
        try:
            import ray.data  # noqa: F401  (the pipeline imports it when it runs: fail here, before any work)

            from facerecon.scale.ray_pipeline import check_engine, reconstruct_dataset
        except ModuleNotFoundError as exc:
            if exc.name != "ray" and not (exc.name or "").startswith("ray."):
                raise
            raise UserError("--ray needs the 'ray' extra (ray is not installed): "
                            "pip install 'facerecon[ray]'") from None
        try:
            check_engine(options["engine"], options.get("rnet"), options.get("refine", DEFAULT_REFINE), config)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        ray_run = reconstruct_dataset
    else:
        recon = build_reconstructor(args, config, options)
        head = recon.face_model("head")
    out_root.mkdir(parents=True, exist_ok=True)
    report = {"facerecon": __version__, "device": args.device, "inputs": []}
    if record is not None:
        report["engine"] = record
    entries: dict[int, dict] = {}
    notes: list[str] = []  # one line per face worth a word (a small face), printed at the end
    folder_failures = [{"input": str(f.given), "status": "failed", "reason": f.summary()} for f in empty]
    for e in folder_failures:
        print(f"facerecon reconstruct: {e['reason']}", file=sys.stderr)

    def fail(i: int, reason: str) -> None:
        entries[i] = {"input": str(inputs[i]), "status": "failed", "output_folder": str(out_root / names[i]),
                      "reason": reason}
        tqdm.write(f"facerecon reconstruct: {reason}", file=sys.stderr)

    todo = []
    for i, path in enumerate(inputs):
        target = out_root / names[i]
        if not args.overwrite and _has_results(target, args.all_faces):
            fail(i, f"{path}: {target} already exists (use --overwrite to replace it)")
        else:
            todo.append(i)
    if ray_run is not None:
        done = ray_run([inputs[i] for i in todo], out_root, names=[names[i] for i in todo], fit_config=config,
                       num_workers=args.ray, device=args.device, batch_size=args.batch_size,
                       engine=options["engine"], rnet=options.get("rnet"),
                       refine=options.get("refine", DEFAULT_REFINE), texture_size=args.texture_size,
                       units=args.units, up=args.up, overwrite=True, progress=not args.quiet,
                       cpus_per_worker=getattr(args, "threads", None) or 1,
                       focal_35mm=lens_option(args) or DEFAULT_LENS)
        for i, e in zip(todo, done["inputs"]):  # folders named as the loop below names them
            folder = str(out_root / names[i])
            e = {**e, "input": str(inputs[i]), "output_folder": folder}
            for o in e.get("outputs", []):
                o["folder"] = folder
            entries[i] = e
    else:
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
                        camera=rec.camera or recon.camera, landmarks_photo=rec.prepared.landmarks_photo,
                        source_path=rec.source,
                        fitted_landmarks_photo_px=rec.landmarks_fit,
                        extra={"losses": rec.losses, "fit_config": asdict(config),
                               **({"engine": record} if record is not None else {})},
                        texture_size=args.texture_size, units=args.units, up=args.up,
                    )
                except OSError as exc:
                    fail(i, f"{inputs[i]}: cannot write {folder}: {exc.strerror or exc}")
                    if k == 1:
                        bar.update(1)
                    continue
                e = entries.setdefault(i, {"input": str(inputs[i]), "status": "ok",
                                           "output_folder": str(out_root / names[i]), "outputs": []})
                e["outputs"].append({"folder": str(folder), "files": sorted(Path(p).name for p in written.values()),
                                     "seconds": round(seconds, 3), "losses": rec.losses})
                note = rec.prepared.small_face_note()
                if note:
                    e["outputs"][-1]["notes"] = [note]
                    notes.append(f"{folder}: {note}")
                if k == 1:
                    bar.update(1)
    report["inputs"] = folder_failures + [entries[i] for i in sorted(entries)]
    ok = sum(e["status"] == "ok" for e in report["inputs"])
    failed = [e for e in report["inputs"] if e["status"] != "ok"]
    report["summary"] = {"ok": ok, "failed": len(failed)}
    report_name = "report.json" if shard is None else f"report-shard-{shard[0]}-of-{shard[1]}.json"
    atomic_write_json(out_root / report_name, report, indent=2)
    print(f"reconstructed {ok} of {len(inputs)} photos into {out_root}", file=sys.stderr)
    if notes:
        print(f"{len(notes)} note{'s' if len(notes) > 1 else ''}:", file=sys.stderr)
        for n in notes:
            print(f"  {n}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} failed:", file=sys.stderr)
        for e in failed:
            print(f"  {e['reason']}", file=sys.stderr)
    return 0 if ok else 1
