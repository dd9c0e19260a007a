"""Saved real-skin fits scored in the direction of issue 10's evaluator: from the scan to the prediction.

    python benchmarks/lps_realskin.py --save-params FITS.npz [options]      # once per engine or setting
    python benchmarks/from_scan.py FITS.npz [MORE.npz ...] [--neutral] [--capacity] [--features] [--json OUT]
        [--shrink W ...] [--offset CACHES --offset-weights W ...] [--crop MM] [--peer MP.npz]

``lps_realskin.py`` measures each fitted mesh's vertices to the scan (prediction -> scan). Issue
10's evaluator measures the other way: each scan point within 95 mm of its nose tip to the
predicted surface, after an ICP that minimises those distances. The two weight the face
differently. ICT-FaceKit's vertices crowd the eyes, nose and mouth; a scan's points cover the
forehead, the cheeks and the underside of the chin as densely as the nose. This script scores
the saved fits (ICT's whole head, as ``face.obj`` holds it) from the Lee Perry-Smith scan's outer
surface (``lee_perry_smith_surface``: no eyeballs, teeth or mouth inside the head). It prints
rigid and with scale, vertex-weighted (the headline, as the issue's evaluator) and area-weighted,
next to the ICT mean face. ``--capacity`` adds the face model fitted to the scan in 3D
(``lps_capacity.py``: free expression, and identity alone). ``--features`` splits the error by
the nearest scan landmark (within 12 mm) and by the two bands a photo barely shows (under the
chin, above the brows). ``--shrink`` and ``--offset`` re-score the same fits with their identity
moved (towards the mean face; along the photo population's common offset), as
``realskin_rescore.py`` does in the other direction. Fits made on a reshaped head
(``lps_realskin.py --head lps-b``) are scored against that head, as their file records. Each
summary also gives the similarity ICP's scale onto the scan, per view (the size the fit gave the
head: a single photo barely shows it, so it sets much of the rigid figure).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import trimesh

from facerecon.evaluation.scan import FromScanResult, evaluate_from_scan
from facerecon.evaluation.scans import HEAD_WARPS, lee_perry_smith_surface
from facerecon.facemodel import load_face_model
from facerecon.params import FaceParams

#: iBUG-68 points of each feature for ``--features``; a scan point joins the feature of its nearest
#: landmark if that lies within 12 mm.
FEATURES = {"jaw": range(0, 17), "nose": range(27, 36), "eyes": range(36, 48), "mouth": range(48, 68),
            "brows": range(17, 27)}


def feature_split(result: FromScanResult, scan_vertices: np.ndarray, scan_lmk: np.ndarray,
                  reach_mm: float = 12.0) -> dict:
    """{region: (RMSE mm, mean signed mm)} of a result's scan points: by nearest landmark
    (``FEATURES``), the bands more than 60 mm under (chin) or 40 mm above (brows) the nose tip,
    and the rest (the cheeks, mostly). A point may be in a feature and a band."""
    p = scan_vertices[result.vertex_indices]
    d = np.linalg.norm(p[:, None] - scan_lmk[None], axis=2)
    near, dist = d.argmin(1), d.min(1)
    rel_y = p[:, 1] - scan_lmk[30, 1]
    masks = {k: np.isin(near, list(r)) & (dist < reach_mm) for k, r in FEATURES.items()}
    masks["under the chin"] = rel_y < -60.0
    masks["above the brows"] = rel_y > 40.0
    masks["the rest (cheeks)"] = ~np.any(list(masks.values()), axis=0)
    e, s = result.errors_mm, result.signed_errors_mm
    return {k: (float(np.sqrt(np.mean(e[m] ** 2))), float(s[m].mean())) for k, m in masks.items() if m.any()}


def score(verts: np.ndarray, faces: np.ndarray, lmk_idx: np.ndarray, features: bool, crop_mm: float = 95.0,
          head: str = "lps") -> dict:
    """Rigid and with-scale figures of one mesh (V,3) mm (ICT's whole head, or a peer's mesh),
    ``lmk_idx`` its 68 landmark vertices, against ``head`` (the scan or one of its reshaped heads)."""
    scan, scan_lmk = lee_perry_smith_surface(head)
    mesh = trimesh.Trimesh(verts, faces, process=False)
    out = {}
    for scale, tag in ((False, "rigid"), (True, "scale")):
        r = evaluate_from_scan(mesh, scan, verts[lmk_idx], scan_lmk, allow_scale=scale, crop_radius_mm=crop_mm)
        out[tag] = r.rmse_mm
        out[f"{tag}_area"] = r.area_rmse_mm
        out[f"{tag}_rim"] = r.rim_share
        if scale:
            out["icp_scale"] = r.scale  # the prediction's size onto the scan (> 1: the prediction is smaller)
        if features:
            out[f"{tag}_features"] = feature_split(r, np.asarray(scan.vertices), scan_lmk)
    return out


def saved_meshes(path: Path, model, neutral: bool, shrink: float = 0.0, offset: np.ndarray | None = None):
    """(texture, view, vertices) of each fit in an ``lps_realskin.py --save-params`` file, its
    identity α moved to (1 − shrink)·α − ``offset`` if asked (expression, pose and light kept)."""
    z = np.load(path)
    sizes = FaceParams.zeros(1).sizes()
    for p, view, tex in zip(z["params"], z["view"], z["texture"]):
        fp = FaceParams.from_vector(torch.tensor(p[None], dtype=torch.float32), sizes)
        alpha = (1.0 - shrink) * fp.alpha
        if offset is not None:
            alpha = alpha - torch.as_tensor(offset, dtype=alpha.dtype)
        with torch.no_grad():
            v = model.shape(alpha, None if neutral else fp.beta)[0]
        yield int(tex), str(view), v.numpy().astype(np.float64)


def capacity_meshes(model, head: str = "lps") -> dict[str, np.ndarray]:
    """The face model fitted to the scan in 3D (``lps_capacity.py``, prior 0.01, with scale, 60
    rounds), whole head: free expression, and identity alone."""
    from lps_capacity import fit_model_to_scan  # a sibling script (main puts this folder on the path)

    from facerecon.evaluation.scans import load_lee_perry_smith

    scan, scan_lmk = load_lee_perry_smith(head)
    out = {}
    for mode, name in (("free", "model fitted to the scan (3D)"), ("none", "identity fitted to the scan")):
        _, alpha, info = fit_model_to_scan(scan, scan_lmk, 0.01, True, rounds=60, expression=mode)
        with torch.no_grad():
            beta = torch.tensor([info["beta"]], dtype=torch.float32)
            out[name] = model.shape(torch.tensor(alpha[None], dtype=torch.float32), beta)[0].numpy().astype(np.float64)
    return out


def summarise(rows: list[dict], mean_face: dict) -> dict:
    """Means over the rows, and the worst view's margin under the mean face (per view means)."""
    out = {}
    for tag in ("rigid", "scale", "rigid_area", "scale_area", "rigid_rim", "scale_rim", "icp_scale"):
        if tag in rows[0]:
            out[tag] = float(np.mean([r[tag] for r in rows]))
    views = sorted({r["view"] for r in rows})
    for tag in ("rigid", "scale"):
        per_view = {v: float(np.mean([r[tag] for r in rows if r["view"] == v])) for v in views}
        out[f"worst_view_margin_{tag}"] = float(1 - max(per_view.values()) / mean_face[tag])
        out[f"per_view_{tag}"] = per_view
    if "icp_scale" in rows[0]:
        out["per_view_icp_scale"] = {v: float(np.mean([r["icp_scale"] for r in rows if r["view"] == v])) for v in views}
    if "rigid_features" in rows[0]:
        for tag in ("rigid", "scale"):
            keys = rows[0][f"{tag}_features"]
            out[f"{tag}_features"] = {k: np.mean([r[f"{tag}_features"][k] for r in rows], 0).round(4).tolist()
                                      for k in keys}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fits", nargs="*", type=Path, help="lps_realskin.py --save-params files")
    ap.add_argument("--neutral", action="store_true", help="also score each fit's neutral mesh (identity alone)")
    ap.add_argument("--capacity", action="store_true", help="add the face model fitted to the scan in 3D (minutes)")
    ap.add_argument("--features", action="store_true", help="split each error by feature and band")
    ap.add_argument("--shrink", type=float, nargs="+", default=[0.0], metavar="W",
                    help="also score every fit with its identity shrunk towards the mean face, α → (1 − W)·α")
    ap.add_argument("--offset", nargs="+", type=Path, metavar="CACHE",
                    help="identity_lfw.py caches: with --offset-weights, α → α − W·ō, ō their people's "
                         "mean α (the photo population's common offset)")
    ap.add_argument("--offset-weights", type=float, nargs="+", default=[], metavar="W")
    ap.add_argument("--crop", type=float, default=95.0, metavar="MM",
                    help="radius of the scan's sphere around its nose tip (95: issue 10's; 60: the central face)")
    ap.add_argument("--peer", type=Path, metavar="NPZ",
                    help="MediaPipe Face Mesh on the same renders (peer_scores.py's input: mediapipe_facemesh.py "
                         "on lps_realskin.py --save-renders; scaled to the mean face's eye width); its mesh "
                         "stops at the face's outline, so the scan points beyond it count against it")
    ap.add_argument("--head", choices=tuple(HEAD_WARPS),
                    help="the head to score against (default: the one the fits were made on, else the scan)")
    ap.add_argument("--json", type=Path, help="write every row and the summaries here")
    args = ap.parse_args()

    heads = {str(z["head"]) if "head" in z.files else "lps" for z in map(np.load, args.fits)}
    if args.head:
        heads.add(args.head)
    if len(heads) > 1:
        raise SystemExit(f"the fits were made on different heads ({', '.join(sorted(heads))}): score them apart")
    head = heads.pop() if heads else "lps"  # the head lps_realskin.py --head rendered them from
    model = load_face_model("export")
    faces, lmk = model.faces.numpy(), model.landmark_idx.numpy()
    mean = score(model.mean.numpy().astype(np.float64), faces, lmk, args.features, args.crop, head)
    report: dict = {"head": head, "ICT mean face": mean}
    print(f"head: {head}", flush=True)

    def show(name: str, s: dict) -> None:
        worst = ""
        if "worst_view_margin_rigid" in s:
            worst = (f"   worst view {100 * s['worst_view_margin_rigid']:.1f} % / "
                     f"{100 * s['worst_view_margin_scale']:.1f} %")
        print(f"{name:48s} {s['rigid']:.3f} / {s['scale']:.3f} mm   area {s['rigid_area']:.3f} / "
              f"{s['scale_area']:.3f}{worst}", flush=True)
        if "icp_scale" in s:  # what sets the rigid figures: the size the fit gives the head
            views = "  ".join(f"{v} {x:.3f}" for v, x in s.get("per_view_icp_scale", {}).items())
            print(f"    size: ICP scale onto the scan {s['icp_scale']:.3f}" + (f" ({views})" if views else ""))
        for tag in ("rigid", "scale"):
            if f"{tag}_features" in s:
                print("    " + tag + ": " + "  ".join(f"{k} {v[0]:.2f} ({v[1]:+.2f})"
                                                   for k, v in s[f"{tag}_features"].items()))

    show("ICT mean face", mean)
    sys.path.insert(0, str(Path(__file__).parent))  # the sibling scripts imported below
    if args.capacity:
        for name, verts in capacity_meshes(model, head).items():
            report[name] = score(verts, faces, lmk, args.features, args.crop, head)
            show(name, report[name])
    if args.peer:
        from peer_scores import load_peer, mean_eye_width_mm, peer_map, render_key, to_mm  # a sibling script

        peer, index = load_peer(args.peer), peer_map()
        eye_mm = mean_eye_width_mm(load_face_model("face"))
        rows = []
        for name, ok, v in zip(peer["names"], peer["ok"], peer["vertices"]):
            key = render_key(name)
            if key is not None and ok:
                rows.append({"texture": key[0], "view": key[1],
                             **score(to_mm(v, index, eye_mm), peer["triangles"], index, args.features, args.crop,
                                     head)})
        report["MediaPipe Face Mesh"] = {**summarise(rows, mean), "n": len(rows), "rows": rows}
        show(f"MediaPipe Face Mesh ({len(rows)} renders)", report["MediaPipe Face Mesh"])
    moves: list[tuple[str, float, np.ndarray | None]] = [(f"α × {1 - w:g}" if w else "", w, None)
                                                         for w in args.shrink]
    if args.offset:
        from scan_case import population_offset  # a sibling script

        o = population_offset(args.offset, FaceParams.zeros(1).sizes()["alpha"])
        moves += [(f"α − {w:g} ō", 0.0, w * o) for w in args.offset_weights]
    for path in args.fits:
        for tag, shrink, offset in moves:
            for neutral in (False, True) if args.neutral else (False,):
                rows = []
                for tex, view, verts in saved_meshes(path, model, neutral, shrink, offset):
                    rows.append({"texture": tex, "view": view,
                                 **score(verts, faces, lmk, args.features, args.crop, head)})
                name = f"{path.name}{' ' + tag if tag else ''}{' (neutral)' if neutral else ''}"
                report[name] = {**summarise(rows, mean), "rows": rows}
                show(name, report[name])
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
