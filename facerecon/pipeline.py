"""The library API: one object, built once, called on photos (3DDFA_V2 style).

>>> recon = FaceReconstructor(device="cpu")
>>> faces = recon("photo.jpg")            # one Reconstruction per face (largest by default)
>>> faces[0].vertices                       # (V,3) mm, model space, neutral pose
>>> faces[0].params.beta                    # ARKit expression weights, (1,53)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from facerecon.facemodel import FaceModel, load_face_model
from facerecon.fitting.engine import FitConfig, Fitter
from facerecon.imageio import ImageError, NoFaceError, PreparedFace, Preparer
from facerecon.imageio.load import ImageSource, describe_source
from facerecon.params import FaceParams
from facerecon.render import Camera


@dataclass
class Reconstruction:
    """One reconstructed face of one photo."""

    source: str | None
    """Path of the photo (None for an in-memory image)."""
    photo: np.ndarray
    """The photo as loaded (H,W,3) uint8 RGB (EXIF orientation applied)."""
    prepared: PreparedFace
    """Aligned crop, detected landmarks, skin attention and the crop↔photo transforms."""
    params: FaceParams
    """Fitted coefficients and pose (batch of 1, CPU tensors)."""
    landmarks_fit: np.ndarray
    """The fitted model's 68 landmarks projected into the photo (68,2), pixels."""
    losses: dict[str, float] = field(default_factory=dict)
    """Final loss terms (unweighted)."""

    def vertices(self, model: FaceModel) -> np.ndarray:
        """Model-space vertices (V,3) in mm (identity + expression, no pose) over ``model``'s region."""
        with torch.no_grad():
            v = model.shape(self.params.alpha.to(model.mean.device), self.params.beta.to(model.mean.device))
        return v[0].cpu().numpy()


@dataclass
class FailedInput:
    """An input that could not be reconstructed, with a one-line reason."""

    source: str
    reason: str


class FaceReconstructor:
    """Photos -> fitted 3D faces. Holds the detector, skin model, face model and FaceNet.

    ``device`` is "cpu", "cuda" or a torch device; ``config`` sets the fitting (steps, losses).
    """

    def __init__(self, device: str | torch.device = "cpu", config: FitConfig | None = None,
                 face_model: FaceModel | None = None, camera: Camera | None = None,
                 preparer: Preparer | None = None) -> None:
        self.device = torch.device(device)
        self.config = config or FitConfig()
        self.model = (face_model or load_face_model(self.config.region)).to(self.device)
        self.camera = camera or Camera()
        self.preparer = preparer or Preparer()
        facenet = None
        if self.config.perceptual and self.config.weights.perceptual > 0:
            from facerecon.nets.facenet import FaceNet

            facenet = FaceNet.from_package(device=self.device)
        self.fitter = Fitter(self.model, self.camera, facenet, self.config)

    def prepare(self, source: ImageSource, all_faces: bool = False) -> tuple[np.ndarray, list[PreparedFace]]:
        """Load a photo (once) and find its faces: ``(photo, faces)``.

        Raises ImageError / NoFaceError with a one-line reason naming the file (for a path).
        """
        photo, faces = self.preparer.prepare_source(source, all_faces=all_faces)
        if not faces:
            raise NoFaceError(describe_source(source))
        return photo, faces

    def fit_prepared(self, items: Sequence[tuple[np.ndarray, PreparedFace]], progress: Callable | None = None
                     ) -> list[Reconstruction]:
        """Fit a batch of prepared faces together (one optimisation, batched on the device)."""
        if not items:
            return []
        crops = torch.stack([torch.from_numpy(p.crop).permute(2, 0, 1).float() / 255.0 for _, p in items])
        lmk = torch.stack([torch.from_numpy(np.asarray(p.landmarks_crop, np.float32)) for _, p in items])
        att = torch.stack([torch.from_numpy(np.asarray(p.attention, np.float32))[None] for _, p in items])
        result = self.fitter.fit(crops, lmk, att, progress=progress)
        params = result.params.map(lambda t: t.cpu())
        out = []
        for i, (photo, prep) in enumerate(items):
            lm_photo = prep.to_photo(result.landmarks_2d[i].cpu().numpy())
            losses = {k: float(getattr(result.losses, k)[i]) for k in ("total", "photo", "landmark", "perceptual", "coef", "texture")}
            out.append(Reconstruction(prep.source, photo, prep, params[i], lm_photo.astype(np.float32), losses))
        return out

    def __call__(self, source: ImageSource, all_faces: bool = False) -> list[Reconstruction]:
        """Reconstruct the largest face of a photo (every face with ``all_faces``)."""
        photo, faces = self.prepare(source, all_faces)
        return self.fit_prepared([(photo, f) for f in faces])

    def iter_reconstruct(self, sources: Sequence[ImageSource], batch_size: int = 8, all_faces: bool = False
                         ) -> Iterator[tuple[int, Reconstruction | FailedInput]]:
        """Yield ``(input index, result)`` for many photos, fitting ``batch_size`` faces at a time.

        A photo that cannot be read or has no face yields a :class:`FailedInput` and the run goes
        on. Results come in input order; a photo with several faces (``all_faces``) yields several.
        """
        pending: list[tuple[int, np.ndarray, PreparedFace]] = []

        def flush() -> Iterator[tuple[int, Reconstruction]]:
            results = self.fit_prepared([(photo, prep) for _, photo, prep in pending])
            yield from ((i, rec) for (i, _, _), rec in zip(pending, results))
            pending.clear()

        for i, src in enumerate(sources):
            try:
                photo, faces = self.prepare(src, all_faces)
            except (ImageError, NoFaceError) as exc:
                if pending:
                    yield from flush()
                yield i, FailedInput(describe_source(src), str(exc))
                continue
            pending.extend((i, photo, f) for f in faces)
            if len(pending) >= batch_size:
                yield from flush()
        if pending:
            yield from flush()

    def reconstruct_many(self, sources: Sequence[ImageSource], batch_size: int = 8, all_faces: bool = False,
                         progress: bool = True) -> tuple[list[Reconstruction], list[FailedInput]]:
        """All results of :meth:`iter_reconstruct`, split into successes and failures."""
        from tqdm import tqdm

        done: list[Reconstruction] = []
        failed: list[FailedInput] = []
        with tqdm(total=len(sources), unit="photo", desc="reconstruct", disable=not progress) as bar:
            last = -1
            for i, res in self.iter_reconstruct(sources, batch_size, all_faces):
                (failed if isinstance(res, FailedInput) else done).append(res)  # type: ignore[arg-type]
                bar.update(i - last if i > last else 0)
                last = max(last, i)
        return done, failed
