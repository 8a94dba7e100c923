"""facelab.metrics.multiview: reprojection through depth on an analytic scene."""

from __future__ import annotations

import torch

from facelab.geometry.eg3d import normalized_intrinsics, orbit_cam2world, pixel_intrinsics
from facelab.metrics.multiview import consistency_error, reproject
from facelab.render.volume import camera_rays

D64 = torch.float64
RES = 48


def _plane_view(yaw: float, pitch: float = 0.0):
    """A textured plane z = 0 seen from an orbit camera: image, camera-z depth, mask."""
    c2w = orbit_cam2world(torch.tensor([yaw], dtype=D64), torch.tensor([pitch], dtype=D64))
    K = pixel_intrinsics(normalized_intrinsics(dtype=D64), RES)
    rays = camera_rays(c2w, K, RES)
    t = -rays.origins[..., 2] / rays.directions[..., 2]
    X = rays.origins + t[..., None] * rays.directions
    col = torch.stack(
        [
            0.5 + 0.4 * torch.sin(6 * X[..., 0]),
            0.5 + 0.4 * torch.cos(5 * X[..., 1]),
            0.5 + 0.3 * X[..., 0],
        ],
        -1,
    )
    img = col.reshape(1, RES, RES, 3).permute(0, 3, 1, 2)
    depth = (t * rays.z_per_t).reshape(1, RES, RES)
    # a disc of radius 0.3 on the plane is the "foreground"
    mask = (X[..., :2].norm(dim=-1) < 0.3).reshape(1, RES, RES)
    return img, depth, mask, c2w, K


def test_same_view_is_perfectly_consistent():
    img, d, m, c2w, K = _plane_view(0.2)
    uv, z = reproject(d, c2w, K, c2w, K)
    torch.testing.assert_close(z, d)
    out = consistency_error(img, d, m, c2w, K, img, d, m, c2w, K)
    assert out["error"].item() < 1e-10 and out["coverage"].item() == 1.0


def test_two_views_of_a_plane_agree_through_their_depth():
    a = _plane_view(-0.25, 0.05)
    b = _plane_view(0.3, -0.1)
    out = consistency_error(*a, *b)
    assert out["coverage"].item() > 0.9
    assert out["error"].item() < 0.01  # only bilinear resampling error
    # a wrong depth (5 % too far) breaks the agreement: larger error or pixels rejected
    img_b, d_b, m_b, c_b, K_b = b
    bad = consistency_error(*a, img_b, d_b * 1.05, m_b, c_b, K_b)
    assert bad["coverage"].item() < 0.2 or bad["error"].item() > 5 * out["error"].item()
    # a different texture in B (an inconsistent "generator") gives a large error
    wrong = consistency_error(*a, img_b.flip(-1), d_b, m_b, c_b, K_b)
    assert wrong["error"].item() > 10 * out["error"].item()
