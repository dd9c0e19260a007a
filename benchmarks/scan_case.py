"""One person's real photos against their own 3D scan: issue 10's held-out table in one command.

    python benchmarks/scan_case.py --photos A.jpg B.jpg --scan SCAN.obj --scan-landmarks L.txt \\
        [--scan-units-to-mm F] [--variant NAME=FLAGS ...] [--peer NPZ] [--no-outer] [--no-from-scan] [--scan-visible]
        [--out DIR] [--json OUT]
        [engine and fitting options]
    python benchmarks/scan_case.py --scan lee-perry-smith --saved-fits F.npz [...]   # fits made before

Every photo is reconstructed alone by each variant (the command line's engine and fitting options,
then the variant's own flags on top; defaults: the default engine, ``--weights-texture 25``, the plain
fitter, R-Net alone); with two photos or more, the person's face also comes from the mean of the
photos' identities and from the joint fit (``reconstruct --multi``'s default). Every mesh is scored
against the scan by :func:`~facerecon.evaluation.scan.evaluate_scan` (landmark start, ICP on a 95 mm
crop around the nose tip, point-to-plane RMSE, mm), rigid and with scale: expressive (as fitted)
and neutral (identity only, what ``face_neutral.*`` holds), next to the ICT mean face and the face
model's own best 3D fit to the scan (``lps_capacity.py``'s, identity and expression, placed rigidly
for the rigid score and with a scale for the other: what the model can reach; needs the scan's
landmarks), and the model's identity alone fitted the same way (expression held at zero: what a
neutral mesh can reach). That identity, fitted with scale, is the scan's best fit α* below (the
identity of the fit with expression is a poor neutral face: on the Lee Perry-Smith scan that fit
takes blendshape weights below zero, mouthPucker −0.41, and its identity alone scores 1.42 mm where
the identity fitted alone scores 0.97, 95 mm crop, outer surface, with scale). Each ICT mesh is
also scored on its outer surface (unless ``--no-outer``): without the inside of the nostrils and of
the lips, which no photo shows and no scan records (``facerecon.facemodel.surface``; on the Lee
Perry-Smith scan they carry 35–49 % of the mean face's squared error). Each ICT mesh is also scored
in the direction of issue 10's evaluator (unless ``--no-from-scan``): each scan point within 95 mm of
its nose tip to the whole predicted head (what ``face.obj`` holds), after an ICP on those distances
(:func:`~facerecon.evaluation.scan.evaluate_from_scan`). That direction weights the scan's surface
evenly, forehead and chin included, where the other weights ICT's crowded eyes, nose and mouth; on
the Lee Perry-Smith scan the two rank the default against the mean face very differently
(BENCHMARKS.md, "Issue 10's direction"). A scan that is a whole head model with eyeballs or teeth
inside needs ``--scan-visible``; a scanner's own face scan does not.

Where the scan's best fit is known, each identity is also placed against it (identity-only meshes
of the face within 95 mm of the nose tip, translation, rotation and scale removed, offsets along the mean face's normals
as a point-to-plane error counts them: ``identity_noise.py``'s metric): its distance from the best
fit, mm, split into how much of the photo population's common offset it carries (the mean identity
of many LFW photos' fits, ``--population``; in units of that offset, the scan's own amount on the
scan's row), the share of the scan's own part beyond that offset it goes along (0: none of it, 1:
all), and the rest, mm. On the Lee Perry-Smith scan the default engine puts the offset in at about
the population's amount whatever the photo (0.94), half as much again as the scan's identity has
(0.65), and 39 % of the scan's own part: your scan says whether that holds for another head.

``--scan lee-perry-smith`` uses the shared scan and its landmarks (for a trial run, e.g. on
``lps_realskin.py --save-renders`` images). Meshes are written under ``--out`` in mm
(``<variant>/<photo>.ply``, ``<photo>_neutral.ply``, ``person_mean.ply``, ``person_joint.ply``) for
any other evaluator; existing files are not overwritten unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import trimesh

sys.path.insert(0, str(Path(__file__).parent))
from identity_noise import load_people, model_basis, similarity_metric  # noqa: E402
from lps_capacity import fit_model_to_scan  # noqa: E402

from facerecon.atomic import atomic_path  # noqa: E402
from facerecon.cli import UserError, set_cpu_threads  # noqa: E402
from facerecon.cli.engine_args import (add_engine_arguments, add_fitting_arguments, engine_options,  # noqa: E402
                                       fit_config)
from facerecon.evaluation.scan import (MeshError, evaluate_from_scan, evaluate_scan, load_landmarks,  # noqa: E402
                                       load_mesh, save_mesh, visible_part)
from facerecon.evaluation.scans import lee_perry_smith_surface, load_lee_perry_smith  # noqa: E402
from facerecon.facemodel import load_face_model  # noqa: E402
from facerecon.facemodel.surface import scoring_mesh  # noqa: E402
from facerecon.imageio import ImageError, NoFaceError  # noqa: E402
from facerecon.pipeline import FaceReconstructor  # noqa: E402

#: The identity figures of a row (:class:`IdentityPlace`) and their table headings.
PLACE = {"from_best_fit_mm": "from the scan's best fit, mm", "offset_amount": "common offset, × the population's",
         "own_share": "share of the scan's own part", "rest_mm": "the rest, mm"}
#: The variants compared when none is named: NAME=FLAGS, the flags added to the command line's.
LABELS = Path(__file__).parent / "labels"
DEFAULT_VARIANTS = ("default=", "texture25=--weights-texture 25", "fit=--engine fit", "rnet=--engine rnet")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", nargs="*", default=[], type=Path, help="photos of the scanned person")
    ap.add_argument("--saved-fits", nargs="*", default=[], type=Path, metavar="NPZ",
                    help="fits already made of photos or renders of this scan (lps_realskin.py --save-params): "
                         "the mean of each file's identities is scored and placed, and each fit placed")
    ap.add_argument("--scan", required=True, help="the person's scan (OBJ/PLY/GLB/STL), or lee-perry-smith")
    ap.add_argument("--scan-landmarks", help="the scan's 68 iBUG landmarks (a file evaluate scan reads: N rows "
                    "of x y z in the scan's units, NaN rows for unknown points, or vertex indices)")
    ap.add_argument("--scan-units-to-mm", type=float, default=1.0, metavar="F", help="scan units × F = mm")
    ap.add_argument("--variant", action="append", metavar="NAME=FLAGS",
                    help="a reconstruction to compare: a name and the flags it adds to this command line's "
                         "engine and fitting options, e.g. 'z12=--rnet z12.pt' (repeat; default: "
                         + "; ".join(DEFAULT_VARIANTS) + ")")
    ap.add_argument("--alignment", choices=("both", "rigid", "scale"), default="both",
                    help="score rigid, with scale or both (each ICP takes about 5 s on a 2-vCPU machine)")
    ap.add_argument("--capacity-rounds", type=int, default=60,
                    help="correspondence rounds of the scan's 3D fit (60: the same fit, within 0.02 mm, "
                         "whatever the scan's frame; 30 left 0.27 mm)")
    ap.add_argument("--population", nargs="*", type=Path, default=sorted(LABELS.glob("lfw_complement383_U_*.npz")),
                    help="identity_lfw caches whose mean identity is the photo population's common offset "
                         "(default: the default engine's fits of 383 LFW people; none: no offset split)")
    ap.add_argument("--peer", type=Path, metavar="NPZ",
                    help="a peer's meshes of the same photos, scored beside ours: MediaPipe Face Mesh's "
                         "(benchmarks/peers/mediapipe_facemesh.py --out NPZ; scaled to the mean face's eye width)")
    ap.add_argument("--no-outer", action="store_true",
                    help="skip the outer-surface figures (the face less the nostrils' and lips' insides, which "
                         "no photo or scan shows: facerecon.facemodel.surface; half the scoring time)")
    ap.add_argument("--no-from-scan", action="store_true",
                    help="skip the scan -> prediction figures (issue 10's direction: each scan point within 95 mm "
                         "of its nose tip to the whole predicted head, face.obj's mesh)")
    ap.add_argument("--scan-visible", action="store_true",
                    help="for the scan -> prediction figures, first remove what no scanner sees from the scan "
                         "(a head model with eyeballs or teeth inside; needs rtree); lee-perry-smith always")
    ap.add_argument("--out", type=Path, help="write every scored mesh here (PLY, mm)")
    ap.add_argument("--overwrite", action="store_true", help="replace meshes already in --out")
    ap.add_argument("--json", help="write the table here")
    add_engine_arguments(ap.add_argument_group("engine"))
    add_fitting_arguments(ap)
    return ap


def load_scan(args) -> tuple[trimesh.Trimesh, np.ndarray | None]:
    """The scan in mm and its (68,3) landmarks in mm (None where not given)."""
    if args.scan == "lee-perry-smith":
        return load_lee_perry_smith()
    scan = load_mesh(args.scan, args.scan_units_to_mm)
    lmk = None
    if args.scan_landmarks:
        lmk = load_landmarks(args.scan_landmarks, np.asarray(scan.vertices), args.scan_units_to_mm)
        if len(lmk) != 68:
            raise MeshError(f"{args.scan_landmarks}: expected the 68 iBUG landmarks, got {len(lmk)} rows")
    return scan, lmk


def variants(named: list[str] | None) -> dict[str, list[str]]:
    """{name: extra flags} from NAME=FLAGS strings."""
    out = {}
    for v in named or DEFAULT_VARIANTS:
        name, sep, flags = v.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--variant {v!r}: expected NAME=FLAGS (FLAGS may be empty)")
        out[name.strip()] = shlex.split(flags)
    return out


def rmse(row: dict, surface: str = "") -> str:
    """"rigid / with scale" of a row (``surface`` "outer": on the outer surface, "from_scan": scan ->
    prediction), "–" where not scored."""
    keys = ("rigid_mm", "scale_mm") if not surface else (f"rigid_{surface}_mm", f"scale_{surface}_mm")
    return " / ".join(f"{row[k]:.3f}" if k in row else "–" for k in keys)


def mesh_paths(out: Path, runs: dict, photos: list[Path]) -> list[Path]:
    """Every mesh a run writes under ``out``."""
    names = [f"{p.stem}{tail}" for p in photos for tail in ("", "_neutral")] + ["person_mean", "person_joint"]
    return [out / v / f"{n}.ply" for v in runs for n in names]


class IdentityPlace:
    """Where an identity α sits against the scan's best fit α* (``identity_noise.py``'s metric on
    the face within ``radius_mm`` of the nose tip, as the scan is cropped: identity-only mesh,
    similarity removed, offsets along the mean face's normals, mm).

    With ``offset`` (the mean α of many photos' fits, the photo population's common offset from the
    mean face) α is split as ``k_o·offset + k_p·own + rest``, where ``own`` is α*'s part beyond the
    offset: ``offset_amount`` k_o (α* has its own value), ``own_share`` k_p (α*: 1) and ``rest_mm``;
    without it ``own`` is all of α*. ``from_best_fit_mm`` is α's distance from α*."""

    def __init__(self, truth: np.ndarray, offset: np.ndarray | None = None, radius_mm: float = 95.0) -> None:
        model = load_face_model("face")
        mean, basis, normals = model_basis(model)
        keep = np.linalg.norm(mean - mean[model.landmark_idx[30]], axis=1) <= radius_mm  # the scan crop's
        self.g = similarity_metric(mean[keep], basis[:, keep], normals[keep])
        self.truth = np.asarray(truth, np.float64)
        self.offset = None if offset is None else np.asarray(offset, np.float64)
        self.own = self.truth - (0.0 if self.offset is None else self._along(self.truth, self.offset) * self.offset)

    def _along(self, a: np.ndarray, u: np.ndarray) -> float:
        return float(a @ self.g @ u / (u @ self.g @ u))

    def _norm(self, a: np.ndarray) -> float:
        return float(np.sqrt(max(float(a @ self.g @ a), 0.0)))

    def __call__(self, alpha: np.ndarray) -> dict[str, float]:
        a = np.asarray(alpha, np.float64).reshape(-1)
        out = {"from_best_fit_mm": self._norm(a - self.truth)}
        rest = a
        if self.offset is not None:
            out["offset_amount"] = self._along(a, self.offset)
            rest = rest - out["offset_amount"] * self.offset
        out["own_share"] = self._along(rest, self.own)  # own ⟂ offset: the same as α's own projection
        out["rest_mm"] = self._norm(rest - out["own_share"] * self.own)
        return out

    @property
    def departure_mm(self) -> float:
        """The best fit's distance from the mean face (mm, the same metric)."""
        return self._norm(self.truth)


def population_offset(paths: list[Path], n_id: int) -> np.ndarray | None:
    """The mean α over people of ``identity_lfw.py --cache`` files (None when none is given)."""
    if not paths:
        return None
    people = load_people([str(p) for p in paths], n_id)
    return np.mean([a.mean(0) for a in people.values()], 0)


def main(argv: list[str] | None = None) -> dict:
    ap = parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)
    set_cpu_threads(None)
    try:
        if not args.photos and not args.saved_fits:
            raise UserError("nothing to score: give --photos or --saved-fits")
        if args.peer is not None and not args.peer.is_file():
            raise UserError(f"{args.peer}: no such file "
                            "(benchmarks/peers/mediapipe_facemesh.py PHOTOS --out NPZ makes it)")
        scan, scan_lmk = load_scan(args)
        runs = variants(args.variant)
        stems = [p.stem for p in args.photos]
        if len(set(stems)) < len(stems):  # the meshes are named after them
            raise UserError(f"two photos named {next(t for t in stems if stems.count(t) > 1)!r}: rename one")
        for name, flags in runs.items():  # every variant's flags checked before any work starts
            try:
                ap.parse_args(argv + flags)
            except SystemExit:
                raise UserError(f"--variant {name}: flags {' '.join(flags)!r} not understood") from None
        there = [p for p in mesh_paths(args.out, runs, args.photos) if p.exists()] if args.out else []
        if there and not args.overwrite:  # refused before any work, not after it
            more = f"; {len(there) - 1} more" if len(there) > 1 else ""
            raise UserError(f"{there[0]}: exists (--overwrite replaces it{more})")
    except (MeshError, UserError) as exc:
        sys.exit(f"scan_case: {exc}")
    face = load_face_model("face")
    lmk_idx = face.landmark_idx.numpy()
    head_model = load_face_model("export")  # what face.obj holds: the face's vertices come first
    seen = None
    if not args.no_from_scan:
        if args.scan == "lee-perry-smith":
            seen = lee_perry_smith_surface()[0]
        else:
            seen = visible_part(scan) if args.scan_visible else scan
    rows: list[dict] = []

    def write(verts: np.ndarray, *parts: str) -> None:
        if args.out is None:
            return
        path = args.out.joinpath(*parts[:-1], parts[-1] + ".ply")
        save_mesh(trimesh.Trimesh(verts, face.faces.numpy(), process=False), path)

    alignments = {"rigid_mm": False, "scale_mm": True}
    alignments = {k: v for k, v in alignments.items() if args.alignment in ("both", k[:-3])}

    def score(verts: np.ndarray | dict[str, np.ndarray], faces: np.ndarray | None = None,
              landmarks: np.ndarray | None = None, head=None) -> dict[str, float]:
        """RMSE per alignment of a mesh (or of one mesh per alignment, {"rigid_mm": V, "scale_mm": V});
        ICT's triangles and landmark vertices unless ``faces`` and ``landmarks`` (vertex indices) are given.
        ``head``: the same ICT face as the whole head (the same kinds), scored from the scan."""
        out = {}
        for k, s in alignments.items():
            v = verts[k] if isinstance(verts, dict) else verts
            if seen is not None and (head is not None or faces is not None):
                h = (head[k] if isinstance(head, dict) else head) if head is not None else v
                mesh = trimesh.Trimesh(h, head_model.faces.numpy() if head is not None else faces, process=False)
                points = h[head_model.landmark_idx.numpy() if head is not None else landmarks]
                out[k.replace("_mm", "_from_scan_mm")] = evaluate_from_scan(mesh, seen, points, scan_lmk,
                                                                            allow_scale=s).rmse_mm
            if faces is None:  # an ICT face: every vertex, then the outer surface alone
                for surface in ("full",) if args.no_outer else ("full", "outer"):
                    mesh, points = scoring_mesh(v, face.faces.numpy(), lmk_idx, surface)
                    key = k if surface == "full" else k.replace("_mm", f"_{surface}_mm")
                    out[key] = evaluate_scan(mesh, scan, points, scan_lmk, allow_scale=s).rmse_mm
            else:  # a peer's mesh has no hidden insides: its outer surface is all of it
                mesh = trimesh.Trimesh(v, faces, process=False)
                out[k] = evaluate_scan(mesh, scan, v[landmarks], scan_lmk, allow_scale=s).rmse_mm
                if not args.no_outer:
                    out[k.replace("_mm", "_outer_mm")] = out[k]
        return out

    def add(variant: str, what: str, verts, alpha: np.ndarray | None, faces: np.ndarray | None = None,
            landmarks: np.ndarray | None = None, head=None, **extra) -> None:
        rows.append({"variant": variant, "what": what, **score(verts, faces, landmarks, head), **extra,
                     **(place(alpha) if place is not None and alpha is not None else {})})
        print(f"{variant:12s} {what:28s} {rmse(rows[-1])} mm"
              + (f" (outer surface {rmse(rows[-1], 'outer')})" if not args.no_outer else "")
              + (f" (from the scan {rmse(rows[-1], 'from_scan')})" if seen is not None else "")
              + "".join(f"  {k} {rows[-1][k]:.2f}" for k in PLACE if k in rows[-1]), flush=True)

    def identity(alpha) -> np.ndarray:
        with torch.no_grad():
            return face.shape(torch.as_tensor(alpha, dtype=torch.float32).reshape(1, -1))[0].numpy()

    def whole_head(alpha, beta=None) -> np.ndarray | None:
        """The same face as facerecon's whole head (V,3) mm, for the scan -> prediction figures."""
        if seen is None:
            return None
        with torch.no_grad():
            b = None if beta is None else torch.as_tensor(beta, dtype=torch.float32).reshape(1, -1)
            return head_model.shape(torch.as_tensor(alpha, dtype=torch.float32).reshape(1, -1), b)[0].numpy()

    place = None
    add("-", "ICT mean face", identity(np.zeros(face.n_id)), None, head=whole_head(np.zeros(face.n_id)))
    if scan_lmk is not None:
        t0 = time.perf_counter()
        # a rigid fit for the rigid score, a similarity one for the other; identity and expression
        # (what the model can reach), then identity alone (what a neutral mesh can reach, and α*)
        fitted = {k: fit_model_to_scan(scan, scan_lmk, 0.01, s, rounds=args.capacity_rounds)
                  for k, s in alignments.items()}
        seconds = time.perf_counter() - t0
        alone = {k: fit_model_to_scan(scan, scan_lmk, 0.01, s, rounds=args.capacity_rounds, expression="none")
                 for k, s in alignments.items()}
        pick = "scale_mm" if "scale_mm" in fitted else "rigid_mm"
        best = alone[pick][1]
        place = IdentityPlace(best, population_offset(args.population, face.n_id))
        print(f"the scan's best identity is {place.departure_mm:.2f} mm from the mean face (along the normals)")
        heads = {k: whole_head(v[1], v[2]["beta"]) for k, v in fitted.items()} if seen is not None else None
        add("-", "model fitted to the scan (3D)", {k: v[0].astype(np.float32) for k, v in fitted.items()},
            fitted[pick][1], head=heads, seconds=seconds)
        add("-", "its identity alone", identity(fitted[pick][1]), fitted[pick][1], head=whole_head(fitted[pick][1]))
        heads = {k: whole_head(v[1]) for k, v in alone.items()} if seen is not None else None
        add("-", "identity fitted to the scan", {k: v[0].astype(np.float32) for k, v in alone.items()}, best,
            head=heads, seconds=time.perf_counter() - t0 - seconds, departure_mm=place.departure_mm)
    for path in args.saved_fits:
        alphas = np.load(path)["params"].astype(np.float64)[:, :face.n_id]
        each = [place(x) for x in alphas] if place is not None else []
        average = {f"each_{k}": float(np.mean([e[k] for e in each])) for k in (each[0] if each else {})}
        mean = alphas.mean(0)
        add(path.stem, f"mean of {len(alphas)} saved fits (neutral)", identity(mean), mean, head=whole_head(mean),
            **average)
        if average:
            print(f"{'':12s} {'each fit, on average':28s}" + "".join(f"  {k[5:]} {v:.2f}" for k, v in average.items()))
    if args.peer is not None:
        from peer_scores import load_peer, mean_eye_width_mm, peer_map, peer_row, to_mm

        peer, index = load_peer(args.peer), peer_map()
        eye_mm = mean_eye_width_mm(face)
        for photo in args.photos:
            i = peer_row(peer, photo)
            if i is None or not peer["ok"][i]:
                print(f"{args.peer}: no face of {photo}", file=sys.stderr)
                continue
            verts = to_mm(peer["vertices"][i], index, eye_mm)
            add("MediaPipe", f"{photo.stem}, as fitted", verts, None, faces=peer["triangles"], landmarks=index)
    failed: list[str] = []
    for name, flags in (runs.items() if args.photos else ()):
        a = ap.parse_args(argv + flags)
        options = engine_options(a)
        recon = FaceReconstructor(config=fit_config(a, options["engine"]), **options,
                                  joint_config=fit_config(a, options["engine"], joint=True))
        fits = []
        for photo in args.photos:
            try:
                image, faces = recon.prepare(photo)
            except (ImageError, NoFaceError) as exc:
                if str(exc) not in failed:  # said once, not once per variant
                    failed.append(str(exc))
                    print(exc, file=sys.stderr)
                continue
            t0 = time.perf_counter()
            rec = recon.fit_prepared([(image, faces[0])])[0]
            seconds = time.perf_counter() - t0
            fits.append(rec)
            alpha = rec.params.alpha[0].numpy()
            beta = rec.params.beta[0].numpy()
            add(name, f"{photo.stem}, as fitted", rec.vertices(face), alpha, head=whole_head(alpha, beta),
                seconds=seconds)
            add(name, f"{photo.stem}, neutral", identity(alpha), alpha, head=whole_head(alpha))
            write(rec.vertices(face), name, photo.stem)
            write(identity(alpha), name, f"{photo.stem}_neutral")
        if len(fits) >= 2:
            for method in ("mean", "joint"):
                t0 = time.perf_counter()
                person = recon.combine(fits, method)
                alpha = person.params.alpha[0].numpy()
                add(name, f"{len(fits)} photos, {method} (neutral)", identity(alpha), alpha,
                    head=whole_head(alpha), seconds=time.perf_counter() - t0)
                write(identity(alpha), name, f"person_{method}")
    outer = "" if args.no_outer else " outer surface, mm |"
    backward = "" if seen is None else " from the scan (issue 10's direction), mm |"
    print("\n| variant | mesh | rigid / with scale, mm |" + outer + backward + " " + " | ".join(PLACE.values()) + " |")
    print("|---|---|---|" + ("" if args.no_outer else "---|") + ("" if seen is None else "---|") + "---|" * len(PLACE))
    for r in rows:
        print(f"| {r['variant']} | {r['what']} | {rmse(r)} | " + ("" if args.no_outer else f"{rmse(r, 'outer')} | ")
              + ("" if seen is None else f"{rmse(r, 'from_scan')} | ")
              + " | ".join(f"{r[k]:.2f}" if k in r else "" for k in PLACE) + " |")
    if failed:
        print("failed: " + "; ".join(failed), file=sys.stderr)
    result = {"argv": argv, "rows": rows, "failed": failed}
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
