"""Pictures of the synthetic world: a gallery across realism levels, and its ground truth.

* :func:`gallery` — rows are realism levels, columns are samples (the same sample index in
  every row, so a column shows one set of parameters under the different image models).
* :func:`ground_truth_figure` — per sample: photo, face/skin masks, depth, normals, and the 2D
  landmarks (visible green, hidden red).

Both return PIL images; ``scripts/world_gallery.py`` writes them to files and the book shows
them.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = ["gallery", "ground_truth_figure"]


def _to_uint8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8."""
    return (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def gallery(
    model: str = "builtin",
    size: int = 128,
    cols: int = 6,
    seed: int = 0,
    levels: tuple[float, ...] = (0.0, 0.5, 1.0),
    start: int = 0,
) -> Image.Image:
    """The grid as a PIL image (a label strip on the left names each row's realism)."""
    from ..models import load
    from .config import WorldConfig
    from .render import WorldRenderer

    m = load(model)
    pad, label_w = 2, 64
    W = label_w + cols * (size + pad)
    H = len(levels) * (size + pad)
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    idx = list(range(start, start + cols))
    for row, r in enumerate(levels):
        out = WorldRenderer(WorldConfig(model=model, image_size=size, realism=r), m)(idx, seed)
        y = row * (size + pad)
        draw.text((6, y + size // 2 - 6), f"realism\n  {r:g}", fill=(0, 0, 0))
        for c in range(cols):
            canvas.paste(
                Image.fromarray(_to_uint8(out["image"][c])), (label_w + c * (size + pad), y)
            )
    return canvas


def ground_truth_figure(
    model: str = "builtin", size: int = 128, n: int = 3, seed: int = 0
) -> Image.Image:
    """Rows = samples; columns (labelled on top) = photo, masks (face and skin), depth, normals,
    landmarks (green visible, red hidden)."""
    from ..models import load
    from ..render.shading import depth_to_image
    from .config import WorldConfig
    from .render import WorldRenderer

    m = load(model)
    out = WorldRenderer(WorldConfig(model=model, image_size=size, realism=1.0), m)(
        list(range(n)), seed
    )
    pad = 2
    head = max(14, size // 7)  # a row of column labels on top
    canvas = Image.new("RGB", (5 * (size + pad), head + n * (size + pad)), (255, 255, 255))
    labels = ["photo", "masks", "depth", "normals", "landmarks"]
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=max(10, head - 4))
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        font = ImageFont.load_default()
    for c, text in enumerate(labels):
        x0 = c * (size + pad)
        w = draw.textlength(text, font=font)
        draw.text((x0 + (size - w) / 2, 1), text, fill=(0, 0, 0), font=font)
    dep = depth_to_image(out["depth"], out["mask"])
    for b in range(n):
        y = head + b * (size + pad)
        tiles = [
            out["image"][b],
            out["mask_face"][b].float()[None].expand(3, -1, -1) * 0.5
            + out["mask_skin"][b].float()[None].expand(3, -1, -1) * 0.5,
            dep[b][None].expand(3, -1, -1),
            ((out["normals"][b] + 1) * 0.5 * out["mask"][b][..., None]).permute(2, 0, 1),
            out["image"][b],
        ]
        for c, t in enumerate(tiles):
            im = Image.fromarray(_to_uint8(t))
            if c == 4:
                d = ImageDraw.Draw(im)
                for (u, v), vis in zip(
                    out["landmarks2d"][b].tolist(), out["landmarks_visible"][b].tolist()
                ):
                    col = (40, 230, 40) if vis else (230, 40, 40)
                    d.ellipse([u - 1.2, v - 1.2, u + 1.2, v + 1.2], fill=col)
            canvas.paste(im, (c * (size + pad), y))
    return canvas
