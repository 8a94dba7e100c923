"""``load_image`` applies its own pixel limit and never touches Pillow's process-wide one
(``PIL.Image.MAX_IMAGE_PIXELS``: changing it, even briefly, disables the decompression-bomb
guard for every other thread)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image as PILImage

from facelab.errors import ImageReadError
from facelab.vision import image as image_mod
from facelab.vision import load_image


def _encoded(w: int, h: int, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def test_pillow_guard_stays_on_while_facelab_loads(monkeypatch):
    """With Pillow's limit lowered to 1000 px, a 64x64 image is a 'bomb' for Pillow (above 2x
    the limit) but within facelab's own limit: facelab loads it, Pillow's guard is never
    switched off (seen from inside the decode), and Image.open still refuses it."""
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)
    png = _encoded(64, 64)
    seen = []
    real = image_mod._from_pil

    def spy(*a, **k):
        seen.append(PILImage.MAX_IMAGE_PIXELS)  # what any other thread would see right now
        return real(*a, **k)

    monkeypatch.setattr(image_mod, "_from_pil", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no DecompressionBombWarning either
        img = load_image(png)
    assert img.size == (64, 64)
    assert seen == [1000]
    assert PILImage.MAX_IMAGE_PIXELS == 1000
    with pytest.raises(PILImage.DecompressionBombError):
        PILImage.open(io.BytesIO(png))


def test_own_limit_is_enforced_before_decoding():
    png = _encoded(64, 48)
    with pytest.raises(ImageReadError, match=r"64x48 .*max_pixels"):
        load_image(png, max_pixels=64 * 48 - 1)
    assert load_image(png, max_pixels=64 * 48).size == (48, 64)
    assert load_image(png, max_pixels=None).size == (48, 64)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM"])
def test_every_common_format_opens_without_the_global_guard(fmt, monkeypatch):
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 10)  # every test image is a 'bomb'
    data = _encoded(20, 12, fmt)
    if fmt in ("TIFF", "WEBP"):  # these plugins check Pillow's limit themselves: it holds
        with pytest.raises(ImageReadError, match="decompression-bomb guard refused it"):
            load_image(data)
        monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # 240 px: within 2x Pillow's
    img = load_image(data)
    assert img.size == (12, 20)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", None)
    ref = load_image(data)
    np.testing.assert_array_equal(img.to_uint8(), ref.to_uint8())


def test_not_an_image_is_still_a_clear_error():
    with pytest.raises(ImageReadError, match="not an image file"):
        load_image(b"hello, this is text and not an image")
