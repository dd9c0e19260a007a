"""Eyes for the texture: sclera, iris and pupil painted on ICT's eyeballs.

Each ICT eyeball is two spheres of about 15 mm radius: an outer one (sclera, with the cornea
bulging up to 1.8 mm at the front) and an inner one (the kit's "iris" vertex range). Both are
painted with the same pattern, so whichever a viewer shows looks right. The pattern is found
in 3D on the mean face, not in UV: per eyeball, the sphere's centre (least squares over the outer
sphere), the gaze axis (from the centre through the cornea's bulge: outer vertices more than
0.4 mm above the sphere) and the iris radius (95th percentile of the bulge's distance from that
axis, 6.3 mm on ICT; the visible iris is the cornea's base). A texel's distance from the axis
then places it on the pupil (30 % of the iris radius), the iris (radial fibres, a lighter
collarette, a dark limbal ring) or the sclera; every edge is smoothed over 0.25 mm.

The iris colour comes from the photo where the iris was seen (:func:`iris_color`: median over
the seen part of the iris ring of both eyes, if enough of it was seen and it is darker than the
sclera next to it), else a plausible brown (:data:`DEFAULT_IRIS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Colours (RGB in [0,1], the texture's sRGB values).
SCLERA = np.array([0.87, 0.84, 0.80], np.float32)
PUPIL = np.array([0.03, 0.025, 0.025], np.float32)
DEFAULT_IRIS = np.array([0.38, 0.24, 0.14], np.float32)
#: Pupil radius as a fraction of the iris radius.
PUPIL_FRACTION = 0.30
#: Edge width of the painted features, mm.
EDGE_MM = 0.25


@dataclass(frozen=True)
class Eye:
    """One eyeball of the mean face, in model space (mm)."""

    centre: np.ndarray
    """(3,) centre of the sclera sphere."""
    axis: np.ndarray
    """(3,) unit gaze axis (from the centre through the cornea)."""
    radius: float
    """Sclera sphere radius, mm."""
    iris_mm: float
    """Iris radius (distance from the axis), mm."""
    e1: np.ndarray
    """(3,) unit vector perpendicular to the axis (azimuth 0)."""
    e2: np.ndarray
    """(3,) ``axis × e1``."""

    @property
    def pupil_mm(self) -> float:
        return PUPIL_FRACTION * self.iris_mm

    def coordinates(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance from the axis (N,) mm (+inf behind the centre) and azimuth (N,) radians of
        mean-face points (N,3)."""
        v = np.asarray(points, dtype=np.float64) - self.centre
        along = v @ self.axis
        x, y = v @ self.e1, v @ self.e2
        rho = np.where(along > 0, np.hypot(x, y), np.inf)
        return rho, np.arctan2(y, x)


def _sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere (centre (3,), radius) through (N,3) points."""
    a = np.concatenate([2.0 * points, np.ones((len(points), 1))], 1)
    sol = np.linalg.lstsq(a, (points ** 2).sum(1), rcond=None)[0]
    centre = sol[:3]
    return centre, float(np.sqrt(max(sol[3] + centre @ centre, 0.0)))


def eye_geometry(model) -> dict[str, Eye]:
    """The eyes of a face model's mean face, keyed "eyeball_left"/"eyeball_right" (an eye whose
    vertices the model lacks is left out)."""
    from facerecon.facemodel.ict import PARTS

    ids = np.asarray(model.vertex_ids)
    mean = model.mean.detach().cpu().numpy().astype(np.float64)
    eyes: dict[str, Eye] = {}
    for side in ("left", "right"):
        lo, hi = PARTS[f"eyeball_{side}"]
        inner_lo, _ = PARTS[f"iris_{side}"]
        outer = mean[(ids >= lo) & (ids < inner_lo)]
        if len(outer) < 50:
            continue
        centre, _ = _sphere(outer)
        rad = np.linalg.norm(outer - centre, axis=1)
        # refit on the sclera alone (the cornea bulges above the sphere)
        centre, radius = _sphere(outer[rad < np.median(rad) + 0.3])
        rad = np.linalg.norm(outer - centre, axis=1)
        bulge = outer[rad > np.median(rad) + 0.4]
        if len(bulge) < 10:
            continue
        axis = (bulge - centre).mean(0)
        axis /= np.linalg.norm(axis)
        d = bulge - centre
        perp = np.linalg.norm(d - (d @ axis)[:, None] * axis, axis=1)
        e1 = np.cross([0.0, 1.0, 0.0], axis)
        e1 /= np.linalg.norm(e1)
        eyes[f"eyeball_{side}"] = Eye(centre=centre, axis=axis, radius=radius,
                                      iris_mm=float(np.percentile(perp, 95)), e1=e1, e2=np.cross(axis, e1))
    return eyes


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def eye_colors(eye: Eye, points: np.ndarray, iris_rgb: np.ndarray) -> np.ndarray:
    """Colours (N,3) float32 of mean-face points (N,3) on ``eye``: pupil, iris (``iris_rgb``,
    with fibres, collarette and limbal ring) and sclera."""
    rho, phi = eye.coordinates(points)
    iris_rgb = np.asarray(iris_rgb, dtype=np.float64)
    r_iris, r_pupil = eye.iris_mm, eye.pupil_mm
    t = np.clip((rho - r_pupil) / max(r_iris - r_pupil, 1e-6), 0.0, 1.0)  # 0 at the pupil, 1 at the limbus
    # radial fibres: a few incommensurate angular frequencies, varying slowly along the radius
    fibres = (0.5 * np.sin(29.0 * phi + 2.0 * np.sin(3.0 * phi) + 4.0 * t)
              + 0.3 * np.sin(47.0 * phi + 1.3) + 0.2 * np.sin(83.0 * phi + 6.0 * t))
    shade = 0.92 + 0.14 * fibres
    shade *= 1.0 + 0.22 * np.exp(-((t - 0.3) / 0.08) ** 2)  # collarette
    shade *= 1.0 - 0.55 * _smoothstep(0.72, 1.0, t)  # limbal ring
    shade *= 1.0 - 0.35 * np.exp(-(t / 0.08) ** 2)  # dark pupil margin
    iris = np.clip(iris_rgb[None] * shade[:, None], 0.0, 1.0)
    w_pupil = 1.0 - _smoothstep(r_pupil - EDGE_MM, r_pupil + EDGE_MM, rho)
    w_sclera = _smoothstep(r_iris - EDGE_MM, r_iris + EDGE_MM, rho)
    out = iris * (1.0 - w_pupil)[:, None] + PUPIL[None] * w_pupil[:, None]
    out = out * (1.0 - w_sclera)[:, None] + SCLERA[None] * w_sclera[:, None]
    return out.astype(np.float32)


def iris_color(rho: np.ndarray, colors: np.ndarray, weights: np.ndarray, eye_iris_mm: float,
               *, min_texels: int = 30, min_fraction: float = 0.1) -> np.ndarray | None:
    """The iris colour (3,) a photo shows, or None if it shows too little of the iris.

    Args:
        rho: (N,) distance from the gaze axis (mm) of eyeball texels (both eyes).
        colors: (N,3) their photo colours in [0,1].
        weights: (N,) photo weights (texels with weight > 0.5 count as seen).
        eye_iris_mm: the iris radius, mm.

    The ring between the pupil and the limbus (its inner 20–80 %) is sampled; the colour is the
    median of the seen ring texels, kept only if at least ``min_texels`` and ``min_fraction`` of
    the ring were seen and the ring is darker than the seen sclera. Its brightness (luma) is
    clipped to [0.06, 0.5].
    """
    r_pupil = PUPIL_FRACTION * eye_iris_mm
    span = eye_iris_mm - r_pupil
    ring = (rho > r_pupil + 0.2 * span) & (rho < r_pupil + 0.8 * span)
    seen = ring & (weights > 0.5)
    if seen.sum() < min_texels or seen.sum() < min_fraction * max(ring.sum(), 1):
        return None
    c = np.median(colors[seen], axis=0).astype(np.float64)
    luma = lambda x: float(0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])  # noqa: E731
    sclera = (rho > eye_iris_mm + 1.0) & np.isfinite(rho) & (weights > 0.5)
    if sclera.sum() >= min_texels and luma(c) > 0.9 * luma(np.median(colors[sclera], axis=0)):
        return None
    y = luma(c)
    if y > 0.5:
        c *= 0.5 / y
    elif 0 < y < 0.06:
        c *= 0.06 / y
    elif y <= 0:
        return None
    return np.clip(c, 0.0, 1.0).astype(np.float32)


__all__ = ["SCLERA", "PUPIL", "DEFAULT_IRIS", "PUPIL_FRACTION", "Eye", "eye_geometry", "eye_colors", "iris_color"]
