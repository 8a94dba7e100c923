r"""Which pixel centres a 2D triangle covers: edge functions and the top-left fill rule.

This is the coverage step of :func:`facelab.render.rasterize` — the one rasterizer — which adds
depth, the z-buffer and perspective-correct barycentrics on top. It lives here, below
``models`` in the layers, so that the texel coverage of a UV chart
(:func:`facelab.models.albedo.uv_coverage`) is computed by the same code with the same rule.

Screen space as in :func:`facelab.render.rasterize` (its module, ``render/rasterize.py``, has
the formulas): pixel ``(i, j)`` is sampled at its centre ``(j + 0.5, i + 0.5)``; a centre is inside a triangle when
every edge function ``E_k >= 0`` (after orienting the triangle), and a centre exactly on an
edge belongs to the triangle for which that edge is a *top* or *left* edge (Pineda 1988;
Direct3D). Each edge function is evaluated from a canonical start point (the endpoint with the
lower vertex index), so two triangles sharing an edge see bit-identical values of opposite
sign: a closed mesh covers every centre exactly once, with no cracks. Orientation (winding) does
not change coverage.

**Cost** follows the covered pixels: each triangle tests only the centres in its bounding box,
bucketed by box size (2x2 ... 16x16, one dense broadcast test per bucket); larger boxes are
enumerated with ``repeat_interleave``. No Python loop over faces or pixels.
"""

from __future__ import annotations

import torch

from .._checks import check_shape
from ..errors import InvalidInput

__all__ = ["covered_pixels", "edge_table", "gather_triangles", "triangle_coverage"]


def gather_triangles(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(B, F, 3, C)`` triangle corners of ``verts (B, V, C)``: one ``index_select`` (faster
    than ``verts[:, faces]``)."""
    B, C = verts.shape[0], verts.shape[-1]
    return verts.index_select(1, faces.reshape(-1)).view(B, faces.shape[0], 3, C)


def edge_table(verts: torch.Tensor, faces: torch.Tensor, tri: torch.Tensor | None = None):
    """Per-face edge data in canonical order (the exact top-left rule; module docstring). No grad.

    ``verts (B, V, >=2)`` screen positions (x, y first), ``faces (F, 3) long``, ``tri`` their
    :func:`gather_triangles` if already at hand. Returns ``area (B, F)`` (twice the signed area)
    and ``edges (B, F, 3, 5)``: for edge k the signed direction
    ``(dx, dy)``, the canonical start ``(ax, ay)`` and a top-left flag, arranged so that
    ``E'_k(p) = dx (py - ay) - dy (px - ax)`` is ``>= 0`` inside and bit-exactly opposite for
    the neighbour that shares the edge.
    """
    if tri is None:
        tri = gather_triangles(verts, faces)
    x, y = tri[..., 0], tri[..., 1]  # (B, F, 3)
    perm1 = torch.tensor([1, 2, 0], device=faces.device)  # corner k+1: start of edge k
    perm2 = torch.tensor([2, 0, 1], device=faces.device)  # corner k+2: its end
    x1, y1 = x.index_select(2, perm1), y.index_select(2, perm1)
    x2, y2 = x.index_select(2, perm2), y.index_select(2, perm2)
    area = (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (x[..., 2] - x[..., 0]) * (
        y[..., 1] - y[..., 0]
    )
    # Direction in triangle order times the orientation sign: x2 - x1 = -(x1 - x2) exactly,
    # so a neighbour traversing the edge the other way gets the exact negation.
    s = torch.sign(area).unsqueeze(-1)
    dx, dy = (x2 - x1) * s, (y2 - y1) * s
    # The start point must be the same for both neighbours: the lower vertex index.
    flip = faces.index_select(1, perm1) > faces.index_select(1, perm2)  # (F, 3)
    ax = torch.where(flip, x2, x1)
    ay = torch.where(flip, y2, y1)
    # Top-left: inside lies to the +x of a left edge (dy < 0) or below (+y) a top edge.
    tl = (dy < 0) | ((dy == 0) & (dx > 0))
    edges = torch.stack([dx, dy, ax, ay, tl.to(verts.dtype)], -1)  # (B, F, 3, 5)
    return area, edges


# Faces are evaluated in buckets by bounding-box size: a face whose box fits in ch x cw pixels
# is tested on a dense (faces, ch * cw) grid by broadcasting — no per-candidate gathers. Faces
# larger than the last bucket use a repeat_interleave enumeration of their exact box.
_BUCKETS = ((2, 2), (3, 3), (4, 4), (6, 6), (8, 8), (16, 16))


def _inside(t: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Top-left-rule inside test; ``t (N, >=15)`` edge columns broadcast against ``px, py``."""
    inside = None
    for k in range(3):
        dx, dy, ax, ay, tl = (t[:, 5 * k + m : 5 * k + m + 1] for m in range(5))
        e = dx * (py - ay) - dy * (px - ax)
        ok = (e > 0) | ((e == 0) & (tl > 0))
        inside = ok if inside is None else inside & ok
    return inside


def _covered_pairs(table, sel, bw, bh, H, W):
    """All covered (face, pixel) pairs. ``table (S, 18)``: 15 edge numbers, j0, i0, w per
    selected face ``sel (S,)`` (index into B*F); ``bw, bh (S,)`` long box sizes.

    Returns ``(sf, row, col)`` long ``(M,)``: face (into B*F), pixel row and column.
    """
    dev = table.device
    out_f, out_r, out_c = [], [], []
    done = torch.zeros_like(bw, dtype=torch.bool)
    for ch, cw in _BUCKETS:
        m = ~done & (bw <= cw) & (bh <= ch)
        idx = torch.nonzero(m, as_tuple=True)[0]
        done |= m
        if idx.numel() == 0:
            continue
        tb = table.index_select(0, idx)  # (Fb, 18)
        off = torch.arange(ch * cw, device=dev)
        oy = torch.div(off, cw, rounding_mode="floor")
        ox = off - oy * cw
        px = tb[:, 15:16] + (ox.to(tb.dtype) + 0.5)  # (Fb, ch*cw)
        py = tb[:, 16:17] + (oy.to(tb.dtype) + 0.5)
        valid = (ox < bw[idx].unsqueeze(1)) & (oy < bh[idx].unsqueeze(1))
        r_, o_ = torch.nonzero(valid & _inside(tb, px, py), as_tuple=True)
        out_f.append(sel[idx[r_]])
        out_r.append(tb[r_, 16].long() + oy[o_])
        out_c.append(tb[r_, 15].long() + ox[o_])
    rest = torch.nonzero(~done, as_tuple=True)[0]
    if rest.numel():
        counts = (bw[rest] * bh[rest]).long()
        start = torch.cumsum(counts, 0) - counts
        cand = torch.repeat_interleave(torch.arange(rest.numel(), device=dev), counts)
        local = torch.arange(int(counts.sum()), device=dev) - start[cand]
        t = table.index_select(0, rest[cand])
        w = bw[rest][cand]
        row = torch.div(local, w, rounding_mode="floor")
        col = local - row * w
        row = row + t[:, 16].long()
        col = col + t[:, 15].long()
        ins = _inside(t, (col.to(t.dtype) + 0.5).unsqueeze(1), (row.to(t.dtype) + 0.5).unsqueeze(1))
        k = torch.nonzero(ins[:, 0], as_tuple=True)[0]
        out_f.append(sel[rest[cand[k]]])
        out_r.append(row[k])
        out_c.append(col[k])
    if not out_f:
        e = torch.zeros(0, dtype=torch.long, device=dev)
        return e, e, e
    return torch.cat(out_f), torch.cat(out_r), torch.cat(out_c)


def covered_pixels(
    tri: torch.Tensor, edges: torch.Tensor, keep: torch.Tensor, image_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (triangle, pixel) pair whose pixel centre a kept triangle covers (top-left rule).

    Args:
        tri: ``(B, F, 3, >=2)`` screen corners (x, y first), e.g. :func:`gather_triangles`.
        edges: ``(B, F, 3, 5)`` from :func:`edge_table` of the same triangles.
        keep: ``(B, F)`` bool; triangles to rasterize (the others cover nothing).
        image_size: ``(H, W)``.

    Returns:
        ``(tf, row, col)``, long ``(M,)`` each: the triangle as a flat index ``b * F + f``, and
        the pixel's row and column. A pixel covered by several triangles appears once per
        triangle (no depth test here). No gradient.
    """
    H, W = int(image_size[0]), int(image_size[1])
    B, F = keep.shape
    tx, ty = tri[..., 0], tri[..., 1]
    # Pixel centres j + 0.5 inside [xmin, xmax]  <=>  ceil(xmin - .5) <= j <= floor(xmax - .5)
    j0 = torch.ceil(tx.amin(-1) - 0.5).clamp(0, W)
    j1 = torch.floor(tx.amax(-1) - 0.5).clamp(-1, W - 1)
    i0 = torch.ceil(ty.amin(-1) - 0.5).clamp(0, H)
    i1 = torch.floor(ty.amax(-1) - 0.5).clamp(-1, H - 1)
    bw = (j1 - j0 + 1).clamp(min=0)
    bh = (i1 - i0 + 1).clamp(min=0)
    n = torch.where(keep, bw * bh, torch.zeros_like(bw)).reshape(-1)  # (B*F,)
    sel = torch.nonzero(n, as_tuple=True)[0]  # faces with candidates, (b, f) order
    if sel.numel() == 0:
        e = torch.zeros(0, dtype=torch.long, device=tri.device)
        return e, e, e
    table = torch.cat(
        [edges.reshape(B * F, 15), j0.reshape(-1, 1), i0.reshape(-1, 1), bw.reshape(-1, 1)], 1
    ).index_select(0, sel)  # (S, 18)
    return _covered_pairs(table, sel, bw.reshape(-1)[sel].long(), bh.reshape(-1)[sel].long(), H, W)


def triangle_coverage(
    points: torch.Tensor,
    faces: torch.Tensor,
    image_size: int | tuple[int, int],
    eps_area: float = 1e-12,
) -> torch.Tensor:
    """``(H, W)`` bool: pixels whose centre some triangle of a 2D mesh covers (top-left rule).

    Args:
        points: ``(V, 2)`` vertex positions in pixels (x right, y down; centres at ``+0.5``).
        faces: ``(F, 3)`` integer triangles indexing ``points`` (either winding).
        image_size: ``(H, W)`` or ``S``.
        eps_area: triangles with ``|A| <= eps_area`` (twice the area, pixels^2) cover nothing.

    Exactly the pixels :func:`facelab.render.rasterize` marks covered (``pix_to_face >= 0``)
    for the same triangles at any positive depth, without the depth test. Device and dtype
    follow ``points``.
    """
    check_shape("points", points, (None, 2))
    check_shape("faces", faces, (None, 3))
    if faces.dtype not in (torch.int64, torch.int32):
        raise InvalidInput(f"faces must be an integer tensor, got {faces.dtype}")
    if not points.is_floating_point():
        raise InvalidInput(f"points must be floating point, got {points.dtype}")
    H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
    H, W = int(H), int(W)
    if H <= 0 or W <= 0:
        raise InvalidInput(f"image_size must be positive, got {image_size}")
    faces = faces.long().to(points.device)
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= points.shape[0]):
        raise InvalidInput(f"faces index points outside [0, {points.shape[0]})")
    cov = torch.zeros(H * W, dtype=torch.bool, device=points.device)
    with torch.no_grad():
        v = points.detach()[None]
        tri = gather_triangles(v, faces)
        area, edges = edge_table(v, faces, tri)
        keep = (area.abs() > eps_area) & torch.isfinite(area)
        _, row, col = covered_pixels(tri, edges, keep, (H, W))
        cov[row * W + col] = True
    return cov.view(H, W)
