"""The image formation model the fitter inverts (a thin layer over :mod:`facelab.render`).

For a face with camera-space vertices :math:`x_i`, unit normals :math:`n_i`, per-vertex
albedo :math:`\\rho_i` and spherical-harmonics light :math:`L \\in \\mathbb{R}^{9 \\times 3}`,
a pixel :math:`p` covered by triangle ``(a, b, c)`` with perspective-correct barycentrics
``b_k`` gets

.. math::  I(p) = \\rho(p) \\odot \\sum_{k=0}^{8} Y_k(n(p)) L_k, \\qquad
           \\rho(p) = \\sum_k b_k \\rho_{f_k},\\; n(p) = \\mathrm{normalize}(\\sum_k b_k n_{f_k})

(Lambertian SH shading, :func:`facelab.render.shading.sh_shading`; the normals are in camera
axes, so the lighting is fixed to the camera, not to the head). Hard rasterization gives
gradients w.r.t. everything inside the silhouette; the silhouette itself is constrained by
the landmark term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..geometry.camera import project_depth
from ..geometry.mesh import vertex_normals
from ..render import interpolate, rasterize
from ..render.rasterize import Fragments
from ..render.shading import sh_shading


@dataclass
class FaceRender:
    """Buffers of :func:`render_face` (channel-last, ``(B, H, W, C)``)."""

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
    screen = project_depth(verts_cam, K)
    frags = rasterize(screen, faces, image_size, cull_backfaces=True)
    normals = vertex_normals(verts_cam, faces)
    attrs = torch.cat([albedo.to(verts_cam.dtype), normals], -1)
    buf = interpolate(attrs, frags, faces)
    alb, nrm = buf[..., :3], buf[..., 3:]
    nrm = nrm / nrm.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    shade = sh_shading(nrm, light.to(verts_cam.dtype))
    mask = frags.mask
    if vertex_mask is not None:
        fmask = vertex_mask.to(faces.device)[faces].all(-1)  # (F,)
        mask = mask & fmask[frags.pix_to_face.clamp_min(0)]
    if erode > 0:
        k = 2 * erode + 1
        outside = (~mask).to(verts_cam.dtype)[:, None]
        grown = torch.nn.functional.max_pool2d(outside, k, stride=1, padding=erode)[:, 0] > 0
        mask = mask & ~grown
    img = alb * shade * frags.mask[..., None]
    return FaceRender(image=img, mask=mask, albedo=alb, normals=nrm, fragments=frags)


__all__ = ["FaceRender", "render_face"]
