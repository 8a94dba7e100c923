"""Image grids: show a batch of images (renders, photos, UV maps) side by side.

:func:`image_grid` takes ``(B, 3, H, W)`` / ``(B, H, W)`` tensors or arrays in ``[0, 1]`` (the
library's image convention), a list of ``(3, H, W)`` / ``(H, W, 3)`` / ``(H, W)`` arrays or PIL
images, and returns a matplotlib ``Figure`` (with titles) or a single tiled PIL image.
The Figure is created without ``pyplot`` (no global state, no double display in notebooks).
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import BackendUnavailable, InvalidInput

__all__ = ["image_grid", "to_hwc"]


def to_hwc(image: Any) -> np.ndarray:
    """One image as a float ``(H, W, 3)`` (or ``(H, W)`` grey) numpy array in ``[0, 1]``.

    Accepts ``(3, H, W)`` / ``(1, H, W)`` (channel-first, the library convention),
    ``(H, W, 3|4)``, ``(H, W)``, uint8 arrays (scaled by 1/255) and PIL images.
    """
    try:
        from PIL import Image

        if isinstance(image, Image.Image):
            image = np.asarray(image.convert("RGB"))
    except ImportError:  # pragma: no cover - pillow is a core dependency
        pass
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().float().numpy()
    a = np.asarray(image)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[-1] == 4:
        a = a[..., :3]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
        raise InvalidInput(
            f"an image must be (3, H, W), (H, W, 3) or (H, W); got shape {np.asarray(image).shape}"
        )
    if not np.isfinite(a).all():
        raise InvalidInput("image contains NaN/Inf")
    return np.clip(a, 0.0, 1.0)


def _as_list(images: Any) -> list[np.ndarray]:
    """Batch -> list of HWC images. A 3-D array is one image when its first dim is 1 or 3 or its
    last dim is 3 or 4, else a batch of grey images ``(B, H, W)``."""
    if isinstance(images, torch.Tensor | np.ndarray):
        if images.ndim == 4:
            out = [to_hwc(x) for x in images]
        elif images.ndim == 3 and (images.shape[0] in (1, 3) or images.shape[-1] in (3, 4)):
            out = [to_hwc(images)]
        elif images.ndim == 3:
            out = [to_hwc(x) for x in images]
        elif images.ndim == 2:
            out = [to_hwc(images)]
        else:
            raise InvalidInput(
                f"images must be (B, 3, H, W), (B, H, W) or a list, got {tuple(images.shape)}"
            )
    elif isinstance(images, str | bytes):
        raise InvalidInput("image_grid takes image data, not a path; load it with PIL first")
    elif isinstance(images, Sequence) or hasattr(images, "__iter__"):
        out = [to_hwc(x) for x in images]
    else:
        out = [to_hwc(images)]
    if not out:
        raise InvalidInput("image_grid got no images")
    return out


def _tile(imgs: list[np.ndarray], nrow: int, padding: int, pad_value: float) -> np.ndarray:
    h = max(x.shape[0] for x in imgs)
    w = max(x.shape[1] for x in imgs)
    ncol = nrow
    nrows = math.ceil(len(imgs) / ncol)
    canvas = np.full(
        (nrows * h + (nrows + 1) * padding, ncol * w + (ncol + 1) * padding, 3),
        pad_value,
        np.float32,
    )
    for n, im in enumerate(imgs):
        r, c = divmod(n, ncol)
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=-1)
        y0 = padding + r * (h + padding)
        x0 = padding + c * (w + padding)
        canvas[y0 : y0 + im.shape[0], x0 : x0 + im.shape[1]] = im
    return canvas


@functools.cache
def _grid_figure_class() -> type:
    """A matplotlib ``Figure`` subclass that shows itself as PNG in notebooks.

    A Figure made without ``pyplot`` has no notebook formatter (the inline backend registers
    one only once pyplot is imported), so it would display as ``<Figure size ...>``;
    ``_repr_png_`` fixes that without touching pyplot's global figure list.
    """
    from matplotlib.figure import Figure

    class GridFigure(Figure):
        def _repr_png_(self) -> bytes:
            buf = io.BytesIO()
            self.savefig(buf, format="png", dpi=self.dpi, bbox_inches="tight")
            return buf.getvalue()

    return GridFigure


def image_grid(
    images: Any,
    nrow: int | None = None,
    titles: Sequence[str] | None = None,
    as_pil: bool = False,
    size: float = 2.5,
    padding: int = 2,
    pad_value: float = 1.0,
    cmap: str = "gray",
):
    """Show images in a grid with ``nrow`` images per row (default ``ceil(sqrt(B))``).

    Args:
        images: ``(B, 3, H, W)`` / ``(B, H, W)`` tensor or array in ``[0, 1]``, or a list of
            single images (``(3, H, W)``, ``(H, W, 3)``, ``(H, W)``, uint8 or PIL).
        nrow: images per row.
        titles: one title per image (matplotlib only).
        as_pil: return one tiled ``PIL.Image`` (``padding`` pixels of ``pad_value`` between tiles)
            instead of a matplotlib ``Figure``.
        size: inches per panel (matplotlib).

    Returns:
        ``matplotlib.figure.Figure`` with one axes per image (spare cells hidden), or a
        ``PIL.Image.Image``.
    """
    imgs = _as_list(images)
    n = len(imgs)
    if nrow is None:
        nrow = max(1, math.ceil(math.sqrt(n)))
    if not isinstance(nrow, int) or nrow < 1:
        raise InvalidInput(f"nrow must be a positive integer, got {nrow!r}")
    nrow = min(nrow, n)
    if titles is not None and len(titles) != n:
        raise InvalidInput(f"got {len(titles)} titles for {n} images")
    if as_pil:
        from PIL import Image

        canvas = _tile(imgs, nrow, padding, pad_value)
        return Image.fromarray((canvas * 255.0 + 0.5).astype(np.uint8), "RGB")
    try:
        Figure = _grid_figure_class()
    except ImportError as e:
        raise BackendUnavailable(
            "image_grid needs matplotlib for a Figure: pip install 'facelab[book]' "
            "(or pass as_pil=True)"
        ) from e
    rows = math.ceil(n / nrow)
    h, w = imgs[0].shape[:2]
    aspect = h / max(w, 1)
    fig = Figure(figsize=(size * nrow, size * rows * aspect + (0.3 * rows if titles else 0.0)))
    axes = fig.subplots(rows, nrow, squeeze=False)
    for idx, ax in enumerate(axes.reshape(-1)):
        ax.set_axis_off()
        if idx >= n:
            continue
        im = imgs[idx]
        if im.ndim == 2:
            ax.imshow(im, cmap=cmap, vmin=0.0, vmax=1.0)
        else:
            ax.imshow(im)
        if titles is not None:
            ax.set_title(str(titles[idx]), fontsize=9)
    fig.tight_layout()
    return fig
