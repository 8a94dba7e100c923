"""Chapter 10, "3D GAN inversion with a symmetry prior": the from-scratch warp and the checks.

:func:`warp_from_scratch` is the chapter's depth-guided warp in a few lines, printed in the
chapter word for word (``tests/test_book_ch10.py`` checks that the chapter's cell and this
function are the same code, and that it agrees with ``facelab.methods.spi.depth_warp``).

The checkers compare the student's functions with ``facelab.methods.spi`` or analytic
answers: the mirrored camera (twice = identity, yaw -> -yaw, the mirrored point lands at the
flipped pixel), the warp (the library's answer on random cameras and depths, a known plane)
and the occlusion part of the conflict mask (a synthetic occluder).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from . import exercise
from ._util import F64, as_f64

__all__ = ["warp_from_scratch"]


# fmt: off
def warp_from_scratch(source, target_depth, c2w_t, K_t, c2w_s, K_s):
    """Sample source (3, h, w) at where each pixel of the target view (depth (H, W), camera
    c2w_t (4, 4), pixel intrinsics K_t (3, 3)) lands in the source camera (c2w_s, K_s).
    Returns the warped image (3, H, W) and the points' depth in the source camera (H, W)."""
    H, W = target_depth.shape
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], -1).to(target_depth)  # (H, W, 3) pixel centres
    x_t = (pix @ torch.linalg.inv(K_t).T) * target_depth[..., None]  # target camera coordinates
    X = x_t @ c2w_t[:3, :3].T + c2w_t[:3, 3]  # world points
    x_s = (X - c2w_s[:3, 3]) @ c2w_s[:3, :3]  # source camera coordinates, R^T (X - o)
    q = x_s @ K_s.T
    q = q[..., :2] / q[..., 2:]  # source pixels
    h, w = source.shape[-2:]
    grid = torch.stack([2 * q[..., 0] / w - 1, 2 * q[..., 1] / h - 1], -1)  # grid_sample's [-1, 1]
    out = F.grid_sample(source[None], grid[None].to(source), align_corners=False)[0]
    return out, x_s[..., 2]
# fmt: on


def _random_setup(g: torch.Generator, res: int = 12):
    from ..geometry.eg3d import (
        camera_params,
        normalized_intrinsics,
        orbit_cam2world,
        pixel_intrinsics,
    )

    yaw = (torch.rand(2, generator=g, dtype=F64) - 0.5) * 1.2
    pitch = (torch.rand(2, generator=g, dtype=F64) - 0.5) * 0.4
    c2w = orbit_cam2world(yaw, pitch)
    cams = camera_params(c2w, normalized_intrinsics(batch=2, dtype=F64))
    K = pixel_intrinsics(normalized_intrinsics(batch=2, dtype=F64), res)
    depth = 2.4 + 0.3 * torch.rand(1, res, res, generator=g, dtype=F64)
    src = torch.rand(1, 3, res, res, generator=g, dtype=F64)
    return c2w, cams, K, depth, src


@exercise(
    "ch10.mirror_cam2world",
    "the mirrored camera",
    hint="S = diag(-1, 1, 1, 1); the camera of the flipped photo is S @ cam2world @ S",
)
def check_mirror_cam2world(fn: Callable[..., Any]) -> int:
    from ..geometry.eg3d import mirror_cam2world, orbit_cam2world

    g = torch.Generator().manual_seed(101)
    n = 0
    yaw = (torch.rand(5, generator=g, dtype=F64) - 0.5) * 1.4
    pitch = (torch.rand(5, generator=g, dtype=F64) - 0.5) * 0.5
    c2w = orbit_cam2world(yaw, pitch)
    for k in range(5):
        m = as_f64(fn(c2w[k].clone()))
        assert m.shape == (4, 4), f"expected a (4, 4) matrix, got {tuple(m.shape)}"
        assert torch.allclose(as_f64(fn(m.clone())), c2w[k], atol=1e-10), (
            "mirroring twice is the identity"
        )
        assert torch.allclose(
            m, orbit_cam2world(-yaw[k : k + 1], pitch[k : k + 1])[0], atol=1e-10
        ), "the mirror of the camera at yaw theta is the camera at yaw -theta (same pitch)"
        assert torch.allclose(m, mirror_cam2world(c2w[k : k + 1])[0], atol=1e-10)
        n += 1
    return n


@exercise(
    "ch10.depth_warp",
    "depth-guided warping",
    hint="pixel centres (u+0.5, v+0.5, 1) -> K_t^{-1} times depth -> world with c2w_t -> "
    "source camera with R_s^T (X - o_s) -> K_s, divide by z -> grid_sample at 2q/size - 1",
)
def check_depth_warp(fn: Callable[..., Any]) -> int:
    from ..methods.spi.warp import depth_warp

    g = torch.Generator().manual_seed(102)
    n = 0
    for _ in range(3):
        c2w, cams, K, depth, src = _random_setup(g)
        img, z = fn(
            src[0].clone(),
            depth[0].clone(),
            c2w[0].clone(),
            K[0].clone(),
            c2w[1].clone(),
            K[1].clone(),
        )
        ref = depth_warp(src, depth, cams[:1], cams[1:], None)
        img, z = as_f64(img), as_f64(z)
        assert img.shape == (3, 12, 12), (
            f"expected the warped image (3, H, W), got {tuple(img.shape)}"
        )
        assert torch.allclose(z, ref.z[0], atol=1e-9), "the depth in the source camera is wrong"
        assert torch.allclose(img, ref.image[0], atol=1e-9), (
            "the warped image differs from facelab.methods.spi.depth_warp"
        )
        n += 1
    # the same camera: the warp is the identity
    c2w, cams, K, depth, src = _random_setup(g)
    img, z = fn(src[0], depth[0], c2w[0], K[0], c2w[0], K[0])
    assert torch.allclose(as_f64(img), src[0], atol=1e-9), "a view warped into itself is itself"
    assert torch.allclose(as_f64(z), depth[0], atol=1e-9)
    return n + 1


@exercise(
    "ch10.visible_mask",
    "the occlusion test of the conflict mask",
    hint="visible where |z - source_depth_at_uv| < tol and uv is inside the source image "
    "(0 <= u <= w, 0 <= v <= h)",
)
def check_visible_mask(fn: Callable[..., Any]) -> int:
    n = 0
    H = W = 8
    u, v = torch.meshgrid(
        torch.arange(W, dtype=F64) + 0.5, torch.arange(H, dtype=F64) + 0.5, indexing="xy"
    )
    uv = torch.stack([u, v], -1)
    z = torch.full((H, W), 2.8, dtype=F64)
    sd = torch.full((H, W), 2.8, dtype=F64)
    sd[2:5, 3:6] = 2.5  # an occluder in front of the wall, seen by the source
    m = torch.as_tensor(fn(z, sd, uv, (H, W), 0.05)).bool()
    expect = torch.ones(H, W, dtype=torch.bool)
    expect[2:5, 3:6] = False
    assert m.shape == (H, W), f"expected a (H, W) mask, got {tuple(m.shape)}"
    assert torch.equal(m, expect), "points hidden behind the occluder must be masked out"
    n += 1
    m = torch.as_tensor(fn(z, z, uv + torch.tensor([W, 0.0], dtype=F64), (H, W), 0.05)).bool()
    assert not m.any(), "points that land outside the source image are not visible"
    n += 1
    m = torch.as_tensor(fn(z + 0.04, z, uv, (H, W), 0.05)).bool()
    assert m.all(), "a depth within the tolerance agrees"
    return n + 1
