"""``facerecon serve``: a local web page to drop photos, watch the fit, turn the face in 3D and
download the files (needs the ``web`` extra: ``pip install facerecon[web]``)."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from facerecon.cli import COMMANDS
from facerecon.cli.engine_args import add_fitting_arguments, fit_config
from facerecon.config import add_arguments, from_args
from facerecon.pipeline import default_engine
from facerecon.web.config import WebConfig

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def register(subparsers) -> None:
    """Add the ``serve`` sub-command."""
    p = subparsers.add_parser(
        "serve", help=COMMANDS["serve"],
        description="Serve a web page on which photos (or a video) are dropped, fitted one at a time "
                    "in the background with progress shown, and each result shown as a textured 3D "
                    "face with its overlay, pose and fit error and the files to download. Uploads and "
                    "results live in a temporary folder per page, deleted when the page closes, after "
                    "--session-minutes unseen, and when the server stops. The page needs no internet.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on. WARNING: anything other than 127.0.0.1/localhost (e.g. "
                        "0.0.0.0) lets every machine that can reach this one upload photos and run "
                        "fits here, with no login and no encryption")
    p.add_argument("--port", type=int, default=7860, help="TCP port")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    add_arguments(p.add_argument_group("limits"), WebConfig)
    add_fitting_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from facerecon.cli import UserError

    try:
        import uvicorn

        from facerecon.web.app import create_app
    except ModuleNotFoundError as exc:
        raise UserError(f"the web page needs the 'web' extra ({exc.name} is missing): "
                        "pip install 'facerecon[web]'") from None
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda asked for, but torch sees no CUDA device")
    config = from_args(WebConfig, args)
    if config.max_files < 1 or config.max_sessions < 1 or config.video_frames < 1:
        raise UserError("--max-files, --max-sessions and --video-frames must be at least 1")
    local = is_loopback(args.host)
    allowed = ["127.0.0.1", "localhost", "[::1]", "::1"] if local else None
    engine = default_engine()[0]  # the page runs the default engine
    app = create_app(config, fit_config=fit_config(args, engine), joint_config=fit_config(args, engine, joint=True),
                     device=args.device, allowed_hosts=allowed)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"facerecon serve: open http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else shown}:{args.port}/ "
          "(Ctrl+C stops the server and deletes every upload and result)", file=sys.stderr)
    if not local:
        print(f"facerecon serve: WARNING: listening on {args.host}: anyone who can reach this machine can "
              "upload photos and use its CPU; there is no login and no encryption", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
