"""Texture completion and mesh-file figures on real photos (LFW) — BENCHMARKS.md, "Exports".

    python benchmarks/export_texture.py [--people 24] [--lfw ../shared/faces/lfw] [--json OUT]

Fits the first photo of the first ``--people`` LFW people (sorted by name) and measures, on the
1024² texture of the exported head:

* **completion error, real faces** — on photos seen frontally (|yaw| < 10°) the photo shows
  both halves, so one half can be hidden from the bake and rebuilt: every texel of the subject's
  right half (mean-face x < −3 mm, face part) loses its photo weight, the texture is completed,
  and the rebuilt texels are compared with what the photo gave them (texels of photo weight ≥ 0.9
  in the full bake). Against: the model colour that filled unseen texels before (fitted albedo ×
  light, gain-matched: ``complete=False``). Mean absolute error over channels, 0–255, median
  over texels, then the median over photos.
* **seam step** — on photos turned 15° or more, the mean colour difference between neighbouring
  texels (max over channels, 0–255) of the texture blurred by 3 texels (~1 mm; detail gone,
  steps kept) where the photo weight hands over (0.1–0.9), divided by the same inside the
  photo-only face (weight ≥ 0.99): 1 means the hand-over is as smooth as the photo itself. Same
  band for the model-colour fill before. The colour step across the hand-over: each texel the
  photo did not give (weight < 0.1) and the completion copies from its mirror partner (the far
  cheek, ear, eye), 8–20 texels from the nearest the photo gave (weight > 0.9),
  against that one (blurred textures, median max-channel difference, 0–255), new and before;
  for scale, the same for texels 14 apart inside the photo's part. And the step across the
  mirror line: texels 1–3 mm from x = 0 against their mirror partners.
* **PLY colour** — mean absolute difference (0–255) between face.ply's vertex colours and the
  texture at the vertex's UV: vertex colours read from the texture now, the fitted albedo before.
* **time** — write_reconstruction per photo (1024² texture, all files), warm caches.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from facerecon.cli import set_cpu_threads
from facerecon.export.atlas import model_atlas
from facerecon.export.headmesh import export_model
from facerecon.export.photo import posed_mesh
from facerecon.export.reconstruction import write_reconstruction
from facerecon.export.symmetry import texel_mirror
from facerecon.export.texture import (bake_texture_maps, delight, finish_bake, sample_photo, sample_texture,
                                      vertex_colors_from_texture)
from facerecon.export.uvraster import PART_NAMES, texel_geometry
from facerecon.facemodel import load_face_model
from facerecon.pipeline import FaceReconstructor

SIZE = 1024
STRENGTH = 0.5  # bake_texture_maps' default delight_strength


def texel_gradient(tex: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max-channel absolute differences (0–255) to the right and lower neighbours, (S,S) each,
    NaN where either texel is not in ``ok``."""
    t = tex.astype(np.float64)
    gx = np.full(ok.shape, np.nan)
    gy = np.full(ok.shape, np.nan)
    dx = np.abs(t[:, 1:] - t[:, :-1]).max(-1)
    dy = np.abs(t[1:] - t[:-1]).max(-1)
    gx[:, :-1] = np.where(ok[:, 1:] & ok[:, :-1], dx, np.nan)
    gy[:-1] = np.where(ok[1:] & ok[:-1], dy, np.nan)
    return gx, gy


def smooth(tex: np.ndarray, ok: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """The texture blurred (Gaussian, ``sigma`` texels) inside ``ok`` only (normalised
    convolution): what is left are colour changes over a millimetre or more — steps, not detail."""
    import cv2

    m = ok.astype(np.float64)
    num = cv2.GaussianBlur(tex.astype(np.float64) * m[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(m, (0, 0), sigma)[..., None]
    return np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)


def handover_steps(new: np.ndarray, old: np.ndarray, pw: np.ndarray, ok: np.ndarray, near: float = 8.0,
                   far: float = 20.0, shift: int = 14) -> tuple[float, float, float]:
    """The colour step where the photo hands over (medians, max channel, 0–255, of blurred
    textures): each texel of ``ok`` the photo did not give (weight < 0.1) ``near``–``far`` texels
    from the nearest texel it gave (weight > 0.9) against that texel, in the new and the old
    texture; and, for scale, texels ``shift`` apart inside the photo's part of the face."""
    import cv2

    given = ok & (pw > 0.9)
    dist, labels = cv2.distanceTransformWithLabels((~given).astype(np.uint8), cv2.DIST_L2, 5,
                                                   labelType=cv2.DIST_LABEL_PIXEL)
    flat = np.flatnonzero(given.ravel())
    lut = np.zeros(int(labels.max()) + 1, np.int64)
    lut[labels.ravel()[flat]] = flat
    sel = np.flatnonzero((ok & (pw < 0.1) & (dist >= near) & (dist <= far)).ravel())
    src = lut[labels.ravel()[sel]]
    n3, o3 = new.reshape(-1, 3), old.reshape(-1, 3)
    step_new = float(np.median(np.abs(n3[sel] - n3[src]).max(1))) if len(sel) else float("nan")
    step_old = float(np.median(np.abs(o3[sel] - o3[src]).max(1))) if len(sel) else float("nan")
    pair = given[:, :-shift] & given[:, shift:]
    base = float(np.median(np.abs(new[:, :-shift][pair] - new[:, shift:][pair]).max(1))) if pair.any() else float("nan")
    return step_new, step_old, base


def band_mean(gx: np.ndarray, gy: np.ndarray, band: np.ndarray) -> float:
    vals = np.concatenate([gx[band], gy[band]])
    return float(np.nanmean(vals))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=24)
    parser.add_argument("--lfw", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "faces" / "lfw")
    parser.add_argument("--json")
    parser.add_argument("--fits", type=Path, help="keep the fits in this file and reuse them (pickle)")
    args = parser.parse_args()
    set_cpu_threads(None)
    photos = [sorted(p.glob("*.jpg"))[0] for p in sorted(args.lfw.iterdir()) if p.is_dir()][: args.people]
    if args.fits and args.fits.exists():
        import pickle

        results = pickle.loads(args.fits.read_bytes())
    else:
        recon = FaceReconstructor(device="cpu")
        results, _ = recon.reconstruct_many([str(p) for p in photos], batch_size=8, progress=False)
        if args.fits:
            import pickle

            args.fits.write_bytes(pickle.dumps(results))
    head = load_face_model("head")
    model = export_model(head)
    atlas = model_atlas(model)
    geo = texel_geometry(model, atlas, SIZE)
    mirror = texel_mirror(model, atlas, SIZE)
    ras = geo.raster
    face = geo.part == PART_NAMES.index("face")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in results:
            yaw = float(np.degrees(r.params.angles[0, 1].item()))
            M_inv = np.asarray(r.prepared.M_inv)
            posed = posed_mesh(model, r.params)
            s = sample_photo(model, r.params, r.photo, M_inv, size=SIZE, atlas=atlas, posed=posed)
            new = bake_texture_maps(model, r.params, r.photo, M_inv, size=SIZE, atlas=atlas, posed=posed)
            old = bake_texture_maps(model, r.params, r.photo, M_inv, size=SIZE, atlas=atlas, posed=posed,
                                    complete=False, eyes=False)
            row = {"photo": Path(r.source).name, "yaw_deg": round(yaw, 1)}
            # completion error: hide the subject's right half of a frontal photo
            if abs(yaw) < 10:
                half = face & (geo.position[:, 0] < -3.0)
                truth = half & (s.weight >= 0.9)
                w = s.weight.copy()
                w[half] = 0.0
                color = delight(s, STRENGTH)
                hidden = finish_bake(model, atlas, SIZE, color, w, s.visible & ~half, s.model_color, np.ones(3),
                                     s.photo_scale, complete=True, eyes=True, shading=s.shading,
                                     relight_exponent=1.0 - STRENGTH)
                gain = old.color_gain
                flat = finish_bake(model, atlas, SIZE, s.color, w, s.visible & ~half,
                                   np.clip(s.model_color * gain, 0, 1), gain, s.photo_scale, complete=False, eyes=False)
                # each against its own bake with the whole photo (the evened-out photo / the photo)
                want_new = new.texture.reshape(-1, 3)[ras.pix][truth].astype(np.float64)
                want_old = old.texture.reshape(-1, 3)[ras.pix][truth].astype(np.float64)
                err_new = np.abs(hidden.texture.reshape(-1, 3)[ras.pix][truth] - want_new).mean(1)
                err_old = np.abs(flat.texture.reshape(-1, 3)[ras.pix][truth] - want_old).mean(1)
                row.update(completion_texels=int(truth.sum()), completion_err=float(np.median(err_new)),
                           template_err=float(np.median(err_old)))
            # seam step where the photo hands over
            pw = new.photo_weight
            face_img = np.zeros(SIZE * SIZE, bool)
            face_img[ras.pix[face]] = True
            face_img = face_img.reshape(SIZE, SIZE)
            band = face_img & (pw > 0.1) & (pw < 0.9)
            inner = face_img & (pw >= 0.99)
            if abs(yaw) >= 15 and band.sum() > 1000:
                sn, so = smooth(new.texture, face_img), smooth(old.texture, face_img)
                gx, gy = texel_gradient(sn, face_img)
                ox, oy = texel_gradient(so, face_img)
                photo_grad = band_mean(gx, gy, inner)
                row.update(seam_new=band_mean(gx, gy, band) / photo_grad,
                           seam_old=band_mean(ox, oy, band) / photo_grad)
                # where the new texture copies the mirror partner: the far cheek, ear and eye
                mirrored = face_img & (new.mirror_weight > 0.5)
                row.update(zip(("handover_step_new", "handover_step_old", "photo_step"),
                               handover_steps(sn, so, pw, mirrored | (face_img & (pw > 0.9)))))
            mid = face & (np.abs(geo.position[:, 0]) > 1.0) & (np.abs(geo.position[:, 0]) < 3.0) & (mirror.distance < 1.0)
            tex = new.texture.reshape(-1, 3)[ras.pix].astype(np.float64)
            row["mirror_line_step"] = float(np.median(np.abs(tex[mid] - tex[mirror.partner[mid]]).max(1)))
            # PLY colours against the texture at each vertex's UV corners
            faces = model.faces.numpy()
            ply_new = vertex_colors_from_texture(new.texture, atlas.uv, atlas.faces_uv, faces, model.n_vertices)
            corners_v, corners_t = faces.ravel(), atlas.faces_uv.ravel()
            at_uv = sample_texture(new.texture, atlas.uv[corners_t]) * 255
            row["ply_diff_new"] = float(np.abs(ply_new[corners_v] * 255 - at_uv).mean())
            albedo = np.clip(posed.albedo, 0, 1)
            row["ply_diff_old"] = float(np.abs(np.rint(albedo[corners_v] * 255) - at_uv).mean())
            # time of the whole folder
            t0 = time.perf_counter()
            write_reconstruction(Path(tmp) / row["photo"], photo=r.photo, aligned=r.prepared, params=r.params,
                                 face_model_head=head, landmarks_photo=r.prepared.landmarks_photo,
                                 fitted_landmarks_photo_px=r.landmarks_fit)
            row["write_s"] = time.perf_counter() - t0
            row["iris_from_photo"] = bool(new.iris_from_photo)
            rows.append(row)
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)

    def med(key: str) -> float:
        vals = [r[key] for r in rows if key in r]
        return float(np.median(vals)) if vals else float("nan")

    summary = {
        "photos": len(rows),
        "frontal_photos": sum("completion_err" in r for r in rows),
        "completion_err_0_255": med("completion_err"), "template_err_0_255": med("template_err"),
        "turned_photos": sum("seam_new" in r for r in rows),
        "seam_ratio_new": med("seam_new"), "seam_ratio_old": med("seam_old"),
        "handover_step_new_0_255": med("handover_step_new"), "handover_step_old_0_255": med("handover_step_old"),
        "photo_step_0_255": med("photo_step"),
        "mirror_line_step_0_255": med("mirror_line_step"),
        "ply_diff_new_0_255": med("ply_diff_new"), "ply_diff_old_0_255": med("ply_diff_old"),
        "write_s_median": float(np.median([r["write_s"] for r in rows[1:]] or [rows[0]["write_s"]])),
        "iris_from_photo": sum(r["iris_from_photo"] for r in rows),
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "photos": rows}, indent=1))


if __name__ == "__main__":
    main()
