"""What a training run is: one dataclass, whose field docstrings are ``facerecon train``'s help.

Defaults follow the paper where it says something (SPEC §3: batch 8, learning rate 1e-4, 500K
iterations, the hybrid loss with its weights) and the fitter's measured choices where ICT differs
from the paper's model (‖β‖² weighted 10: ARKit blendshapes are not std-scaled PCA modes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Optional

from facerecon.losses import LossWeights
from facerecon.nets.rnet import RNetConfig


@dataclass
class LabelWeights:
    """Weights of the geometry loss against known parameters (a fitter's labels, or synthetic
    truth): both faces are posed and projected by the same forward model and compared there
    (coefficients trade off against each other), the identity term aside."""

    vertices: float = 1.0
    """Mean distance between posed (camera-space) vertices, per mm."""
    shape: float = 0.0
    """Mean distance between the unposed faces (identity + expression, model space), per mm: the
    label's shape without its depth and pose, which a photo pins down loosely and which
    dominate the posed distance."""
    landmarks: float = 0.5
    """Mean distance between the 68 projected landmarks, per pixel of the crop."""
    color: float = 2.0
    """Mean absolute difference of shaded vertex colours (albedo × light, RGB in [0,1])."""
    identity: float = 0.0
    """Distance between the identity coefficients (‖α − α_label‖, in the model's standard
    deviations): the metric of the fitter's identity prior, for a network whose prediction
    centres that prior (engine rnet-prior) rather than being the answer itself."""
    vertex_count: int = 2000
    """Vertices compared (an even subsample of the face model's; 0 = all)."""


@dataclass
class TrainConfig:
    """One R-Net training run (the paper's self-supervised training, plus distillation from fitter
    labels and synthetic faces with known parameters, each weighted, 0 = off)."""

    data: str = ""
    """Folder of training shards (facerecon.data.shards layout; its "train" split trains, its
    "val" split of held-out people validates). Empty: synthetic faces only."""
    labels: Optional[str] = None
    """Folder of fitter labels (facerecon.data.labels) for the distillation objective."""
    out: str = "runs/rnet"
    """Output folder: last.pt (checkpoint, resumed from automatically), config.json,
    train.jsonl (log), tb/ (TensorBoard)."""
    net: RNetConfig = field(default_factory=RNetConfig)
    """The network (stored in every checkpoint)."""
    init: Optional[str] = None
    """Start a new run from this checkpoint's weights (same network config; its optimiser, step
    and schedule are not taken): a second stage, e.g. the full loss after a landmark stage."""
    steps: int = 500_000
    """Optimiser steps of the whole run (a resumed run continues to this count)."""
    batch_size: int = 8
    """Photos per step and per process (and as many synthetic faces when that objective is on)."""
    lr: float = 1e-4
    """Peak learning rate of AdamW."""
    weight_decay: float = 1e-4
    """AdamW weight decay (convolution and linear weights only; not batch norm, not biases)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW's β1 and β2."""
    warmup: int = 1000
    """Steps of linear learning-rate warm-up, then cosine decay to ``lr × final_lr``."""
    final_lr: float = 0.01
    """Learning rate at the last step, as a fraction of ``lr``."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = no clipping)."""
    self_supervised: float = 1.0
    """Weight of the paper's objective: the hybrid loss of the rendered prediction against the
    photo, its landmarks and skin attention (0 = off)."""
    distill: float = 0.0
    """Weight of distillation from fitter labels (--labels): geometry loss on posed vertices,
    projected landmarks and shaded colours (0 = off)."""
    synthetic: float = 0.0
    """Weight of the same geometry loss on synthetic faces with known parameters (0 = off)."""
    identity_consistency: float = 0.0
    """Weight of identity consistency: the mean distance (mm) of each photo's identity shape (alpha
    only, neutral expression) from the mean of its person's photos in the same batch; needs
    --photos-per-person 2 or more (0 = off)."""
    photos_per_person: int = 1
    """Photos of one person that come together in a batch (DECA's K): a person's photos are cut
    into runs of K, people with fewer photos fill the gaps one at a time (1 = plain shuffle)."""
    loss: LossWeights = field(default_factory=lambda: LossWeights(coef_exp=10.0))
    """Hybrid-loss weights of the self-supervised objective: the paper's, except ‖β‖² weighted
    10 as in the fitter (ICT's blendshapes are full expressions at 1.0)."""
    label: LabelWeights = field(default_factory=LabelWeights)
    """Geometry-loss weights of the distillation and synthetic objectives."""
    label_person_mean: bool = False
    """Distil each photo's identity (alpha) and albedo (delta) towards the mean of its person's
    labelled photos instead of its own fit: a many-photo teacher (needs shards that list people)."""
    max_label_loss: Optional[float] = None
    """Ignore labels whose fit ended with a hybrid loss above this (None: use every label)."""
    region: str = "narrow"
    """Face-model region rendered for the hybrid loss (as the fitter: "narrow" or "fit")."""
    albedo: Literal["spectral", "learned"] = "learned"
    """Albedo model of the face model, as the fitter's --albedo (labels must come from the same)."""
    landmarks: Literal["ict", "300w", "300w-photo"] = "300w-photo"
    """Landmark vertices of the face model, as the fitter's --landmarks (the shipped R-Net's
    stages 1 to 6 were trained with "ict", its last stages with "300w", MODEL_CARD.md)."""
    contour: bool = True
    """Re-assign the 17 jaw landmarks to the model's silhouette (turned faces)."""
    jaw_weight: float = 0.3
    """Landmark weight ω of the jaw contour points (nose and mouth 20, others 1), as the fitter."""
    perceptual: bool = True
    """Use the FaceNet perceptual term (loads FaceNet; its weight is --loss-perceptual)."""
    perceptual_every: int = 1
    """Evaluate the FaceNet term every N-th step only (it is most of a CPU step)."""
    perceptual_box: tuple[float, float, float, float] = (0.1, 0.12, 0.9, 0.92)
    """Crop of the aligned image given to FaceNet (fractions x0, y0, x1, y1), as the fitter."""
    synthetic_background: Literal["photos", "noise", "grey"] = "photos"
    """Backgrounds of synthetic faces (photos: crops of the shared 300-W photos outside faces)."""
    synthetic_region: str = "fit"
    """Face-model region rendered into synthetic images."""
    synthetic_skins: Optional[str] = None
    """Folder of de-lit albedo samples of real photos (tools/albedo_samples.py) that paint the
    synthetic faces instead of the albedo model's basis (their colour term is then left out)."""
    synthetic_id_scale: float = 1.0
    """Identity coefficients of synthetic faces ~ N(0, 1) × this (real faces' fits spread about
    0.5 of the model's standard deviations)."""
    synthetic_target: Literal["truth", "far"] = "truth"
    """What a synthetic face's prediction is scored against: its true parameters, or (far, with
    --synthetic-distance) the network's own prediction, without gradient, of the same face seen
    through the network's camera from the usual distance: the same answer from any distance,
    without pulling the network towards the model's own faces."""
    synthetic_distance: Optional[tuple[float, float]] = None
    """Camera distance of each synthetic face, mm, drawn log-uniform between the two values; the
    focal length follows, so the face keeps its size in the crop and only its perspective changes
    (close-up photos). None: every face through the network's camera (about 1.2 m)."""
    val_synthetic: int = 64
    """Held-out synthetic faces scored at each validation when the synthetic objective is on."""
    amp: Literal["off", "bf16", "fp16"] = "bf16"
    """Mixed precision of the network on CUDA (the renderer and losses stay float32); ignored on CPU."""
    checkpoint_every: int = 1000
    """Write OUT/last.pt every N steps (and at the end)."""
    validate_every: int = 5000
    """Validate every N steps and at the end (0 = never)."""
    log_every: int = 50
    """Log the mean loss terms of the last N steps (TensorBoard, train.jsonl, progress bar)."""
    seed: int = 0
    """Seed of the network's initialisation, the data order and the synthetic faces."""
    num_workers: Optional[int] = None
    """Data-loading worker processes per training process (default: none on CUDA, where a thread
    reads ahead, faster than worker processes there; else 4, or fewer on a machine with fewer
    CPUs, where more only compete with the training for them)."""
    pin_memory: bool = False
    """Hand batches to CUDA through page-locked memory (the loader's pin_memory); off by default:
    on the H200 host it was no faster, and slower with the FaceNet trunk (BENCHMARKS.md)."""
    device: str = "auto"
    """auto (CUDA when available), cpu, cuda or cuda:N; under torchrun each process takes
    cuda:LOCAL_RANK."""
    progress: bool = True
    """Show a progress bar (first process only)."""

    @property
    def uses_photos(self) -> bool:
        """Whether an objective on training photos is on (else only synthetic faces train)."""
        return self.self_supervised > 0 or self.distill > 0 or self.identity_consistency > 0

    def record(self) -> dict[str, Any]:
        """The config as plain JSON-able values (tuples as lists)."""
        def plain(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return list(v) if isinstance(v, tuple) else v
        return plain(asdict(self))

    def validate(self) -> None:
        """Raise ValueError on settings that cannot run."""
        if min(self.self_supervised, self.distill, self.synthetic) < 0:
            raise ValueError("objective weights must be >= 0")
        if self.self_supervised + self.distill + self.synthetic + self.identity_consistency <= 0:
            raise ValueError("every objective is off: set --self-supervised, --distill, --synthetic or "
                             "--identity-consistency above 0")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("--steps and --batch-size must be at least 1")
        if self.checkpoint_every < 1 or self.log_every < 1 or self.validate_every < 0:
            raise ValueError("--checkpoint-every and --log-every must be >= 1, --validate-every >= 0")
        if self.identity_consistency < 0:
            raise ValueError("--identity-consistency must be >= 0")
        if not 1 <= self.photos_per_person <= self.batch_size:
            raise ValueError(f"--photos-per-person must be between 1 and --batch-size ({self.batch_size})")
        if self.identity_consistency > 0 and self.photos_per_person < 2:
            raise ValueError("--identity-consistency compares a person's photos in a batch: set --photos-per-person 2 or more")
        if self.perceptual_every < 1:
            raise ValueError("--perceptual-every must be at least 1")
        near = self.synthetic_distance
        if near is not None and not (len(near) == 2 and 100.0 <= near[0] <= near[1]):
            raise ValueError(f"--synthetic-distance {near}: need MIN MAX with 100 <= MIN <= MAX (mm)")
        if self.synthetic_target == "far" and self.synthetic_distance is None:
            raise ValueError("--synthetic-target far compares a face from two distances: set --synthetic-distance")


__all__ = ["TrainConfig", "LabelWeights"]
