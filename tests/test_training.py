"""R-Net training: each objective learns, they mix by weight, checkpoints resume exactly (also
after kill -9), DDP keeps the processes in step on disjoint data with one writer (also with K photos
per person), TensorBoard gets its tags and validation sees held-out people only.

Everything runs at 64 px with the ResNet-18 trunk on tiny in-memory data sets of synthetic faces
(items shaped as :class:`facerecon.data.shards.ShardDataset`'s), so the file stays fast on CPUs.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from facerecon.facemodel.albedo import learned_albedo_sha256
from facerecon.nets.rnet import RNet, RNetConfig, load_checkpoint
from facerecon.synthesis import SynthConfig, generate_batches
from facerecon.training import TrainConfig, Trainer
from facerecon.training.trainer import lr_factor

SIZE = 64
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def synth_config() -> SynthConfig:
    return SynthConfig(size=SIZE, focal=1015.0 * SIZE / 224, background="noise")


class Faces(Dataset):
    """Synthetic faces with known parameters as photo items (image, landmarks, attention, person,
    key); remembers which items were read, and holds the true parameters as fitter-style labels."""

    def __init__(self, model, people: list[int], seed: int) -> None:
        n = len(people)
        b = next(generate_batches(n, seed, synth_config(), batch_size=n, model=model))
        vec = b["params"].to_vector()
        self.items = [{"image": b["image"][i], "landmarks": b["landmarks2d"][i], "attention": b["mask"][i],
                       "person": people[i], "key": f"s{seed}/{i}"} for i in range(n)]
        self.labels = {f"s{seed}/{i}": (vec[i].numpy(), 0.1) for i in range(n)}
        self.read: list[int] = []

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        self.read.append(int(i))
        return dict(self.items[i])


@pytest.fixture(scope="module")
def data(face_model):
    torch.set_num_threads(1)
    train = Faces(face_model, [0, 0, 1, 1], seed=11)
    val = Faces(face_model, [2, 3], seed=12)
    return train, val, {**train.labels, **val.labels}


def config(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(out=str(tmp_path / "run"), net=RNetConfig(trunk="resnet18", input_size=SIZE), steps=15, batch_size=4,
                lr=5e-4, warmup=0, perceptual=False, contour=False, checkpoint_every=1000, validate_every=0,
                log_every=1, num_workers=0, device="cpu", progress=False, synthetic_background="noise",
                val_synthetic=2)
    base.update(kw)
    return TrainConfig(**base)


def net(seed: int = 0) -> RNet:
    torch.manual_seed(seed)
    return RNet(RNetConfig(trunk="resnet18", input_size=SIZE))


class FixedSynthetic(Trainer):
    """The synthetic objective on one fixed batch (for the overfit check)."""

    def synthetic_batches(self, start_step):
        batch = next(generate_batches(4, 5, synth_config(), batch_size=4, model=self.face_model))
        return itertools.repeat(batch)


@pytest.mark.parametrize("objective", ["self_supervised", "distill", "synthetic"])
def test_each_objective_overfits_a_fixed_batch(objective, data, face_model, tmp_path):
    train, val, labels = data
    weights = {"self_supervised": 0.0, "distill": 0.0, "synthetic": 0.0, objective: 1.0}
    cfg = config(tmp_path, **weights)
    cls = FixedSynthetic if objective == "synthetic" else Trainer
    trainer = cls(cfg, net(), train if objective != "synthetic" else None, None,
                  labels if objective == "distill" else None, model=face_model)
    trainer.train()
    totals = [h["total"] for h in trainer.history]
    assert len(totals) == cfg.steps and trainer.step == cfg.steps
    assert sum(totals[-3:]) / 3 < 0.7 * totals[0], totals
    terms = set(trainer.history[-1]) - {"step", "total", "lr", "grad_norm"}
    assert terms and all(k.startswith(f"{objective}/") for k in terms)


def test_the_objectives_mix_by_weight(data, face_model, tmp_path):
    train, _, labels = data
    cfg = config(tmp_path, steps=2, self_supervised=1.0, distill=0.5, synthetic=0.25, batch_size=2)
    trainer = Trainer(cfg, net(), train, None, labels, model=face_model)
    trainer.train()
    h = trainer.history[-1]
    mixed = h["self_supervised/total"] + 0.5 * h["distill/total"] + 0.25 * h["synthetic/total"]
    assert h["total"] == pytest.approx(mixed, rel=1e-5)
    assert h["distill/labelled"] == 1.0 and h["self_supervised/photo"] > 0 and h["synthetic/vertices"] > 0


def test_a_landmark_input_net_gets_the_photos_and_synthetic_landmarks(data, face_model, tmp_path):
    """Photos give their detected landmarks, synthetic faces their projected ones; validation too."""
    train, val, labels = data
    cfg = config(tmp_path, steps=2, self_supervised=1.0, synthetic=0.5, batch_size=2, validate_every=2,
                 net=RNetConfig(trunk="resnet18", input_size=SIZE, landmark_input=True))
    model = RNet(cfg.net)
    seen = []
    forward = model.forward
    model.forward = lambda images, landmarks=None: (seen.append((images.shape[0], landmarks)), forward(images, landmarks))[1]
    trainer = Trainer(cfg, model, train, val, None, model=face_model)
    trainer.train()
    assert all(lm is not None and lm.shape == (n, 68, 2) for n, lm in seen)
    assert seen[0][0] == 4  # 2 photos + 2 synthetic faces in one pass
    photo_lmk = torch.stack([torch.as_tensor(train[i]["landmarks"]) for i in range(len(train))])
    assert any(torch.allclose(seen[0][1][0], p.float()) for p in photo_lmk)
    assert trainer.last_metrics and len(seen) > 2  # validation ran, through the same landmark path


def test_a_second_stage_starts_from_the_first_stage_weights_at_step_zero(data, face_model, tmp_path):
    train, _, _ = data
    first = Trainer(config(tmp_path / "a", steps=2), net(0), train, None, model=face_model)
    first.train()
    cfg = config(tmp_path / "b", steps=3, init=str(first.checkpoint_path), lr=1e-4)
    second = Trainer(cfg, net(1), train, None, model=face_model)
    assert second.step == 0 and second.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    for k, v in first.net.state_dict().items():
        assert torch.equal(second.net.state_dict()[k], v), k
    other = RNetConfig(trunk="resnet18", input_size=SIZE, n_id=40)
    with pytest.raises(ValueError, match="another network"):
        Trainer(config(tmp_path / "c", init=str(first.checkpoint_path), net=other), RNet(other), train, None,
                model=face_model)


def test_a_resumed_run_takes_the_same_steps_as_an_uninterrupted_one(data, face_model, tmp_path):
    train, _, labels = data
    kw = dict(steps=5, batch_size=2, checkpoint_every=3, distill=0.5, warmup=2)  # 2 batches per epoch
    whole = Trainer(config(tmp_path / "a", **kw), net(), train, None, labels, model=face_model)
    whole.train()
    first = Trainer(config(tmp_path / "b", **kw), net(), train, None, labels, model=face_model)
    first.train(until=4)  # interrupted one step after its checkpoint at step 3 (mid-epoch)
    resumed = Trainer(config(tmp_path / "b", **kw), net(seed=99), train, None, labels, model=face_model)
    assert resumed.step == 3 and resumed.resumed_from == 3
    resumed.train()
    log = [json.loads(line) for line in (tmp_path / "b" / "run" / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["event"] == "train"] == [1, 2, 3, 4, 5]  # the lost step 4 logged once
    assert [h["total"] for h in resumed.history] == [h["total"] for h in list(whole.history)[3:]]
    assert [h["lr"] for h in resumed.history] == [h["lr"] for h in list(whole.history)[3:]]
    for a, b in zip(whole.net.state_dict().values(), resumed.net.state_dict().values()):
        assert torch.equal(a, b)
    _, extra = load_checkpoint(tmp_path / "b" / "run" / "last.pt")
    assert extra["step"] == 5 and extra["train_config"]["steps"] == 5 and "optimizer" in extra and extra["rng"]
    # which learned albedo model the net's δ outputs belong to (the pipeline refuses another's)
    assert extra["train_config"]["albedo_sha256"] == learned_albedo_sha256()


def test_lr_warms_up_then_decays_to_the_final_fraction():
    f = [lr_factor(s, 10, 110, 0.01) for s in range(110)]
    assert f[0] == pytest.approx(0.1) and f[9] == 1.0 and f[10] == 1.0
    assert f[-1] == pytest.approx(0.01) and all(a >= b for a, b in zip(f[10:], f[11:]))


def test_data_workers_default_to_four_at_most_the_cpus_of_the_process(monkeypatch):
    from facerecon.training.trainer import data_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert data_workers(None) == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert data_workers(None) == 4
    assert data_workers(7) == 7 and data_workers(0) == 0
    assert data_workers(None, cuda=True) == 0 and data_workers(3, cuda=True) == 3  # CUDA: a thread reads ahead
    with pytest.raises(ValueError):
        data_workers(-1)


def test_prefetch_keeps_order_raises_errors_and_stops_its_thread():
    import itertools
    import threading

    from facerecon.training.data import prefetch

    assert list(prefetch(iter(range(9)), depth=2)) == list(range(9))

    def failing():
        yield 1
        raise RuntimeError("shard 3 is gone")

    stream = prefetch(failing())
    assert next(stream) == 1
    with pytest.raises(RuntimeError, match="shard 3 is gone"):
        next(stream)
    read = []

    def endless():
        for i in itertools.count():
            read.append(i)
            yield i

    stream = prefetch(endless(), depth=2)
    assert [next(stream), next(stream)] == [0, 1]
    stream.close()
    assert not [t for t in threading.enumerate() if t.name == "facerecon-prefetch"]
    assert len(read) <= 5  # two handed out, at most depth queued and one being read


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "GLOO_SOCKET_IFNAME": "lo"}


def test_a_run_killed_after_a_checkpoint_resumes_to_the_configured_step(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "facerecon.cli", "--threads", "1", "train", "-o", str(out),
           "--self-supervised", "0", "--synthetic", "1", "--net-trunk", "resnet18", "--net-input-size", str(SIZE),
           "--batch-size", "2", "--steps", "8", "--checkpoint-every", "4", "--validate-every", "0",
           "--synthetic-background", "grey", "--num-workers", "0", "--device", "cpu", "--no-progress",
           "--log-every", "1", "--warmup", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while not (out / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read().decode()[-2000:]
    _, extra = load_checkpoint(out / "last.pt")
    killed_at = extra["step"]
    assert 4 <= killed_at < 8
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no half-written checkpoint

    done = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"resumed from {out / 'last.pt'} at step {killed_at}" in done.stdout
    _, extra = load_checkpoint(out / "last.pt")
    assert extra["step"] == 8
    log = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if r["event"] == "train"]
    assert steps == list(range(1, 9))  # lines of the killed run past its checkpoint were dropped


DDP_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from facerecon.facemodel import load_face_model
from test_training import Faces, config, net
from facerecon.training import Trainer
from pathlib import Path
model = load_face_model("fit")
data = Faces(model, [0, 0, 1, 1, 2, 2, 3, 3], seed=21)
cfg = config(Path({tmp!r}), steps=3, batch_size=2, checkpoint_every=1)
trainer = Trainer(cfg, net(), data, None, None, model=model)
trainer.train()
rank = trainer.dist.rank
torch.save({{"params": [p.detach().clone() for p in trainer.net.parameters()], "read": data.read,
            "world": trainer.dist.world}}, Path({tmp!r}) / f"rank{{rank}}.pt")
trainer.close()
"""


def _torchrun_two(script_text: str, tmp_path: Path) -> tuple[dict, dict]:
    """Run a training script under torchrun with 2 CPU processes (gloo); each saves rank{r}.pt."""
    script = tmp_path / "ddp.py"
    script.write_text(script_text.format(tests=str(ROOT / "tests"), tmp=str(tmp_path)))
    done = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", str(script)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tuple(torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))


def test_ddp_keeps_two_processes_in_step_on_disjoint_data(tmp_path):
    r0, r1 = _torchrun_two(DDP_SCRIPT, tmp_path)
    assert r0["world"] == r1["world"] == 2
    for a, b in zip(r0["params"], r1["params"]):
        assert torch.equal(a, b)
    # epoch 0 = steps 1-2: each process read its own half of the 8 photos
    assert sorted(r0["read"][:4] + r1["read"][:4]) == list(range(8))
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    saves = [(r["step"], r["rank"]) for r in records if r["event"] == "checkpoint"]
    assert saves == [(1, 0), (2, 0), (3, 0)]  # one writer
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "last.pt", "tb", "train.jsonl"]


DDP_PEOPLE_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from facerecon.facemodel import load_face_model
from test_training import People, config, net
from facerecon.training import Trainer
from pathlib import Path
model = load_face_model("fit")
data = People(model, [p for p in range(6) for _ in (0, 1)] + [6, 7, 8, 9], seed=23)
cfg = config(Path({tmp!r}), steps=2, batch_size=4, photos_per_person=2, identity_consistency=0.5,
             self_supervised=0.0, checkpoint_every=1)
trainer = Trainer(cfg, net(), data, None, None, model=model)
trainer.train()
torch.save({{"params": [p.detach().clone() for p in trainer.net.parameters()], "read": data.read,
            "history": list(trainer.history)}}, Path({tmp!r}) / f"rank{{trainer.dist.rank}}.pt")
trainer.close()
"""


def test_ddp_deals_the_k_per_person_batches_to_the_processes_in_turn(tmp_path):
    """--photos-per-person under torchrun: the epoch's person batches (the same list on every
    process) alternate between the two ranks, so a person's run stays in one process's batch, no
    photo is read twice, and the weights stay equal."""
    from facerecon.training.data import person_batches

    r0, r1 = _torchrun_two(DDP_PEOPLE_SCRIPT, tmp_path)
    for a, b in zip(r0["params"], r1["params"]):
        assert torch.equal(a, b)
    people = [p for p in range(6) for _ in (0, 1)] + [6, 7, 8, 9]
    batches = person_batches(people, 4, 2, seed=TrainConfig().seed * 1_000_003)  # epoch 0: 4 batches
    assert len(batches) == 4
    # two steps: rank 0 reads batches 0 and 2, rank 1 batches 1 and 3 (each in its loader's order)
    for read, mine in ((r0["read"], (0, 2)), (r1["read"], (1, 3))):
        assert [sorted(read[:4]), sorted(read[4:])] == [sorted(batches[k]) for k in mine]
    for batch in batches:  # a person's run of two is never split between the processes
        persons = [people[i] for i in batch]
        assert all(persons.count(p) == 2 for p in persons if p < 6), persons
    assert any(h["identity/spread_mm"] > 0.0 for h in r0["history"] + r1["history"])


def test_tensorboard_gets_scalars_per_term_and_the_image_grid(data, face_model, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train, val, labels = data
    trainer = Trainer(config(tmp_path, steps=2, validate_every=2, distill=1.0), net(), train, val, labels,
                      model=face_model)
    trainer.train()
    trainer.close()
    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/total", "train/lr", "train/grad_norm", "train/self_supervised/photo",
            "train/self_supervised/landmark", "train/distill/vertices", "val/total", "val/photo",
            "val/landmark_px", "val/distill/vertices"} <= scalars
    assert [e.step for e in events.Scalars("train/total")] == [1, 2]
    assert events.Tags()["images"] == ["val/photo|render|overlay"]


def test_without_tensorboard_training_warns_and_goes_on(data, face_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    trainer = Trainer(config(tmp_path, steps=1, batch_size=2), net(), data[0], None, None, model=face_model)
    with pytest.warns(UserWarning, match="tensorboard is not installed"):
        trainer.train()
    assert trainer.step == 1 and not (tmp_path / "run" / "tb").exists()


def test_validation_scores_the_held_out_people_only(data, face_model, tmp_path):
    train, val, labels = data
    trainer = Trainer(config(tmp_path, steps=2, batch_size=2), net(), train, val, None, model=face_model)
    train.read.clear()
    val.read.clear()
    trainer.train()
    assert val.read == [] and train.read  # training reads no validation photo
    metrics = trainer.validate()
    assert val.read == [0, 1] and len(train.read) == 4  # validation reads every validation photo, no other
    assert metrics["val/images"] == 2 and metrics["val/people"] == 2
    assert metrics["val/landmark_px"] > 0 and {"val/photo", "val/coef", "val/texture"} <= set(metrics)
    # a validation set that holds trained people is refused
    leaky = Trainer(config(tmp_path / "leak", steps=1, batch_size=2), net(), train, train, None, model=face_model)
    leaky.train()
    with pytest.raises(ValueError, match="also trained on"):
        leaky.validate()


def test_cli_help_lists_the_config(capsys):
    from facerecon.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--self-supervised" in text and "--net-trunk" in text and "--loss-photo" in text and "-o OUT" in text


def test_cli_trains_on_prepared_shards_and_validates_on_their_val_people(tmp_path):
    pytest.importorskip("facerecon.data.shards")
    from facerecon.cli import main
    from tests.conftest import need_shared

    lfw = need_shared("faces", "lfw")
    src = tmp_path / "photos"
    for person in sorted(p for p in lfw.iterdir() if p.is_dir())[:6]:
        (src / person.name).mkdir(parents=True)
        photo = sorted(person.glob("*.jpg"))[0]
        (src / person.name / photo.name).symlink_to(photo)
    shards, out = tmp_path / "shards", tmp_path / "run"
    assert main(["data", "prepare", str(src), "-o", str(shards), "--val-fraction", "0.5", "--quiet"]) == 0
    records = [json.loads(line) for line in (shards / "records.jsonl").read_text().splitlines()]
    val = [r for r in records if r["split"] == "val"]
    assert 0 < len(val) < len(records)
    assert main(["--threads", "1", "train", "--data", str(shards), "-o", str(out), "--net-trunk", "resnet18",
                 "--net-input-size", str(SIZE), "--batch-size", "2", "--steps", "1", "--validate-every", "1",
                 "--num-workers", "0", "--device", "cpu", "--no-perceptual", "--no-progress"]) == 0
    got = [r for r in map(json.loads, (out / "train.jsonl").read_text().splitlines()) if r["event"] == "val"][-1]
    assert got["val/images"] == len(val) and got["val/people"] == len({r["person"] for r in val})


def test_the_distillation_shape_term_ignores_pose_and_measures_the_unposed_face(face_model):
    from facerecon.forward import ForwardModel
    from facerecon.params import FaceParams
    from facerecon.training.config import LabelWeights
    from facerecon.training.objectives import label_loss, vertex_subset

    forward = ForwardModel(face_model)
    torch.manual_seed(3)
    base = FaceParams.zeros(2, face_model.n_id, face_model.n_exp, face_model.n_tex)
    base.trans[:, 2] = -1000.0
    base.alpha.normal_(0, 0.5)
    posed = base.map(lambda t: t.clone())
    posed.angles[:, 1] = 0.2
    posed.trans[:, 0] = 15.0
    reshaped = base.map(lambda t: t.clone())
    reshaped.alpha[1] += 0.7
    ids = vertex_subset(face_model.n_vertices, 500)
    lmk = face_model.landmark_idx
    only_shape = LabelWeights(vertices=0.0, shape=1.0, landmarks=0.0, color=0.0)
    with torch.no_grad():
        out = {k: forward(p, render=False) for k, p in (("base", base), ("posed", posed), ("reshaped", reshaped))}
        moved = label_loss(out["posed"], out["base"], lmk, ids, only_shape)
        changed = label_loss(out["reshaped"], out["base"], lmk, ids, only_shape)
        # the same face posed elsewhere: far in camera space, no shape difference
        assert float(moved.vertices.min()) > 10.0
        assert float(moved.shape.abs().max()) < 1e-3 and float(moved.total.abs().max()) < 1e-3
        # another identity: the mean distance of the model's own vertices, computed apart
        a = face_model.shape(base.alpha[1:]).numpy()[0][ids.numpy()]
        b = face_model.shape(reshaped.alpha[1:]).numpy()[0][ids.numpy()]
    want = float(np.linalg.norm(a - b, axis=1).mean())
    assert float(changed.shape[0]) < 1e-3
    assert float(changed.shape[1]) == pytest.approx(want, rel=1e-4) and want > 0.5
    assert float(changed.total[1]) == pytest.approx(want, rel=1e-4)


# --- batches of K photos per person and the identity-consistency term ----------------------------
def test_person_batches_keep_a_persons_photos_together_and_use_each_photo_once():
    from facerecon.training.data import person_batches

    # people 0 and 1 have 5 photos each, ten others one each: 20 photos, 5 batches of 4
    people = [0] * 5 + [1] * 5 + list(range(10, 20))
    batches = person_batches(people, batch_size=4, group=2, seed=3)
    flat = [i for b in batches for i in b]
    assert all(len(b) == 4 for b in batches) and len(flat) == len(set(flat))
    assert len(flat) >= 16  # at most one incomplete batch is dropped
    # runs of two: 2 per person (the fifth photo runs alone), each run inside one batch
    pairs = sum(sum(1 for i in b if people[i] == p) // 2 for b in batches for p in (0, 1))
    assert pairs == 4
    assert person_batches(people, 4, 2, seed=3) == batches and person_batches(people, 4, 2, seed=4) != batches
    # K = 1: a seeded permutation cut into batches, all 20 photos
    plain = person_batches(people, 4, 1, seed=3)
    assert sorted(i for b in plain for i in b) == list(range(20))
    with pytest.raises(ValueError, match="do not fit"):
        person_batches(people, 4, 5, seed=0)


def test_identity_spread_is_the_distance_from_the_persons_mean_shape():
    from facerecon.training.objectives import identity_spread

    shapes = torch.zeros(4, 3, 3)
    shapes[1, :, 0] = 2.0        # person 0's two shapes 2 mm apart along x: each 1 mm from their mean
    shapes[2, :, 1] = 5.0        # person 1 alone in the batch: no term
    shapes[3, 0, 2] = 3.0        # person 0's third shape: one vertex 3 mm up
    person = torch.tensor([0, 0, 1, 0])
    spread, grouped = identity_spread(shapes, person)
    # person 0's mean: x 2/3 on every vertex, z 1 on vertex 0
    mean = np.zeros((3, 3))
    mean[:, 0] = 2 / 3
    mean[0, 2] = 1.0
    want = [float(np.linalg.norm(shapes[i].numpy() - mean, axis=1).mean()) for i in (0, 1, 3)]
    assert grouped.tolist() == [True, True, False, True]
    assert spread[[0, 1, 3]].tolist() == pytest.approx(want, rel=1e-5)
    assert float(spread[2]) == 0.0


class People(Faces):
    """Faces that list their people as shard records do (what K-per-person batches need)."""

    def __init__(self, model, people, seed):
        super().__init__(model, people, seed)
        from types import SimpleNamespace

        self.records = [SimpleNamespace(person=p, key=f"s{seed}/{i}") for i, p in enumerate(people)]


@pytest.fixture(scope="module")
def people_data(face_model):
    torch.set_num_threads(1)
    return People(face_model, [0, 0, 1, 1, 2, 2, 3, 3], seed=21)


def test_identity_consistency_pulls_a_persons_shapes_together(people_data, face_model, tmp_path):
    cfg = config(tmp_path, self_supervised=0.0, identity_consistency=1.0, photos_per_person=2, steps=12)
    start = net()
    torch.nn.init.normal_(start.head.weight, std=0.05)  # not the mean face for every photo: spread to remove
    trainer = Trainer(cfg, start, people_data, None, model=face_model)
    trainer.train()
    spread = [h["identity/spread_mm"] for h in trainer.history]
    assert all(h["identity/grouped"] == 1.0 for h in trainer.history)  # every photo has its pair
    # the steps' spreads are noisy (one batch each): the last four against the first four, which
    # fell to 0.36 and 0.42 of it in two runs on slightly different renders (pixel frame moved ½ px)
    assert sum(spread[-4:]) < 0.5 * sum(spread[:4]), spread


def test_batches_of_k_per_person_mix_by_weight_and_resume_exactly(people_data, face_model, tmp_path):
    kw = dict(steps=5, batch_size=4, checkpoint_every=3, identity_consistency=0.5, photos_per_person=2, warmup=2)
    whole = Trainer(config(tmp_path / "a", **kw), net(), people_data, None, model=face_model)
    people_data.read.clear()
    whole.train()
    read = list(people_data.read)
    for k in range(0, len(read), 4):  # each batch of 4: two people, two photos each
        persons = [people_data.items[i]["person"] for i in read[k:k + 4]]
        assert sorted(persons.count(p) for p in set(persons)) == [2, 2], persons
    h = whole.history[-1]
    assert h["total"] == pytest.approx(h["self_supervised/total"] + 0.5 * h["identity/spread_mm"], rel=1e-5)
    first = Trainer(config(tmp_path / "b", **kw), net(), people_data, None, model=face_model)
    first.train(until=4)  # interrupted after its checkpoint at step 3, in the second epoch
    resumed = Trainer(config(tmp_path / "b", **kw), net(seed=99), people_data, None, model=face_model)
    assert resumed.step == 3
    resumed.train()
    assert [h["total"] for h in resumed.history] == [h["total"] for h in list(whole.history)[3:]]
    for a, b in zip(whole.net.state_dict().values(), resumed.net.state_dict().values()):
        assert torch.equal(a, b)


def test_identity_consistency_needs_k_per_person_batches(tmp_path):
    with pytest.raises(ValueError, match="photos-per-person 2 or more"):
        config(tmp_path, identity_consistency=1.0).validate()
    with pytest.raises(ValueError, match="between 1 and --batch-size"):
        config(tmp_path, photos_per_person=8, batch_size=4).validate()


def test_identity_auc_ranks_same_person_pairs_against_the_others():
    from facerecon.training.trainer import identity_auc

    # person 0: a, b; person 1: c, d. Cosines: same (a,b) 0, (c,d) 0.385; different (a,c) 0.981,
    # (a,d) 0.196, (b,c) 0.196, (b,d) 0.981: same above different in 2 of the 8 comparisons
    alphas = [np.array(v) for v in ([1.0, 0.0], [0.0, 1.0], [1.0, 0.2], [0.2, 1.0])]
    assert identity_auc([0, 0, 1, 1], alphas) == pytest.approx(0.25)
    assert identity_auc([0, 1, 0, 1], alphas) == pytest.approx(1.0)  # (a,c) and (b,d) the same person
    assert identity_auc([0, 1, 2, 3], alphas) is None  # no same-person pair


def test_validation_reports_the_held_out_peoples_identity_auc(people_data, face_model, tmp_path):
    val = People(face_model, [5, 5, 6, 6, 7, 7], seed=22)
    start = net()
    torch.nn.init.normal_(start.head.weight, std=0.05)
    trainer = Trainer(config(tmp_path, steps=1, validate_every=1), start, people_data, val, model=face_model)
    metrics = trainer.validate()
    from facerecon.params import FaceParams
    from facerecon.training.trainer import identity_auc

    trainer.net.eval()
    with torch.no_grad():
        vec = trainer.net(torch.stack([val.items[i]["image"] for i in range(6)]))
    alpha = FaceParams.from_vector(vec, trainer.sizes).alpha.numpy()
    assert metrics["val/identity_auc"] == pytest.approx(identity_auc([5, 5, 6, 6, 7, 7], list(alpha)), abs=1e-6)


# --- a many-photo teacher: each label's identity replaced by its person's mean ----------------
def test_person_mean_labels_average_identity_and_albedo_only_within_a_person():
    from facerecon.params import FaceParams
    from facerecon.training.data import LabelTable

    sizes = {"alpha": 2, "beta": 1, "delta": 2, "gamma": 9, "angles": 3, "trans": 3}
    def label(a, b, d):
        p = FaceParams.zeros(1, 2, 1, 2)
        p.alpha[:] = torch.tensor(a); p.beta[:] = b; p.delta[:] = torch.tensor(d)
        return p.to_vector()[0].numpy(), 0.1
    labels = {"x1": label([1.0, 0.0], 0.5, [0.2, 0.0]), "x2": label([3.0, 2.0], -0.5, [0.0, 0.4]),
              "y": label([7.0, 7.0], 0.25, [1.0, 1.0]), "z": label([5.0, 5.0], 0.0, [0.0, 0.0])}
    table = LabelTable(labels, sizes)
    assert table.average_identity({"x1": "X", "x2": "X", "y": "Y"}) == 2  # z: no person listed
    got, found = table.lookup(["x1", "x2", "y", "z"])
    assert found.tolist() == [1, 1, 1, 1]
    assert got.alpha.tolist() == [[2.0, 1.0], [2.0, 1.0], [7.0, 7.0], [5.0, 5.0]]
    assert got.delta.flatten().tolist() == pytest.approx([0.1, 0.2, 0.1, 0.2, 1.0, 1.0, 0.0, 0.0])
    assert got.beta[:, 0].tolist() == [0.5, -0.5, 0.25, 0.0]  # expression stays each photo's


def test_training_with_label_person_mean_distils_the_persons_mean(people_data, face_model, tmp_path):
    cfg = config(tmp_path, self_supervised=0.0, distill=1.0, label_person_mean=True, steps=1)
    trainer = Trainer(cfg, net(), people_data, None, people_data.labels, model=face_model)
    keys = [item["key"] for item in people_data.items]
    got, _ = trainer.labels.lookup(keys)
    own = np.stack([people_data.labels[k][0] for k in keys])
    from facerecon.params import FaceParams

    own = FaceParams.from_vector(torch.as_tensor(own), trainer.sizes)
    for i in range(0, 8, 2):  # photos 2i, 2i+1: one person
        want = (own.alpha[i] + own.alpha[i + 1]) / 2
        assert torch.allclose(got.alpha[i], want, atol=1e-5) and torch.allclose(got.alpha[i + 1], want, atol=1e-5)
        assert torch.equal(got.angles[i], own.angles[i])
    assert not torch.allclose(own.alpha[0], own.alpha[1])
    with pytest.raises(ValueError, match="lists each photo's key and person"):
        Trainer(cfg, net(), Faces(face_model, [0, 0], seed=3), None, people_data.labels, model=face_model)


def test_the_distillation_identity_term_is_the_coefficient_distance(face_model):
    """``LabelWeights.identity``: ‖α − α_label‖ per photo, whatever the pose; 0 for other
    coefficients; only when the target is given as coefficients."""
    from facerecon.forward import ForwardModel
    from facerecon.params import FaceParams
    from facerecon.training.config import LabelWeights
    from facerecon.training.objectives import label_loss, vertex_subset

    forward = ForwardModel(face_model)
    base = FaceParams.zeros(2, face_model.n_id, face_model.n_exp, face_model.n_tex)
    base.trans[:, 2] = -1000.0
    other = base.map(lambda t: t.clone())
    other.alpha[0, 3] = 3.0
    other.alpha[0, 7] = -4.0            # distance 5 (a 3-4-5 triangle)
    other.angles[1, 1] = 0.3            # photo 1: pose and albedo only
    other.delta[1, 0] = 2.0
    ids = vertex_subset(face_model.n_vertices, 300)
    only_identity = LabelWeights(vertices=0.0, shape=0.0, landmarks=0.0, color=0.0, identity=2.0)
    with torch.no_grad():
        a, b = forward(other, render=False), forward(base, render=False)
        got = label_loss(a, b, face_model.landmark_idx, ids, only_identity, (other.alpha, base.alpha))
        without = label_loss(a, b, face_model.landmark_idx, ids, only_identity)
    assert got.identity.tolist() == pytest.approx([5.0, 0.0], abs=1e-3)
    assert got.total.tolist() == pytest.approx([10.0, 0.0], abs=2e-3)
    assert without.identity.tolist() == [0.0, 0.0] and without.total.tolist() == [0.0, 0.0]
    # the trainer's path: labels come as coefficients, so the term is on
    from facerecon.losses import HybridLoss, LossWeights
    from facerecon.training.objectives import Objectives

    obj = Objectives(forward, HybridLoss(LossWeights(), torch.ones(face_model.n_vertices, dtype=torch.bool)),
                     only_identity)
    with torch.no_grad():
        assert obj.geometry(other, base).total.tolist() == pytest.approx([10.0, 0.0], abs=2e-3)


def test_synthetic_faces_seen_from_close_are_scored_where_the_networks_camera_sees_the_crop(face_model, tmp_path):
    """--synthetic-distance: a face rendered 400 mm away through a short focal length is compared
    with the prediction placed for the network's own camera. A prediction that covers the same
    crop pixels (its inner landmarks centred within a pixel of the rendered ones) scores 0 on posed vertices; the
    truth as rendered, 400 mm away, is far from it. With --synthetic-skins the colour term leaves
    the total (the skin is a photo's, δ = 0 says nothing about it)."""
    from facerecon.params import FaceParams
    from facerecon.render import Camera, project, transform
    from facerecon.training.config import LabelWeights

    assert face_model.region == "fit"  # the synthetic faces' model: batch["verts"] are its vertices
    weights = LabelWeights(vertices=1.0, landmarks=0.5, color=2.0)
    cfg = config(tmp_path, self_supervised=0.0, synthetic=1.0, synthetic_distance=(400.0, 400.0), label=weights)
    trainer = Trainer(cfg, net(), None, None, None, model=face_model)
    batch = next(trainer.synthetic_batches(0))
    truth, f_net = batch["params"], float(trainer.camera.focal)
    assert bool((batch["focal"] < 0.5 * f_net).all())
    seen = FaceParams(truth.alpha, truth.beta, truth.delta, truth.gamma, truth.angles,
                      torch.cat([truth.trans[:, :2], truth.trans[:, 2:] * (f_net / batch["focal"])[:, None]], 1))
    lmk = transform(face_model.landmarks(batch["verts"]), seen.angles, seen.trans)
    xy, _ = project(lmk, Camera(focal=f_net, size=SIZE))
    # the same crop, for the network (up to perspective: 400 mm shows the jaw smaller than 1.2 m)
    assert float((xy - batch["landmarks2d"]).norm(dim=-1).mean()) < 2.0
    assert float((xy[:, 17:].mean(1) - batch["landmarks2d"][:, 17:].mean(1)).norm(dim=-1).max()) < 1.0
    g = trainer._synthetic_terms(seen, batch)
    assert float(g.vertices.max()) < 1e-2 and float(g.total.max()) < 1e-2
    as_rendered = trainer._synthetic_terms(truth, batch)
    assert float(as_rendered.vertices.min()) > 300.0  # 400 mm against ~1.2 m
    greyer = FaceParams(seen.alpha, seen.beta, seen.delta + 1.0, seen.gamma, seen.angles, seen.trans)
    painted = config(tmp_path, self_supervised=0.0, synthetic=1.0, synthetic_distance=(400.0, 400.0),
                     label=weights, synthetic_skins=str(tmp_path / "skins"))
    plain_terms = trainer._synthetic_terms(greyer, batch)
    skin_terms = Trainer(painted, net(), None, None, None, model=face_model)._synthetic_terms(greyer, batch)
    assert float(plain_terms.color.min()) > 0.01
    assert torch.allclose(plain_terms.total - 2.0 * plain_terms.color, skin_terms.total, atol=1e-5)


def test_cli_takes_a_synthetic_distance_range_and_refuses_a_bad_one(tmp_path):
    """--synthetic-distance MIN MAX becomes a tuple in the config; MIN below 100 mm is refused."""
    import argparse

    from facerecon.config import add_arguments, from_args

    p = argparse.ArgumentParser()
    add_arguments(p, TrainConfig)
    cfg = from_args(TrainConfig, p.parse_args(["--synthetic-distance", "300", "3000", "--synthetic", "1"]))
    assert cfg.synthetic_distance == (300.0, 3000.0)
    cfg.validate()
    assert from_args(TrainConfig, p.parse_args([])).synthetic_distance is None
    with pytest.raises(ValueError, match="synthetic-distance"):
        from_args(TrainConfig, p.parse_args(["--synthetic-distance", "50", "3000"])).validate()


def test_synthetic_target_far_asks_a_close_face_for_what_the_network_says_from_afar(face_model, tmp_path):
    """--synthetic-target far: each synthetic batch also carries the same faces rendered through
    the network's camera from the usual distance (identical to the plain stream's samples); their
    predictions are the target, without gradient, so only the close-up prediction learns."""
    from facerecon.training.config import LabelWeights

    cfg = config(tmp_path, self_supervised=0.0, synthetic=1.0, synthetic_distance=(350.0, 450.0),
                 synthetic_target="far", label=LabelWeights(vertices=1.0, landmarks=0.5, color=2.0, identity=1.0))
    trainer = Trainer(cfg, net(), None, None, None, model=face_model)
    batch = next(trainer.synthetic_batches(0))
    plain = next(generate_batches(cfg.batch_size, cfg.seed, replace_distance(trainer.synthetic_config()),
                                  batch_size=cfg.batch_size, model=trainer.synthetic_model()))
    assert torch.equal(batch["far_image"], plain["image"]) and not torch.equal(batch["image"], plain["image"])
    assert torch.equal(batch["far_landmarks2d"], plain["landmarks2d"])
    m = cfg.batch_size
    close = torch.randn(m, sum(trainer.sizes.values())) * 0.3
    same = torch.cat([close, close]).requires_grad_()
    assert float(trainer.losses(same, None, batch, 0)["synthetic/total"].detach()) < 1e-2
    moved = torch.cat([close, close + 0.5 * torch.randn_like(close)]).requires_grad_()
    logs = trainer.losses(moved, None, batch, 0)
    assert float(logs["synthetic/identity"].detach()) > 1.0
    logs["total"].backward()
    assert float(moved.grad[:m].abs().sum()) > 0 and float(moved.grad[m:].abs().sum()) == 0.0
    with pytest.raises(ValueError, match="synthetic-distance"):
        config(tmp_path, synthetic=1.0, synthetic_target="far").validate()


def replace_distance(cfg: SynthConfig) -> SynthConfig:
    """The same synthetic config without a distance range."""
    from dataclasses import replace

    return replace(cfg, distance_mm=None)
