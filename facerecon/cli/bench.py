"""``facerecon bench WHAT``: speed and memory benchmarks (figures go to BENCHMARKS.md)."""

from facerecon.cli import COMMANDS
from facerecon.cli._dispatch import register_group

BENCHES = {
    "render": ("facerecon.cli.bench_render", "rasterize + shade forward/backward time per image"),
    "input": ("facerecon.cli.bench_input", "photo loading, detection, landmarks, alignment: time by stage"),
    "fit": ("facerecon.cli.bench_fit", "single-image fitting time per photo"),
    "rnet": ("facerecon.cli.bench_rnet", "R-Net from aligned crop to mesh: ms per photo by batch size"),
}


def register(subparsers) -> None:
    register_group(subparsers, "bench", COMMANDS["bench"], BENCHES)
