r"""Depth-guided warping: pseudo labels for novel views from one photo.

Given a novel camera ``c_n`` and a depth map ``z_n`` of the face seen from it (the inverted
generator's expected depth, or ground truth for the oracle), each pixel ``p`` of the novel
view is a 3D point

.. math::

    X = C_n \begin{bmatrix} z_n(p)\, K^{-1} (p, 1)^T \\ 1 \end{bmatrix},

which, seen from the input camera ``C_s``, lands at pixel ``q = \pi_s(X)`` with camera depth
``z_s``. The photo's colour at ``q`` is a *pseudo label* for pixel ``p`` — valid only where
``X`` is what the input camera actually sees (the occlusion test of
:mod:`facelab.methods.spi.masks`). The same with the flipped photo and the mirrored camera
(:func:`facelab.methods.spi.camera.mirror_camera_params`) gives labels for the side of the
face the photo does not show. The geometry is :func:`facelab.metrics.multiview.reproject`
(the 3D GAN's consistency metric uses the same code).

Shapes: images ``(B, C, H, W)``, depth ``(B, H, W)`` camera ``z``, cameras ``(B, 25)``
(EG3D), pixel coordinates ``uv (B, H, W, 2)`` with pixel centres at +0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...geometry.camera import pixels_to_ndc
from ...geometry.eg3d import pixel_intrinsics, split_camera_params
from ...metrics.multiview import reproject

__all__ = ["Warp", "depth_warp", "sample_at", "unproject_depth"]


def unproject_depth(depth: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
    """World points ``(B, H, W, 3)`` of the pixels of ``depth (B, H, W)`` (camera z) seen by
    EG3D cameras ``camera (B, 25)``: ``X = o + R z K^{-1} (u, v, 1)``."""
    B, H, W = depth.shape
    c2w, K_norm = split_camera_params(camera.to(depth.dtype))
    K = pixel_intrinsics(K_norm, (H, W))
    v, u = torch.meshgrid(
        torch.arange(H, dtype=depth.dtype, device=depth.device) + 0.5,
        torch.arange(W, dtype=depth.dtype, device=depth.device) + 0.5,
        indexing="ij",
    )
    uv1 = torch.stack([u, v, torch.ones_like(u)], -1).reshape(1, -1, 3)
    x_cam = (uv1 @ torch.linalg.inv(K).transpose(1, 2)) * depth.reshape(B, -1, 1)
    x = x_cam @ c2w[:, :3, :3].transpose(1, 2) + c2w[:, None, :3, 3]
    return x.reshape(B, H, W, 3)


def sample_at(image: torch.Tensor, uv: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """``image (B, C, h, w)`` read at pixel coordinates ``uv (B, H, W, 2)`` -> ``(B, C, H, W)``
    (zeros outside)."""
    grid = pixels_to_ndc(uv, image.shape[-2:]).to(image.dtype)
    return F.grid_sample(image, grid, mode=mode, padding_mode="zeros", align_corners=False)


@dataclass
class Warp:
    """The source seen through the target's depth.

    Attributes:
        image: ``(B, C, H, W)`` the source image sampled at ``uv`` (the pseudo label).
        uv: ``(B, H, W, 2)`` where each target pixel lands in the source (pixels).
        z: ``(B, H, W)`` its camera depth in the source camera.
        source_depth: ``(B, H, W)`` the source's own depth map read at ``uv`` (nearest), for
            the occlusion test (None when no source depth was given).
    """

    image: torch.Tensor
    uv: torch.Tensor
    z: torch.Tensor
    source_depth: torch.Tensor | None


def depth_warp(
    source_image: torch.Tensor,
    target_depth: torch.Tensor,
    target_camera: torch.Tensor,
    source_camera: torch.Tensor,
    source_depth: torch.Tensor | None = None,
) -> Warp:
    """Warp ``source_image (B, C, h, w)`` seen by ``source_camera`` into the view of
    ``target_camera`` through ``target_depth (B, H, W)`` (unproject each target pixel, project
    it into the source, sample bilinearly). ``source_depth (B, h, w)``, if given, is read at the
    same places for the occlusion test."""
    B, H, W = target_depth.shape
    h, w = source_image.shape[-2:]
    dt = target_depth.dtype
    c2w_t, Kt = split_camera_params(target_camera.to(dt))
    c2w_s, Ks = split_camera_params(source_camera.to(dt))
    uv, z = reproject(
        target_depth, c2w_t, pixel_intrinsics(Kt, (H, W)), c2w_s, pixel_intrinsics(Ks, (h, w))
    )
    img = sample_at(source_image, uv)
    sd = None
    if source_depth is not None:
        sd = sample_at(source_depth[:, None].to(dt), uv, mode="nearest")[:, 0]
    return Warp(img, uv, z, sd)
