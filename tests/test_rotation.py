"""Tests for facelab.geometry.rotation: known answers, round trips, stability near 0 / pi, gradients."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.geometry import rotation as rot

D = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _axis_angles(n: int = 64, seed: int = 0) -> torch.Tensor:
    """Random axes with angles spread over [0, pi), plus tiny angles and angles just below pi."""
    g = _gen(seed)
    axes = torch.randn(n, 3, generator=g, dtype=D)
    axes = axes / axes.norm(dim=-1, keepdim=True)
    angles = torch.cat(
        [
            torch.rand(n - 24, generator=g, dtype=D) * math.pi,
            torch.tensor([0.0, 1e-12, 1e-9, 1e-7, 1e-5, 1e-4, 1e-3, 3e-3], dtype=D),
            math.pi - torch.tensor([1e-9, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1], dtype=D),
            torch.tensor([math.pi / 2] * 4 + [math.pi / 4] * 4, dtype=D),
        ]
    )
    return axes * angles[:, None]


def _is_rotation(m: torch.Tensor, tol: float = 1e-10) -> bool:
    eye = torch.eye(3, dtype=m.dtype)
    ortho = (m @ m.transpose(-1, -2) - eye).abs().max() < tol
    det = (torch.linalg.det(m) - 1).abs().max() < tol
    return bool(ortho and det)


def test_known_answer_90_degrees_about_z_maps_x_to_y():
    aa = torch.tensor([0.0, 0.0, math.pi / 2], dtype=D)
    r = rot.axis_angle_to_matrix(aa)
    x = torch.tensor([1.0, 0.0, 0.0], dtype=D)
    torch.testing.assert_close(r @ x, torch.tensor([0.0, 1.0, 0.0], dtype=D), atol=1e-15, rtol=0)
    q = rot.axis_angle_to_quaternion(aa)
    s = math.sqrt(0.5)
    torch.testing.assert_close(q, torch.tensor([s, 0, 0, s], dtype=D))
    torch.testing.assert_close(rot.quaternion_to_matrix(q), r)
    torch.testing.assert_close(
        rot.euler_angles_to_matrix(torch.tensor([0, 0, math.pi / 2], dtype=D), "XYZ"), r
    )


def test_rodrigues_matches_matrix_exponential():
    aa = _axis_angles(40)
    torch.testing.assert_close(
        rot.axis_angle_to_matrix(aa), torch.linalg.matrix_exp(rot.hat(aa)), atol=1e-12, rtol=0
    )


def test_hat_is_cross_product():
    g = _gen(1)
    a, b = torch.randn(5, 3, generator=g, dtype=D), torch.randn(5, 3, generator=g, dtype=D)
    torch.testing.assert_close((rot.hat(a) @ b[..., None])[..., 0], torch.linalg.cross(a, b))


def test_axis_angle_matrix_round_trip_including_near_0_and_pi():
    aa = _axis_angles(64)
    r = rot.axis_angle_to_matrix(aa)
    assert _is_rotation(r)
    back = rot.matrix_to_axis_angle(r)
    # compare as rotations (near pi the axis sign may flip) and as vectors away from pi
    torch.testing.assert_close(rot.axis_angle_to_matrix(back), r, atol=1e-12, rtol=0)
    away = aa.norm(dim=-1) < math.pi - 1e-3
    torch.testing.assert_close(back[away], aa[away], atol=1e-10, rtol=0)
    # near pi the recovered angle is still accurate (arccos of the trace would lose ~sqrt(eps))
    ang = back.norm(dim=-1)
    torch.testing.assert_close(ang, aa.norm(dim=-1), atol=1e-10, rtol=0)


def test_exact_pi_rotation_axis_is_recovered_up_to_sign():
    for axis in ([1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0], [1.0, -2.0, 3.0]):
        a = torch.tensor(axis, dtype=D)
        a = a / a.norm() * math.pi
        back = rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(a))
        assert min((back - a).abs().max(), (back + a).abs().max()) < 1e-12


def test_quaternion_round_trips():
    aa = _axis_angles(64, seed=2)
    q = rot.axis_angle_to_quaternion(aa)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(len(q), dtype=D))
    r = rot.quaternion_to_matrix(q)
    torch.testing.assert_close(r, rot.axis_angle_to_matrix(aa), atol=1e-12, rtol=0)
    q2 = rot.matrix_to_quaternion(r)
    # same rotation up to the sign of q
    assert ((q2 - q).abs().amax(-1).minimum((q2 + q).abs().amax(-1)) < 1e-12).all()
    assert (q2[:, 0] >= 0).all()
    back = rot.quaternion_to_axis_angle(q)
    torch.testing.assert_close(rot.axis_angle_to_matrix(back), r, atol=1e-12, rtol=0)
    # -q is the same rotation
    torch.testing.assert_close(rot.quaternion_to_matrix(-q), r)


def test_quaternion_multiply_composes_rotations():
    g = _gen(3)
    a, b = torch.randn(10, 4, generator=g, dtype=D), torch.randn(10, 4, generator=g, dtype=D)
    torch.testing.assert_close(
        rot.quaternion_to_matrix(rot.quaternion_multiply(a, b)),
        rot.quaternion_to_matrix(a) @ rot.quaternion_to_matrix(b),
    )


def test_rotation_6d_round_trip_and_gram_schmidt():
    r = rot.random_rotations(50, generator=_gen(4), dtype=D)
    assert _is_rotation(r)
    r6 = rot.matrix_to_rotation_6d(r)
    assert r6.shape == (50, 6)
    torch.testing.assert_close(r6[:, :3], r[:, :, 0])
    torch.testing.assert_close(rot.rotation_6d_to_matrix(r6), r)
    # an arbitrary 6-vector gives a valid rotation whose first column is a1 normalised
    x = torch.randn(20, 6, generator=_gen(5), dtype=D)
    m = rot.rotation_6d_to_matrix(x)
    assert _is_rotation(m)
    torch.testing.assert_close(m[:, :, 0], x[:, :3] / x[:, :3].norm(dim=-1, keepdim=True))


@pytest.mark.parametrize(
    "convention",
    ["".join(p) for p in itertools.product("XYZ", repeat=3) if p[0] != p[1] and p[1] != p[2]],
)
def test_euler_round_trip_all_conventions(convention):
    g = _gen(6)
    a = (torch.rand(200, 3, generator=g, dtype=D) * 2 - 1) * torch.tensor([3.0, 1.5, 3.0], dtype=D)
    if convention[0] == convention[2]:  # proper Euler: middle angle in (0, pi)
        a[:, 1] = a[:, 1] + 1.55
    r = rot.euler_angles_to_matrix(a, convention)
    assert _is_rotation(r)
    back = rot.matrix_to_euler_angles(r, convention)
    torch.testing.assert_close(back, a, atol=1e-10, rtol=0)


def test_euler_order_is_written_order():
    a = torch.tensor([0.3, -0.5, 1.1], dtype=D)
    rx = rot.axis_angle_to_matrix(torch.tensor([0.3, 0, 0], dtype=D))
    ry = rot.axis_angle_to_matrix(torch.tensor([0, -0.5, 0], dtype=D))
    rz = rot.axis_angle_to_matrix(torch.tensor([0, 0, 1.1], dtype=D))
    torch.testing.assert_close(rot.euler_angles_to_matrix(a, "XYZ"), rx @ ry @ rz)
    torch.testing.assert_close(rot.euler_angles_to_matrix(a.flip(0), "ZYX"), rz @ ry @ rx)


def test_yaw_pitch_roll_axes_and_round_trip():
    ypr = torch.tensor([0.4, -0.2, 0.1], dtype=D)
    r = rot.yaw_pitch_roll_to_matrix(ypr)
    ry = rot.axis_angle_to_matrix(torch.tensor([0, 0.4, 0], dtype=D))
    rx = rot.axis_angle_to_matrix(torch.tensor([-0.2, 0, 0], dtype=D))
    rz = rot.axis_angle_to_matrix(torch.tensor([0, 0, 0.1], dtype=D))
    torch.testing.assert_close(r, ry @ rx @ rz)
    # pure yaw is a rotation about the camera y axis: y is fixed
    ry_only = rot.yaw_pitch_roll_to_matrix(torch.tensor([0.7, 0.0, 0.0], dtype=D))
    torch.testing.assert_close(ry_only[:, 1], torch.tensor([0.0, 1.0, 0.0], dtype=D))
    torch.testing.assert_close(rot.matrix_to_yaw_pitch_roll(r), ypr)
    deg = torch.tensor([30.0, 10.0, -5.0], dtype=D)
    torch.testing.assert_close(
        rot.matrix_to_yaw_pitch_roll(rot.yaw_pitch_roll_to_matrix(deg, degrees=True), degrees=True),
        deg,
    )


def test_batched_shapes_and_dtype_follow_input():
    aa = torch.zeros(2, 5, 3, dtype=torch.float32)
    r = rot.axis_angle_to_matrix(aa)
    assert r.shape == (2, 5, 3, 3) and r.dtype == torch.float32
    assert rot.matrix_to_axis_angle(r).shape == (2, 5, 3)
    assert rot.matrix_to_quaternion(r).shape == (2, 5, 4)
    assert rot.matrix_to_rotation_6d(r).shape == (2, 5, 6)
    assert rot.euler_angles_to_matrix(aa, "YXZ").shape == (2, 5, 3, 3)
    torch.testing.assert_close(r, torch.eye(3).expand(2, 5, 3, 3))


def test_float32_near_pi_is_accurate():
    aa = torch.tensor(
        [[0.0, 0.0, math.pi - 1e-4], [0.6, 0.8, 0.0]], dtype=torch.float32
    ) * torch.tensor([[1.0], [math.pi - 1e-3]])
    back = rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(aa))
    torch.testing.assert_close(back, aa, atol=2e-5, rtol=0)


def test_geodesic_distance():
    a = torch.tensor([0.1, 0.2, -0.3], dtype=D)
    b = torch.tensor([0.0, 0.0, 0.9], dtype=D)
    r1, r2 = rot.axis_angle_to_matrix(a), rot.axis_angle_to_matrix(a) @ rot.axis_angle_to_matrix(b)
    torch.testing.assert_close(rot.geodesic_distance(r1, r2), torch.tensor(0.9, dtype=D))
    torch.testing.assert_close(rot.geodesic_distance(r1, r1), torch.tensor(0.0, dtype=D))


# --- gradients ----------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [0.0, 1e-6, 1e-3, 0.5, 2.0, 3.1])
def test_gradcheck_axis_angle_to_matrix(scale):
    g = _gen(7)
    d = torch.randn(4, 3, generator=g, dtype=D)
    aa = (d / d.norm(dim=-1, keepdim=True) * scale).requires_grad_(True)
    assert torch.autograd.gradcheck(rot.axis_angle_to_matrix, (aa,), eps=1e-7, atol=1e-6)


def test_gradient_at_zero_is_hat():
    aa = torch.zeros(3, dtype=D, requires_grad=True)
    jac = torch.autograd.functional.jacobian(rot.axis_angle_to_matrix, aa)
    for i in range(3):
        e = torch.zeros(3, dtype=D)
        e[i] = 1
        torch.testing.assert_close(jac[..., i], rot.hat(e))


def test_gradcheck_quaternion_to_matrix():
    q = torch.randn(5, 4, generator=_gen(8), dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(rot.quaternion_to_matrix, (q,))


def test_gradcheck_6d_to_matrix():
    x = torch.randn(5, 6, generator=_gen(9), dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(rot.rotation_6d_to_matrix, (x,))


def test_gradcheck_matrix_to_axis_angle_and_euler():
    aa = _axis_angles(32, seed=10)[:8]  # generic angles
    r = rot.axis_angle_to_matrix(aa).requires_grad_(True)
    # compose with a projection back onto rotations so that perturbed inputs stay meaningful
    assert torch.autograd.gradcheck(lambda m: rot.matrix_to_axis_angle(m), (r,), atol=1e-6)
    assert torch.autograd.gradcheck(lambda m: rot.matrix_to_euler_angles(m, "YXZ"), (r,), atol=1e-6)


@pytest.mark.parametrize("scale", [0.0, 1e-6, 1e-3, 2.0, math.pi - 1e-3, math.pi - 1e-6])
def test_gradcheck_inverse_maps_near_0_and_pi(scale):
    # the maps *out of* a matrix / quaternion, at the angles where naive formulas break down
    d = torch.randn(4, 3, generator=_gen(11), dtype=D)
    aa = d / d.norm(dim=-1, keepdim=True) * scale
    kw = dict(eps=1e-7, atol=1e-5)
    q = rot.axis_angle_to_quaternion(aa).requires_grad_(True)
    assert torch.autograd.gradcheck(rot.quaternion_to_axis_angle, (q,), **kw)
    m = rot.axis_angle_to_matrix(aa).requires_grad_(True)
    assert torch.autograd.gradcheck(rot.matrix_to_quaternion, (m,), **kw)
    assert torch.autograd.gradcheck(rot.matrix_to_axis_angle, (m,), **kw)
    assert torch.autograd.gradcheck(rot.matrix_to_rotation_6d, (m,), **kw)
    aa = aa.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(rot.axis_angle_to_quaternion, (aa,), **kw)
    e = (torch.randn(4, 3, generator=_gen(12), dtype=D) * max(scale, 1e-3)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: rot.euler_angles_to_matrix(x, "ZYX"), (e,))


def test_gradients_finite_at_identity_for_inverse_maps():
    r = torch.eye(3, dtype=D).requires_grad_(True)
    rot.matrix_to_axis_angle(r).sum().backward()
    assert torch.isfinite(r.grad).all()
    q = torch.tensor([1.0, 0, 0, 0], dtype=D, requires_grad=True)
    rot.quaternion_to_axis_angle(q).sum().backward()
    assert torch.isfinite(q.grad).all()
    aa = torch.zeros(3, dtype=D, requires_grad=True)
    rot.axis_angle_to_quaternion(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()


# --- errors -------------------------------------------------------------------------------
def test_bad_inputs_raise_invalid_input():
    with pytest.raises(InvalidInput, match=r"\(\.\.\., 3\)"):
        rot.axis_angle_to_matrix(torch.zeros(4))
    with pytest.raises(InvalidInput, match="floating-point"):
        rot.axis_angle_to_matrix(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(InvalidInput, match=r"\(\.\.\., 3, 3\)"):
        rot.matrix_to_quaternion(torch.zeros(2, 3, 4))
    with pytest.raises(InvalidInput, match="convention"):
        rot.euler_angles_to_matrix(torch.zeros(3), "XXY")
    with pytest.raises(InvalidInput, match="torch.Tensor"):
        rot.quaternion_to_matrix([1.0, 0.0, 0.0, 0.0])


def test_float32_small_angles_match_float64():
    aa64 = _axis_angles(64, seed=11)
    aa32 = aa64.float()
    diff = (rot.axis_angle_to_matrix(aa32).double() - rot.axis_angle_to_matrix(aa64)).abs().max()
    assert diff < 1e-6
    tiny = torch.tensor([[2e-3, 0.0, 0.0], [0.0, 1.01e-3, 0.0]], dtype=torch.float32)
    diff = (
        (rot.axis_angle_to_matrix(tiny).double() - rot.axis_angle_to_matrix(tiny.double()))
        .abs()
        .max()
    )
    assert diff < 1e-7
