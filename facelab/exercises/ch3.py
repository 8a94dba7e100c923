"""Checks for the exercises of chapter 3, "Cameras and landmark fitting".

Each checker compares the student's function with facelab's implementation (rotations,
camera projection, POS) or with an analytic answer (exact synthetic data, the normal
equations) on small random inputs. No model files are needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from . import exercise
from ._util import F64, as_f64


@exercise(
    "ch3.axis_angle_to_rotation",
    "Rodrigues' formula",
    hint="theta = |omega|, k = omega / theta, R = I + sin(theta) [k]x + (1 - cos(theta)) [k]x^2; "
    "clamp theta away from 0 before dividing",
)
def check_axis_angle_to_rotation(fn: Callable[..., Any]) -> int:
    from ..geometry.rotation import axis_angle_to_matrix

    g = torch.Generator().manual_seed(31)
    n = 0
    # quarter turn about z: x -> y
    R = as_f64(fn(torch.tensor([[0.0, 0.0, math.pi / 2]], dtype=F64)))
    assert R.shape == (1, 3, 3), f"expected shape (1, 3, 3), got {tuple(R.shape)}"
    expect = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]], dtype=F64)
    assert torch.allclose(R, expect, atol=1e-9), (
        f"a quarter turn about z must map x to y (right-handed):\n{expect[0]}\ngot\n{R[0]}"
    )
    n += 1
    R0 = as_f64(fn(torch.zeros(2, 3, dtype=F64)))
    assert torch.isfinite(R0).all(), "omega = 0 gave NaN/Inf: guard the division by theta"
    assert torch.allclose(R0, torch.eye(3, dtype=F64).expand(2, 3, 3)), "omega = 0 must give I"
    n += 1
    w = torch.randn(50, 3, generator=g, dtype=F64) * 1.5
    R = as_f64(fn(w))
    assert torch.allclose(R, axis_angle_to_matrix(w), atol=1e-9), (
        "differs from facelab.geometry.axis_angle_to_matrix on random axis-angle vectors"
    )
    n += 1
    I3 = torch.eye(3, dtype=F64)
    assert torch.allclose(R.transpose(1, 2) @ R, I3.expand_as(R), atol=1e-9), "R^T R must be I"
    assert torch.allclose(torch.linalg.det(R), torch.ones(50, dtype=F64), atol=1e-9)
    return n + 1


@exercise(
    "ch3.project_face",
    "pose and project a face",
    hint="x_cam = verts @ (R @ diag(1, -1, -1))^T + t[:, None]; p = x_cam @ K^T; "
    "pixels = p[..., :2] / p[..., 2:]",
)
def check_project_face(fn: Callable[..., Any]) -> int:
    from ..geometry.camera import intrinsics, pose_to_camera, project
    from ..geometry.rotation import axis_angle_to_matrix

    g = torch.Generator().manual_seed(32)
    n = 0
    # frontal face at the origin, 50 units away: the model point (1, 1, 0) is right and UP
    K = intrinsics(100.0, 100.0, 64.0, 64.0).to(F64)
    pts = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]], dtype=F64)
    out = as_f64(
        fn(pts, torch.eye(3, dtype=F64)[None], torch.tensor([[0.0, 0.0, 50.0]], dtype=F64), K)
    )
    assert out.shape == (1, 2, 2), f"expected shape (1, 2, 2), got {tuple(out.shape)}"
    expect = torch.tensor([[[64.0, 64.0], [66.0, 62.0]]], dtype=F64)
    assert torch.allclose(out, expect, atol=1e-9), (
        f"frontal pose: the origin must land on the principal point and model +y (up) on "
        f"smaller v (image rows grow downwards): expected {expect[0].tolist()}, got {out[0].tolist()}"
    )
    n += 1
    B = 3
    w = 0.4 * torch.randn(B, 3, generator=g, dtype=F64)
    t = torch.randn(B, 3, generator=g, dtype=F64) + torch.tensor([0.0, 0.0, 40.0], dtype=F64)
    verts = 5 * torch.randn(B, 30, 3, generator=g, dtype=F64)
    f = 300 + 100 * torch.rand(B, generator=g, dtype=F64)
    K = intrinsics(f, f * 1.1, 100.0, 80.0)
    out = as_f64(fn(verts, axis_angle_to_matrix(w), t, K))
    ref = project(pose_to_camera(verts, w, t), K)
    assert torch.allclose(out, ref, atol=1e-8), (
        "differs from facelab's pose_to_camera + project on random poses and cameras"
    )
    return n + 1


@exercise(
    "ch3.scaled_orthographic_pose",
    "POS: pose from orthography and scaling",
    hint="least squares for [A | b] in x = A X + b (append a column of ones to X), then "
    "U, S, Vh = svd(A): rows R[:2] = U @ Vh, s = S.mean(), R[2] = cross(R[0], R[1])",
)
def check_scaled_orthographic_pose(fn: Callable[..., Any]) -> int:
    from ..fit.landmarks import pos_pose
    from ..geometry.rotation import random_rotations

    g = torch.Generator().manual_seed(33)
    n = 0
    for _ in range(3):
        R = random_rotations(1, generator=g, dtype=F64)[0]
        s = 2 + 10 * float(torch.rand((), generator=g, dtype=F64))
        b = 100 * torch.randn(2, generator=g, dtype=F64)
        X = 10 * torch.randn(40, 3, generator=g, dtype=F64)
        x = s * X @ R[:2].T + b
        out = fn(X, x)
        assert isinstance(out, tuple) and len(out) == 3, "return a tuple (s, R, b)"
        s_, R_, b_ = (as_f64(v) for v in out)
        assert R_.shape == (3, 3), f"R must be (3, 3), got {tuple(R_.shape)}"
        assert abs(float(s_) - s) < 1e-8, (
            f"exact data: the scale should be {s:.6f}, got {float(s_):.6f}"
        )
        assert torch.allclose(R_, R, atol=1e-8), "exact data: the rotation is not recovered"
        assert torch.allclose(b_, b, atol=1e-6), "exact data: the offset b is not recovered"
        n += 1
    X = 10 * torch.randn(68, 3, generator=g, dtype=F64)
    x = 3 * X[:, :2] + 5 * torch.randn(68, 2, generator=g, dtype=F64)  # noisy: A not orthogonal
    s_, R_, b_ = (as_f64(v) for v in fn(X, x))
    assert torch.allclose(R_ @ R_.T, torch.eye(3, dtype=F64), atol=1e-9), (
        "with noisy data R must still be a rotation: orthonormalise A's rows with the SVD"
    )
    assert abs(float(torch.linalg.det(R_)) - 1) < 1e-9, (
        "det(R) must be +1 (third row = cross product)"
    )
    s2, R2, b2 = pos_pose(X, x)
    assert torch.allclose(R_, R2, atol=1e-8) and abs(float(s_ - s2)) < 1e-8, (
        "noisy data: differs from facelab.fit.landmarks.pos_pose"
    )
    return n + 1


@exercise(
    "ch3.linear_shape_fit",
    "linear shape fit with a prior",
    hint="M[(j, r), k] = (A @ basis[k, j])[r] (torch.einsum('rc,kjc->jrk', A, basis)), "
    "y = (x - mean @ A.T - b) flattened; solve (M^T M + lam I) c = M^T y",
)
def check_linear_shape_fit(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(34)
    n = 0
    N, K = 20, 6
    A = torch.randn(2, 3, generator=g, dtype=F64) * 4
    b = torch.randn(2, generator=g, dtype=F64) * 50
    mean = torch.randn(N, 3, generator=g, dtype=F64) * 10
    basis = torch.randn(K, N, 3, generator=g, dtype=F64)
    c_true = torch.randn(K, generator=g, dtype=F64)
    X = mean + torch.einsum("k,kjc->jc", c_true, basis)
    x = X @ A.T + b
    c = as_f64(fn(x, A, b, mean, basis, 0.0))
    assert c.shape == (K,), f"expected shape ({K},), got {tuple(c.shape)}"
    assert torch.allclose(c, c_true, atol=1e-8), "exact data and lam = 0 must give the true weights"
    n += 1
    xn = x + torch.randn(x.shape, generator=g, dtype=F64)
    M = torch.stack([(basis[k] @ A.T).reshape(-1) for k in range(K)], 1)  # (2N, K), (j, r) order
    y = (xn - mean @ A.T - b).reshape(-1)
    for lam in (0.5, 50.0):
        ref = torch.linalg.solve(M.T @ M + lam * torch.eye(K, dtype=F64), M.T @ y)
        got = as_f64(fn(xn, A, b, mean, basis, lam))
        assert torch.allclose(got, ref, atol=1e-8), f"noisy data, lam = {lam}: wrong weights"
        n += 1
    big = as_f64(fn(xn, A, b, mean, basis, 1e9))
    assert big.abs().max() < 1e-3, (
        "a huge prior weight must shrink the weights to 0 (the mean face)"
    )
    return n + 1


__all__ = [
    "check_axis_angle_to_rotation",
    "check_linear_shape_fit",
    "check_project_face",
    "check_scaled_orthographic_pose",
]
