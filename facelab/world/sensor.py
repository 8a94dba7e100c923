"""The camera after the lens: optical blur, sensor noise and JPEG compression.

Applied in this order to the rendered image ``x`` (linear-ish RGB in [0, 1], ``(B, 3, H, W)``):

1. **Blur** (defocus / lens softness): Gaussian with ``sigma = s * blur * H / 128`` pixels,
   ``s ~ U(0.2, 1)`` per image.
2. **Noise** (Poisson-Gaussian model, Foi et al. 2008): ``y = x + sqrt(a x + b) * n``,
   ``n ~ N(0, 1)``, with shot gain ``a = noise * U(0, 0.006)`` and read variance
   ``b = (noise * U(0.002, 0.015))^2``; clipped to [0, 1].
3. **JPEG** round trip through PIL at a quality ``q`` (8-bit quantisation included). Not
   differentiable; it is data generation.
"""

from __future__ import annotations

import io

import numpy as np
import torch

from .background import gaussian_blur


def apply_blur(img: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """Gaussian blur of ``(B, 3, H, W)`` with per-image ``sigma`` ``(B,)`` in pixels."""
    return gaussian_blur(img, sigma)


def apply_noise(
    img: torch.Tensor, shot: torch.Tensor, read: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """Poisson-Gaussian noise ``y = clip(x + sqrt(shot * x + read^2) * noise, 0, 1)``.

    ``img (B, 3, H, W)``, ``shot (B,)``, ``read (B,)`` (std), ``noise (B, 3, H, W)`` standard
    normal (drawn by the caller from a per-sample generator, so batching does not change it).
    """
    var = shot[:, None, None, None] * img.clamp_min(0) + read[:, None, None, None] ** 2
    return (img + var.sqrt() * noise).clamp(0, 1)


def jpeg_roundtrip(img: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode ``(3, H, W)`` in [0, 1] as JPEG at ``quality`` and decode; returns ``(3, H, W)``."""
    from PIL import Image

    arr = (img.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality), subsampling=2)
    buf.seek(0)
    with Image.open(buf) as im:
        out = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(out.copy()).permute(2, 0, 1).to(img.dtype).to(img.device)


def quantize8(img: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels (what a PNG of the image stores)."""
    return torch.round(img.clamp(0, 1) * 255.0) / 255.0
