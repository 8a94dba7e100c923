"""The image formation model the fitter inverts (a thin layer over :mod:`facelab.render`).

For a face with camera-space vertices :math:`x_i`, unit normals :math:`n_i`, per-vertex
albedo :math:`\\rho_i` and spherical-harmonics light :math:`L \\in \\mathbb{R}^{9 \\times 3}`,
a pixel :math:`p` covered by triangle ``(a, b, c)`` with perspective-correct barycentrics
``b_k`` gets

.. math::  I(p) = \\rho(p) \\odot \\sum_{k=0}^{8} Y_k(n(p)) L_k, \\qquad
           \\rho(p) = \\sum_k b_k \\rho_{f_k},\\; n(p) = \\mathrm{normalize}(\\sum_k b_k n_{f_k})

(Lambertian SH shading, :func:`facelab.render.shading.sh_shading`; the normals are in camera
axes, so the lighting is fixed to the camera, not to the head). It is
:class:`facelab.render.Renderer` with ``sh`` and ``vertex_colors`` — the one render path the
world's photos come from too — plus the fitter's masks (skin region, eroded silhouette). Hard rasterization gives
gradients w.r.t. everything inside the silhouette; the silhouette itself is constrained by
the landmark term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..render.rasterize import Fragments
from ..render.renderer import Renderer


@dataclass
class FaceRender:
    """Buffers of :func:`render_face` (channel-last ``(B, H, W, C)`` render buffers, 0 on the
    background; :mod:`facelab.geometry.conventions`)."""

    image: torch.Tensor  # (B, H, W, 3)
    mask: torch.Tensor  # (B, H, W) bool
    albedo: torch.Tensor  # (B, H, W, 3)
    normals: torch.Tensor  # (B, H, W, 3) camera space
    fragments: Fragments


def render_face(
    verts_cam: torch.Tensor,
    faces: torch.Tensor,
    albedo: torch.Tensor,
    light: torch.Tensor,
    K: torch.Tensor,
    image_size: tuple[int, int],
    vertex_mask: torch.Tensor | None = None,
    erode: int = 0,
) -> FaceRender:
    """Render a Lambertian SH-lit face.

    Args:
        verts_cam: ``(B, V, 3)`` camera-space vertices (OpenCV axes).
        faces: ``(F, 3)`` long.
        albedo: ``(B, V, 3)`` per-vertex albedo in [0, 1] (linear).
        light: ``(B, 9, 3)`` SH coefficients.
        K: ``(B, 3, 3)`` intrinsics.
        image_size: ``(H, W)``.
        vertex_mask: optional ``(V,)`` bool; triangles with all corners inside are flagged in
            ``mask`` (e.g. the skin region), the others still occlude.
        erode: drop pixels within this many pixels of the silhouette (or of the vertex-mask
            border) from ``mask``. Hard rasterization gives no gradient that moves the
            silhouette, so pixels straddling it only add a constant error floor and bias the
            shading; the landmark term positions the outline instead.

    Returns:
        :class:`FaceRender`.
    """
    # the library's one render path (facelab.render.Renderer): project, rasterize, one fused
    # packed interpolation of normals and albedo, SH shading of the covered pixels
    size = image_size if isinstance(image_size, int) else tuple(image_size)
    out = Renderer(image_size=size, near=1e-6, cull_backfaces=True).render(
        verts_cam, faces, K=K, vertex_colors=albedo.to(verts_cam.dtype),
        sh=light.to(verts_cam.dtype), albedo_map=True,
    )  # fmt: skip
    frags = out.fragments
    img = out.image.permute(0, 2, 3, 1)  # channel-last views (render buffers), 0 on background
    alb = out.albedo.permute(0, 2, 3, 1)
    nrm = out.normals.permute(0, 2, 3, 1)
    mask = frags.mask
    if vertex_mask is not None:
        fmask = vertex_mask.to(faces.device)[faces].all(-1)  # (F,)
        mask = mask & fmask[frags.pix_to_face.clamp_min(0)]
    if erode > 0:
        k = 2 * erode + 1
        outside = (~mask).to(verts_cam.dtype)[:, None]
        grown = torch.nn.functional.max_pool2d(outside, k, stride=1, padding=erode)[:, 0] > 0
        mask = mask & ~grown
    return FaceRender(image=img, mask=mask, albedo=alb, normals=nrm, fragments=frags)


__all__ = ["FaceRender", "render_face"]
