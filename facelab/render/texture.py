r"""Texture sampling: bilinear lookups with mipmapped (antialiased) minification.

UV convention (OBJ, and :mod:`facelab.models.albedo`): ``u`` right, ``v`` **up**, both in
``[0, 1]``; texel ``(i, j)`` of an ``Ht x Wt`` texture has its centre at
``((j + 0.5) / Wt, 1 - (i + 0.5) / Ht)``. Texture images are ``(B, C, Ht, Wt)``.

**Bilinear**: the four texels around ``(x, y) = (u Wt - 0.5, (1 - v) Ht - 0.5)`` weighted by
``(1 - fx)(1 - fy), fx (1 - fy), (1 - fx) fy, fx fy`` — ``grid_sample(align_corners=False)``.

**Mipmapping** (Williams, "Pyramidal Parametrics", SIGGRAPH 1983): when one pixel covers many
texels, bilinear lookups alias. Level ``k`` of the pyramid is the texture box-filtered by
``2^k``; a pixel whose footprint spans ``rho`` texels reads level ``lambda = log2(rho)``,
blending the two nearest levels linearly (trilinear filtering). The footprint is
``rho = max(|d(uv)/dx|, |d(uv)/dy|)`` in texels, estimated by :func:`uv_footprint` from the
rendered UV buffer's finite differences (the smaller one-sided difference per axis, so UV seams
do not inflate it). Differentiable w.r.t. the texture and the UVs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as Fn

from .._checks import check_shape
from ..errors import InvalidInput

__all__ = ["mipmap_pyramid", "sample_points", "sample_vertex_albedo", "texture", "uv_footprint"]


def mipmap_pyramid(tex: torch.Tensor, levels: int | None = None) -> list[torch.Tensor]:
    """``[tex, tex/2, tex/4, ...]``: 2x2 box-filtered levels down to 1 texel (or ``levels``)."""
    out = [tex]
    while min(out[-1].shape[-2:]) > 1 and (levels is None or len(out) < levels):
        t = out[-1]
        if t.shape[-2] % 2 or t.shape[-1] % 2:
            t = Fn.pad(t, (0, t.shape[-1] % 2, 0, t.shape[-2] % 2), mode="replicate")
        out.append(Fn.avg_pool2d(t, 2))
    return out


def _sample(tex: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear sample ``tex (B,C,Ht,Wt)`` at ``uv (B,H,W,2)`` -> ``(B,H,W,C)``, clamp-to-edge."""
    grid = torch.stack([uv[..., 0] * 2 - 1, 1 - uv[..., 1] * 2], -1).to(tex.dtype)
    out = Fn.grid_sample(tex, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.permute(0, 2, 3, 1)


def sample_points(tex: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of ``tex (B, C, Ht, Wt)`` at scattered points ``uv (B, N, 2)`` or
    ``(N, 2)`` (shared by the batch) -> ``(B, N, C)``; clamp-to-edge outside ``[0, 1]``.

    The library's one point lookup (per-vertex colours from a UV map, roughness at packed
    pixels): the same bilinear filter as :func:`texture` without mipmapping (points have no
    footprint).
    """
    if tex.dim() != 4:
        raise InvalidInput(f"texture must be (B, C, Ht, Wt), got {tuple(tex.shape)}")
    if uv.dim() == 2:
        uv = uv.unsqueeze(0).expand(tex.shape[0], -1, -1)
    if uv.dim() != 3 or uv.shape[-1] != 2 or uv.shape[0] != tex.shape[0]:
        raise InvalidInput(
            f"uv must be (N, 2) or ({tex.shape[0]}, N, 2) for a texture batch of "
            f"{tex.shape[0]}, got {tuple(uv.shape)}"
        )
    return _sample(tex, uv[:, None])[:, 0]


def sample_vertex_albedo(
    albedo: torch.Tensor,
    uvs: torch.Tensor,
    uv_faces: torch.Tensor,
    faces: torch.Tensor,
    num_vertices: int | None = None,
) -> torch.Tensor:
    """Per-vertex colours ``(B, V, 3)`` from a UV albedo image ``(B, 3, S, S)``.

    Args:
        albedo: ``(B, 3, S, S)`` UV image (e.g. ``ProceduralAlbedo.sample``).
        uvs: ``(T, 2)`` texture coordinates; ``uv_faces``, ``faces``: ``(F, 3) long`` — the
            UV and vertex index of each face corner (as in a ``MorphableModel``).
        num_vertices: ``V``; default ``faces.max() + 1``.

    A vertex on a UV seam has several UVs: its colour is the **mean over its distinct UVs**
    (each distinct (vertex, uv) pair counts once, however many faces share it). Vertices on
    no face get 0. Bilinear lookups by :func:`sample_points` (clamp-to-edge: UVs outside
    [0, 1], e.g. UDIM tiles beyond the first, take border colours).
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
    cols = sample_points(albedo, uvs.to(dev, albedo.dtype)[pt])  # (B, P, 3)
    out = albedo.new_zeros(albedo.shape[0], nv, 3).index_add(1, pv, cols)
    cnt = albedo.new_zeros(nv).index_add(0, pv, torch.ones_like(pv, dtype=albedo.dtype))
    return out / cnt.clamp_min(1.0)[None, :, None]


def uv_footprint(
    uv: torch.Tensor, mask: torch.Tensor, texture_size: tuple[int, int] | int
) -> torch.Tensor:
    """Texels covered by each pixel, ``(B, H, W)``: ``max(|du/dx|, |du/dy|)`` in texels.

    Finite differences of the UV buffer ``(B, H, W, 2)`` between neighbours inside ``mask``
    (``(B, H, W)`` bool). Along each axis a pixel has up to two one-sided differences; the
    *smaller* is used, so a pixel next to a UV seam (where the neighbour across the seam lies
    in another chart and the difference jumps by the distance between the charts) keeps the
    footprint of its own side instead of reading a needlessly blurred mip level. Pixels with
    no valid neighbour get 1 (no filtering). No gradient.
    """
    Ht, Wt = (texture_size, texture_size) if isinstance(texture_size, int) else texture_size
    scale = uv.new_tensor([Wt, Ht])
    with torch.no_grad():
        t = uv.detach() * scale
        best = torch.zeros(uv.shape[:-1], dtype=uv.dtype, device=uv.device)
        found = torch.zeros_like(mask)
        inf = torch.tensor(torch.inf, dtype=uv.dtype, device=uv.device)
        for pad_a, pad_b, dim in (((0, 0, 0, 1), (0, 0, 1, 0), 1), ((0, 1), (1, 0), 2)):
            # difference between neighbours along rows (dim 1) or columns (dim 2)
            n = mask.shape[dim] - 1
            d = t.diff(dim=dim).norm(dim=-1)
            ok = mask.narrow(dim, 1, n) & mask.narrow(dim, 0, n)
            d = torch.where(ok, d, inf)
            # each difference is one-sided for both pixels it joins: forward for the first,
            # backward for the second; keep the smaller of a pixel's two
            one_sided = torch.minimum(Fn.pad(d, pad_a, value=inf), Fn.pad(d, pad_b, value=inf))
            has = Fn.pad(ok, pad_a) | Fn.pad(ok, pad_b)
            best = torch.where(has, torch.maximum(best, one_sided), best)
            found = found | has
        return torch.where(found, best, torch.ones_like(best)).clamp_min(1e-6)


def texture(
    tex: torch.Tensor,
    uv: torch.Tensor,
    footprint: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    mip: bool = True,
    max_levels: int | None = None,
) -> torch.Tensor:
    """Sample a texture at per-pixel UVs: bilinear, with trilinear mipmapping when minified.

    Args:
        tex: ``(B, C, Ht, Wt)`` texture (``B`` may be 1 to share one texture).
        uv: ``(B, H, W, 2)`` texture coordinates (``v`` up; module docstring).
        footprint: ``(B, H, W)`` texels per pixel; estimated with :func:`uv_footprint` from
            ``uv`` and ``mask`` if None.
        mask: ``(B, H, W)`` bool, pixels where ``uv`` is valid (default: all).
        mip: False for plain bilinear (aliases when minifying).
        max_levels: cap on the pyramid depth.

    Returns:
        ``(B, H, W, C)``.
    """
    if tex.dim() != 4:
        raise InvalidInput(f"texture must be (B, C, Ht, Wt), got {tuple(tex.shape)}")
    if uv.dim() != 4 or uv.shape[-1] != 2:
        raise InvalidInput(f"uv must be (B, H, W, 2), got {tuple(uv.shape)}")
    B = uv.shape[0]
    if tex.shape[0] != B and tex.shape[0] != 1:
        raise InvalidInput(f"texture batch {tex.shape[0]} != uv batch {uv.shape[0]}")
    shared = tex  # a shared texture's pyramid is built once, then expanded (a view)
    tex = tex.expand(B, -1, -1, -1)
    if not mip:
        return _sample(tex, uv)
    if footprint is None:
        m = torch.ones(uv.shape[:-1], dtype=torch.bool, device=uv.device) if mask is None else mask
        footprint = uv_footprint(uv, m, tuple(tex.shape[-2:]))
    lam = torch.log2(footprint.clamp_min(1.0))  # (B, H, W), 0 = magnification
    top = float(lam.max()) if lam.numel() else 0.0
    if top <= 0:
        return _sample(tex, uv)
    n_levels = min(int(math.ceil(top)) + 1, max_levels or 64)
    pyr = [t.expand(B, -1, -1, -1) for t in mipmap_pyramid(shared, n_levels)]
    lam = lam.clamp(max=len(pyr) - 1)
    out = 0
    for k, level in enumerate(pyr):
        w = (1 - (lam - k).abs()).clamp_min(0)  # tent weights: level floor/ceil of lambda
        if not bool((w > 0).any()):
            continue
        out = out + _sample(level, uv) * w.unsqueeze(-1).to(tex.dtype)
    return out
