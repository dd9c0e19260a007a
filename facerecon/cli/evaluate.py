"""``facerecon evaluate WHAT``: accuracy instruments (scan RMSE, landmark NME)."""

from facerecon.cli import COMMANDS
from facerecon.cli._dispatch import register_group

EVALUATIONS = {
    "scan": ("facerecon.cli.evaluate_scan", "point-to-plane error of a predicted mesh against a 3D scan (mm)"),
    "landmarks": ("facerecon.cli.evaluate_landmarks", "68-point NME against 300-W .pts files"),
}


def register(subparsers) -> None:
    register_group(subparsers, "evaluate", COMMANDS["evaluate"], EVALUATIONS)
