"""Shared fixtures: the real data beside the checkout, and one face-model cache per test run."""

from __future__ import annotations

import importlib.util
import os
import tarfile
from pathlib import Path

import pytest

from facerecon.assets import shared_dir

SHARED = shared_dir()


def pytest_configure(config) -> None:
    # One cache for the whole run, kept between runs in the checkout's ignored .venv folder, so
    # the ICT model is built once (about 20 s) and tests never touch the user's real cache.
    if "XDG_CACHE_HOME" not in os.environ or os.environ.get("FACERECON_TEST_CACHE"):
        cache = Path(__file__).resolve().parents[1] / ".venv" / "test-cache"
        cache.mkdir(parents=True, exist_ok=True)
        os.environ["XDG_CACHE_HOME"] = str(cache)
        os.environ["FACERECON_TEST_CACHE"] = "1"


def load_script(relative: str):
    """A script of the repository (``benchmarks/…``, ``scripts/…``, ``tools/…``) as a module."""
    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def need_shared(*parts: str) -> Path:
    """The path inside ../shared, or skip the test with the reason."""
    if SHARED is None or not SHARED.joinpath(*parts).exists():
        pytest.skip(f"shared data not available: {'/'.join(parts)}")
    return SHARED.joinpath(*parts)


@pytest.fixture(scope="session")
def ict_archive() -> Path:
    return need_shared("facemodel", "ict-facekit-facexmodel.tar.xz")


@pytest.fixture(scope="session")
def face_model(ict_archive):
    from facerecon.facemodel import load_face_model

    return load_face_model("fit")


@pytest.fixture(scope="session")
def ict_objs(ict_archive, tmp_path_factory) -> Path:
    """A few raw OBJ files of the kit, extracted once for comparisons."""
    want = {"generic_neutral_mesh.obj", "identity000.obj", "identity007.obj", "identity079.obj",
            "jawOpen.obj", "mouthSmile_L.obj"}
    out = tmp_path_factory.mktemp("ict")
    with tarfile.open(ict_archive, "r:*") as tf:
        for m in tf:
            name = m.name.split("/")[-1]
            if name in want and m.isfile():
                (out / name).write_bytes(tf.extractfile(m).read())
    return out
