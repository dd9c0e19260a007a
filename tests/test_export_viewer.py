"""A real viewer opens face.glb: headless Chromium (SwiftShader WebGL) shows it in Google's
<model-viewer> (three.js), from the front and from 45°. The pictures must show an upright head
of real size (model-viewer's own bounding box, in metres), with no see-through hole in the
silhouette (mouth and eyes closed from inside), dark pupils in the upper half, and — in the front
view of a face turned 30° in its photo — both cheeks of one colour (the unseen side completed).

Skipped, with the reason, where Chromium, chromedriver, selenium or model-viewer is missing.
model-viewer comes from npm into a git-ignored folder: ``npm pack @google/model-viewer`` in
``.venv/model-viewer`` and unpack it there (or point ``$FACERECON_MODEL_VIEWER`` at
``model-viewer.min.js``). With ``$FACERECON_VIEWER_GLB`` (a face.glb) and
``$FACERECON_VIEWER_OUT`` (a folder) the same harness renders that file and keeps the pictures
(how docs/viewer_*.png were made).
"""

from __future__ import annotations

import base64
import functools
import http.server
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(__file__).parent / "viewer" / "model_viewer.html"
ORBITS = {"front": "0deg 90deg auto", "45deg": "45deg 90deg auto"}


def model_viewer_js() -> Path | None:
    """model-viewer.min.js from ``$FACERECON_MODEL_VIEWER`` or the git-ignored npm folder."""
    env = os.environ.get("FACERECON_MODEL_VIEWER")
    for cand in ([Path(env)] if env else []) + [
            ROOT / ".venv" / "model-viewer" / "package" / "dist" / "model-viewer.min.js",
            ROOT / ".venv" / "model-viewer" / "node_modules" / "@google" / "model-viewer" / "dist" / "model-viewer.min.js"]:
        if cand.is_file():
            return cand
    return None


def browser_or_skip() -> tuple[str, str, Path]:
    """(chromium, chromedriver, model-viewer.min.js) or skip the test saying what is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    js = model_viewer_js()
    missing = [what for what, ok in (("chromium (apt-get install chromium)", chromium),
                                     ("chromedriver (apt-get install chromium-driver)", driver),
                                     ("model-viewer.min.js (npm pack @google/model-viewer into .venv/model-viewer)", js))
               if not ok]
    try:
        import selenium  # noqa: F401 - only whether it is there
    except ImportError:
        missing.append("the selenium package (pip install selenium)")
    if missing:
        pytest.skip("no headless viewer: missing " + ", ".join(missing))
    return chromium, driver, js


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D102 - silence the request log
        pass


def render_in_model_viewer(glb: Path, orbits: dict[str, str], size: int = 512, timeout_s: float = 60.0,
                           uniform_light: bool = False) -> tuple[dict[str, np.ndarray], list[float]]:
    """Render ``glb`` in <model-viewer> in headless Chromium: {name: (size,size,3) uint8 RGB}
    for each camera orbit, and model-viewer's bounding-box size of the model (x, y, z) in metres.
    ``uniform_light``: light from a uniform grey environment instead of model-viewer's default
    (whose key light makes one side of a face brighter)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, driver_path, js = browser_or_skip()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        shutil.copy(HARNESS, site / "index.html")
        shutil.copy(js, site / "model-viewer.min.js")
        shutil.copy(glb, site / "face.glb")
        import cv2

        cv2.imwrite(str(site / "uniform.png"), np.full((32, 64, 3), 200, np.uint8))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        opts = Options()
        opts.binary_location = chromium
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--enable-unsafe-swiftshader",
                     "--use-angle=swiftshader", f"--user-data-dir={site / 'profile'}",
                     f"--window-size={size},{size}", "--force-device-scale-factor=1", "--hide-scrollbars"):
            opts.add_argument(flag)
        browser = webdriver.Chrome(service=Service(driver_path), options=opts)
        images: dict[str, np.ndarray] = {}
        dims: list[float] = []
        try:
            port = server.server_address[1]
            env = "&env=uniform.png" if uniform_light else ""
            browser.get(f"http://127.0.0.1:{port}/index.html?src=face.glb{env}")
            WebDriverWait(browser, timeout_s).until(lambda d: d.title == "ready" or d.title.startswith("error"))
            assert browser.title == "ready", f"model-viewer could not show the file: {browser.title}"
            browser.set_script_timeout(timeout_s)
            for name, orbit in orbits.items():
                # move the camera, wait two frames, read the canvas
                url = browser.execute_async_script(
                    "const done = arguments[arguments.length - 1];"
                    "const mv = document.getElementById('mv');"
                    "mv.cameraOrbit = arguments[0]; mv.jumpCameraToGoal();"
                    "requestAnimationFrame(() => requestAnimationFrame(() => done(mv.toDataURL('image/png'))));",
                    orbit)
                png = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
                bgra = cv2.imdecode(png, cv2.IMREAD_UNCHANGED).astype(np.float64)
                alpha = bgra[..., 3:4] / 255.0 if bgra.shape[2] == 4 else 1.0
                rgb = bgra[..., 2::-1] * alpha + 255.0 * (1.0 - alpha)  # the page is white
                img = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
                if img.shape[:2] != (size, size):
                    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
                images[name] = img
                d = browser.execute_script("const v = document.getElementById('mv').getDimensions();"
                                           "return [v.x, v.y, v.z];")
                dims = [float(x) for x in d]
        finally:
            browser.quit()
            server.shutdown()
    return images, dims


def silhouette(image: np.ndarray, background: int = 255, tol: int = 6) -> np.ndarray:
    """(H,W) bool: pixels that differ from the white background."""
    return (np.abs(image.astype(np.int32) - background) > tol).any(-1)


def holes(mask: np.ndarray) -> np.ndarray:
    """Background pixels enclosed by the silhouette (not connected to the image border)."""
    import cv2

    bg = (~mask).astype(np.uint8)
    n, labels = cv2.connectedComponents(bg, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return (bg > 0) & ~np.isin(labels, border)


@pytest.fixture(scope="module")
def viewer_glb(ict_archive, tmp_path_factory) -> Path:
    """face.glb of a synthetic face turned 30° in its photo, written by write_reconstruction. The
    "photo" is the fitted model's albedo (skin, brows, lips) under uniform light, with a dark
    stubble below the mouth on both sides that the model's colour does not have — as real
    faces have detail no fit explains."""
    browser_or_skip()
    from facerecon.export.headmesh import export_model
    from facerecon.export.photo import posed_mesh
    from facerecon.export.reconstruction import write_reconstruction
    from facerecon.facemodel import load_face_model
    from facerecon.render import Renderer
    from tests.test_export import Scene, aligned_for

    head = load_face_model("head")
    scene = Scene(head)
    scene.params.gamma = torch.tensor([[1.0] + [0.0] * 8])
    model = export_model(head)
    posed = posed_mesh(model, scene.params)
    y = model.mean[:, 1].numpy()
    stubble = 1.0 - 0.35 * np.clip((-30.0 - y) / 10.0, 0.0, 1.0)  # y below the mouth: 35 % darker
    colors = torch.from_numpy((posed.color * stubble[:, None]).astype(np.float32))[None]
    out = Renderer(scene.camera.scaled(448))(torch.from_numpy(posed.verts_cam)[None], model.faces, colors)
    photo = scene.photo.copy()
    px, py = scene.pad
    render = (out.image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    mask = out.mask[0, 0].numpy() > 0
    photo[py:py + 448, px:px + 448][mask] = render[mask]
    folder = tmp_path_factory.mktemp("viewer")
    write_reconstruction(folder, photo=photo, aligned=aligned_for(scene), params=scene.params, face_model_head=head,
                         camera=scene.camera, texture_size=512)
    return folder / "face.glb"


def test_face_glb_in_model_viewer(viewer_glb):
    images, dims = render_in_model_viewer(viewer_glb, ORBITS, size=384, uniform_light=True)
    # real size: model-viewer's bounding box of the head (with neck) in metres
    assert 0.18 < dims[1] < 0.40 and 0.15 < dims[0] < 0.30, dims
    for name, img in images.items():
        mask = silhouette(img)
        assert 0.08 < mask.mean() < 0.8, f"{name}: silhouette covers {mask.mean():.2f} of the picture"
        # closed from inside: nothing of the background shows through the mouth or the eyes
        assert holes(mask).sum() == 0, f"{name}: {holes(mask).sum()} background pixels inside the head"
        # upright: the head is round at the top, the neck opens towards the shoulders below
        rows = np.flatnonzero(mask.any(1))
        assert rows[0] > 0 and rows[-1] < mask.shape[0] - 1, f"{name}: the head does not fit the picture"
        width = mask.sum(1)[rows[0]:rows[-1] + 1]
        at = lambda f: width[int(f * (len(width) - 1))]  # noqa: E731 - width at a fraction of the height
        assert at(0.85) > 1.3 * at(0.08), f"{name}: head upside down? widths {at(0.08)} (top), {at(0.85)} (bottom)"
    # the front view is symmetric in colour: the jaw the photo did not see was completed from
    # the one it saw, stubble and all (before, the far side was the model colour, without it)
    img = images["front"].astype(np.float64)
    mask = silhouette(images["front"])
    rows = np.flatnonzero(mask.any(1))
    width = mask.sum(1)
    lower = np.arange(rows[0] + (rows[-1] - rows[0]) // 3, rows[0] + 4 * (rows[-1] - rows[0]) // 5)
    neck = lower[np.argmin(width[lower])]  # the narrowest row below the eyes: under the chin
    top = rows[0] + int(0.80 * (neck - rows[0]))  # below the mouth: the stubble
    bottom = rows[0] + int(0.92 * (neck - rows[0]))
    cheeks = mask[top:bottom]
    cols = np.flatnonzero(cheeks.any(0))
    mid, half = 0.5 * (cols[0] + cols[-1]), 0.5 * (cols[-1] - cols[0])
    x = np.arange(mask.shape[1])
    left = (x > mid - 0.75 * half) & (x < mid - 0.3 * half)
    right = (x > mid + 0.3 * half) & (x < mid + 0.75 * half)
    band = img[top:bottom]
    diff = np.abs(band[cheeks & left[None]].mean(0) - band[cheeks & right[None]].mean(0))
    assert diff.max() < 14, f"cheeks differ by {diff.round(1)} (0-255)"


def test_keep_viewer_pictures_of_a_reconstruction():
    """With $FACERECON_VIEWER_GLB and $FACERECON_VIEWER_OUT: render that face.glb and keep the
    pictures (viewer_front.png, viewer_45deg.png) in that folder."""
    glb, out = os.environ.get("FACERECON_VIEWER_GLB"), os.environ.get("FACERECON_VIEWER_OUT")
    if not glb or not out:
        pytest.skip("set FACERECON_VIEWER_GLB and FACERECON_VIEWER_OUT to render a reconstruction for the docs")
    images, dims = render_in_model_viewer(Path(glb), ORBITS, size=640)
    from facerecon.atomic import atomic_write_bytes
    from facerecon.export.mesh import encode_png

    Path(out).mkdir(parents=True, exist_ok=True)
    for name, img in images.items():
        rows, cols = np.flatnonzero(silhouette(img).any(1)), np.flatnonzero(silhouette(img).any(0))
        pad = 12
        crop = img[max(rows[0] - pad, 0):rows[-1] + pad + 1, max(cols[0] - pad, 0):cols[-1] + pad + 1]
        atomic_write_bytes(Path(out) / f"viewer_{name}.png", encode_png(crop, compression=9))
    assert 0.18 < dims[1] < 0.40, dims
