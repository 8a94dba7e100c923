"""GANFit's texture model, small: the UV texture data set, its cache, the training configs and
the shipped generator.

GANFit (Gecer et al. 2019) replaces the 3DMM's linear albedo by a GAN trained on UV texture
maps. Our maps come from :class:`facelab.models.albedo.ProceduralAlbedo` (spectral skin
colour, freckles, moles, pores, brows, stubble) in the built-in head's UV layout, plus
**discrete appearance choices** added here (:func:`add_appearance_marks`): lipstick and eye
shadow from small palettes, a beauty mark at a random place, a scar line. These make the
distribution *non-Gaussian* (a lip texel is a mixture of a few colour clusters, not one
Gaussian; a mark is present or absent, somewhere) and *locally detailed*: a linear model
(PCA) can only blur them into faint averages, a GAN can place them.

Maps are display-encoded sRGB in [0, 1], ``(N, 3, S, S)``, rendered at ``2 S`` and
area-averaged to ``S`` (anti-aliased detail), cached as ``uint8`` in an ``.npz`` under
``facelab.data.cache_dir() / "gan"`` so training never re-synthesises them.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import AssetMissing, InvalidInput

__all__ = [
    "LIPSTICK_PALETTE",
    "SHADOW_PALETTE",
    "add_appearance_marks",
    "load_texture_gan",
    "shipped_texture_gan_path",
    "texture_layout",
    "texture_maps",
    "texture_maps_cached",
]

#: sRGB lipstick colours (red, plum, pink, coral, brown, nude-rose).
LIPSTICK_PALETTE = ((0.72, 0.05, 0.10), (0.45, 0.08, 0.25), (0.90, 0.40, 0.55),
                    (0.95, 0.42, 0.30), (0.50, 0.25, 0.18), (0.80, 0.52, 0.50))  # fmt: skip
#: sRGB eye-shadow colours (blue, violet, bronze, green-grey).
SHADOW_PALETTE = ((0.25, 0.40, 0.75), (0.50, 0.30, 0.65), (0.60, 0.40, 0.20),
                  (0.35, 0.45, 0.35))  # fmt: skip
_MARKS_VERSION = 1


def texture_layout(size: int):
    """The :class:`~facelab.models.albedo.UVLayout` of the built-in head at ``size`` texels."""
    from ...models import load
    from ...models.albedo import uv_layout_from_model

    return uv_layout_from_model(load("builtin"), size=size)


def add_appearance_marks(
    rgb: torch.Tensor, layout, generator: torch.Generator, probs: dict | None = None
) -> torch.Tensor:
    """Composite discrete make-up and marks onto sRGB maps ``rgb (B, 3, S, S)`` in [0, 1].

    Per sample, independently: lipstick (p=0.45; one of :data:`LIPSTICK_PALETTE`, opacity
    0.55-0.9 over the lip mask), eye shadow (p=0.3; one of :data:`SHADOW_PALETTE` on the
    upper eye region), a beauty mark (p=0.4; a dark disc of radius 0.008-0.014 UV at a random
    cheek/forehead/chin texel) and a scar (p=0.2; a pale line 0.05-0.12 UV long at a random
    angle). ``probs`` overrides the probabilities by name (``lipstick``, ``shadow``, ``mark``,
    ``scar``). Deterministic given ``generator``.
    """
    p = {"lipstick": 0.45, "shadow": 0.3, "mark": 0.4, "scar": 0.2, **(probs or {})}
    b, _, s, _ = rgb.shape
    dev, dt = rgb.device, rgb.dtype
    reg = {n: layout.masks[i].to(dev, dt) for i, n in enumerate(layout.names)}
    g = generator

    def u(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g, dtype=torch.float64).to(dev, dt)

    yy, xx = torch.meshgrid(
        (torch.arange(s, device=dev, dtype=dt) + 0.5) / s,
        (torch.arange(s, device=dev, dtype=dt) + 0.5) / s,
        indexing="ij",
    )
    lip_pal = torch.tensor(LIPSTICK_PALETTE, dtype=dt, device=dev)
    sh_pal = torch.tensor(SHADOW_PALETTE, dtype=dt, device=dev)
    # upper eye region: the eye mask shifted up by a few texels, minus the eye itself
    eyes = reg["eyes"]
    shift = max(1, round(0.02 * s))
    lid = torch.roll(eyes, -shift, dims=0).maximum(eyes) * (1 - 0.7 * reg["lash_line"])
    place = (reg["cheeks"] + reg["forehead"] + 0.5 * reg["beard"]).clamp(max=1.0)
    place = place * (1 - reg["lips"]) * (1 - eyes) * (1 - reg["brows"])
    cdf = torch.cumsum(place.reshape(-1).double(), 0)
    out = []
    for i in range(b):
        x = rgb[i]
        r = u(12)
        if r[0] < p["lipstick"]:
            c = lip_pal[int(r[1] * len(LIPSTICK_PALETTE)) % len(LIPSTICK_PALETTE)]
            a = (0.55 + 0.35 * r[2]) * reg["lips"]
            lum = x.mean(0, keepdim=True)  # keep the lip's shading / texture under the colour
            x = x * (1 - a) + (c[:, None, None] * (0.6 + 0.8 * lum)).clamp(0, 1) * a
        if r[3] < p["shadow"]:
            c = sh_pal[int(r[4] * len(SHADOW_PALETTE)) % len(SHADOW_PALETTE)]
            a = (0.35 + 0.35 * r[5]) * lid
            x = x * (1 - a) + (c[:, None, None] * x.mean(0, keepdim=True) * 1.6).clamp(0, 1) * a
        if r[6] < p["mark"]:
            k = int(torch.searchsorted(cdf, r[7].double().cpu() * cdf[-1]).clamp(max=s * s - 1))
            cy, cx = (k // s + 0.5) / s, (k % s + 0.5) / s
            rad = 0.008 + 0.006 * float(r[8])
            d = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
            a = ((rad - d) * s + 0.5).clamp(0, 1) * 0.85
            x = (
                x * (1 - a)
                + (torch.tensor((0.18, 0.10, 0.07), dtype=dt, device=dev)[:, None, None]) * a
            )
        if r[9] < p["scar"]:
            k = int(torch.searchsorted(cdf, r[10].double().cpu() * cdf[-1]).clamp(max=s * s - 1))
            cy, cx = (k // s + 0.5) / s, (k % s + 0.5) / s
            ang = float(r[11]) * math.pi
            length = 0.05 + 0.07 * float(u(1))
            dy, dx = math.sin(ang), math.cos(ang)
            t = ((yy - cy) * dy + (xx - cx) * dx).clamp(-length / 2, length / 2)
            d = ((yy - cy - t * dy) ** 2 + (xx - cx - t * dx) ** 2).sqrt()
            a = ((0.006 - d) * s + 0.5).clamp(0, 1) * 0.7
            pale = (
                x * 1.25 + torch.tensor((0.08, 0.0, 0.02), dtype=dt, device=dev)[:, None, None]
            ).clamp(0, 1)
            x = x * (1 - a) + pale * a
        out.append(x)
    return torch.stack(out).clamp(0.0, 1.0)


def texture_maps(
    n: int,
    size: int = 64,
    seed: int = 0,
    marks: bool = True,
    supersample: int = 2,
    batch: int = 32,
    progress: bool = False,
) -> torch.Tensor:
    """``n`` procedural UV texture maps ``(n, 3, size, size)`` float32 sRGB in [0, 1].

    Rendered by :class:`~facelab.models.albedo.ProceduralAlbedo` (``encoding="srgb"``, all
    detail on) at ``supersample * size`` in the built-in head's layout, with
    :func:`add_appearance_marks` when ``marks``, then area-averaged to ``size``.
    Deterministic in ``(n, size, seed, marks, supersample)``.
    """
    from ...models.albedo import AlbedoConfig, ProceduralAlbedo

    if n < 1 or size < 8:
        raise InvalidInput(f"need n >= 1 and size >= 8, got n={n}, size={size}")
    big = size * supersample
    layout = texture_layout(big)
    gen = ProceduralAlbedo(layout, AlbedoConfig(encoding="srgb"))
    g = torch.Generator().manual_seed(int(seed))
    gm = torch.Generator().manual_seed(int(seed) + 7919)
    params = gen.sample_params(n, g)
    chunks = []
    rng = range(0, n, batch)
    if progress:
        from tqdm.auto import tqdm

        rng = tqdm(rng, desc="texture maps")
    for i in rng:
        x = gen.render(params[i : i + batch]).float()
        if marks:
            x = add_appearance_marks(x, layout, gm)
        if supersample > 1:
            x = F.avg_pool2d(x, supersample)
        chunks.append(x)
    return torch.cat(chunks)


def _cache_path(n: int, size: int, seed: int, marks: bool) -> Path:
    from ...data import cache_dir
    from ...models import albedo as _alb

    key = f"{n}|{size}|{seed}|{marks}|{_MARKS_VERSION}|{getattr(_alb, '_GENERATOR_VERSION', 0)}"
    h = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(cache_dir()) / "gan" / f"textures_{size}px_{n}_{h}.npz"


def texture_maps_cached(
    n: int, size: int = 64, seed: int = 0, marks: bool = True, progress: bool = True
) -> torch.Tensor:
    """:func:`texture_maps` through an ``uint8`` ``.npz`` cache (returns float32 in [0, 1],
    quantised to 1/255 whether or not it came from the cache)."""
    path = _cache_path(n, size, seed, marks)
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return torch.from_numpy(z["maps"]).float() / 255.0
    x = texture_maps(n, size, seed, marks, progress=progress)
    q = (x * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, maps=q)
    os.replace(tmp, path)
    return torch.from_numpy(q).float() / 255.0


def shipped_texture_gan_path() -> Path:
    """Stem of the committed texture GAN (``facelab/assets/texture_gan/texture_gan``)."""
    return Path(__file__).resolve().parents[2] / "assets" / "texture_gan" / "texture_gan"


def load_texture_gan(path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
    """The shipped (or a given) exported texture generator (EMA weights), in eval mode.

    Returns ``(G, meta)``: ``G(z)`` gives maps in about [-1, 1] (``(x + 1) / 2`` is sRGB);
    ``meta`` is the checkpoint's JSON (config, command, seed, steps, wall time, metrics).
    """
    from ...gan.train import load_generator

    p = Path(path) if path is not None else shipped_texture_gan_path()
    if path is None and not p.with_suffix(".safetensors").is_file():
        raise AssetMissing(
            f"{p}.safetensors is missing: train it with `facelab train texture-gan --config cpu-64 "
            "--out facelab/assets/texture_gan`"
        )
    return load_generator(p, device=device)
