"""tools/ship_rnet.py: the stages a shipped model records, through runs and earlier shipped models."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from ship_rnet import stages  # noqa: E402


def _save(path: Path, extra: dict) -> Path:
    torch.save({"extra": extra}, path)
    return path


def test_stages_follow_init_links_and_continue_a_shipped_models_record(tmp_path):
    a = _save(tmp_path / "a.pt", {"step": 600, "train_config": {"init": None, "lr": 5e-4}})
    b = _save(tmp_path / "b.pt", {"step": 1200, "train_config": {"init": str(a), "lr": 1e-4}})
    assert [(s["checkpoint"], s["step"]) for s in stages(b)] == [(str(a), 600), (str(b), 1200)]
    # a shipped model records its stages; its training runs may be gone (another machine)
    recorded = [{"checkpoint": "gone/a.pt", "step": 600, "train_config": {}},
                {"checkpoint": "gone/b.pt", "step": 1200, "train_config": {"init": "gone/a.pt"}}]
    shipped = _save(tmp_path / "shipped.pt", {"step": 1200, "train_config": {"init": "gone/a.pt"}, "stages": recorded})
    d = _save(tmp_path / "d.pt", {"step": 3000, "train_config": {"init": str(shipped)}})
    assert [(s["checkpoint"], s["step"]) for s in stages(d)] == [("gone/a.pt", 600), ("gone/b.pt", 1200), (str(d), 3000)]
