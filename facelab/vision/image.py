"""One image loader for paths, bytes, PIL images, numpy arrays and tensors.

Every face pipeline in facelab starts with :func:`load_image`. It returns an :class:`Image`
holding the **full-resolution** picture as a ``(1, 3, H, W)`` float tensor in ``[0, 1]``
(the library's image convention), already turned upright according to its EXIF
orientation, plus metadata about what was read. Detectors work on a downscaled ``uint8``
copy (:meth:`Image.for_detection`) and map their results back to full-resolution pixels,
so fitting always sees the original pixels.

What is normalised, and how:

* **EXIF orientation** (tags 2-8) is applied, so ``(H, W)`` is the size as displayed.
* **Grayscale** (``L``, ``1``, ``I;16``, ``I``, ``F``) is replicated to three channels.
* **Alpha** (``RGBA``, ``LA``, palette with transparency) is composited over
  ``background`` (white by default): :math:`c = \\alpha c_{fg} + (1 - \\alpha) c_{bg}`;
  the alpha channel is kept in :attr:`Image.alpha`.
* **16-bit** images are scaled by :math:`1/65535` (8-bit by :math:`1/255`), without
  rounding them to 8 bits first. (16-bit *colour* PNGs are decoded with OpenCV when it is
  installed, since Pillow keeps only their high bytes; without OpenCV they load at 8 bits.)
* **Palette** images are expanded through their palette.

Unreadable, empty or non-image files raise :class:`~facelab.errors.ImageReadError` with
the path and the reason.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ImageReadError, InvalidInput

ImageLike = Any  # str | os.PathLike | bytes | PIL.Image.Image | np.ndarray | torch.Tensor | Image

#: Largest number of pixels :func:`load_image` accepts by default (PIL's own bomb guard is
#: ~179 Mpx; photos from phones are 12-50 Mpx).
DEFAULT_MAX_PIXELS = 250_000_000


@dataclass
class Image:
    """A loaded photo: the full-resolution tensor plus what is known about its source.

    Attributes:
        tensor: ``(1, 3, H, W)`` float32 RGB in ``[0, 1]``, upright (EXIF applied).
        source: the path it was read from, or a short description (``"numpy"``, ...).
        mode: the source's pixel mode (PIL mode such as ``"RGB"``, ``"L"``, ``"I;16"``,
            ``"P"``, ``"RGBA"``, or ``"numpy:uint8"`` / ``"tensor:float32"``).
        bit_depth: bits per channel of the source (8, 16 or 32).
        exif_orientation: the EXIF orientation tag that was applied (1 = none).
        stored_size: ``(H, W)`` as stored in the file, before the EXIF rotation.
        alpha: ``(1, 1, H, W)`` alpha in ``[0, 1]`` when the source had transparency.
    """

    tensor: torch.Tensor
    source: str = ""
    mode: str = "RGB"
    bit_depth: int = 8
    exif_orientation: int = 1
    stored_size: tuple[int, int] = (0, 0)
    alpha: torch.Tensor | None = None
    _uint8: np.ndarray | None = field(default=None, repr=False)

    @property
    def height(self) -> int:
        return int(self.tensor.shape[-2])

    @property
    def width(self) -> int:
        return int(self.tensor.shape[-1])

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the upright image."""
        return (self.height, self.width)

    def to_uint8(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB copy (cached), for detectors and saving."""
        if self._uint8 is None:
            a = self.tensor[0].detach().float().clamp(0, 1).mul(255).round()
            self._uint8 = np.ascontiguousarray(a.to(torch.uint8).permute(1, 2, 0).cpu().numpy())
        return self._uint8

    def for_detection(self, max_side: int | None = 1024) -> tuple[np.ndarray, float]:
        """A ``uint8 (h, w, 3)`` copy whose longer side is at most ``max_side``, and its scale.

        Returns ``(array, s)`` with ``s = h / H <= 1``: a point detected at ``p`` in the
        small copy is at ``p / s`` in the full image (pixel centres at +0.5, so the mapping
        is a pure scale of continuous coordinates). ``max_side=None`` keeps the full size.
        """
        full = self.to_uint8()
        longest = max(self.height, self.width)
        if max_side is None or longest <= max_side:
            return full, 1.0
        from PIL import Image as PILImage

        s = max_side / longest
        w = max(1, round(self.width * s))
        h = max(1, round(self.height * s))
        small = np.asarray(PILImage.fromarray(full).resize((w, h), PILImage.Resampling.BOX))
        return np.ascontiguousarray(small), h / self.height


def _pil():
    try:
        from PIL import Image as PILImage
        from PIL import ImageOps
    except ImportError as e:  # pragma: no cover - pillow is a core dependency
        from ..errors import BackendUnavailable

        raise BackendUnavailable("reading images needs Pillow: pip install pillow") from e
    return PILImage, ImageOps


def _composite(rgb: np.ndarray, alpha: np.ndarray | None, background) -> np.ndarray:
    if alpha is None:
        return rgb
    bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
    a = alpha[..., None]
    return a * rgb + (1.0 - a) * bg


def _u8_to_tensor(u8: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, 3, H, W)`` float32 in [0, 1] (one copy)."""
    h, w, _ = u8.shape
    if not u8.flags.writeable:
        u8 = u8.copy()
    t = torch.empty((1, 3, h, w), dtype=torch.float32)
    t[0].copy_(torch.from_numpy(u8).permute(2, 0, 1))
    return t.div_(255.0)


def _from_pil(img, background, source: str, max_pixels: int | None) -> Image:
    """Decode a PIL image (EXIF, mode conversion, alpha) into an :class:`Image`."""
    PILImage, ImageOps = _pil()
    stored = (img.height, img.width)
    if max_pixels is not None and img.width * img.height > max_pixels:
        raise ImageReadError(
            f"{source}: image is {img.width}x{img.height} = {img.width * img.height / 1e6:.0f} "
            f"Mpx, more than max_pixels={max_pixels / 1e6:.0f} Mpx; pass a larger max_pixels "
            "to load_image if this is intended"
        )
    try:
        orientation = int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # malformed EXIF must not make a readable image unreadable
        orientation = 1
    mode = img.mode
    try:
        if orientation != 1:
            img = ImageOps.exif_transpose(img)
        img.load()
    except PILImage.DecompressionBombError as e:
        raise ImageReadError(f"{source}: {_BOMB_HINT.format(e=e)}") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(f"{source}: cannot decode image data ({e})") from None

    alpha = None
    bit_depth = 8
    if mode == "P" or mode == "PA":
        has_t = "transparency" in img.info or mode == "PA"
        img = img.convert("RGBA" if has_t else "RGB")
    elif mode == "1":
        img = img.convert("L")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")

    m = img.mode
    if m in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(img)
        bit_depth = 16
        if m == "I" and a.size and int(a.max()) > 65535:
            bit_depth = 32
            scale = float(2**32 - 1)
        else:
            scale = 65535.0
        g = a.astype(np.float32) / scale
        rgb = np.repeat(np.clip(g, 0, 1)[..., None], 3, axis=2)
    elif m == "F":
        bit_depth = 32
        g = np.asarray(img, dtype=np.float32)
        rgb = np.repeat(np.clip(g, 0, 1)[..., None], 3, axis=2)
    elif m == "L":
        g = np.asarray(img, dtype=np.float32) / 255.0
        rgb = np.repeat(g[..., None], 3, axis=2)
    elif m == "LA":
        a = np.asarray(img, dtype=np.float32) / 255.0
        alpha = a[..., 1]
        rgb = np.repeat(a[..., :1], 3, axis=2)
    elif m == "RGBA" or m == "RGBa":
        if m == "RGBa":
            img = img.convert("RGBA")
        a = np.asarray(img, dtype=np.float32) / 255.0
        alpha = a[..., 3]
        rgb = a[..., :3]
    else:
        if m != "RGB":
            img = img.convert("RGB")
        u8 = np.array(img)  # writable copy: becomes the uint8 cache
        if u8.size == 0:
            raise ImageReadError(f"{source}: image has zero pixels")
        # fast path for 8-bit RGB: one strided copy into NCHW float, exact uint8 cache
        return Image(
            tensor=_u8_to_tensor(u8),
            source=source,
            mode=mode,
            bit_depth=8,
            exif_orientation=orientation,
            stored_size=stored,
            _uint8=u8,
        )
    if rgb.size == 0:
        raise ImageReadError(f"{source}: image has zero pixels")
    return _float_image(
        rgb, alpha, background, source=source, mode=mode, bit_depth=bit_depth,
        exif_orientation=orientation, stored_size=stored,
    )  # fmt: skip


def _float_image(rgb: np.ndarray, alpha: np.ndarray | None, background, **meta: Any) -> Image:
    """An :class:`Image` from float ``rgb (H, W, 3)`` in [0, 1] and optional ``alpha (H, W)``:
    composited over ``background``, NCHW float32, alpha kept as ``(1, 1, H, W)``."""
    rgb = _composite(rgb, alpha, background)
    t = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
    at = torch.from_numpy(np.ascontiguousarray(alpha))[None, None] if alpha is not None else None
    return Image(tensor=t.contiguous(), alpha=at, **meta)


def _open_path(path: Path, background, max_pixels: int | None) -> Image:
    PILImage, _ = _pil()
    src = str(path)
    if not path.exists():
        raise ImageReadError(f"{src}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{src}: is a directory, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{src}: file is empty (0 bytes)")
    return _open_bytes(path.read_bytes(), src, background, max_pixels)


#: Some Pillow plugins (TIFF while decoding, animated WebP) check Pillow's process-wide limit
#: themselves; facelab does not switch that guard off, so for those files it still applies.
_BOMB_HINT = (
    "Pillow's decompression-bomb guard refused it ({e}); facelab never switches that "
    "process-wide guard off -- raise PIL.Image.MAX_IMAGE_PIXELS in your program if you trust "
    "this file"
)


def _pil_open_own_limit(data: bytes):
    """``PIL.Image.open`` with our own pixel limit instead of Pillow's process-wide one.

    Pillow's decompression-bomb guard reads the global ``PIL.Image.MAX_IMAGE_PIXELS``;
    setting that global (even temporarily) disables the guard for every other thread. Here it
    is left alone: the format plugins are run the way ``Image.open`` runs them (identify the
    header, construct the lazy image) without the global check, and :func:`_from_pil` checks
    the size against ``max_pixels`` before any pixel is decoded. (If a future Pillow hides
    its plugin table, this falls back to ``Image.open`` and Pillow's own limit.)
    """
    PILImage, _ = _pil()
    opened = getattr(PILImage, "OPEN", None)
    ids = getattr(PILImage, "ID", None)
    if not isinstance(opened, dict) or not isinstance(ids, list):
        return PILImage.open(io.BytesIO(data))
    import struct

    fp, prefix, tried = io.BytesIO(data), data[:16], set()
    for loader in (PILImage.preinit, PILImage.init):
        loader()
        for fmt in list(ids):
            if fmt in tried or fmt not in opened:
                continue
            tried.add(fmt)
            factory, accept = opened[fmt]
            ok = not accept or accept(prefix)
            if not ok or isinstance(ok, str):
                continue
            fp.seek(0)
            try:
                return factory(fp, "")
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue
    raise PILImage.UnidentifiedImageError("cannot identify image file")


def _open_bytes(data: bytes, source: str, background, max_pixels: int | None) -> Image:
    PILImage, _ = _pil()
    if len(data) == 0:
        raise ImageReadError(f"{source}: empty data (0 bytes)")
    try:
        img = _pil_open_own_limit(data)
    except PILImage.UnidentifiedImageError:
        head = data[:16]
        hint = (
            " (it looks like text)" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else ""
        )
        raise ImageReadError(
            f"{source}: not an image file that Pillow can read{hint}; "
            "supported: JPEG, PNG, BMP, TIFF, GIF, WebP, PPM/PGM ..."
        ) from None
    except PILImage.DecompressionBombError as e:
        raise ImageReadError(f"{source}: {_BOMB_HINT.format(e=e)}") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(f"{source}: cannot read image ({e})") from None
    if _is_png_16bit_color(data):
        hi = _decode_16bit_color(data, img, background, source, max_pixels)
        if hi is not None:
            return hi
    return _from_pil(img, background, source, max_pixels)


def _is_png_16bit_color(data: bytes) -> bool:
    """PNG with 16 bits per channel and colour type RGB (2) or RGBA (6)."""
    return (
        data[:8] == b"\x89PNG\r\n\x1a\n"
        and len(data) > 26
        and data[24] == 16
        and data[25] in (2, 6)
    )


def _orient(a: np.ndarray, o: int) -> np.ndarray:
    """Apply EXIF orientation ``o`` to an ``(H, W, C)`` array (as PIL's exif_transpose)."""
    if o == 2:
        return a[:, ::-1]
    if o == 3:
        return a[::-1, ::-1]
    if o == 4:
        return a[::-1]
    if o == 5:
        return a.transpose(1, 0, 2)
    if o == 6:
        return np.rot90(a, -1)
    if o == 7:
        return a.transpose(1, 0, 2)[::-1, ::-1]
    if o == 8:
        return np.rot90(a, 1)
    return a


def _decode_16bit_color(data: bytes, img, background, source: str, max_pixels: int | None):
    """Full-precision decode of 16-bit RGB(A) PNGs (Pillow keeps only 8 bits of these).

    Uses OpenCV when it is installed; returns ``None`` otherwise (the caller then falls
    back to Pillow's 8-bit decode).
    """
    try:
        import cv2
    except ImportError:
        return None
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3:
        return None
    if max_pixels is not None and arr.shape[0] * arr.shape[1] > max_pixels:
        raise ImageReadError(
            f"{source}: {arr.shape[1]}x{arr.shape[0]} pixels exceed max_pixels={max_pixels}"
        )
    arr = arr[..., [2, 1, 0, 3]] if arr.shape[2] == 4 else arr[..., ::-1]  # BGR(A) -> RGB(A)
    try:
        o = int(img.getexif().get(0x0112, 1) or 1)
    except Exception:
        o = 1
    out = _from_array(np.ascontiguousarray(_orient(arr, o)), background, source)
    out.mode = img.mode + ";16"
    out.exif_orientation = o
    out.stored_size = (arr.shape[0], arr.shape[1])
    return out


def _from_array(a: np.ndarray, background, source: str) -> Image:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise InvalidInput(
            f"image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {a.shape}"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InvalidInput(f"image array has zero pixels: shape {a.shape}")
    mode = f"{source}:{a.dtype}"
    if a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3:
        return Image(
            tensor=_u8_to_tensor(a),
            source=source,
            mode=mode,
            bit_depth=8,
            stored_size=(int(a.shape[0]), int(a.shape[1])),
            _uint8=np.array(a, order="C"),  # a private copy: the caller may change `a`
        )
    if a.dtype == np.uint8:
        f = a.astype(np.float32) / 255.0
        depth = 8
    elif a.dtype == np.uint16:
        f = a.astype(np.float32) / 65535.0
        depth = 16
    elif a.dtype == np.bool_:
        f = a.astype(np.float32)
        depth = 1
    elif np.issubdtype(a.dtype, np.floating):
        f = a.astype(np.float32)
        depth = 32
        if not np.isfinite(f).all():
            raise InvalidInput("image array contains NaN/Inf")
        lo, hi = float(f.min()), float(f.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise InvalidInput(
                f"float image values must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]; "
                "divide 8-bit data by 255 (or pass it as uint8)"
            )
        f = np.clip(f, 0, 1)
    else:
        raise InvalidInput(f"unsupported image dtype {a.dtype}; use uint8, uint16 or float")
    alpha = None
    if f.ndim == 2:
        f = np.repeat(f[..., None], 3, axis=2)
    elif f.shape[2] == 4:
        alpha = f[..., 3]
        f = f[..., :3]
    stored = (int(a.shape[0]), int(a.shape[1]))
    return _float_image(f, alpha, background, source=source, mode=mode, bit_depth=depth,
                        stored_size=stored)  # fmt: skip


def _from_tensor(t: torch.Tensor) -> Image:
    x = t.detach()
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise InvalidInput(
                f"load_image takes one image; got a batch of {x.shape[0]} "
                "(call it per image, or use the tensor directly)"
            )
        x = x[0]
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3 or x.shape[0] not in (1, 3, 4):
        raise InvalidInput(
            f"image tensor must be (1, 3, H, W), (3, H, W), (1, H, W) or (H, W); got {tuple(t.shape)}"
        )
    arr = x.permute(1, 2, 0).cpu().numpy()
    img = _from_array(arr, (1.0, 1.0, 1.0), "tensor")
    img.mode = f"tensor:{str(t.dtype).replace('torch.', '')}"
    if x.is_floating_point() and x.shape[0] == 3:
        # keep the caller's exact values (and dtype/device) when nothing had to change
        img.tensor = x[None].clamp(0, 1)
    return img


def load_image(
    src: ImageLike,
    *,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Image:
    """Load an image from a path, bytes, PIL image, numpy array or tensor.

    Args:
        src: a file path (``str``/``PathLike``), raw encoded bytes, a ``PIL.Image``, a numpy
            array ``(H, W)``, ``(H, W, 1|3|4)`` (uint8, uint16, bool, or float in [0, 1]),
            a tensor ``(1, 3, H, W)``, ``(3, H, W)``, ``(H, W)``, or an :class:`Image`
            (returned unchanged).
        background: RGB in [0, 1] that transparent pixels are composited over.
        max_pixels: refuse files with more pixels than this (``None``: no limit).

    Returns:
        :class:`Image` with ``tensor (1, 3, H, W)`` float in [0, 1] at full resolution.

    Raises:
        ImageReadError: missing, empty, truncated or non-image file.
        InvalidInput: an array/tensor of the wrong shape, dtype or value range.
    """
    if isinstance(src, Image):
        return src
    if isinstance(src, (str, os.PathLike)):
        return _open_path(Path(src), background, max_pixels)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return _open_bytes(bytes(src), "<bytes>", background, max_pixels)
    if isinstance(src, torch.Tensor):
        return _from_tensor(src)
    if isinstance(src, np.ndarray):
        return _from_array(src, background, "numpy")
    PILImage, _ = _pil()
    if isinstance(src, PILImage.Image):
        return _from_pil(src, background, "PIL.Image", max_pixels)
    raise InvalidInput(
        f"cannot load an image from {type(src).__name__}; pass a path, bytes, PIL image, "
        "numpy array or tensor"
    )


def save_image(image: torch.Tensor | np.ndarray | Image, path: str | os.PathLike) -> Path:
    """Save ``(1, 3, H, W)`` / ``(3, H, W)`` float in [0, 1], ``(H, W, 3)`` uint8 or an Image."""
    PILImage, _ = _pil()
    if isinstance(image, Image):
        arr = image.to_uint8()
    elif isinstance(image, torch.Tensor):
        arr = load_image(image).to_uint8()
    else:
        arr = load_image(np.asarray(image)).to_uint8()
    p = Path(path)
    PILImage.fromarray(arr).save(p)
    return p


__all__ = ["DEFAULT_MAX_PIXELS", "Image", "ImageLike", "load_image", "save_image"]
