"""Backgrounds behind the rendered face: procedural textures and photo patches.

Procedural backgrounds combine, with random weights, a two-colour linear **gradient**, an
**fBm** value-noise field ``n(x) = sum_o 0.5^o up(noise_o)(x)`` (octave ``o`` is a
``2^(o+1)``-cell random grid upsampled bicubically) mapping a random three-colour palette,
sinusoidal **stripes** ``s(x) = smoothstep(sin(2 pi f <x, d> + phi))`` and soft-edged
**shapes** (ellipses and rectangles, defocused like bokeh).

Photo patches come from the scikit-image sample images that are public domain or CC0
(``brick``, ``grass``, ``gravel`` from CC0Textures/DeviantArt CC0, ``coffee`` and ``chelsea``
CC0 by their photographers, ``rocket`` released to the public domain by SpaceX — licenses as
stated in ``skimage.data``'s docstrings). Photos with people (``astronaut``) are excluded so
that no other face appears in a sample. A patch is a random crop at a random scale, flipped,
colour-jittered and slightly defocused. When scikit-image is not installed, patches fall back
to procedural backgrounds.

All functions take an explicit ``torch.Generator`` and return ``(3, H, W)`` float in [0, 1].
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import InvalidInput

PATCH_IMAGES = ("brick", "grass", "gravel", "coffee", "chelsea", "rocket")
"""scikit-image sample images used as patches (public domain / CC0, no faces)."""


def _u(g: torch.Generator, *shape: int, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64).to(torch.float32)


def _grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    y = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    x = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    return torch.meshgrid(y, x, indexing="ij")


def random_colors(g: torch.Generator, n: int) -> torch.Tensor:
    """``(n, 3)`` random colours: random hue, moderate saturation, random value."""
    hue = _u(g, n)
    sat = _u(g, n, lo=0.1, hi=0.7)
    val = _u(g, n, lo=0.15, hi=0.95)
    k = torch.arange(3, dtype=torch.float32)
    # HSV -> RGB via the smooth "cosine palette" form (no branches)
    rgb = 0.5 + 0.5 * torch.cos(2 * math.pi * (hue[:, None] + k[None] / 3.0))
    return val[:, None] * (1 - sat[:, None] + sat[:, None] * rgb)


def fbm(h: int, w: int, g: torch.Generator, octaves: int = 5, channels: int = 1) -> torch.Tensor:
    """Fractal value noise ``(channels, h, w)`` normalised to [0, 1].

    ``n = sum_{o<octaves} 0.5^o * bicubic_up(U(-1, 1) grid of 2^(o+1)+1 cells)``.
    """
    out = torch.zeros(1, channels, h, w)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = 2 ** (o + 1) + 1
        grid = _u(g, 1, channels, cells, cells, lo=-1.0, hi=1.0)
        out += amp * F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=True)
        total += amp
        amp *= 0.5
    out = out[0] / total
    lo = out.amin(dim=(-2, -1), keepdim=True)
    hi = out.amax(dim=(-2, -1), keepdim=True)
    return (out - lo) / (hi - lo).clamp_min(1e-6)


def gradient(h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """A linear two-colour gradient in a random direction, ``(3, h, w)``."""
    yy, xx = _grid(h, w)
    th = float(_u(g, 1, hi=2 * math.pi))
    t = (xx - 0.5) * math.cos(th) + (yy - 0.5) * math.sin(th) + 0.5
    c = random_colors(g, 2)
    return c[0, :, None, None] * (1 - t) + c[1, :, None, None] * t


def stripes(h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """Soft sinusoidal stripes of two colours, ``(3, h, w)``."""
    yy, xx = _grid(h, w)
    th = float(_u(g, 1, hi=math.pi))
    freq = float(_u(g, 1, lo=2.0, hi=14.0))
    phase = float(_u(g, 1, hi=2 * math.pi))
    s = torch.sin(2 * math.pi * freq * (xx * math.cos(th) + yy * math.sin(th)) + phase)
    sharp = float(_u(g, 1, lo=1.0, hi=6.0))
    t = torch.sigmoid(sharp * s)
    c = random_colors(g, 2)
    return c[0, :, None, None] * (1 - t) + c[1, :, None, None] * t


def shapes(h: int, w: int, g: torch.Generator, n: int = 8) -> torch.Tensor:
    """Soft ellipses and rectangles over a flat colour, ``(3, h, w)`` (defocused clutter)."""
    yy, xx = _grid(h, w)
    cols = random_colors(g, n + 1)
    img = cols[0, :, None, None].expand(3, h, w).clone()
    params = _u(g, n, 6)
    for i in range(n):
        cx, cy, a, b, th, kind = params[i].tolist()
        a, b = 0.05 + 0.3 * a, 0.05 + 0.3 * b
        th *= math.pi
        dx, dy = xx - cx, yy - cy
        u = (dx * math.cos(th) + dy * math.sin(th)) / a
        v = (-dx * math.sin(th) + dy * math.cos(th)) / b
        d = torch.sqrt(u * u + v * v) if kind < 0.6 else torch.maximum(u.abs(), v.abs())
        alpha = torch.sigmoid((1 - d) * 12.0) * 0.85
        img = img * (1 - alpha) + cols[i + 1, :, None, None] * alpha
    return img


def gaussian_blur(img: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` (or ``(C, H, W)``) with reflect padding.

    ``sigma`` in pixels: a float, or a ``(B,)`` tensor (one sigma per image). ``sigma <= 0.05``
    returns the input unchanged.
    """
    squeeze = img.dim() == 3
    x = img[None] if squeeze else img
    b, c, h, w = x.shape
    sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
    if sig.numel() == 1:
        sig = sig.expand(b)
    if float(sig.max()) <= 0.05:
        return img
    r = max(1, int(math.ceil(3 * float(sig.max()))))
    r = min(r, (min(h, w) - 1) // 2) if min(h, w) > 2 else 1
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t[None] / sig.clamp_min(1e-3)[:, None]) ** 2)
    k = k / k.sum(dim=1, keepdim=True)
    k = torch.where(sig[:, None] <= 0.05, (t[None] == 0).to(x.dtype), k)  # (B, 2r+1)
    # grouped conv: one kernel per (image, channel)
    kk = k.repeat_interleave(c, dim=0)  # (B*C, 2r+1)
    y = x.reshape(1, b * c, h, w)
    y = F.pad(y, (r, r, 0, 0), mode="reflect")
    y = F.conv2d(y, kk[:, None, None, :], groups=b * c)
    y = F.pad(y, (0, 0, r, r), mode="reflect")
    y = F.conv2d(y, kk[:, None, :, None], groups=b * c)
    y = y.reshape(b, c, h, w)
    return y[0] if squeeze else y


def procedural_background(size: int | tuple[int, int], g: torch.Generator) -> torch.Tensor:
    """A random procedural background ``(3, H, W)`` in [0, 1] (see module docstring)."""
    h, w = (size, size) if isinstance(size, int) else size
    base = gradient(h, w, g)
    kind = int(torch.randint(0, 3, (1,), generator=g))
    if kind == 0:
        pal = random_colors(g, 3)
        n = fbm(h, w, g, octaves=5)
        t = n[0]
        tex = torch.where(
            t[None] < 0.5,
            pal[0, :, None, None] * (1 - 2 * t) + pal[1, :, None, None] * (2 * t),
            pal[1, :, None, None] * (2 - 2 * t) + pal[2, :, None, None] * (2 * t - 1),
        )
    elif kind == 1:
        tex = stripes(h, w, g)
    else:
        tex = shapes(h, w, g)
    mix = float(_u(g, 1, lo=0.4, hi=0.9))
    img = base * (1 - mix) + tex * mix
    # a little fine grain everywhere, then defocus
    grain = fbm(h, w, g, octaves=3, channels=1) - 0.5
    img = img + 0.08 * grain
    sigma = float(_u(g, 1, lo=0.0, hi=2.5)) * (min(h, w) / 128.0)
    img = gaussian_blur(img, sigma)
    return img.clamp(0, 1)


def _skimage_data_dir() -> Path | None:
    try:
        import skimage
    except ImportError:
        return None
    d = Path(skimage.__file__).parent / "data"
    return d if d.is_dir() else None


class PatchBank:
    """Public-domain / CC0 photos to crop background patches from (loaded lazily, once).

    ``PatchBank().sample(size, g)`` returns ``(3, H, W)``; :attr:`available` is False when
    scikit-image (the ``vision`` extra) is missing, and then :meth:`sample` returns a
    procedural background instead.
    """

    def __init__(self, names: tuple[str, ...] = PATCH_IMAGES) -> None:
        unknown = set(names) - set(PATCH_IMAGES)
        if unknown:
            raise InvalidInput(
                f"unknown patch images {sorted(unknown)}; choose from {PATCH_IMAGES}"
            )
        self.names = names
        self._images: list[torch.Tensor] | None = None

    def _load(self) -> list[torch.Tensor]:
        if self._images is None:
            imgs: list[torch.Tensor] = []
            d = _skimage_data_dir()
            if d is not None:
                import numpy as np
                from PIL import Image

                for name in self.names:
                    cands = sorted(d.glob(f"{name}.*"))
                    if not cands:
                        continue
                    with Image.open(cands[0]) as im:
                        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
                    imgs.append(torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous())
            self._images = imgs
        return self._images

    @property
    def available(self) -> bool:
        return len(self._load()) > 0

    def sample(self, size: int | tuple[int, int], g: torch.Generator) -> torch.Tensor:
        """A random crop ``(3, H, W)``: random image, scale, position, flip, colour jitter."""
        h, w = (size, size) if isinstance(size, int) else size
        imgs = self._load()
        if not imgs:
            return procedural_background((h, w), g)
        k = int(torch.randint(0, len(imgs), (1,), generator=g))
        src = imgs[k]
        _, sh, sw = src.shape
        frac = float(_u(g, 1, lo=0.25, hi=0.9))
        ch = max(8, int(min(sh, sw) * frac))
        cw = max(8, int(ch * w / h))
        cw = min(cw, sw)
        y0 = int(torch.randint(0, sh - ch + 1, (1,), generator=g))
        x0 = int(torch.randint(0, sw - cw + 1, (1,), generator=g))
        crop = src[:, y0 : y0 + ch, x0 : x0 + cw][None]
        crop = F.interpolate(
            crop, size=(h, w), mode="bilinear", align_corners=False, antialias=True
        )[0]
        if float(_u(g, 1)) < 0.5:
            crop = crop.flip(-1)
        gain = _u(g, 3, lo=0.75, hi=1.2)
        bright = float(_u(g, 1, lo=0.6, hi=1.15))
        gray = crop.mean(0, keepdim=True)
        sat = float(_u(g, 1, lo=0.3, hi=1.1))
        crop = (gray + sat * (crop - gray)) * gain[:, None, None] * bright
        sigma = float(_u(g, 1, lo=0.0, hi=2.0)) * (min(h, w) / 128.0)
        return gaussian_blur(crop, sigma).clamp(0, 1)


def sample_background(
    size: int | tuple[int, int], g: torch.Generator, kind: str, bank: PatchBank | None = None
) -> torch.Tensor | None:
    """A background of ``kind`` (``"none"`` -> None, ``"procedural"``, ``"patches"``, ``"mixed"``
    = each with probability 1/2), ``(3, H, W)``."""
    if kind == "none":
        return None
    if kind == "mixed":
        kind = "patches" if float(_u(g, 1)) < 0.5 else "procedural"
    if kind == "procedural":
        return procedural_background(size, g)
    if kind == "patches":
        return (bank or PatchBank()).sample(size, g)
    raise InvalidInput(f"unknown background kind {kind!r}; use none|procedural|patches|mixed")
