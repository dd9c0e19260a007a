"""Carrying R-Nets over to a new learned albedo model (tools/remap_rnet_albedo.py), and the
fingerprint that ties a shipped network to the shipped albedo model."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from facerecon.assets import resource_path
from facerecon.facemodel.albedo import learned_albedo_sha256
from facerecon.nets.rnet import RNet, RNetConfig, load_checkpoint, save_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from remap_rnet_albedo import albedo_map, remap  # noqa: E402


def albedo_file(path: Path, mean: np.ndarray, basis: np.ndarray) -> Path:
    np.savez(path, vertex_ids=np.arange(mean.shape[0], dtype=np.int32), mean=mean, basis=basis,
             std=np.ones(len(basis), np.float32))
    return path


def test_an_rnet_carried_to_a_reparametrised_albedo_model_paints_the_same_face(tmp_path):
    """New model = the old one in other coordinates (B_new = B_old R, m_new = m_old + B_old t):
    by hand, the albedo m_old + B_old δ is m_new + B_new δ' with δ' = R⁻¹(δ − t)."""
    rng = np.random.default_rng(0)
    k, v = 80, 300
    b_old = rng.standard_normal((k, v, 3))
    m_old = rng.uniform(0.3, 0.7, (v, 3))
    r = np.eye(k) + 0.3 * rng.standard_normal((k, k))
    t = rng.standard_normal(k)
    b_new = np.einsum("kvc,kj->jvc", b_old, r)
    m_new = m_old + np.einsum("kvc,k->vc", b_old, t)
    old, new = albedo_file(tmp_path / "old.npz", m_old, b_old), albedo_file(tmp_path / "new.npz", m_new, b_new)
    torch.manual_seed(0)
    net = RNet(RNetConfig(trunk="resnet18", input_size=64))
    with torch.no_grad():
        net.head.weight.normal_(0, 0.01)
        net.head.bias.normal_(0, 0.5)
    path = save_checkpoint(tmp_path / "net.pt", net, {"train_config": {"albedo": "learned"}})
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = net.eval().predict(x)
    a, c = albedo_map(old, new)
    remap(path, a, c, "ab" * 32)
    after_net, extra = load_checkpoint(path)
    with torch.no_grad():
        after = after_net.eval().predict(x)
    want = torch.from_numpy((before.delta.double().numpy() - t) @ np.linalg.inv(r).T)
    assert torch.allclose(after.delta.double(), want, atol=1e-4)
    for part in ("alpha", "beta", "gamma", "angles", "trans"):  # nothing else moves
        assert torch.equal(getattr(after, part), getattr(before, part))
    albedo_before = m_old + np.einsum("kvc,bk->bvc", b_old, before.delta.double().numpy())
    albedo_after = m_new + np.einsum("kvc,bk->bvc", b_new, after.delta.double().numpy())
    assert np.abs(albedo_after - albedo_before).max() < 1e-3
    assert extra["train_config"] == {"albedo": "learned", "albedo_sha256": "ab" * 32}


def test_the_shipped_rnets_predict_albedo_for_the_shipped_albedo_model():
    """Rebuilding albedo_pca.npz without carrying the networks over (tools/remap_rnet_albedo.py)
    would give the default engine's albedo prior a centre in another model's coordinates."""
    sha = learned_albedo_sha256()
    for name in ("rnet_default.pt", "rnet_alone.pt"):
        _, extra = load_checkpoint(resource_path(name))
        assert extra["train_config"].get("albedo_sha256") == sha, name
