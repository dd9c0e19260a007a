"""load_image: every supported format and colour mode, and every kind of bad input -> one-line ImageError."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facerecon.imageio.load import DEFAULT_BACKGROUND, ImageError, load_image


def _gradient(h: int = 24, w: int = 32) -> np.ndarray:
    """A deterministic colourful test image, smooth so that JPEG keeps it close."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 90)], -1).astype(np.uint8)


def _assert_one_line_error(exc: ImageError, path: Path | str) -> None:
    msg = str(exc)
    assert isinstance(exc, ValueError)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ")
    assert len(msg) > len(f"{path}: ") + 3  # a reason follows


@pytest.mark.parametrize("fmt,ext,tol", [("JPEG", "jpg", 12), ("PNG", "png", 0), ("WEBP", "webp", 12),
                                         ("BMP", "bmp", 0), ("TIFF", "tif", 0)])
def test_formats_load_as_rgb_uint8(tmp_path, fmt, ext, tol):
    src = _gradient()
    path = tmp_path / f"img.{ext}"
    Image.fromarray(src).save(path, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    out = load_image(path)
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - src).mean() <= tol / 3
    assert np.abs(out.astype(int) - src).max() <= 3 * tol + 1
    assert out.flags.writeable


def test_exif_orientation_is_applied(tmp_path):
    # Stored 40 wide x 20 high: left half red, right half blue. Orientation 6 = "rotate 90° CW
    # to display", so the upright image is 20 wide x 40 high with red on top.
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif.tobytes(), quality=95)
    out = load_image(path)
    assert out.shape == (40, 20, 3)
    top, bottom = out[:15].reshape(-1, 3).mean(0), out[25:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_cmyk_jpeg_converted_to_rgb(tmp_path):
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # no cyan, full magenta+yellow = red
    path = tmp_path / "cmyk.jpg"
    cmyk.save(path, quality=95)
    out = load_image(path)
    assert out.shape == (16, 16, 3)
    r, g, b = out.reshape(-1, 3).mean(0)
    assert r > 220 and g < 40 and b < 40


def test_greyscale_and_bilevel_replicated(tmp_path):
    grey = (np.arange(16 * 16).reshape(16, 16) % 256).astype(np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (16, 16, 3)
    assert np.array_equal(out[..., 0], grey) and np.array_equal(out[..., 1], grey)
    Image.fromarray(grey > 128).save(tmp_path / "b.png")  # mode "1"
    out = load_image(tmp_path / "b.png")
    assert set(np.unique(out)) <= {0, 255} and out.shape == (16, 16, 3)


def test_palette_with_transparency_composited(tmp_path):
    im = Image.new("P", (8, 8), 0)
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    im.paste(1, (0, 0, 4, 8))  # left half index 1 (green), right half index 0 (red)
    path = tmp_path / "pal.png"
    im.save(path, transparency=0)  # red is transparent
    out = load_image(path)
    assert np.array_equal(out[0, 0], [0, 255, 0])
    assert np.array_equal(out[0, 7], DEFAULT_BACKGROUND)


def test_rgba_alpha_composited_over_neutral_background(tmp_path):
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:, :2, 3] = 255  # opaque
    rgba[:, 2:4, 3] = 0  # transparent
    rgba[:, 4:, 3] = 128  # half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png").astype(int)
    assert np.array_equal(out[0, 0], [255, 0, 0])
    assert np.array_equal(out[0, 2], DEFAULT_BACKGROUND)
    assert abs(out[0, 5, 0] - (255 * 128 + 128 * 127) / 255) <= 1 and abs(out[0, 5, 1] - 64) <= 1
    Image.fromarray(rgba[..., [0, 3]], "LA").save(tmp_path / "la.png")
    assert np.array_equal(load_image(tmp_path / "la.png")[0, 2], DEFAULT_BACKGROUND)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16bit_greyscale_scaled_to_8bit(tmp_path, ext):
    a16 = np.array([[0, 32896, 65535, 257 * 10]], dtype=np.uint16)
    Image.fromarray(a16).save(tmp_path / f"d.{ext}")
    out = load_image(tmp_path / f"d.{ext}")
    assert out.shape == (1, 4, 3)
    assert list(out[0, :, 0]) == [0, 128, 255, 10]


def test_16bit_rgb_png_scaled_to_8bit(tmp_path):
    import cv2

    bgr16 = np.zeros((4, 5, 3), np.uint16)
    bgr16[..., 2] = 65535  # red
    bgr16[..., 1] = 32896  # half green
    cv2.imwrite(str(tmp_path / "rgb16.png"), bgr16)
    out = load_image(tmp_path / "rgb16.png")
    assert out.dtype == np.uint8 and out.shape == (4, 5, 3)
    assert list(out[0, 0]) == [255, 128, 0]


def test_path_with_line_break_still_gives_one_line(tmp_path):
    odd = tmp_path / "two\nlines.jpg"
    odd.write_bytes(b"")
    with pytest.raises(ImageError) as info:
        load_image(odd)
    assert "\n" not in str(info.value) and "empty" in info.value.reason
    assert info.value.path == str(odd)


def test_in_memory_arrays_and_pil_images():
    rgb = _gradient()
    assert load_image(rgb) is rgb  # already right: no copy
    assert np.array_equal(load_image(rgb.astype(np.float32) / 255.0), rgb)
    assert np.array_equal(load_image(rgb.astype(np.uint16) * 257), rgb)
    assert np.array_equal(load_image(rgb[..., 0])[..., 2], rgb[..., 0])
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], -1)
    assert np.array_equal(load_image(rgba), rgb)
    assert np.array_equal(load_image(Image.fromarray(rgb)), rgb)
    for bad in (np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4, 3), np.uint8),
                np.full((2, 2, 3), np.nan), np.zeros((2, 2, 3), np.complex64)):
        with pytest.raises(ImageError) as info:
            load_image(bad)
        _assert_one_line_error(info.value, "<array>")


# ---------------------------------------------------------------------------- bad files
def _jpeg_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _png_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` but holds almost no data (a bomb stand-in)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, a word the reason must contain)."""
    jpg, png = _jpeg_bytes(), _png_bytes()
    files = {
        "truncated_jpeg": ("t.jpg", jpg[: len(jpg) // 2], "truncated"),
        "corrupt_png": ("c.png", png[:60] + bytes(200) + png[260:], "corrupt"),
        "text_as_jpg": ("notes.jpg", b"this is not an image\n" * 5, "not a recognised image"),
        "empty": ("empty.jpg", b"", "empty"),
    }
    out = {}
    for name, (fname, data, word) in files.items():
        p = tmp_path / fname
        p.write_bytes(data)
        out[name] = (p, word)
    (tmp_path / "a_folder.jpg").mkdir()
    out["directory"] = (tmp_path / "a_folder.jpg", "directory")
    out["missing"] = (tmp_path / "nope.png", "no such file")
    return out


@pytest.mark.parametrize("kind", ["truncated_jpeg", "corrupt_png", "text_as_jpg", "empty", "directory", "missing"])
def test_bad_files_raise_one_line_image_error(tmp_path, kind):
    path, word = _bad_files(tmp_path)[kind]
    with pytest.raises(ImageError) as info:
        load_image(path)
    _assert_one_line_error(info.value, path)
    assert word in info.value.reason
    assert info.value.path == str(path)


def test_pixel_limit_refuses_before_decoding(tmp_path):
    path = tmp_path / "ok.png"
    Image.fromarray(_gradient(100, 100)).save(path)
    assert load_image(path).shape == (100, 100, 3)
    with pytest.raises(ImageError) as info:
        load_image(path, max_pixels=5_000)
    _assert_one_line_error(info.value, path)
    assert "10,000 pixels" in str(info.value) and "limit" in str(info.value)


def test_decompression_bombs_become_image_errors_without_warnings(tmp_path):
    huge = tmp_path / "bomb.png"  # 400 MP: beyond Pillow's hard limit
    huge.write_bytes(_png_header_only(20_000, 20_000))
    big = tmp_path / "big.png"  # 96 MP: Pillow would warn (DecompressionBombWarning)
    big.write_bytes(_png_header_only(12_000, 8_000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any leaked warning fails the test
        with pytest.raises(ImageError) as info:
            load_image(huge)
        _assert_one_line_error(info.value, huge)
        assert "bomb" in info.value.reason
        with pytest.raises(ImageError) as info:
            load_image(big, max_pixels=90_000_000)
        assert "96,000,000 pixels" in str(info.value)
        with pytest.raises(ImageError) as info:  # under our 100 MP default: decoded, data missing
            load_image(big)
        _assert_one_line_error(info.value, big)
        assert "truncated" in info.value.reason


def test_unsupported_source_type():
    with pytest.raises(ImageError) as info:
        load_image(12345)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
