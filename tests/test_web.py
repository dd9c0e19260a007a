"""The ``facerecon serve`` server through Starlette's TestClient: upload, progress, results,
downloads, bad files, limits, path traversal, session end and expiry, the queue, the page, and
the "one person" mode (several photos fitted and combined into one face)."""

from __future__ import annotations

import io
import json
import re
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import need_shared

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[test]')")
from starlette.testclient import TestClient  # noqa: E402

from facerecon.web.app import create_app  # noqa: E402
from facerecon.web.config import WebConfig  # noqa: E402
from facerecon.web.sessions import Session  # noqa: E402

PHOTO = ("faces", "lfw", "Aaron_Peirsol", "Aaron_Peirsol_0001.jpg")
PHOTO2 = ("faces", "lfw", "Serena_Williams", "Serena_Williams_0001.jpg")
PHOTO_SAME = ("faces", "lfw", "Aaron_Peirsol", "Aaron_Peirsol_0002.jpg")  # PHOTO's person again
LIMITS = WebConfig(max_photo_mb=0.5, max_video_mb=2.0, max_files=8, texture_size=256, video_frames=3)


def wait_jobs(client: TestClient, sid: str, n: int, timeout: float = 180.0) -> tuple[list[dict], list[dict]]:
    """Poll until ``n`` jobs have ended; returns (final jobs, every job snapshot seen)."""
    seen: list[dict] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        doc = client.get(f"/api/sessions/{sid}").json()
        seen.extend(doc["jobs"])
        ended = [j for j in doc["jobs"] if j["state"] in ("done", "failed", "cancelled")]
        if len(doc["jobs"]) >= n and len(ended) == len(doc["jobs"]):
            return doc["jobs"], seen
        time.sleep(0.02)
    raise AssertionError(f"jobs did not finish in {timeout} s: {doc['jobs']}")


def upload(client: TestClient, sid: str, name: str, data: bytes, **params):
    return client.post(f"/api/sessions/{sid}/uploads", params={"name": name, **params}, content=data)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A server with the real fitting (fast config), for the whole module."""
    from facerecon.fitting.engine import FitConfig

    need_shared(*PHOTO)
    app = create_app(LIMITS, fit_config=FitConfig(landmark_steps=10, steps=3, perceptual=False),
                     tmp_root=tmp_path_factory.mktemp("web"))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def done(client):
    """One session with one real LFW photo fitted: (session id, final job, snapshots seen)."""
    sid = client.post("/api/sessions").json()["id"]
    r = upload(client, sid, "Aaron.jpg", need_shared(*PHOTO).read_bytes())
    assert r.status_code == 201, r.text
    jobs, seen = wait_jobs(client, sid, 1)
    return sid, jobs[0], seen


def web_of(client: TestClient):
    return client.app.state.web


def new_person(client: TestClient, sid: str, **params) -> str:
    """A person job collecting photos in session ``sid``: its id."""
    r = client.post(f"/api/sessions/{sid}/people", params=params)
    assert r.status_code == 201, r.text
    job = r.json()["job"]
    assert job["kind"] == "person" and job["state"] == "collecting" and job["members"] == []
    return job["id"]


def start_person(client: TestClient, sid: str, pid: str) -> dict:
    r = client.post(f"/api/sessions/{sid}/people/{pid}/start")
    assert r.status_code == 200, r.text
    return r.json()["job"]


@pytest.fixture(scope="module")
def person(client):
    """One session with one person: two real LFW photos of Aaron Peirsol and a broken file,
    fitted and combined with the default aggregator: (session id, final job, snapshots seen)."""
    sid = client.post("/api/sessions").json()["id"]
    pid = new_person(client, sid)
    for name, data in (("aaron one.jpg", need_shared(*PHOTO).read_bytes()), ("broken.jpg", b"not a JPEG at all"),
                       ("aaron_two.jpg", need_shared(*PHOTO_SAME).read_bytes())):
        r = upload(client, sid, name, data, person=pid)
        assert r.status_code == 201, r.text
        assert r.json()["jobs"][0]["id"] == pid
    queued = start_person(client, sid, pid)
    assert queued["state"] in ("queued", "running") and len(queued["members"]) == 3
    jobs, seen = wait_jobs(client, sid, 1)
    return sid, jobs[0], [j for j in seen if j["id"] == pid]


# --- the happy path ------------------------------------------------------------------------------
def test_upload_reports_progress_then_a_result(done):
    sid, job, seen = done
    assert job["state"] == "done", job
    assert job["name"] == "Aaron.jpg"
    progress = [j["progress"] for j in seen]
    assert progress == sorted(progress), "progress went backwards"
    stages = {j["stage"] for j in seen}
    assert any(re.fullmatch(r"fitting: step \d+ of 13", s) for s in stages), stages
    assert "running" in {j["state"] for j in seen}
    f = job["figures"]
    assert set(f) >= {"yaw_deg", "pitch_deg", "roll_deg", "landmark_error_px", "fit_seconds", "total_seconds"}
    assert 0 < f["landmark_error_px"] < 15 and abs(f["yaw_deg"]) < 45
    assert 0 < f["fit_seconds"] <= f["total_seconds"] <= f["since_upload_seconds"]
    assert f["note"] is None  # a 250 px photo: no small-face note


def test_fit_figures_note_a_small_face():
    from types import SimpleNamespace

    from facerecon.imageio import PreparedFace
    from facerecon.params import FaceParams
    from facerecon.web.worker import fit_figures

    lm = np.zeros((68, 2), np.float32)
    lm[36], lm[45] = (10.0, 20.0), (19.0, 20.0)
    M = np.array([[8.0, 0.0, 0.0], [0.0, 8.0, 0.0]])  # the photo enlarged 8 times for the crop
    prepared = PreparedFace(None, (40, 40), np.zeros((224, 224, 3), np.uint8), lm, lm,
                            np.zeros((224, 224), np.float32), M, M, (0, 0, 1, 1), 1.0)
    rec = SimpleNamespace(params=FaceParams.zeros(1, 100, 53, 80), prepared=prepared, landmarks_fit=lm,
                          losses={"photo": 0.1}, photo=np.zeros((40, 40, 3), np.uint8))
    assert fit_figures(rec)["note"].startswith("small face: outer eye corners 9 px apart")


def test_every_file_downloads(client, done):
    sid, job, _ = done
    files = job["files"]
    assert set(files) >= {"glb", "obj", "mtl", "texture", "ply", "params", "landmarks", "overlay", "zip"}
    glb = client.get(files["glb"])
    assert glb.status_code == 200 and glb.content[:4] == b"glTF"
    assert glb.headers["content-type"] == "model/gltf-binary"
    from tests.test_web_browser import check_glb

    check_glb(glb.content)  # header, chunks, buffer views and accessors in bounds, PNG texture
    params = client.get(files["params"]).json()
    assert abs(params["pose"]["angles_deg"]["yaw"] - job["figures"]["yaw_deg"]) < 0.06
    assert client.get(files["obj"]).text.startswith(("#", "mtllib", "v "))
    assert Image.open(io.BytesIO(client.get(files["texture"]).content)).size == (256, 256)
    assert client.get(files["ply"]).content.startswith(b"ply")
    z = client.get(files["zip"] + "?download=1")
    assert "attachment" in z.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        names = set(zf.namelist())
        assert names >= {"face.glb", "face.obj", "face.mtl", "face_texture.png", "face.ply", "params.json"}
        assert zf.read("face.glb") == glb.content
    preview = files.get("compare") or files["overlay"]
    assert client.get(preview).headers["content-type"] == "image/png"


# --- one person from several photos --------------------------------------------------------------
def test_person_fits_each_photo_with_progress_and_combines_them(person):
    sid, job, seen = person
    assert job["state"] == "done", job
    assert job["kind"] == "person" and job["aggregate"] == "joint"  # the command line's default
    by = {m["name"]: m for m in job["members"]}
    assert list(by) == ["aaron one.jpg", "broken.jpg", "aaron_two.jpg"]
    assert by["broken.jpg"]["state"] == "failed" and by["broken.jpg"]["error"]
    for name in ("aaron one.jpg", "aaron_two.jpg"):
        m = by[name]
        assert m["state"] == "done" and m["figures"]["weight"] == pytest.approx(0.5)
        assert 0 < m["figures"]["landmark_error_px"] < 15
        assert m["overlay"].endswith(".png")
    f = job["figures"]
    assert f["photos_used"] == 2 and f["photos_given"] == 3 and f["aggregate"] == "joint"
    assert [x["name"] for x in f["failed"]] == ["broken.jpg"] and f["failed"][0]["reason"]
    assert 0 < f["fit_seconds"] <= f["total_seconds"] <= f["since_upload_seconds"]
    # progress per photo while fitting: each fitted photo showed its own steps
    member_stages = {(m["name"], m["stage"]) for j in seen for m in j["members"]}
    for name in ("aaron one.jpg", "aaron_two.jpg"):
        assert any(n == name and re.fullmatch(r"fitting: step \d+ of 13", st) for n, st in member_stages), name
    assert any(st.startswith("combining 2 photos") for st in (j["stage"] for j in seen))
    progress = [j["progress"] for j in seen]
    assert progress == sorted(progress), "the person's progress went backwards"


def test_person_files_download(client, person):
    sid, job, _ = person
    files = job["files"]
    assert set(files) >= {"glb", "obj", "mtl", "texture", "ply", "params", "landmarks", "members", "zip"}
    glb = client.get(files["glb"])
    assert glb.status_code == 200 and glb.headers["content-type"] == "model/gltf-binary"
    from tests.test_web_browser import check_glb

    check_glb(glb.content)
    members = client.get(files["members"]).json()
    assert members["aggregate"] == "joint"
    assert [m["source"] for m in members["members"]] == ["aaron one.jpg", "aaron_two.jpg"]
    overlays = [m["overlay"] for m in members["members"]]
    assert overlays == ["overlays/aaron_one.png", "overlays/aaron_two.png"]
    assert [x["name"] for x in members["details"]["failed_photos"]] == ["broken.jpg"]
    params = client.get(files["params"]).json()
    assert params["extra"]["photos"] == 2
    for m in job["members"]:
        if m["state"] == "done":
            r = client.get(m["overlay"])
            assert r.status_code == 200 and r.headers["content-type"] == "image/png"
            assert Image.open(io.BytesIO(r.content)).size == (250, 250)
    assert client.get(files["obj"]).text.startswith(("#", "mtllib", "v "))
    assert Image.open(io.BytesIO(client.get(files["texture"]).content)).size == (256, 256)
    assert client.get(files["ply"]).content.startswith(b"ply")
    z = client.get(files["zip"] + "?download=1")
    assert "attachment" in z.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        assert set(zf.namelist()) >= {"face.glb", "face.obj", "face.mtl", "face_texture.png", "face.ply",
                                      "params.json", "members.json", *overlays}
        assert zf.read("face.glb") == glb.content
    root = str(web_of(client).store.root)
    for text in (json.dumps(job), client.get(files["members"]).text, client.get(files["params"]).text):
        assert root not in text and "uploads" not in text, "a server path leaked"


def test_person_files_stay_inside_the_job_folder(client, person):
    sid, job, _ = person
    base = f"/api/sessions/{sid}/jobs/{job['id']}/files"
    assert client.get(f"{base}/overlays/aaron_one.png").status_code == 200
    # (a plain "overlays/../x" is resolved by the client before sending; encoded dots reach the server)
    for bad in ("overlays%2F..%2Fface.glb", "overlays%2F..%2F..%2F..%2Fuploads%2F0001.jpg", "overlays",
                "overlays/", "overlays%2Faaron_one.png%2F..", "..%2F..%2Fuploads%2F0001.jpg", "/etc/passwd",
                "overlays%2F%2E%2E%2Fmembers.json", "overlays%5C..%5Cface.glb"):
        r = client.get(f"{base}/{bad}")
        assert r.status_code == 404, (bad, r.status_code)


def test_person_aggregate_choice_and_a_person_with_no_usable_photo(client):
    sid = client.post("/api/sessions").json()["id"]
    r = client.post(f"/api/sessions/{sid}/people", params={"aggregate": "nonsense"})
    assert r.status_code == 400 and "joint" in r.json()["error"]
    median = new_person(client, sid, aggregate="median")
    for name in ("a.jpg", "b.jpg"):
        assert upload(client, sid, name, need_shared(*PHOTO).read_bytes(), person=median).status_code == 201
    start_person(client, sid, median)
    hopeless = new_person(client, sid)
    assert upload(client, sid, "broken.jpg", b"not an image", person=hopeless).status_code == 201
    blank = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 90, 60)).save(blank, format="PNG")
    assert upload(client, sid, "blank.png", blank.getvalue(), person=hopeless).status_code == 201
    start_person(client, sid, hopeless)
    empty = new_person(client, sid)
    start_person(client, sid, empty)
    jobs, _ = wait_jobs(client, sid, 3)
    by = {j["id"]: j for j in jobs}
    assert by[median]["state"] == "done" and by[median]["figures"]["aggregate"] == "median"
    assert client.get(by[median]["files"]["members"]).json()["aggregate"] == "median"
    bad = by[hopeless]
    assert bad["state"] == "failed" and "no usable photo" in bad["error"]
    assert [m["state"] for m in bad["members"]] == ["failed", "failed"]
    assert "face" in bad["members"][1]["error"] and bad["members"][0]["error"]
    assert by[empty]["state"] == "failed" and "no photo" in by[empty]["error"]


def test_a_started_person_takes_no_more_photos(client):
    sid = client.post("/api/sessions").json()["id"]
    pid = new_person(client, sid)
    assert upload(client, sid, "x.jpg", b"not an image", person=pid).status_code == 201
    start_person(client, sid, pid)
    r = upload(client, sid, "late.jpg", b"not an image", person=pid)
    assert r.status_code == 409 and "already started" in r.json()["error"]
    assert client.post(f"/api/sessions/{sid}/people/{pid}/start").status_code == 409
    assert upload(client, sid, "y.jpg", b"x", person="nosuchperson1").status_code == 404
    other = client.post("/api/sessions").json()["id"]  # a person is only reachable from its own session
    assert client.post(f"/api/sessions/{other}/people/{pid}/start").status_code == 404
    assert upload(client, other, "y.jpg", b"x", person=pid).status_code == 404
    wait_jobs(client, sid, 1)


# --- bad files never stop the others ------------------------------------------------------------
def test_bad_files_fail_alone(client, tmp_path):
    sid = client.post("/api/sessions").json()["id"]
    blank = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 90, 60)).save(blank, format="PNG")
    assert upload(client, sid, "broken.jpg", b"this is not a JPEG").status_code == 201
    assert upload(client, sid, "blank.png", blank.getvalue()).status_code == 201
    assert upload(client, sid, "serena.jpg", need_shared(*PHOTO2).read_bytes()).status_code == 201
    jobs, _ = wait_jobs(client, sid, 3)
    by = {j["name"]: j for j in jobs}
    assert by["broken.jpg"]["state"] == "failed" and by["broken.jpg"]["error"]
    assert by["blank.png"]["state"] == "failed" and "face" in by["blank.png"]["error"]
    assert by["serena.jpg"]["state"] == "done"
    assert str(web_of(client).store.root) not in json.dumps(jobs), "a server path leaked to the page"


def test_wrong_type_empty_and_oversized_uploads_are_refused(client):
    sid = client.post("/api/sessions").json()["id"]
    r = upload(client, sid, "notes.txt", b"hello")
    assert r.status_code == 415 and "notes.txt" in r.json()["error"]
    assert upload(client, sid, "empty.jpg", b"").status_code == 400
    big = b"\xff" * (LIMITS.max_photo_bytes + 1)
    r = upload(client, sid, "big.jpg", big)  # refused from its Content-Length
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks():  # no Content-Length: refused while streaming
        for _ in range(4):
            yield b"\xff" * (LIMITS.max_photo_bytes // 3)

    r = client.post(f"/api/sessions/{sid}/uploads", params={"name": "big2.jpg"}, content=chunks())
    assert r.status_code == 413
    session = web_of(client).store.get(sid)
    assert list((session.folder / "uploads").iterdir()) == [], "a refused upload left a file"
    assert session.uploads == 0 and client.get(f"/api/sessions/{sid}").json()["jobs"] == []


def test_upload_count_is_limited(client):
    sid = client.post("/api/sessions").json()["id"]
    codes = [upload(client, sid, f"x{i}.jpg", b"not an image").status_code for i in range(LIMITS.max_files + 1)]
    assert codes == [201] * LIMITS.max_files + [429]
    wait_jobs(client, sid, LIMITS.max_files)


# --- nothing outside the session's folder is served ---------------------------------------------
def test_path_traversal_is_refused(client, done):
    sid, job, _ = done
    base = f"/api/sessions/{sid}/jobs/{job['id']}/files"
    assert client.get(f"{base}/face.glb").status_code == 200
    for bad in ("..%2F..%2Fuploads%2F0001.jpg", "..%2f..%2f..%2f..%2fetc%2fpasswd", "%2e%2e", "..",
                "face.glb%00", "%2Fetc%2Fpasswd", "..%5C..%5Cuploads%5C0001.jpg", "report.json"):
        r = client.get(f"{base}/{bad}")
        assert r.status_code == 404, (bad, r.status_code)
    for url in (f"/api/sessions/{sid}/jobs/..%2F..%2F{sid}/files/face.glb",
                f"/api/sessions/..%2F{sid}/jobs/{job['id']}/files/face.glb",
                "/static/..%2F..%2Fapp.py", "/static/../app.py", "/static/%2e%2e/app.py"):
        r = client.get(url)
        assert r.status_code == 404 and b"import" not in r.content, url
    other = client.post("/api/sessions").json()["id"]
    r = client.get(f"/api/sessions/{other}/jobs/{job['id']}/files/face.glb")
    assert r.status_code == 404, "a job was served through another session"


def test_result_file_refuses_a_link_out_of_the_folder(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    session = Session("abcdefgh1234", tmp_path / "s", WebConfig())
    job = session.add_job("x.jpg", None)
    folder = session.results_dir(job.id)
    folder.mkdir(parents=True)
    (folder / "face.glb").write_bytes(b"glTF")
    (folder / "face.ply").symlink_to(outside)
    session.update(job, files={"glb": "face.glb", "ply": "face.ply"})
    assert session.result_file(job.id, "face.glb") == (folder / "face.glb").resolve()
    assert session.result_file(job.id, "face.ply") is None
    (folder / "face.obj").write_text("v 0 0 0\n")  # inside the folder, but not a file the job listed
    assert session.result_file(job.id, "face.obj") is None
    assert session.result_file(job.id, "../../secret.txt") is None
    assert session.result_file("../" + job.id, "face.glb") is None


def test_a_person_takes_photos_only_until_started_and_people_are_limited(tmp_path):
    session = Session("abcdefgh1234", tmp_path / "s", WebConfig(max_files=2))
    job = session.add_person("joint")
    assert session.add_member(job, "a.jpg", tmp_path / "a.jpg") is not None
    assert session.add_member(job, "bad.mp4", None, error="cannot open the video").state == "failed"
    assert session.start_person(job) and job.state == "queued"
    assert not session.start_person(job), "a person was started twice"
    assert session.add_member(job, "late.jpg", tmp_path / "late.jpg") is None  # an upload racing the start
    assert [m.name for m in job.members] == ["a.jpg", "bad.mp4"]
    assert session.add_person("mean") is not None and session.add_person("mean") is None, "people not limited"
    assert session.person(job.id) is job and session.person(session.add_job("x.jpg", None).id) is None


# --- sessions end, expire, and take their files with them ----------------------------------------
def test_ending_a_session_deletes_its_files(client):
    sid = client.post("/api/sessions").json()["id"]
    assert upload(client, sid, "broken.jpg", b"not an image").status_code == 201
    wait_jobs(client, sid, 1)
    folder = web_of(client).store.get(sid).folder
    assert folder.is_dir()
    assert client.post(f"/api/sessions/{sid}/end").status_code == 204
    assert not folder.exists()
    assert client.get(f"/api/sessions/{sid}").status_code == 404
    assert upload(client, sid, "a.jpg", b"x").status_code == 404
    assert client.delete(f"/api/sessions/{sid}").status_code == 404


def test_idle_sessions_expire(client):
    store = web_of(client).store
    sid = client.post("/api/sessions").json()["id"]
    folder = store.get(sid).folder
    assert store.expire(now=time.monotonic()) == []
    assert sid in store.expire(now=time.monotonic() + LIMITS.session_minutes * 60 + 1)
    assert not folder.exists() and client.get(f"/api/sessions/{sid}").status_code == 404


class SlowRecon:
    """A stand-in reconstructor whose ``prepare`` waits for a signal, then finds no face."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.running = 0
        self.most = 0
        self.calls: list[str] = []

    def prepare(self, source):
        from facerecon.imageio import NoFaceError

        self.running += 1
        self.most = max(self.most, self.running)
        self.calls.append(Path(source).name)
        self.go.wait(30)
        self.running -= 1
        raise NoFaceError(source)


def test_one_job_at_a_time_in_a_queue_and_server_stop_cleans_up(tmp_path):
    recon = SlowRecon()
    app = create_app(WebConfig(max_sessions=2), build=lambda: (recon, None), tmp_root=tmp_path)
    with TestClient(app) as c:
        root = app.state.web.store.root
        sid = c.post("/api/sessions").json()["id"]
        for name in ("a.jpg", "b.jpg", "c.jpg"):
            assert upload(c, sid, name, b"x").status_code == 201
        deadline = time.time() + 10
        while not recon.calls and time.time() < deadline:
            time.sleep(0.01)
        jobs = {j["name"]: j for j in c.get(f"/api/sessions/{sid}").json()["jobs"]}
        assert jobs["a.jpg"]["state"] == "running"
        assert [jobs[n]["queue_position"] for n in ("b.jpg", "c.jpg")] == [1, 2]
        assert c.post("/api/sessions").status_code == 201
        assert c.post("/api/sessions").status_code == 503, "max_sessions not enforced"
        recon.go.set()
        final, _ = wait_jobs(c, sid, 3, timeout=30)
        assert [j["state"] for j in final] == ["failed"] * 3
        assert recon.most == 1 and recon.calls == ["0001.jpg", "0002.jpg", "0003.jpg"]
        assert root.is_dir()
    assert not root.exists(), "stopping the server left uploads behind"


def test_video_becomes_frames(tmp_path):
    import cv2

    rgb = np.asarray(Image.open(need_shared(*PHOTO)).convert("RGB"))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (rgb.shape[1], rgb.shape[0]))
    for i in range(20):
        writer.write(np.roll(rgb, i, axis=1)[:, :, ::-1].copy())
    writer.release()
    recon = SlowRecon()
    recon.go.set()
    app = create_app(LIMITS, build=lambda: (recon, None), tmp_root=tmp_path / "web")
    with TestClient(app) as c:
        sid = c.post("/api/sessions").json()["id"]
        r = upload(c, sid, "clip.avi", video.read_bytes())
        assert r.status_code == 201, r.text
        names = [j["name"] for j in r.json()["jobs"]]
        assert len(names) == LIMITS.video_frames and all(n.startswith("clip.avi @ ") for n in names)
        wait_jobs(c, sid, LIMITS.video_frames, timeout=30)
        assert recon.calls == [f"0001_frame{k:02d}.png" for k in (1, 2, 3)]
        r = upload(c, sid, "fake.mp4", b"not a video at all")
        assert r.status_code == 201 and r.json()["jobs"][0]["state"] == "failed"
        assert "video" in r.json()["jobs"][0]["error"]

        # one person: the video's frames are its photos; a bad video is one failed photo
        pid = c.post(f"/api/sessions/{sid}/people").json()["job"]["id"]
        assert upload(c, sid, "clip.avi", video.read_bytes(), person=pid).status_code == 201
        r = upload(c, sid, "fake.mp4", b"not a video at all", person=pid)
        assert r.status_code == 201
        members = r.json()["jobs"][0]["members"]
        assert [m["name"].startswith("clip.avi @ ") for m in members] == [True] * LIMITS.video_frames + [False]
        assert members[-1]["state"] == "failed" and "video" in members[-1]["error"]
        recon.calls.clear()
        assert c.post(f"/api/sessions/{sid}/people/{pid}/start").status_code == 200
        final, _ = wait_jobs(c, sid, LIMITS.video_frames + 2, timeout=30)
        assert recon.calls == [f"0003_frame{k:02d}.png" for k in (1, 2, 3)]
        person = next(j for j in final if j["id"] == pid)
        assert person["state"] == "failed" and "no usable photo" in person["error"]
        assert [m["state"] for m in person["members"]] == ["failed"] * (LIMITS.video_frames + 1)


# --- the page ------------------------------------------------------------------------------------
def test_page_and_its_assets_are_served_from_the_package(client):
    r = client.get("/")
    assert r.status_code == 200 and "Drop photos" in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self' 'sha256-" in csp
    refs = set(re.findall(r'(?:href|src)="(/static/[^"]+)"', r.text))
    refs |= set(re.findall(r'"(/static/[^"]+\.js)"', r.text))  # the import map
    static = Path(__file__).resolve().parents[1] / "facerecon" / "web" / "static"
    for js in ("app.js", "viewer.js"):
        refs |= set(re.findall(r"from '(/static/[^']+)'", (static / js).read_text()))
    assert len(refs) >= 6
    for ref in sorted(refs):
        assert client.get(ref).status_code == 200, ref
    for path in static.rglob("*"):
        if path.suffix in (".html", ".js", ".css") and "vendor" not in path.parts:
            text = path.read_text()
            assert not re.search(r"(?:src|href)=[\"']https?:|from ['\"]https?:|import\(['\"]https?:", text), path
    assert "MIT" in (static / "vendor" / "three" / "LICENSE").read_text()


def test_status_and_host_guard(tmp_path):
    app = create_app(WebConfig(), build=lambda: (SlowRecon(), None), allowed_hosts=["127.0.0.1"], tmp_root=tmp_path)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        doc = c.get("/api/status").json()
        assert doc["modes"]["single"] and doc["limits"]["max_files"] == WebConfig().max_files
        assert doc["modes"]["person"] and doc["modes"]["aggregate_default"] == "joint"
        assert doc["modes"]["aggregators"][0]["name"] == "joint"
        assert c.get("http://evil.example/api/status").status_code == 400  # DNS rebinding


def test_serve_command_help_and_loopback(capsys):
    from facerecon.cli import build_parser, main
    from facerecon.cli.serve import is_loopback

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.device) == ("127.0.0.1", 7860, "cpu")
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "WARNING: anything other than 127.0.0.1" in out and "--max-photo-mb" in out and "--steps" in out
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


def test_page_aggregators_follow_the_library_and_the_command_line():
    from facerecon.cli.multi import AGGREGATE_DEFAULT as CLI_DEFAULT
    from facerecon.multi.aggregate import AGGREGATORS
    from facerecon.web.config import AGGREGATE_DEFAULT, AGGREGATE_HELP

    assert AGGREGATE_DEFAULT == CLI_DEFAULT
    assert set(AGGREGATE_HELP) == set(AGGREGATORS) and all(AGGREGATE_HELP.values())


def test_overlay_file_stems_are_safe_and_distinct():
    from facerecon.web.sessions import file_stems

    names = ["a b.jpg", "a_b.png", "../../etc/passwd", "..", ".hidden.JPG", "clip.avi @ 1.5 s", "x" * 200 + ".jpg", ""]
    stems = file_stems(names)
    assert stems[:2] == ["a_b", "a_b-2"] and stems[3] == "photo" and stems[4] == "hidden"
    assert len(set(stems)) == len(stems)
    for stem in stems:
        assert re.fullmatch(r"[\w.-]{1,64}", stem) and not stem.startswith(".") and "/" not in stem


def test_the_page_fits_with_the_default_engines_own_configs(tmp_path):
    """With no fitting given, the page's reconstructor runs the default engine with its own
    single-photo and joint configs, as ``facerecon reconstruct`` would; given ones are used."""
    from dataclasses import replace

    from facerecon.pipeline import default_engine, engine_config

    engine = default_engine()[0]
    worker = create_app(WebConfig(), tmp_root=tmp_path).state.web.worker
    assert worker.fit_config == engine_config(engine)
    recon, _ = worker._build()
    assert recon.engine == engine and recon.config == engine_config(engine)
    assert recon.joint_config == engine_config(engine, joint=True)
    assert engine != "rnet-prior" or recon.joint_config != recon.config  # (they differ there)
    single, joint = replace(engine_config(engine), steps=7), replace(engine_config(engine, joint=True), steps=9)
    recon, _ = create_app(WebConfig(), fit_config=single, joint_config=joint, tmp_root=tmp_path).state.web.worker._build()
    assert (recon.config, recon.joint_config) == (single, joint)


def test_serve_passes_the_fitting_flags_to_both_the_single_photo_and_the_joint_fit(monkeypatch):
    """``facerecon serve --steps 7`` fits with 7 steps, alone and jointly; without flags each fit
    gets the default engine's own config (engine_config), as the reconstruct command does."""
    import uvicorn

    import facerecon.web.app as web_app
    from facerecon.cli import main
    from facerecon.pipeline import default_engine, engine_config

    seen: list[dict] = []
    monkeypatch.setattr(web_app, "create_app", lambda config, **kw: seen.append(kw) or object())
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    assert main(["serve", "--steps", "7", "--no-perceptual"]) == 0
    assert main(["serve"]) == 0
    given, plain = seen
    assert given["fit_config"].steps == 7 and given["joint_config"].steps == 7
    assert not given["fit_config"].perceptual and not given["joint_config"].perceptual
    engine = default_engine()[0]
    assert plain["fit_config"] == engine_config(engine) and plain["joint_config"] == engine_config(engine, joint=True)
