"""The engine options shared by every command that reconstructs (``reconstruct``, ``evaluate
landmarks --source fit``, the accuracy benchmarks): fitter, R-Net alone, R-Net refined, or the
fitter with R-Net's prediction as its prior."""

from __future__ import annotations

import argparse
from pathlib import Path

from facerecon.config import add_arguments, from_args
from facerecon.fitting.engine import FitConfig
from facerecon.imageio.detect import EYE_SPREAD_LIMIT
from facerecon.imageio.focal import DEFAULT_LENS
from facerecon.pipeline import (DEFAULT_ENGINE, DEFAULT_REFINE, ENGINE_FIT_DEFAULTS, ENGINES, default_engine,
                                engine_config, engine_defaults_help, shipped_model)


def add_engine_arguments(group: argparse._ActionsContainer) -> None:
    """--engine, --rnet, --refine."""
    group.add_argument("--engine", choices=ENGINES, default=None,
                       help=f"default {DEFAULT_ENGINE} (fit where the shipped R-Net is missing). fit: the "
                            "fitter alone (PnP pose, landmark stage, full stage); rnet: the R-Net "
                            "regressor's prediction alone (one forward pass per batch, no optimisation; needs "
                            "--rnet); rnet+fit: R-Net's prediction refined by --refine fitter steps; rnet-prior: the "
                            "whole fitter with its identity and albedo prior centred on R-Net's prediction "
                            "instead of the mean face")
    group.add_argument("--rnet", type=Path, default=None, metavar="PATH",
                       help="R-Net checkpoint (from facerecon train) for --engine rnet, rnet+fit and rnet-prior; "
                            "default: the model shipped with facerecon (MODEL_CARD.md)")
    group.add_argument("--refine", type=int, default=None, metavar="N",
                       help="fitter steps after R-Net's prediction with --engine rnet+fit, in all (a quarter "
                            f"landmark-stage, the rest full-stage steps); {DEFAULT_REFINE} when not given")
    group.add_argument("--eye-spread-limit", type=float, default=None, metavar="F",
                       help="complete dlib's eye and brow points from the other points by a point model where "
                            "they spread over the 27 jittered boxes by more than F of the eye distance (thick "
                            f"glasses frames); 0 turns it off; default {EYE_SPREAD_LIMIT}")
    group.add_argument("--focal-35mm", default=None, metavar="MM|exif|none",
                       help="the photos' lens as a 35 mm-equivalent focal length in mm (26: a phone's main "
                            "camera): each face is fitted through its photo's own camera, at its distance in mm; "
                            "exif: each photo's EXIF where it records its lens; none: assume a face about 1 m "
                            "away (on close-up renders the true lens brought the shape no closer to the scan: "
                            f"BENCHMARKS.md, Photos taken close up); default {DEFAULT_LENS}")


def engine_options(args: argparse.Namespace) -> dict:
    """``engine``, ``rnet`` and ``refine`` (and ``preparer`` where --eye-spread-limit or
    --focal-35mm is given) for FaceReconstructor from the options; a UserError (one line) for
    combinations that cannot run."""
    out = _engine_options(args)
    detector = detector_option(args)
    lens = lens_option(args)
    if detector is not None or lens is not None:
        from facerecon.imageio import Preparer

        out["preparer"] = Preparer(detector=detector, focal_35mm=DEFAULT_LENS if lens is None else lens)
    return out


def lens_option(args: argparse.Namespace) -> float | str | None:
    """--focal-35mm as Preparer takes it (a length in mm, "exif" or "none"); None where not given."""
    from facerecon.cli import UserError

    value = getattr(args, "focal_35mm", None)
    if value is None:
        return None
    if str(value).lower() in ("exif", "none"):
        return str(value).lower()
    try:
        mm = float(value)
    except ValueError:
        raise UserError(f"--focal-35mm must be a length in mm, exif or none (got {value!r})") from None
    if not 0 < mm < 10000:
        raise UserError(f"--focal-35mm must be a length in mm above 0 (got {value})")
    return mm


def detector_option(args: argparse.Namespace):
    """The FaceDetector of --eye-spread-limit, or None where it is not given (the default detector)."""
    from facerecon.cli import UserError

    limit = getattr(args, "eye_spread_limit", None)
    if limit is None:
        return None
    if limit < 0:
        raise UserError(f"--eye-spread-limit must be at least 0 (got {limit})")
    from facerecon.imageio.detect import FaceDetector

    return FaceDetector(eye_spread_limit=limit)


def _engine_options(args: argparse.Namespace) -> dict:
    from facerecon.cli import UserError

    engine, rnet, refine = args.engine, args.rnet, args.refine
    if engine is None:
        engine, why = default_engine(rnet)
        if why:
            import sys

            print(f"facerecon: {why}", file=sys.stderr)
    if engine == "fit":
        if rnet is not None:
            raise UserError("--rnet is only used with --engine rnet, rnet+fit or rnet-prior")
        if refine is not None:
            raise UserError("--refine is only used with --engine rnet+fit")
        return {"engine": "fit"}
    if rnet is None:
        rnet, missing = shipped_model(engine)
        if rnet is None:
            raise UserError(f"--engine {engine} needs --rnet PATH: {missing}")
    if not rnet.is_file():
        raise UserError(f"--rnet {rnet}: no such file")
    if refine is not None and engine != "rnet+fit":
        raise UserError("--refine is only used with --engine rnet+fit")
    if refine is not None and refine < 0:
        raise UserError(f"--refine must be at least 0 (got {refine})")
    out = {"engine": engine, "rnet": rnet}
    if engine == "rnet+fit":
        out["refine"] = DEFAULT_REFINE if refine is None else refine
    return out


def engine_record(options: dict) -> dict | None:
    """What params.json and report.json record of the engine (None for the plain fit)."""
    if options["engine"] == "fit":
        return None
    record = {"engine": options["engine"], "rnet": str(options["rnet"])}
    if "refine" in options:
        record["refine"] = options["refine"]
    return record


def add_fitting_arguments(parser: argparse.ArgumentParser, title: str = "fitting") -> None:
    """FitConfig's options in a group whose description says which defaults an engine changes."""
    changes = "; ".join(f"engine {e}: {engine_defaults_help(e)}, in the joint fit of a person's photos "
                        f"{engine_defaults_help(e, joint=True) or 'none'}" for e in ENGINES if ENGINE_FIT_DEFAULTS.get(e))
    description = (f"The defaults shown are the fitter's own (engine fit). Other engines change some of them "
                   f"({changes}); an option given here wins.") if changes else None
    add_arguments(parser.add_argument_group(title, description), FitConfig)


def fit_config(args: argparse.Namespace, engine: str, joint: bool = False) -> FitConfig:
    """The fitting configuration of the options: ``engine``'s defaults (:func:`engine_config`; with
    ``joint``, those of the joint fit of a person's photos) with the options given on the command
    line."""
    return from_args(FitConfig, args, base=engine_config(engine, joint))
