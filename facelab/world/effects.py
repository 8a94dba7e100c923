"""Image-model effects beyond Lambert-SH, as plain tensor functions (packed pixels or images).

Formulas (camera space; ``n`` unit normal, ``v`` unit vector to the camera, ``l`` to the light):

- **Blinn-Phong specular** (energy-normalised; the world calls
  :func:`facelab.render.shading.normalized_blinn_phong`, this module only maps roughness to
  shininess): ``k_s (s + 8) / (8 pi) max(0, <n, h>)^s
  max(0, <n, l>) c`` with ``h = normalize(l + v)`` and shininess ``s = 2 / alpha^2 - 2``,
  ``alpha = roughness^2`` (the Beckmann-Phong correspondence, Walter et al. 2007).
- **Schlick Fresnel** ``F = F0 + (1 - F0)(1 - <n, v>)^5`` with ``F0 = 0.028`` (skin, IOR 1.4)
  weights an environment reflection ``S_env(r)``, ``r = 2 <n, v> n - v``.
- **Wrap lighting** (Green 2004, a cheap subsurface approximation): ``max(0, (<n, l> + w) /
  (1 + w))`` per colour channel, with a wider wrap ``w`` for red (light scatters further in red).
- **Masked Gaussian blur** of the irradiance (screen-space subsurface scattering, Jimenez et al.
  2009): normalised convolution ``G*(E m) / G*m`` so the background does not bleed in.
"""

from __future__ import annotations

import torch

from .background import gaussian_blur

SKIN_F0 = 0.028
WRAP_RGB = (1.0, 0.55, 0.4)
"""Relative wrap / blur widths of the red, green and blue channels."""


def shininess_from_roughness(roughness: torch.Tensor) -> torch.Tensor:
    """``s = 2 / alpha^2 - 2``, ``alpha = roughness^2`` (clamped to stay finite)."""
    alpha = (roughness * roughness).clamp_min(1e-3)
    return (2.0 / (alpha * alpha) - 2.0).clamp(1.0, 4096.0)


def schlick_fresnel(n: torch.Tensor, v: torch.Tensor, f0: float = SKIN_F0) -> torch.Tensor:
    """``F0 + (1 - F0)(1 - <n, v>)^5``, ``(P,)``."""
    c = (n * v).sum(-1).clamp(0, 1)
    return f0 + (1 - f0) * (1 - c).pow(5)


def reflect(n: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Mirror direction of ``v`` about ``n``: ``2 <n, v> n - v`` (``(P, 3)``)."""
    return 2 * (n * v).sum(-1, keepdim=True) * n - v


def wrap_diffuse(cos: torch.Tensor, wrap: float) -> torch.Tensor:
    """Per-channel wrap lighting ``(P, 3)`` from ``cos = <n, l> (P,)``; widths ``wrap * WRAP_RGB``."""
    w = cos.new_tensor(WRAP_RGB) * wrap
    return ((cos[:, None] + w) / (1 + w)).clamp_min(0)


def masked_blur(img: torch.Tensor, mask: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Normalised-convolution blur of ``img (B, C, H, W)`` inside ``mask (B, 1, H, W)``.

    ``sigma (B, C)`` per image and channel, in pixels. Outside the mask the input is returned.
    """
    B, C, H, W = img.shape
    m = mask.to(img.dtype)
    num = gaussian_blur((img * m).reshape(B * C, 1, H, W), sigma.reshape(-1))
    den = gaussian_blur(m.expand(B, C, H, W).reshape(B * C, 1, H, W), sigma.reshape(-1))
    out = (num / den.clamp_min(1e-6)).reshape(B, C, H, W)
    return torch.where(m > 0, out, img)


def polygon_inside(points: torch.Tensor, poly: torch.Tensor) -> torch.Tensor:
    """Even-odd inside test: ``points (B, P, 2)``, ``poly (B, N, 2)`` -> ``(B, P)`` bool."""
    a, b = poly, poly.roll(-1, 1)
    py, px = points[..., None, 1], points[..., None, 0]  # (B, P, 1)
    ay, by = a[:, None, :, 1], b[:, None, :, 1]
    ax, bx = a[:, None, :, 0], b[:, None, :, 0]
    cond = (ay > py) != (by > py)
    dy = by - ay
    dy = torch.where(dy.abs() < 1e-12, torch.full_like(dy, 1e-12), dy)
    x_int = ax + (py - ay) * (bx - ax) / dy
    return ((cond & (px < x_int)).sum(-1) % 2) == 1
