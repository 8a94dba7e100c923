"""Tests of facelab.geometry.camera: projection conventions, round trips, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.geometry.camera import (
    Camera,
    intrinsics,
    look_at,
    ndc_to_pixels,
    perspective_clip,
    pixels_to_ndc,
    pose_cam2world,
    pose_to_camera,
    project,
    project_depth,
    transform_points,
    unproject,
    weak_perspective_project,
)

D = torch.float64


def test_intrinsics_layout_and_batch():
    K = intrinsics(torch.tensor([100.0, 200.0]), 110.0, 32.0, 24.0)
    assert K.shape == (2, 3, 3)
    assert torch.equal(K[1], torch.tensor([[200.0, 0, 32], [0, 110, 24], [0, 0, 1]]))
    assert intrinsics(1.0, 1.0, 0.0, 0.0).shape == (1, 3, 3)


def test_project_known_answer_opencv():
    K = intrinsics(100.0, 120.0, 64.0, 48.0).to(D)
    pts = torch.tensor([[[0.0, 0.0, 5.0], [1.0, -2.0, 4.0]]], dtype=D)
    uv = project(pts, K)
    # u = fx x / z + cx, v = fy y / z + cy; the optical axis hits the principal point
    assert torch.allclose(uv[0, 0], torch.tensor([64.0, 48.0], dtype=D))
    assert torch.allclose(uv[0, 1], torch.tensor([100 * 0.25 + 64, 120 * -0.5 + 48], dtype=D))
    s = project_depth(pts, K)
    assert torch.equal(s[..., 2], pts[..., 2])


def test_unproject_round_trip():
    g = torch.Generator().manual_seed(0)
    K = intrinsics(torch.tensor([300.0, 250.0]), 280.0, 100.0, 90.0).to(D)
    pts = torch.randn(2, 50, 3, generator=g, dtype=D)
    pts[..., 2] = pts[..., 2].abs() + 2
    back = unproject(project(pts, K), pts[..., 2], K)
    assert torch.allclose(back, pts, atol=1e-10)


def test_project_gradcheck():
    K = intrinsics(50.0, 60.0, 10.0, 12.0).to(D)
    pts = torch.tensor([[[0.3, -0.2, 3.0], [1.0, 0.5, 2.0]]], dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: project(p, K), (pts,))


def test_pose_to_camera_convention():
    # rotation 0: model +y (up) -> image up (camera -y); model +z (out of face) -> towards camera
    v = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]], dtype=D)
    out = pose_to_camera(v, torch.zeros(1, 3, dtype=D), torch.tensor([[0.0, 0.0, 10.0]], dtype=D))
    assert torch.allclose(out[0, 0], torch.tensor([0.0, -1.0, 10.0], dtype=D))
    assert torch.allclose(out[0, 1], torch.tensor([0.0, 0.0, 9.0], dtype=D))
    assert torch.allclose(out[0, 2], torch.tensor([1.0, 0.0, 10.0], dtype=D))
    # yaw 90 deg about camera y maps camera +x to -z... (x' = R x): R_y(90) [1,0,0] = [0,0,-1]
    rot = torch.tensor([[0.0, math.pi / 2, 0.0]], dtype=D)
    out = pose_to_camera(v[:, 2:], rot, torch.zeros(1, 3, dtype=D))
    assert torch.allclose(out[0, 0], torch.tensor([0.0, 0.0, -1.0], dtype=D), atol=1e-12)


def test_pose_cam2world_inverts_pose_to_camera():
    g = torch.Generator().manual_seed(5)
    rot = torch.randn(3, 3, generator=g, dtype=D)
    t = torch.randn(3, 3, generator=g, dtype=D) + torch.tensor([0.0, 0.0, 30.0], dtype=D)
    x = torch.randn(3, 7, 3, generator=g, dtype=D)
    T = pose_cam2world(rot, t)
    assert T.shape == (3, 4, 4) and T.dtype == D
    cam = pose_to_camera(x, rot, t)
    back = cam @ T[:, :3, :3].transpose(1, 2) + T[:, None, :3, 3]
    torch.testing.assert_close(back, x, rtol=0, atol=1e-12)
    assert torch.equal(T[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=D).expand(3, 4))
    # the camera centre in model space: a frontal face at distance 10 is seen from +z
    c = pose_cam2world(torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 10.0]]))
    assert c.dtype == torch.float32
    torch.testing.assert_close(c[0, :3, 3], torch.tensor([0.0, 0.0, 10.0]))


def test_transform_points_matches_matmul():
    g = torch.Generator().manual_seed(1)
    R = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=D))[0]
    t = torch.randn(3, dtype=D, generator=g)
    p = torch.randn(1, 7, 3, dtype=D, generator=g)
    assert torch.allclose(transform_points(p, R, t)[0], p[0] @ R.T + t)


def test_look_at_axes():
    eye = torch.tensor([3.0, 2.0, 10.0], dtype=D)
    target = torch.tensor([0.0, 0.5, 0.0], dtype=D)
    R, t = look_at(eye, target)
    assert torch.allclose(R[0] @ R[0].T, torch.eye(3, dtype=D), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R[0]), torch.tensor(1.0, dtype=D))
    assert torch.allclose(R[0] @ eye + t[0], torch.zeros(3, dtype=D), atol=1e-12)
    tc = R[0] @ target + t[0]
    assert torch.allclose(tc[:2], torch.zeros(2, dtype=D), atol=1e-12)
    assert tc[2] == pytest.approx(float((eye - target).norm()))
    # a point above the target (world +y) appears above it in the image (camera -y)
    above = R[0] @ (target + torch.tensor([0.0, 1.0, 0.0], dtype=D)) + t[0]
    assert above[1] < 0
    with pytest.raises(InvalidInput, match="parallel"):
        look_at(torch.tensor([0.0, 5.0, 0.0]), torch.zeros(3))


def test_camera_frontal_sees_face_upright():
    cam = Camera.frontal(distance=50.0, image_size=(120, 160), fov_degrees=20.0, dtype=D)
    v = torch.tensor(
        [[[0.0, 0.0, 0.0], [0.0, 0.0, 10.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=D
    )
    uvz = cam.to_screen(v)[0]
    assert torch.allclose(uvz[0], torch.tensor([80.0, 60.0, 50.0], dtype=D))
    assert uvz[1, 2] == pytest.approx(40.0)  # nose tip is closer
    assert uvz[2, 0] > 80.0  # model +x (face's left) -> viewer's right
    assert uvz[3, 1] < 60.0  # model +y -> up in the image
    f = cam.K[0, 0, 0].item()
    assert f == pytest.approx(80.0 / math.tan(math.radians(10.0)))
    # Camera.frontal is the same as pose_to_camera with rotation 0, t = (0, 0, d)
    pc = pose_to_camera(v, torch.zeros(1, 3, dtype=D), torch.tensor([[0.0, 0.0, 50.0]], dtype=D))
    assert torch.allclose(cam.to_camera(v), pc)
    assert torch.allclose(cam.project(v), project(pc, cam.K))


def test_weak_perspective():
    p = torch.tensor([[[1.0, 2.0, 3.0]]], dtype=D)
    R = torch.eye(3, dtype=D).unsqueeze(0)
    uv = weak_perspective_project(
        p, torch.tensor([2.0], dtype=D), R, torch.tensor([[10.0, 20.0]], dtype=D)
    )
    assert torch.allclose(uv, torch.tensor([[[12.0, 24.0]]], dtype=D))


def test_ndc_round_trip_and_corners():
    px = torch.tensor([[0.0, 0.0], [64.0, 32.0], [32.0, 16.0]], dtype=D)
    ndc = pixels_to_ndc(px, (32, 64))
    assert torch.allclose(ndc, torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]], dtype=D))
    assert torch.allclose(ndc_to_pixels(ndc, (32, 64)), px)


def test_perspective_clip_agrees_with_project():
    K = intrinsics(80.0, 90.0, 30.0, 20.0).to(D)
    pts = torch.tensor([[[0.5, -0.3, 2.0], [0.0, 0.0, 0.1], [0.0, 0.0, 100.0]]], dtype=D)
    clip = perspective_clip(pts, K, (40, 64), near=0.1, far=100.0)
    ndc = clip[..., :3] / clip[..., 3:]
    assert torch.allclose(ndc[..., :2], pixels_to_ndc(project(pts, K), (40, 64)))
    assert ndc[0, 1, 2].item() == pytest.approx(-1.0)
    assert ndc[0, 2, 2].item() == pytest.approx(1.0)


def test_bad_shapes_raise():
    with pytest.raises(InvalidInput, match="points_cam"):
        project(torch.zeros(4, 3), torch.eye(3))
    with pytest.raises(InvalidInput, match="image_size"):
        Camera(torch.eye(3)[None], torch.zeros(1, 3), torch.eye(3)[None], (0, 4))
