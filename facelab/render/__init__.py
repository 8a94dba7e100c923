"""Differentiable rendering that runs everywhere (CPU, CUDA, MPS): facelab's own rasterizer.

Four small primitives, as in nvdiffrast, and shading as plain tensor code:

* :func:`rasterize` — screen-space triangles ``(u, v, z)`` -> :class:`Fragments` (visible
  face, perspective-correct barycentrics, depth per pixel); :func:`rasterize_reference` is its
  slow, loop-based twin (test oracle).
* :func:`interpolate` — per-vertex attributes -> per-pixel attributes (differentiable w.r.t.
  attributes and vertex positions).
* :func:`texture` — bilinear texture lookups with trilinear mipmapping;
  :func:`sample_points` at scattered UVs and :func:`sample_vertex_albedo` (per-vertex colours
  from a UV map) are the one point lookup.
* :func:`antialias` — nvdiffrast-style analytic antialiasing of silhouette edges, and
  :func:`soft_silhouette` / :func:`soft_rasterize` — SoftRas coverage and blending: the two
  ways to get gradients at silhouettes and occlusion boundaries.
* Shading: :func:`sh_basis`, :func:`sh_shading`, :func:`lambert`, :func:`blinn_phong`;
  normal and depth maps.
* :mod:`facelab.render.volume` — the fifth primitive: rays, stratified and importance
  samples, and emission-absorption compositing of any density/colour field.
* :class:`Renderer` — camera + lights + mesh -> image, mask, depth, normals, landmarks, with
  ``backend="torch"`` or ``"pytorch3d"``.

Conventions: :mod:`facelab.geometry.camera` (OpenCV camera, pixel centres at +0.5) and
:mod:`facelab.geometry.conventions` (image layout, background, the one render path). Device and
dtype follow the inputs: ``tests/test_device_dtype.py`` runs the renderer, the world and the
fitter end to end in float64, and on CUDA / MPS where present. Colour encodings (sRGB):
:mod:`facelab.color` (below models in the layers; re-exported here).
"""

from __future__ import annotations

from ..color import linear_to_srgb, srgb_to_linear  # re-exported: the one sRGB pair
from . import volume as volume
from .antialias import antialias, face_adjacency
from .backends import pytorch3d_available, rasterize_pytorch3d
from .interpolate import interpolate, interpolate_packed, scatter_packed
from .rasterize import Fragments, rasterize, rasterize_reference, signed_screen_areas
from .renderer import Renderer, RenderOutput
from .shading import (
    SH_C,
    SH_LAMBERT,
    blinn_phong,
    depth_to_image,
    encode_normals,
    lambert,
    normalized_blinn_phong,
    sh_ambient,
    sh_basis,
    sh_shading,
    sh_shading_packed,
)
from .soft import soft_rasterize, soft_silhouette
from .texture import mipmap_pyramid, sample_points, sample_vertex_albedo, texture, uv_footprint

__all__ = [
    "SH_C",
    "SH_LAMBERT",
    "Fragments",
    "RenderOutput",
    "Renderer",
    "antialias",
    "blinn_phong",
    "depth_to_image",
    "encode_normals",
    "face_adjacency",
    "interpolate",
    "interpolate_packed",
    "lambert",
    "linear_to_srgb",
    "mipmap_pyramid",
    "normalized_blinn_phong",
    "pytorch3d_available",
    "rasterize",
    "rasterize_pytorch3d",
    "rasterize_reference",
    "sample_points",
    "sample_vertex_albedo",
    "scatter_packed",
    "sh_ambient",
    "sh_basis",
    "sh_shading",
    "sh_shading_packed",
    "signed_screen_areas",
    "soft_rasterize",
    "soft_silhouette",
    "srgb_to_linear",
    "texture",
    "uv_footprint",
]
