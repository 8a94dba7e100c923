"""facelab.geometry.eg3d: EG3D's camera conventions (orbit cameras, intrinsics, mirroring)."""

from __future__ import annotations

import math

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.geometry.camera import look_at, project, transform_points
from facelab.geometry.eg3d import (
    EG3D_FOCAL,
    cam2world_to_extrinsics,
    camera_params,
    fov_degrees,
    mirror_cam2world,
    normalized_intrinsics,
    orbit_cam2world,
    pixel_intrinsics,
    split_camera_params,
)

D64 = torch.float64


def test_frontal_camera_is_eg3d_default():
    c2w = orbit_cam2world(0.0, 0.0, dtype=D64)[0]
    # EG3D: camera at (0, 0, 2.7), looking at (0, 0, 0.2): right = +x, down = -y, forward = -z
    torch.testing.assert_close(c2w[:3, 3], torch.tensor([0.0, 0.0, 2.7], dtype=D64))
    torch.testing.assert_close(c2w[:3, :3], torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=D64)))
    assert fov_degrees() == pytest.approx(2 * math.degrees(math.atan(0.5 / EG3D_FOCAL)))
    assert fov_degrees() == pytest.approx(13.37, abs=0.01)


def test_orbit_matches_look_at_and_projects_look_at_point_to_centre():
    yaw = torch.tensor([0.5, -0.3, 0.0], dtype=D64)
    pitch = torch.tensor([0.1, -0.2, 0.3], dtype=D64)
    c2w = orbit_cam2world(yaw, pitch)
    R, t = cam2world_to_extrinsics(c2w)
    target = torch.tensor([0.0, 0.0, 0.2], dtype=D64)
    R2, t2 = look_at(c2w[:, :3, 3], target)
    torch.testing.assert_close(R, R2)
    torch.testing.assert_close(t, t2)
    K = pixel_intrinsics(normalized_intrinsics(batch=3, dtype=D64), 64)
    uv = project(transform_points(target.expand(3, 1, 3), R, t), K)
    torch.testing.assert_close(uv, torch.full((3, 1, 2), 32.0, dtype=D64))
    # positive yaw puts the camera at +x (the face's left), positive pitch above (+y)
    assert c2w[0, 0, 3] > 0 and c2w[2, 1, 3] > 0
    torch.testing.assert_close(c2w[:, :3, 3].norm(dim=-1), torch.full((3,), 2.7, dtype=D64))


def test_mirrored_camera_sees_the_mirrored_point_at_the_mirrored_pixel():
    g = torch.Generator().manual_seed(0)
    c2w = orbit_cam2world(torch.tensor([0.4], dtype=D64), torch.tensor([0.15], dtype=D64))
    pts = (torch.rand(1, 20, 3, generator=g, dtype=D64) - 0.5) * 0.6
    W = 64
    K = pixel_intrinsics(normalized_intrinsics(dtype=D64), W)
    uv = project(transform_points(pts, *cam2world_to_extrinsics(c2w)), K)
    mirrored = pts * pts.new_tensor([-1.0, 1.0, 1.0])
    uv_m = project(transform_points(mirrored, *cam2world_to_extrinsics(mirror_cam2world(c2w))), K)
    torch.testing.assert_close(uv_m[..., 0], W - uv[..., 0])
    torch.testing.assert_close(uv_m[..., 1], uv[..., 1])
    # still a proper rotation, and the mirror of the mirror is the identity
    C = mirror_cam2world(c2w)[0, :3, :3]
    assert torch.linalg.det(C).item() == pytest.approx(1.0)
    torch.testing.assert_close(mirror_cam2world(mirror_cam2world(c2w)), c2w)


def test_camera_params_round_trip_and_errors():
    c2w = orbit_cam2world(torch.tensor([0.1, 0.2]), torch.tensor([0.0, 0.1]))
    K = normalized_intrinsics()
    c = camera_params(c2w, K)
    assert c.shape == (2, 25)
    c2, K2 = split_camera_params(c)
    torch.testing.assert_close(c2, c2w)
    torch.testing.assert_close(K2, K.expand(2, 3, 3))
    with pytest.raises(InvalidInput):
        camera_params(c2w, normalized_intrinsics(batch=3))
    with pytest.raises(InvalidInput):
        split_camera_params(torch.zeros(2, 24))
