"""``facerecon demo``: show what the tool does on real photos, into ``out/``.

1. ``out/model/``: the face model itself — mean face and random identities/expressions as
   OBJ/PLY meshes and a PNG gallery of renders;
2. ``out/<photo>/``: full reconstructions (``facerecon reconstruct``) of scikit-image's bundled
   astronaut photo and, when ``../shared/faces/lfw`` exists, a few people from LFW.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from facerecon.cli import COMMANDS

if TYPE_CHECKING:
    import numpy as np

#: LFW photos reconstructed by the demo when the shared data is present.
LFW_DEMO = ("Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Serena_Williams/Serena_Williams_0001.jpg",
            "Zhu_Rongji/Zhu_Rongji_0001.jpg", "Colin_Powell/Colin_Powell_0001.jpg")


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help=COMMANDS["demo"],
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--max-lfw", type=int, default=len(LFW_DEMO), help="how many LFW photos to add")
    p.set_defaults(func=run)


def model_gallery(out: Path, seed: int = 0, albedo: str = "learned") -> list[Path]:
    """Write the mean face and a few random identities/expressions (OBJ, PLY) and a render grid;
    random albedos come from the ``albedo`` model (the learned one: real skin tones)."""
    import numpy as np
    import torch

    from facerecon.atomic import atomic_write_bytes
    from facerecon.export.mesh import encode_png, write_obj, write_ply
    from facerecon.facemodel import load_face_model
    from facerecon.forward import ForwardModel
    from facerecon.params import FaceParams
    from facerecon.render import Camera, ambient_gamma, default_translation

    out.mkdir(parents=True, exist_ok=True)
    model = load_face_model("head", albedo=albedo)
    g = torch.Generator().manual_seed(seed)
    names = ["mean", "identity_1", "identity_2", "identity_3", "smile", "jaw_open", "brows_up"]
    params = FaceParams.zeros(len(names), model.n_id, model.n_exp, model.n_tex)
    params.alpha[1:4] = torch.randn(3, model.n_id, generator=g)
    ex = model.expression_names
    params.beta[4, [ex.index("mouthSmile_L"), ex.index("mouthSmile_R")]] = 1.0
    params.beta[5, ex.index("jawOpen")] = 0.7
    brows_up = ["browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R"]
    params.beta[6, [ex.index(n) for n in brows_up]] = 1.0
    params.delta[1:4] = torch.randn(3, model.n_tex, generator=g)
    params.gamma = ambient_gamma(len(names), 0.75)
    params.gamma[:, 2], params.gamma[:, 1] = 0.45, 0.15
    params.trans = default_translation(len(names)) * 1.25
    forward = ForwardModel(model, Camera(size=320))
    faces = model.faces.numpy()
    eyes = _painted_eyes(model)  # {vertex index: colour}: iris, pupil and sclera, as the exports paint them
    written = []
    with torch.no_grad():
        renders = []
        for yaw in (0.0, 0.6):
            params.angles[:, 1] = yaw
            res = forward(params, render=False)
            colors = res.colors.clone()
            if eyes:
                idx = torch.as_tensor(list(eyes))
                paint = torch.as_tensor(np.stack(list(eyes.values())), dtype=colors.dtype)
                # the eyes' own shading (colour ÷ albedo) kept: the eyeball's albedo is one grey
                colors[:, idx] = paint * colors[:, idx] / res.albedo[:, idx].clamp(min=1e-3)
            renders.append(forward.renderer(res.verts_cam, model.faces, colors, 1.0).image)
        for i, name in enumerate(names):
            v, c = res.verts[i].numpy(), res.albedo[i].numpy().copy()
            for k, col in eyes.items():
                c[k] = col
            written.extend(write_obj(out / f"{name}.obj", v, faces).values())
            written.append(write_ply(out / f"{name}.ply", v, faces, c))
        grid = torch.cat([torch.cat(list(r), 2) for r in renders], 1).permute(1, 2, 0).numpy()
        # shading can take a colour past 1: clipped, else it wraps round in uint8 (a red past 1 turns teal)
        atomic_write_bytes(out / "gallery.png", encode_png((grid.clip(0, 1) * 255).round().astype(np.uint8)))
    written.append(out / "gallery.png")
    return written


def _painted_eyes(model) -> dict[int, "np.ndarray"]:
    """{vertex index: RGB in [0,1]} for the model's eyeball vertices: pupil, a brown iris and the
    sclera (:func:`facerecon.export.eyes.eye_colors`); empty for a model without eyeballs."""
    import numpy as np

    from facerecon.export.eyes import DEFAULT_IRIS, eye_colors, eye_geometry
    from facerecon.facemodel.ict import PARTS

    ids = np.asarray(model.vertex_ids)
    mean = model.mean.detach().cpu().numpy().astype(np.float64)
    out: dict[int, np.ndarray] = {}
    for name, eye in eye_geometry(model).items():
        lo, hi = PARTS[name]  # the iris part lies inside the eyeball's range
        sel = np.nonzero((ids >= lo) & (ids < hi))[0]
        out.update(zip(sel.tolist(), eye_colors(eye, mean[sel], DEFAULT_IRIS)))
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from facerecon.assets import shared_path
    from facerecon.cli import main as cli_main

    out: Path = args.out
    print(f"demo: face model gallery -> {out / 'model'}")
    model_gallery(out / "model")
    inputs = out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    photos = []
    try:
        import skimage.data

        from facerecon.atomic import atomic_write_bytes
        from facerecon.export.mesh import encode_png

        astronaut = atomic_write_bytes(inputs / "astronaut.png", encode_png(np.asarray(skimage.data.astronaut())))
        photos.append(astronaut)
    except Exception as exc:  # skimage without its bundled data: go on with the rest
        print(f"demo: scikit-image's astronaut photo unavailable ({exc})")
    lfw = shared_path("faces", "lfw")
    if lfw is not None:
        photos += [lfw / rel for rel in LFW_DEMO[: args.max_lfw] if (lfw / rel).exists()]
    if not photos:
        print("demo: no photos to reconstruct")
        return 1
    print(f"demo: reconstructing {len(photos)} photos -> {out}")
    return cli_main(["reconstruct", *map(str, photos), "-o", str(out), "--overwrite", "--device", args.device])
