"""R-Net: the paper's regressor — a ResNet trunk and one linear layer from a 224×224 face crop to
every coefficient of :class:`~facerecon.params.FaceParams` in one pass (SPEC §3).

Written in the project (no torchvision): ResNet-50 (bottleneck blocks 3-4-6-3, the paper's) and
ResNet-18 (basic blocks 2-2-2-2, a small trunk for CPUs). The last layer starts at zero, so an
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

from facerecon.atomic import atomic_path
from facerecon.params import PARTS, FaceParams

#: Blocks per stage and block type of each trunk.
TRUNKS: dict[str, tuple[tuple[int, ...], str]] = {"resnet50": ((3, 4, 6, 3), "bottleneck"),
                                                   "resnet18": ((2, 2, 2, 2), "basic")}


@dataclass
class RNetConfig:
    """What an R-Net is; stored in every checkpoint."""

    trunk: Literal["resnet50", "resnet18"] = "resnet50"
    """The paper's ResNet-50, or ResNet-18 for CPUs."""
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

    def __init__(self, name: str = "resnet50") -> None:
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
        self.features = c
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # each residual branch starts as (almost) identity
            if isinstance(m, (Bottleneck, BasicBlock)):
                nn.init.zeros_((m.bn3 if isinstance(m, Bottleneck) else m.bn2).weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean((2, 3))


class RNet(nn.Module):
    """Face crops (B,3,S,S) RGB in [0,1] -> the flat FaceParams vector (B,P); :meth:`predict`
    returns :class:`FaceParams`."""

    def __init__(self, config: RNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or RNetConfig()
        self.trunk = ResNetTrunk(cfg.trunk)
        sizes = cfg.sizes()
        self.head = nn.Linear(self.trunk.features, sum(sizes.values()))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        mean = FaceParams.zeros(1, cfg.n_id, cfg.n_exp, cfg.n_tex, rgb_light=cfg.rgb_light)
        scale = torch.ones(1, sum(sizes.values()))
        scale[:, -3:] = cfg.trans_scale_mm
        self.register_buffer("offset", mean.to_vector())  # the mean face, frontal, ambient light
        self.register_buffer("scale", scale)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - 0.5) / 0.25  # roughly zero-mean, unit-variance pixels
        return self.offset + self.scale * self.head(self.trunk(x))

    def predict(self, images: torch.Tensor) -> FaceParams:
        """FaceParams (batch B) of (B,3,S,S) crops in [0,1]."""
        return FaceParams.from_vector(self(images), self.config.sizes())


def save_checkpoint(path: str | os.PathLike, net: RNet, extra: dict[str, Any] | None = None) -> Path:
    """Write ``net`` with its config (and ``extra``: step, optimiser state, metrics…) atomically."""
    doc = {"format": "facerecon.rnet", "format_version": 1, "config": asdict(net.config),
           "parts": list(PARTS), "state_dict": net.state_dict(), "extra": extra or {}}
    with atomic_path(path, mkdir=True) as tmp:
        torch.save(doc, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[RNet, dict]:
    """Rebuild an :class:`RNet` from its checkpoint alone; returns (network, extra)."""
    doc = torch.load(path, map_location=map_location, weights_only=True)
    if doc.get("format") != "facerecon.rnet":
        raise ValueError(f"{path}: not a facerecon R-Net checkpoint")
    net = RNet(RNetConfig(**doc["config"]))
    net.load_state_dict(doc["state_dict"])
    return net, doc.get("extra", {})


__all__ = ["RNetConfig", "RNet", "ResNetTrunk", "TRUNKS", "save_checkpoint", "load_checkpoint"]
