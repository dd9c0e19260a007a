"""MediaPipe Face Mesh (``benchmarks/peers/mediapipe_facemesh.py``) on facerecon's own instruments.

    python benchmarks/peer_scores.py map MP_300W_TRAIN.npz                # once: its 68 points
    python benchmarks/peer_scores.py landmarks MP_300W_TEST.npz [--json OUT]
    python benchmarks/peer_scores.py scan MP_RENDERS.npz --params FITS.npz [--json OUT]
    python benchmarks/peer_scores.py regions MP_RENDERS.npz --params FITS.npz [--json OUT]
    python benchmarks/peer_scores.py lfw MP_LFW.npz [--json OUT]

``map``: which of the 468 vertices stands for each iBUG-68 point, chosen on 300-W *train*'s
annotations (the vertex whose image position is nearest the annotated point, on average over the
photos, in inter-ocular units); written to ``benchmarks/peers/mediapipe_68.json`` and used by the
rest. ``landmarks``: NME of those 68 vertices on 300-W test (eye-corner normalisation, as
``facerecon evaluate landmarks``). ``scan``: the real-skin renders of ``lps_realskin.py
--save-renders DIR --save-params FITS.npz`` (file ``t{texture}_{view}.png``) scored against the
scan like facerecon's fits, at the standard 95 mm crop and at a 60 mm crop that MediaPipe's mesh
(forehead to chin, no ears) covers, next to the ICT mean face and the fits in ``FITS.npz``, ICT
meshes also on their outer surface (``facerecon.facemodel.surface``). ``regions``: the 60 mm
crop's error split by feature (nose, eyes, mouth, brows, between), outer surface, with scale.
MediaPipe's mesh has no metric size: it is scaled so that its outer eye corners lie as far apart as
the ICT mean face's (the rigid figure thus assumes a mean eye width; the scaled one does not).
``lfw``: identity figures (``identity_lfw.py``'s) of the 468 points after a similarity Procrustes
alignment to their mean, less the mean (MediaPipe has no identity/expression split).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import trimesh

MAP_FILE = Path(__file__).parent / "peers" / "mediapipe_68.json"


def load_peer(path: Path) -> dict:
    z = np.load(path)
    return {k: z[k] for k in z.files}


def derive_map(peer: dict) -> np.ndarray:
    """(68,) vertex per iBUG-68 point: least mean image distance / inter-ocular over the photos."""
    from facerecon.evaluation.landmarks import normaliser
    from facerecon.imageio.pts import read_pts

    cost = np.zeros((68, 468))
    for name, ok, v in zip(peer["names"], peer["ok"], peer["vertices"]):
        if ok:
            gt = read_pts(Path(name).with_suffix(".pts"))
            d = np.linalg.norm(gt[:, None, :] - v[None, :, :2], axis=-1)  # (68,468) pixels
            cost += d / normaliser(gt)
    return cost.argmin(axis=1)


def peer_map() -> np.ndarray:
    if not MAP_FILE.exists():
        raise SystemExit(f"{MAP_FILE}: missing (run: peer_scores.py map MP_300W_TRAIN.npz)")
    return np.array(json.loads(MAP_FILE.read_text())["vertex_of_ibug68"])


def to_mm(v_px: np.ndarray, index: np.ndarray, eye_width_mm: float) -> np.ndarray:
    """Photo-pixel vertices (x right, y down, z away) as mm, x right, y up, z to the camera,
    scaled so that the outer eye corners (iBUG 36, 45) lie ``eye_width_mm`` apart."""
    v = v_px.astype(np.float64) * np.array([1.0, -1.0, -1.0])
    return v * (eye_width_mm / np.linalg.norm(v[index[36]] - v[index[45]]))


def mean_eye_width_mm(face) -> float:
    """Distance of the ICT mean face's outer eye corners (iBUG 36, 45), mm: the peer's scale."""
    mean, lmk = face.mean.numpy().astype(np.float64), face.landmark_idx.numpy()
    return float(np.linalg.norm(mean[lmk[36]] - mean[lmk[45]]))


def render_key(name: str) -> tuple[int, str] | None:
    """(texture, view) of a real-skin render's file name ``t{texture}_{view}.png``, else None."""
    m = re.fullmatch(r"t(\d+)_(.+)\.png", Path(name).name)
    return (int(m.group(1)), m.group(2)) if m else None


def fits_by_render(fits: Path, face) -> dict[tuple[int, str], np.ndarray]:
    """{(texture, view): the fit's mesh (V,3) mm, as fitted} of an ``lps_realskin.py --save-params`` file."""
    import torch

    from facerecon.params import FaceParams

    z = np.load(fits)
    sizes = FaceParams.zeros(1).sizes()
    out = {}
    for p, view, tex in zip(z["params"], z["view"], z["texture"]):
        fp = FaceParams.from_vector(torch.tensor(p[None], dtype=torch.float32), sizes)
        with torch.no_grad():
            out[(int(tex), str(view))] = face.shape(fp.alpha, fp.beta)[0].numpy().astype(np.float64)
    return out


def peer_row(peer: dict, photo: Path) -> int | None:
    """The row of ``photo`` in a peer file: by resolved path, else by file name where unique."""
    names = [Path(n) for n in peer["names"]]
    hits = [i for i, n in enumerate(names) if n.resolve() == photo.resolve()]
    hits = hits or [i for i, n in enumerate(names) if n.name == photo.name]
    return hits[0] if len(hits) == 1 else None


def landmarks(peer: dict) -> dict:
    from facerecon.evaluation.landmarks import FAILURE_THRESHOLD, nme
    from facerecon.imageio.pts import read_pts

    index = peer_map()
    gts = [read_pts(Path(n).with_suffix(".pts")) for n in peer["names"]]
    errs = np.array([nme(v[index, :2], gt) if ok else np.nan for v, gt, ok in zip(peer["vertices"], gts, peer["ok"])])
    found = ~np.isnan(errs)
    return {"photos": len(errs), "found": int(found.sum()), "nme_percent": float(100 * errs[found].mean()),
            "failure_percent": float(100 * (errs[found] > FAILURE_THRESHOLD).mean()),
            "seconds_per_photo": float(np.median(peer["seconds"][found]))}


def scan(peer: dict, fits: Path | None) -> dict:
    from facerecon.evaluation.scan import evaluate_scan
    from facerecon.evaluation.scans import load_lee_perry_smith
    from facerecon.facemodel import load_face_model
    from facerecon.facemodel.surface import scoring_mesh

    index = peer_map()
    face = load_face_model("face")
    lmk, faces = face.landmark_idx.numpy(), face.faces.numpy()
    eye_mm = mean_eye_width_mm(face)
    scan_mesh, scan_lmk = load_lee_perry_smith()
    crops = (95.0, 60.0)

    def score(pred: trimesh.Trimesh, points: np.ndarray) -> dict:
        """Per crop and alignment: RMSE of the prediction's vertices to the scan (the standard figure,
        weighted by vertex density) and of the scan's surface to the prediction where it covers it
        (area-weighted: the same for every mesh layout), the share it covers, the scale found."""
        out = {}
        for c in crops:
            for s, tag in ((False, "rigid"), (True, "scale")):
                r = evaluate_scan(pred, scan_mesh, points, scan_lmk, allow_scale=s, crop_radius_mm=c)
                out.update({f"{tag}_{int(c)}": r.rmse_mm, f"{tag}_{int(c)}_scan_to_pred": r.scan_to_pred_rmse_mm,
                            f"{tag}_{int(c)}_coverage": r.scan_coverage, f"{tag}_{int(c)}_s": r.scale})
        return out

    def score_ict(verts: np.ndarray) -> dict:
        """The full face region, then its outer surface (no nostril or lip insides)."""
        return {**score(*scoring_mesh(verts, faces, lmk)),
                **{f"outer_{k}": x for k, x in score(*scoring_mesh(verts, faces, lmk, "outer")).items()}}

    rows = [{"method": "ICT mean face", "view": "-", "texture": "-", **score_ict(face.mean.numpy())}]
    ours = fits_by_render(fits, face) if fits is not None else {}
    for name, ok, v in zip(peer["names"], peer["ok"], peer["vertices"]):
        key = render_key(name)
        if key is None:
            continue
        if ok:
            mm = to_mm(v, index, eye_mm)
            rows.append({"method": "MediaPipe Face Mesh", "view": key[1], "texture": key[0],
                         **score(trimesh.Trimesh(mm, peer["triangles"], process=False), mm[index])})
        else:
            rows.append({"method": "MediaPipe Face Mesh", "view": key[1], "texture": key[0], "no_face": True})
        if key in ours:
            rows.append({"method": "facerecon (FITS)", "view": key[1], "texture": key[0], **score_ict(ours[key])})
        print({k: (round(x, 3) if isinstance(x, float) else x) for k, x in rows[-1].items()}, flush=True)
    summary = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        done = [r for r in rows if r["method"] == method and not r.get("no_face")]
        summary[method] = {k: float(np.mean([r[k] for r in done])) for k in done[0]
                           if k.startswith(("rigid", "scale", "outer"))}
        summary[method]["n"] = len(done)
        views = sorted({r["view"] for r in done})
        summary[method]["per_view_scale_95"] = {w: float(np.mean([r["scale_95"] for r in done if r["view"] == w]))
                                               for w in views}
    return {"summary": summary, "rows": rows}


#: iBUG-68 points of each feature, for the per-feature split of ``regions``.
FEATURES = {"nose": range(27, 36), "eyes": range(36, 48), "mouth": range(48, 68), "brows": range(17, 27)}


def feature_errors(result, verts: np.ndarray, points: np.ndarray, reach_mm: float = 12.0) -> dict:
    """{feature: (RMSE, mean signed error, vertices)} of an ``evaluate_scan`` result: each scored
    vertex goes to the feature of its nearest landmark (NaN rows skipped) when within ``reach_mm``,
    else to "between"."""
    v = np.asarray(verts)[result.vertex_indices]
    d = np.linalg.norm(v[:, None] - points[None], axis=2)
    d[:, np.isnan(points).any(axis=1)] = np.inf
    near, dist = d.argmin(axis=1), d.min(axis=1)
    masks = {f: np.isin(near, list(r)) & (dist < reach_mm) for f, r in FEATURES.items()}
    masks["between"] = dist >= reach_mm
    return {f: (float(np.sqrt(np.mean(result.errors_mm[m] ** 2))) if m.any() else float("nan"),
                float(np.mean(result.signed_errors_mm[m])) if m.any() else float("nan"), int(m.sum()))
            for f, m in masks.items()}


def regions(peer: dict, fits: Path, crop_mm: float = 60.0) -> dict:
    """Per-feature errors (with scale, ``crop_mm`` crop, ICT meshes on their outer surface) of the
    mean face, the fits in ``fits`` and the peer's meshes of the same renders, averaged over them."""
    from facerecon.evaluation.scan import evaluate_scan
    from facerecon.evaluation.scans import load_lee_perry_smith
    from facerecon.facemodel import load_face_model
    from facerecon.facemodel.surface import scoring_mesh

    index = peer_map()
    face = load_face_model("face")
    lmk, faces = face.landmark_idx.numpy(), face.faces.numpy()
    eye_mm = mean_eye_width_mm(face)
    scan_mesh, scan_lmk = load_lee_perry_smith()
    ours = fits_by_render(fits, face)
    found: dict[str, list[dict]] = {}

    def add(method: str, mesh: trimesh.Trimesh, points: np.ndarray) -> None:
        r = evaluate_scan(mesh, scan_mesh, points, scan_lmk, allow_scale=True, crop_radius_mm=crop_mm)
        found.setdefault(method, []).append(feature_errors(r, mesh.vertices, points))

    add("ICT mean face", *scoring_mesh(face.mean.numpy(), faces, lmk, "outer"))
    for name, ok, v in zip(peer["names"], peer["ok"], peer["vertices"]):
        key = render_key(name)
        if not ok or key not in ours:
            continue
        mm = to_mm(v, index, eye_mm)
        add("MediaPipe Face Mesh", trimesh.Trimesh(mm, peer["triangles"], process=False), mm[index])
        add("facerecon (FITS)", *scoring_mesh(ours[key], faces, lmk, "outer"))
    return {method: {f: {"rmse_mm": float(np.nanmean([o[f][0] for o in outs])),
                         "signed_mm": float(np.nanmean([o[f][1] for o in outs])),
                         "vertices": float(np.mean([o[f][2] for o in outs]))} for f in outs[0]}
            | {"renders": len(outs)} for method, outs in found.items()}


def lfw(peer: dict) -> dict:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from identity_lfw import identity_figures, subset

    from facerecon.evaluation.scan import umeyama

    people = subset(40, 10)
    where = {str(Path(n).resolve()): i for i, n in enumerate(peer["names"])}
    vecs, owner = [], []
    missing = 0
    for pi, (_, files) in enumerate(people):
        for f in files:
            i = where.get(str(f.resolve()))
            if i is None or not peer["ok"][i]:
                missing += 1
                continue
            vecs.append(peer["vertices"][i].astype(np.float64))
            owner.append(pi)
    ref = vecs[0]
    for _ in range(3):  # generalised Procrustes: align every face to the current mean, then re-mean
        aligned = []
        for v in vecs:
            s, R, t = umeyama(v, ref, with_scale=True)
            aligned.append(s * v @ R.T + t)
        ref = np.mean(aligned, axis=0)
    x = np.stack([a - ref for a in aligned]).reshape(len(aligned), -1)
    owner = np.array(owner)
    figs = [identity_figures(x, owner, seed) for seed in range(10)]
    return {"photos": len(owner), "missing": missing, "auc": figs[0]["auc"],
            "within_between_ratio": figs[0]["within_between_ratio"],
            "kmeans_ari_mean_10_seeds": float(np.mean([f["kmeans_ari"] for f in figs]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", choices=("map", "landmarks", "scan", "regions", "lfw"))
    ap.add_argument("peer", type=Path, help="mediapipe_facemesh.py's .npz")
    ap.add_argument("--params", type=Path, help="scan: lps_realskin.py --save-params file of the same renders")
    ap.add_argument("--crop", type=float, default=60.0, help="regions: the crop's radius around the nose tip, mm")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    peer = load_peer(args.peer)
    if args.task == "map":
        index = derive_map(peer)
        MAP_FILE.write_text(json.dumps({"source": "300-W train annotations, peer_scores.py map",
                                        "photos": int(peer["ok"].sum()),
                                        "vertex_of_ibug68": index.tolist()}) + "\n")
        print(f"{MAP_FILE}: {index.tolist()}")
        return
    if args.task == "regions" and args.params is None:
        ap.error("regions needs --params")
    out = ({"landmarks": landmarks, "lfw": lfw}[args.task](peer) if args.task not in ("scan", "regions")
           else scan(peer, args.params) if args.task == "scan" else regions(peer, args.params, args.crop))
    print(json.dumps(out if args.task != "scan" else out["summary"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
