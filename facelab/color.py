"""Colour encodings: the sRGB transfer function (IEC 61966-2-1) and its inverse.

Photos and display-encoded textures are sRGB; shading is linear. The fitter compares a linear
render with a linearised photo, the procedural albedo renders linear reflectance and encodes
it for display, the world writes sRGB images: all through these two functions.
This module sits below every layer (``models`` encodes its albedo with it and may not import
``render``); :mod:`facelab.render` and :mod:`facelab.models.albedo` re-export both functions.

.. math::

    \\mathrm{srgb}(x) = \\begin{cases} 12.92\\, x & x \\le 0.0031308 \\\\
        1.055\\, x^{1/2.4} - 0.055 & \\text{otherwise} \\end{cases}
    \\qquad
    \\mathrm{linear}(y) = \\begin{cases} y / 12.92 & y \\le 0.04045 \\\\
        ((y + 0.055) / 1.055)^{2.4} & \\text{otherwise} \\end{cases}

Inputs are clamped to [0, 1] first (values outside are not colours in either encoding). The
powers see their argument clamped to at least ``1e-8`` so that the branch ``torch.where`` does
not select still has a finite gradient (no NaN from ``0 ** (1/2.4)``'s derivative). Device and
dtype follow the input.
"""

from __future__ import annotations

import torch

__all__ = ["linear_to_srgb", "srgb_to_linear"]

_TINY = 1e-8


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """The sRGB EOTF: ``x / 12.92`` below 0.04045, else ``((x + 0.055) / 1.055)^2.4``."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).clamp_min(_TINY) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer function, inverse of :func:`srgb_to_linear`: ``12.92 x`` below
    0.0031308, else ``1.055 x^(1/2.4) - 0.055``."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(_TINY) ** (1 / 2.4) - 0.055)
