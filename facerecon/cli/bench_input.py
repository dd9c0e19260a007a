"""``facerecon bench input``: time per photo of each input stage, and detection rate per folder.

Stages: load (decode + EXIF + RGB), detect (``FaceDetector.find_faces``: HOG boxes with upsampling
retries, the CNN detector where no HOG box is confident, 68-point landmarks of each face), align
(similarity fit + 224 warp), skin (attention map of the crop).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from facerecon.assets import shared_path
from facerecon.cpus import available_cpus

STAGES = ("load", "detect", "align", "skin")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: folders of photos, a per-folder limit, JSON output."""
    parser.add_argument("--images", type=Path, nargs="+", default=None,
                        help="folders of photos (searched recursively); "
                             "default: ../shared/faces/lfw and ../shared/faces/utkface")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most N photos per folder, evenly spaced over the sorted list")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def list_images(folder: Path, limit: int | None) -> list[Path]:
    """Image files under ``folder`` (sorted); ``limit`` picks that many, evenly spaced."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if limit is not None and len(files) > limit:
        idx = np.linspace(0, len(files) - 1, limit).round().astype(int)
        files = [files[i] for i in idx]
    return files


def bench_folder(folder: Path, files: list[Path], detector, skin, progress: bool) -> dict:
    """Run every stage on every photo; return timings (seconds per photo) and counts."""
    from tqdm import tqdm

    from facerecon.imageio.align import align
    from facerecon.imageio.load import ImageError, load_image

    times: dict[str, list[float]] = {s: [] for s in STAGES}  # wall-clock seconds
    cpu: dict[str, list[float]] = {s: [] for s in STAGES}  # process CPU seconds
    failures: list[str] = []
    n_faces = n_detected = n_cnn = 0
    bar = tqdm(files, desc=folder.name, unit="photo", file=sys.stderr, disable=not progress)
    clock = time.perf_counter
    cpu_clock = time.process_time
    for path in bar:
        marks = [(clock(), cpu_clock())]
        try:
            rgb = load_image(path)
        except ImageError as exc:
            failures.append(str(exc))
            tqdm.write(str(exc), file=sys.stderr)
            continue
        marks.append((clock(), cpu_clock()))
        faces = detector.find_faces(rgb)
        marks.append((clock(), cpu_clock()))
        if faces:
            n_detected += 1
            n_faces += len(faces)
            n_cnn += faces[0].detector == "cnn"
            face = align(rgb, faces[0].landmarks)
            marks.append((clock(), cpu_clock()))
            skin.attention(face.crop)
            marks.append((clock(), cpu_clock()))
        for stage, (a, b) in zip(STAGES, zip(marks[:-1], marks[1:])):
            times[stage].append(b[0] - a[0])
            cpu[stage].append(b[1] - a[1])
    n_ok = len(times["load"])
    return {
        "folder": str(folder),
        "photos": len(files),
        "loaded": n_ok,
        "load_failures": failures,
        "detected": n_detected,
        "detection_rate": n_detected / n_ok if n_ok else float("nan"),
        "faces_per_detected_photo": n_faces / n_detected if n_detected else float("nan"),
        "found_by_cnn": n_cnn,
        "ms_per_photo": {s: 1000 * float(np.mean(v)) if v else float("nan") for s, v in times.items()},
        "cpu_ms_per_photo": {s: 1000 * float(np.mean(v)) if v else float("nan") for s, v in cpu.items()},
        "ms_total_per_detected_photo": 1000 * float(sum(np.mean(v) for v in times.values() if v)),
        "cpu_ms_total_per_detected_photo": 1000 * float(sum(np.mean(v) for v in cpu.values() if v)),
    }


def run(args: argparse.Namespace) -> int:
    """Benchmark the input stages on each folder and print a table; 0 on success."""
    from facerecon.cli import UserError
    from facerecon.imageio.detect import FaceDetector
    from facerecon.imageio.skin import SkinClassifier

    folders = args.images
    if folders is None:
        folders = [p for p in (shared_path("faces", "lfw"), shared_path("faces", "utkface")) if p]
        if not folders:
            raise UserError("no --images given and ../shared/faces/{lfw,utkface} were not found")
    for f in folders:
        if not f.is_dir():
            raise UserError(f"{f}: not a folder")
    if args.limit is not None and args.limit <= 0:
        raise UserError("--limit must be positive")
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0 = time.perf_counter()
    detector = FaceDetector()
    skin = SkinClassifier.load()
    setup_s = time.perf_counter() - t0
    results = []
    for folder in folders:
        files = list_images(folder, args.limit)
        if not files:
            print(f"{folder}: no image files", file=sys.stderr)
            continue
        results.append(bench_folder(folder, files, detector, skin, progress=not args.no_progress))

    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()}, {available_cpus()} CPU cores; model loading {setup_s:.2f} s; "
          f"load average {load_before:.1f} before, {load_after:.1f} after (> cores: timings inflated)")
    head = f"{'folder':<20}{'photos':>7}{'detected':>10}" + "".join(f"{s:>10}" for s in STAGES) + f"{'total':>9}"
    for key, total, title in (("ms_per_photo", "ms_total_per_detected_photo", "wall-clock ms per photo"),
                              ("cpu_ms_per_photo", "cpu_ms_total_per_detected_photo", "CPU ms per photo")):
        print(f"{title} (detect: every photo; align/skin: photos with a face)")
        print(head)
        for r in results:
            ms = r[key]
            print(f"{Path(r['folder']).name:<20}{r['loaded']:>7}{100 * r['detection_rate']:>9.1f}%"
                  + "".join(f"{ms[s]:>10.2f}" for s in STAGES) + f"{r[total]:>9.1f}")
    for r in results:
        print(f"{Path(r['folder']).name}: {r['found_by_cnn']} of {r['detected']} faces found by the CNN detector "
              f"(no confident HOG box)")
    failures = [f for r in results for f in r["load_failures"]]
    if failures:
        print(f"{len(failures)} photo(s) could not be loaded:")
        for line in failures:
            print(f"  {line}")
    if args.json:
        print(json.dumps({"setup_s": setup_s, "folders": results}, indent=1))
    return 0


