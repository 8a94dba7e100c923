"""Per-vertex colours from a UV albedo image (``sample_uv``, ``sample_vertex_albedo``)."""

from __future__ import annotations

import torch

from ..._checks import check_shape
from ...errors import InvalidInput

# --------------------------------------------------------------------------------------------
# Per-vertex colours
# --------------------------------------------------------------------------------------------


def sample_uv(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of ``image (B, C, S, S)`` at ``uv (N, 2)`` or ``(B, N, 2)`` -> ``(B, N, C)``.

    Texel convention of this module (v up, texel centres at ``(j + 0.5) / S``); UVs outside
    [0, 1] take the border texel (``padding_mode="border"``), so UDIM tiles beyond the
    first one get edge colours rather than wrapped facial features.
    """
    from ...render.texture import sample_points

    check_shape("image", image, (None, None, None, None))
    if uv.dim() == 3:
        check_shape("uv", uv, (image.shape[0], None, 2))
    return sample_points(image, uv)  # the one bilinear point lookup


def sample_vertex_albedo(
    albedo: torch.Tensor,
    uvs: torch.Tensor,
    uv_faces: torch.Tensor,
    faces: torch.Tensor,
    num_vertices: int | None = None,
) -> torch.Tensor:
    """Per-vertex colours ``(B, V, 3)`` from UV albedo ``(B, 3, S, S)``.

    Args:
        albedo: ``(B, 3, S, S)`` UV image (e.g. ``ProceduralAlbedo.sample``).
        uvs: ``(T, 2)`` texture coordinates; ``uv_faces``, ``faces``: ``(F, 3) long`` — the
            UV and vertex index of each face corner (as in a ``MorphableModel``).
        num_vertices: ``V``; default ``faces.max() + 1``.

    A vertex on a UV seam has several UVs: its colour is the **mean over its distinct UVs**
    (each distinct (vertex, uv) pair counts once, however many faces share it). Vertices on
    no face get 0. Bilinear sampling via :func:`sample_uv`.
    """
    check_shape("albedo", albedo, (None, 3, None, None))
    check_shape("uvs", uvs, (None, 2))
    check_shape("uv_faces", uv_faces, (None, 3))
    check_shape("faces", faces, (uv_faces.shape[0], 3))
    dev = albedo.device
    fv = faces.reshape(-1).long().to(dev)
    ft = uv_faces.reshape(-1).long().to(dev)
    nv = int(fv.max()) + 1 if num_vertices is None else int(num_vertices)
    if int(fv.max()) >= nv:
        raise InvalidInput(f"faces index vertex {int(fv.max())} but num_vertices is {nv}")
    nt = uvs.shape[0]
    pairs = torch.unique(fv * nt + ft)
    pv, pt = torch.div(pairs, nt, rounding_mode="floor"), pairs % nt
    cols = sample_uv(albedo, uvs.to(dev, albedo.dtype)[pt])  # (B, P, 3)
    out = albedo.new_zeros(albedo.shape[0], nv, 3).index_add(1, pv, cols)
    cnt = albedo.new_zeros(nv).index_add(0, pv, torch.ones_like(pv, dtype=albedo.dtype))
    return out / cnt.clamp_min(1.0)[None, :, None]
