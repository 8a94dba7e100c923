"""Differentiable augmentation for GANs trained on small data sets (DiffAugment-style).

Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training" (NeurIPS 2020):
apply the *same family* of random, differentiable transforms to real and generated images
before the discriminator, so D cannot memorise the few real images, and the generator still
learns the un-augmented distribution (its gradient flows through the transform). Every
transform here is a tensor function of the image, so it is differentiable w.r.t. pixels.

:class:`AugmentConfig` names each transform's probability (per sample); ``p=0`` everywhere is
the identity. Images are ``(B, C, H, W)`` in about [-1, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

__all__ = ["AugmentConfig", "augment"]


@dataclass
class AugmentConfig:
    """Per-sample probabilities and strengths of each transform.

    Attributes:
        brightness, saturation, contrast: probability of a random colour change (strengths:
            brightness +-0.25, saturation x[0, 2], contrast x[0.5, 1.5], DiffAugment's).
        translation: probability of an integer shift of up to ``translation_frac`` of the size
            (zero padding).
        cutout: probability of zeroing a random square of ``cutout_frac`` of the size.
    """

    brightness: float = 0.0
    saturation: float = 0.0
    contrast: float = 0.0
    translation: float = 0.0
    translation_frac: float = 0.125
    cutout: float = 0.0
    cutout_frac: float = 0.5

    @property
    def active(self) -> bool:
        return any(
            getattr(self, k) > 0
            for k in ("brightness", "saturation", "contrast", "translation", "cutout")
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _mask(p: float, b: int, g: torch.Generator | None, x: torch.Tensor) -> torch.Tensor:
    return (torch.rand(b, 1, 1, 1, generator=g, device=x.device, dtype=x.dtype) < p).to(x.dtype)


def augment(
    x: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Randomly transformed copy of ``x (B, C, H, W)`` (differentiable w.r.t. ``x``)."""
    if not config.active:
        return x
    b, _, h, w = x.shape
    g = generator

    def r(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g, device=x.device, dtype=x.dtype)

    if config.brightness > 0:
        x = x + _mask(config.brightness, b, g, x) * (r(b, 1, 1, 1) - 0.5) * 0.5
    if config.saturation > 0:
        m = x.mean(1, keepdim=True)
        f = 1 + _mask(config.saturation, b, g, x) * (r(b, 1, 1, 1) * 2 - 1)
        x = m + (x - m) * f
    if config.contrast > 0:
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        f = 1 + _mask(config.contrast, b, g, x) * (r(b, 1, 1, 1) - 0.5)
        x = m + (x - m) * f
    if config.translation > 0:
        sh = int(h * config.translation_frac + 0.5)
        sw = int(w * config.translation_frac + 0.5)
        on = _mask(config.translation, b, g, x).reshape(b)
        ty = torch.randint(-sh, sh + 1, (b,), generator=g, device=x.device) * on.long()
        tx = torch.randint(-sw, sw + 1, (b,), generator=g, device=x.device) * on.long()
        iy = torch.arange(h, device=x.device)[None, :] - ty[:, None]  # (B, H) source rows
        ix = torch.arange(w, device=x.device)[None, :] - tx[:, None]
        vy = ((iy >= 0) & (iy < h)).to(x.dtype)
        vx = ((ix >= 0) & (ix < w)).to(x.dtype)
        pad = F.pad(x, (1, 1, 1, 1))  # index 0 / H+1 are zeros
        iy = torch.where(vy > 0, iy + 1, torch.zeros_like(iy))
        ix = torch.where(vx > 0, ix + 1, torch.zeros_like(ix))
        bi = torch.arange(b, device=x.device)[:, None, None]
        x = pad.permute(0, 2, 3, 1)[bi, iy[:, :, None], ix[:, None, :]].permute(0, 3, 1, 2)
    if config.cutout > 0:
        ch, cw = int(h * config.cutout_frac + 0.5), int(w * config.cutout_frac + 0.5)
        on = _mask(config.cutout, b, g, x)
        cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), generator=g, device=x.device)
        cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), generator=g, device=x.device)
        yy = torch.arange(h, device=x.device)[None, :, None]
        xx = torch.arange(w, device=x.device)[None, None, :]
        hole = ((yy - cy).abs() < ch / 2) & ((xx - cx).abs() < cw / 2)
        x = x * (1 - on * hole[:, None].to(x.dtype))
    return x
