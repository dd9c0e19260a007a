"""Is configuration B really closer than A on the same items, or is it the items drawn?

    python benchmarks/paired.py A.json B.json [--resamples 2000] [--seed 0]
    python benchmarks/paired.py FS.json#fits1m.npz FS2.json#fits_fit.npz     # from_scan.py reports

A and B are two runs of one instrument over the same items:
* ``lps_realskin.py --json`` files: per render (view × texture), the RMSE to the scan in mm, for
  the fitted mesh and (where both runs have it) the neutral mesh, rigid and with scale;
* ``facerecon evaluate landmarks --json`` reports: per photo, the eye-corner NME in points (%);
* ``from_scan.py --json`` reports, one entry of it named after ``#`` (the entry's name as printed,
  e.g. ``fits1m.npz`` or ``fits1m.npz α − 0.3 ō``): per render, scan -> prediction RMSE.

For each measure it prints both means, the mean of B − A, its 95 % paired bootstrap interval
(items drawn with replacement) and on how many items B is lower. (LFW identity caches have their
own script: ``identity_bootstrap.py``.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def measures(doc: dict) -> dict[str, dict[str, float]]:
    """{measure: {item: value}} of one instrument's JSON (see the module docstring)."""
    if "rows" in doc and doc["rows"] and "method" not in doc["rows"][0]:  # an entry of a from_scan.py report
        return {f"from the scan, {tag} (mm)": {f"{r['texture']}/{r['view']}": float(r[key]) for r in doc["rows"]}
                for key, tag in (("rigid", "rigid"), ("scale", "with scale"))}
    if "rows" in doc:  # real-skin renders
        out: dict[str, dict[str, float]] = {}
        for r in doc["rows"]:
            if r["method"] == "mean face":
                continue
            name = f"real skin, {'neutral mesh' if r['method'] == 'fit neutral' else 'mesh'}, " \
                   f"{'with scale' if r['scale'] else 'rigid'}" \
                   f"{', outer surface' if r.get('surface', 'full') == 'outer' else ''} (mm)"
            out.setdefault(name, {})[f"{r['texture']}/{r['view']}"] = float(r["rmse_mm"])
        return out
    if "per_image" in doc:  # landmark report
        return {"NME, eye corners (points)": {r["name"]: 100.0 * r["nme_eyes"] for r in doc["per_image"]
                                               if r["nme_eyes"] is not None}}
    raise ValueError("not a real-skin or landmark JSON: neither 'rows' nor 'per_image' in it")


def paired(a: dict[str, float], b: dict[str, float], resamples: int, seed: int) -> dict[str, float]:
    """Means, mean difference B − A with its 95 % bootstrap interval, over the common items."""
    keys = sorted(set(a) & set(b))
    if not keys:
        raise ValueError("the two runs share no item")
    x = np.array([a[k] for k in keys])
    y = np.array([b[k] for k in keys])
    d = y - x
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"items": len(keys), "a": float(x.mean()), "b": float(y.mean()), "diff": float(d.mean()),
            "lo": float(lo), "hi": float(hi), "b_lower": int((d < 0).sum())}


def load(spec: str) -> dict:
    """A JSON file, or the entry ENTRY of FILE for ``FILE#ENTRY``."""
    path, _, entry = spec.partition("#")
    doc = json.loads(Path(path).read_text())
    if entry:
        if entry not in doc:
            raise SystemExit(f"{path}: no entry {entry!r} (it has: {', '.join(doc)})")
        doc = doc[entry]
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="a JSON file (FILE#ENTRY for a from_scan.py report)")
    ap.add_argument("b")
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ma, mb = measures(load(args.a)), measures(load(args.b))
    for name in [n for n in ma if n in mb]:
        r = paired(ma[name], mb[name], args.resamples, args.seed)
        print(f"{name}: A {r['a']:.3f}, B {r['b']:.3f}; B - A {r['diff']:+.3f} (95 % {r['lo']:+.3f} to "
              f"{r['hi']:+.3f}), B lower on {r['b_lower']} of {r['items']}")


if __name__ == "__main__":
    main()
