"""``facerecon evaluate landmarks``: 68-point NME against 300-W ``.pts`` files, of the dlib detector
or of the fitted model's projected landmarks (``--source fit``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from facerecon.assets import shared_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: the folder of images + .pts, JSON output, a limit on the number of images."""
    default = shared_path("faces", "300w", "test")
    parser.add_argument("--images", type=Path, default=default,
                        help="folder of images with same-named .pts files")
    parser.add_argument("--json", action="store_true", help="print a JSON report (with per-image NME)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images by name")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--source", choices=["detector", "fit"], default="detector",
                        help="detector: dlib's 68 points; fit: the fitted face model's landmarks, projected")
    parser.add_argument("--device", default="cpu", help="with --source fit: cpu, cuda or cuda:N")
    from facerecon.cli.engine_args import add_engine_arguments, add_fitting_arguments

    add_engine_arguments(parser.add_argument_group("engine (with --source fit; --eye-spread-limit with either)"))
    add_fitting_arguments(parser, "fitting (with --source fit)")


def run(args: argparse.Namespace) -> int:
    """Evaluate and print NME (eyes, box), failure rate and detection rate; 0 on success."""
    from facerecon.cli import UserError
    from facerecon.evaluation.landmarks import evaluate_folder, labelled_images

    folder = args.images
    if folder is None:
        raise UserError("no --images folder given and ../shared/faces/300w/test was not found")
    if not Path(folder).is_dir():
        raise UserError(f"{folder}: not a folder")
    if not labelled_images(folder):
        raise UserError(f"{folder}: no images with .pts landmark files")
    if args.limit is not None and args.limit <= 0:
        raise UserError("--limit must be positive")
    predictor = None
    if args.source == "detector":
        from facerecon.cli.engine_args import detector_option

        predictor = detector_option(args)  # None: the default detector
    if args.source == "fit":
        from facerecon.cli.engine_args import engine_options, fit_config
        from facerecon.imageio import NoFaceError
        from facerecon.pipeline import FaceReconstructor

        options = engine_options(args)
        recon = FaceReconstructor(device=args.device, config=fit_config(args, options["engine"]), **options)

        def predictor(image):
            try:
                return recon(image)[0].landmarks_fit
            except NoFaceError:
                return None

    report = evaluate_folder(folder, predictor=predictor, limit=args.limit,
                             progress=not args.no_progress and not args.json)
    if args.json:
        doc = report.to_dict()
        doc = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in doc.items()}
        json.dump(doc, sys.stdout, indent=1)
        print()
    else:
        print(report.summary())
    return 0
