"""``facerecon synth``: write synthetic ground truth (Generate&Render faces, or real-scan photos).

Per sample: ``NNNNNN.png`` (224×224 image), ``NNNNNN.json`` (every coefficient, pose, light,
camera, 2D/3D landmarks, background source), ``NNNNNN.pts`` (300-W landmarks, so
``facerecon evaluate landmarks --images DIR`` runs on the folder) and ``NNNNNN.ply`` (the true
mesh, model space, mm). With ``--scan lee-perry-smith`` the mesh is the scan, written once as
``lee-perry-smith.ply``. ``synth.json`` records the command's settings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facerecon.cli import COMMANDS, UserError, int_at_least


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help=COMMANDS["synth"],
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--count", type=int, required=True, metavar="N", help="number of images")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same samples")
    p.add_argument("--start", type=int, default=0, metavar="I", help="index of the first sample")
    p.add_argument("--scan", choices=["lee-perry-smith"],
                   help="render this real scan instead of random model faces")
    p.add_argument("--yaws", default="0,20,-20,40,-40", metavar="DEG,...",
                   help="with --scan: view yaws in degrees, cycled over the images")
    p.add_argument("--max-yaw", type=float, default=60.0, metavar="DEG")
    p.add_argument("--max-pitch", type=float, default=None, metavar="DEG",
                   help="default 20 (8 with --scan)")
    p.add_argument("--max-roll", type=float, default=None, metavar="DEG",
                   help="default 15 (5 with --scan)")
    p.add_argument("--id-scale", type=float, default=1.0, help="identity coefficients ~ N(0,1) x this")
    p.add_argument("--tex-scale", type=float, default=1.0, help="albedo coefficients ~ N(0,1) x this")
    p.add_argument("--max-expressions", type=int, default=4, metavar="K",
                   help="up to K blendshapes active per face, weights in [0,1]")
    p.add_argument("--background", choices=["photos", "noise", "grey"], default="photos",
                   help="photos: crops of ../shared/faces/300w outside the annotated faces")
    p.add_argument("--size", type=int, default=224, metavar="PX", help="image size")
    p.add_argument("--frame-scale", type=float, default=1.0, metavar="F",
                   help="face size relative to the pipeline's aligned crops (1: R-Net input "
                        "framing; about 0.6 leaves room around the face for a detector)")
    p.add_argument("--region", default="fit", help="face-model region rendered and saved")
    p.add_argument("--skin-samples", metavar="DIR", default=None,
                   help="paint faces with real skin: a folder of de-lit photo albedo samples "
                        "(tools/albedo_samples.py) instead of the albedo model's basis")
    p.add_argument("--distance", type=float, nargs=2, metavar=("MIN", "MAX"), default=None,
                   help="camera distance of each face, mm, drawn log-uniform in [MIN, MAX]; the focal "
                        "length follows so that the face keeps its size and only the perspective changes "
                        "(default: all from about 1 m, the pipeline's camera)")
    p.add_argument("--no-mesh", action="store_true", help="do not write the per-sample PLY meshes")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1 ...)")
    p.add_argument("--batch-size", type=int_at_least(1), default=16)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from facerecon.synthesis import SynthConfig, config_record, save_sample

    if args.count < 1:
        raise UserError(f"--count must be at least 1, got {args.count}")
    if args.size < 32 or args.batch_size < 1:
        raise UserError("--size must be at least 32 and --batch-size at least 1")
    if not 0.1 <= args.frame_scale <= 3.0:
        raise UserError(f"--frame-scale must be between 0.1 and 3, got {args.frame_scale}")
    if args.distance is not None and not 100.0 <= args.distance[0] <= args.distance[1]:
        raise UserError(f"--distance {args.distance[0]:g} {args.distance[1]:g}: need 100 <= MIN <= MAX (mm)")
    if args.distance is not None and args.scan is not None:
        raise UserError("--distance applies to model faces, not to --scan renders "
                        "(those take theirs in benchmarks/lps_realskin.py --distance)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise UserError(f"--device {args.device}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available on this machine")
    scan = args.scan is not None
    cfg = SynthConfig(size=args.size, focal=1015.0 * args.size / 224.0, id_scale=args.id_scale,
                      tex_scale=args.tex_scale, max_expressions=args.max_expressions,
                      max_yaw_deg=args.max_yaw,
                      max_pitch_deg=args.max_pitch if args.max_pitch is not None else (8.0 if scan else 20.0),
                      max_roll_deg=args.max_roll if args.max_roll is not None else (5.0 if scan else 15.0),
                      background=args.background, region=args.region, frame_scale=args.frame_scale,
                      skin_samples=args.skin_samples,
                      distance_mm=tuple(args.distance) if args.distance is not None else None)
    if args.skin_samples and not any(Path(args.skin_samples).glob("*.npz")):
        raise UserError(f"--skin-samples {args.skin_samples}: no albedo samples (*.npz) there")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{out}: cannot create folder ({exc.strerror})") from None
    manifest = {"command": "facerecon synth", "seed": args.seed, "start": args.start,
                "count": args.count, "config": config_record(cfg)}
    if scan:
        written = _run_scan(args, cfg, device, out, manifest)
    else:
        from facerecon.synthesis import generate
        from facerecon.facemodel import REGIONS, load_face_model

        if args.region not in REGIONS:
            raise UserError(f"--region {args.region}: choose from {', '.join(REGIONS)}")
        model = load_face_model(region=args.region, device=device)
        faces = model.faces.cpu().numpy()
        written = 0
        for sample in generate(args.count, args.seed, cfg, model=model, device=device,
                               batch_size=args.batch_size, start=args.start, progress=True):
            save_sample(sample, out, faces, model=model, mesh=not args.no_mesh)
            written += 1
    from facerecon.atomic import atomic_write_json

    manifest["written"] = written
    atomic_write_json(out / "synth.json", manifest)
    print(f"wrote {written} samples to {out}")
    return 0


def _run_scan(args, cfg, device, out: Path, manifest: dict) -> int:
    import numpy as np

    from facerecon.evaluation.scan import MeshError
    from facerecon.evaluation.scan_photos import generate_scan_photos, lee_perry_smith_in_model_frame
    from facerecon.atomic import atomic_write_bytes
    from facerecon.synthesis.records import mesh_ply_bytes, save_sample

    try:
        yaws = tuple(float(v) for v in args.yaws.split(",") if v.strip())
    except ValueError:
        raise UserError(f"--yaws {args.yaws!r}: expected comma-separated degrees") from None
    if not yaws:
        raise UserError("--yaws: give at least one view")
    try:
        scan = lee_perry_smith_in_model_frame()
    except MeshError as exc:
        raise UserError(str(exc)) from None
    mesh_name = f"{scan.name}.ply"
    atomic_write_bytes(out / mesh_name, mesh_ply_bytes(scan.vertices, scan.faces))
    manifest["scan"] = {"name": scan.name, "mesh": mesh_name, "frame": "face-model frame, mm",
                        "rotation_from_scan_frame": np.round(scan.rotation, 8).tolist(),
                        "translation_from_scan_frame_mm": np.round(scan.translation, 5).tolist(),
                        "landmarks_mm": np.round(scan.landmarks, 4).tolist(), "yaws_deg": list(yaws)}
    written = 0
    for sample in generate_scan_photos(args.count, args.seed, cfg, yaws=yaws,
                                       max_pitch_deg=cfg.max_pitch_deg, max_roll_deg=cfg.max_roll_deg,
                                       scan=scan, device=device, batch_size=args.batch_size,
                                       start=args.start, progress=True):
        save_sample(sample, out, scan.faces, mesh=False, extra={"mesh": mesh_name})
        written += 1
    return written
