"""The page in a real browser: Debian's chromium + chromedriver driven by selenium.

A real uvicorn server (fast fitting config) serves the page; the browser uploads a shared LFW
photo through the file input, waits for the 3D view, and the test checks that the canvas holds
a drawn face (many colours, unlike the empty background), that the texture and wireframe
toggles change it, that the page loaded nothing from elsewhere (its CSP would refuse it and log
it), and that the GLB behind the download link is a well-formed glTF 2.0 binary. In "one
person" mode it drops two photos of one person, a broken photo and a text file together and
checks that one face is drawn from the two, with an overlay per photo and the other two listed
as not used, each with its reason.

Skipped, with the reason, where chromium, chromedriver or selenium is missing. Set
``FACERECON_SCREENSHOT=path.png`` to save the window after the one-person run and
``FACERECON_WEB_FIT=default`` to fit with the server's default settings instead of the fast test
ones (how docs/serve.png and the drop-to-3D time in BENCHMARKS.md were made; ``-s`` prints the
times).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import struct
import threading
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.conftest import need_shared

PHOTO = ("faces", "lfw", "Colin_Powell", "Colin_Powell_0001.jpg")
PHOTO_SAME = ("faces", "lfw", "Colin_Powell", "Colin_Powell_0002.jpg")  # the same person again
BACKGROUND = np.array([0x20, 0x24, 0x2C])  # the 3D view's clear colour


def _browser() -> tuple[str, str]:
    """Paths of chromium and chromedriver, or skip with the reason."""
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no browser: the browser test needs chromium and chromedriver "
                    "(Debian: apt-get install chromium chromium-driver; .ci/run installs them)")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real uvicorn server on a free loopback port, in a thread: its base URL."""
    pytest.importorskip("uvicorn")
    import uvicorn

    from facerecon.fitting.engine import FitConfig
    from facerecon.web.app import create_app
    from facerecon.web.config import WebConfig

    _browser()
    need_shared(*PHOTO)
    port = _free_port()
    # FACERECON_WEB_FIT=default: the fitting settings `facerecon serve` uses (BENCHMARKS.md, docs/serve.png).
    if os.environ.get("FACERECON_WEB_FIT") == "default":
        from facerecon.cli import set_cpu_threads

        set_cpu_threads(None)  # the thread count `facerecon serve` runs with
        fit = FitConfig()
    else:
        fit = FitConfig(landmark_steps=10, steps=3, perceptual=False)
    app = create_app(WebConfig(texture_size=512 if fit.steps < 10 else 1024), fit_config=fit,
                     allowed_hosts=["127.0.0.1"], tmp_root=tmp_path_factory.mktemp("web"))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(20)


@pytest.fixture(scope="module")
def browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = _browser()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--window-size=1280,900"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver path is given, so selenium never looks for (or downloads) a driver of its own.
    os.environ.setdefault("SE_OFFLINE", "true")
    drv = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    yield drv
    drv.quit()


def canvas_pixels(drv) -> np.ndarray:
    """The 3D view's canvas as (H,W,3) uint8, read back through toDataURL."""
    url = drv.execute_script("return document.querySelector('#viewer canvas').toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def assert_face_drawn(drawn: np.ndarray) -> None:
    """The canvas shows a textured, lit face in the middle, not an empty or flat view."""
    assert drawn.shape[0] > 200 and drawn.shape[1] > 200
    face = np.abs(drawn.astype(int) - BACKGROUND).sum(-1) > 30
    assert face.mean() > 0.1, f"only {face.mean():.1%} of the canvas differs from the background"
    colours = len(np.unique(drawn[face].reshape(-1, 3) // 8, axis=0))
    assert colours > 200, f"the face has only {colours} colours: not a textured, lit face"
    h, w = face.shape
    assert face[h // 3: 2 * h // 3, 2 * w // 5: 3 * w // 5].mean() > 0.9, "the face is not in the middle of the view"


def console_problems(drv) -> list[str]:
    """Errors and warnings in the browser console, except the GL driver's note that our own
    read-backs stall the GPU."""
    return [e["message"] for e in drv.get_log("browser")
            if e["level"] in ("SEVERE", "WARNING") and "GL Driver Message" not in e["message"]]


def open_page(drv, server: str) -> None:
    """Load the page and wait for its session."""
    from selenium.webdriver.support.ui import WebDriverWait

    drv.get(server + "/")
    WebDriverWait(drv, 60).until(lambda d: d.execute_script("return !!(window.facerecon && window.facerecon.sid)"))


def check_glb(data: bytes) -> dict:
    """Validate a binary glTF 2.0 file's structure; returns its JSON document."""
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and version == 2 and length == len(data)
    chunks, off = [], 12
    while off < length:
        clen, ctype = struct.unpack_from("<I4s", data, off)
        assert clen % 4 == 0 and off + 8 + clen <= length, "chunk runs past the file"
        chunks.append((ctype, data[off + 8: off + 8 + clen]))
        off += 8 + clen
    assert off == length and chunks[0][0] == b"JSON" and chunks[1][0] == b"BIN\x00"
    doc = json.loads(chunks[0][1].decode("utf-8"))
    binary = chunks[1][1]
    assert doc["asset"]["version"] == "2.0"
    assert doc["buffers"][0]["byteLength"] <= len(binary) and "uri" not in doc["buffers"][0]
    sizes = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
    comp = {5121: 1, 5123: 2, 5125: 4, 5126: 4}
    for view in doc["bufferViews"]:
        assert view.get("byteOffset", 0) + view["byteLength"] <= doc["buffers"][view["buffer"]]["byteLength"]
    for acc in doc["accessors"]:
        view = doc["bufferViews"][acc["bufferView"]]
        need = acc.get("byteOffset", 0) + acc["count"] * sizes[acc["type"]] * comp[acc["componentType"]]
        assert need <= view["byteLength"], f"accessor runs past its buffer view: {acc}"
    prim = doc["meshes"][0]["primitives"][0]
    assert {"POSITION", "NORMAL", "TEXCOORD_0"} <= set(prim["attributes"])
    assert doc["accessors"][prim["indices"]]["count"] % 3 == 0
    image = doc["images"][doc["textures"][doc["materials"][prim["material"]]["pbrMetallicRoughness"]
                                        ["baseColorTexture"]["index"]]["source"]]
    view = doc["bufferViews"][image["bufferView"]]
    assert binary[view.get("byteOffset", 0):][:8] == b"\x89PNG\r\n\x1a\n"
    return doc


def test_page_uploads_fits_and_draws_the_face(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    drv = browser
    open_page(drv, server)
    photo = need_shared(*PHOTO)
    t0 = time.perf_counter()
    drv.find_element(By.ID, "file-input").send_keys(str(photo))
    WebDriverWait(drv, 240).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#viewer[data-state='drawn']")))
    drop_to_3d = time.perf_counter() - t0
    print(f"drop to 3D view: {drop_to_3d:.1f} s")
    time.sleep(0.5)  # let the ResizeObserver's last render land

    drawn = canvas_pixels(drv)
    assert_face_drawn(drawn)

    drv.find_element(By.ID, "opt-texture").click()
    plain = canvas_pixels(drv)
    assert np.abs(plain.astype(int) - drawn.astype(int)).mean() > 3, "texture off changed nothing"
    drv.find_element(By.ID, "opt-texture").click()
    drv.find_element(By.ID, "opt-wireframe").click()
    wire = canvas_pixels(drv)
    assert np.abs(wire.astype(int) - drawn.astype(int)).mean() > 3, "wireframe changed nothing"
    drv.find_element(By.ID, "opt-wireframe").click()

    preview = drv.find_element(By.ID, "preview")
    assert drv.execute_script("return arguments[0].complete && arguments[0].naturalWidth", preview) > 0
    figures = drv.find_element(By.ID, "figures").text
    assert "°" in figures and "px" in figures and " s" in figures
    link = drv.find_element(By.CSS_SELECTOR, "#downloads a[data-file='glb']").get_attribute("href")
    data = urllib.request.urlopen(link, timeout=30).read()
    doc = check_glb(data)
    assert doc["nodes"][0].get("scale") == [0.001, 0.001, 0.001]
    kinds = {a.get_attribute("data-file") for a in drv.find_elements(By.CSS_SELECTOR, "#downloads a")}
    assert {"glb", "obj", "mtl", "texture", "ply", "params", "zip"} <= kinds

    problems = console_problems(drv)
    assert not problems, "browser console:\n" + "\n".join(problems)


def test_page_fits_one_person_from_several_photos(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    drv = browser
    open_page(drv, server)
    select = drv.find_element(By.ID, "aggregate")
    assert not select.is_enabled(), "the aggregate menu is live in single-photo mode"
    drv.find_element(By.CSS_SELECTOR, "input[name='mode'][value='person']").click()
    assert select.is_enabled() and select.get_attribute("value") == "joint"
    options = [o.get_attribute("value") for o in select.find_elements(By.TAG_NAME, "option")]
    assert {"joint", "kmeans", "mean", "median", "quality", "segments", "confidence"} == set(options)
    assert drv.find_element(By.ID, "aggregate-help").text
    broken = tmp_path / "broken.jpg"  # uploaded, then fails on the server
    broken.write_bytes(b"this is not a JPEG")
    notes = tmp_path / "notes.txt"  # refused by the page itself, never uploaded
    notes.write_text("not a photo")
    photos = [need_shared(*PHOTO), need_shared(*PHOTO_SAME), broken, notes]
    t0 = time.perf_counter()
    drv.find_element(By.ID, "file-input").send_keys("\n".join(str(p) for p in photos))
    # until the person's face is drawn, or every job has ended without that (fails at once, not at the timeout)
    outcome = WebDriverWait(drv, 600).until(lambda d: d.execute_script("""
        if (document.querySelector("#result[data-kind='person'] #viewer[data-state='drawn']")) return 'drawn';
        const s = window.facerecon, jobs = [...s.jobs.values()];
        const busy = s.local.some((j) => j.state !== 'failed') ||
                     jobs.some((j) => ['collecting', 'queued', 'running'].includes(j.state));
        return jobs.length && !busy && document.getElementById('viewer').dataset.state !== 'loading' ? 'ended' : false;
    """))
    assert outcome == "drawn", "every job ended but no person's face was drawn"
    print(f"drop of 4 files (one person) to 3D view: {time.perf_counter() - t0:.1f} s")
    time.sleep(0.5)
    assert_face_drawn(canvas_pixels(drv))

    jobs = drv.execute_script("return [...window.facerecon.jobs.values()]")
    assert len(jobs) == 1 and jobs[0]["kind"] == "person", "the files did not become one person"
    members = {m["name"]: m for m in jobs[0]["members"]}
    assert [members[p.name]["state"] for p in photos[:3]] == ["done", "done", "failed"]
    shown = drv.find_elements(By.CSS_SELECTOR, "#jobs .member")
    assert [m.get_attribute("data-state") for m in shown] == ["done", "done", "failed", "failed"]
    assert "notes.txt" in shown[3].text and "not a photo" in shown[3].text

    strip = drv.find_elements(By.CSS_SELECTOR, "#strip img")
    assert len(strip) == 2
    for img in strip:
        WebDriverWait(drv, 20).until(lambda d, img=img: d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", img))
    drv.find_elements(By.CSS_SELECTOR, "#strip button")[1].click()
    assert drv.find_element(By.ID, "preview").get_attribute("src") == strip[1].get_attribute("src")
    figures = drv.find_element(By.ID, "figures").text
    assert "2 of 4" in figures and "broken.jpg" in figures and "notes.txt" in figures and "joint" in figures
    kinds = {a.get_attribute("data-file") for a in drv.find_elements(By.CSS_SELECTOR, "#downloads a")}
    assert {"glb", "obj", "mtl", "texture", "ply", "params", "members", "preview", "zip"} <= kinds
    link = drv.find_element(By.CSS_SELECTOR, "#downloads a[data-file='members']").get_attribute("href")
    doc = json.loads(urllib.request.urlopen(link, timeout=30).read())
    assert [m["source"] for m in doc["members"]] == [PHOTO[-1], PHOTO_SAME[-1]]
    problems = console_problems(drv)
    assert not problems, "browser console:\n" + "\n".join(problems)
    if os.environ.get("FACERECON_SCREENSHOT"):
        drv.find_elements(By.CSS_SELECTOR, "#strip button")[0].click()
        drv.set_window_size(1280, 1000)
        time.sleep(1.0)
        drv.save_screenshot(os.environ["FACERECON_SCREENSHOT"])


def test_check_glb_catches_a_broken_file():
    """The glTF check itself rejects a truncated file and a wrong buffer length."""
    bin_part = b"\x00" * 8
    doc = {"asset": {"version": "2.0"}, "buffers": [{"byteLength": 64}], "bufferViews": [], "accessors": []}
    js = json.dumps(doc).encode()
    js += b" " * (-len(js) % 4)
    body = struct.pack("<I4s", len(js), b"JSON") + js + struct.pack("<I4s", len(bin_part), b"BIN\x00") + bin_part
    glb = struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body
    with pytest.raises(AssertionError):
        check_glb(glb)  # buffer says 64 bytes, the BIN chunk has 8
    with pytest.raises((AssertionError, struct.error)):
        check_glb(glb[:-4])


def test_canvas_reader_sees_a_blank_view(server, browser):
    """Guard for the pixel check: a freshly made viewer with no face is one flat colour."""
    from selenium.webdriver.support.ui import WebDriverWait

    drv = browser
    open_page(drv, server)
    drv.execute_script("""
        const d = document.getElementById('detail'); d.hidden = false;
        return import('/static/viewer.js').then(m => { window._v = new m.FaceViewer(document.getElementById('viewer')); });
    """)
    WebDriverWait(drv, 20).until(lambda d: d.execute_script("return !!window._v"))
    blank = canvas_pixels(drv)
    assert len(np.unique(blank.reshape(-1, 3), axis=0)) <= 2
