"""``facerecon evaluate scan``: point-to-plane error (mm) of a predicted mesh against a 3D scan.

Built-in names instead of files: ``--scan lee-perry-smith`` (the shared real head scan, in mm,
with its 68 landmarks) and ``--pred ict-mean`` / ``--pred ict-mean-face`` (the ICT-FaceKit mean
face with / without eyeballs, landmarks included): the baselines every method must beat.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facerecon.cli import UserError

BUILTIN_SCANS = ("lee-perry-smith",)
BUILTIN_PREDS = {"ict-mean": "fit", "ict-mean-face": "face"}
PRED_PARTS = ("auto", "all", "face", "outer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, metavar="MESH",
                        help="predicted mesh (OBJ/PLY/GLB/STL, mm), or ict-mean / ict-mean-face")
    parser.add_argument("--scan", required=True, metavar="SCAN",
                        help="ground-truth scan (OBJ/PLY/GLB/STL), or lee-perry-smith")
    parser.add_argument("--pred-landmarks", metavar="FILE",
                        help="3D landmarks of the prediction (JSON or text: N rows of x y z in the "
                             "mesh's units, or vertex indices), or 'ict' for a mesh in ICT-FaceKit "
                             "vertex order (facerecon's output)")
    parser.add_argument("--pred-part", choices=PRED_PARTS, default="auto",
                        help="which part of a mesh in ICT-FaceKit vertex order is scored: all of it, the face "
                             "region (what BENCHMARKS.md scores), or the face's outer surface (no nostril or "
                             "lip insides, which no photo or scan shows); auto: the face region of a facerecon "
                             "mesh with more than the face (face.obj holds teeth, tongue, mouth and eye sockets), "
                             "else all")
    parser.add_argument("--scan-landmarks", metavar="FILE",
                        help="3D landmarks of the scan, same formats (iBUG-68 order: the nose tip "
                             "is number 30)")
    parser.add_argument("--scale", action=argparse.BooleanOptionalAction, default=False,
                        help="allow one isotropic scale in the alignment (reported)")
    parser.add_argument("--scan-units-to-mm", type=float, default=1.0, metavar="F",
                        help="multiply scan coordinates by F to get millimetres")
    parser.add_argument("--pred-units-to-mm", type=float, default=None, metavar="F",
                        help="multiply prediction coordinates by F to get millimetres (default: what a "
                             "facerecon OBJ/PLY declares in its header — face.obj in metres: 1000 — else 1)")
    parser.add_argument("--crop-radius", type=float, default=95.0, metavar="MM",
                        help="compare within this distance of the scan's nose tip")
    parser.add_argument("--heatmap", metavar="PNG", help="write a per-vertex error render here")
    parser.add_argument("--heatmap-max", type=float, default=5.0, metavar="MM",
                        help="error at the top of the heatmap colour scale (0: automatic)")
    parser.add_argument("--save-aligned", metavar="MESH",
                        help="write the prediction aligned to the scan (mm) to this file")
    parser.add_argument("--from-scan", action="store_true",
                        help="also measure the way MICC-style evaluators do: every scan point within the crop "
                             "to the whole prediction (all of --pred), after an ICP on those distances; for "
                             "lee-perry-smith without the eyeballs and teeth inside its head")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _load_pred(args):
    import numpy as np
    import trimesh

    from facerecon.evaluation.scan import load_landmarks, load_mesh

    if args.pred in BUILTIN_PREDS:
        from facerecon.facemodel import load_face_model

        fm = load_face_model(region=BUILTIN_PREDS[args.pred])
        verts = fm.mean.detach().cpu().double().numpy()
        mesh = trimesh.Trimesh(verts, fm.faces.cpu().numpy(), process=False)
        lmk = verts[fm.landmark_idx.cpu().numpy()]
    else:
        from facerecon.evaluation.scan import declared_units_to_mm

        if args.pred_units_to_mm is None:
            args.pred_units_to_mm = declared_units_to_mm(args.pred) or 1.0
        mesh = load_mesh(args.pred, args.pred_units_to_mm)
        lmk = None
    if args.pred_landmarks == "ict":
        lmk = _ict_landmarks(mesh, args.pred)
    elif args.pred_landmarks:
        lmk = load_landmarks(args.pred_landmarks, mesh.vertices, args.pred_units_to_mm or 1.0)
    part, region = args.pred_part, (_ict_region(mesh) if args.pred_part != "all" else None)
    if part == "auto":
        part = "face" if region not in (None, "face") and args.pred not in BUILTIN_PREDS else "all"
    args.pred_part_used = part
    if part != "all":
        mesh, face_lmk = _face_part(mesh, args.pred, part, region)
        if args.pred_landmarks in (None, "ict") and lmk is not None:
            lmk = face_lmk  # the same points, NaN where the outer surface leaves them out
    return mesh, (None if lmk is None else np.asarray(lmk, dtype=np.float64))


def _ict_region(mesh) -> str | None:
    """The ICT-FaceKit region whose vertex count the mesh has (its vertex order assumed), or None."""
    from facerecon.facemodel import REGIONS, load_face_model

    for region in REGIONS:
        if load_face_model(region=region).n_vertices == len(mesh.vertices):
            return region
    return None


def _ict_landmarks(mesh, name):
    """Landmark vertices of a mesh in the vertex order of one of the ICT regions."""
    from facerecon.evaluation.scan import MeshError
    from facerecon.facemodel import load_face_model

    region = _ict_region(mesh)
    if region is None:
        raise MeshError(f"{name}: {len(mesh.vertices)} vertices matches no ICT-FaceKit region, "
                        f"so --pred-landmarks ict cannot be used")
    return mesh.vertices[load_face_model(region=region).landmark_idx.cpu().numpy()]


def _face_part(mesh, name, part: str, region: str | None):
    """The face region (``part`` "face") or its outer surface ("outer") of a mesh in the vertex
    order of ICT's ``region`` (None: in none of them), with the face's 68 landmark points (NaN rows
    where the outer surface has none)."""
    import numpy as np

    from facerecon.evaluation.scan import MeshError
    from facerecon.facemodel import load_face_model
    from facerecon.facemodel.model import region_vertex_ids
    from facerecon.facemodel.surface import scoring_mesh

    if region is None:
        raise MeshError(f"{name}: {len(mesh.vertices)} vertices matches no ICT-FaceKit region, "
                        f"so --pred-part {part} cannot be used")
    full_ids = region_vertex_ids(region)
    face_ids = region_vertex_ids("face")
    position = face_ids if full_ids is None else np.searchsorted(full_ids, face_ids)
    face = load_face_model(region="face")
    verts = np.asarray(mesh.vertices, dtype=np.float64)[position]
    return scoring_mesh(verts, face.faces.cpu().numpy(), face.landmark_idx.cpu().numpy(),
                        "outer" if part == "outer" else "full")


def _load_scan(args):
    from facerecon.evaluation.scan import load_landmarks, load_mesh

    if args.scan in BUILTIN_SCANS:
        from facerecon.evaluation.scans import load_lee_perry_smith

        mesh, lmk = load_lee_perry_smith()
    else:
        mesh = load_mesh(args.scan, args.scan_units_to_mm)
        lmk = None
    if args.scan_landmarks:
        lmk = load_landmarks(args.scan_landmarks, mesh.vertices, args.scan_units_to_mm)
    return mesh, lmk


def run(args: argparse.Namespace) -> int:
    from facerecon.evaluation.heatmap import render_error_heatmap
    from facerecon.evaluation.scan import MeshError, evaluate_from_scan, evaluate_scan, save_mesh

    if args.crop_radius <= 0:
        raise UserError(f"--crop-radius must be positive, got {args.crop_radius}")
    try:
        pred, pred_lmk = _load_pred(args)
        scan, scan_lmk = _load_scan(args)
        result = evaluate_scan(pred, scan, pred_lmk, scan_lmk, allow_scale=args.scale,
                               crop_radius_mm=args.crop_radius)
        backward = None
        if args.from_scan:
            whole, whole_lmk = _load_pred(argparse.Namespace(**{**vars(args), "pred_part": "all"}))
            if args.scan in BUILTIN_SCANS:
                from facerecon.evaluation.scans import lee_perry_smith_surface

                scan = lee_perry_smith_surface()[0]
            backward = evaluate_from_scan(whole, scan, whole_lmk, scan_lmk, allow_scale=args.scale,
                                          crop_radius_mm=args.crop_radius)
    except MeshError as exc:
        raise UserError(str(exc)) from None
    heatmap = aligned = None
    try:
        if args.heatmap:
            heatmap = render_error_heatmap(result, args.heatmap,
                                           vmax_mm=args.heatmap_max if args.heatmap_max > 0 else None)
        if args.save_aligned:
            aligned = save_mesh(result.aligned_pred, args.save_aligned)
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None

    summary = {"pred": args.pred, "pred_part": args.pred_part_used, "scan": args.scan,
               "alignment": "similarity" if args.scale else "rigid", **result.summary()}
    if backward is not None:
        summary["from_scan"] = backward.summary()
    if heatmap:
        summary["heatmap"] = str(heatmap)
    if aligned:
        summary["aligned_pred"] = str(aligned)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
        return 0
    kind = f"similarity ICP, scale {result.scale:.4f}" if args.scale else "rigid ICP (no scale)"
    part = {"all": "", "face": " (its face region)", "outer": " (its face's outer surface)"}[args.pred_part_used]
    print(f"{Path(args.pred).name}{part} vs {Path(args.scan).name}: {result.n_points} prediction vertices "
          f"within {result.crop_radius_mm:g} mm of the nose tip; init {result.init}, {kind}, "
          f"{result.icp_iterations} iterations{'' if result.icp_converged else ' (not converged)'}")
    print(f"  RMSE {result.rmse_mm:.3f} mm   mean {result.mean_mm:.3f}   median {result.median_mm:.3f}"
          f"   p90 {result.p90_mm:.3f}   max {result.max_mm:.3f}")
    print(f"  scan -> prediction over the {100 * result.scan_coverage:.1f}% of the scan area it "
          f"covers: RMSE {result.scan_to_pred_rmse_mm:.3f} mm   mean {result.scan_to_pred_mean_mm:.3f}"
          f"   median {result.scan_to_pred_median_mm:.3f}   p90 {result.scan_to_pred_p90_mm:.3f}")
    if backward is not None:
        print(f"  from the scan, {backward.n_points} scan vertices to the whole prediction (its own ICP, "
              f"scale {backward.scale:.4f}): RMSE {backward.rmse_mm:.3f} mm   mean {backward.mean_mm:.3f}   "
              f"median {backward.median_mm:.3f}   area-weighted RMSE {backward.area_rmse_mm:.3f}")
    if heatmap:
        print(f"  heatmap: {heatmap}")
    if aligned:
        print(f"  aligned prediction: {aligned}")
    return 0
