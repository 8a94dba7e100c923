r"""Attribute interpolation: per-vertex values -> per-pixel values.

For a pixel covered by triangle ``(i_0, i_1, i_2)`` with perspective-correct barycentrics
``b`` (:func:`facelab.render.rasterize`),

.. math::  a(p) = \sum_{k=0}^{2} b_k(p)\, a_{i_k}.

Differentiable w.r.t. the attributes (a weighted sum) and w.r.t. the vertex positions through
``b`` (recomputed with autograd by the rasterizer). Reference: nvdiffrast's ``interpolate``
(Laine et al., "Modular Primitives for High-Performance Differentiable Rendering", 2020).
"""

from __future__ import annotations

import torch

from ..errors import InvalidInput
from .rasterize import Fragments

__all__ = ["interpolate", "interpolate_packed", "scatter_packed"]


def interpolate_packed(
    vertex_attrs: torch.Tensor, fragments: Fragments, faces: torch.Tensor | None = None
) -> torch.Tensor:
    """Interpolated attributes at the covered pixels only: ``(P, C)``.

    Args:
        vertex_attrs: ``(B, V, C)`` or ``(V, C)`` (shared by the batch).
        fragments: the rasterizer output.
        faces: ``(F, 3)`` long indexing ``vertex_attrs``; defaults to the rasterized faces.
            Pass a different topology with the same number of faces to interpolate e.g. UV
            coordinates stored per wedge (``uv_faces``).

    Row ``r`` belongs to pixel ``fragments.pix[r]``; :func:`scatter_packed` makes an image.
    """
    faces = fragments.faces if faces is None else faces.long()
    if faces.shape[0] != fragments.faces.shape[0]:
        raise InvalidInput(
            f"faces has {faces.shape[0]} triangles but the mesh was rasterized with "
            f"{fragments.faces.shape[0]}: pass per-face indices of the same triangles"
        )
    if vertex_attrs.dim() == 2:
        vertex_attrs = vertex_attrs.unsqueeze(0)
    if vertex_attrs.dim() != 3:
        raise InvalidInput(
            f"vertex_attrs must be (B, V, C) or (V, C), got {tuple(vertex_attrs.shape)}"
        )
    Ba, V, C = vertex_attrs.shape
    B = fragments.batch_size
    if Ba not in (1, B):
        raise InvalidInput(f"vertex_attrs has batch {Ba}, fragments have batch {B}")
    vidx = faces[fragments.face]  # (P, 3)
    if Ba > 1:
        vidx = vidx + (fragments.batch_index * V).unsqueeze(1)
    flat = vertex_attrs.reshape(Ba * V, C)
    b = fragments.bary_packed.to(flat.dtype)
    # sum_k b_k a_k, written out: reductions over a size-3 axis are slow on CPU
    return (
        b[:, 0:1] * flat[vidx[:, 0]] + b[:, 1:2] * flat[vidx[:, 1]] + b[:, 2:3] * flat[vidx[:, 2]]
    )


def scatter_packed(
    values: torch.Tensor, fragments: Fragments, background: float | torch.Tensor = 0.0
) -> torch.Tensor:
    """Packed per-pixel values ``(P, C)`` -> image buffer ``(B, H, W, C)`` (differentiable).

    ``background`` (a float or ``(C,)`` tensor) fills uncovered pixels.
    """
    H, W = fragments.image_size
    B = fragments.batch_size
    C = values.shape[-1]
    if isinstance(background, torch.Tensor) or background != 0.0:
        bg = torch.as_tensor(background, dtype=values.dtype, device=values.device)
        out = bg.expand(B * H * W, C).clone()
    else:
        out = values.new_zeros(B * H * W, C)
    out.index_put_((fragments.pix,), values)  # in place: no second image-sized copy
    return out.view(B, H, W, C)


def interpolate(
    vertex_attrs: torch.Tensor,
    fragments: Fragments,
    faces: torch.Tensor | None = None,
    background: float | torch.Tensor = 0.0,
) -> torch.Tensor:
    """Interpolate per-vertex attributes over the image: ``(B, H, W, C)``.

    ``a(p) = sum_k b_k(p) a[face(p), k]`` (module docstring); ``background`` where no
    triangle is visible. Arguments as :func:`interpolate_packed`.
    """
    return scatter_packed(interpolate_packed(vertex_attrs, fragments, faces), fragments, background)
