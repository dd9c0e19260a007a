"""R-Net: the paper's ResNet-50 (and a ResNet-18) written in the project, a head that starts at
the mean face, and checkpoints that rebuild themselves."""

from __future__ import annotations

import torch

from facerecon.nets.rnet import RNet, RNetConfig, ResNetTrunk, load_checkpoint, save_checkpoint
from facerecon.params import FaceParams


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_trunks_have_the_published_sizes():
    """torchvision's ResNet-50 has 25,557,032 parameters, ResNet-18 11,689,512, both with a
    2048/512 -> 1000 classifier (2,049,000 / 513,000): the trunks are the rest."""
    r50, r18 = ResNetTrunk("resnet50"), ResNetTrunk("resnet18")
    assert _count(r50) == 25_557_032 - 2_049_000 and r50.features == 2048
    assert _count(r18) == 11_689_512 - 513_000 and r18.features == 512
    x = torch.rand(2, 3, 224, 224)
    assert r18.stages(r18.stem(x)).shape == (2, 512, 7, 7)  # stride 32


def test_an_untrained_net_outputs_the_mean_face_facing_the_camera():
    net = RNet(RNetConfig(trunk="resnet18")).eval()
    with torch.no_grad():
        p = net.predict(torch.rand(3, 3, 224, 224))
    ref = FaceParams.zeros(3)
    for k in ("alpha", "beta", "delta", "gamma", "angles", "trans"):
        torch.testing.assert_close(getattr(p, k), getattr(ref, k))
    assert p.trans[0, 2] == -1000.0 and p.gamma[0, 0] == 1.0


def test_gradients_reach_the_trunk_after_one_step():
    net = RNet(RNetConfig(trunk="resnet18"))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.rand(2, 3, 224, 224)
    for _ in range(2):
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()
    assert net.head.weight.abs().sum() > 0
    assert net.trunk.stem[0].weight.grad.abs().sum() > 0
    # the translation comes out in units of trans_scale_mm
    assert torch.equal(net.scale[0, -3:], torch.full((3,), 50.0)) and torch.equal(net.scale[0, :-3], torch.ones(225))


def test_checkpoint_rebuilds_itself(tmp_path):
    net = RNet(RNetConfig(trunk="resnet18", rgb_light=True, trans_scale_mm=20.0))
    with torch.no_grad():
        net.head.weight.normal_(0, 1e-3)
    path = save_checkpoint(tmp_path / "ckpt" / "rnet.pt", net, {"step": 7})
    assert [p.name for p in path.parent.iterdir()] == ["rnet.pt"]  # no temporary file left
    back, extra = load_checkpoint(path)
    assert extra == {"step": 7} and back.config == net.config and back.config.sizes()["gamma"] == 27
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(x), net.eval()(x))


def test_facenet_trunk_trains_its_neck_only_and_checkpoints_without_facenet(tmp_path):
    """The ``facenet`` trunk: FaceNet stays frozen (no gradient, eval mode, not in the state dict,
    so checkpoints stay small), its embedding is FaceNet's own, and the neck and head train."""
    from facerecon.nets.facenet import FaceNet

    facenet = FaceNet.from_package()
    cfg = RNetConfig(trunk="facenet", neck_width=32, neck_hidden=64)
    net = RNet(cfg, facenet=facenet.net)
    assert not any(k.startswith("trunk.facenet") or "repeat" in k for k in net.state_dict())
    assert _count(net) == (896 * 32 + 32 * 32 * 9 + 1792 * 32 + 3 * 2 * 32 + 64 * (32 * 25 + 512 + 192) + 64
                           + net.head.weight.numel() + net.head.bias.numel())
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():  # untrained: the mean face
        torch.testing.assert_close(net.eval()(x), net.offset.expand(2, -1))
    # the embedding inside is FaceNet's, on the same crop box as the perceptual loss
    seen, stages = {}, net.trunk.facenet.stages
    net.trunk.facenet.stages = lambda t: seen.setdefault("out", stages(t))
    with torch.no_grad():
        net(x)
        del net.trunk.facenet.stages
        mid, late, b = seen["out"]
        assert mid.shape == (2, 896, 8, 8) and late.shape == (2, 1792, 3, 3)
        emb = b / b.norm(dim=1, keepdim=True)
        torch.testing.assert_close(emb, facenet.embed(x, cfg.facenet_box), atol=1e-5, rtol=0)
    net.train()
    assert not net.trunk.facenet.training
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()
    assert net.trunk.mid[0].weight.grad.abs().sum() > 0 and net.trunk.late[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.trunk.facenet.parameters())
    path = save_checkpoint(tmp_path / "rnet.pt", net)
    assert path.stat().st_size < 2_000_000  # FaceNet's 23 M weights are not in it
    back, _ = load_checkpoint(path)
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(x), net.eval()(x))
        # .to() carries the frozen FaceNet along
        torch.testing.assert_close(back.double()(x.double()).float(), net(x), atol=1e-4, rtol=1e-4)


def test_exported_model_is_float16_and_predicts_as_its_checkpoint(tmp_path):
    from facerecon.nets.rnet import export_model

    net = RNet(RNetConfig(trunk="resnet18"))
    with torch.no_grad():
        net.head.weight.normal_(0, 1e-3)
    ckpt = save_checkpoint(tmp_path / "last.pt", net, {"step": 9, "optimizer": {"state": {}}, "train_config": {"lr": 1}})
    out = export_model(ckpt, tmp_path / "model.pt", {"data": "tiny"})
    doc = torch.load(out, weights_only=True)
    assert {v.dtype for v in doc["state_dict"].values() if v.is_floating_point()} == {torch.float16}
    assert doc["extra"] == {"step": 9, "train_config": {"lr": 1}, "data": "tiny"}  # no optimiser state
    assert out.stat().st_size < 0.6 * ckpt.stat().st_size
    back, _ = load_checkpoint(out)
    assert back.head.weight.dtype == torch.float32
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(x), net.eval()(x), atol=2e-3, rtol=1e-3)


def test_landmark_input_moves_the_prediction_and_is_required():
    import pytest

    net = RNet(RNetConfig(trunk="resnet18", landmark_input=True)).eval()
    assert net.head.in_features == 512 + 136
    with torch.no_grad():
        net.head.weight.normal_(0, 1e-2)
        x, lm = torch.rand(2, 3, 224, 224), torch.rand(2, 68, 2) * 224
        a, b = net(x, lm), net(x, lm.flip(0))
    assert not torch.allclose(a, b) and torch.allclose(a.flip(0), net(x.flip(0), lm.flip(0)), atol=1e-5)
    with pytest.raises(ValueError, match="landmarks as input"):
        net(x)
