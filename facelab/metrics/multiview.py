"""Multi-view consistency through depth: does a face seen from two cameras agree with itself?

A 3D-consistent generator renders views ``A`` and ``B`` of *one* scene. Every pixel ``p`` of
``B`` with depth ``z_B(p)`` is a 3D point ``X = cam2world_B [z_B K_B^{-1} (p, 1)]``; seen from
``A`` it lands at pixel ``q = pi_A(X)`` with camera depth ``z``. If the views agree, ``A``'s
colour at ``q`` equals ``B``'s at ``p`` wherever ``X`` is visible in ``A``, i.e. where ``A``'s
own depth at ``q`` is ``z`` (otherwise ``X`` is occluded from ``A``: not an error). The
**consistency error** is the mean absolute colour difference over those pixels; the
**coverage** is the share of ``B``'s foreground that could be checked.

The same check on two *real* views of a world face (exact depth) is the reference: its error
is what shading changes with the view (specular highlights move) and resampling cost, so a
generator cannot be expected to do better.

Conventions: images ``(B, 3, H, W)`` in ``[0, 1]``; depth maps ``(B, H, W)`` of camera ``z``
(0 or any value where ``mask`` is False); ``cam2world (B, 4, 4)`` and pixel intrinsics ``K``
in facelab's OpenCV convention (:mod:`facelab.geometry.camera`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import check_shape
from ..geometry.camera import pixels_to_ndc

__all__ = ["consistency_error", "reproject"]


def _pixel_grid(B: int, H: int, W: int, like: torch.Tensor) -> torch.Tensor:
    v, u = torch.meshgrid(
        torch.arange(H, dtype=like.dtype, device=like.device) + 0.5,
        torch.arange(W, dtype=like.dtype, device=like.device) + 0.5,
        indexing="ij",
    )
    return torch.stack([u, v], -1).reshape(1, H * W, 2).expand(B, -1, -1)


def reproject(
    depth_b: torch.Tensor,
    cam2world_b: torch.Tensor,
    K_b: torch.Tensor,
    cam2world_a: torch.Tensor,
    K_a: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where ``B``'s pixels land in camera ``A``: ``(uv (B, H, W, 2), z (B, H, W))``.

    ``depth_b (B, H, W)`` is camera z of view B; pixel centres at +0.5.
    """
    check_shape("depth_b", depth_b, (None, None, None))
    B, H, W = depth_b.shape
    K_b = K_b if K_b.dim() == 3 else K_b.unsqueeze(0)
    K_a = K_a if K_a.dim() == 3 else K_a.unsqueeze(0)
    pix = _pixel_grid(B, H, W, depth_b)
    uv1 = torch.cat([pix, torch.ones_like(pix[..., :1])], -1)
    x_cam = (uv1 @ torch.linalg.inv(K_b).transpose(1, 2)) * depth_b.reshape(B, -1, 1)
    x_world = x_cam @ cam2world_b[:, :3, :3].transpose(1, 2) + cam2world_b[:, None, :3, 3]
    Ra = cam2world_a[:, :3, :3]
    x_a = (x_world - cam2world_a[:, None, :3, 3]) @ Ra  # R_a^T (x - o_a), row vectors
    z = x_a[..., 2]
    proj = x_a @ K_a.transpose(1, 2)
    uv = proj[..., :2] / z.clamp(min=1e-9).unsqueeze(-1)
    return uv.reshape(B, H, W, 2), z.reshape(B, H, W)


def consistency_error(
    image_a: torch.Tensor,
    depth_a: torch.Tensor,
    mask_a: torch.Tensor,
    cam2world_a: torch.Tensor,
    K_a: torch.Tensor,
    image_b: torch.Tensor,
    depth_b: torch.Tensor,
    mask_b: torch.Tensor,
    cam2world_b: torch.Tensor,
    K_b: torch.Tensor,
    depth_tol: float = 0.03,
) -> dict[str, torch.Tensor]:
    """Reproject view ``B`` into view ``A`` through ``B``'s depth; masked colour error.

    Returns ``{"error": (B,), "coverage": (B,), "valid": (B, H, W) bool, "warped": (B, 3, H, W)}``
    — ``error`` is the mean ``|A(q) - B(p)|`` over valid pixels (NaN if none); a pixel is valid
    when it is foreground in ``B``, lands inside ``A``, on ``A``'s foreground, and its depth
    agrees with ``A``'s depth there within ``depth_tol`` (occlusion test, the SPI paper's
    0.05-style threshold, here in the depth maps' units).
    """
    B, _, H, W = image_b.shape
    uv, z = reproject(depth_b, cam2world_b, K_b, cam2world_a, K_a)
    Ha, Wa = image_a.shape[-2:]
    grid = pixels_to_ndc(uv, (Ha, Wa)).to(image_a.dtype)
    warped = F.grid_sample(
        image_a, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    da = F.grid_sample(depth_a.unsqueeze(1), grid, mode="nearest", align_corners=False)[:, 0]
    ma = F.grid_sample(
        mask_a.unsqueeze(1).to(image_a.dtype), grid, mode="nearest", align_corners=False
    )[:, 0]
    inside = (uv[..., 0] >= 0) & (uv[..., 0] <= Wa) & (uv[..., 1] >= 0) & (uv[..., 1] <= Ha)
    valid = mask_b.bool() & inside & (ma > 0.5) & ((da - z).abs() < depth_tol)
    diff = (warped - image_b).abs().mean(1)  # (B, H, W)
    n = valid.sum((1, 2))
    err = (diff * valid).sum((1, 2)) / n.clamp(min=1)
    err = torch.where(n > 0, err, torch.full_like(err, float("nan")))
    cov = n / mask_b.bool().sum((1, 2)).clamp(min=1)
    return {"error": err, "coverage": cov.to(err.dtype), "valid": valid, "warped": warped}
