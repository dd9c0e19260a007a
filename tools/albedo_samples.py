"""De-lit per-vertex albedo samples of real photos: the data of the learned albedo model and of the
real-skin scan renders.

    python tools/albedo_samples.py --set xlarge --engine default --register --out work/albedo   # the shipped model's
    python tools/albedo_samples.py --set train --out work/albedo   # resumable; a file per photo
    python tools/albedo_samples.py --set heldout --out work/albedo
    python tools/albedo_samples.py --set heldout --register --out work/albedo_reg   # features on the model's points

Each photo is fitted by facerecon's default pipeline (detection, alignment, fit); the fitted head
is then projected into the 224 px crop, and every front-facing, unoccluded vertex of ICT's face
part takes the crop's colour divided by the fitted light's SH irradiance at its normal: a de-lit
albedo sample (RGB in [0,1]), a weight in [0,1] (how squarely the vertex faced the camera) and
the crop's skin attention at the vertex (hair, background and beard score low). ``--register``
reads each colour where a thin-plate spline takes the fit's inner landmarks onto the photo's own
(:func:`registered`), so that the photo's brows, eyes and lips sit on the model's landmark vertices.
Nothing of the model's own albedo enters a sample.

Photo sets are fixed lists (the photo sets are public research data in ../shared/faces, not in
the repository):

* ``train`` — what the albedo model learns from: UTKFace aged 18–60, 24 photos per race label
  0–4 (every 7th such file in name order) and the first 60 photos of 300-W train;
* ``heldout`` — textures of the real-skin scan renders, disjoint people: UTKFace aged 18–60,
  6 photos per race label 0–4 (other files: every 7th starting at the 4th) and the first 24 photos
  of 300-W test;
* ``large`` — a larger training set (the forty-eighth session): UTKFace aged 18–60, 60 photos per
  race label from each of the offsets 0 and 1 (every 7th file; ``train``'s UTKFace photos are
  among them, ``heldout``'s offset 3 is not) and the first 200 photos of 300-W train. With 150
  photos, PCA modes beyond the tenth held mostly single photos' shadows and misplaced features:
  random draws came out blotchy. Made with ``--engine default --register`` (registered onto the
  default fitter's own landmark vertices, "300w-photo").
* ``xlarge`` — ``large`` and more (the forty-ninth session): UTKFace aged 18–60, 60 photos per race
  label from each of the offsets 0, 1, 2, 4, 5 and 6 (every 7th file; ``heldout``'s offset 3 left
  out) and the first 400 photos of 300-W train: 2,200 photos, ``large``'s among them. The shipped
  model's set, made like ``large``; 1,824 of its samples pass ``learn_albedo.py --max-off-hue 0.02``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def utk_photos(per_race: int, offset: int) -> list[Path]:
    """UTKFace files aged 18–60, ``per_race`` per race label, every 7th from ``offset``."""
    out = []
    files = sorted((SHARED / "faces" / "utkface").glob("*.jpg"))
    for race in range(5):
        pick = []
        for f in files:
            parts = f.name.split("_")
            if len(parts) < 4 or parts[2] != str(race) or not 18 <= int(parts[0]) <= 60:
                continue
            pick.append(f)
        out += pick[offset::7][:per_race]
    return out


def photo_set(name: str) -> list[Path]:
    """The fixed photo list of a set (see the module docstring)."""
    if name == "train":
        return utk_photos(24, 0) + sorted((SHARED / "faces" / "300w" / "train").glob("*.jpg"))[:60]
    if name == "large":
        return (utk_photos(60, 0) + utk_photos(60, 1)
                + sorted((SHARED / "faces" / "300w" / "train").glob("*.jpg"))[:200])
    if name == "xlarge":
        return ([f for o in (0, 1, 2, 4, 5, 6) for f in utk_photos(60, o)]
                + sorted((SHARED / "faces" / "300w" / "train").glob("*.jpg"))[:400])
    if name == "heldout":
        return utk_photos(6, 3) + sorted((SHARED / "faces" / "300w" / "test").glob("*.jpg"))[:24]
    raise ValueError(f"unknown set {name!r}")


def registered(xy: np.ndarray, model_lmk: np.ndarray, photo_lmk: np.ndarray, smoothing: float = 1.0) -> np.ndarray:
    """``xy`` (N,2, pixels) moved by the thin-plate spline that takes the fit's projected inner
    landmarks ``model_lmk`` (51,2) onto the photo's own ``photo_lmk`` (51,2): where to read each
    vertex's colour so that the photo's brows, eyes, nose and lips land on the model's landmark
    vertices even where the fit missed them (``smoothing`` > 0 lets it miss noisy landmarks
    slightly)."""
    from scipy.interpolate import RBFInterpolator

    src = np.asarray(model_lmk, np.float64)
    warp = RBFInterpolator(src, np.asarray(photo_lmk, np.float64) - src, kernel="thin_plate_spline",
                           smoothing=smoothing)
    return (np.asarray(xy, np.float64) + warp(np.asarray(xy, np.float64))).astype(np.float32)


def vertex_samples(fwd, params, crop: np.ndarray, attention: np.ndarray, vertex_ids: np.ndarray,
                   depth_tol_mm: float = 2.0, photo_landmarks: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """De-lit colour (N,3), weight (N,) and skin attention (N,) of ``vertex_ids`` of ``fwd.model``
    from one 224 crop and its skin attention (224,224) in [0,1].

    ``fwd`` is a :class:`~facerecon.forward.ForwardModel` whose model is the head region the
    photo was fitted with (its occlusions count), ``params`` the fit (batch 1). With the photo's
    68 landmarks ``photo_landmarks`` (crop pixels) the colours are read where :func:`registered`
    moves each vertex (visibility and light stay the fit's).
    """
    from facerecon.render import sh_basis

    with torch.no_grad():
        out = fwd(params)
        xy = out.xy[0]                                   # (V,2) crop pixels
        read_xy = xy
        if photo_landmarks is not None:
            read_xy = torch.from_numpy(registered(xy.numpy(), out.landmarks[0, 17:].numpy(),
                                                  np.asarray(photo_landmarks)[17:]))
        z = -out.verts_cam[0, :, 2]                      # depth along the optical axis, mm
        n = out.normals_cam[0]
        view = -out.verts_cam[0] / out.verts_cam[0].norm(dim=1, keepdim=True)
        facing = (n * view).sum(1)
        depth = out.depth[0, 0]
        irr = (sh_basis(n[None]) @ params.gamma[:, :9, None])[0, :, 0]   # mono light (B,9)
        size = depth.shape[-1]
        px = xy.round().long().clamp(0, size - 1)
        front = depth[px[:, 1], px[:, 0]]
        inside = (xy[:, 0] >= 0) & (xy[:, 0] <= size - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= size - 1)
        visible = inside & (front > 0) & (z <= front + depth_tol_mm) & (facing > 0.25)
        img = torch.from_numpy(crop).permute(2, 0, 1).float()[None] / 255.0
        grid = (read_xy / (size - 1) * 2 - 1)[None, None]  # (1,1,V,2) for grid_sample, x then y
        col = torch.nn.functional.grid_sample(img, grid, align_corners=True)[0, :, 0].T  # (V,3)
        att = torch.from_numpy(np.asarray(attention, np.float32))[None, None]
        skin = torch.nn.functional.grid_sample(att, grid, align_corners=True)[0, 0, 0]  # (V,)
        alb = col / irr.clamp(min=0.2)[:, None]
        w = ((facing - 0.25) / 0.35).clamp(0, 1) * visible
    ids = torch.as_tensor(vertex_ids)
    return (alb[ids].clamp(0, 1.5).numpy().astype(np.float32), w[ids].numpy().astype(np.float32),
            skin[ids].numpy().astype(np.float32))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", choices=["train", "heldout", "large", "xlarge"], required=True)
    ap.add_argument("--out", type=Path, default=Path("work/albedo"))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--register", action="store_true",
                    help="read each vertex's colour where the fit's inner landmarks meet the photo's own "
                         "(registered(): the photo's brows, eyes and lips land on the model's landmark vertices)")
    ap.add_argument("--engine", choices=["fit-ict", "default"], default="fit-ict",
                    help="fit-ict: engine fit with ICT's landmark vertices (what sets train and heldout were "
                         "made with); default: the pipeline's default engine (faster, closer on 300-W)")
    ap.add_argument("--shard", default="0/1", help="i/n: do every n-th photo from the i-th (parallel runs)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    shard, n_shards = (int(v) for v in args.shard.split("/"))

    from facerecon.facemodel import load_face_model
    from facerecon.facemodel.model import _part_ids, region_vertex_ids
    from facerecon.forward import ForwardModel
    from facerecon.pipeline import FaceReconstructor

    out = args.out / args.set
    out.mkdir(parents=True, exist_ok=True)
    photos = photo_set(args.set)[: args.limit]
    todo = [p for p in photos[shard::n_shards]
            if not (out / (p.stem + ".npz")).exists() and not (out / (p.stem + ".failed")).exists()]
    print(f"{len(photos)} photos in set {args.set}, {len(todo)} to do", file=sys.stderr)
    from facerecon.fitting.engine import FitConfig

    # the engine and landmark set the samples (the albedo model, the real-skin renders) were made with
    rec = (FaceReconstructor(engine="fit", config=FitConfig(landmarks="ict")) if args.engine == "fit-ict"
           else FaceReconstructor())
    # the landmark vertices the fit used: ``--register`` puts the photo's features on them (the
    # head's own default, ICT's points, lie 2.7 mm from the default fitter's on average, up to 6.4
    # on the inner lip: an albedo registered there pulled the fitted points off 300-W's annotations)
    head = load_face_model("head", landmarks=rec.model.landmark_set)
    fwd = ForwardModel(head, rec.camera)
    full_ids = _part_ids("face")                          # full-mesh ids of ICT's face part
    # position of each face-part vertex inside the head region's vertex list
    head_ids = region_vertex_ids("head")
    where = {int(v): i for i, v in enumerate(head_ids)}
    local = np.array([where[int(v)] for v in full_ids])
    bar = tqdm(total=len(todo), desc=f"albedo samples ({args.set})")
    for start in range(0, len(todo), args.batch_size):
        chunk, items = todo[start:start + args.batch_size], []
        for p in chunk:
            try:
                photo, faces = rec.prepare(str(p))
                c = faces[0].crop.astype(np.float32)
                if np.abs(c - c.mean(2, keepdims=True)).mean() < 2.0:
                    raise ValueError("a grey-scale photo: no skin colour to learn")
                items.append((p, photo, faces[0]))
            except Exception as exc:  # noqa: BLE001 - a bad photo is recorded and skipped
                (out / (p.stem + ".failed")).write_text(f"{type(exc).__name__}: {exc}\n")
                bar.update(1)
        if not items:
            continue
        recs = rec.fit_prepared([(ph, pf) for _, ph, pf in items])
        for (p, _, prep), r in zip(items, recs):
            alb, w, sk = vertex_samples(fwd, r.params, prep.crop, prep.attention, local,
                                        photo_landmarks=prep.landmarks_crop if args.register else None)
            skin = prep.attention > 0.5
            tmp = out / (p.stem + ".tmp.npz")
            np.savez_compressed(tmp, albedo=alb.astype(np.float16), weight=(w * 255).round().astype(np.uint8),
                                skin=(sk * 255).round().astype(np.uint8),
                                params=r.params.to_vector()[0].numpy(), vertex_ids=full_ids.astype(np.int32),
                                crop_skin_rgb=np.median(prep.crop[skin], 0) if skin.sum() > 50 else np.zeros(3),
                                source=str(p.relative_to(SHARED)), loss=r.losses["total"],
                                registered=args.register, engine=args.engine)
            os.replace(tmp, out / (p.stem + ".npz"))
            bar.update(1)
    bar.close()
    n_ok = len(list(out.glob("*.npz")))
    n_bad = len(list(out.glob("*.failed")))
    print(f"{n_ok} samples, {n_bad} failed photos in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
