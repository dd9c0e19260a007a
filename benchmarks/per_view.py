"""Issue 10's per-view figure with its uncertainty: each view's RMSE from the scan under the mean face's,
pooled over one or more sets of skins, with a 95 % bootstrap interval over the skins.

    python benchmarks/lps_realskin.py [--texture-draw 0|1] --save-params F.npz ...   # each set of skins
    python benchmarks/from_scan.py F.npz --json FS.json
    python benchmarks/per_view.py "FS.json#F.npz" ["FS1.json#F1.npz" ...] [--target 0.15] [--json OUT]

Each view of ``lps_realskin.py`` is rendered once per skin, so a view's mean rests on as many renders
as there are skins (4 a set): a margin of 13 % on 4 skins may be a 15 % view drawn badly, or an 11 %
one drawn well. The entries given (``FILE#ENTRY``: one fit set of a ``from_scan.py --json`` report,
as ``paired.py`` reads it) are pooled render by render; they must be of one head and hold different
skins (``--texture-draw`` numbers draw 1's textures apart). For each view and each of rigid / with
scale it prints the mean RMSE (mm), the margin 1 − RMSE / mean face's, the margin's 95 % interval
(the view's renders drawn with replacement) and where that interval lies against ``--target``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

#: The two ways the scan is aligned to a prediction, as ``from_scan.py`` names them.
TAGS = {"rigid": "rigid", "scale": "with scale"}


def pool(specs: list[str]) -> tuple[list[dict], dict, str]:
    """The rows of every ``FILE#ENTRY`` in ``specs``, the ICT mean face's scores and the head.

    Raises:
        SystemExit: an entry is missing, the files score different heads or mean faces, or two
            entries hold the same render (texture and view)."""
    rows: list[dict] = []
    mean_face: dict | None = None
    head = None
    seen: set[tuple] = set()
    for spec in specs:
        path, _, entry = spec.partition("#")
        doc = json.loads(Path(path).read_text())
        if not entry or entry not in doc or "rows" not in doc[entry]:
            raise SystemExit(f"{path}: name one fit set as FILE#ENTRY (it has: {', '.join(doc)})")
        mf = {t: float(doc["ICT mean face"][t]) for t in TAGS}
        if mean_face is not None and (doc["head"] != head or any(abs(mf[t] - mean_face[t]) > 1e-6 for t in TAGS)):
            raise SystemExit(f"{path}: another head or mean face than {specs[0]}: pool one head at a time")
        mean_face, head = mf, doc["head"]
        for r in doc[entry]["rows"]:
            key = (r["texture"], r["view"])
            if key in seen:
                raise SystemExit(f"{spec}: texture {r['texture']} at {r['view']} is already in an earlier entry "
                                 f"(pool different skins: lps_realskin.py --texture-draw)")
            seen.add(key)
            rows.append(r)
    assert mean_face is not None and head is not None
    return rows, mean_face, head


def per_view(rows: list[dict], mean_face: dict, resamples: int = 10000, seed: int = 0) -> dict:
    """{tag: {view: {skins, rmse, margin, lo, hi}}}: per view, the mean RMSE over its renders (mm), the
    margin under the mean face (1 − RMSE / mean face's; 0.15 = 15 % under) and its 95 % bootstrap
    interval over the view's renders."""
    rng = np.random.default_rng(seed)
    out: dict = {}
    views = sorted({r["view"] for r in rows})
    for tag in TAGS:
        for view in views:
            x = np.array([r[tag] for r in rows if r["view"] == view], dtype=np.float64)
            boot = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(1)
            hi, lo = 1.0 - np.percentile(boot, [2.5, 97.5]) / mean_face[tag]
            out.setdefault(tag, {})[view] = {"skins": len(x), "rmse": float(x.mean()),
                                             "margin": float(1.0 - x.mean() / mean_face[tag]),
                                             "lo": float(lo), "hi": float(hi)}
    return out


def verdict(v: dict, target: float) -> str:
    """Where a view's margin interval lies against the target margin."""
    if v["lo"] >= target:
        return "above the target"
    if v["hi"] < target:
        return "BELOW the target"
    return "target inside the interval"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("entries", nargs="+", help="FILE#ENTRY of from_scan.py reports, one head, different skins")
    ap.add_argument("--target", type=float, default=0.15, help="the margin under the mean face each view must reach")
    ap.add_argument("--resamples", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the per-view figures here")
    args = ap.parse_args()
    rows, mean_face, head = pool(args.entries)
    figures = per_view(rows, mean_face, args.resamples, args.seed)
    print(f"head {head}: {len(rows)} renders; ICT mean face {mean_face['rigid']:.3f} / {mean_face['scale']:.3f} mm")
    for tag, name in TAGS.items():
        print(f"{name}:")
        for view, v in figures[tag].items():
            print(f"  {view:9s} {v['rmse']:.3f} mm  {100 * v['margin']:5.1f} % under the mean face "
                  f"(95 % {100 * v['lo']:.1f} to {100 * v['hi']:.1f}; {v['skins']} skins): {verdict(v, args.target)}")
        worst = min(figures[tag], key=lambda k: figures[tag][k]["margin"])
        print(f"  worst view {worst}: {100 * figures[tag][worst]['margin']:.1f} %")
    if args.json:
        args.json.write_text(json.dumps({"head": head, "mean_face": mean_face, "target": args.target,
                                         "renders": len(rows), "per_view": figures}, indent=1))


if __name__ == "__main__":
    main()
