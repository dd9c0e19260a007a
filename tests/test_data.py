"""Training data: shards hold exactly the Preparer's crops, people never straddle train and val,
bad photos are recorded and skipped, runs resume without duplicates, labels decode to the
Fitter's output, and ``--shard i/n`` jobs cover the work exactly once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from facerecon.cli import main
from facerecon.data.labels import chunk_path, label_shards, make_fitter, read_label_sizes, read_labels
from facerecon.data.prepare import collect_photos, prepare_shards
from facerecon.data.shards import ShardDataset, open_npz, read_failures, read_meta, read_records, shard_path
from facerecon.data.split import parse_shard_spec, split_of, take_shard
from facerecon.fitting.engine import FitConfig
from facerecon.params import FaceParams
from tests.conftest import need_shared

#: Three people × two photos. With val fraction 0.5 their person hashes put Adam_Sandler in val
#: and the others in train, while hashing each photo instead would split Aaron_Peirsol's two.
PEOPLE = ("Aaron_Peirsol", "Abdoulaye_Wade", "Adam_Sandler")
FAST_FIT = dict(landmark_steps=5, steps=2, perceptual=False)
FAST_FLAGS = ["--landmark-steps", "5", "--steps", "2", "--no-perceptual", "--quiet"]


def photo_tree(root: Path) -> Path:
    """``root/photos/<Person>/<Person>_000{1,2}.jpg`` (links to the shared LFW photos) plus an
    unreadable ``root/photos/broken.jpg``; returns ``root/photos``."""
    photos = root / "photos"
    for person in PEOPLE:
        (photos / person).mkdir(parents=True, exist_ok=True)
        for i in (1, 2):
            name = f"{person}_000{i}.jpg"
            (photos / person / name).symlink_to(need_shared("faces", "lfw", person, name))
    (photos / "broken.jpg").write_text("not an image")
    return photos


class CountingPreparer:
    """Delegates to a real Preparer; counts calls and can raise on the n-th (an interrupted run)."""

    def __init__(self, preparer, interrupt_at: int | None = None) -> None:
        self.preparer, self.interrupt_at, self.calls = preparer, interrupt_at, 0

    def prepare_source(self, source, all_faces: bool = False):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return self.preparer.prepare_source(source, all_faces=all_faces)


@pytest.fixture(scope="module")
def preparer():
    from facerecon.imageio import Preparer

    need_shared("faces", "lfw")
    return Preparer()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, preparer):
    """One full prepare run: (photos folder, shards folder, its PrepareResult)."""
    root = tmp_path_factory.mktemp("data")
    photos = photo_tree(root)
    shards = root / "shards"
    result = prepare_shards([photos], shards, shard_size=4, val_fraction=0.5, preparer=preparer, progress=False)
    return photos, shards, result


def all_keys() -> list[str]:
    return [f"{p}/{p}_000{i}.jpg" for p in PEOPLE for i in (1, 2)]


# --- shards ----------------------------------------------------------------------------------------
def test_shards_hold_the_preparers_crops(prepared, preparer):
    photos, shards, result = prepared
    records = read_records(shards)
    assert [r.key for r in records] == all_keys()
    assert [(r.shard, r.row) for r in records] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]
    assert result.added == 6 and result.total == 6
    meta = read_meta(shards)
    assert (meta["crop_size"], meta["val_fraction"], meta["count"], meta["shards"]) == (224, 0.5, 6, 2)
    arrays = {s: open_npz(shard_path(shards, s)) for s in (0, 1)}
    assert arrays[0]["images"].shape == (4, 224, 224, 3) and arrays[0]["images"].dtype == np.uint8
    assert arrays[1]["landmarks"].shape == (2, 68, 2) and arrays[1]["landmarks"].dtype == np.float32
    assert arrays[1]["attention"].shape == (2, 224, 224) and arrays[1]["attention"].dtype == np.uint8
    for r in records:
        assert r.source == os.path.abspath(photos / r.key)
        face = preparer.prepare(r.source)[0]
        a = arrays[r.shard]
        np.testing.assert_array_equal(a["images"][r.row], face.crop)
        np.testing.assert_array_equal(a["landmarks"][r.row], face.landmarks_crop.astype(np.float32))
        att = a["attention"][r.row].astype(np.float64) / 255.0
        assert np.abs(att - face.attention).max() <= 0.5 / 255 + 1e-6
        np.testing.assert_allclose(r.M, face.M, atol=1e-5)


def test_people_never_split_over_train_and_val(prepared, tmp_path):
    _, shards, _ = prepared
    records = read_records(shards)
    side: dict[str, set[str]] = {}
    for r in records:
        assert r.person == r.key.split("/")[0]  # LFW: the person's folder
        side.setdefault(r.person, set()).add(r.split)
    assert all(len(s) == 1 for s in side.values()), side
    assert {r.split for r in records} == {"train", "val"}
    assert all(r.split == split_of(r.person, 0.5) for r in records)
    # a flat folder (300-W, UTKFace): every photo is its own person, unless a rule says otherwise
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("b.jpg", "a.png", ".hidden.jpg", "notes.txt"):
        (flat / name).write_bytes(b"x")
    assert [(p.key, p.person) for p in collect_photos([flat])] == [("a.png", "a.png"), ("b.jpg", "b.jpg")]
    assert {p.person for p in collect_photos([flat], person="folder")} == {"flat"}


def test_failures_are_recorded_and_the_run_goes_on(prepared):
    photos, shards, result = prepared
    failures = read_failures(shards)
    assert [f.key for f in failures] == ["broken.jpg"]
    assert failures[0].source == os.path.abspath(photos / "broken.jpg")
    assert "broken.jpg" in failures[0].reason and "\n" not in failures[0].reason
    assert [f.key for f in result.failed] == ["broken.jpg"]
    assert len(read_records(shards)) == 6  # the photos after it were prepared


def test_resume_after_limit_and_interrupt(prepared, preparer, tmp_path):
    photos, full, _ = prepared
    out = tmp_path / "shards"
    first = prepare_shards([photos], out, shard_size=4, val_fraction=0.5, limit=3, preparer=preparer,
                           progress=False)
    assert first.added == 3 and len(read_records(out)) == 3
    counting = CountingPreparer(preparer, interrupt_at=3)  # stops in the middle of the next run
    with pytest.raises(KeyboardInterrupt):
        prepare_shards([photos], out, shard_size=4, preparer=counting, progress=False)
    assert len(read_records(out)) == 5  # what was prepared before the interrupt was kept
    counting = CountingPreparer(preparer)
    again = prepare_shards([photos], out, shard_size=4, preparer=counting, progress=False)
    assert counting.calls == 2 and again.skipped == 5  # the last photo and broken.jpg only
    records = read_records(out)
    assert sorted(r.key for r in records) == sorted(all_keys())  # nothing twice, nothing lost
    assert [(r.shard, r.row) for r in records] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]
    assert [f.key for f in read_failures(out)] == ["broken.jpg"]
    ref = {r.key: r for r in read_records(full)}
    for r in records:  # the partial shard was continued, not rewritten with other rows
        want = ref[r.key]
        np.testing.assert_array_equal(open_npz(shard_path(out, r.shard))["images"][r.row],
                                      open_npz(shard_path(full, want.shard))["images"][want.row])
    before = (out / "records.jsonl").read_bytes()
    counting = CountingPreparer(preparer)
    assert prepare_shards([photos], out, preparer=counting, progress=False).added == 0
    assert counting.calls == 0 and (out / "records.jsonl").read_bytes() == before
    with pytest.raises(ValueError, match="val fraction"):
        prepare_shards([photos], out, val_fraction=0.2, preparer=preparer, progress=False)


def test_dataset_items_and_loader(prepared):
    _, shards, _ = prepared
    everything, train, val = (ShardDataset(shards, s) for s in ("all", "train", "val"))
    assert (len(everything), len(train), len(val)) == (6, 4, 2)
    assert everything.people == sorted(PEOPLE) == train.people == val.people
    assert set(train.keys).isdisjoint(val.keys) and sorted(train.keys + val.keys) == sorted(all_keys())
    item = val[1]
    assert set(item) == {"image", "landmarks", "attention", "person", "key"}
    assert item["image"].shape == (3, 224, 224) and item["image"].dtype == torch.float32
    assert item["landmarks"].shape == (68, 2) and item["landmarks"].dtype == torch.float32
    assert item["attention"].shape == (1, 224, 224) and item["attention"].dtype == torch.float32
    assert 0 <= float(item["image"].min()) and float(item["image"].max()) <= 1
    assert 0 <= float(item["attention"].min()) and float(item["attention"].max()) <= 1
    record, image, landmarks, attention = val.raw(1)
    assert item["key"] == record.key and val.people[item["person"]] == record.person
    np.testing.assert_array_equal(item["image"].permute(1, 2, 0).numpy() * 255, image.astype(np.float32))
    np.testing.assert_array_equal(item["landmarks"].numpy(), landmarks)
    with pytest.raises(ValueError, match="split"):
        ShardDataset(shards, "test")
    loader = torch.utils.data.DataLoader(everything, batch_size=4, num_workers=2, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    seen = {}
    for batch in loader:
        assert batch["image"].shape[1:] == (3, 224, 224)
        for key, person, lmk in zip(batch["key"], batch["person"].tolist(), batch["landmarks"]):
            seen[key] = person
            np.testing.assert_array_equal(lmk.numpy(), everything[everything.keys.index(key)]["landmarks"].numpy())
    assert seen == {k: everything.people.index(k.split("/")[0]) for k in all_keys()}


def test_uint8_items_become_the_float_items_on_the_device(prepared):
    """The trainer's loader hands over uint8 crops (a quarter of the bytes) and converts them
    where it trains: the result equals the float items exactly."""
    from facerecon.data.shards import photos_to_float

    _, shards, _ = prepared
    floats, raw = ShardDataset(shards, "all"), ShardDataset(shards, "all", uint8=True)
    item = raw[2]
    assert item["image"].dtype == item["attention"].dtype == torch.uint8
    assert item["image"].shape == (3, 224, 224) and item["attention"].shape == (1, 224, 224)
    batch = torch.utils.data.default_collate([raw[i] for i in range(3)])
    want = torch.utils.data.default_collate([floats[i] for i in range(3)])
    got = photos_to_float(batch, "cpu")
    for k in ("image", "landmarks", "attention"):
        assert got[k].dtype == torch.float32 and torch.equal(got[k], want[k]), k
    assert got["key"] == want["key"] and torch.equal(photos_to_float(want)["image"], want["image"])


def test_bench_fit_on_shards_needs_no_detector(prepared, capsys, monkeypatch):
    """``bench fit --shards`` times the fitter on stored crops: a GPU host without dlib."""
    import sys

    _, shards, _ = prepared
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib fails, as where it is not installed
    assert main(["bench", "fit", "--shards", str(shards), "--count", "3", "--batch", "1", "2", "--max-batches", "2",
                 "--json", "--landmark-steps", "2", "--steps", "1", "--no-perceptual"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == f"shards {shards}"
    assert [(r["batch"], r["batches_timed"], r["photos"]) for r in out["rows"]] == [(1, 2, 2), (2, 1, 2)]
    assert all(r["seconds_per_photo"] > 0 for r in out["rows"])
    assert main(["bench", "fit", "--shards", str(shards / "nothing"), "--json"]) == 2
    assert "nothing" in capsys.readouterr().err


# --- labels ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitter():
    return make_fitter(FitConfig(**FAST_FIT))


class CountFits:
    """Counts ``fitter.fit`` calls while installed."""

    def __init__(self, fitter, monkeypatch) -> None:
        self.calls = 0
        real = fitter.fit

        def fit(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(fitter, "fit", fit)


def test_labels_decode_to_the_fitters_output(prepared, fitter, tmp_path):
    _, shards, _ = prepared
    out = tmp_path / "labels"
    result = label_shards(shards, out, batch_size=2, limit=3, fitter=fitter, progress=False)
    assert (result.fitted, result.photos) == (2, 3)
    result = label_shards(shards, out, batch_size=2, limit=4, fitter=fitter, progress=False)
    assert (result.fitted, result.skipped) == (1, 1)  # the batch that has grown is fitted again
    labels = read_labels(out)
    ds = ShardDataset(shards, "all")
    assert sorted(labels) == sorted(ds.keys[:4])
    sizes = read_label_sizes(out)
    assert sizes == FaceParams.zeros(1).sizes()
    with np.load(chunk_path(out, 1)) as z:
        assert z["params"].dtype == np.float16 and z["loss"].dtype == np.float32
        assert z["keys"].tolist() == ds.keys[2:4]
    batch = torch.utils.data.default_collate([ds[2], ds[3]])
    fit = fitter.fit(batch["image"], batch["landmarks"], batch["attention"])
    want = fit.params.to_vector().numpy()
    for i, key in enumerate(ds.keys[2:4]):
        params, loss = labels[key]
        assert params.dtype == np.float32 and params.shape == want[i].shape
        np.testing.assert_allclose(params, want[i], rtol=1e-3, atol=1e-4)  # float16: 11 significant bits
        assert loss == pytest.approx(float(fit.losses.total[i]), rel=1e-6)
        back = FaceParams.from_vector(torch.from_numpy(params)[None], sizes)
        # the translation is kept in float32: depth ~1 m to the micrometre, not float16's 1 mm
        np.testing.assert_allclose(back.trans[0].numpy(), fit.params.trans[i].numpy(), rtol=1e-7, atol=1e-5)
    config = json.loads((out / "config.json").read_text())
    assert config["fit_config"]["steps"] == 2 and config["batch_size"] == 2


def test_label_jobs_resume_and_split(prepared, fitter, tmp_path, monkeypatch):
    _, shards, _ = prepared
    count = CountFits(fitter, monkeypatch)
    one = tmp_path / "one"
    label_shards(shards, one, batch_size=2, fitter=fitter, progress=False)
    assert count.calls == 3 and sorted(p.name for p in one.glob("labels-*.npz")) == [
        "labels-00000.npz", "labels-00001.npz", "labels-00002.npz"]
    # a second run fits nothing; a lost chunk is fitted again and only it
    mtimes = {p.name: p.stat().st_mtime_ns for p in one.glob("labels-*.npz")}
    assert label_shards(shards, one, batch_size=2, fitter=fitter, progress=False).skipped == 3
    assert count.calls == 3
    chunk_path(one, 1).unlink()
    assert label_shards(shards, one, batch_size=2, fitter=fitter, progress=False).fitted == 1
    assert count.calls == 4
    assert chunk_path(one, 0).stat().st_mtime_ns == mtimes["labels-00000.npz"]
    # two jobs (--shard 0/2 and 1/2) into one folder cover exactly what one job covers
    split = tmp_path / "split"
    a = label_shards(shards, split, batch_size=2, shard="0/2", fitter=fitter, progress=False)
    b = label_shards(shards, split, batch_size=2, shard=(1, 2), fitter=fitter, progress=False)
    assert (a.batches, b.batches) == (2, 1) and count.calls == 7
    whole, parts = read_labels(one), read_labels(split)
    assert sorted(parts) == sorted(whole) == sorted(all_keys())
    for key in whole:
        np.testing.assert_array_equal(parts[key][0], whole[key][0])
    # labels of another fit config are refused unless forced
    other = make_fitter(FitConfig(**{**FAST_FIT, "steps": 3}))
    chunk_path(split, 2).unlink()
    with pytest.raises(ValueError, match="steps: 2 -> 3"):
        label_shards(shards, split, batch_size=2, fitter=other, progress=False)
    with pytest.raises(ValueError, match="batch size"):
        label_shards(shards, split, batch_size=3, fitter=fitter, progress=False)
    label_shards(shards, split, batch_size=2, fitter=other, force=True, progress=False)
    assert json.loads((split / "config.json").read_text())["mixed_with"][0]["steps"] == 3


def test_labels_of_other_photos_are_never_overwritten(prepared, fitter, tmp_path):
    """Shards prepared again (a detector that finds more faces) put other photos in batch b: its
    existing chunk must stay, not be fitted over (the labels are hours of CPU)."""
    _, shards, _ = prepared
    out = tmp_path / "changed"
    label_shards(shards, out, batch_size=2, limit=2, fitter=fitter, progress=False)
    keys = list(np.load(chunk_path(out, 0))["keys"])
    z = dict(np.load(chunk_path(out, 0)))
    z["keys"] = np.array(["lfw/Someone_Else/Someone_Else_0001.jpg", keys[1]], dtype=str)
    np.savez(chunk_path(out, 0), **z)
    before = chunk_path(out, 0).read_bytes()
    with pytest.raises(ValueError, match="labels-00000.npz: holds labels of 1 photos that are not in batch 0"):
        label_shards(shards, out, batch_size=2, limit=4, fitter=fitter, progress=False)
    assert chunk_path(out, 0).read_bytes() == before and not chunk_path(out, 1).exists()


def test_labels_made_before_a_fit_option_existed_still_resume(prepared, fitter, tmp_path):
    """A FitConfig field added later defaults to the behaviour before it: its absence from an
    older config.json is no mismatch, while a stored value that differs still is."""
    _, shards, _ = prepared
    out = tmp_path / "old"
    label_shards(shards, out, batch_size=2, limit=2, fitter=fitter, progress=False)
    doc = json.loads((out / "config.json").read_text())
    del doc["fit_config"]["antialias"], doc["fit_config"]["weights"]["photo_robust"]
    (out / "config.json").write_text(json.dumps(doc))
    assert label_shards(shards, out, batch_size=2, limit=4, fitter=fitter, progress=False).fitted == 1
    doc["fit_config"]["antialias"] = True
    (out / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="antialias: True -> False"):
        label_shards(shards, out, batch_size=2, limit=6, fitter=fitter, progress=False)


def test_labels_with_a_prior_are_the_fit_under_that_prior(prepared, fitter, tmp_path):
    _, shards, _ = prepared
    ds = ShardDataset(shards, "all")
    m = fitter.model

    def centre(images, landmarks):  # a stand-in for R-Net's prediction: not the mean face
        p = FaceParams.zeros(images.shape[0], m.n_id, m.n_exp, m.n_tex)
        p.alpha[:, :5] = 2.0
        p.delta[:, :3] = 1.0
        return p

    record = {"engine": "rnet-prior", "rnet": "stand-in.pt", "sha256": "0" * 64}
    out = tmp_path / "prior"
    label_shards(shards, out, batch_size=2, limit=2, fitter=fitter, prior=centre, prior_record=record, progress=False)
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    under = fitter.fit(batch["image"], batch["landmarks"], batch["attention"],
                       prior=centre(batch["image"], batch["landmarks"])).params.to_vector().numpy()
    plain = fitter.fit(batch["image"], batch["landmarks"], batch["attention"]).params.to_vector().numpy()
    labels = read_labels(out)
    for i, key in enumerate(ds.keys[:2]):
        np.testing.assert_allclose(labels[key][0], under[i], rtol=1e-3, atol=1e-4)
        assert np.abs(labels[key][0] - plain[i]).max() > 0.05  # the prior moved the fit
    assert json.loads((out / "config.json").read_text())["prior"] == record
    # labels under another prior (here the mean) are refused unless forced; a prior must be described
    with pytest.raises(ValueError, match="prior centred on rnet-prior stand-in.pt"):
        label_shards(shards, out, batch_size=2, limit=4, fitter=fitter, progress=False)
    assert label_shards(shards, out, batch_size=2, limit=4, fitter=fitter, force=True, progress=False).fitted == 1
    # the same checkpoint elsewhere (another machine's path) goes on; another checkpoint does not
    moved = {**record, "rnet": "/elsewhere/stand-in.pt"}
    assert label_shards(shards, out, batch_size=2, limit=6, fitter=fitter, prior=centre, prior_record=moved,
                        progress=False).fitted == 1
    chunk_path(out, 2).unlink()
    with pytest.raises(ValueError, match="prior centred on"):
        label_shards(shards, out, batch_size=2, limit=6, fitter=fitter, prior=centre,
                     prior_record={**record, "sha256": "1" * 64}, progress=False)
    with pytest.raises(ValueError, match="prior_record"):
        label_shards(shards, tmp_path / "x", batch_size=2, limit=2, fitter=fitter, prior=centre, progress=False)


def test_take_shard_and_spec():
    items = list(range(10))
    parts = [take_shard(items, f"{i}/3") for i in range(3)]
    assert parts[1] == [1, 4, 7] and sorted(sum(parts, [])) == items
    assert take_shard(items, None) == items and parse_shard_spec("2/4") == (2, 4)
    for bad in ("2/2", "-1/3", "1/0", "x", "1/2/3"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard_spec(bad)


# --- command line ----------------------------------------------------------------------------------
def test_cli_prepare_and_label(prepared, tmp_path, capsys):
    photos, _, _ = prepared
    shards = tmp_path / "shards"
    assert main(["data", "prepare", str(photos), "-o", str(shards), "--limit", "2", "--quiet"]) == 0
    assert len(read_records(shards)) == 2
    assert main(["data", "prepare", str(photos), "-o", str(shards), "--shard-size", "8", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "1 failed" in err and "broken.jpg" in err and "Traceback" not in err
    assert sorted(r.key for r in read_records(shards)) == sorted(all_keys())
    assert read_meta(shards)["val_fraction"] == 0.1
    assert main(["data", "prepare", str(tmp_path / "empty_nothing"), "-o", str(tmp_path / "s2"), "--quiet"]) == 1
    labels = tmp_path / "labels"
    assert main(["label", str(shards), "-o", str(labels), "--shard", "2/2", *FAST_FLAGS]) == 2
    assert "--shard 2/2" in capsys.readouterr().err
    assert main(["label", str(shards), "-o", str(labels), "--batch-size", "2", "--limit", "2", *FAST_FLAGS]) == 0
    assert sorted(read_labels(labels)) == all_keys()[:2]
    # --engine rnet-prior: the fitter under R-Net's prior, the checkpoint recorded by name and hash
    from facerecon.nets.rnet import save_checkpoint
    from tests.test_engine import nudged_net

    ckpt = save_checkpoint(tmp_path / "nudged.pt", nudged_net(), {"train_config": {"albedo": "learned", "region": "narrow"}})
    assert main(["label", str(shards), "-o", str(tmp_path / "l2"), "--rnet", str(ckpt), *FAST_FLAGS]) == 2
    assert "--rnet is only used with --engine rnet-prior" in capsys.readouterr().err
    assert main(["label", str(shards), "-o", str(tmp_path / "l2"), "--engine", "rnet-prior", "--rnet",
                 str(tmp_path / "none.pt"), *FAST_FLAGS]) == 2
    assert "none.pt: no such file" in capsys.readouterr().err
    rp = tmp_path / "rp"
    assert main(["label", str(shards), "-o", str(rp), "--batch-size", "2", "--limit", "2", "--engine", "rnet-prior",
                 "--rnet", str(ckpt), *FAST_FLAGS]) == 0
    prior = json.loads((rp / "config.json").read_text())["prior"]
    import hashlib

    assert prior == {"engine": "rnet-prior", "rnet": str(ckpt), "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest()}
    mean_prior, rnet_prior = read_labels(labels), read_labels(rp)
    assert sorted(rnet_prior) == all_keys()[:2]
    assert all(np.abs(rnet_prior[k][0] - mean_prior[k][0]).max() > 0.05 for k in rnet_prior)


def test_reconstruct_shard_splits_inputs(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["e.jpg", "a.jpg", "c.jpg", "b.jpg", "d.jpg"]
    for name in names:
        (folder / name).write_text("not an image")  # fails at once: only the split is tested
    out = tmp_path / "out"
    given = [str(folder / n) for n in names]  # unsorted on purpose
    assert main(["reconstruct", *given, "-o", str(out), "--shard", "3/2", *FAST_FLAGS]) == 2
    assert "--shard 3/2" in capsys.readouterr().err
    handled = []
    for i in (0, 1):
        main(["reconstruct", *given, "-o", str(out), "--shard", f"{i}/2", *FAST_FLAGS])
        report = json.loads((out / f"report-shard-{i}-of-2.json").read_text())
        handled.append([Path(e["input"]).name for e in report["inputs"]])
    assert handled == [["a.jpg", "c.jpg", "e.jpg"], ["b.jpg", "d.jpg"]]
