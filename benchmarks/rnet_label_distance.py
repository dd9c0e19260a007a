"""How far R-Nets' predictions are from fitter labels on the held-out people: the instrument for a
network meant to centre the default engine's prior (BENCHMARKS.md, "Stages N and O").

For each checkpoint, over the shards' validation photos that have a label: the mean ‖α‖ and the
total variance of the predicted identity coefficients (a distilled network shrinks them), the
mean ‖α − α_label‖ (the metric of the fitter's identity prior), the mean distance of the
identity shapes (face part, α only, neutral expression, mm) and the least-squares slope of the
label on the prediction (1: no shrinkage). The labels themselves come first, as the reference.

    python benchmarks/rnet_label_distance.py --labels labels/shared-faces-default-g \\
        facerecon/resources/rnet_default.pt work/rnet/stageN/last.pt [--shards work/rnet/shards]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facerecon.cli import set_cpu_threads  # noqa: E402
from facerecon.data.labels import read_label_sizes, read_labels  # noqa: E402
from facerecon.data.shards import ShardDataset  # noqa: E402
from facerecon.facemodel import load_face_model  # noqa: E402
from facerecon.nets.rnet import load_checkpoint  # noqa: E402
from facerecon.params import FaceParams  # noqa: E402


def predict_alpha(checkpoint: str, data: ShardDataset, rows: list[int], batch: int = 32) -> np.ndarray:
    """Predicted α (N,80) of the dataset rows ``rows``."""
    net, _ = load_checkpoint(checkpoint)
    net.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(rows), batch):
            items = [data[i] for i in rows[s:s + batch]]
            p = net.predict(torch.stack([x["image"] for x in items]), torch.stack([x["landmarks"] for x in items]))
            out.append(p.alpha.numpy())
    return np.concatenate(out)


def identity_shapes(model, alpha: np.ndarray, face: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Neutral identity shapes (N,V,3) of ``alpha``, the vertices ``face`` only, mm."""
    with torch.no_grad():
        return torch.cat([model.shape(torch.as_tensor(alpha[s:s + batch]))[:, face]
                          for s in range(0, len(alpha), batch)])


def compare(alpha: np.ndarray, label: np.ndarray, shapes: torch.Tensor, label_shapes: torch.Tensor) -> dict:
    """The figures of one set of predictions against the labels (see the module)."""
    pc, lc = alpha - alpha.mean(0), label - label.mean(0)
    denom = float((pc * pc).sum())
    return {"alpha_norm": float(np.linalg.norm(alpha, axis=1).mean()),
            "alpha_total_variance": float(alpha.var(0).sum()),
            "alpha_distance": float(np.linalg.norm(alpha - label, axis=1).mean()),
            "identity_shape_mm": float((shapes - label_shapes).norm(dim=-1).mean()),
            "slope": float((pc * lc).sum()) / denom if denom > 0 else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", help="R-Net checkpoints (training or shipped files)")
    ap.add_argument("--labels", required=True, help="fitter labels folder (facerecon label)")
    ap.add_argument("--shards", default="work/rnet/shards", help="the shards the labels were made from")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    set_cpu_threads(None)
    data = ShardDataset(args.shards, "val")
    labels = read_labels(args.labels)
    rows = [i for i, k in enumerate(data.keys) if k in labels]
    if not rows:
        raise SystemExit(f"{args.labels}: no label for any validation photo of {args.shards}")
    vectors = torch.as_tensor(np.stack([labels[data.keys[i]][0] for i in rows]))
    label = FaceParams.from_vector(vectors, read_label_sizes(args.labels)).alpha.numpy()
    model = load_face_model("narrow")
    face = torch.as_tensor(model.vertex_ids < 9409)  # ICT's face part, as multi.aggregate
    label_shapes = identity_shapes(model, label, face)
    print(f"{len(rows)} labelled validation photos of {len(data)} ({len({data.records[i].person for i in rows})} people)")
    print("network | mean |alpha| | total variance | |alpha - label| | identity shape to label, mm | slope")
    results = {"labels": compare(label, label, label_shapes, label_shapes)}
    for ck in args.checkpoints:
        alpha = predict_alpha(ck, data, rows)
        results[ck] = compare(alpha, label, identity_shapes(model, alpha, face), label_shapes)
    for name, r in results.items():
        print(f"{name} | {r['alpha_norm']:.2f} | {r['alpha_total_variance']:.1f} | {r['alpha_distance']:.2f} | "
              f"{r['identity_shape_mm']:.2f} | {r['slope']:.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"labels": args.labels, "photos": len(rows), "results": results}, indent=1))


if __name__ == "__main__":
    main()
