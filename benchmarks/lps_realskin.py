"""Single-photo accuracy on the Lee Perry-Smith scan painted with REAL skin (issue 10's instrument):
the scan's geometry with de-lit albedo taken from held-out real photos of other people (carried on
by a landmark thin-plate-spline correspondence, no fitting), lit by SH light fitted to another
real photo, over real-photo backgrounds, some with a hair fringe or glasses drawn over the face.
Scored like ``lps_fit.py`` (95 mm crop around the nose tip, ICP, point-to-plane RMSE, rigid and
with scale), next to the ICT mean face.

    python tools/albedo_samples.py --set heldout          # once: the held-out skin samples
    python benchmarks/lps_realskin.py [--textures 4] [--texture-draw 0|1] [--head lps|lps-b|lps-c|lps-model]
        [--no-neutral] [--surface full|outer|both] [--json OUT] [--save-renders DIR] [FitConfig options]

Texture k of K (default 4) is the held-out sample at luminance quantile k/(K−1) (dark to light skin); its
light is the SH light fitted to the next sample in that order; texture K−2 wears a hair fringe,
texture K−1 glasses (every view); ``--texture-draw 1`` paints a second set of K skins at the quantiles
(k + ½)/K instead (numbered K..2K−1, so that ``per_view.py`` can pool both sets for per-view figures
over twice the skins). Nothing here reads facerecon's albedo model. ``--head`` renders
and scores one of the scan's reshaped heads instead (``facerecon.evaluation.scans.HEAD_WARPS``), or
(``lps-model``) the face model's own head at its 3D fit to the scan (:func:`model_head`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import trimesh

from facerecon.cli import set_cpu_threads
from facerecon.cli.engine_args import add_engine_arguments, add_fitting_arguments, engine_options, engine_record, fit_config
from facerecon.evaluation.real_skin import VIEWS, draw_occluder, paint_scan, render_focal, render_view, skin_transfer
from facerecon.evaluation.scan import evaluate_scan
from facerecon.evaluation.scans import HEAD_WARPS, load_lee_perry_smith
from facerecon.facemodel import load_face_model
from facerecon.facemodel.albedo import read_albedo_sample, sample_layout
from facerecon.facemodel.surface import scoring_mesh
from facerecon.imageio import NoFaceError, PreparedFace, align
from facerecon.imageio.align import apply_affine
from facerecon.imageio.skin import SkinClassifier
from facerecon.params import FaceParams
from facerecon.pipeline import FaceReconstructor
from facerecon.synthesis.backgrounds import PhotoBackgrounds

def load_samples(folder: Path, partner: np.ndarray, features: np.ndarray) -> list[dict]:
    """Held-out albedo samples (tools/albedo_samples.py), completed, sorted by skin luminance."""
    out = []
    for f in sorted(folder.glob("*.npz")):
        albedo, skin, info = read_albedo_sample(f, partner, features)
        out.append({"name": f.stem, "albedo": albedo, "skin": skin, **info})
    return sorted(out, key=lambda s: float(s["skin"] @ np.array([0.299, 0.587, 0.114])))


def on_landmarks(photo: np.ndarray, landmarks: np.ndarray) -> PreparedFace:
    """The photo aligned and prepared on given 68 landmarks (photo pixels) instead of dlib's."""
    a = align(photo, landmarks)
    return PreparedFace(None, photo.shape[:2], a.crop, a.landmarks, np.asarray(landmarks, np.float32),
                        SkinClassifier.load().attention(a.crop), a.M, a.M_inv, (0, 0, 0, 0), 0.0)


def prepare(recon: FaceReconstructor, photo: np.ndarray, lm_true: np.ndarray):
    """dlib detection and landmarks; the scan's projected landmarks where dlib finds no face."""
    try:
        _, faces = recon.prepare(photo)
        return faces[0], "dlib"
    except NoFaceError:
        return on_landmarks(photo, lm_true), "scan (no detection)"


def pick_textures(n: int, textures: int, draw: int = 0) -> np.ndarray:
    """Which of ``n`` samples (sorted dark to light) the ``textures`` skins are: draw 0 at the
    luminance quantiles k/(K−1) (the darkest and the lightest included), draw 1 at (k + ½)/K: a second
    set of skins over the same range of tones (for K = 4, none of them draw 0's; other K may share one
    or two)."""
    if draw == 0:
        return np.linspace(0, n - 1, textures).round().astype(int)
    if draw == 1:
        return ((np.arange(textures) + 0.5) / textures * (n - 1)).round().astype(int)
    raise ValueError(f"texture draw {draw}: 0 or 1")


#: ``--identity-at capacity-landmarks``'s weight on the landmark vertices' squared distance (mm²) to
#: the head's points: the surface fit moves 0.03-0.08 mm off, its landmarks 4.2 -> 2.6 mm
#: (BENCHMARKS.md, "the true shape with its features in place").
CAPACITY_LANDMARK_WEIGHT = 0.1


def capacity_identity(scan: trimesh.Trimesh, scan_lmk: np.ndarray, landmark_weight: float = 0.0) -> torch.Tensor:
    """α (1, n_id) of the face model's own 3D fit to a head (``lps_capacity.py``'s, prior 0.01, no
    scale, neutral): the closest the model gets to its surface, with ``landmark_weight`` > 0 also
    keeping the model's landmark vertices near the head's points."""
    from lps_capacity import fit_model_to_scan

    fit = fit_model_to_scan(scan, scan_lmk, 0.01, False, expression="none", landmark_weight=landmark_weight)
    return torch.as_tensor(fit[1], dtype=torch.float32)[None]


#: ``--head`` of the head the face model reaches exactly: ICT's head at its own 3D fit to the scan.
MODEL_HEAD = "lps-model"


def model_head() -> tuple[trimesh.Trimesh, np.ndarray]:
    """A head the face model can reach exactly, standing in for the scan (mm): ICT's head region
    (face, scalp and neck, eyeballs) at its own 3D fit to the Lee Perry-Smith scan
    (``lps_capacity.py``'s, no scale, neutral), and its 68 landmark vertices (68,3). What the
    renders and fits of it tell, against the scan's, is what the scan's shape beyond the model's
    reach does to the fit."""
    alpha = capacity_identity(*load_lee_perry_smith("lps"))
    head = load_face_model("head")
    with torch.no_grad():
        verts = head.shape(alpha, torch.zeros(1, head.n_exp))[0].numpy().astype(np.float64)
    return trimesh.Trimesh(verts, head.faces.numpy(), process=False), verts[head.landmark_idx.numpy()]


def scene(face, samples_dir: Path, textures: int, head: str = "lps", draw: int = 0):
    """What the renders need: the held-out samples (sorted dark to light), the ``textures`` picked
    from them (:func:`pick_textures`), the scan (reshaped as ``head`` says) and its landmarks, the
    scan-to-model skin transfer, the backgrounds."""
    mean = face.mean.numpy().astype(np.float64)
    partner, features = sample_layout(mean, mean[face.landmark_idx.numpy()])
    samples = load_samples(samples_dir, partner, features)
    if len(samples) < textures + 1:
        raise SystemExit(f"{samples_dir}: {len(samples)} samples, need {textures + 1} "
                         f"(run tools/albedo_samples.py --set heldout)")
    pick = pick_textures(len(samples), textures, draw)
    scan, scan_lmk = model_head() if head == MODEL_HEAD else load_lee_perry_smith(head)
    transfer = skin_transfer(scan, scan_lmk, mean, mean[face.landmark_idx.numpy()])
    return samples, pick, scan, scan_lmk, transfer, PhotoBackgrounds()


def real_skin_renders(samples: list[dict], pick: np.ndarray, views: list[str], seed: int, transfer, scan_lmk: np.ndarray,
                      backgrounds: PhotoBackgrounds, occluders: bool = True, distance: float = 1000.0, draw: int = 0,
                      flat: bool = False):
    """Every render of the benchmark, texture by texture: ``(k, sample, occluder, view, photo,
    scan landmarks in the photo)``. Texture k of ``len(pick)`` paints ``samples[pick[k]]``, lit by
    the next sample's SH light; the last two wear a fringe and glasses (unless ``occluders`` is
    False: the same renders bare, to tell what the occluders cost). ``draw`` > 0 (the second set of
    skins, :func:`pick_textures`) also draws its own backgrounds and occluders. ``flat``: every vertex
    takes the sample's median skin colour (no brows, lips or blemishes; a diagnostic)."""
    textures = len(pick)
    for k, i in enumerate(pick):
        smp = samples[i]
        light = samples[(i + 1) % len(samples)]["params"]
        sizes = FaceParams.zeros(1).sizes()
        gamma = FaceParams.from_vector(torch.tensor(light[None]), sizes).gamma[0].numpy()
        pattern = np.broadcast_to(smp["skin"], smp["albedo"].shape) if flat else smp["albedo"]
        albedo = paint_scan(transfer, pattern, smp["skin"])
        occluder = {textures - 2: "fringe", textures - 1: "glasses"}.get(k, "none") if occluders else "none"
        for view in views:
            rng = np.random.default_rng([seed, k, list(VIEWS).index(view), *([draw] if draw else [])])
            bg, _ = backgrounds.sample(rng, 512)
            pitch, yaw = VIEWS[view]
            photo, lm_true = render_view(transfer, albedo, scan_lmk, pitch, yaw, gamma, bg, distance=distance)
            if occluder != "none":
                photo = draw_occluder(photo, lm_true, occluder, rng)
            yield k, smp, occluder, view, photo, lm_true


def held_identities(spec: str, face, scan, scan_lmk: np.ndarray):
    """``--identity-at``'s identity for a render, as a function of (texture number, view) giving α
    (1, n_id): the face model's own 3D fit to the head's surface ("capacity"; "capacity-landmarks":
    its landmark vertices also held near the head's points), its mean ("mean"), or each render's
    row of a ``--save-params`` file (a SystemExit where the file lacks a render)."""
    if spec in ("capacity", "capacity-landmarks", "mean"):
        alpha = torch.zeros(1, face.n_id)
        if spec != "mean":
            alpha = capacity_identity(scan, scan_lmk, CAPACITY_LANDMARK_WEIGHT if spec == "capacity-landmarks" else 0.0)
        return lambda texture, view: alpha
    try:
        saved = np.load(spec)
        rows = {(int(t), str(v)): p for t, v, p in zip(saved["texture"], saved["view"], saved["params"])}
    except (OSError, KeyError, ValueError) as e:
        raise SystemExit(f"--identity-at {spec}: not capacity, capacity-landmarks, mean or a --save-params file "
                         f"({e})") from None

    def of_render(texture: int, view: str) -> torch.Tensor:
        if (texture, view) not in rows:
            raise SystemExit(f"--identity-at {spec}: no fit of texture {texture}, view {view}")
        return FaceParams.from_vector(torch.as_tensor(rows[texture, view][None]), FaceParams.zeros(1).sizes()).alpha
    return of_render


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=Path, default=Path("work/albedo/heldout"))
    ap.add_argument("--textures", type=int, default=4)
    ap.add_argument("--views", nargs="+", default=list(VIEWS))
    ap.add_argument("--json", help="write every row and the summary here")
    ap.add_argument("--save-renders", type=Path, help="write the renders here (PNG, for looking at)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--texture-draw", type=int, choices=(0, 1), default=0,
                    help="which set of held-out skins: 0 at the luminance quantiles k/(K-1), 1 a second set at "
                         "(k + 1/2)/K with its own backgrounds and occluders (pool both for per-view figures "
                         "over twice the skins: per_view.py); draw 1's textures are numbered K..2K-1")
    ap.add_argument("--no-occluders", action="store_true",
                    help="render the fringe and glasses textures bare (a diagnostic: what the occluders cost)")
    ap.add_argument("--flat-skin", action="store_true",
                    help="paint the whole head each sample's median skin colour, without the photo's pattern (brows, "
                         "lips, blemishes; a diagnostic: what the skin's pattern does to the fit)")
    ap.add_argument("--bare-landmarks", action="store_true",
                    help="fit the fringe and glasses renders on the landmarks dlib finds on the same render without "
                         "its occluder (a diagnostic: what the detector's displaced points cost)")
    ap.add_argument("--head", choices=(*HEAD_WARPS, MODEL_HEAD), default="lps",
                    help="the scan as recorded, the same scan smoothly reshaped into a head of other proportions "
                         "(facerecon.evaluation.scans.HEAD_WARPS; a stand-in for a second scan), or lps-model: the "
                         "face model's own head at its 3D fit to the scan (a head the model reaches exactly; a "
                         "diagnostic: what the scan's shape beyond the model's reach does)")
    ap.add_argument("--distance", type=float, default=1000.0,
                    help="camera distance of the renders (to the head's centre of rotation), mm; the focal length "
                         "follows so the face keeps its size in the image (400: a selfie at arm's length, "
                         "3000: a portrait lens)")
    ap.add_argument("--scan-landmarks", action="store_true",
                    help="fit on the scan's own 68 landmarks projected into each render instead of dlib's (a "
                         "diagnostic: what the detector's points cost)")
    ap.add_argument("--scan-pose-start", action="store_true",
                    help="start the fit from the pose PnP finds on the scan's own 68 points projected into each "
                         "render (the stages still fit dlib's points; a diagnostic: what a right starting pose gains)")
    ap.add_argument("--lens", choices=("unknown", "true"), default="unknown",
                    help="what the fit is told of the camera: nothing (as a photo without EXIF: the fitter's "
                         "default, a face about 1 m away) or the renders' true focal length (as EXIF would)")
    ap.add_argument("--no-neutral", action="store_true", help="skip scoring the neutral mesh (half the scan ICP time)")
    ap.add_argument("--surface", choices=("full", "outer", "both"), default="full",
                    help="score every vertex of the face region (full), its outer surface alone (outer: no "
                         "nostril or lip insides, which no photo or scan shows; facerecon.facemodel.surface), or both")
    ap.add_argument("--save-params", type=Path, help="write every fit's FaceParams (flat, one row per render) here (.npz)")
    ap.add_argument("--identity-at", metavar="capacity|capacity-landmarks|mean|FITS.npz",
                    help="hold the identity at the face model's own 3D fit to the head (capacity: lps_capacity.py's, "
                         "no scale, no expression; what the model can reach; capacity-landmarks: the same with "
                         "the model's landmark vertices held near the head's points), at its mean face, or at each "
                         "render's identity in a --save-params file of the same renders, and fit pose, expression, "
                         "albedo and light alone (a diagnostic: the loss terms each shape leaves; every row records "
                         "its fit's final terms)")
    add_engine_arguments(ap.add_argument_group("engine"))
    add_fitting_arguments(ap)
    args = ap.parse_args()
    set_cpu_threads(None)

    face = load_face_model("face")
    mean = face.mean.numpy().astype(np.float64)
    samples, pick, scan, scan_lmk, transfer, backgrounds = scene(face, args.samples, args.textures, args.head,
                                                                     args.texture_draw)
    options = engine_options(args)
    config = fit_config(args, options["engine"])
    held = held_identities(args.identity_at, face, scan, scan_lmk) if args.identity_at else None
    if held is not None:
        config = replace(config, hold_identity=True)
    recon = FaceReconstructor(config=config, **options)
    faces_np = face.faces.numpy()
    rows: list[dict] = []
    saved: dict[str, list] = {"params": [], "view": [], "texture": []}

    surfaces = ("full", "outer") if args.surface == "both" else (args.surface,)

    def score(verts: np.ndarray, method: str, **info) -> list[float]:
        """RMSE rigid and with scale on the first surface asked for (rows for every surface)."""
        out = []
        for surface in surfaces:
            pred, points = scoring_mesh(verts, faces_np, face.landmark_idx.numpy(), surface)
            for scale in (False, True):
                r = evaluate_scan(pred, scan, points, scan_lmk, allow_scale=scale)
                rows.append({"method": method, "scale": scale, "rmse_mm": r.rmse_mm, "surface": surface, **info})
                out.append(r.rmse_mm)
        return out[:2]

    mean_rmse = score(mean, "mean face", view="-", texture="-")
    print(f"mean face: rigid {mean_rmse[0]:.3f} mm, scale {mean_rmse[1]:.3f} mm", flush=True)
    renders = real_skin_renders(samples, pick, args.views, args.seed, transfer, scan_lmk, backgrounds,
                                occluders=not args.no_occluders, distance=args.distance, draw=args.texture_draw,
                                flat=args.flat_skin)
    # the same renders without occluders, drawn only where --bare-landmarks needs them
    bare = (real_skin_renders(samples, pick, args.views, args.seed, transfer, scan_lmk, backgrounds, occluders=False,
                              distance=args.distance, draw=args.texture_draw)
            if args.bare_landmarks else itertools.repeat((None,) * 6))
    for (k, smp, occluder, view, photo, lm_true), (*_, bare_photo, _) in zip(renders, bare):
        if args.save_renders:
            import cv2

            args.save_renders.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(args.save_renders / f"t{k}_{view}.png"), photo[:, :, ::-1])
        if args.scan_landmarks:  # dlib is not run at all
            prep, lm_source = on_landmarks(photo, lm_true), "scan"
        else:
            prep, lm_source = prepare(recon, photo, lm_true)
        if args.bare_landmarks and occluder != "none":
            prep, lm_source = on_landmarks(photo, prepare(recon, bare_photo, lm_true)[0].landmarks_photo), "dlib, bare render"
        if args.lens == "true":  # the renders' focal length in photo pixels (render_view's camera)
            prep = replace(prep, focal_photo=render_focal(photo.shape[1], args.distance))
        tex = k + args.texture_draw * args.textures  # draws pooled later keep their skins apart
        init = None
        if args.scan_pose_start:  # the scan's points in this crop, through the crop's alignment
            lm_crop = torch.as_tensor(apply_affine(np.asarray(prep.M, np.float64), lm_true)[None], dtype=torch.float32)
            init = recon.fitter.init_pose(lm_crop, recon.crop_camera([prep]))
        if held is not None:  # the default start (PnP on the detected points) with the held identity
            if init is None:
                init = recon.fitter.init_pose(torch.as_tensor(prep.landmarks_crop[None]), recon.crop_camera([prep]))
            init = replace(init, alpha=held(tex, view).clone())
        t0 = time.perf_counter()
        rec = recon.fit_prepared([(photo, prep)], init=init)[0]
        dt = time.perf_counter() - t0
        info = dict(view=view, texture=tex, skin=smp["name"], occluder=occluder, landmarks=lm_source, seconds=dt,
                    terms=rec.losses)
        r_fit = score(rec.vertices(face), "fit", **info)
        saved["params"].append(rec.params.to_vector()[0].numpy())
        saved["view"].append(view)
        saved["texture"].append(tex)
        r_neu = [float("nan")] * 2
        if not args.no_neutral:
            with torch.no_grad():
                r_neu = score(face.shape(rec.params.alpha)[0].numpy(), "fit neutral", **info)
        print(f"t{tex} {view:8s} {occluder:7s} fit {r_fit[0]:.3f}/{r_fit[1]:.3f}  neutral "
              f"{r_neu[0]:.3f}/{r_neu[1]:.3f} mm  ({dt:.1f} s, {lm_source})", flush=True)

    summary: dict = {"config": asdict(config), "head": args.head, "distance_mm": args.distance, "lens": args.lens,
                     "texture_draw": args.texture_draw, "identity_at": args.identity_at, "flat_skin": args.flat_skin,
                     "surface": surfaces[0],
                     "engine": engine_record(options) or {"engine": "fit"},
                     "mean_face_rmse_mm": {"rigid": mean_rmse[0], "scale": mean_rmse[1]},
                     "textures": [samples[i]["name"] for i in pick], "per_view": {}}
    for method in ("fit",) if args.no_neutral else ("fit", "fit neutral"):
        for view in args.views:
            for scale, tag in ((False, "rigid"), (True, "scale")):
                v = [r["rmse_mm"] for r in rows if r["method"] == method and r["view"] == view
                     and r["scale"] == scale and r["surface"] == surfaces[0]]
                ref = mean_rmse[int(scale)]
                summary["per_view"].setdefault(method, {}).setdefault(view, {})[tag] = {
                    "rmse_mm": float(np.mean(v)), "vs_mean_face": float(np.mean(v) / ref - 1)}
        for surface in surfaces:  # "overall": the first surface; "overall_outer" when both
            for scale, tag in ((False, "rigid"), (True, "scale")):
                v = [r["rmse_mm"] for r in rows if r["method"] == method and r["scale"] == scale
                     and r["surface"] == surface]
                key = "overall" if surface == surfaces[0] else f"overall_{surface}"
                summary.setdefault(key, {}).setdefault(method, {})[tag] = float(np.mean(v))
        if len(surfaces) > 1:
            ref = [r["rmse_mm"] for r in rows if r["method"] == "mean face" and r["surface"] == surfaces[1]]
            summary["mean_face_rmse_mm_" + surfaces[1]] = {"rigid": ref[0], "scale": ref[1]}
    fits = [r["seconds"] for r in rows if r["method"] == "fit" and not r["scale"]]
    summary["seconds_per_photo"] = float(np.mean(fits))
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({**summary, "rows": rows}, indent=1))
    if args.save_params:
        np.savez_compressed(args.save_params, params=np.stack(saved["params"]), view=np.array(saved["view"]),
                            texture=np.array(saved["texture"]), textures=np.array(summary["textures"]),
                            head=np.array(args.head), texture_draw=np.array(args.texture_draw))


if __name__ == "__main__":
    main()
