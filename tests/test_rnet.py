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
