"""Photos in: turn any photo into what the reconstruction needs.

For each face in a photo: an aligned 224×224 RGB crop (the frame R-Net expects), its 68 iBUG
landmarks in crop and photo pixels, a skin-attention map (SPEC §4) and the 2×3 transforms
photo→crop (``M``) and crop→photo (``M_inv``), so every result can be drawn on the original.

Stages, each usable alone: :func:`load_image` (robust decoding, one-line :class:`ImageError`),
:class:`FaceDetector` (dlib HOG + 68-point predictor, :class:`NoFaceError`), :func:`align`
(similarity to a canonical template), :class:`SkinClassifier` (Gaussian naive Bayes).
:class:`Preparer` holds the loaded models and runs them all; :func:`prepare` is the one-call form.
"""

from __future__ import annotations

from dataclasses import dataclass
import os

import numpy as np
from PIL import Image

from facerecon.imageio.align import AlignedFace, align, template_landmarks
from facerecon.imageio.detect import DetectedFace, FaceDetector, NoFaceError
from facerecon.imageio.focal import DEFAULT_LENS, exif_focal, focal_from_35mm, read_focal
from facerecon.imageio.load import ImageError, ImageSource, describe_source, load_image
from facerecon.imageio.skin import SkinClassifier

__all__ = [
    "AlignedFace", "DetectedFace", "FaceDetector", "ImageError", "NoFaceError", "PreparedFace",
    "Preparer", "SkinClassifier", "align", "load_image", "prepare", "template_landmarks",
]


#: :meth:`PreparedFace.small_face_note` speaks above this enlargement of the photo (crop pixels per
#: photo pixel): the aligned crop's outer eye corners are about 80 px apart, so above 3 they are
#: under about 27 px apart in the photo (LFW's 250 px photos: 1.3–1.5).
SMALL_FACE_UPSAMPLING = 3.0


@dataclass
class PreparedFace:
    """One face of one photo, ready for fitting (pixel coordinates: x right, y down)."""

    source: str | None  #: the photo's path, or None for an in-memory image
    image_size: tuple[int, int]  #: (height, width) of the photo, pixels
    crop: np.ndarray  #: (224, 224, 3) uint8 RGB aligned face
    landmarks_crop: np.ndarray  #: (68, 2) float32, crop pixels
    landmarks_photo: np.ndarray  #: (68, 2) float32, photo pixels
    attention: np.ndarray  #: (224, 224) float32 skin attention A in [0, 1]
    M: np.ndarray  #: (2, 3) photo -> crop
    M_inv: np.ndarray  #: (2, 3) crop -> photo
    box: tuple[float, float, float, float]  #: detector box (x0, y0, x1, y1), photo pixels
    score: float  #: detector score (HOG margin, or the CNN's confidence where ``detector == "cnn"``)
    detector: str = "hog"  #: which dlib detector found the face: ``"hog"`` or ``"cnn"``
    eyes_completed: bool = False  #: eye and brow points completed by the point model (dlib was unsure of them)
    focal_photo: float | None = None  #: the camera's focal length in photo pixels (EXIF or given); None: unknown
    landmark_spread: np.ndarray | None = None
    """(68,) float32, crop pixels: each landmark's spread over the detector's jittered boxes (how
    unsure the detector is of it); None: unknown (landmarks given, not detected)."""

    @property
    def upsampling(self) -> float:
        """Crop pixels per photo pixel: how far the alignment enlarged the face (about 1.4 on
        LFW's 250 px photos, below 1 on larger ones)."""
        return float(np.sqrt(abs(np.linalg.det(np.asarray(self.M, np.float64)[:, :2]))))

    def small_face_note(self, limit: float = SMALL_FACE_UPSAMPLING) -> str | None:
        """A one-line note when the face is too small in the photo for detail: the crop enlarges
        it more than ``limit`` times, so the shape leans on the model's prior; None otherwise."""
        if self.upsampling <= limit:
            return None
        eyes = float(np.linalg.norm(self.landmarks_photo[45] - self.landmarks_photo[36]))
        return (f"small face: outer eye corners {eyes:.0f} px apart in the photo, enlarged "
                f"{self.upsampling:.1f}x for the fit; the shape is coarse and leans on the model's average")

    def crop_focal(self, default: float) -> float:
        """The camera's focal length in crop pixels: :attr:`focal_photo` scaled by the alignment,
        or ``default`` (the fitter's camera, a face about 1 m away) when it is unknown."""
        if self.focal_photo is None:
            return float(default)
        return float(self.focal_photo) * self.upsampling

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """Map crop-pixel points (..., 2) to photo pixels."""
        p = np.asarray(points, dtype=np.float64)
        return p @ self.M_inv[:, :2].T + self.M_inv[:, 2]


class Preparer:
    """Holds the detector and skin model; ``prepare(photo)`` returns one :class:`PreparedFace`
    per face (the largest only unless ``all_faces``); ``prepare_source(photo)`` also returns the
    loaded photo, so that callers that need its pixels load it only once."""

    def __init__(
        self,
        detector: FaceDetector | None = None,
        skin: SkinClassifier | None = None,
        size: int = 224,
        focal_35mm: float | str = DEFAULT_LENS,
    ):
        """``focal_35mm``: the photos' lens as a 35 mm-equivalent focal length in mm (every photo),
        ``"exif"`` (each file's EXIF where it records one, else unknown) or ``"none"`` (unknown:
        the fitter assumes a face about 1 m away)."""
        self.detector = detector if detector is not None else FaceDetector()
        self.skin = skin if skin is not None else SkinClassifier.load()
        self.size = int(size)
        if isinstance(focal_35mm, str):
            if focal_35mm not in ("exif", "none"):
                raise ValueError(f"focal_35mm must be a length in mm, 'exif' or 'none' (got {focal_35mm!r})")
        elif not float(focal_35mm) > 0:
            raise ValueError(f"focal_35mm must be > 0 mm (got {focal_35mm})")
        self.focal_35mm = focal_35mm

    def photo_focal(self, source: ImageSource, rgb: np.ndarray) -> float | None:
        """The focal length of ``source``'s camera in pixels of the loaded photo ``rgb``, by
        :attr:`focal_35mm` (None: unknown)."""
        if self.focal_35mm == "none":
            return None
        if self.focal_35mm != "exif":
            return focal_from_35mm(float(self.focal_35mm), rgb.shape[1], rgb.shape[0])
        if isinstance(source, (str, os.PathLike)):
            return read_focal(source)
        if isinstance(source, Image.Image):
            return exif_focal(source)
        return None

    def prepare_source(self, source: ImageSource, all_faces: bool = False
                       ) -> tuple[np.ndarray, list[PreparedFace]]:
        """Load ``source`` once and prepare its faces: ``(photo, faces)``.

        ``photo`` is the loaded (H, W, 3) uint8 RGB photo; errors (:class:`ImageError`,
        :class:`NoFaceError`) are one line naming the source (its path for a file).
        """
        path = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
        rgb = load_image(source)
        return rgb, self.prepare_loaded(rgb, all_faces=all_faces, source=path, name=describe_source(source),
                                        focal=self.photo_focal(source, rgb))

    def prepare_loaded(self, rgb: np.ndarray, all_faces: bool = False, source: str | None = None,
                       name: str | None = None, focal: float | None = None) -> list[PreparedFace]:
        """Detect, align and compute attention on an already loaded (H, W, 3) uint8 RGB photo.

        ``source`` is recorded in each :class:`PreparedFace`; ``name`` (default: ``source``, else
        ``<array>``) is what a :class:`NoFaceError` names; ``focal`` is the camera's focal length
        in the photo's pixels (None: unknown; with a 35 mm-equivalent ``focal_35mm`` set, that).
        """
        if focal is None and self.focal_35mm not in ("exif", "none"):
            focal = focal_from_35mm(float(self.focal_35mm), rgb.shape[1], rgb.shape[0])
        name = name or source or describe_source(rgb)
        faces = self.detector.detect(rgb, all_faces=all_faces, source=name)
        out = []
        for face in faces:
            aligned = align(rgb, face.landmarks, size=self.size)
            spread = None  # photo pixels -> crop pixels
            if face.spread is not None:
                spread = (np.asarray(face.spread, np.float32) * aligned.scale).astype(np.float32)
            out.append(PreparedFace(
                source=source,
                image_size=(int(rgb.shape[0]), int(rgb.shape[1])),
                crop=aligned.crop,
                landmarks_crop=aligned.landmarks,
                landmarks_photo=face.landmarks,
                attention=self.skin.attention(aligned.crop),
                M=aligned.M,
                M_inv=aligned.M_inv,
                box=face.box,
                score=face.score,
                detector=face.detector,
                eyes_completed=face.eyes_completed,
                focal_photo=focal,
                landmark_spread=spread,
            ))
        return out

    def prepare(self, image_or_path: ImageSource, all_faces: bool = False) -> list[PreparedFace]:
        """Load, detect, align and compute attention. Raises ImageError / NoFaceError (one line)."""
        return self.prepare_source(image_or_path, all_faces=all_faces)[1]

    __call__ = prepare


def prepare(
    image_or_path: ImageSource,
    detector: FaceDetector | None = None,
    all_faces: bool = False,
    skin: SkinClassifier | None = None,
) -> list[PreparedFace]:
    """One-call pipeline: photo (path, array or PIL image) -> list of :class:`PreparedFace`.

    Pass a ``detector`` you keep when preparing many photos (loading it takes ~1 s).
    """
    return Preparer(detector=detector, skin=skin).prepare(image_or_path, all_faces=all_faces)
