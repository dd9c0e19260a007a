"""Predicted mesh vs 3D scan, MICC-style: crop, align (landmarks or principal axes), ICP, error in mm.

The protocol (SPEC §6):

1. Both meshes are brought to millimetres (``units_to_mm``).
2. Each mesh is cropped to a sphere of ``crop_radius_mm`` (95 mm) around its own nose tip. The
   prediction's crop is fixed in its own frame, so the alignment cannot change which points are
   measured. The scan keeps a small extra margin (``scan_margin_mm``) so that prediction points
   near the sphere's edge find their true closest scan point rather than the cut.
3. Initial alignment of the prediction to the scan: from corresponding 3D landmarks when both sets
   are given (Umeyama; similarity when scale is allowed, else rigid); otherwise from centroids
   and principal axes of the two crops, trying every axis flip/permutation (24 proper rotations)
   plus the identity (both meshes already in the canonical frame: y up, +z towards the viewer)
   and keeping the candidate with the lowest error after a short ICP.
4. Point-to-plane ICP (scipy ``cKDTree`` over dense samples of the scan with their face
   normals), rigid or with one isotropic scale, then Gauss-Newton on the exact point-to-triangle
   distances with step halving (the robust error never increases). Pairs farther apart than
   ``max(trim_factor * median, trim_min_mm)`` are left out of the fit, never out of the figures.
5. The error of each cropped prediction vertex is its exact distance to the scan surface (closest
   point on a triangle, :class:`SurfaceIndex`); where that closest point lies inside a triangle
   this is the point-to-plane distance to the triangle's plane. RMSE, mean, median, 90th
   percentile and max over all those vertices, in mm, are the headline figures.
6. Secondary figures, scan -> prediction: area-weighted points of the scan surface inside its
   sphere, measured where the prediction covers them (closest prediction point not on its open
   boundary), with the covered share of the area. These see holes and a too-narrow face, and
   ignore geometry hidden inside the prediction (e.g. the backs of eyeballs), which the
   headline direction counts.

Nose tips come from landmark 30 (iBUG-68 order) when landmarks are given, else from the vertex
farthest along +z (the canonical frame of facerecon's outputs and of most scans).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from facerecon.atomic import atomic_write_bytes
from facerecon.evaluation.surface import MeshError, SurfaceIndex, surface_quadrature
from facerecon.geometry import umeyama  # noqa: F401  (evaluators and benchmarks import it from here too)

NOSE_TIP_INDEX = 30  # iBUG-68 landmark of the nose tip
DEFAULT_CROP_RADIUS_MM = 95.0
#: An alignment with scale that shrinks (or grows) the prediction past this factor (or its inverse)
#: is refused: a face in mm needs a few percent; shrinking toward 0 is ICP's degenerate minimum.
MIN_SCALE = 0.5


# --------------------------------------------------------------------------------------------
# loading


def declared_units_to_mm(path: str | os.PathLike) -> float | None:
    """The factor to millimetres that a facerecon OBJ/PLY declares in its header comment
    (``facerecon: units m`` -> 1000, ``units mm`` -> 1), or None when the file says nothing."""
    import re

    try:
        with open(path, "rb") as fh:
            head = fh.read(2048).decode("latin-1")
    except OSError:
        return None
    m = re.search(r"facerecon: units (mm|m)\b", head)
    return None if m is None else (1000.0 if m.group(1) == "m" else 1.0)


def load_mesh(path: str | os.PathLike, units_to_mm: float = 1.0) -> trimesh.Trimesh:
    """Load a triangle mesh (OBJ, PLY, GLB/GLTF, STL, OFF ...) and scale it to millimetres.

    Scenes (GLB) are flattened with their node transforms applied. Vertex order is kept
    (``process=False``) so that per-vertex data such as landmark indices stay valid.

    Args:
        path: mesh file.
        units_to_mm: factor from the file's units to millimetres (1.0 for files already in mm,
            10.0 for centimetres).

    Raises:
        MeshError: missing file, unreadable file, or no triangles.
    """
    p = Path(path)
    if not p.is_file():
        raise MeshError(f"{p}: no such file")
    if not (units_to_mm > 0 and math.isfinite(units_to_mm)):
        raise MeshError(f"{p}: units-to-mm factor must be a positive number, got {units_to_mm}")
    kwargs = {"maintain_order": True, "skip_materials": True} if p.suffix.lower() == ".obj" else {}
    try:
        obj = trimesh.load(str(p), process=False, **kwargs)
    except Exception as exc:  # trimesh raises many types for bad files
        raise MeshError(f"{p}: cannot read mesh ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, trimesh.Scene):
        meshes = [g for g in obj.geometry.values() if isinstance(g, trimesh.Trimesh)]
        if not meshes:
            raise MeshError(f"{p}: the file holds no triangle mesh")
        obj = obj.to_mesh()
    if not isinstance(obj, trimesh.Trimesh) or len(obj.faces) == 0:
        raise MeshError(f"{p}: the file holds no triangles (a point cloud?)")
    verts = np.asarray(obj.vertices, dtype=np.float64) * float(units_to_mm)
    if not np.isfinite(verts).all():
        raise MeshError(f"{p}: vertices contain NaN or infinity")
    return trimesh.Trimesh(verts, np.asarray(obj.faces, dtype=np.int64), process=False)


def load_landmarks(path: str | os.PathLike, vertices: np.ndarray | None = None,
                   units_to_mm: float = 1.0) -> np.ndarray:
    """Load 3D landmarks as an (N,3) float64 array in mm.

    Accepted formats:

    - JSON: a list of [x, y, z] rows, or a dict with ``"landmarks"`` / ``"landmarks_mm"`` (rows)
      or ``"vertex_indices"`` (indices into ``vertices``);
    - text (``.txt``, ``.xyz``, ``.csv``, ``.pts`` ...): N rows of 3 numbers, or N rows of one
      integer vertex index each (``vertices`` needed). Lines starting with ``#`` are ignored.

    Rows may be NaN for landmarks that are missing; they are left out of the alignment.
    Coordinates given as numbers are multiplied by ``units_to_mm``; indexed ones take the
    (already scaled) ``vertices``.
    """
    import json

    p = Path(path)
    if not p.is_file():
        raise MeshError(f"{p}: no such file")
    idx = None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(p.read_text())
            if isinstance(data, dict):
                if "vertex_indices" in data:
                    idx = np.asarray(data["vertex_indices"], dtype=np.int64)
                    rows = None
                else:
                    rows = data.get("landmarks_mm", data.get("landmarks"))
                    if rows is None:
                        raise MeshError(f"{p}: JSON needs 'landmarks', 'landmarks_mm' or "
                                        f"'vertex_indices'")
            else:
                rows = data
            arr = None if rows is None else np.asarray(
                [[np.nan if v is None else v for v in r] for r in rows], dtype=np.float64)
        else:
            lines = [ln.split("#")[0].replace(",", " ").split() for ln in p.read_text().splitlines()]
            lines = [ln for ln in lines if ln]
            # 300-W style header lines ("version: 1", "n_points: 68", "{", "}") are skipped
            lines = [ln for ln in lines if not (ln[0].endswith(":") or ln[0] in "{}")]
            if lines and all(len(ln) == 1 for ln in lines):
                idx = np.asarray([int(ln[0]) for ln in lines], dtype=np.int64)
                arr = None
            else:
                arr = np.asarray([[float(v) for v in ln] for ln in lines], dtype=np.float64)
    except MeshError:
        raise
    except (ValueError, TypeError) as exc:
        raise MeshError(f"{p}: cannot read landmarks ({exc})") from None
    if idx is not None:
        if vertices is None:
            raise MeshError(f"{p}: landmarks given as vertex indices but no mesh to index")
        if idx.ndim != 1 or idx.min(initial=0) < 0 or idx.max(initial=0) >= len(vertices):
            raise MeshError(f"{p}: vertex indices out of range for a mesh of {len(vertices)} vertices")
        return np.asarray(vertices, dtype=np.float64)[idx]
    if arr is None or arr.ndim != 2 or arr.shape[1] != 3 or len(arr) < 3:
        shape = None if arr is None else arr.shape
        raise MeshError(f"{p}: expected N>=3 rows of x y z, got shape {shape}")
    return arr * float(units_to_mm)


def save_mesh(mesh: trimesh.Trimesh, path: str | os.PathLike) -> Path:
    """Write ``mesh`` (format from the suffix: .ply, .obj, .stl, .glb, .off) atomically: a temp
    file in the same folder, then ``os.replace``. Coordinates are written as they are (mm)."""
    path = Path(path)
    ftype = path.suffix.lower().lstrip(".")
    if ftype not in ("ply", "obj", "stl", "glb", "off"):
        raise ValueError(f"{path}: unknown mesh format '{path.suffix}' (use .ply, .obj, .stl, .glb or .off)")
    data = mesh.export(file_type=ftype)
    return atomic_write_bytes(path, data.encode() if isinstance(data, str) else data, mkdir=True)


# --------------------------------------------------------------------------------------------
# geometry helpers


def _rodrigues(w: np.ndarray) -> np.ndarray:
    """Rotation matrix for a rotation vector ``w`` (radians)."""
    theta = float(np.linalg.norm(w))
    if theta < 1e-12:
        return np.eye(3)
    k = w / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * kx + (1 - math.cos(theta)) * (kx @ kx)


def _cube_rotations() -> list[np.ndarray]:
    """The 24 signed permutation matrices with determinant +1."""
    import itertools

    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            m[np.arange(3), perm] = signs
            if np.linalg.det(m) > 0:
                out.append(m)
    return out


def crop_mesh(mesh: trimesh.Trimesh, center: np.ndarray, radius: float) -> trimesh.Trimesh:
    """The triangles of ``mesh`` whose three vertices lie within ``radius`` of ``center``."""
    inside = np.linalg.norm(np.asarray(mesh.vertices) - center, axis=1) <= radius
    fsel = inside[mesh.faces].all(1)
    if not fsel.any():
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), process=False)
    faces = np.asarray(mesh.faces)[fsel]
    used, inv = np.unique(faces, return_inverse=True)
    return trimesh.Trimesh(np.asarray(mesh.vertices)[used], inv.reshape(-1, 3), process=False)


def nose_tip_of(vertices: np.ndarray, landmarks: np.ndarray | None,
                nose_index: int = NOSE_TIP_INDEX) -> np.ndarray:
    """Nose tip (3,): landmark ``nose_index`` when available, else the vertex with the largest z."""
    if landmarks is not None and len(landmarks) > nose_index and np.isfinite(landmarks[nose_index]).all():
        return np.asarray(landmarks[nose_index], dtype=np.float64)
    v = np.asarray(vertices, dtype=np.float64)
    return v[int(np.argmax(v[:, 2]))].copy()


# --------------------------------------------------------------------------------------------
# ICP


@dataclass
class _Similarity:
    s: float
    R: np.ndarray
    t: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        return self.s * (x @ self.R.T) + self.t


def _solve_step(p: np.ndarray, q: np.ndarray, n: np.ndarray, with_scale: bool, moving_units: bool = False
                ) -> tuple[np.ndarray, np.ndarray, float]:
    """One Gauss-Newton step of sum(((s R p + t - q) . n)^2) about the identity, linearised
    around the centroid c of ``p``: returns (rotation vector, translation, log-scale).
    ``moving_units``: the residuals divided by the scale (lengths in the moving points' own
    units), which a scale cannot shrink to nothing."""
    c = p.mean(0)
    pc = p - c
    r = ((p - q) * n).sum(1)
    cols = [np.cross(pc, n), n]
    if with_scale:
        # d(r / s)/d(log s) = ((p - c) . n - r) / s; the common 1/s does not change the step
        cols.append(((pc * n).sum(1) - (r if moving_units else 0.0))[:, None])
    a = np.concatenate(cols, axis=1)
    ata = a.T @ a
    ata += np.eye(len(ata)) * 1e-9 * np.trace(ata)
    x = np.linalg.solve(ata, -a.T @ r)
    sig = float(np.clip(x[6], -0.2, 0.2)) if with_scale else 0.0
    return x[:3], x[3:6], sig


def _compose(T: _Similarity, c: np.ndarray, w: np.ndarray, tau: np.ndarray, sig: float) -> _Similarity:
    """new(x) = c + e^sig R(w) (T(x) - c) + tau."""
    r_inc = _rodrigues(w)
    s_inc = math.exp(sig)
    return _Similarity(T.s * s_inc, r_inc @ T.R, s_inc * (r_inc @ (T.t - c)) + c + tau)


def _icp(src: np.ndarray, index: SurfaceIndex, init: _Similarity, with_scale: bool, max_iter: int,
         trim_factor: float, trim_min_mm: float, length_mm: float, tol: float = 1e-5, moving_units: bool = False
         ) -> tuple[_Similarity, int, bool]:
    """Point-to-plane ICP of the fixed points ``src`` onto the dense samples of ``index`` (the
    plane of each nearest sample's triangle). ``length_mm`` (the crop radius) turns
    translations into a relative step size for the convergence test.
    Returns (transform, iterations, converged)."""
    T = _Similarity(init.s, init.R.copy(), init.t.copy())
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        p = T.apply(src)
        d, idx = index.nearest_sample(p)
        thr = max(trim_factor * float(np.median(d)), trim_min_mm * (T.s if moving_units else 1.0))
        keep = d <= thr
        if keep.sum() < 6:
            break
        p, q, n = p[keep], index.points[idx[keep]], index.normals[idx[keep]]
        w, tau, sig = _solve_step(p, q, n, with_scale, moving_units)
        T = _compose(T, p.mean(0), w, tau, sig)
        if _step_size(w, tau, sig, length_mm) < tol:
            converged = True
            break
    return T, it, converged


def _step_size(w: np.ndarray, tau: np.ndarray, sig: float, length_mm: float) -> float:
    """Size of an increment: radians + translation relative to ``length_mm`` + log-scale."""
    return float(np.linalg.norm(w)) + float(np.linalg.norm(tau)) / max(min(length_mm, 1e3), 1.0) \
        + abs(sig)


def _refine_exact(src: np.ndarray, index: SurfaceIndex, init: _Similarity, with_scale: bool,
                  max_iter: int, trim_factor: float, trim_min_mm: float, length_mm: float,
                  tol: float = 1e-6, moving_units: bool = False) -> tuple[_Similarity, int, bool]:
    """Gauss-Newton on exact point-to-triangle distances with step halving, so the robust error
    ``mean(min(d, thr)^2)`` of the fixed points ``src`` never increases (``moving_units``: d
    divided by the scale). Returns as :func:`_icp`."""

    thr = math.inf

    def correspond(T):
        # exact distances only where they can be under the threshold (the nearest sample is
        # within the covering radius of the exact distance); the rest count as the threshold
        p = T.apply(src)
        d, _ = index.nearest_sample(p)
        q, tri = p.copy(), np.zeros(len(p), dtype=np.int64)
        near = d <= thr + index.covering
        q[near], d[near], tri[near], _ = index.closest(p[near])
        d[~near] = np.maximum(d[~near], thr)
        return p, q, d, tri

    T = init
    p, q, d, tri = correspond(T)
    thr = max(trim_factor * float(np.median(d)), trim_min_mm * (T.s if moving_units else 1.0))

    def cost(d, s):
        unit = s if moving_units else 1.0
        return float(np.mean(np.minimum(d, thr) ** 2)) / unit ** 2

    current = cost(d, T.s)
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        keep = d <= thr
        if keep.sum() < 6:
            break
        n = index.face_normals[tri].copy()
        off = d > 1e-9
        n[off] = (p[off] - q[off]) / d[off, None]  # gradient of the exact distance
        pk, qk, nk = p[keep], q[keep], n[keep]
        w, tau, sig = _solve_step(pk, qk, nk, with_scale, moving_units)
        c = pk.mean(0)
        for _ in range(6):
            T_new = _compose(T, c, w, tau, sig)
            p2, q2, d2, tri2 = correspond(T_new)
            if cost(d2, T_new.s) <= current:
                break
            w, tau, sig = w / 2, tau / 2, sig / 2
        else:
            converged = True  # no decrease along the Gauss-Newton direction: at a minimum
            break
        T, p, q, d, tri, current = T_new, p2, q2, d2, tri2, cost(d2, T_new.s)
        if _step_size(w, tau, sig, length_mm) < tol:
            converged = True
            break
    return T, it, converged


# --------------------------------------------------------------------------------------------
# the evaluation


@dataclass
class ScanEvalResult:
    """Prediction-to-scan error after alignment. All lengths in millimetres.

    The alignment maps prediction coordinates x (mm) to scan coordinates: ``scale * R @ x + t``.
    The headline figures (``rmse_mm`` ...) are prediction -> scan, over the prediction vertices
    within the crop radius of the prediction's nose tip. The ``scan_to_pred_*`` figures are the
    reverse direction over the scan surface within the crop radius of its nose tip
    (area-weighted): they see holes in the prediction and ignore geometry hidden inside it.
    """

    rmse_mm: float
    mean_mm: float
    median_mm: float
    p90_mm: float
    max_mm: float
    n_points: int                 # prediction vertices inside the crop sphere (all used for figures)
    scan_to_pred_rmse_mm: float
    scan_to_pred_mean_mm: float
    scan_to_pred_median_mm: float
    scan_to_pred_p90_mm: float
    scan_coverage: float          # share of the scan's area in the sphere that the figures above cover
    crop_radius_mm: float
    scale_allowed: bool
    scale: float                  # 1.0 when scale was not allowed
    rotation: np.ndarray          # (3,3)
    translation: np.ndarray       # (3,) mm
    init: str                     # "landmarks", "axes" or "none"
    icp_iterations: int
    icp_converged: bool
    scan_nose_tip_mm: np.ndarray  # (3,) scan crop centre, scan frame
    pred_nose_tip_mm: np.ndarray  # (3,) prediction crop centre, prediction frame
    errors_mm: np.ndarray         # (n_points,) unsigned distance of each used vertex to the scan
    signed_errors_mm: np.ndarray  # (n_points,) + outside the scan surface (along its normal)
    vertex_indices: np.ndarray    # (n_points,) indices of the used vertices in the prediction
    aligned_pred: trimesh.Trimesh = field(repr=False)  # whole prediction in the scan frame (mm)

    def summary(self) -> dict:
        """The scalar figures and the transform as plain JSON-able values."""
        d: dict = {}
        for k in ("rmse_mm", "mean_mm", "median_mm", "p90_mm", "max_mm", "n_points",
                  "scan_to_pred_rmse_mm", "scan_to_pred_mean_mm", "scan_to_pred_median_mm",
                  "scan_to_pred_p90_mm", "scan_coverage", "crop_radius_mm", "scale_allowed", "scale", "init",
                  "icp_iterations", "icp_converged"):
            v = getattr(self, k)
            d[k] = v if not isinstance(v, float) or math.isfinite(v) else str(v)
        d["rotation"] = np.round(self.rotation, 8).tolist()
        d["translation_mm"] = np.round(self.translation, 6).tolist()
        d["scan_nose_tip_mm"] = np.round(self.scan_nose_tip_mm, 6).tolist()
        d["pred_nose_tip_mm"] = np.round(self.pred_nose_tip_mm, 6).tolist()
        return d


def evaluate_scan(pred: trimesh.Trimesh, scan: trimesh.Trimesh,
                  pred_landmarks: np.ndarray | None = None,
                  scan_landmarks: np.ndarray | None = None,
                  *, allow_scale: bool = False,
                  crop_radius_mm: float = DEFAULT_CROP_RADIUS_MM,
                  scan_margin_mm: float = 10.0,
                  align: str = "auto",
                  nose_index: int = NOSE_TIP_INDEX,
                  max_iterations: int = 50,
                  refine_iterations: int = 40,
                  sample_spacing_mm: float = 1.0,
                  reverse_spacing_mm: float = 4.0,
                  trim_factor: float = 3.0,
                  trim_min_mm: float = 5.0,
                  errors_in_moving_units: bool = False) -> ScanEvalResult:
    """Align ``pred`` to ``scan`` and measure the point-to-surface error of its vertices (mm).

    Args:
        pred: predicted mesh in mm (any rigid placement).
        scan: ground-truth scan in mm.
        pred_landmarks, scan_landmarks: optional (N,3) corresponding 3D points in mm (iBUG-68
            order for the nose tip); rows may be NaN. Both are needed for the landmark
            initialisation; each alone still gives its mesh's nose tip.
        allow_scale: let the alignment use one isotropic scale (reported in the result).
        crop_radius_mm: radius of the comparison spheres around each mesh's nose tip
            (``math.inf``: no crop).
        scan_margin_mm: extra radius kept on the scan so points near the sphere's edge find
            their true closest scan point.
        align: "auto" (landmarks if both given, else principal axes), "landmarks", "axes", or
            "none" (no alignment at all: measures the meshes where they are; for tests).
        nose_index: index of the nose tip in the landmark arrays.
        max_iterations: ICP iteration limit (kd-tree phase).
        refine_iterations: iteration limit of the final phase on exact closest points.
        sample_spacing_mm: spacing of the surface samples that index the closest-point searches.
        reverse_spacing_mm: spacing of the scan quadrature points of the scan -> prediction
            figures (each weighted by its area).
        trim_factor, trim_min_mm: pairs farther apart than max(trim_factor * median, trim_min_mm)
            are left out of each ICP step (not out of the reported figures).
        errors_in_moving_units: with scale, let ICP minimise the distances divided by the scale,
            i.e. in ``pred``'s own units (for :func:`evaluate_from_scan`, where ``pred`` is the scan).

    Raises:
        MeshError: nothing of a mesh inside the crop sphere, or unusable landmarks.
    """
    pv = np.asarray(pred.vertices, dtype=np.float64)
    sv = np.asarray(scan.vertices, dtype=np.float64)
    if align not in ("auto", "landmarks", "axes", "none"):
        raise ValueError(f"align must be auto, landmarks, axes or none, got {align!r}")
    if align == "landmarks" and (pred_landmarks is None or scan_landmarks is None):
        raise MeshError("landmark alignment needs landmarks for both the prediction and the scan")
    if pred_landmarks is not None and scan_landmarks is not None \
            and np.shape(pred_landmarks) != np.shape(scan_landmarks):
        raise MeshError(f"prediction has {len(pred_landmarks)} landmarks but the scan has "
                        f"{len(scan_landmarks)}")
    radius = float(crop_radius_mm)
    scan_tip = nose_tip_of(sv, scan_landmarks, nose_index)
    pred_tip = nose_tip_of(pv, pred_landmarks, nose_index)

    scan_crop = crop_mesh(scan, scan_tip, radius + scan_margin_mm)
    if len(scan_crop.faces) == 0:
        raise MeshError(f"the scan has no triangles within {radius:g} mm of its nose tip "
                        f"(wrong units? use the units-to-mm factor)")
    index = SurfaceIndex(scan_crop, sample_spacing_mm)

    # the prediction's crop is fixed in its own frame, so the alignment cannot change which
    # points are measured (e.g. by scaling parts of the face out of the sphere)
    used = np.flatnonzero(np.linalg.norm(pv - pred_tip, axis=1) <= radius)
    if len(used) < 6:
        raise MeshError(f"the prediction has fewer than 6 vertices within {radius:g} mm of its "
                        f"nose tip (wrong units?)")
    src = pv[used]

    use_landmarks = align == "landmarks" or (
        align == "auto" and pred_landmarks is not None and scan_landmarks is not None)
    icp_args = dict(with_scale=allow_scale, trim_factor=trim_factor, trim_min_mm=trim_min_mm,
                    length_mm=radius, moving_units=errors_in_moving_units)
    iterations, converged = 0, True
    if align == "none":
        T = _Similarity(1.0, np.eye(3), np.zeros(3))
        init = "none"
    elif use_landmarks:
        try:
            s, R, t = umeyama(np.asarray(pred_landmarks), np.asarray(scan_landmarks), allow_scale)
        except ValueError as exc:
            raise MeshError(f"landmark alignment failed: {exc}") from None
        T, iterations, converged = _icp(src, index, _Similarity(s, R, t),
                                        max_iter=max_iterations, **icp_args)
        init = "landmarks"
    else:
        scan_in = sv[np.linalg.norm(sv - scan_tip, axis=1) <= radius]
        T, iterations, converged = _align_by_axes(src, scan_in if len(scan_in) >= 3 else sv, index,
                                                  max_iterations, icp_args)
        init = "axes"
    if align != "none":
        # finish on exact point-to-triangle distances: the kd-tree phase minimises distances to
        # the planes of nearby samples, which slightly under-measures near mesh edges
        T, it2, converged = _refine_exact(src, index, T, max_iter=refine_iterations, **icp_args)
        iterations += it2

    if allow_scale and not MIN_SCALE <= T.s <= 1 / MIN_SCALE:
        # ICP with a free scale can shrink a prediction that matches nowhere onto a speck of the
        # scan's surface (error -> 0): a mirrored mesh, wrong landmarks or wrong units, never a result
        raise MeshError(f"the alignment needed a scale of {T.s:.3g}: the prediction does not match the scan "
                        f"(mirrored? wrong landmarks or units?)")
    aligned = T.apply(pv)
    err, signed = index.distance(aligned[used])
    aligned_mesh = trimesh.Trimesh(aligned, np.asarray(pred.faces), process=False)
    # reverse direction: area-weighted samples of the scan surface within the sphere, measured
    # where the prediction covers them (closest prediction point not on its open boundary)
    spts, sw = surface_quadrature(scan_crop.vertices, scan_crop.faces, reverse_spacing_mm)
    sin = np.linalg.norm(spts - scan_tip, axis=1) <= radius
    spts, sw = spts[sin], sw[sin]
    _, rev, _, rim = SurfaceIndex(aligned_mesh, sample_spacing_mm).closest(spts)
    rev, rw = rev[~rim], sw[~rim]
    coverage = float(rw.sum() / sw.sum()) if sw.sum() > 0 else math.nan
    return ScanEvalResult(
        rmse_mm=float(np.sqrt(np.mean(err ** 2))),
        mean_mm=float(err.mean()),
        median_mm=float(np.median(err)),
        p90_mm=float(np.percentile(err, 90)),
        max_mm=float(err.max()),
        n_points=int(len(used)),
        scan_to_pred_rmse_mm=float(np.sqrt(np.average(rev ** 2, weights=rw))) if len(rev) else math.nan,
        scan_to_pred_mean_mm=float(np.average(rev, weights=rw)) if len(rev) else math.nan,
        scan_to_pred_median_mm=weighted_percentile(rev, rw, 50),
        scan_to_pred_p90_mm=weighted_percentile(rev, rw, 90),
        scan_coverage=coverage,
        crop_radius_mm=radius,
        scale_allowed=bool(allow_scale),
        scale=float(T.s),
        rotation=T.R,
        translation=T.t,
        init=init,
        icp_iterations=int(iterations),
        icp_converged=bool(converged),
        scan_nose_tip_mm=scan_tip,
        pred_nose_tip_mm=pred_tip,
        errors_mm=err,
        signed_errors_mm=signed,
        vertex_indices=used,
        aligned_pred=aligned_mesh,
    )


@dataclass
class FromScanResult:
    """Scan-to-prediction error, the direction of MICC-style evaluators (issue 10's among them).
    All lengths in the scan's millimetres.

    Every scan vertex within the crop radius of the scan's nose tip is measured to the
    prediction's surface after the prediction is aligned to the scan (landmarks, then ICP on these
    same distances). Geometry inside the prediction cannot add error; a prediction that stops
    short of the scan's crop does (those points are counted, with ``rim_share`` saying how many
    landed on the prediction's open boundary). ``area_rmse_mm`` weights the scan's surface by
    area instead of by vertex (the same for every tessellation of the scan).
    """

    rmse_mm: float
    mean_mm: float
    median_mm: float
    area_rmse_mm: float
    n_points: int                 # scan vertices inside the crop sphere
    rim_share: float              # of those, the share whose closest prediction point is on its boundary
    scale: float                  # the prediction's scale onto the scan (1.0 when scale was not allowed)
    icp_converged: bool
    errors_mm: np.ndarray         # (n_points,) unsigned, per scan vertex
    signed_errors_mm: np.ndarray  # (n_points,) + where the scan lies outside the prediction's surface
    vertex_indices: np.ndarray    # (n_points,) indices of those scan vertices

    def summary(self) -> dict:
        """The scalar figures as plain JSON-able values."""
        return {k: getattr(self, k) for k in ("rmse_mm", "mean_mm", "median_mm", "area_rmse_mm", "n_points",
                                               "rim_share", "scale", "icp_converged")}


def evaluate_from_scan(pred: trimesh.Trimesh, scan: trimesh.Trimesh,
                       pred_landmarks: np.ndarray | None = None,
                       scan_landmarks: np.ndarray | None = None,
                       *, allow_scale: bool = False,
                       crop_radius_mm: float = DEFAULT_CROP_RADIUS_MM,
                       area_spacing_mm: float = 2.0, **icp_options) -> FromScanResult:
    """Align ``pred`` to ``scan`` minimising the scan's distances to it and measure them (mm).

    The same crop, landmark start and ICP as :func:`evaluate_scan` with the two meshes' roles
    swapped: the scan's cropped vertices are the moving points and the whole prediction the
    surface. So the prediction should be a whole mesh (e.g. facerecon's head, ``face.obj``), and
    the scan the surface a scanner saw (:func:`visible_part` removes what it cannot have seen).

    Args:
        pred, scan: meshes in mm; landmarks (N,3) mm as for :func:`evaluate_scan`.
        allow_scale: one isotropic scale in the alignment (errors stay in the scan's mm).
        crop_radius_mm: the sphere around the scan's nose tip whose vertices are measured.
        area_spacing_mm: spacing of the area-weighted samples of ``area_rmse_mm``.
        icp_options: passed on to :func:`evaluate_scan` (``align``, ``max_iterations`` ...).
    """
    # the prediction is the fixed surface here: kept whole (a crop in its mm would cut what a
    # scaled scan still needs)
    icp_options.setdefault("scan_margin_mm", math.inf)
    r = evaluate_scan(scan, pred, scan_landmarks, pred_landmarks, allow_scale=allow_scale,
                      crop_radius_mm=crop_radius_mm, errors_in_moving_units=True, **icp_options)
    s = r.scale  # scan -> prediction frame; lengths there are s times the scan's
    index = SurfaceIndex(pred, 1.0)
    scan_tip = r.pred_nose_tip_mm  # evaluate_scan's "prediction" was the scan
    crop = crop_mesh(scan, scan_tip, crop_radius_mm + area_spacing_mm)
    pts, w = surface_quadrature(crop.vertices, crop.faces, area_spacing_mm)
    inside = np.linalg.norm(pts - scan_tip, axis=1) <= crop_radius_mm
    moved = s * pts[inside] @ r.rotation.T + r.translation
    _, d, _, _ = index.closest(moved)
    _, _, _, rim = index.closest(r.aligned_pred.vertices[r.vertex_indices])
    return FromScanResult(
        rmse_mm=float(np.sqrt(np.mean(r.errors_mm ** 2))) / s,
        mean_mm=float(r.errors_mm.mean()) / s,
        median_mm=float(np.median(r.errors_mm)) / s,
        area_rmse_mm=float(np.sqrt(np.average(d ** 2, weights=w[inside]))) / s if inside.any() else math.nan,
        n_points=r.n_points,
        rim_share=float(rim.mean()),
        scale=1.0 / s,
        icp_converged=r.icp_converged,
        errors_mm=r.errors_mm / s,
        signed_errors_mm=r.signed_errors_mm / s,
        vertex_indices=r.vertex_indices,
    )


def visible_part(mesh: trimesh.Trimesh, center: np.ndarray | None = None, radius: float = math.inf,
                 directions: int = 24, hidden_share: float = 0.9) -> trimesh.Trimesh:
    """The part of ``mesh`` (mm) a scanner could have seen: its triangles within ``radius`` of
    ``center`` less those with a corner from which more than ``hidden_share`` of ``directions``
    rays into the outer hemisphere hit the mesh again (eyeballs and teeth inside a head model,
    the inside of the mouth). Needs trimesh's ray queries (``rtree``, the ``test`` extra)."""
    from facerecon.facemodel.surface import occlusion

    part = crop_mesh(mesh, np.zeros(3) if center is None else np.asarray(center, np.float64), radius)
    if len(part.faces) == 0:
        return part
    hidden = occlusion(part.vertices, part.faces, directions=directions) > hidden_share
    faces = np.asarray(part.faces)[~hidden[part.faces].any(1)]
    used, inv = np.unique(faces, return_inverse=True)
    return trimesh.Trimesh(np.asarray(part.vertices)[used], inv.reshape(-1, 3), process=False)


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` with non-negative ``weights`` (NaN if empty)."""
    values, weights = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    if len(values) == 0 or weights.sum() <= 0:
        return math.nan
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = np.cumsum(w) - 0.5 * w
    return float(np.interp(q / 100.0 * w.sum(), cum, v))


def _align_by_axes(src, scan_in, index, max_iterations, icp_args):
    """Candidates from principal axes (24 proper axis flips/permutations) and the identity; the
    best few by a robust score get a short ICP on a subsample; the best of those finishes ICP."""
    cp, cs = src.mean(0), scan_in.mean(0)

    def frame(x):
        w, e = np.linalg.eigh(np.cov((x - x.mean(0)).T))
        e = e[:, ::-1]
        if np.linalg.det(e) < 0:
            e[:, 2] *= -1
        return e

    ep, es = frame(src), frame(scan_in)
    s0 = 1.0
    if icp_args["with_scale"]:
        rp = np.sqrt(((src - cp) ** 2).sum(1).mean())
        rs = np.sqrt(((scan_in - cs) ** 2).sum(1).mean())
        s0 = float(rs / rp) if rp > 0 else 1.0
    cands = [np.eye(3)] + [es @ m @ ep.T for m in _cube_rotations()]
    rng = np.random.default_rng(0)
    sub = src if len(src) <= 1000 else src[rng.choice(len(src), 1000, replace=False)]
    radius = icp_args["length_mm"]
    cap = 0.1 * radius if math.isfinite(radius) else 20.0

    def score(T):
        d, _ = index.tree.query(T.apply(sub), distance_upper_bound=cap)
        return float(np.minimum(d, cap).mean())

    starts = [_Similarity(s0, R, cs - s0 * R @ cp) for R in cands]
    ranked = sorted(starts, key=score)[:4]
    best, best_score = None, math.inf
    for T0 in ranked:
        T, _, _ = _icp(sub, index, T0, max_iter=12, **icp_args)
        sc = score(T)
        if sc < best_score:
            best, best_score = T, sc
    return _icp(src, index, best, max_iter=max_iterations, **icp_args)
