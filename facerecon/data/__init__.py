"""Training data for the regressor: aligned faces in shards, and fitted labels beside them.

- :mod:`~facerecon.data.shards`: the on-disk shard format (``meta.json``, ``shard-NNNNN.npz``,
  ``records.jsonl``, ``failures.jsonl``) and :class:`ShardDataset`, a torch dataset over it;
- :mod:`~facerecon.data.prepare`: :func:`prepare_shards` detects and aligns photos into shards
  (resumable);
- :mod:`~facerecon.data.labels`: :func:`label_shards` fits every face with the analysis-by-synthesis
  :class:`~facerecon.fitting.Fitter` into label chunks, :func:`read_labels` merges them;
- :mod:`~facerecon.data.split`: train/val split by person and ``i/n`` job sharding (no torch).

Names are loaded on first use, so importing the light parts (``split``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ShardDataset": "shards", "ShardRecord": "shards", "read_records": "shards", "read_failures": "shards",
    "read_meta": "shards",
    "Photo": "prepare", "collect_photos": "prepare", "prepare_shards": "prepare",
    "label_shards": "labels", "read_labels": "labels", "read_label_sizes": "labels",
    "parse_shard_spec": "split", "split_of": "split", "take_shard": "split",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"facerecon.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'facerecon.data' has no attribute {name!r}")
