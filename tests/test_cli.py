"""The command line end to end: real photos in, files out, bad inputs reported, nothing clobbered."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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


def test_top_level_help_imports_no_torch_and_each_command_keeps_its_summary():
    """``facerecon --help`` builds one-line entries only (no torch, which the commands' options
    import); a command named on the line is built in full, with the same one-line help."""
    import subprocess
    import sys

    code = ("import sys\nfrom facerecon.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
            "    pass\nprint('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "train the R-Net regressor" in run.stdout
    assert run.stdout.strip().splitlines()[-1] == "False"

    from facerecon.cli import COMMANDS, build_parser

    def entries(parser):
        action = next(a for a in parser._actions if a.dest == "command")
        return action, {c.dest: c.help for c in action._choices_actions}

    _, full = entries(build_parser())
    assert full == COMMANDS
    for name in COMMANDS:
        action, lazy = entries(build_parser(["--threads", "1", name]))
        assert lazy == COMMANDS
        built = action.choices[name]
        others = [action.choices[n] for n in COMMANDS if n != name]
        assert len(built._actions) > 1 or built._subparsers is not None
        assert all(len(p._actions) == 1 for p in others)  # only -h
    args = build_parser(["--threads", "1", "train", "--data", "x", "-o", "y"]).parse_args(
        ["--threads", "1", "train", "--data", "x", "-o", "y"])
    assert args.command == "train" and args.threads == 1


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
    small = tmp_path / "small.png"  # the same face 45 px wide: fitted, with a note
    Image.open(photo).resize((45, 45), Image.LANCZOS).save(small)
    out = tmp_path / "out"
    code = main(["reconstruct", str(photo), str(bad), str(tmp_path / "missing.png"), str(small), "-o", str(out), *FAST])
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
    assert report["summary"] == {"ok": 2, "failed": 2}
    assert "notes" not in status["Aaron_Peirsol_0001.jpg"]["outputs"][0]
    (note,) = status["small.png"]["outputs"][0]["notes"]
    assert note.startswith("small face: outer eye corners")
    err = capsys.readouterr().err
    assert "2 failed" in err and "Traceback" not in err
    assert f"1 note:\n  {out / 'small'}: small face" in err
    params = json.loads((folder / "params.json").read_text())
    assert "jawOpen" in json.dumps(params)
    # a second run must not overwrite the first without --overwrite
    before = (folder / "params.json").read_bytes()
    assert main(["reconstruct", str(photo), "-o", str(out), *FAST]) == 1
    assert (folder / "params.json").read_bytes() == before
    assert "already exists" in capsys.readouterr().err


def test_options_out_of_range_and_an_output_that_is_a_file_get_one_line(tmp_path, photo, capsys):
    afile = tmp_path / "out.txt"
    afile.write_text("the user's file")
    assert main(["reconstruct", str(photo), "-o", str(afile), *FAST]) == 2
    assert capsys.readouterr().err == f"facerecon reconstruct: error: -o {afile}: exists and is not a folder\n"
    assert afile.read_text() == "the user's file"
    out = str(tmp_path / "o")
    for option, says in ((["--steps", "-1"], "--steps must be at least 0 (got -1)"),
                         (["--perceptual-every", "0"], "--perceptual-every must be at least 1 (got 0)"),
                         (["--weights-landmark=-1e-3"], "--weights-landmark must be at least 0 (got -0.001)")):
        assert main(["reconstruct", str(photo), "-o", out, *FAST, *option]) == 2
        assert capsys.readouterr().err == f"facerecon reconstruct: error: {says}\n"
    for option, says in ((["--batch-size", "0"], "argument --batch-size: must be at least 1 (got 0)"),
                         (["--texture-size", "8"], "argument --texture-size: must be at least 64 (got 8)")):
        with pytest.raises(SystemExit) as stop:
            main(["reconstruct", str(photo), "-o", out, *FAST, *option])
        assert stop.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


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
    from facerecon.facemodel import load_face_model
    from facerecon.facemodel.albedo import sample_layout
    from facerecon.facemodel.ict import PARTS

    written = model_gallery(tmp_path)
    assert (tmp_path / "gallery.png").is_file() and (tmp_path / "mean.obj").is_file()
    assert len(written) >= 15
    # the random identities are painted from the learned albedo model: skin hues (R > G ≳ B) on
    # the face, head and neck, hardly any clipped colour, and skin tones that differ. The spectral
    # basis fails this (identity 2: 2.3 % of vertices off skin hue, 2.6 % clipped; tones within 0.07)
    import trimesh

    tones = []
    for i in (1, 2, 3):
        c = np.asarray(trimesh.load(tmp_path / f"identity_{i}.ply", process=False).visual.vertex_colors)
        c = c[:11248, :3] / 255.0  # the "head" region's face and head/neck vertices come first
        assert ((c[:, 0] > c[:, 1]) & (c[:, 1] > c[:, 2] - 0.03)).mean() >= 0.98
        assert ((c.max(1) >= 0.999) | (c.min(1) <= 0.001)).mean() <= 0.01
        tones.append(float((c @ [0.299, 0.587, 0.114]).mean()))
    assert max(tones) - min(tones) >= 0.12
    # and no patchier than real skin: the spread of the skin's rg chromaticity (brows, eyes, nostrils
    # and lips left out) stays under 1.16 (×100), the 90th percentile of 40 held-out de-lit real
    # textures (BENCHMARKS.md, "Albedo models"). The 150-photo model drew 1.08 / 0.83 / 1.20 here,
    # the 706-photo one 0.68 / 1.11 / 0.96, today's (1,824 photos) 0.79 / 0.93 / 0.88.
    n_face = PARTS["face"][1]  # ICT's face part comes first
    full = load_face_model("full")
    mean = full.mean.numpy().astype(np.float64)
    skin = ~sample_layout(mean[:n_face], mean[full.landmark_idx.numpy()])[1]
    for i in (1, 2, 3):
        c = np.asarray(trimesh.load(tmp_path / f"identity_{i}.ply", process=False).visual.vertex_colors)
        c = c[:n_face, :3][skin] / 255.0
        rg = c[:, :2] / c.sum(1, keepdims=True)
        assert np.linalg.norm(rg - np.median(rg, 0), axis=1).mean() * 100 <= 1.16, i
    # the render grid: shading past 1 is clipped, not wrapped round in uint8 (a red channel past
    # 1 came out near 0: teal specks on the lips and brows, eye whites turned blue)
    import cv2

    grid = cv2.cvtColor(cv2.imread(str(tmp_path / "gallery.png")), cv2.COLOR_BGR2RGB).astype(int)
    head_px = ~(grid == 255).all(-1)
    cool = ((grid[..., 1] > grid[..., 0] + 40) | (grid[..., 2] > grid[..., 0] + 40)) & head_px
    assert head_px.sum() > 100_000 and cool.sum() <= 20
    # the eyes painted as in the exports: a dark pupil, a brown iris and a white sclera per eye
    ids = np.asarray(load_face_model("head").vertex_ids)
    c = np.asarray(trimesh.load(tmp_path / "mean.ply", process=False).visual.vertex_colors)[:, :3] / 255.0
    for side in ("left", "right"):
        lo, hi = PARTS[f"eyeball_{side}"]
        eye = c[(ids >= lo) & (ids < hi)]
        luma = eye @ [0.299, 0.587, 0.114]
        iris = (luma > 0.1) & (luma < 0.4)
        assert (luma < 0.06).sum() >= 5 and (luma > 0.8).mean() > 0.3
        assert iris.sum() >= 20 and (eye[iris, 0] > eye[iris, 1]).all() and (eye[iris, 1] > eye[iris, 2]).all()


# -- inputs, names, batches, faces, overwrite ------------------------------------------------------

FASTER = ["--landmark-steps", "5", "--steps", "2", "--no-perceptual", "--texture-size", "128", "--quiet"]


@pytest.fixture(scope="module")
def preparer():
    from facerecon.imageio import Preparer

    return Preparer()


def _own_landmarks(preparer, path: Path, face: int = 0) -> np.ndarray:
    """A photo's detected landmarks (photo pixels), found on their own, not through the CLI."""
    return preparer.prepare(path, all_faces=True)[face].landmarks_photo


def _read(folder: Path) -> tuple[dict, dict]:
    return (json.loads((folder / "params.json").read_text()),
            json.loads((folder / "landmarks.json").read_text()))


def test_expand_inputs_recursive_sorted_hidden_skipped(tmp_path):
    from facerecon.cli.reconstruct import expand_inputs, output_names

    photos = tmp_path / "photos"
    for rel in ("bob/frame.png", "bob/frame.jpg", "alice/frame.jpg", "alice/deep/x.JPG", "alice.jpg",
                ".hidden/frame.jpg", "bob/.frame.jpg", "bob/notes.txt", "out/o/overlay.png"):
        (photos / rel).parent.mkdir(parents=True, exist_ok=True)
        (photos / rel).write_bytes(b"x")
    (photos / "empty").mkdir()
    found = expand_inputs([photos, tmp_path / "single.jpg", photos / "empty"], exclude=photos / "out")
    assert [f.is_folder for f in found] == [True, False, True]
    rel = [p.relative_to(photos).as_posix() for p in found[0].photos]
    assert rel == ["alice/deep/x.JPG", "alice/frame.jpg", "alice.jpg", "bob/frame.jpg", "bob/frame.png"]
    assert found[0].summary() == f"found 5 photos in {photos}/ (4 folders)"
    assert found[1].photos == [tmp_path / "single.jpg"]  # kept even if missing: reported per input later
    assert found[2].photos == [] and found[2].summary().startswith(f"{photos / 'empty'}/: no photos found")
    wanted = [n for f in found for n in f.names]
    assert output_names(wanted) == ["alice/deep/x", "alice/frame", "alice-2", "bob/frame", "bob/frame-2", "single"]
    from pathlib import PurePosixPath as P

    assert output_names([P("a"), P("A"), P("a-2"), P("a")]) == ["a", "A-2", "a-2-2", "a-3"]


def test_existing_results_detected_with_extra_faces(tmp_path):
    from facerecon.cli.reconstruct import _has_results

    target = tmp_path / "a" / "frame[1]"
    assert not _has_results(target, all_faces=True)
    target.mkdir(parents=True)
    assert not _has_results(target, all_faces=False)  # an empty folder is no result
    (tmp_path / "a" / "frame[1]_face2").mkdir()
    (tmp_path / "a" / "frame[1]_face2" / "params.json").write_text("{}")
    assert _has_results(target, all_faces=True) and not _has_results(target, all_faces=False)
    (target / "face.obj").write_text("")
    assert _has_results(target, all_faces=False)


def test_no_face_and_empty_folder_errors_name_them(tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (1, 1)).save(tmp_path / "noface.jpg", format="PNG")  # a PNG under a JPEG name
    (tmp_path / "empty" / ".git").mkdir(parents=True)
    (tmp_path / "empty" / ".git" / "a.jpg").write_bytes(b"x")  # hidden: not a photo to find
    assert main(["reconstruct", "empty", "-o", "out"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facerecon reconstruct: error: empty/: no photos found") and "\n" not in err
    assert main(["reconstruct", "noface.jpg", "empty", "-o", "out", *FASTER]) == 1
    err = capsys.readouterr().err
    assert "noface.jpg: no face found" in err and "<array>" not in err and "Traceback" not in err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    reasons = {e["input"]: e["reason"] for e in report["inputs"]}
    assert reasons["noface.jpg"].startswith("noface.jpg: no face found")
    assert reasons["empty"].startswith("empty/: no photos found")
    assert report["summary"] == {"ok": 0, "failed": 2}


def test_folder_inputs_nested_names_paired_with_their_photos(tmp_path, preparer, capsys, monkeypatch):
    """Equal names in different folders, one batch: each output is its own photo's, landmarks included."""
    from facerecon.pipeline import FaceReconstructor
    from tests.test_pipeline import mean_distance, shifted_photos

    photos = tmp_path / "photos"
    inputs = shifted_photos(photos, ("alice/frame.jpg", "bob/frame.jpg", "bob/frame.png"))
    (photos / ".cache").mkdir()
    (photos / ".cache" / "frame.jpg").write_bytes(inputs[0].read_bytes())  # hidden: skipped
    (photos / "bob" / "notes.txt").write_text("not a photo")
    fitted: dict[str, np.ndarray] = {}  # what the pipeline returned, by photo
    real = FaceReconstructor.fit_prepared

    def spy(self, items, progress=None):
        results = real(self, items, progress)
        for r in results:
            # marked by a quarter pixel: landmarks.json must hold exactly these points, not a
            # recomputation from the fitted parameters (which the export would match otherwise)
            r.landmarks_fit = r.landmarks_fit + np.float32(0.25)
            fitted[r.source] = r.landmarks_fit
        return results

    monkeypatch.setattr(FaceReconstructor, "fit_prepared", spy)
    out = tmp_path / "out"
    assert main(["reconstruct", str(photos), "-o", str(out), "--batch-size", "3", *FASTER]) == 0
    assert f"found 3 photos in {photos}/ (2 folders)" in capsys.readouterr().err
    folders = [out / "alice" / "frame", out / "bob" / "frame", out / "bob" / "frame-2"]
    report = json.loads((out / "report.json").read_text())
    assert [(e["input"], e["output_folder"], e["status"]) for e in report["inputs"]] == [
        (str(p), str(f), "ok") for p, f in zip(inputs, folders)]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("params.json")) == [
        "alice/frame/params.json", "bob/frame-2/params.json", "bob/frame/params.json"]
    for path, folder in zip(inputs, folders):
        params, lmk = _read(folder)
        assert params["photo"]["path"] == str(path)
        assert "landmarks_fit_photo" not in params["extra"]  # one fitted set, in landmarks.json
        assert lmk["photo"]["path"] == str(path)
        # the pipeline's fitted landmarks (rec.landmarks_fit), near this photo's own detected ones
        assert np.allclose(lmk["fitted_photo_px"], fitted[str(path)], atol=1e-3)
        assert mean_distance(lmk["fitted_photo_px"], _own_landmarks(preparer, path)) < 10


def test_batch_size_same_results_as_one_by_one(tmp_path, monkeypatch):
    from facerecon.pipeline import FaceReconstructor
    from tests.test_pipeline import shifted_photos

    inputs = shifted_photos(tmp_path / "in")
    batches: list[int] = []
    real = FaceReconstructor.fit_prepared

    def spy(self, items, progress=None):
        batches.append(len(items))
        return real(self, items, progress)

    monkeypatch.setattr(FaceReconstructor, "fit_prepared", spy)
    runs = {}
    for bs in (2, 1):
        batches.clear()
        out = tmp_path / f"out{bs}"
        assert main(["reconstruct", *map(str, inputs), "-o", str(out), "--batch-size", str(bs), *FASTER]) == 0
        runs[bs] = [_read(out / p.stem) for p in inputs]
        assert batches == ([2, 1] if bs == 2 else [1, 1, 1])
        assert json.loads((out / "report.json").read_text())["summary"] == {"ok": 3, "failed": 0}
    for path, (p2, l2), (p1, l1) in zip(inputs, runs[2], runs[1]):
        assert p2["photo"]["path"] == p1["photo"]["path"] == str(path)
        assert np.allclose(p2["vector"]["values"], p1["vector"]["values"], atol=1e-3)
        assert np.allclose(l2["fitted_photo_px"], l1["fitted_photo_px"], atol=0.05)


def test_all_faces_writes_one_folder_per_face(tmp_path, preparer):
    from PIL import Image

    from tests.test_pipeline import mean_distance

    left = need_shared("faces", "lfw", "Aaron_Peirsol", "Aaron_Peirsol_0001.jpg")
    right = need_shared("faces", "lfw", "Al_Gore", "Al_Gore_0001.jpg")
    pair = tmp_path / "pair.jpg"
    Image.fromarray(np.concatenate([np.asarray(Image.open(left).convert("RGB")),
                                    np.asarray(Image.open(right).convert("RGB"))], axis=1)).save(pair, quality=95)
    out = tmp_path / "out"
    assert main(["reconstruct", str(pair), "-o", str(out), "--all-faces", *FASTER]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["pair", "pair_face2"]
    report = json.loads((out / "report.json").read_text())
    assert [o["folder"] for o in report["inputs"][0]["outputs"]] == [str(out / "pair"), str(out / "pair_face2")]
    xs = []
    for k, name in enumerate(("pair", "pair_face2")):
        params, lmk = _read(out / name)
        assert params["photo"]["path"] == str(pair)
        assert mean_distance(lmk["fitted_photo_px"], _own_landmarks(preparer, pair, k)) < 10
        xs.append(np.mean(np.asarray(lmk["fitted_photo_px"])[:, 0]))
    assert sorted(x > 250 for x in xs) == [False, True]  # one face in each half


def test_overwrite_keeps_or_replaces(tmp_path, capsys):
    from tests.test_pipeline import shifted_photos

    photos = tmp_path / "photos"
    (photo,) = shifted_photos(photos, ("alice/frame.jpg",))
    out = tmp_path / "out"
    assert main(["reconstruct", str(photos), "-o", str(out), *FASTER]) == 0
    params = out / "alice" / "frame" / "params.json"
    params.write_text("stale")
    capsys.readouterr()
    # without --overwrite: kept untouched, reported as failed, nothing succeeded
    assert main(["reconstruct", str(photos), "-o", str(out), *FASTER]) == 1
    assert params.read_text() == "stale"
    assert "already exists (use --overwrite" in capsys.readouterr().err
    (entry,) = json.loads((out / "report.json").read_text())["inputs"]
    assert entry["status"] == "failed" and entry["input"] == str(photo) and "already exists" in entry["reason"]
    # with --overwrite: replaced
    assert main(["reconstruct", str(photos), "-o", str(out), "--overwrite", *FASTER]) == 0
    assert json.loads(params.read_text())["photo"]["path"] == str(photo)
    assert json.loads((out / "report.json").read_text())["summary"] == {"ok": 1, "failed": 0}


def test_units_and_up_axis_of_the_mesh_files(tmp_path, ict_archive):
    """--units mm --up z: the same vertices as the default (metres, y up), scaled by 1000 and
    turned so that model +y becomes +z (x, y, z) -> (x, -z, y); the PLY header says so."""
    import trimesh

    from facerecon.cli import main

    photo = need_shared("faces", "lfw") / "Colin_Powell" / "Colin_Powell_0001.jpg"
    assert main(["reconstruct", str(photo), "-o", str(tmp_path / "a"), *FASTER]) == 0
    assert main(["reconstruct", str(photo), "-o", str(tmp_path / "b"), "--units", "mm", "--up", "z", *FASTER]) == 0
    a = trimesh.load(tmp_path / "a" / "Colin_Powell_0001" / "face.ply", process=False).vertices
    b = trimesh.load(tmp_path / "b" / "Colin_Powell_0001" / "face.ply", process=False).vertices
    np.testing.assert_allclose(b, 1000 * np.stack([a[:, 0], -a[:, 2], a[:, 1]], 1), atol=0.05)
    head = (tmp_path / "b" / "Colin_Powell_0001" / "face.ply").read_bytes()[:400].decode("latin-1")
    assert "units mm" in head and "+z up" in head
