"""The command line end to end: real photos in, files out, bad inputs reported, nothing clobbered."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facerecon.cli import main
from tests.conftest import need_shared

FAST = ["--landmark-steps", "10", "--steps", "3", "--no-perceptual", "--texture-size", "256", "--quiet"]


@pytest.fixture(scope="module")
def photo() -> Path:
    return need_shared("faces", "lfw", "Aaron_Peirsol", "Aaron_Peirsol_0001.jpg")


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("reconstruct", "evaluate", "synth", "bench", "demo"):
        assert cmd in out


def test_threads_option(capsys, monkeypatch):
    import torch

    from facerecon.cli import set_cpu_threads

    assert main(["--threads", "0", "bench", "render"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
    before = torch.get_num_threads()
    try:
        set_cpu_threads(1)
        assert torch.get_num_threads() == 1
        monkeypatch.setattr("facerecon.cli.available_cpus", lambda: 2)
        torch.set_num_threads(2)
        set_cpu_threads(None)  # small machine: one thread (measured faster there)
        assert torch.get_num_threads() == 1
        monkeypatch.setattr("facerecon.cli.available_cpus", lambda: 16)
        torch.set_num_threads(2)
        set_cpu_threads(None)  # larger machine: torch's own choice is kept
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_reconstruct_writes_outputs_and_reports_failures(tmp_path, photo, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    out = tmp_path / "out"
    code = main(["reconstruct", str(photo), str(bad), str(tmp_path / "missing.png"), "-o", str(out), *FAST])
    assert code == 0  # something succeeded
    folder = out / "Aaron_Peirsol_0001"
    for name in ("face.obj", "face.mtl", "face_texture.png", "face.ply", "face.glb", "overlay.png",
                 "params.json", "landmarks.json"):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    status = {Path(e["input"]).name: e for e in report["inputs"]}
    assert status["Aaron_Peirsol_0001.jpg"]["status"] == "ok"
    assert status["notes.jpg"]["status"] == "failed" and "notes.jpg" in status["notes.jpg"]["reason"]
    assert status["missing.png"]["status"] == "failed"
    assert report["summary"] == {"ok": 1, "failed": 2}
    err = capsys.readouterr().err
    assert "2 failed" in err and "Traceback" not in err
    params = json.loads((folder / "params.json").read_text())
    assert "jawOpen" in json.dumps(params)
    # a second run must not overwrite the first without --overwrite
    before = (folder / "params.json").read_bytes()
    assert main(["reconstruct", str(photo), "-o", str(out), *FAST]) == 1
    assert (folder / "params.json").read_bytes() == before
    assert "already exists" in capsys.readouterr().err


def test_reconstruct_nothing_succeeds(tmp_path):
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    assert main(["reconstruct", str(bad), "-o", str(tmp_path / "o"), *FAST]) == 1


def test_library_api(photo):
    from facerecon.fitting.engine import FitConfig
    from facerecon.pipeline import FaceReconstructor

    recon = FaceReconstructor(config=FitConfig(landmark_steps=10, steps=2, perceptual=False))
    faces = recon(str(photo))
    assert len(faces) == 1
    f = faces[0]
    assert f.params.alpha.shape == (1, 80) and f.params.beta.shape == (1, 53)
    assert f.landmarks_fit.shape == (68, 2)
    # fitted landmarks land near the detected ones in the photo (pixels)
    assert np.linalg.norm(f.landmarks_fit - f.prepared.landmarks_photo, axis=1).mean() < 8
    assert f.vertices(recon.model).shape == (recon.model.n_vertices, 3)


def test_demo_model_gallery(tmp_path):
    from facerecon.cli.demo import model_gallery

    written = model_gallery(tmp_path)
    assert (tmp_path / "gallery.png").is_file() and (tmp_path / "mean.obj").is_file()
    assert len(written) >= 15
