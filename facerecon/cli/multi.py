"""``facerecon reconstruct --multi`` and ``--group``: several photos (or a video) -> one face per person.

``--multi DIR…``: each DIR holds one sub-folder per person (a video file counts as a person of
its own; a DIR with photos and no sub-folders is one person). ``--group PHOTOS…``: identity
unknown — every face of every photo becomes a vector and the faces are grouped into people
(``--people K``, or K estimated). Either way, OUT/<person>/ gets the person's face (see
:mod:`facerecon.export.person`) and OUT/report.json what was used and what failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

AGGREGATE_DEFAULT = "joint"
GROUP_VECTORS = ("facenet", "x", "identity")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The multi-image options of ``facerecon reconstruct``."""
    from facerecon.multi.aggregate import AGGREGATORS

    g = parser.add_argument_group("several photos of a person")
    g.add_argument("--multi", action="store_true",
                   help="PHOTOS are folders holding one sub-folder (or video) per person: one face per person")
    g.add_argument("--group", action="store_true",
                   help="identity unknown: group every face of PHOTOS into people, one face per person")
    g.add_argument("--aggregate", choices=AGGREGATORS, default=AGGREGATE_DEFAULT,
                   help="how a person's photos become one face (kmeans: the paper's; joint: one fit over "
                        "all photos with identity and albedo shared; BENCHMARKS.md compares them)")
    g.add_argument("--kmeans-features", choices=("all", "identity"), default="all",
                   help="what K-means clusters: the whole x (the paper) or identity and albedo only")
    g.add_argument("--people", type=int, default=None, metavar="K",
                   help="with --group: the number of people (default: estimated from the faces)")
    g.add_argument("--group-by", choices=GROUP_VECTORS, default="facenet",
                   help="with --group: the face vectors clustered (FaceNet embedding, the fit's x, or α and δ)")
    g.add_argument("--video-every", type=float, default=0.5, metavar="S",
                   help="seconds between the frames taken from a video")


def person_sources(folders: list[Path], out_root: Path) -> tuple[dict[str, list], list[str]]:
    """{person name: [photo path or (name, frame array)]} from --multi folders, and problems
    (one line each: a folder with no person in it)."""
    from facerecon.cli.reconstruct import find_photos
    from facerecon.multi.video import is_video

    people: dict[str, list] = {}
    problems: list[str] = []
    for root in folders:
        if not root.is_dir():
            problems.append(f"{root}: not a folder (--multi takes folders of people)")
            continue
        subs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
                      and d.resolve() != out_root.resolve())
        videos = sorted(f for f in root.iterdir() if f.is_file() and is_video(f))
        if not subs and not videos:
            people.setdefault(root.resolve().name, []).extend(find_photos(root, out_root))
            continue
        for d in subs:
            people.setdefault(d.name, []).extend(find_photos(d, out_root) + sorted(
                f for f in d.rglob("*") if f.is_file() and is_video(f) and not f.name.startswith(".")))
        for v in videos:
            people.setdefault(v.stem, []).append(v)
    return people, problems


def expand_videos(sources: list, every_s: float) -> tuple[list, list[tuple[str, str]]]:
    """Photos stay; each video becomes its sharp frames as ``(name, array)``; failures as (source, reason)."""
    from facerecon.imageio import ImageError
    from facerecon.multi.video import is_video, read_frames

    out, failed = [], []
    for s in sources:
        if isinstance(s, Path) and is_video(s):
            try:
                out.extend((f"{s.stem}_{f.name}", f.image) for f in read_frames(s, every_s))
            except ImageError as exc:
                failed.append((str(s), str(exc)))
        else:
            out.append(s)
    return out, failed


def _fit(recon, sources: list, batch_size: int, all_faces: bool, quiet: bool, desc: str):
    """Per-photo fits of ``sources`` (paths or (name, array) video frames): ([(name, result,
    is a video frame)], failures)."""
    from tqdm import tqdm

    from facerecon.pipeline import FailedInput

    arrays = [s[1] if isinstance(s, tuple) else s for s in sources]
    names = [s[0] if isinstance(s, tuple) else Path(s).stem for s in sources]
    done, failed = [], []
    with tqdm(total=len(sources), unit="photo", desc=desc, disable=quiet, file=sys.stderr) as bar:
        last = -1
        for i, res in recon.iter_reconstruct(arrays, batch_size, all_faces):
            if isinstance(res, FailedInput):
                src = sources[i]
                failed.append(FailedInput(src[0] if isinstance(src, tuple) else str(src),
                                          res.reason.replace("<array>", names[i])))
            else:
                if isinstance(sources[i], tuple):
                    res.source = sources[i][0]
                done.append((names[i], res, isinstance(sources[i], tuple)))
            bar.update(i - last if i > last else 0)
            last = max(last, i)
    return done, failed


def reject_bad_frames(recon, done: list) -> tuple[list, list]:
    """Drop the video frames whose fit is far off the detected landmarks (see
    :func:`facerecon.multi.video.badly_detected`); photos are kept. Returns (kept, failures)."""
    from facerecon.multi.video import badly_detected
    from facerecon.pipeline import FailedInput

    frames = [i for i, (_, _, is_frame) in enumerate(done) if is_frame]
    errors = [recon.photo_quality(done[i][1]).landmark_error_px for i in frames]
    bad = {frames[j] for j in np.flatnonzero(badly_detected(errors))}
    median = float(np.median(errors)) if errors else 0.0
    failures = [FailedInput(done[i][1].source, f"{done[i][1].source}: badly detected frame (landmark error "
                            f"{errors[frames.index(i)]:.1f} px, the video's median {median:.1f} px)") for i in sorted(bad)]
    return [d for i, d in enumerate(done) if i not in bad], failures


def run(args: argparse.Namespace, recon, head, found_inputs: list[Path]) -> int:
    """Reconstruct people (``--multi`` or ``--group``); writes OUT/<person>/ and OUT/report.json."""
    from facerecon import __version__
    from facerecon.atomic import atomic_write_json
    from facerecon.cli import UserError
    from facerecon.cli.reconstruct import expand_inputs
    from facerecon.export.person import member_photos, write_person

    out_root: Path = args.out
    failures: dict[str, list] = {}
    problems: list[str] = []
    if args.multi:
        people_sources, problems = person_sources(list(args.photos), out_root)
        if not any(people_sources.values()):
            raise UserError("; ".join(problems) or "no people found (--multi takes folders of person folders)")
        fits: dict[str, list] = {}
        for name, sources in people_sources.items():
            sources, vfail = expand_videos(sources, args.video_every)
            done, failed = _fit(recon, sources, args.batch_size, False, args.quiet, name)
            done, rejected = reject_bad_frames(recon, done)
            fits[name] = [r for _, r, _ in done]
            failed += rejected
            failures[name] = failed + [_failed(s, r) for s, r in vfail]
    else:
        found = expand_inputs(list(args.photos), exclude=out_root)
        sources, vfail = expand_videos([p for f in found for p in f.photos], args.video_every)
        if not sources:
            raise UserError("no photos found")
        done, failed = _fit(recon, sources, args.batch_size, True, args.quiet, "faces")
        failures["(ungrouped)"] = failed + [_failed(s, r) for s, r in vfail]
        recs = [r for _, r, _ in done]
        if not recs:
            raise UserError("no face found in any photo: " + "; ".join(f.reason for f in failed))
        fits = recon.group(recs, args.people, args.group_by)
        print(f"facerecon reconstruct: {len(recs)} faces grouped into {len(fits)} people"
              + ("" if args.people else " (estimated)"), file=sys.stderr)
    usable = {n: r for n, r in fits.items() if r}
    for n in fits:
        if not fits[n]:
            problems.append(f"{n}: no usable photo (skipped)")
    persons = recon.combine_people(usable, args.aggregate, args.kmeans_features, failures) if usable else []
    report = {"facerecon": __version__, "mode": "multi" if args.multi else "group", "aggregate": args.aggregate,
              "people": [], "problems": problems}
    ok = 0
    for person in persons:
        folder = out_root / person.name
        entry = {"person": person.name, "folder": str(folder), "photos": [m.source for m in person.members],
                 "failed": [{"input": f.source, "reason": f.reason} for f in person.failed]}
        if folder.exists() and any(folder.iterdir()) and not args.overwrite:
            entry |= {"status": "failed", "reason": f"{folder} already exists (use --overwrite to replace it)"}
        else:
            try:
                write_person(folder, person=person.params, members=member_photos(person), face_model_head=head,
                             camera=recon.camera, method=person.method, extra=person.extra,
                             texture_size=args.texture_size, units=args.units, up=args.up)
                entry["status"] = "ok"
                ok += 1
            except OSError as exc:
                entry |= {"status": "failed", "reason": f"cannot write {folder}: {exc.strerror or exc}"}
        report["people"].append(entry)
    if "(ungrouped)" in failures:
        report["failed_inputs"] = [{"input": f.source, "reason": f.reason} for f in failures["(ungrouped)"]]
    out_root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_root / "report.json", report, indent=2)
    print(f"reconstructed {ok} of {len(fits)} people into {out_root}", file=sys.stderr)
    for line in problems + [f"  {e['person']}: {e['reason']}" for e in report["people"] if e["status"] != "ok"]:
        print(f"facerecon reconstruct: {line}", file=sys.stderr)
    for name, fl in failures.items():
        for f in fl:
            print(f"facerecon reconstruct: {name}: {f.reason}", file=sys.stderr)
    return 0 if ok else 1


def _failed(source: str, reason: str):
    from facerecon.pipeline import FailedInput

    return FailedInput(source, reason)
