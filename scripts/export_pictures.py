"""The pictures of docs/exports.md: a synthetic face, its export, and how <model-viewer> shows it.

    python scripts/export_pictures.py photo OUT          # OUT/photo.png + OUT/params.json
    python scripts/export_pictures.py export OUT FOLDER  # write_reconstruction of that photo into FOLDER

The "photo" is ICT-FaceKit's head (MIT) with random identity and albedo, the mouth a little
open, turned 30° and lit from the side, with darker stubble below the mouth the model's colour
does not have — no dataset photo, so the pictures can live in the repository. ``export`` calls
whatever ``facerecon`` is importable: run it once with this checkout and once with an older one
(``git archive <commit> facerecon | tar -x -C /tmp/old``, ``PYTHONPATH=/tmp/old``) for a
before/after. The viewer pictures then come from tests/test_export_viewer.py::
test_keep_viewer_pictures_of_a_reconstruction (``FACERECON_VIEWER_GLB``, ``FACERECON_VIEWER_OUT``).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import torch


def make_photo(out: Path) -> None:
    """Render the synthetic photo (448 px face in a 528×568 grey photo) and save its parameters."""
    from facerecon.export.headmesh import export_model
    from facerecon.export.photo import posed_mesh
    from facerecon.facemodel import load_face_model
    from facerecon.params import FaceParams
    from facerecon.render import Camera, Renderer

    head = load_face_model("head")
    model = export_model(head)
    g = torch.Generator().manual_seed(3)
    p = FaceParams.zeros(1)
    p.alpha = 0.7 * torch.randn(1, 80, generator=g)
    p.delta = 0.35 * torch.randn(1, 80, generator=g)
    p.beta[0, model.expression_names.index("jawOpen")] = 0.15
    p.angles = torch.tensor([[0.05, math.radians(30.0), 0.02]])
    p.gamma = torch.tensor([[0.85, 0.12, 0.25, -0.25, 0.0, 0.0, 0.05, 0.0, 0.0]])
    p.trans = torch.tensor([[0.0, 15.0, -1350.0]])
    posed = posed_mesh(model, p)
    y = model.mean[:, 1].numpy()
    stubble = 1.0 - 0.3 * np.clip((-30.0 - y) / 10.0, 0.0, 1.0)
    colors = torch.from_numpy((posed.color * stubble[:, None]).astype(np.float32))[None]
    scale, (px, py) = 2, (40, 60)
    rendered = Renderer(Camera().scaled(224 * scale))(torch.from_numpy(posed.verts_cam)[None], model.faces, colors,
                                                      background=0.3)
    photo = np.full((448 + 2 * py, 448 + 2 * px, 3), 77, np.uint8)
    shown = rendered.image[0].permute(1, 2, 0).clamp(0, 1).numpy()  # shading past 1 would wrap in uint8
    photo[py:py + 448, px:px + 448] = (shown * 255).round().astype(np.uint8)
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "photo.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    M_inv = [[scale, 0.0, px - 0.5], [0.0, scale, py - 0.5]]
    (out / "params.json").write_text(json.dumps({"vector": p.to_vector()[0].tolist(),
                                                 "layout": {k: int(getattr(p, k).shape[1]) for k in
                                                            ("alpha", "beta", "delta", "gamma", "angles", "trans")},
                                                 "crop_to_photo": M_inv}))


def export(out: Path, folder: Path) -> None:
    """write_reconstruction of the saved photo with the importable facerecon."""
    from facerecon.export.reconstruction import write_reconstruction
    from facerecon.facemodel import load_face_model
    from facerecon.params import FaceParams

    doc = json.loads((out / "params.json").read_text())
    params = FaceParams.from_vector(torch.tensor([doc["vector"]], dtype=torch.float32), doc["layout"])
    photo = cv2.cvtColor(cv2.imread(str(out / "photo.png")), cv2.COLOR_BGR2RGB)
    M_inv = np.array(doc["crop_to_photo"])
    M = np.linalg.inv(np.vstack([M_inv, [0, 0, 1]]))[:2]
    write_reconstruction(folder, photo=photo, aligned=SimpleNamespace(M=M, M_inv=M_inv), params=params,
                         face_model_head=load_face_model("head"), texture_size=1024)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "photo":
        make_photo(Path(sys.argv[2]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "export":
        export(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit(__doc__)
