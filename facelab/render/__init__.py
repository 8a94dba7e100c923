"""Differentiable rendering that runs everywhere (CPU, CUDA, MPS): facelab's own rasterizer.

Four small primitives, as in nvdiffrast, and shading as plain tensor code:

* :func:`rasterize` — screen-space triangles -> :class:`Fragments` (visible face, perspective-
  correct barycentrics, depth) per pixel; :func:`rasterize_reference` is its slow twin.
* :func:`interpolate` — per-vertex attributes -> per-pixel attributes.
"""

from __future__ import annotations

from .interpolate import interpolate, interpolate_packed, scatter_packed
from .rasterize import Fragments, rasterize, rasterize_reference, signed_screen_areas

__all__ = [
    "Fragments",
    "signed_screen_areas",
    "interpolate",
    "interpolate_packed",
    "rasterize",
    "rasterize_reference",
    "scatter_packed",
]
