"""The Ray Data pipeline on a local Ray instance with 2 workers: the same result folders as
``facerecon reconstruct``, a bad file reported failed while the others go on. Skipped when Ray
is not installed (``pip install 'facerecon[ray]'``)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.data")

from facerecon.cli import main  # noqa: E402
from facerecon.pipeline import engine_config  # noqa: E402
from tests.conftest import need_shared  # noqa: E402

FASTER = ["--landmark-steps", "5", "--steps", "2", "--no-perceptual", "--texture-size", "128", "--quiet"]
PEOPLE = ("Aaron_Peirsol", "Abdoulaye_Wade", "Adam_Sandler")


@pytest.fixture(scope="module")
def local_ray():
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Path]:
    """Three real LFW photos of different people and an unreadable file, in that order: photo,
    bad file, photo, photo."""
    photos = [need_shared("faces", "lfw", p, f"{p}_0001.jpg") for p in PEOPLE]
    bad = tmp_path_factory.mktemp("bad") / "broken.jpg"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    return [photos[0], bad, photos[1], photos[2]]


@pytest.fixture(scope="module")
def cli_out(inputs, tmp_path_factory) -> Path:
    """What ``facerecon reconstruct`` writes for the photos (one at a time, as the workers below)."""
    out = tmp_path_factory.mktemp("cli") / "out"
    assert main(["reconstruct", *map(str, inputs), "-o", str(out), "--batch-size", "1", *FASTER]) == 0
    return out


def _params(folder: Path) -> np.ndarray:
    return np.asarray(json.loads((folder / "params.json").read_text())["vector"]["values"])


def _same_results(folder: Path, reference: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in reference.iterdir())
    assert np.allclose(_params(folder), _params(reference), atol=1e-5, rtol=0)
    a, b = (json.loads((f / "landmarks.json").read_text()) for f in (folder, reference))
    assert np.allclose(a["fitted_photo_px"], b["fitted_photo_px"], atol=1e-3)
    pa, pb = (json.loads((f / "params.json").read_text()) for f in (folder, reference))
    assert pa["photo"]["path"] == pb["photo"]["path"] and pa["extra"]["fit_config"] == pb["extra"]["fit_config"]


def test_dataset_equals_the_cli_and_reports_the_bad_file(local_ray, inputs, cli_out, tmp_path):
    from facerecon.scale.ray_pipeline import reconstruct_dataset

    out = tmp_path / "ray"  # the configuration the command line's FASTER gives the default engine
    config = replace(engine_config("rnet-prior"), landmark_steps=5, steps=2, perceptual=False)
    report = reconstruct_dataset(inputs, out, engine="rnet-prior", rnet=None, fit_config=config, num_workers=2,
                                 device="cpu", batch_size=1, texture_size=128)
    assert report["summary"] == {"ok": 3, "failed": 1}
    assert [e["input"] for e in report["inputs"]] == [str(p) for p in inputs]  # input order
    assert [e["status"] for e in report["inputs"]] == ["ok", "failed", "ok", "ok"]
    bad = report["inputs"][1]
    assert str(inputs[1]) in bad["reason"] and "\n" not in bad["reason"]
    assert not (out / "broken").exists()
    for e, photo in zip(report["inputs"], inputs):
        if e["status"] == "ok":
            assert e["output_folder"] == str(out / photo.stem)
            assert "params.json" in e["outputs"][0]["files"] and e["outputs"][0]["losses"]["total"] > 0
            _same_results(out / photo.stem, cli_out / photo.stem)


def test_cli_ray_option(local_ray, inputs, cli_out, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["reconstruct", *map(str, inputs), "-o", str(out), "--ray", "2", "--batch-size", "2", *FASTER]) == 0
    report = json.loads((out / "report.json").read_text())
    reference = json.loads((cli_out / "report.json").read_text())
    assert report["summary"] == reference["summary"] == {"ok": 3, "failed": 1}
    for e, r in zip(report["inputs"], reference["inputs"]):
        assert (e["input"], e["status"], e["output_folder"].replace(str(out), "")) == (
            r["input"], r["status"], r["output_folder"].replace(str(cli_out), ""))
        if e["status"] == "ok":  # batches of 2 in the workers: equal within batching's rounding
            folder = Path(e["output_folder"])
            assert np.allclose(_params(folder), _params(cli_out / folder.name), atol=1e-3)
    assert "broken.jpg" in capsys.readouterr().err
    # a given lens reaches the workers' preparer and the writer's camera
    lens = tmp_path / "lens"
    ok = next(Path(e["input"]) for e in reference["inputs"] if e["status"] == "ok")
    assert main(["reconstruct", str(ok), "-o", str(lens), "--ray", "1", "--focal-35mm", "26", *FASTER]) == 0
    doc = json.loads((lens / ok.stem / "params.json").read_text())
    w, h = doc["photo"]["width"], doc["photo"]["height"]
    assert doc["camera"]["photo_focal_px"] == pytest.approx(26 / np.hypot(36, 24) * np.hypot(w, h), rel=1e-6)
    scale = np.sqrt(abs(np.linalg.det(np.asarray(doc["photo_to_crop"])[:, :2])))
    assert doc["camera"]["focal_px"] == pytest.approx(doc["camera"]["photo_focal_px"] * scale, rel=1e-5)


def test_cli_ray_refusals(local_ray, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["reconstruct", str(inputs[0]), "-o", str(out), "--ray", "0", *FASTER]) == 2
    assert "--ray must be at least 1" in capsys.readouterr().err
    assert main(["reconstruct", str(inputs[0]), "-o", str(out), "--ray", "2", "--all-faces", *FASTER]) == 2
    assert "does not work with --multi, --group or --all-faces" in capsys.readouterr().err
    assert main(["reconstruct", str(inputs[0]), "-o", str(out), "--ray", "2", "--engine", "rnet",
                 "--rnet", str(tmp_path / "none.pt"), *FASTER]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not out.exists()
