"""A minimal reader for frozen TensorFlow GraphDef files (protobuf wire format, no TensorFlow).

Only what a frozen inference graph needs is decoded: each node's name, op, inputs and attributes,
and constant tensors as numpy arrays. Field numbers follow TensorFlow's public ``graph.proto``,
``node_def.proto``, ``attr_value.proto``, ``tensor.proto`` and ``tensor_shape.proto``.

Wire format recap: a message is a sequence of (key, value) pairs; key = field_number << 3 | wire
type; wire type 0 = varint, 1 = fixed 64-bit, 2 = length-delimited bytes, 5 = fixed 32-bit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = [
    "GraphNode",
    "TensorShape",
    "read_varint",
    "iter_fields",
    "parse_tensor",
    "parse_graph_def",
    "load_graph_def",
    "constants",
    "encode_varint",
    "encode_field",
    "extract_subgraph",
]

# TensorFlow DataType enum values -> numpy dtypes (types.proto).
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    17: np.dtype("<u2"),  # DT_UINT16
    19: np.dtype("<f2"),  # DT_HALF
    22: np.dtype("<u4"),  # DT_UINT32
    23: np.dtype("<u8"),  # DT_UINT64
}
_DT_STRING = 7


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``; returns (value as unsigned int, next position)."""
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def _signed64(v: int) -> int:
    """Reinterpret an unsigned 64-bit varint value as two's-complement int64."""
    return v - (1 << 64) if v >= 1 << 63 else v


def iter_fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, Any]]:
    """Yield (field number, wire type, value) for every field of one serialized message.

    Values: int for varint, bytes-like (memoryview) for length-delimited, raw little-endian
    ``bytes`` of length 8 / 4 for fixed64 / fixed32. Groups (wire types 3, 4) are rejected.
    """
    mv = memoryview(buf)
    pos, end = 0, len(mv)
    while pos < end:
        key, pos = read_varint(mv, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = read_varint(mv, pos)
        elif wt == 1:
            if pos + 8 > end:
                raise ValueError("truncated fixed64")
            val, pos = bytes(mv[pos : pos + 8]), pos + 8
        elif wt == 2:
            n, pos = read_varint(mv, pos)
            if pos + n > end:
                raise ValueError("truncated length-delimited field")
            val, pos = mv[pos : pos + n], pos + n
        elif wt == 5:
            if pos + 4 > end:
                raise ValueError("truncated fixed32")
            val, pos = bytes(mv[pos : pos + 4]), pos + 4
        else:
            raise ValueError(f"unsupported wire type {wt} for field {num}")
        yield num, wt, val


def _packed_varints(val: Any, wt: int) -> list[int]:
    """A repeated varint field: one unpacked value, or a packed run."""
    if wt == 0:
        return [val]
    out, pos, mv = [], 0, memoryview(val)
    while pos < len(mv):
        v, pos = read_varint(mv, pos)
        out.append(v)
    return out


def _packed_fixed(val: Any, wt: int, fmt: str) -> list[float]:
    """A repeated fixed-width field (``fmt`` is 'f' for float32 or 'd' for float64)."""
    size = struct.calcsize(fmt)
    raw = bytes(val)
    if wt == 2 and len(raw) % size:
        raise ValueError("packed fixed field length is not a multiple of the element size")
    return list(struct.unpack(f"<{len(raw) // size}{fmt}", raw))


@dataclass
class TensorShape:
    """A TensorShapeProto: ``dims`` (-1 = unknown size), or ``None`` when the rank is unknown."""

    dims: tuple[int, ...] | None


@dataclass
class GraphNode:
    """One NodeDef: name, op type, input names (``^x`` = control input) and decoded attributes."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    device: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)


def _parse_shape(buf: Any) -> TensorShape:
    dims: list[int] = []
    unknown = False
    for num, wt, val in iter_fields(buf):
        if num == 2:  # Dim
            size = 0
            for dnum, _dwt, dval in iter_fields(val):
                if dnum == 1:
                    size = _signed64(dval)
            dims.append(size)
        elif num == 3:
            unknown = bool(val)
    return TensorShape(None if unknown else tuple(dims))


def parse_tensor(buf: bytes | memoryview) -> np.ndarray:
    """Decode a serialized TensorProto into a numpy array of its dtype and shape.

    Uses ``tensor_content`` when present, else the typed ``*_val`` list; a single value is
    broadcast to the whole shape (TensorFlow's convention for splat constants).
    """
    dtype_enum = 0
    shape: tuple[int, ...] = ()
    content: bytes | None = None
    vals: list[Any] = []
    for num, wt, val in iter_fields(buf):
        if num == 1:
            dtype_enum = val
        elif num == 2:
            dims = _parse_shape(val).dims
            shape = tuple(dims) if dims is not None else ()
        elif num == 4:
            content = bytes(val)
        elif num == 5:  # float_val
            vals += _packed_fixed(val, wt, "f")
        elif num == 6:  # double_val
            vals += _packed_fixed(val, wt, "d")
        elif num in (7, 11, 13, 16, 17):  # int_val, bool_val, half_val(bits), uint32, uint64
            vals += _packed_varints(val, wt)
        elif num == 10:  # int64_val
            vals += [_signed64(v) for v in _packed_varints(val, wt)]
        elif num == 8:  # string_val
            vals.append(bytes(val))
    if dtype_enum == _DT_STRING:
        arr = np.empty(len(vals), dtype=object)
        arr[:] = vals
        return arr.reshape(shape) if vals and int(np.prod(shape)) == len(vals) else arr
    if dtype_enum not in _DTYPES:
        raise ValueError(f"unsupported tensor dtype enum {dtype_enum}")
    dt = _DTYPES[dtype_enum]
    count = int(np.prod(shape)) if shape else 1
    if content is not None:
        arr = np.frombuffer(content, dtype=dt).copy()
    elif dtype_enum == 19:  # half values are stored as uint16 bit patterns in int fields
        arr = np.asarray(vals, dtype=np.uint16).view(np.float16)
    elif dtype_enum in (3, 5, 6):  # small signed ints arrive as sign-extended 64-bit varints
        arr = np.asarray([_signed64(v) for v in vals], dtype=np.int64).astype(dt)
    else:
        arr = np.asarray(vals, dtype=np.float64 if dt.kind == "f" else np.int64).astype(dt)
    if arr.size == count:
        return arr.reshape(shape)
    if arr.size == 1:
        return np.full(shape, arr.reshape(()), dtype=dt)
    if arr.size == 0:
        return np.zeros(shape, dtype=dt)
    raise ValueError(f"tensor holds {arr.size} values for shape {shape}")


def _parse_list(buf: Any) -> list[Any]:
    out: list[Any] = []
    for num, wt, val in iter_fields(buf):
        if num == 2:
            out.append(bytes(val))
        elif num == 3:
            out += [_signed64(v) for v in _packed_varints(val, wt)]
        elif num == 4:
            out += _packed_fixed(val, wt, "f")
        elif num == 5:
            out += [bool(v) for v in _packed_varints(val, wt)]
        elif num == 6:
            out += [int(v) for v in _packed_varints(val, wt)]
        elif num == 7:
            out.append(_parse_shape(val))
        elif num == 8:
            out.append(parse_tensor(val))
    return out


def _parse_attr_value(buf: Any) -> Any:
    """Decode an AttrValue: bytes, int, float, bool, dtype enum (int), shape, tensor or list."""
    for num, wt, val in iter_fields(buf):
        if num == 1:
            return _parse_list(val)
        if num == 2:
            return bytes(val)
        if num == 3:
            return _signed64(val)
        if num == 4:
            return struct.unpack("<f", val)[0]
        if num == 5:
            return bool(val)
        if num == 6:
            return int(val)
        if num == 7:
            return _parse_shape(val)
        if num == 8:
            return parse_tensor(val)
        if num == 9:
            return bytes(val).decode()
    return None


def _parse_node(buf: Any) -> GraphNode:
    node = GraphNode(name="", op="")
    for num, _wt, val in iter_fields(buf):
        if num == 1:
            node.name = bytes(val).decode()
        elif num == 2:
            node.op = bytes(val).decode()
        elif num == 3:
            node.inputs.append(bytes(val).decode())
        elif num == 4:
            node.device = bytes(val).decode()
        elif num == 5:  # map<string, AttrValue> entry
            key, value = "", None
            for enum_, _ewt, eval_ in iter_fields(val):
                if enum_ == 1:
                    key = bytes(eval_).decode()
                elif enum_ == 2:
                    value = _parse_attr_value(eval_)
            node.attrs[key] = value
    return node


def parse_graph_def(data: bytes) -> list[GraphNode]:
    """Decode a serialized GraphDef into its nodes, in file order (function library ignored)."""
    return [_parse_node(val) for num, _wt, val in iter_fields(data) if num == 1]


def load_graph_def(path: str | Path) -> list[GraphNode]:
    """Read and decode a frozen ``.pb`` GraphDef file."""
    return parse_graph_def(Path(path).read_bytes())


def constants(nodes: list[GraphNode]) -> dict[str, np.ndarray]:
    """The value of every ``Const`` node, by node name."""
    return {n.name: n.attrs["value"] for n in nodes if n.op == "Const" and "value" in n.attrs}


def encode_varint(value: int) -> bytes:
    """Encode a non-negative int as a base-128 varint (negative int64: pass ``value % 2**64``)."""
    if value < 0:
        raise ValueError("varint value must be non-negative")
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def encode_field(num: int, wire_type: int, value: int | bytes | memoryview) -> bytes:
    """Serialize one field: varint (int), length-delimited (bytes) or fixed32/64 (raw bytes)."""
    key = encode_varint(num << 3 | wire_type)
    if wire_type == 0:
        return key + encode_varint(int(value))  # type: ignore[arg-type]
    raw = bytes(value)  # type: ignore[arg-type]
    if wire_type == 2:
        return key + encode_varint(len(raw)) + raw
    if (wire_type, len(raw)) in ((1, 8), (5, 4)):
        return key + raw
    raise ValueError(f"cannot encode wire type {wire_type} with {len(raw)} bytes")


def extract_subgraph(data: bytes, outputs: list[str]) -> bytes:
    """A serialized GraphDef holding only the nodes that ``outputs`` depend on (file order kept).

    Node bytes are copied unchanged; other top-level fields (versions, library) are kept.
    """
    fields = list(iter_fields(data))
    node_fields = [(i, _parse_node(v)) for i, (num, _wt, v) in enumerate(fields) if num == 1]
    by_name = {node.name: node for _i, node in node_fields}
    keep: set[str] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop().lstrip("^").split(":")[0]
        if name in keep:
            continue
        if name not in by_name:
            raise KeyError(f"node {name!r} is not in the graph")
        keep.add(name)
        stack += by_name[name].inputs
    kept_nodes = {i for i, node in node_fields if node.name in keep}
    out = bytearray()
    for i, (num, wt, val) in enumerate(fields):
        if num != 1 or i in kept_nodes:
            out += encode_field(num, wt, val)
    return bytes(out)
