"""Is configuration B really closer than A on the same items, or is it the items drawn?

    python benchmarks/paired.py A.json B.json [--resamples 2000] [--seed 0]
    python benchmarks/paired.py FS.json#fits1m.npz FS2.json#fits_fit.npz     # from_scan.py reports
    python benchmarks/paired.py "FS0.json#a.npz,FS1.json#a1.npz" "FS2.json#b.npz,FS3.json#b1.npz"  # pooled draws
    python benchmarks/paired.py N_A.json N_B.json --turned 2 3                # landmark reports
    python benchmarks/paired.py L0.json,L1.json H0.json,H1.json   # lps_realskin.py reports, pooled draws

A and B are two runs of one instrument over the same items:
* ``lps_realskin.py --json`` files: per render (view × texture), the RMSE to the scan in mm, for
  the fitted mesh and (where both runs have it) the neutral mesh, rigid and with scale, and the
  fit's final loss terms (photometric, landmark, weighted total; e.g. against ``--identity-at``);
* ``facerecon evaluate landmarks --json`` reports: per photo, the eye-corner NME in points (%);
* ``from_scan.py --json`` reports, one entry of it named after ``#`` (the entry's name as printed,
  e.g. ``fits1m.npz`` or ``fits1m.npz α − 0.3 ō``): per render, scan -> prediction RMSE.

For each measure it prints both means, the mean of B − A, its 95 % paired bootstrap interval
(items drawn with replacement) and on how many items B is lower. (LFW identity caches have their
own script: ``identity_bootstrap.py``.) ``--turned R`` adds, for landmark reports, the photos whose
annotation shows a turned face: the nose tip (point 30) lies R times or more as far from one end of
the jaw (points 0-2) as from the other (14-16), horizontally; the annotation is read from the
``.pts`` beside each photo in the report's folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facerecon.imageio.pts import read_pts


#: The fitter's final loss terms that ``lps_realskin.py`` rows record, unweighted, and their names here.
TERMS = {"photo": "final photometric term (RGB distance, [0,1] units)", "landmark": "final landmark term (crop px²)",
         "total": "final weighted total"}


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
            if r["method"] == "fit" and r.get("terms"):  # the fit's final loss terms (rows since 2026-12-07)
                for term, label in TERMS.items():
                    out.setdefault(label, {})[f"{r['texture']}/{r['view']}"] = float(r["terms"][term])
            name = f"real skin, {'neutral mesh' if r['method'] == 'fit neutral' else 'mesh'}, " \
                   f"{'with scale' if r['scale'] else 'rigid'}" \
                   f"{', outer surface' if r.get('surface', 'full') == 'outer' else ''} (mm)"
            out.setdefault(name, {})[f"{r['texture']}/{r['view']}"] = float(r["rmse_mm"])
        return out
    if "per_image" in doc:  # landmark report
        out = {"NME, eye corners (points)": {r["name"]: 100.0 * r["nme_eyes"] for r in doc["per_image"]
                                              if r["nme_eyes"] is not None}}
        centred = {r["name"]: 100.0 * r["nme_eyes_centred"] for r in doc["per_image"]
                   if r.get("nme_eyes_centred") is not None}
        if centred:  # reports since the mean offset was recorded
            out["NME, each its mean offset taken away (points)"] = centred
        return out
    raise ValueError("not a real-skin or landmark JSON: neither 'rows' nor 'per_image' in it")


def turned_ratio(points: np.ndarray) -> float:
    """How turned an annotated face (68,2) looks: the nose tip's horizontal distance to the far end
    of the jaw over that to the near end (1: frontal)."""
    left = points[30, 0] - points[0:3, 0].mean()
    right = points[14:17, 0].mean() - points[30, 0]
    return float(max(left, right) / max(min(left, right), 1e-3))


def turned(doc: dict, ratio: float) -> set[str]:
    """The photos of a landmark report whose annotation's :func:`turned_ratio` is at least ``ratio``."""
    folder = Path(doc["folder"])
    return {r["name"] for r in doc["per_image"]
            if turned_ratio(read_pts((folder / r["name"]).with_suffix(".pts"))) >= ratio}


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
    """A JSON file, or the entry ENTRY of FILE for ``FILE#ENTRY``; several ``FILE#ENTRY`` (or several
    ``lps_realskin.py`` reports) joined by commas pool their rows (renders of different skins, e.g.
    both texture draws)."""
    if "," in spec:
        rows: list[dict] = []
        parts = spec.split(",")
        for part in parts:
            doc = load(part)
            kind_ok = "rows" in doc and ("#" in parts[0]) == ("#" in part) and (
                "#" in part or all("method" in r for r in doc["rows"]))
            if not kind_ok:
                raise SystemExit(f"{part}: only FILE#ENTRY entries of from_scan.py reports, or lps_realskin.py "
                                 "reports, pool (one kind at a time)")
            rows += [r for r in doc["rows"] if r.get("method") != "mean face"]
        keys = [(r["texture"], r["view"], r.get("method"), r.get("scale"), r.get("surface")) for r in rows]
        if len(set(keys)) < len(keys):
            raise SystemExit(f"{spec}: the pooled entries share renders (texture and view)")
        return {"rows": rows}
    path, _, entry = spec.partition("#")
    doc = json.loads(Path(path).read_text())
    if entry:
        if entry not in doc:
            raise SystemExit(f"{path}: no entry {entry!r} (it has: {', '.join(doc)})")
        doc = doc[entry]
    return doc


def show(name: str, r: dict[str, float]) -> None:
    """One line of :func:`paired`'s result."""
    print(f"{name}: A {r['a']:.3f}, B {r['b']:.3f}; B - A {r['diff']:+.3f} (95 % {r['lo']:+.3f} to "
          f"{r['hi']:+.3f}), B lower on {r['b_lower']} of {r['items']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="a JSON file (FILE#ENTRY for a from_scan.py report; FILE#ENTRY,FILE#ENTRY pools them)")
    ap.add_argument("b")
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--turned", type=float, nargs="+", default=[], metavar="R",
                    help="landmark reports: also the photos whose annotation is turned by a ratio of R or more")
    args = ap.parse_args()
    doc_a, doc_b = load(args.a), load(args.b)
    ma, mb = measures(doc_a), measures(doc_b)
    for name in [n for n in ma if n in mb]:
        show(name, paired(ma[name], mb[name], args.resamples, args.seed))
    if args.turned and "per_image" not in doc_a:
        raise SystemExit("--turned needs landmark reports (facerecon evaluate landmarks --json)")
    for ratio in args.turned:
        keep = turned(doc_a, ratio)
        for name in [n for n in ma if n in mb]:
            a = {k: v for k, v in ma[name].items() if k in keep}
            show(f"{name}, turned {ratio:g}:1 or more", paired(a, mb[name], args.resamples, args.seed))


if __name__ == "__main__":
    main()
