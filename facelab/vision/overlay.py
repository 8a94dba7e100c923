"""Drawing detections on photos (boxes, 68-point contours) with Pillow."""

from __future__ import annotations

import os
from pathlib import Path

from .detect import Face
from .ibug68 import CONTOURS
from .image import ImageLike, load_image


def draw_faces(image: ImageLike, faces: list[Face], radius: float | None = None):
    """A ``PIL.Image`` of ``image`` with each face's box, landmark contours and points."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    img = load_image(image)
    pil = PILImage.fromarray(img.to_uint8())
    d = ImageDraw.Draw(pil)
    scale = max(img.width, img.height) / 512.0
    r = radius if radius is not None else max(1.0, 1.5 * scale)
    lw = max(1, round(scale))
    for i, f in enumerate(faces):
        x0, y0, x1, y1 = (float(v) for v in f.box)
        d.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(0, 255, 0), width=lw)
        d.text((x0 + 2, max(0.0, y0 - 12 * scale)), f"{i}: {f.score:.2f}", fill=(0, 255, 0))
        pts = [
            (float(x) - 0.5, float(y) - 0.5) for x, y in f.landmarks.tolist()
        ]  # PIL: centres at integers
        for c in CONTOURS:
            d.line([pts[k] for k in c], fill=(255, 200, 0), width=lw)
        for x, y in pts:
            d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 0, 0))
    return pil


def save_overlay(image: ImageLike, faces: list[Face], path: str | os.PathLike) -> Path:
    """Draw ``faces`` on ``image`` and save it to ``path``."""
    p = Path(path)
    draw_faces(image, faces).save(p)
    return p


__all__ = ["draw_faces", "save_overlay"]
