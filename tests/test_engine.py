"""Engines of the pipeline: the plain fit unchanged, R-Net's prediction alone, R-Net's prediction
refined by the fitter, checkpoints that do not fit the fitter refused, and the command line."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from facerecon.cli import main
from facerecon.fitting.engine import FitConfig, Fitter
from facerecon.nets.rnet import RNet, RNetConfig, load_checkpoint, save_checkpoint
from facerecon.params import FaceParams
from facerecon.pipeline import engine_config
from tests.conftest import need_shared

TINY = FitConfig(landmark_steps=5, steps=2, perceptual=False)
FASTER = ["--landmark-steps", "5", "--steps", "2", "--no-perceptual", "--texture-size", "128", "--quiet"]
PARTS = ("alpha", "beta", "delta", "gamma", "angles", "trans")


def same(a: FaceParams, b: FaceParams) -> bool:
    """Equal up to float32 rounding: two runs of one fit on equal inputs in one process differ by
    ~1e-9 now and then (SIMD kernels round by the memory alignment of the tensors they are given),
    where another code path, start or prior moves them by more than 1e-3."""
    return all(torch.allclose(getattr(a, k).cpu(), getattr(b, k).cpu(), rtol=1e-6, atol=1e-6) for k in PARTS)


def nudged_net() -> RNet:
    """An R-Net whose prediction is not the mean face (a trained net's is not either): its head's
    bias moves identity, expression and pose a little, the same for every crop."""
    torch.manual_seed(0)
    net = RNet(RNetConfig(trunk="resnet18"))
    with torch.no_grad():
        net.head.bias[:80] = 0.3 * torch.randn(80)
        net.head.bias[80 + 9] = 0.2  # an expression weight
        net.head.bias[-6:] = torch.tensor([0.05, -0.1, 0.02, 0.1, -0.1, 0.2])  # pose: radians, 50 mm units
        sizes = net.config.sizes()
        gamma_at = sizes["alpha"] + sizes["beta"] + sizes["delta"]
        net.head.bias[gamma_at - 1] += 0.2  # an albedo weight
        net.head.bias[gamma_at + 1] += 0.1  # a light coefficient
    return net


@pytest.fixture(scope="module")
def photo() -> Path:
    return need_shared("faces", "lfw", "Aaron_Peirsol", "Aaron_Peirsol_0001.jpg")


@pytest.fixture(scope="module")
def fit_recon(photo):
    from facerecon.pipeline import FaceReconstructor

    return FaceReconstructor(config=TINY, engine="fit")


@pytest.fixture(scope="module")
def prepared(fit_recon, photo):
    img, faces = fit_recon.prepare(photo)
    return img, faces[0]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """An untrained R-Net (its head is zero: it predicts the mean face facing the camera), a nudged
    one, and checkpoints that do not fit the fitter."""
    d = tmp_path_factory.mktemp("rnet")
    fitter_like = {"albedo": "learned", "region": "narrow"}
    torch.manual_seed(0)
    return {
        "untrained": save_checkpoint(d / "untrained.pt", RNet(RNetConfig(trunk="resnet18")),
                                     {"train_config": fitter_like}),
        "nudged": save_checkpoint(d / "nudged.pt", nudged_net(), {"train_config": fitter_like}),
        "small_id": save_checkpoint(d / "small_id.pt", RNet(RNetConfig(trunk="resnet18", n_id=50))),
        "rgb": save_checkpoint(d / "rgb.pt", RNet(RNetConfig(trunk="resnet18", rgb_light=True))),
        "spectral": save_checkpoint(d / "spectral.pt", RNet(RNetConfig(trunk="resnet18")),
                                    {"train_config": {"albedo": "spectral", "region": "narrow"}}),
        "fit_region": save_checkpoint(d / "fit_region.pt", RNet(RNetConfig(trunk="resnet18")),
                                      {"train_config": {"albedo": "learned", "region": "fit"}}),
        "other_albedo": save_checkpoint(d / "other_albedo.pt", RNet(RNetConfig(trunk="resnet18")),
                                        {"train_config": {**fitter_like, "albedo_sha256": "0" * 64}}),
    }


def make(fit_recon, engine: str, rnet, refine: int = 50, config: FitConfig = TINY):
    """A reconstructor sharing the module's face model and detector (built once)."""
    from facerecon.pipeline import FaceReconstructor

    return FaceReconstructor(config=config, face_model=fit_recon.model, preparer=fit_recon.preparer,
                             engine=engine, rnet=rnet, refine=refine)


def batch_of(prep):
    crops = torch.from_numpy(prep.crop).permute(2, 0, 1).float()[None] / 255.0
    lmk = torch.from_numpy(np.asarray(prep.landmarks_crop, np.float32))[None]
    att = torch.from_numpy(np.asarray(prep.attention, np.float32))[None, None]
    return crops, lmk, att


def own_prediction(path: Path, prep) -> FaceParams:
    """The checkpoint's prediction for the crop, computed here without the pipeline."""
    net, _ = load_checkpoint(path)
    with torch.no_grad():
        return net.eval().predict(batch_of(prep)[0])


# --- engine "fit" ------------------------------------------------------------------------------------
def test_fit_engine_is_the_fitter_unchanged(fit_recon, prepared):
    """Engine "fit" is the plain fit: the same numbers as the Fitter alone on the same inputs (the
    code path before engines existed), up to float rounding."""
    assert fit_recon.engine == "fit" and fit_recon.rnet is None
    rec = fit_recon.fit_prepared([prepared])[0]
    fitter = Fitter(fit_recon.model, fit_recon.camera, None, TINY)
    ref = fitter.fit(*batch_of(prepared[1]))
    assert same(rec.params, ref.params.map(lambda t: t.cpu()))
    assert np.allclose(rec.landmarks_fit, prepared[1].to_photo(ref.landmarks_2d[0].numpy()), rtol=0, atol=1e-4)
    assert rec.losses["total"] == pytest.approx(float(ref.losses.total[0]), rel=1e-6)


def test_the_detectors_spread_reaches_the_fitter(fit_recon, prepared, checkpoints):
    """With ``landmark_spread_px`` set, every engine that fits gives the prepared faces' landmark
    spread to the fitter: the same numbers as the Fitter alone given that spread, and not those
    without it; faces without a spread (landmarks given, not detected) count as sure."""
    from facerecon.pipeline import landmark_spread

    photo, prep = prepared
    assert prep.landmark_spread is not None and prep.landmark_spread.shape == (68,)
    cfg = replace(TINY, landmark_spread_px=0.5)
    spread = torch.from_numpy(prep.landmark_spread)[None]
    for engine, rnet in (("fit", None), ("rnet-prior", checkpoints["nudged"])):
        rec = make(fit_recon, engine, rnet, config=cfg).fit_prepared([prepared])[0]
        fitter = Fitter(fit_recon.model, fit_recon.camera, None, cfg)
        prior = None
        if engine == "rnet-prior":
            from facerecon.fitting.engine import rnet_prior

            prior = rnet_prior(own_prediction(checkpoints["nudged"], prep))
        ref = fitter.fit(*batch_of(prep), prior=prior, spread=spread)
        assert same(rec.params, ref.params.map(lambda t: t.cpu()))
        assert not same(rec.params, fitter.fit(*batch_of(prep), prior=prior).params.map(lambda t: t.cpu()))
    given = replace(prep, landmark_spread=None)
    assert torch.equal(landmark_spread([prep, given]), torch.stack([spread[0], torch.zeros(68)]))
    assert landmark_spread([given]) is None


def test_engine_fit_refuses_a_network(fit_recon, checkpoints):
    with pytest.raises(ValueError, match="does not use it"):
        make(fit_recon, "fit", checkpoints["untrained"])
    with pytest.raises(ValueError, match="unknown engine"):
        make(fit_recon, "regress", None)


def test_rnet_engines_default_to_the_shipped_model(fit_recon, checkpoints, monkeypatch):
    import facerecon.nets.rnet as rnet_module
    from facerecon.pipeline import ENGINE_MODELS

    shipped = rnet_module.default_model_path()
    if shipped is not None:  # the package's own model loads and fits the fitter's layout
        assert make(fit_recon, "rnet-prior", None).rnet.config == load_checkpoint(shipped)[0].config
        # with the perceptual term on, its FaceNet trunk is the fitter's FaceNet: one copy
        recon = make(fit_recon, "rnet-prior", None, config=replace(TINY, perceptual=True))
        if recon.rnet.config.trunk == "facenet":
            assert recon.rnet.trunk.facenet is recon._facenet.net
    alone = rnet_module.default_model_path(ENGINE_MODELS["rnet"])
    if alone is not None:
        assert make(fit_recon, "rnet", None).rnet.config == load_checkpoint(alone)[0].config
    # engine "rnet" alone has a file of its own; the fitter's engines share the prior's
    files = {"rnet_alone.pt": checkpoints["nudged"], "rnet_default.pt": checkpoints["untrained"]}
    monkeypatch.setattr(rnet_module, "default_model_path", lambda name="rnet_default.pt": files[name])
    for engine, ckpt in [("rnet", "nudged"), ("rnet+fit", "untrained"), ("rnet-prior", "untrained")]:
        recon = make(fit_recon, engine, None)
        assert torch.equal(recon.rnet.head.bias, load_checkpoint(checkpoints[ckpt])[0].head.bias), engine
    files["rnet_alone.pt"] = None  # an installation without engine "rnet"'s file says which is missing
    with pytest.raises(ValueError, match="rnet_alone.pt is missing"):
        make(fit_recon, "rnet", None)
    make(fit_recon, "rnet-prior", None)  # (the others' is still there)
    monkeypatch.setattr(rnet_module, "default_model_path", lambda name="rnet_default.pt": None)
    with pytest.raises(ValueError, match="rnet_default.pt is missing"):
        make(fit_recon, "rnet-prior", None)


# --- engine "rnet" -----------------------------------------------------------------------------------
def test_rnet_engine_gives_the_network_its_landmarks(fit_recon, prepared, tmp_path):
    """A landmark_input network gets the crop's detected landmarks, in pixels of its own input
    size: the pipeline's prediction equals the network's own on (crop, landmarks_crop)."""
    torch.manual_seed(1)
    net = RNet(RNetConfig(trunk="resnet18", landmark_input=True))
    with torch.no_grad():
        net.head.weight[:, -136:].normal_(0, 0.02)  # only the landmark inputs move the output
    path = save_checkpoint(tmp_path / "lmk.pt", net, {"train_config": {"albedo": "learned", "region": "narrow"}})
    rec = make(fit_recon, "rnet", path).fit_prepared([prepared])[0]
    crop, lmk, _ = batch_of(prepared[1])
    with torch.no_grad():
        own = net.eval().predict(crop, lmk)
        other = net.predict(crop, lmk + 5.0)
    assert same(rec.params, own) and not same(rec.params, other)


def test_rnet_engine_is_the_prediction_alone(fit_recon, prepared, checkpoints, monkeypatch):
    recon = make(fit_recon, "rnet", checkpoints["untrained"])
    assert not recon.rnet.training and not any(p.requires_grad for p in recon.rnet.parameters())

    def no_fitting(*args, **kwargs):
        raise AssertionError("engine 'rnet' must not optimise")

    for stage in ("fit", "landmark_stage", "full_stage", "init_pose"):
        monkeypatch.setattr(Fitter, stage, no_fitting)
    rec = recon.fit_prepared([prepared])[0]
    # the Reconstruction's params are the network's output ...
    assert same(rec.params, own_prediction(checkpoints["untrained"], prepared[1]))
    # ... which for an untrained net (zero head) is the mean face facing the camera
    assert same(rec.params, FaceParams.zeros(1))
    assert float(rec.params.trans[0, 2]) == -1000.0 and float(rec.params.gamma[0, 0]) == 1.0
    monkeypatch.undo()
    # landmarks and losses are what the fitter reports after a stage of zero steps from there
    ref = Fitter(fit_recon.model, fit_recon.camera, None, replace(TINY, steps=0)).full_stage(
        rec.params, *batch_of(prepared[1]))
    assert np.allclose(rec.landmarks_fit, prepared[1].to_photo(ref.landmarks_2d[0].numpy()), atol=1e-4)
    for k in ("total", "photo", "landmark", "coef", "texture"):
        assert rec.losses[k] == pytest.approx(float(getattr(ref.losses, k)[0]), rel=1e-5), k
    assert rec.losses["landmark"] > 0


def test_rnet_engine_batches_one_forward_pass(fit_recon, prepared, checkpoints, monkeypatch):
    recon = make(fit_recon, "rnet", checkpoints["nudged"])
    calls: list[int] = []
    real = RNet.forward

    def counting(self, images, landmarks=None):
        calls.append(images.shape[0])
        return real(self, images, landmarks)

    monkeypatch.setattr(RNet, "forward", counting)
    recs = recon.fit_prepared([prepared] * 3)
    assert calls == [3]
    want = own_prediction(checkpoints["nudged"], prepared[1])
    assert all(same(r.params, want) for r in recs)
    assert not same(want, FaceParams.zeros(1))


def test_rnet_engine_shares_identity_within_a_group(fit_recon, prepared, tmp_path):
    """Grouped photos (one person) get the mean of their predicted α and δ; β and pose stay theirs."""
    torch.manual_seed(1)
    net = RNet(RNetConfig(trunk="resnet18"))
    with torch.no_grad():
        net.head.weight.normal_(0, 1e-2)  # predictions that depend on the crop
    path = save_checkpoint(tmp_path / "random.pt", net, {})
    other = fit_recon.prepare(need_shared("faces", "lfw", "Adam_Sandler", "Adam_Sandler_0001.jpg"))
    items = [prepared, (other[0], other[1][0])]
    recon = make(fit_recon, "rnet", path)
    own = FaceParams.cat([own_prediction(path, prep) for _, prep in items])
    assert not torch.allclose(own.alpha[0], own.alpha[1])
    grouped = FaceParams.cat([r.params for r in recon.fit_prepared(items, groups=["p", "p"])])
    for name in ("alpha", "delta"):
        mean = getattr(own, name).mean(0, keepdim=True).expand(2, -1)
        assert torch.allclose(getattr(grouped, name), mean, atol=1e-6), name
    for name in ("beta", "gamma", "angles", "trans"):
        assert torch.allclose(getattr(grouped, name), getattr(own, name), atol=1e-6), name
    alone = FaceParams.cat([r.params for r in recon.fit_prepared(items)])
    assert torch.allclose(alone.to_vector(), own.to_vector(), atol=1e-6)


def record_starts(monkeypatch) -> list[FaceParams]:
    """The parameters each landmark stage starts from (the fit's start), recorded as it runs."""
    starts: list[FaceParams] = []
    real = Fitter.landmark_stage

    def spy(self, params, *args, **kwargs):
        starts.append(params.map(lambda t: t.detach().cpu().clone()))
        return real(self, params, *args, **kwargs)

    monkeypatch.setattr(Fitter, "landmark_stage", spy)
    return starts


# --- engine "rnet+fit" -------------------------------------------------------------------------------
def test_refine_zero_returns_the_prediction(fit_recon, prepared, checkpoints):
    recon = make(fit_recon, "rnet+fit", checkpoints["nudged"], refine=0)
    rec = recon.fit_prepared([prepared])[0]
    assert same(rec.params, own_prediction(checkpoints["nudged"], prepared[1]))


def test_refine_starts_from_the_prediction_and_lowers_the_loss(fit_recon, prepared, checkpoints, monkeypatch):
    from facerecon.pipeline import refine_split

    assert refine_split(12) == (3, 9) and refine_split(0) == (0, 0)
    recon = make(fit_recon, "rnet+fit", checkpoints["nudged"], refine=12)
    starts = record_starts(monkeypatch)
    steps: list[int] = []
    rec = recon.fit_prepared([prepared], progress=lambda done, total: steps.append(total))[0]
    want = own_prediction(checkpoints["nudged"], prepared[1])
    assert len(starts) == 1 and same(starts[0], want)  # from the net's output, not from PnP
    assert set(steps) == {12} and len(steps) == 12  # 3 landmark + 9 full steps
    alone = make(fit_recon, "rnet", checkpoints["nudged"]).fit_prepared([prepared])[0]
    assert rec.losses["total"] < 0.9 * alone.losses["total"]
    assert not same(rec.params, want)


def test_init_given_runs_the_fitter_whatever_the_engine(fit_recon, prepared, checkpoints):
    """The joint multi-photo fit passes ``init``: that is a fit from there, also with R-Net engines."""
    recon = make(fit_recon, "rnet", checkpoints["nudged"])
    start = FaceParams.zeros(1)
    rec = recon.fit_prepared([prepared], init=start)[0]
    fitter = Fitter(fit_recon.model, fit_recon.camera, None, TINY)
    ref = fitter.fit(*batch_of(prepared[1]), init=start)
    assert same(rec.params, ref.params)
    # "rnet-prior" keeps its prior there: the fit from ``init`` centred on the net's prediction
    rec = make(fit_recon, "rnet-prior", checkpoints["nudged"]).fit_prepared([prepared], init=start)[0]
    from facerecon.pipeline import rnet_prior

    prediction = rnet_prior(own_prediction(checkpoints["nudged"], prepared[1]))
    assert same(rec.params, fitter.fit(*batch_of(prepared[1]), init=start, prior=prediction).params)
    assert not same(rec.params, ref.params)


# --- engine "rnet-prior" ------------------------------------------------------------------------------
def test_rnet_prior_is_the_whole_fit_with_the_prior_centred_on_the_prediction(fit_recon, prepared, checkpoints):
    """From PnP like the plain fit (not from the net's output), every step; only the prior's
    centre moves to R-Net's identity and albedo (expression's stays at neutral) — and that
    changes the result."""
    recon = make(fit_recon, "rnet-prior", checkpoints["nudged"])
    rec = recon.fit_prepared([prepared])[0]
    fitter = Fitter(fit_recon.model, fit_recon.camera, None, TINY)
    prediction = own_prediction(checkpoints["nudged"], prepared[1])
    assert float(prediction.beta.abs().max()) > 0.1  # the nudged net predicts an expression
    centre = FaceParams(prediction.alpha, torch.zeros_like(prediction.beta), prediction.delta, prediction.gamma,
                        prediction.angles, prediction.trans)
    want = fitter.fit(*batch_of(prepared[1]), prior=centre)
    assert same(rec.params, want.params)
    assert not same(rec.params, fitter.fit(*batch_of(prepared[1]), prior=prediction).params)
    plain = fit_recon.fit_prepared([prepared])[0]
    assert float((rec.params.alpha - plain.params.alpha).abs().max()) > 1e-3


def test_start_at_prior_starts_at_the_predicted_identity_albedo_and_light(fit_recon, prepared, checkpoints,
                                                                         monkeypatch):
    """``start_at_prior``: the fit starts from R-Net's α, δ, γ (the prior's centre) with PnP's pose
    and a neutral expression — not the net's pose and expression; without a prior (engine fit)
    the option changes nothing."""
    config = replace(TINY, start_at_prior=True)
    starts = record_starts(monkeypatch)
    rec = make(fit_recon, "rnet-prior", checkpoints["nudged"], config=config).fit_prepared([prepared])[0]
    monkeypatch.undo()
    fitter = Fitter(fit_recon.model, fit_recon.camera, None, TINY)
    prediction = own_prediction(checkpoints["nudged"], prepared[1])
    pnp = fitter.init_pose(batch_of(prepared[1])[1])
    assert len(starts) == 1
    for name in ("alpha", "delta", "gamma"):
        assert not torch.equal(getattr(prediction, name), getattr(pnp, name).cpu()), name  # not vacuous
        assert torch.equal(getattr(starts[0], name), getattr(prediction, name)), name
    for name in ("beta", "angles", "trans"):
        assert torch.equal(getattr(starts[0], name), getattr(pnp, name).cpu()), name
    assert float(starts[0].beta.abs().max()) == 0.0
    centre = FaceParams(prediction.alpha, torch.zeros_like(prediction.beta), prediction.delta, prediction.gamma,
                        prediction.angles, prediction.trans)
    start = FaceParams(prediction.alpha, pnp.beta, prediction.delta, prediction.gamma, pnp.angles, pnp.trans)

    def gap(a: FaceParams, b: FaceParams) -> float:  # two fits of one photo agree to float noise, not bits
        return float((a.to_vector() - b.to_vector()).abs().max())

    assert gap(rec.params, fitter.fit(*batch_of(prepared[1]), init=start, prior=centre).params) < 1e-4
    assert gap(rec.params, fitter.fit(*batch_of(prepared[1]), prior=centre).params) > 1e-2  # the start matters
    plain = Fitter(fit_recon.model, fit_recon.camera, None, config).fit(*batch_of(prepared[1]))
    assert gap(plain.params, fitter.fit(*batch_of(prepared[1])).params) < 1e-4



def shipped_offset() -> torch.Tensor:
    """ō as the package file holds it, read here without the package's reader."""
    doc = json.loads((Path(__file__).parents[1] / "facerecon" / "resources" / "identity_offset.json").read_text())
    return torch.tensor(doc["alpha"], dtype=torch.float32)


def test_prior_offset_moves_the_identity_centre_and_start_by_the_population_offset(fit_recon, prepared,
                                                                                    checkpoints, monkeypatch):
    """``prior_offset`` w: the prior's identity centre, and the start with ``start_at_prior``, are
    R-Net's α − w·ō; nothing else moves (the same fit as a prior centred there by hand), and
    without a prior (engine fit) it changes nothing."""
    w, o = 0.3, shipped_offset()
    assert float(o.norm()) > 1.0  # not vacuous
    config = replace(TINY, start_at_prior=True, prior_offset=w)
    starts = record_starts(monkeypatch)
    rec = make(fit_recon, "rnet-prior", checkpoints["nudged"], config=config).fit_prepared([prepared])[0]
    monkeypatch.undo()
    prediction = own_prediction(checkpoints["nudged"], prepared[1])
    assert torch.allclose(starts[0].alpha, prediction.alpha - w * o, atol=1e-6)
    assert torch.equal(starts[0].delta, prediction.delta) and torch.equal(starts[0].gamma, prediction.gamma)
    fitter = Fitter(fit_recon.model, fit_recon.camera, None, replace(TINY, start_at_prior=True))
    moved = FaceParams(prediction.alpha - w * o, torch.zeros_like(prediction.beta), prediction.delta,
                       prediction.gamma, prediction.angles, prediction.trans)
    assert same(rec.params, fitter.fit(*batch_of(prepared[1]), prior=moved).params)
    unmoved = make(fit_recon, "rnet-prior", checkpoints["nudged"], config=replace(config, prior_offset=0.0))
    assert float((rec.params.alpha - unmoved.fit_prepared([prepared])[0].params.alpha).abs().max()) > 1e-2
    plain = Fitter(fit_recon.model, fit_recon.camera, None, config).fit(*batch_of(prepared[1]))
    assert same(plain.params, Fitter(fit_recon.model, fit_recon.camera, None, TINY).fit(*batch_of(prepared[1])).params)


def test_the_default_engine_moves_its_prior_by_seven_tenths_of_the_offset():
    """The measured choice (BENCHMARKS.md, "The prior's centre moved"), for one photo and for the
    joint fit of a person's photos, which must keep the centre its single-photo fits had."""
    assert engine_config("rnet-prior").prior_offset == 0.7
    assert engine_config("rnet-prior", joint=True).prior_offset == 0.7
    assert FitConfig().prior_offset == 0.0 and engine_config("fit").prior_offset == 0.0


def test_the_shipped_offset_is_the_mean_of_the_committed_populations_people():
    """facerecon/resources/identity_offset.json against the committed LFW caches it was made from
    (tools/common_offset.py): the mean over people of each person's mean α, recomputed here."""
    root = Path(__file__).parents[1] / "benchmarks" / "labels"
    people: dict[str, list[np.ndarray]] = {}
    for path in sorted(root.glob("lfw_complement383_U_*.npz")):
        with np.load(path) as z:
            for key, vec in zip(z["keys"].tolist(), z["vectors"]):
                people.setdefault(str(key).split("/")[-2], []).append(vec[:80].astype(np.float64))
    assert len(people) == 383
    want = np.mean([np.mean(v, 0) for v in people.values()], 0)
    assert np.allclose(shipped_offset().numpy(), want, atol=2e-6)
    from facerecon.fitting.engine import common_offset

    assert torch.equal(common_offset(80), shipped_offset())
    with pytest.raises(ValueError, match="offset of 80 identity coefficients, the face model has 50"):
        common_offset(50)

# --- checkpoints that do not fit -----------------------------------------------------------------------
@pytest.mark.parametrize("name, words", [
    ("small_id", "parameter layout differs from the fitter's (alpha 50 vs 80)"),
    ("rgb", "gamma 27 vs 9"),
    ("spectral", "trained with albedo 'spectral', the fitter uses 'learned'"),
    ("fit_region", "trained with region 'fit', the fitter uses 'narrow'"),
    ("other_albedo", "albedo outputs belong to another learned albedo model (sha256 000000000000…"),
])
def test_a_checkpoint_that_does_not_fit_is_refused(fit_recon, checkpoints, name, words):
    with pytest.raises(ValueError) as info:
        make(fit_recon, "rnet", checkpoints[name])
    text = str(info.value)
    assert words in text and str(checkpoints[name]) in text and "\n" not in text


def test_unreadable_checkpoints_are_one_line_errors(fit_recon, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    for path, words in ((junk, "not a readable R-Net checkpoint"), (tmp_path / "none.pt", "no such R-Net checkpoint")):
        with pytest.raises(ValueError) as info:
            make(fit_recon, "rnet", path)
        assert words in str(info.value) and "\n" not in str(info.value)


# --- command line ------------------------------------------------------------------------------------
def _params(folder: Path) -> tuple[FaceParams, dict]:
    from facerecon.export.reconstruction import params_from_document

    doc = json.loads((folder / "params.json").read_text())
    return params_from_document(doc), doc


def test_cli_engine_round_trip(tmp_path, photo, fit_recon, prepared, checkpoints):
    ckpt = checkpoints["nudged"]
    out = tmp_path / "out"
    assert main(["reconstruct", str(photo), "-o", str(out), "--engine", "rnet+fit", "--rnet", str(ckpt),
                 "--refine", "4", *FASTER]) == 0
    params, doc = _params(out / photo.stem)
    assert doc["extra"]["engine"] == {"engine": "rnet+fit", "rnet": str(ckpt), "refine": 4}
    report = json.loads((out / "report.json").read_text())
    assert report["engine"] == doc["extra"]["engine"] and report["summary"] == {"ok": 1, "failed": 0}
    want = make(fit_recon, "rnet+fit", ckpt, refine=4).fit_prepared([prepared])[0].params
    assert torch.allclose(params.to_vector(), want.to_vector(), atol=1e-5)

    out2 = tmp_path / "out2"
    assert main(["reconstruct", str(photo), "-o", str(out2), "--engine", "rnet", "--rnet", str(ckpt), *FASTER]) == 0
    params, doc = _params(out2 / photo.stem)
    assert doc["extra"]["engine"] == {"engine": "rnet", "rnet": str(ckpt)}
    assert torch.equal(params.to_vector(), own_prediction(ckpt, prepared[1]).to_vector())

    out3 = tmp_path / "out3"  # the plain fit writes what it always wrote: no engine record
    assert main(["reconstruct", str(photo), "-o", str(out3), "--engine", "fit", *FASTER]) == 0
    params, doc = _params(out3 / photo.stem)
    assert "engine" not in doc["extra"] and "engine" not in json.loads((out3 / "report.json").read_text())
    assert doc["extra"]["fit_config"] == json.loads(json.dumps(asdict(TINY)))  # the fitter's own defaults
    assert same(params, fit_recon.fit_prepared([prepared])[0].params)

    from facerecon.nets.rnet import default_model_path

    out4 = tmp_path / "out4"  # no engine named: the fit with the shipped R-Net as its prior, under
    assert main(["reconstruct", str(photo), "-o", str(out4), *FASTER]) == 0  # the engine's own defaults
    params, doc = _params(out4 / photo.stem)
    assert doc["extra"]["engine"] == {"engine": "rnet-prior", "rnet": str(default_model_path())}
    config = replace(engine_config("rnet-prior"), landmark_steps=5, steps=2)
    assert not config.start_at_prior and config.weights.coef_id != TINY.weights.coef_id
    assert config.weights.landmark != TINY.weights.landmark
    assert doc["extra"]["fit_config"] == json.loads(json.dumps(asdict(config)))
    want = make(fit_recon, "rnet-prior", default_model_path(), config=config).fit_prepared([prepared])[0].params
    assert torch.allclose(params.to_vector(), want.to_vector(), atol=1e-5)
    assert doc["camera"]["focal_px"] == 1015.0 and doc["camera"]["photo_focal_px"] is None

    out5 = tmp_path / "out5"  # a given lens: the fit, and what params.json records, use its camera
    assert main(["reconstruct", str(photo), "-o", str(out5), "--focal-35mm", "26", *FASTER]) == 0
    params, doc = _params(out5 / photo.stem)
    h, w = prepared[0].shape[:2]
    focal_photo = 26 / np.hypot(36, 24) * np.hypot(w, h)
    assert doc["camera"]["photo_focal_px"] == pytest.approx(focal_photo, rel=1e-6)
    crop_focal = focal_photo * np.sqrt(abs(np.linalg.det(np.asarray(doc["photo_to_crop"])[:, :2])))
    assert doc["camera"]["focal_px"] == pytest.approx(crop_focal, rel=1e-5)
    lens = replace(prepared[1], focal_photo=focal_photo)
    want = make(fit_recon, "rnet-prior", default_model_path(), config=config).fit_prepared([(prepared[0], lens)])[0]
    assert torch.allclose(params.to_vector(), want.params.to_vector(), atol=1e-4)
    assert want.camera.focal == pytest.approx(crop_focal, rel=1e-5)


def test_each_engine_runs_with_its_own_defaults_and_options_given_win(fit_recon, checkpoints):
    """Engine rnet-prior's defaults are the recipe measured for it (BENCHMARKS.md, "The mean-face
    start made default"), the other engines keep the fitter's; with no config the reconstructor
    takes its engine's, and on the command line an option named wins, even at the fitter's
    default value."""
    from facerecon.cli import build_parser
    from facerecon.cli.engine_args import fit_config
    from facerecon.pipeline import FaceReconstructor

    plain = FitConfig()
    fast = replace(plain, steps=100, perceptual=False, prior_offset=0.7, nose_mouth_weight=5.0, average_steps=30,
                   contour_back_mm=20.0, weights=replace(plain.weights, coef_id=6.0, landmark=4e-4))
    assert engine_config("rnet-prior") == fast
    assert engine_config("fit") == engine_config("rnet") == engine_config("rnet+fit") == plain
    recon = FaceReconstructor(face_model=fit_recon.model, preparer=fit_recon.preparer, engine="rnet-prior",
                              rnet=checkpoints["nudged"])
    assert recon.config == recon.fitter.config == fast and recon.fitter.loss.facenet is None  # no FaceNet load

    def parsed(*words: str):
        return build_parser(["reconstruct"]).parse_args(["reconstruct", "x.jpg", "-o", "out", *words])

    assert fit_config(parsed(), "rnet-prior") == fast and fit_config(parsed(), "fit") == plain
    assert fit_config(parsed("--perceptual", "--weights-coef-id", "1", "--weights-landmark", "2e-4",
                             "--prior-offset", "0", "--nose-mouth-weight", "20", "--average-steps", "0",
                             "--contour-back-mm", "10"),
                      "rnet-prior") == plain
    assert fit_config(parsed("--steps", "12"), "rnet-prior") == replace(fast, steps=12)
    assert fit_config(parsed("--weights-coef-exp", "5"), "fit") == replace(plain, weights=replace(plain.weights,
                                                                                                  coef_exp=5.0))
    # the joint fit of a person's photos keeps FaceNet and 100 steps; rnet-prior keeps its prior × 3
    joint = replace(plain, prior_offset=0.7, weights=replace(plain.weights, coef_id=3.0))
    assert engine_config("rnet-prior", joint=True) == joint == recon.joint_config
    assert all(engine_config(e, joint=True) == plain for e in ("fit", "rnet", "rnet+fit"))
    assert fit_config(parsed("--steps", "12"), "rnet-prior", joint=True) == replace(joint, steps=12)
    from facerecon.cli.engine_args import engine_options
    from facerecon.cli.reconstruct import build_reconstructor

    args = parsed("--steps", "12")  # what reconstruct (and --multi) builds: both configs from the flags
    options = engine_options(args)
    built = build_reconstructor(args, fit_config(args, options["engine"]), options)
    assert built.config == replace(fast, steps=12) and built.joint_config == replace(joint, steps=12)
    # --eye-spread-limit reaches the detector the reconstructor prepares photos with
    from facerecon.cli import UserError
    from facerecon.imageio.detect import EYE_SPREAD_LIMIT

    assert built.preparer.detector.eye_spread_limit == EYE_SPREAD_LIMIT
    off = parsed("--eye-spread-limit", "0")
    assert build_reconstructor(off, fit_config(off, "rnet-prior"), engine_options(off)).preparer.detector.eye_spread_limit == 0
    with pytest.raises(UserError, match="at least 0"):
        engine_options(parsed("--eye-spread-limit", "-0.5"))
    # --focal-35mm reaches the preparer (and keeps the detector of --eye-spread-limit)
    from facerecon.imageio.focal import DEFAULT_LENS

    assert built.preparer.focal_35mm == DEFAULT_LENS
    both = engine_options(parsed("--focal-35mm", "26", "--eye-spread-limit", "0"))["preparer"]
    assert both.focal_35mm == 26.0 and both.detector.eye_spread_limit == 0
    assert engine_options(parsed("--focal-35mm", "NONE"))["preparer"].focal_35mm == "none"
    assert "preparer" not in engine_options(parsed())
    for bad in ("wide", "0", "-26"):
        with pytest.raises(UserError, match="--focal-35mm"):
            engine_options(parsed("--focal-35mm", bad))


def test_the_joint_fit_runs_its_own_config(fit_recon, prepared, checkpoints, monkeypatch):
    """Single photos are fitted with ``config``, the joint refit of a person's photos with
    ``joint_config`` (its own fitter); without a ``joint_config`` a given ``config`` serves both."""
    from facerecon.pipeline import FaceReconstructor

    used: list[FitConfig] = []
    original = Fitter.fit

    def spy(self, *args, **kwargs):
        used.append(self.config)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Fitter, "fit", spy)
    joint = replace(TINY, landmark_steps=4, steps=3)
    recon = FaceReconstructor(config=TINY, face_model=fit_recon.model, preparer=fit_recon.preparer,
                              engine="rnet-prior", rnet=checkpoints["nudged"], joint_config=joint)
    members = recon.fit_prepared([prepared, prepared])
    person = recon.combine(members, "joint")
    assert used == [TINY, joint] and recon.joint_fitter() is not recon.fitter
    assert float((person.params.alpha - members[0].params.alpha).abs().max()) > 0  # the refit moved it
    used.clear()
    same_config = make(fit_recon, "rnet-prior", checkpoints["nudged"])
    same_config.combine(same_config.fit_prepared([prepared, prepared]), "joint")
    assert used == [TINY, TINY] and same_config.joint_fitter() is same_config.fitter


def test_without_the_shipped_model_the_default_is_the_plain_fit(tmp_path, photo, fit_recon, prepared, capsys,
                                                                monkeypatch):
    """An installation without the shipped R-Net still reconstructs with no engine named: the plain
    fit, said once on stderr (and as a warning from the API)."""
    import facerecon.nets.rnet as rnet_module
    from facerecon.pipeline import FaceReconstructor

    monkeypatch.setattr(rnet_module, "default_model_path", lambda name=None: None)
    out = tmp_path / "out"
    assert main(["reconstruct", str(photo), "-o", str(out), *FASTER]) == 0
    assert "using engine 'fit'" in capsys.readouterr().err
    params, doc = _params(out / photo.stem)
    assert "engine" not in doc["extra"]
    assert same(params, fit_recon.fit_prepared([prepared])[0].params)
    with pytest.warns(UserWarning, match="using engine 'fit'"):
        recon = FaceReconstructor(config=TINY, face_model=fit_recon.model, preparer=fit_recon.preparer)
    assert recon.engine == "fit" and recon.rnet is None


@pytest.mark.parametrize("extra, words", [
    (["--engine", "rnet"], "--engine rnet needs --rnet PATH: the shipped model"),
    (["--engine", "rnet+fit", "--rnet", "{tmp}/missing.pt"], "no such file"),
    (["--engine", "rnet-prior"], "--engine rnet-prior needs --rnet PATH: the shipped model"),
    (["--engine", "fit", "--rnet", "{ckpt}"], "--rnet is only used with --engine rnet, rnet+fit or rnet-prior"),
    (["--engine", "fit", "--refine", "3"], "--refine is only used with --engine rnet+fit"),
    (["--rnet", "{ckpt}", "--refine", "3"], "--refine is only used with --engine rnet+fit"),
    (["--engine", "rnet", "--rnet", "{ckpt}", "--refine", "3"], "--refine is only used with --engine rnet+fit"),
    (["--engine", "rnet+fit", "--rnet", "{ckpt}", "--refine", "-1"], "--refine must be at least 0"),
    (["--engine", "rnet", "--rnet", "{bad}"], "parameter layout differs from the fitter's"),
    (["--engine", "fast"], None),
])
def test_cli_engine_errors_are_one_line(tmp_path, photo, checkpoints, capsys, extra, words, monkeypatch):
    import facerecon.nets.rnet as rnet_module

    monkeypatch.setattr(rnet_module, "default_model_path", lambda name=None: None)  # as an installation without it
    args = [a.format(tmp=tmp_path, ckpt=checkpoints["untrained"], bad=checkpoints["small_id"]) for a in extra]
    out = tmp_path / "out"
    if words is None:  # argparse refuses an unknown engine itself
        with pytest.raises(SystemExit):
            main(["reconstruct", str(photo), "-o", str(out), *args, *FASTER])
        assert "invalid choice: 'fast'" in capsys.readouterr().err
        return
    assert main(["reconstruct", str(photo), "-o", str(out), *args, *FASTER]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # refused before anything was written


def test_cli_ray_without_ray_says_how_to_install(tmp_path, photo, capsys, monkeypatch):
    """Ray is an optional extra: without it, --ray is a one-line error before anything is written."""
    import sys

    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as when it is not installed
    monkeypatch.delitem(sys.modules, "facerecon.scale.ray_pipeline", raising=False)
    out = tmp_path / "out"
    assert main(["reconstruct", str(photo), "-o", str(out), "--ray", "2", *FASTER]) == 2
    err = capsys.readouterr().err
    assert "--ray needs the 'ray' extra" in err and "pip install 'facerecon[ray]'" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_bench_rnet_runs_and_reports_json(capsys, checkpoints):
    """A smoke test of ``facerecon bench rnet`` (its figures are measured, never asserted)."""
    assert main(["bench", "rnet", "--checkpoint", str(checkpoints["untrained"]), "--batch", "1", "2",
                 "--iters", "1", "--warmup", "0", "--region", "narrow", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["trunk"], r["batch"]) for r in rows] == [("resnet18", 1), ("resnet18", 2)]
    assert all(r["ms_per_photo"] >= r["forward_ms_per_photo"] > 0 for r in rows)
    assert all(r["amp"] == "off" and not r["channels_last"] for r in rows)
    assert main(["bench", "rnet", "--checkpoint", str(checkpoints["untrained"]), "--batch", "2", "--iters", "1",
                 "--warmup", "0", "--region", "narrow", "--amp", "bf16", "--channels-last", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["amp"], r["channels_last"], r["batch"]) for r in rows] == [("bf16", True, 2)]
    assert main(["bench", "rnet", "--checkpoint", "/nonexistent/rnet.pt"]) == 2
    assert "no such file" in capsys.readouterr().err
