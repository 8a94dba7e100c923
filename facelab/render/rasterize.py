r"""Hard rasterization: which triangle covers each pixel, where, and how far.

The rasterizer works in **screen space**: each vertex is ``(u, v, z)`` — its pixel coordinates
after projection (:func:`facelab.geometry.camera.project_depth`, pixel centres at ``+0.5``)
and its camera depth ``z > 0``. Pixel ``(i, j)`` (row ``i``, column ``j``) is sampled at its
centre ``p = (j + 0.5, i + 0.5)``.

For a triangle ``(a, b, c)`` with screen positions ``p_0, p_1, p_2`` the **edge function** of
the edge opposite vertex ``k`` is (indices mod 3)

.. math::  E_k(p) = (x_{k+2} - x_{k+1})(p_y - y_{k+1}) - (y_{k+2} - y_{k+1})(p_x - x_{k+1})

and ``E_0 + E_1 + E_2 = A`` (twice the signed area). The **screen-space barycentrics** are
``l_k = E_k / A``; ``p`` is inside when all ``l_k >= 0``. A pixel centre exactly on an edge
goes to one triangle only, by the **top-left rule** (Pineda 1988; the Direct3D rule), so
adjacent triangles leave neither cracks nor double coverage. To make that exact in floating
point, each edge function is evaluated from a canonical start point (the endpoint with the
lower vertex index) with the edge direction negated exactly where needed: two triangles sharing
an edge see bit-identical values with opposite signs.

Attributes vary linearly in camera space, not on the screen, so the **perspective-correct
barycentrics** and the depth are (Heckbert & Moreton 1991)

.. math::  b_k = \frac{l_k / z_k}{\sum_j l_j / z_j}, \qquad z(p) = \frac{1}{\sum_j l_j / z_j}.

The nearest triangle wins (z-buffer). Triangles with a vertex at ``z <= near`` (behind the
camera) are dropped whole (no clipping), as are degenerate ones (``|A|`` tiny) and, with
``cull_backfaces``, back faces. Front faces are counter-clockwise *as the viewer sees the
image* (y down), i.e. ``A < 0`` in the formula above — what a model-space mesh with
outward-facing counter-clockwise triangles becomes after :func:`~facelab.geometry.camera.pose_to_camera`.

**Cost** follows the covered pixels. The coverage step (edge functions, top-left rule, the
enumeration below) is :mod:`facelab.geometry.raster`, shared with the texel coverage of UV
charts, which must not import ``render``. Each triangle tests only the pixel centres in its
bounding box — triangles are bucketed by box size (2x2, 3x3, ... 16x16) and each bucket is one
dense broadcast ``(triangles, box pixels)`` test; larger triangles enumerate their box with a
``repeat_interleave`` — the inside test keeps the covered (pixel, triangle) pairs, and only
pixels covered more than once compare depths (a scatter-min of depth per pixel, then of face
index among exact depth ties, so ties go to the lowest face index).
No Python loop over faces or pixels. :func:`rasterize_reference` is the
slow, obviously-correct twin (loops) used as a test oracle and in the book.

**Gradients.** Which triangle wins is discrete (no gradient). The barycentrics and depth of
the winners are then *recomputed with autograd* from the vertex positions, so
:func:`facelab.render.interpolate` is differentiable w.r.t. vertex positions through ``b_k``
(the interior gradient). Silhouette gradients need :mod:`facelab.render.soft` or
:mod:`facelab.render.antialias`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_shape
from ..errors import InvalidInput
from ..geometry.raster import covered_pixels, edge_table, gather_triangles

__all__ = ["Fragments", "signed_screen_areas", "rasterize", "rasterize_reference"]


@dataclass
class Fragments:
    """The rasterizer's output: the contract between rasterization and shading.

    Dense buffers (channel-last, as nvdiffrast / PyTorch3D with ``K = 1``):

    Attributes:
        pix_to_face: ``(B, H, W)`` long, index into ``faces`` of the visible triangle,
            ``-1`` for background. (Not packed over the batch: the same index in every image.)
        bary: ``(B, H, W, 3)`` perspective-correct barycentrics, 0 on background;
            differentiable w.r.t. the vertex positions.
        zbuf: ``(B, H, W)`` camera depth ``z`` of the visible surface, ``-1`` on background;
            differentiable.
        pix: ``(P,)`` long, flat index ``b*H*W + i*W + j`` of each covered pixel (ascending).
        face: ``(P,)`` long, its triangle (``pix_to_face.view(-1)[pix]``).
        bary_packed: ``(P, 3)`` its barycentrics (``bary.view(-1, 3)[pix]``).
        z_packed: ``(P,)`` its depth.
        faces: ``(F, 3)`` long, the triangles that were rasterized.
        image_size: ``(H, W)``.
    """

    pix_to_face: torch.Tensor
    bary: torch.Tensor
    zbuf: torch.Tensor
    pix: torch.Tensor
    face: torch.Tensor
    bary_packed: torch.Tensor
    z_packed: torch.Tensor
    faces: torch.Tensor
    image_size: tuple[int, int]

    @property
    def batch_size(self) -> int:
        return int(self.pix_to_face.shape[0])

    @property
    def mask(self) -> torch.Tensor:
        """``(B, H, W)`` bool, True where a triangle is visible."""
        return self.pix_to_face >= 0

    @property
    def batch_index(self) -> torch.Tensor:
        """``(P,)`` long, the image each covered pixel belongs to."""
        H, W = self.image_size
        return torch.div(self.pix, H * W, rounding_mode="floor")


def signed_screen_areas(verts_screen: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(B, F)`` twice the signed screen area ``A = (p1-p0) x (p2-p0)`` (negative = front)."""
    t = gather_triangles(verts_screen, faces)  # (B, F, 3, 3)
    x, y = t[..., 0], t[..., 1]
    return (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (x[..., 2] - x[..., 0]) * (
        y[..., 1] - y[..., 0]
    )


def _check_inputs(verts: torch.Tensor, faces: torch.Tensor, image_size) -> tuple[int, int]:
    check_shape("verts_screen", verts, (None, None, 3))
    check_shape("faces", faces, (None, 3))
    if faces.dtype not in (torch.int64, torch.int32):
        raise InvalidInput(f"faces must be an integer tensor, got {faces.dtype}")
    if not verts.is_floating_point():
        raise InvalidInput(f"verts_screen must be floating point, got {verts.dtype}")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    H, W = int(image_size[0]), int(image_size[1])
    if H <= 0 or W <= 0:
        raise InvalidInput(f"image_size must be positive, got {image_size}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= verts.shape[1]):
        raise InvalidInput(
            f"faces index vertices outside [0, {verts.shape[1]}): check the mesh topology"
        )
    return H, W


def _drawn_faces(
    z: torch.Tensor, area: torch.Tensor, near: float, eps_area: float, cull_backfaces: bool
) -> torch.Tensor:
    """``(B, F)`` bool: the triangles a rasterizer draws (both backends use this rule).

    ``z (B, F, 3)`` corner depths, ``area (B, F)`` twice the signed screen area. Dropped: a
    corner at ``z <= near`` (behind the camera; no clipping), ``|A| <= eps_area`` or a
    non-finite area (degenerate), and with ``cull_backfaces`` back faces (``A >= 0``).
    """
    ok = (z > near).all(-1) & (area.abs() > eps_area) & torch.isfinite(area)
    if cull_backfaces:
        ok &= area < 0
    return ok


def _barycentrics(
    verts: torch.Tensor, faces: torch.Tensor, batch: torch.Tensor, face: torch.Tensor, pix_xy
) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable perspective-correct barycentrics ``(P, 3)`` and depth ``(P,)``.

    ``verts (B, V, 3)`` screen vertices; ``batch, face (P,)``; ``pix_xy = (px, py)`` pixel
    centres ``(P,)``. Formulas in the module docstring (written out per corner: small
    reductions and rolls are slow on CPU).
    """
    B, V, _ = verts.shape
    vidx = faces[face] + (batch * V).unsqueeze(1)  # (P, 3)
    flat = verts.reshape(B * V, 3)
    p0, p1, p2 = (flat.index_select(0, vidx[:, k]) for k in range(3))  # (P, 3) each
    x0, y0, z0 = p0.unbind(1)
    x1, y1, z1 = p1.unbind(1)
    x2, y2, z2 = p2.unbind(1)
    px, py = pix_xy
    e0 = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)
    e1 = (x0 - x2) * (py - y2) - (y0 - y2) * (px - x2)
    e2 = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    w0, w1, w2 = e0 / (area * z0), e1 / (area * z1), e2 / (area * z2)  # l_k / z_k
    inv_z = w0 + w1 + w2
    bary = torch.stack([w0, w1, w2], 1) / inv_z.unsqueeze(1)
    return bary, 1.0 / inv_z


def rasterize(
    verts_screen: torch.Tensor,
    faces: torch.Tensor,
    image_size: int | tuple[int, int],
    near: float = 1e-6,
    cull_backfaces: bool = False,
    eps_area: float = 1e-12,
) -> Fragments:
    """Rasterize a batch of meshes (same topology) in screen space — fast, vectorised.

    Args:
        verts_screen: ``(B, V, 3)`` vertices ``(u, v, z)``: pixel coordinates (pixel centres at
            ``+0.5``) and camera depth (see :func:`facelab.geometry.camera.project_depth`).
        faces: ``(F, 3)`` long triangle indices.
        image_size: ``(H, W)`` or ``S`` for square images.
        near: triangles with any vertex at ``z <= near`` are dropped (behind the camera).
        cull_backfaces: drop triangles facing away from the camera (``A >= 0``).
        eps_area: triangles with ``|A| <= eps_area`` (pixels^2, A = twice the area) are dropped.

    Returns:
        :class:`Fragments` (``pix_to_face``, perspective-correct ``bary``, ``zbuf``, ...).

    Formulas, fill rule and cost model: module docstring. Reference twin:
    :func:`rasterize_reference`.
    """
    H, W = _check_inputs(verts_screen, faces, image_size)
    faces = faces.long()
    B, V, _ = verts_screen.shape
    F = faces.shape[0]
    dev, dt = verts_screen.device, verts_screen.dtype
    with torch.no_grad():
        v = verts_screen.detach()
        tri = gather_triangles(v, faces)  # (B, F, 3, 3)
        area, edges = edge_table(v, faces, tri)  # (B, F), (B, F, 3, 5)
        ok = _drawn_faces(tri[..., 2], area, near, eps_area, cull_backfaces)
        # every covered (face, pixel) pair by the top-left rule (geometry.raster)
        sf, row, col = covered_pixels(tri, edges, ok, (H, W))
        if sf.numel() == 0:
            return _empty_fragments(verts_screen, faces, B, H, W)
        bidx = torch.div(sf, F, rounding_mode="floor")
        pix = bidx * (H * W) + row * W + col
        # z-buffer: most covered pixels have one candidate; only pixels with several need
        # their depths compared (one sort of packed (pixel, depth) keys).
        N = B * H * W
        count = torch.bincount(pix, minlength=N)
        owner = torch.full((N,), -1, dtype=torch.long, device=dev)
        single = torch.nonzero(count[pix] == 1, as_tuple=True)[0]
        owner[pix[single]] = single
        multi = torch.nonzero(count[pix] > 1, as_tuple=True)[0]
        if multi.numel():
            fm_all = sf[multi]  # b*F + f
            bm = torch.div(fm_all, F, rounding_mode="floor")
            pm = pix[multi]
            xy = ((col[multi].to(dt) + 0.5), (row[multi].to(dt) + 0.5))
            _, zk = _barycentrics(v, faces, bm, fm_all - bm * F, xy)
            # nearest depth per pixel, then among exact ties (coplanar overlaps) the lowest
            # face index, as in rasterize_reference: two scatter-mins, no sort
            zbest = torch.full((N,), torch.inf, dtype=dt, device=dev)
            zbest.scatter_reduce_(0, pm, zk, "amin")
            tie = zk == zbest[pm]
            fbest = torch.full((N,), B * F, dtype=torch.long, device=dev)
            fbest.scatter_reduce_(0, pm[tie], fm_all[tie], "amin")
            w = tie & (fm_all == fbest[pm])  # exactly one per pixel: a face covers it once
            owner[pm[w]] = multi[w]
        pix_w = torch.nonzero(owner >= 0, as_tuple=True)[0]  # ascending
        win = owner[pix_w]
        b_w = bidx[win]
        f_w = sf[win] - b_w * F
        px_w, py_w = col[win].to(dt) + 0.5, row[win].to(dt) + 0.5
    # Differentiable barycentrics and depth of the winners.
    bary_p, z_p = _barycentrics(verts_screen, faces, b_w, f_w, (px_w, py_w))
    pix_to_face = torch.full((B * H * W,), -1, dtype=torch.long, device=dev)
    pix_to_face[pix_w] = f_w
    bary = torch.zeros(B * H * W, 3, dtype=dt, device=dev)
    bary.index_put_((pix_w,), bary_p)
    zbuf = torch.full((B * H * W,), -1.0, dtype=dt, device=dev)
    zbuf.index_put_((pix_w,), z_p)
    return Fragments(
        pix_to_face=pix_to_face.view(B, H, W),
        bary=bary.view(B, H, W, 3),
        zbuf=zbuf.view(B, H, W),
        pix=pix_w,
        face=f_w,
        bary_packed=bary_p,
        z_packed=z_p,
        faces=faces,
        image_size=(H, W),
    )


@torch.enable_grad()
def _empty_fragments(verts: torch.Tensor, faces: torch.Tensor, B: int, H: int, W: int):
    dev, dt = verts.device, verts.dtype
    e = torch.zeros(0, dtype=torch.long, device=dev)
    # Keep the outputs attached to the graph (zero gradient) so backward() still works.
    zero = verts.sum() * 0
    return Fragments(
        pix_to_face=torch.full((B, H, W), -1, dtype=torch.long, device=dev),
        bary=torch.zeros(B, H, W, 3, dtype=dt, device=dev) + zero,
        zbuf=torch.full((B, H, W), -1.0, dtype=dt, device=dev) + zero,
        pix=e,
        face=e,
        bary_packed=torch.zeros(0, 3, dtype=dt, device=dev) + zero,
        z_packed=torch.zeros(0, dtype=dt, device=dev) + zero,
        faces=faces,
        image_size=(H, W),
    )


def rasterize_reference(
    verts_screen: torch.Tensor,
    faces: torch.Tensor,
    image_size: int | tuple[int, int],
    near: float = 1e-6,
    cull_backfaces: bool = False,
    eps_area: float = 1e-12,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The slow, obviously-correct rasterizer: three nested loops (for the book and tests).

    For every image, every pixel centre ``p`` and every triangle: compute the edge functions
    ``E_k(p)``, test ``p`` inside with the top-left rule, compute the perspective-correct
    depth, keep the nearest (ties: lowest face index). Only for tiny images (it is ~10^5 times
    slower than :func:`rasterize`). Same arguments; returns ``(pix_to_face (B,H,W),
    bary (B,H,W,3), zbuf (B,H,W))`` as plain tensors (no gradient).
    """
    H, W = _check_inputs(verts_screen, faces, image_size)
    B = verts_screen.shape[0]
    v = verts_screen.detach().double().cpu().tolist()
    tris = faces.long().cpu().tolist()
    p2f = [[[-1] * W for _ in range(H)] for _ in range(B)]
    bary = [[[[0.0, 0.0, 0.0] for _ in range(W)] for _ in range(H)] for _ in range(B)]
    zbuf = [[[-1.0] * W for _ in range(H)] for _ in range(B)]
    for b in range(B):
        for f, tri in enumerate(tris):
            p = [v[b][i] for i in tri]
            A = (p[1][0] - p[0][0]) * (p[2][1] - p[0][1]) - (p[2][0] - p[0][0]) * (
                p[1][1] - p[0][1]
            )
            if any(q[2] <= near for q in p) or abs(A) <= eps_area or (cull_backfaces and A >= 0):
                continue
            sgn = 1.0 if A > 0 else -1.0
            for i in range(H):
                for j in range(W):
                    x, y = j + 0.5, i + 0.5
                    ls = []
                    for k in range(3):
                        s, e = p[(k + 1) % 3], p[(k + 2) % 3]
                        dx, dy = sgn * (e[0] - s[0]), sgn * (e[1] - s[1])
                        E = dx * (y - s[1]) - dy * (x - s[0])  # >= 0 inside
                        top_left = dy < 0 or (dy == 0 and dx > 0)
                        if E < 0 or (E == 0 and not top_left):
                            break
                        ls.append(E / abs(A))
                    else:
                        w = [ls[k] / p[k][2] for k in range(3)]
                        z = 1.0 / sum(w)
                        if p2f[b][i][j] < 0 or z < zbuf[b][i][j]:
                            p2f[b][i][j] = f
                            zbuf[b][i][j] = z
                            bary[b][i][j] = [wk * z for wk in w]
    dt, dev = verts_screen.dtype, verts_screen.device
    return (
        torch.tensor(p2f, dtype=torch.long, device=dev),
        torch.tensor(bary, dtype=dt, device=dev),
        torch.tensor(zbuf, dtype=dt, device=dev),
    )
