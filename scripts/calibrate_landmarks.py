"""Choose the mesh vertices that stand for the 68 iBUG landmarks from fits of annotated photos.

ICT-FaceKit lists one vertex per landmark, but its choice does not match 300-W's annotators
everywhere (the brows sit high, the upper lids and nostrils low, the inner lip corners deep):
the fit then bends expression and identity to put those vertices on the detected points. This
script measures where fitted faces put 300-W **train**'s annotated points and moves each inner
landmark (17–67) to the vertex within ``--radius`` mm whose projection is closest to the
annotation over all photos, mirror pairs chosen together so the set stays symmetric. With
``--jaw`` it also moves the jaw anchors (0–16): the fitter slides each jaw landmark along a band
at its anchor's height to the silhouette, so an anchor is scored by the vertex that contour would
take on each fitted face (the chin, 8, is a fixed vertex). The test split is never read.

Which fits the choice is made on decides what the landmark term will ask of later fits. Fits
made with the landmark term have already bent identity and expression towards the old points, so
a choice on them keeps part of that bend. Fits whose shape comes from the photometric term alone
(``--weights-landmark 0 --landmark-steps 0``: the landmarks only start the pose) give the points
where the shading puts each annotation, and the landmark term then asks for the face the shading
shows (on LFW photos, landmark-only fits carried the common offset of every fitted face at 0.86
of the population's amount, photometric-only fits at 0.45; BENCHMARKS.md).

    # 1. fit every 4th train photo (resumable; run parts in parallel); any engine and fitting
    #    options, recorded in OUT/fits.json (a folder holds fits of one kind)
    python scripts/calibrate_landmarks.py fit work/lmk/p1 --landmarks 300w --engine fit \
        --weights-landmark 0 --landmark-steps 0 --steps 30 --no-perceptual --part 0/2
    python scripts/calibrate_landmarks.py fit work/lmk/p1 ... --part 1/2
    # 2. choose vertices on those fits; --write SET replaces that set's file under
    #    facerecon/resources (landmarks_300w_photo.json for "300w-photo")
    python scripts/calibrate_landmarks.py choose work/lmk/p1 --jaw --write 300w-photo

"300w" was chosen in three rounds on fits made with the landmark term (fits with "ict"; fits
with round 1's set; those again with ``--jaw``); "300w-photo" in one round, with ``--jaw``, on
photometric-only fits started from "300w" (a second round, on fits made with it, would move 5
points and gain nothing: NME on those fits 9.42 → 9.42 %). Each set records its
rounds. The 300-W ``.pts`` and dlib's points differ by a near-constant offset (≈ +1.2, +0.6 px, a
pixel convention); it is removed before choosing (measured and printed).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facerecon.assets import resource_path, shared_path  # noqa: E402

#: Mirror partners among the inner 68-point landmarks (iBUG numbering, 0-based), and the
#: points on the mid-line.
PAIRS = [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (31, 35), (32, 34), (36, 45), (37, 44), (38, 43),
         (39, 42), (40, 47), (41, 46), (48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63),
         (65, 67)]
MIDLINE = [27, 28, 29, 30, 33, 51, 57, 62, 66]


def _train_pairs(step: int):
    from facerecon.evaluation.landmarks import labelled_images

    return labelled_images(shared_path("faces", "300w", "train"))[::step]


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit train photos in chunks of 8 (one .npz each: parameters, annotation, dlib, fit, crop map)."""
    from facerecon.cli.engine_args import engine_options, engine_record, fit_config
    from facerecon.imageio.pts import read_pts
    from facerecon.pipeline import FailedInput, FaceReconstructor

    part, nparts = (int(x) for x in args.part.split("/"))
    pairs = _train_pairs(args.step)[part::nparts]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    options = engine_options(args)
    config = fit_config(args, options["engine"])
    recon = FaceReconstructor(device="cpu", config=config, **options)
    # what the fits are made with: the set by vertex ("300w" names whatever the resource holds
    # today) and the fit settings; a folder holds one round
    used = recon.model.vertex_ids[recon.model.landmark_idx.cpu().numpy()]
    made = {"landmarks": config.landmarks, "landmark_vertices": used.tolist(),
            "engine": engine_record(options) or "fit", "config": asdict(config)}
    made = json.loads(json.dumps(made, default=str))
    record = out / "fits.json"
    if record.exists() and json.loads(record.read_text()) != made:
        raise SystemExit(f"{out}: holds fits made with other landmark vertices or settings; use a new folder")
    record.write_text(json.dumps(made, indent=1))
    for c in range(0, len(pairs), 8):
        path = out / f"part{part}of{nparts}_{c:05d}.npz"
        if path.exists():
            continue
        chunk = pairs[c:c + 8]
        done = {i: r for i, r in recon.iter_reconstruct([str(p[0]) for p in chunk], batch_size=8)
                if not isinstance(r, FailedInput)}
        keep = sorted(done)
        recs = [done[i] for i in keep]
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, names=np.array([chunk[i][0].name for i in keep], dtype=str),
                 params=torch.cat([r.params.to_vector() for r in recs]).numpy() if recs else np.zeros((0, 228)),
                 gt=np.stack([read_pts(chunk[i][1]) for i in keep]) if keep else np.zeros((0, 68, 2)),
                 dlib=np.stack([r.prepared.landmarks_photo for r in recs]) if recs else np.zeros((0, 68, 2)),
                 fit=np.stack([r.landmarks_fit for r in recs]) if recs else np.zeros((0, 68, 2)),
                 M=np.stack([r.prepared.M for r in recs]) if recs else np.zeros((0, 2, 3)))
        tmp.replace(path)
        print(f"{path.name}: {len(keep)} of {len(chunk)} fitted", flush=True)
    return 0


def _load_fits(folder: Path) -> dict[str, np.ndarray]:
    files = sorted(folder.glob("part*.npz"))
    if not files:
        raise SystemExit(f"{folder}: no fits (run the 'fit' step first)")
    zs = [np.load(f) for f in files]
    return {k: np.concatenate([z[k] for z in zs if len(z["names"])]) for k in ("names", "params", "gt", "dlib", "fit", "M")}


def project_all(params: np.ndarray, M: np.ndarray, model) -> tuple[np.ndarray, np.ndarray]:
    """Every model vertex of each fitted face projected into its crop and into its photo
    ((N,V,2) each, pixels)."""
    from facerecon.params import FaceParams
    from facerecon.render import Camera, project, transform

    p = FaceParams.from_vector(torch.tensor(params, dtype=torch.float32), FaceParams.zeros(1).sizes())
    with torch.no_grad():
        xy, _ = project(transform(model.shape(p.alpha, p.beta), p.angles, p.trans), Camera())
    Minv = np.stack([np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2] for m in M])
    crop = xy.numpy()
    return crop, np.einsum("nij,nvj->nvi", Minv[:, :, :2], crop) + Minv[:, None, :, 2]


def mirror_map(verts: np.ndarray, tol_mm: float = 0.5) -> np.ndarray:
    """For each vertex, the vertex at its mirror image x → −x (−1 where none lies within ``tol_mm``)."""
    from scipy.spatial import cKDTree

    d, idx = cKDTree(verts).query(verts * np.array([-1.0, 1.0, 1.0]))
    idx[d > tol_mm] = -1
    return idx


def _choose_symmetric(groups: list[tuple[int, int]], verts: np.ndarray, current: np.ndarray, radius: float,
                      score, allowed: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """For each landmark pair (a, b) — or mid-line point (a, a) — the vertex within ``radius`` mm
    of a's current one (its mirror image for b; |x| < 0.6 mm for a mid-line point) with the
    least ``score(k, candidates) -> (C,)`` error; a landmark keeps its vertex unless one scores
    lower. ``allowed``: a vertex mask the candidates must lie in."""
    mir = mirror_map(verts)
    ok = mir >= 0 if allowed is None else (mir >= 0) & allowed
    new = current.copy()
    lines = []
    for a, b in groups:
        cand = np.nonzero((np.linalg.norm(verts - verts[current[a]], axis=1) < radius) & ok)[0]
        if a == b:
            cand = cand[np.abs(verts[cand, 0]) < 0.6]
            total, before = score(a, cand), score(a, current[[a]])[0]
        else:
            total = (score(a, cand) + score(b, mir[cand])) / 2
            before = (score(a, current[[a]])[0] + score(b, current[[b]])[0]) / 2
        j = cand[total.argmin()] if len(cand) and total.min() < before else current[a]
        new[a] = j
        if a != b:
            new[b] = mir[j] if j != current[a] else current[b]
        moved = verts[new[a]] - verts[current[a]]
        best = min(total.min(), before) if len(cand) else before
        lines.append(f"{a:2d}/{b:2d}: {100 * before:.2f} -> {100 * best:.2f} % "
                     f"(moved {np.linalg.norm(moved):.1f} mm: {np.round(moved, 1).tolist()})")
    return new, lines


def choose(photo: np.ndarray, target: np.ndarray, iod: np.ndarray, verts: np.ndarray, current: np.ndarray,
           radius: float) -> tuple[np.ndarray, list[str]]:
    """New landmark vertices (68,) over ``verts``' indexing: for each inner landmark (pair), the
    vertex within ``radius`` mm of the current one (mirror pair: the pair) with the least mean
    eye-normalised distance between its projections ``photo`` (N,V,2) and ``target`` (N,68,2)."""

    def score(k: int, cand: np.ndarray) -> np.ndarray:
        return (np.linalg.norm(photo[:, cand] - target[:, None, k], axis=2) / iod[:, None]).mean(0)

    return _choose_symmetric(PAIRS + [(k, k) for k in MIDLINE], verts, current, radius, score)


def contour_pick(crop: np.ndarray, verts: np.ndarray, face: np.ndarray, anchor: int, side: float) -> np.ndarray:
    """Per photo, the vertex the fitter's moving contour takes for a jaw landmark anchored at
    ``anchor``: the outermost in the crop (``side`` −1: image left) of its band (N,)."""
    from facerecon.facemodel.contour import jaw_band

    band = jaw_band(verts, face, anchor)
    return band[(side * crop[:, band, 0]).argmax(1)]


def choose_jaw(crop: np.ndarray, photo: np.ndarray, target: np.ndarray, iod: np.ndarray, verts: np.ndarray,
               face: np.ndarray, current: np.ndarray, radius: float) -> tuple[np.ndarray, list[str]]:
    """New anchors for the 17 jaw landmarks: each sliding one (0–7, 9–16; mirror pairs together)
    the vertex within ``radius`` mm whose band's contour pick lies closest to the annotation, the
    chin (8, fixed) the closest mid-line vertex."""
    rows = np.arange(len(iod))

    def err(k: int, anchor: int) -> float:
        if k == 8:
            pick = np.full(len(iod), anchor)
        else:
            pick = contour_pick(crop, verts, face, anchor, -1.0 if k < 8 else 1.0)
        return float((np.linalg.norm(photo[rows, pick] - target[:, k], axis=1) / iod).mean())

    in_face = np.zeros(len(verts), bool)
    in_face[face] = True
    return _choose_symmetric([(k, 16 - k) for k in range(8)] + [(8, 8)], verts, current, radius,
                             lambda k, cand: np.array([err(k, c) for c in cand]), allowed=in_face)


def cmd_choose(args: argparse.Namespace) -> int:
    """Choose the vertices on one round's fits; print the per-landmark change; optionally write."""
    from facerecon.evaluation.landmarks import nme
    from facerecon.facemodel import load_face_model

    folder = Path(args.folder)
    made = json.loads((folder / "fits.json").read_text()) if (folder / "fits.json").exists() else {
        "landmarks": (folder / "landmarks.txt").read_text().strip()}  # folders from before fits.json
    used = made["landmarks"]
    if "landmark_vertices" not in made and (folder / "landmark_vertices.json").exists():
        made["landmark_vertices"] = json.loads((folder / "landmark_vertices.json").read_text())
    f = _load_fits(folder)
    model = load_face_model("narrow", albedo="learned", landmarks=used)
    crop, photo = project_all(f["params"], f["M"], model)
    offset = (f["gt"] - f["dlib"])[:, 17:].reshape(-1, 2).mean(0)
    target = f["gt"] - offset
    iod = np.linalg.norm(f["gt"][:, 36] - f["gt"][:, 45], axis=1)
    current = model.landmark_idx.cpu().numpy()
    if "landmark_vertices" in made:  # the vertices the fits were made with
        remap = {int(v): i for i, v in enumerate(model.vertex_ids)}
        current = np.array([remap[v] for v in made["landmark_vertices"]])
    verts = model.mean.cpu().numpy()
    new, lines = choose(photo, target, iod, verts, current, args.radius)
    face = np.flatnonzero(model.vertex_ids < 9409)  # the kit's face part, as the fitter's contour
    if args.jaw:
        new_jaw, jaw_lines = choose_jaw(crop, photo, target, iod, verts, face, current, args.radius)
        new[:17] = new_jaw[:17]
        lines += jaw_lines
    print(f"{len(iod)} fitted train photos (landmark set '{used}'); annotation − dlib offset "
          f"{offset.round(2).tolist()} px removed")
    print("\n".join(lines))
    pn = photo[:, new].copy()
    rows = np.arange(len(iod))
    for k in range(17):
        if k != 8:
            pn[:, k] = photo[rows, contour_pick(crop, verts, face, new[k], -1.0 if k < 8 else 1.0)]
    print(f"NME on these fits: {100 * nme(f['fit'], f['gt']).mean():.2f} % with the set used, "
          f"{100 * nme(pn, f['gt']).mean():.2f} % with the new vertices (before refitting)")
    full = model.vertex_ids[new]
    if args.write:
        from facerecon.facemodel.model import LANDMARK_FILES

        dest = resource_path(LANDMARK_FILES[args.write])
        rounds = []
        if dest.exists() and used == args.write:  # a further round on fits made with this set
            rounds = json.loads(dest.read_text()).get("rounds", [])
        fits = {}
        if "config" in made:  # what shaped the fitted faces, in short
            cfg = made["config"]
            fits.update(engine=made.get("engine") or "fit", landmark_weight=cfg["weights"]["landmark"],
                        photo_weight=cfg["weights"]["photo"],
                        landmark_steps=cfg["landmark_steps"], steps=cfg["steps"])
        rounds.append({"fitted_with": used, **fits, "photos": int(len(iod)), "radius_mm": args.radius,
                       "jaw": bool(args.jaw), "moved": int((full != model.vertex_ids[current]).sum())})
        doc = {"format": "facerecon-landmark-vertices", "version": 1,
               "about": "Full ICT-FaceKit mesh vertex index of each iBUG 68 landmark (0-based), chosen on "
                        "300-W train by scripts/calibrate_landmarks.py; the jaw's (0-16) are the anchors of the "
                        "fitter's moving contour (the band each slides along).",
               "rounds": rounds, "vertex_ids": [int(i) for i in full]}
        tmp = dest.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(dest)
        print(f"wrote {dest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from facerecon.cli.engine_args import add_engine_arguments, add_fitting_arguments
    from facerecon.facemodel.model import LANDMARK_FILES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    fp = sub.add_parser("fit", help="fit 300-W train photos (resumable)")
    fp.add_argument("out", help="folder for the fits")
    fp.add_argument("--step", type=int, default=4, help="every N-th train photo")
    fp.add_argument("--part", default="0/1", help="I/N: this process's share")
    fp.add_argument("--threads", type=int, default=1, help="torch threads")
    add_engine_arguments(fp.add_argument_group("engine"))
    add_fitting_arguments(fp)
    cp = sub.add_parser("choose", help="choose vertices on a folder of fits")
    cp.add_argument("folder")
    cp.add_argument("--radius", type=float, default=6.0, help="search radius around the current vertex, mm")
    cp.add_argument("--write", metavar="SET", choices=list(LANDMARK_FILES),
                    help="write the choice as this landmark set (its file under facerecon/resources)")
    cp.add_argument("--jaw", action="store_true", help="also move the jaw anchors (the contour's bands)")
    args = ap.parse_args(argv)
    return cmd_fit(args) if args.cmd == "fit" else cmd_choose(args)


if __name__ == "__main__":
    raise SystemExit(main())
