"""The library API: one object, built once, called on photos (3DDFA_V2 style).

>>> recon = FaceReconstructor(device="cpu")
>>> faces = recon("photo.jpg")            # one Reconstruction per face (largest by default)
>>> faces[0].vertices                       # (V,3) mm, model space, neutral pose
>>> faces[0].params.beta                    # ARKit expression weights, (1,53)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from facerecon.facemodel import FaceModel, load_face_model
from facerecon.facemodel.albedo import learned_albedo_sha256
from facerecon.fitting.engine import FitConfig, FitResult, Fitter, group_index, rnet_prior
from facerecon.imageio import ImageError, NoFaceError, PreparedFace, Preparer
from facerecon.imageio.load import ImageSource, describe_source
from facerecon.nets.rnet import DEFAULT_MODEL, RNet
from facerecon.params import FaceParams
from facerecon.render import Camera, resize_px, same_crop_translation

#: How a face is found from its aligned crop: the fitter alone (PnP, landmark stage, full
#: stage), R-Net's prediction alone (one forward pass), R-Net's prediction refined by the fitter,
#: or the whole fitter with its identity and albedo prior centred on R-Net's prediction.
ENGINES = ("fit", "rnet", "rnet+fit", "rnet-prior")

#: The engine used when none is named: the fitter with its identity and albedo prior centred on the
#: shipped R-Net's prediction — LFW identity AUC 0.930 against the plain fit's 0.908, as close or
#: closer to the real-skin scan and 300-W landmarks (BENCHMARKS.md, "A learned prior"); with its own
#: defaults (:data:`ENGINE_FIT_DEFAULTS`) in a third of the plain fit's time.
DEFAULT_ENGINE = "rnet-prior"


#: The shipped R-Net (a file in ``facerecon/resources``, MODEL_CARD.md) each R-Net engine uses when
#: given none. Engine "rnet" alone: stage J, distilled from the fitter's results in batches of a
#: person's photos with an identity-consistency term — alone, closer to the real-skin scan and
#: better at identity than stage G. The fitter's engines: stage U (G fine-tuned with synthetic
#: faces from 0.3 to 3 m and a little distillation; since 2026-12-05), the better centre for the
#: fitter's prior (with J's prediction as the centre the fit ends further from the scan;
#: BENCHMARKS.md, "Stages I′ and J", "Two shipped networks" and "Stage U").
ENGINE_MODELS: dict[str, str] = {"rnet": "rnet_alone.pt", "rnet+fit": DEFAULT_MODEL, "rnet-prior": DEFAULT_MODEL}


def shipped_model(engine: str) -> tuple[Path | None, str]:
    """The shipped R-Net ``engine`` uses when given none (None when this installation lacks it),
    and the one-line reason to give when it is missing."""
    from facerecon.nets.rnet import default_model_path, missing_model  # looked up per call

    if engine not in ENGINE_MODELS:
        raise ValueError(f"engine {engine!r} uses no R-Net (R-Net engines: {', '.join(ENGINE_MODELS)})")
    return default_model_path(ENGINE_MODELS[engine]), missing_model(ENGINE_MODELS[engine])


def default_engine(rnet: object = None) -> tuple[str, str | None]:
    """The engine to use when none is named, and why it is not :data:`DEFAULT_ENGINE` (None when it
    is): with no ``rnet`` given, an installation without the shipped R-Net falls back to the plain fit."""
    path, missing = shipped_model(DEFAULT_ENGINE)
    if rnet is None and path is None:
        return "fit", f"engine {DEFAULT_ENGINE!r} needs an R-Net and {missing}: using engine 'fit'"
    return DEFAULT_ENGINE, None


#: What an engine changes in :class:`FitConfig`'s defaults (the fitter's own, kept by engines
#: not listed), nested configs as nested dicts. "rnet-prior": the learned prior's identity centre
#: at R-Net's prediction less 0.7 of the common offset ō, so that fits carry as much of ō as the
#: photometric term alone asks for (BENCHMARKS.md, "The prior's centre moved"), at 6× weight; the
#: fit starts at the mean face (not at the prediction) and runs the fitter's 100 full-stage steps
#: without FaceNet, the landmark term twice the fitter's. Against the 30 steps from the prediction at 3×
#: it replaced: closer to the real-skin scan with scale on three heads (−0.05 to −0.10 mm), LFW
#: identity closer to the person, 300-W landmarks the same, batches within 0.1 mm, in 2.6 times
#: the time (BENCHMARKS.md, "The mean-face start made default"). Since the thirty-seventh session
#: the 29 nose and mouth points weigh 5 instead of the paper's 20 (they carried 95 % of the
#: landmark term) and the fit returns the mean of its last 30 steps: LFW identity closer to the
#: person (AUC +0.004), the real-skin heads 0.01–0.03 mm closer, 300-W landmarks the same, batches
#: within 0.1 mm (BENCHMARKS.md, "Where the pitch comes from"). Since the thirty-eighth session the
#: jaw's sides may slide 20 mm behind their fixed vertices instead of 10: on 300-W test photos
#: whose annotation is turned (one side under half the other) the NME falls by 0.04 points, ties
#: elsewhere and on the real-skin heads (BENCHMARKS.md, "how far back the jaw contour reaches").
ENGINE_FIT_DEFAULTS: dict[str, dict] = {
    "rnet-prior": {"perceptual": False, "prior_offset": 0.7, "nose_mouth_weight": 5.0, "average_steps": 30,
                   "contour_back_mm": 20.0, "weights": {"coef_id": 6.0, "landmark": 4e-4}},
}


#: What an engine changes in :class:`FitConfig`'s defaults for the joint fit of a person's photos
#: (``combine(..., "joint")``), which starts from the photos' own fits: FaceNet and 100 steps stay,
#: the learned prior keeps its 3× weight. On the real-skin renders, 6 views, it came 0.06 / 0.03 mm
#: closer to the scan than the single-photo settings (4 textures of 4); at the paper's prior weight
#: 0.10 / 0.09 mm, but a person's identity then no longer followed them across LFW photos better
#: than one photo's did (BENCHMARKS.md, "Real skin, sets of 3 and 6 views"). Its prior's centre is
#: moved as the single-photo fits' is, which the joint fit starts from.
ENGINE_JOINT_DEFAULTS: dict[str, dict] = {"rnet-prior": {"prior_offset": 0.7, "weights": {"coef_id": 3.0}}}


def _replaced(config, changes: dict):
    return replace(config, **{k: _replaced(getattr(config, k), v) if isinstance(v, dict) else v
                              for k, v in changes.items()})


def engine_config(engine: str, joint: bool = False) -> FitConfig:
    """The fitting configuration ``engine`` runs with when none is given: :class:`FitConfig`'s
    defaults with :data:`ENGINE_FIT_DEFAULTS`' changes for one photo's fit, with
    :data:`ENGINE_JOINT_DEFAULTS`' for the joint fit of a person's photos (``joint``). To change
    one setting, use ``dataclasses.replace(engine_config(engine), steps=50)``."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    return _replaced(FitConfig(), (ENGINE_JOINT_DEFAULTS if joint else ENGINE_FIT_DEFAULTS).get(engine, {}))


def engine_defaults_help(engine: str, joint: bool = False) -> str:
    """The options whose default ``engine`` changes (for the joint fit with ``joint``), as
    command-line flags ("--steps 30 ...")."""
    def flags(changes: dict, prefix: str = "") -> list[str]:
        out = []
        for k, v in changes.items():
            name = "--" + (prefix + k).replace("_", "-")
            if isinstance(v, dict):
                out += flags(v, prefix + k + "_")
            elif isinstance(v, bool):
                out.append(name if v else "--no-" + name[2:])
            else:
                out.append(f"{name} {v:g}" if isinstance(v, float) else f"{name} {v}")
        return out

    return " ".join(flags((ENGINE_JOINT_DEFAULTS if joint else ENGINE_FIT_DEFAULTS).get(engine, {})))


#: Fitter steps after R-Net's prediction with engine "rnet+fit" (see :func:`refine_split`): from
#: the shipped model, 30 scored as 50 did on landmarks, LFW identity and real skin in 62 % of the
#: time (BENCHMARKS.md, "The shipped R-Net").
DEFAULT_REFINE = 30


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
    camera: Camera | None = None
    """The camera the crop was fitted through (crop pixels; its focal length follows the photo's
    EXIF or a given lens); None: the reconstructor's default camera."""

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


@dataclass
class PersonReconstruction:
    """One face built from several photos of one person (multi-image reconstruction)."""

    name: str
    """The person's name (their folder, or ``person_NN`` when grouped)."""
    params: FaceParams
    """The person's face (batch 1): aggregated identity α and albedo δ, neutral expression, the
    photos' mean light and the first photo's pose (for reference)."""
    members: list[Reconstruction]
    """The photos that formed the face, each with its own per-photo fit."""
    member_params: FaceParams
    """Per photo (one row each): the person's α and δ with that photo's pose, expression and
    light — what the overlays show (after ``joint``: the joint fit itself)."""
    weights: np.ndarray
    """(N,) the weight each photo got in the aggregate (sums to 1)."""
    qualities: list
    """Per photo :class:`~facerecon.multi.aggregate.PhotoQuality`."""
    method: str
    """The aggregator used (see :data:`facerecon.multi.aggregate.AGGREGATORS`)."""
    failed: list[FailedInput] = field(default_factory=list)
    """Photos of this person that could not be used."""
    extra: dict = field(default_factory=dict)
    """Method details (K-means cluster purity, …)."""

    def vertices(self, model: FaceModel) -> np.ndarray:
        """The person's neutral face (V,3) in mm over ``model``'s region (identity only)."""
        with torch.no_grad():
            v = model.shape(self.params.alpha.to(model.mean.device))
        return v[0].cpu().numpy()


def refine_split(steps: int) -> tuple[int, int]:
    """(landmark-stage steps, full-stage steps) of an ``rnet+fit`` refinement of ``steps`` in all.

    A quarter goes to the landmark stage (it re-seats pose and expression on the detected
    landmarks for almost nothing: no rendering), the rest to the full stage. On 4 LFW photos
    (default FitConfig, batch 4, 2-vCPU CPU) this ended at the lowest hybrid loss of the splits
    tried at N = 20, 50 and 100, from an untrained net (the mean face facing the camera) and from
    a stand-in for a trained one (the plain fit's result with noise): e.g. N = 50 from the
    stand-in, total 0.320 / 0.329 / 0.321 for N//4+rest / N//2+rest / 0+N full-stage steps,
    plain 120+100 fit 0.313, in a third of its time; N = 100 went below the plain fit (0.307).
    Measured in equal steps, the full stage alone was no better and cost more (landmark steps
    are the cheap ones); half and half ended higher.
    """
    if steps < 0:
        raise ValueError(f"refine steps must be >= 0 (got {steps})")
    return steps // 4, steps - steps // 4


def rnet_layout_problem(net: RNet, model: FaceModel, rgb_light: bool, trained: dict | None = None) -> str | None:
    """Why ``net``'s predictions cannot be read as ``model``'s coefficients (None: they can).

    Compares the flat output layout (sizes of α, β, δ, γ, pose) with the face model's and the
    light model, and the albedo model and region the network was trained with (``trained``: the
    checkpoint's ``train_config``, when it has one) with the face model's; a network that records
    its learned albedo model's fingerprint (``albedo_sha256``) must match the installed one.
    """
    want = {"alpha": model.n_id, "beta": model.n_exp, "delta": model.n_tex, "gamma": 27 if rgb_light else 9,
            "angles": 3, "trans": 3}
    have = net.config.sizes()
    if have != want:
        diff = ", ".join(f"{k} {have.get(k)} vs {want[k]}" for k in want if have.get(k) != want[k])
        return f"its parameter layout differs from the fitter's ({diff})"
    trained = trained or {}
    for key, ours in (("albedo", model.albedo_kind), ("region", model.region)):
        theirs = trained.get(key)
        if theirs is not None and theirs != ours:
            return f"it was trained with {key} {theirs!r}, the fitter uses {ours!r} (--{key} {theirs})"
    sha = trained.get("albedo_sha256")
    if model.albedo_kind == "learned" and sha is not None and sha != learned_albedo_sha256():
        return (f"its albedo outputs belong to another learned albedo model (sha256 {sha[:12]}…, installed "
                f"{learned_albedo_sha256()[:12]}…): carry it over with tools/remap_rnet_albedo.py")
    return None


def crop_tensors(faces: Sequence[PreparedFace]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fitter's inputs for prepared faces: crops (B,3,S,S) in [0,1], landmarks (B,68,2) in crop
    pixels and skin attention (B,1,S,S)."""
    crops = torch.stack([torch.from_numpy(p.crop).permute(2, 0, 1).float() / 255.0 for p in faces])
    lmk = torch.stack([torch.from_numpy(np.asarray(p.landmarks_crop, np.float32)) for p in faces])
    att = torch.stack([torch.from_numpy(np.asarray(p.attention, np.float32))[None] for p in faces])
    return crops, lmk, att


def landmark_spread(faces: Sequence[PreparedFace]) -> torch.Tensor | None:
    """Each face's landmark spread over the detector's jittered boxes (B,68), crop pixels; 0 (sure)
    for a face whose landmarks were given rather than detected; None when no face has one."""
    if all(p.landmark_spread is None for p in faces):
        return None
    return torch.stack([torch.zeros(68) if p.landmark_spread is None
                        else torch.from_numpy(np.asarray(p.landmark_spread, np.float32)) for p in faces])


class FaceReconstructor:
    """Photos -> fitted 3D faces. Holds the detector, skin model, face model and FaceNet.

    ``device`` is "cpu", "cuda" or a torch device; ``config`` sets the fitting (steps, losses),
    used as given (None: the engine's own, :func:`engine_config`); ``joint_config`` the joint fit
    of a person's photos (None: ``config`` when one is given, else the engine's joint default;
    its region, albedo and landmark set are ``config``'s).
    ``engine`` (one of :data:`ENGINES`; None: :func:`default_engine`): "fit" fits each face from
    a PnP pose; "rnet" takes R-Net's prediction from the aligned crop as the result (one batched
    forward pass, no optimisation); "rnet+fit" starts the fitter from that prediction for
    ``refine`` steps in all (split by :func:`refine_split`); "rnet-prior" runs the whole fitter
    (PnP, both stages) with the Gaussian prior on α and δ centred on R-Net's prediction instead
    of on the model's mean (a prior learned from photos; :func:`rnet_prior`; BENCHMARKS.md, "A
    learned prior").
    ``rnet``: a checkpoint path (rebuilt by
    :func:`~facerecon.nets.rnet.load_checkpoint`) or an :class:`~facerecon.nets.rnet.RNet`
    (moved to the device, eval mode, gradients off); the R-Net engines use the shipped model
    when it is None; refused with "fit". Raises ValueError (one line) for an unknown engine, a missing network, a negative
    ``refine``, or a checkpoint whose layout, albedo model or region differs from the fitter's.
    """

    def __init__(self, device: str | torch.device = "cpu", config: FitConfig | None = None,
                 face_model: FaceModel | None = None, camera: Camera | None = None,
                 preparer: Preparer | None = None, engine: str | None = None,
                 rnet: str | os.PathLike | RNet | None = None, refine: int = DEFAULT_REFINE,
                 joint_config: FitConfig | None = None) -> None:
        if engine is None:
            engine, why = default_engine(rnet)
            if why:
                import warnings

                warnings.warn(why, stacklevel=2)
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
        if engine == "fit" and rnet is not None:
            raise ValueError("an R-Net was given, but engine 'fit' does not use it "
                             "(engine 'rnet', 'rnet+fit' or 'rnet-prior')")
        if engine != "fit" and rnet is None:
            rnet, missing = shipped_model(engine)
            if rnet is None:
                raise ValueError(f"engine {engine!r} needs an R-Net checkpoint (rnet=PATH): {missing}")
        landmark_steps, steps = refine_split(refine)
        self.device = torch.device(device)
        self.joint_config = joint_config or config or engine_config(engine, joint=True)
        self.config = config or engine_config(engine)
        self.model = (face_model or load_face_model(self.config.region, albedo=self.config.albedo,
                                                     landmarks=self.config.landmarks)).to(self.device)
        self.camera = camera or Camera()
        self.preparer = preparer or Preparer()
        facenet = None
        if self.config.perceptual and self.config.weights.perceptual > 0:
            from facerecon.nets.facenet import FaceNet

            facenet = FaceNet.from_package(device=self.device)
        self.fitter = Fitter(self.model, self.camera, facenet, self.config)
        self._facenet = facenet  # also used to embed faces for grouping (loaded on first use)
        self.engine = engine
        self.refine = int(refine)
        self.rnet: RNet | None = None
        self._refiner: Fitter | None = None
        self._joint: Fitter | None = None  # the joint fit's fitter, built on first use
        if engine != "fit":
            self.rnet = self._load_rnet(rnet)
        if engine == "rnet+fit":  # the fitter's stages from R-Net's prediction, `refine` steps in all
            self._refiner = Fitter(self.model, self.camera, facenet,
                                   replace(self.config, landmark_steps=landmark_steps, steps=steps))

    def _load_rnet(self, rnet: str | os.PathLike | RNet) -> RNet:
        """The network on this device in eval mode, after checking it fits the face model."""
        from facerecon.nets.rnet import load_checkpoint

        trained: dict = {}
        if isinstance(rnet, RNet):
            net, name = rnet, "the R-Net"
        else:
            name = os.fspath(rnet)
            try:
                # a FaceNet trunk shares the perceptual term's FaceNet (one copy, loaded once)
                shared = self._facenet.net if self._facenet is not None else None
                net, extra = load_checkpoint(name, map_location="cpu", facenet=shared)
            except (FileNotFoundError, IsADirectoryError):
                raise ValueError(f"{name}: no such R-Net checkpoint file") from None
            except ValueError:
                raise
            except Exception as exc:  # torch.load's errors on a file that is not a checkpoint vary
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ValueError(f"{name}: not a readable R-Net checkpoint ({reason})") from None
            trained = dict(extra.get("train_config") or {})
        problem = rnet_layout_problem(net, self.model, self.config.rgb_light, trained)
        if problem:
            raise ValueError(f"{name} cannot drive this fitter: {problem}")
        net = net.to(self.device).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        return net

    def predict(self, crops: torch.Tensor, landmarks: torch.Tensor | None = None) -> FaceParams:
        """R-Net's parameters (on the device) for (B,3,S,S) aligned crops in [0,1] and their (B,68,2)
        landmarks in crop pixels (used by networks that take them): one batched forward pass, eval
        mode, no gradients. Crops of another size than the network's input are resized bilinearly
        (and the landmarks scaled with them)."""
        if self.rnet is None:
            raise ValueError("this reconstructor has no R-Net (engine 'rnet', 'rnet+fit' or 'rnet-prior')")
        size = self.rnet.config.input_size
        with torch.no_grad():
            x = crops.to(self.device)
            lmk = landmarks.to(self.device).float() if landmarks is not None else None
            if x.shape[-2:] != (size, size):
                if lmk is not None:
                    lmk = resize_px(lmk, x.shape[-1], size)
                x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                                    antialias=True)
            return self.rnet.predict(x, lmk).map(lambda t: t.contiguous())

    def crop_camera(self, faces: Sequence[PreparedFace]) -> Camera:
        """The camera the fitter sees ``faces``' crops through: this reconstructor's, with each
        face's own focal length (crop pixels) where its photo's is known (EXIF or a given lens)."""
        if all(p.focal_photo is None for p in faces):
            return self.camera
        focal = torch.tensor([p.crop_focal(float(self.camera.focal)) for p in faces], dtype=torch.float32)
        return Camera(focal=focal, size=self.camera.size, near=self.camera.near)

    def evaluate(self, params: FaceParams, images: torch.Tensor, landmarks: torch.Tensor,
                 attention: torch.Tensor | None = None, camera: Camera | None = None) -> FitResult:
        """The fitter's outputs for given parameters without optimising: landmarks projected by
        its forward model (crop pixels, contour re-assigned) and the hybrid-loss terms, computed
        once (FaceNet included when the config uses it) — what :meth:`Fitter.full_stage` reports
        after its last step. ``camera``: the crops' camera (None: this reconstructor's)."""
        fitter = self.fitter
        forward = fitter.forward_for(camera)
        dev = self.device
        params = params.map(lambda t: t.detach().to(dev))
        images, landmarks = images.to(dev), landmarks.to(dev).float()
        attention = attention.to(dev) if attention is not None else None
        with torch.no_grad():
            out = forward(params)
            terms = fitter.loss(out, params, images, landmarks, attention, perceptual=fitter.loss.uses_perceptual)
            lm2d, _ = forward.landmarks(params)
        return FitResult(params=params, losses=terms, landmarks_2d=lm2d, history=[terms.as_dict()])

    def _run_engine(self, crops: torch.Tensor, lmk: torch.Tensor, att: torch.Tensor, init: FaceParams | None,
                    groups: Sequence | None, progress: Callable | None, fitter: Fitter,
                    camera: Camera | None = None, spread: torch.Tensor | None = None) -> FitResult:
        """One batch through the engine, seen through ``camera`` (None: this reconstructor's).
        ``init`` given: ``fitter`` from ``init``, whatever the engine (the joint multi-photo fit
        relies on this) — with engine "rnet-prior" under its prior. ``spread``: the landmarks'
        detector spread (B,68), crop pixels (:func:`landmark_spread`)."""
        if self.engine == "fit" or (init is not None and self.engine != "rnet-prior"):
            return fitter.fit(crops, lmk, att, init=init, groups=groups, progress=progress, camera=camera,
                              spread=spread)
        predicted = self.predict(crops, lmk)
        if camera is not None and camera.per_item:
            # R-Net places faces for the default camera; another focal length sees the same crop
            # from proportionally further away (the same pixels, the face's size in the crop unchanged)
            predicted.trans = same_crop_translation(predicted.trans, float(self.camera.focal), camera.focal)
        index = group_index(groups, predicted.batch, self.device)
        if index is not None:  # photos of one person share α and δ: the mean of their predictions
            for name in ("alpha", "delta"):
                t = getattr(predicted, name)
                g = int(index.max()) + 1
                mean = t.new_zeros(g, t.shape[1]).index_add(0, index, t) / torch.bincount(index, minlength=g)[:, None]
                setattr(predicted, name, mean[index])
        if self.engine == "rnet":
            result = self.evaluate(predicted, crops, lmk, att, camera)
            if progress:
                progress(1, 1)
            return result
        if self.engine == "rnet-prior":
            return fitter.fit(crops, lmk, att, init=init, groups=groups, progress=progress, prior=rnet_prior(predicted),
                              camera=camera, spread=spread)
        assert self._refiner is not None
        return self._refiner.fit(crops, lmk, att, init=predicted, groups=groups, progress=progress, camera=camera,
                                 spread=spread)

    def face_model(self, region: str) -> FaceModel:
        """The face model over another ``region`` (e.g. "head" for export) with the same albedo
        model as the fit's, so that fitted coefficients mean the same there."""
        return load_face_model(region, device=self.device, albedo=self.model.albedo_kind,
                               landmarks=self.model.landmark_set)

    def prepare(self, source: ImageSource, all_faces: bool = False) -> tuple[np.ndarray, list[PreparedFace]]:
        """Load a photo (once) and find its faces: ``(photo, faces)``.

        Raises ImageError / NoFaceError with a one-line reason naming the file (for a path).
        """
        photo, faces = self.preparer.prepare_source(source, all_faces=all_faces)
        if not faces:
            raise NoFaceError(describe_source(source))
        return photo, faces

    def fit_prepared(self, items: Sequence[tuple[np.ndarray, PreparedFace]], progress: Callable | None = None,
                     init: FaceParams | None = None, groups: Sequence | None = None,
                     fitter: Fitter | None = None) -> list[Reconstruction]:
        """Fit a batch of prepared faces together (one optimisation, batched on the device, or
        one R-Net pass with engine "rnet"); ``init`` starts the fitter (``fitter``, default this
        reconstructor's) from given parameters (whatever the engine), ``groups`` shares α and δ
        between equal labels."""
        if not items:
            return []
        crops, lmk, att = crop_tensors([p for _, p in items])
        camera = self.crop_camera([p for _, p in items])
        result = self._run_engine(crops, lmk, att, init, groups, progress, fitter or self.fitter,
                                  None if camera is self.camera else camera, landmark_spread([p for _, p in items]))
        params = result.params.map(lambda t: t.cpu())
        out = []
        for i, (photo, prep) in enumerate(items):
            lm_photo = prep.to_photo(result.landmarks_2d[i].cpu().numpy())
            losses = {k: float(getattr(result.losses, k)[i]) for k in ("total", "photo", "landmark", "perceptual", "coef", "texture")}
            out.append(Reconstruction(prep.source, photo, prep, params[i], lm_photo.astype(np.float32), losses,
                                      camera.item(i)))
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

    # --- several photos of one person -----------------------------------------------------------
    def photo_quality(self, rec: Reconstruction):
        """The :class:`~facerecon.multi.aggregate.PhotoQuality` of one photo's fit."""
        from facerecon.multi.aggregate import PhotoQuality

        prep = rec.prepared
        fitted_crop = np.asarray(rec.landmarks_fit, np.float64) @ np.asarray(prep.M)[:, :2].T + np.asarray(prep.M)[:, 2]
        err = float(np.linalg.norm(fitted_crop - np.asarray(prep.landmarks_crop, np.float64), axis=1).mean())
        return PhotoQuality(err, float(np.degrees(float(rec.params.angles[0, 1]))), float(rec.losses.get("photo", 0.0)),
                            float(prep.score))

    def combine(self, members: Sequence[Reconstruction], method: str = "mean", name: str = "person",
                failed: Sequence[FailedInput] = (), progress: Callable | None = None) -> PersonReconstruction:
        """One face from the per-photo fits of one person, by ``method`` (an aggregator of
        :mod:`facerecon.multi.aggregate`; ``joint`` refits all photos with α and δ shared, calling
        ``progress(step, total)`` after each of its steps)."""
        from facerecon.multi.aggregate import aggregate

        if not members:
            raise ValueError(f"{name}: no usable photo")
        params = FaceParams.cat([m.params for m in members])
        qualities = [self.photo_quality(m) for m in members]
        camera = self.crop_camera([m.prepared for m in members])  # each photo's own lens, where known
        person, weights = aggregate(params, method, model=self.model, qualities=qualities,
                                    forward=self.fitter.forward_for(camera))
        members = list(members)
        per_photo = params.map(lambda t: t.clone())
        per_photo.alpha[:] = person.alpha
        per_photo.delta[:] = person.delta
        if method == "joint":
            refit = self.fit_prepared([(m.photo, m.prepared) for m in members], init=per_photo,
                                      groups=[0] * len(members), progress=progress, fitter=self.joint_fitter())
            for r, m in zip(refit, members):
                r.source = m.source  # keep the caller's names (video frames have no path)
            per_photo = FaceParams.cat([r.params for r in refit])
            person = FaceParams(per_photo.alpha[:1], person.beta, per_photo.delta[:1], person.gamma,
                                person.angles, person.trans)
            members = refit
        return PersonReconstruction(name, person, members, per_photo, weights, qualities, method, list(failed))

    def combine_people(self, people: dict[str, Sequence[Reconstruction]], method: str = "mean",
                       kmeans_features: str = "all", failed: dict[str, list[FailedInput]] | None = None
                       ) -> list[PersonReconstruction]:
        """One face per person from their photos' fits. ``kmeans`` is the paper's: K-means with
        K = number of people over every photo of every person; a person's face is the centroid
        of the cluster holding most of their photos (its purity is recorded in ``extra``)."""
        failed = failed or {}
        names = [n for n in people if people[n]]
        if method != "kmeans":
            return [self.combine(people[n], method, n, failed.get(n, ())) for n in names]
        from facerecon.multi.aggregate import kmeans_centroids

        all_params = FaceParams.cat([m.params for n in names for m in people[n]])
        owner = np.array([i for i, n in enumerate(names) for _ in people[n]])
        centroids, labels, purity = kmeans_centroids(all_params, owner, kmeans_features)
        out = []
        for i, n in enumerate(names):
            person = self.combine(people[n], "mean", n, failed.get(n, ()))
            person.params.alpha, person.params.delta = centroids.alpha[i:i + 1], centroids.delta[i:i + 1]
            person.member_params.alpha[:] = centroids.alpha[i]
            person.member_params.delta[:] = centroids.delta[i]
            person.method = "kmeans"
            person.extra = {"kmeans_features": kmeans_features, "cluster_purity": float(purity[i]),
                            "cluster_labels": labels[owner == i].tolist()}
            out.append(person)
        return out

    def reconstruct_person(self, sources: Sequence[ImageSource], aggregate: str = "joint", name: str = "person",
                           batch_size: int = 8, progress: bool = False) -> PersonReconstruction:
        """Several photos of one person -> one face: each photo fitted (largest face), then
        combined by ``aggregate``. Photos that fail are listed in ``failed``; raises ValueError
        when none is usable."""
        done, failed = self.reconstruct_many(sources, batch_size, progress=progress)
        return self.combine(done, aggregate, name, failed)

    def reconstruct_groups(self, sources: Sequence[ImageSource], people: int | None = None, aggregate: str = "joint",
                           batch_size: int = 8, progress: bool = False) -> list[PersonReconstruction]:
        """Photos of several unknown people -> one face per person: every face of every photo
        fitted, grouped by FaceNet embedding (``people`` = K, or estimated), then combined."""
        done, failed = self.reconstruct_many(sources, batch_size, all_faces=True, progress=progress)
        return self.combine_people(self.group(done, people), aggregate) if done else []

    def group(self, faces: Sequence[Reconstruction], people: int | None = None, by: str = "facenet"
              ) -> dict[str, list[Reconstruction]]:
        """Faces grouped into people: {``person_01``…: faces}, numbered in order of first
        appearance. ``by``: ``facenet`` (embedding of the aligned crop, the default: best on LFW),
        ``x`` (the fit's whole vector, as the paper) or ``identity`` (α and δ)."""
        from facerecon.multi.aggregate import kmeans_features
        from facerecon.multi.grouping import group_vectors

        if by == "facenet":
            vectors = self.embed(faces)
        else:
            vectors = kmeans_features(FaceParams.cat([f.params for f in faces]), "all" if by == "x" else "identity")
        labels = group_vectors(vectors, people)
        width = max(2, len(str(labels.max() + 1)))
        return {f"person_{k + 1:0{width}d}": [f for f, lab in zip(faces, labels) if lab == k]
                for k in range(labels.max() + 1)}

    def joint_fitter(self) -> Fitter:
        """The fitter of the joint fit (``joint_config``): this reconstructor's own where the
        configurations are equal, else built on first use (loading FaceNet if it needs it)."""
        if self.joint_config == self.config:
            return self.fitter
        if self._joint is None:
            cfg = self.joint_config
            self._joint = Fitter(self.model, self.camera,
                                 self._facenet_network() if cfg.perceptual and cfg.weights.perceptual > 0 else None, cfg)
        return self._joint

    def _facenet_network(self):
        """FaceNet on this device, loaded on first need (the perceptual term's when it has one)."""
        from facerecon.nets.facenet import FaceNet

        if self._facenet is None:
            self._facenet = FaceNet.from_package(device=self.device)
        return self._facenet

    def embed(self, members: Sequence[Reconstruction], box: tuple[float, float, float, float] | None = None
              ) -> np.ndarray:
        """(N,512) FaceNet embeddings of the faces' aligned crops, for grouping. ``box``: fractions
        x0, y0, x1, y1 of the 224 crop; default the perceptual term's box, which grouped LFW
        people best of the boxes measured (BENCHMARKS.md, multi-image)."""
        box = box or self.config.perceptual_box
        crops = torch.stack([torch.from_numpy(m.prepared.crop).permute(2, 0, 1).float() / 255.0 for m in members])
        with torch.no_grad():
            return self._facenet_network().embed(crops.to(self.device), box).cpu().numpy()

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
