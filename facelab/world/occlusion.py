"""Self-shadowing and ambient occlusion with the rasterizer's depth maps.

**Directional visibility** (a shadow map, Williams 1978). To know which vertices a directional
light ``l`` reaches, look at the mesh *from the light*: an orthographic camera whose axis is
``-l``. Its depth map ``D(u, v)`` (rasterizer ``zbuf``) stores the nearest surface along each
light ray; a vertex ``x`` (pushed along its normal by a small bias to avoid self-shadowing
"acne") is lit when its light depth ``z(x) <= D(u(x), v(x)) + bias``. Percentage-closer
filtering (Reeves et al. 1987) averages the test over a 3x3 texel neighbourhood, so the
per-vertex visibility ``vis in [0, 1]`` has soft edges.

**Ambient occlusion** (Zhukov et al. 1998) is the cosine-weighted fraction of the hemisphere
around a vertex's normal that sees the sky,

.. math::  AO(x) = \\frac{\\sum_k \\max(0, <n, d_k>) \\, vis_k(x)}{\\sum_k \\max(0, <n, d_k>)},

with ``d_k`` a Fibonacci sphere of directions and ``vis_k`` the shadow-map test above. It is
computed once per shape (e.g. the model's mean face) and reused, since occlusion changes
little with identity.
"""

from __future__ import annotations

import torch

from ..geometry.mesh import vertex_normals
from ..render import rasterize
from .lighting import fibonacci_sphere


def _light_frame(d: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 3)`` rotations whose third row is ``-d`` (the light camera looks along ``-d``)."""
    z = -d / d.norm(dim=-1, keepdim=True)
    helper = torch.zeros_like(z)
    helper[..., 1] = 1.0
    par = z[..., 1].abs() > 0.9
    helper[par] = torch.tensor([1.0, 0.0, 0.0], dtype=z.dtype, device=z.device)
    x = torch.linalg.cross(helper, z, dim=-1)
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(z, x, dim=-1)
    return torch.stack([x, y, z], -2)


def directional_visibility(
    verts: torch.Tensor,
    faces: torch.Tensor,
    directions: torch.Tensor,
    size: int = 128,
    normals: torch.Tensor | None = None,
    bias_texels: float = 1.5,
    pcf: bool = True,
    cull_backfaces: bool = True,
) -> torch.Tensor:
    """Per-vertex visibility ``(B, V)`` in [0, 1] of directional lights (shadow maps).

    Args:
        verts: ``(B, V, 3)`` vertices (any frame; ``directions`` in the same frame).
        faces: ``(F, 3)`` long.
        directions: ``(B, 3)`` unit vectors pointing *towards* each light.
        size: shadow-map resolution (texels across the mesh's extent).
        normals: ``(B, V, 3)`` vertex normals (computed if None) for the normal-offset bias.
        bias_texels: depth bias and normal offset, in texels.
        pcf: average the test over 3x3 texels (soft shadows).
        cull_backfaces: rasterize only triangles facing the light (the nearest surface along a
            light ray always faces it, for meshes with outward counter-clockwise triangles);
            halves the work. Pass False for meshes of inconsistent orientation.
    """
    B, V, _ = verts.shape
    dt = verts.dtype
    if normals is None:
        normals = vertex_normals(verts, faces)
    R = _light_frame(directions.to(dt))  # (B, 3, 3)
    p = verts @ R.transpose(1, 2)  # light frame: z along -d (depth from the light)
    lo = p[..., :2].amin(1)  # (B, 2)
    hi = p[..., :2].amax(1)
    extent = (hi - lo).amax(-1).clamp_min(1e-9)  # (B,)
    margin = 2.0
    scale = (size - 2 * margin) / extent  # texels per unit
    texel = 1.0 / scale  # units per texel
    uv = (p[..., :2] - lo[:, None]) * scale[:, None, None] + margin
    z = p[..., 2]
    zoff = z.amin(1, keepdim=True) - extent[:, None]  # positive depths for the rasterizer
    screen = torch.cat([uv, (z - zoff)[..., None]], -1)
    with torch.no_grad():
        frags = rasterize(screen.detach(), faces, (size, size), cull_backfaces=cull_backfaces)
    zbuf = frags.zbuf  # (B, S, S), -1 background
    zbuf = torch.where(zbuf < 0, torch.full_like(zbuf, float("inf")), zbuf)
    # lookup: vertices pushed along their normal by bias
    q = verts + normals * (bias_texels * texel)[:, None, None]
    pq = q @ R.transpose(1, 2)
    uq = (pq[..., :2] - lo[:, None]) * scale[:, None, None] + margin
    zq = pq[..., 2] - zoff
    col = torch.floor(uq[..., 0]).long()
    row = torch.floor(uq[..., 1]).long()
    offs = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0), (0, 1), (1, -1), (1, 0), (1, 1)]
    if not pcf:
        offs = [(0, 0)]
    flat = zbuf.reshape(B, -1)
    vis = torch.zeros(B, V, dtype=dt, device=verts.device)
    tol = (bias_texels * texel)[:, None]
    for di, dj in offs:
        r = (row + di).clamp(0, size - 1)
        c = (col + dj).clamp(0, size - 1)
        d = flat.gather(1, r * size + c)
        vis += (zq <= d + tol).to(dt)
    return vis / len(offs)


def ambient_occlusion(
    verts: torch.Tensor,
    faces: torch.Tensor,
    n_dirs: int = 32,
    size: int = 96,
    chunk: int = 8,
) -> torch.Tensor:
    """Per-vertex ambient occlusion ``(V,)`` in [0, 1] of one mesh (1 = fully open).

    ``verts (V, 3)``; formula in the module docstring; ``n_dirs`` shadow maps of ``size``
    texels, rendered ``chunk`` at a time.
    """
    dt = verts.dtype
    normals = vertex_normals(verts[None], faces)[0]  # (V, 3)
    dirs = fibonacci_sphere(n_dirs, dt).to(verts.device)
    num = torch.zeros(verts.shape[0], dtype=dt, device=verts.device)
    den = torch.zeros_like(num)
    for s in range(0, n_dirs, chunk):
        d = dirs[s : s + chunk]
        k = d.shape[0]
        vis = directional_visibility(
            verts[None].expand(k, -1, -1),
            faces,
            d,
            size=size,
            normals=normals[None].expand(k, -1, -1),
        )  # (k, V)
        w = (normals @ d.T).clamp_min(0).T  # (k, V)
        num += (w * vis).sum(0)
        den += w.sum(0)
    return (num / den.clamp_min(1e-9)).clamp(0, 1)
