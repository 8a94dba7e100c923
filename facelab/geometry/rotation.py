"""Rotations in 3D: matrices, axis-angle, quaternions, Euler angles and the 6D representation.

Every function is batched over leading dimensions (``(..., 3)`` -> ``(..., 3, 3)``), follows the
device and dtype of its input, and is differentiable. The representations:

* **Matrix** ``R (..., 3, 3)``: orthonormal, ``det R = +1``; it acts on column vectors,
  ``x' = R x`` (for row-vector point clouds ``(N, 3)`` write ``x @ R.T``).
* **Axis-angle** ``w (..., 3)``: the rotation by angle ``theta = |w|`` about the unit axis
  ``w / |w|`` (right-hand rule). Rodrigues' formula, with ``K = [w]_x`` the cross-product matrix:

  .. math:: R = I + \\frac{\\sin\\theta}{\\theta} K + \\frac{1 - \\cos\\theta}{\\theta^2} K^2

  Near ``theta = 0`` both coefficients are replaced by their Taylor series
  (``1 - theta^2/6 + theta^4/120`` and ``1/2 - theta^2/24 + theta^4/720``), so the value and the
  gradient are exact and finite at ``w = 0``.
* **Quaternion** ``q (..., 4)`` ordered ``(w, x, y, z)`` (scalar first), unit norm;
  ``q`` and ``-q`` are the same rotation. Functions returning quaternions give ``w >= 0``.
* **6D** ``r (..., 6)`` (Zhou et al., "On the Continuity of Rotation Representations in Neural
  Networks", CVPR 2019): the first two **columns** of ``R`` concatenated, ``r = (R[:, 0], R[:, 1])``.
  Back to a matrix by Gram-Schmidt: ``b1 = a1/|a1|``, ``b2 = normalize(a2 - (b1.a2) b1)``,
  ``b3 = b1 x b2``. Any 6-vector with independent halves maps to a valid rotation, and the map is
  continuous, which makes it the usual choice for networks that regress a rotation.
* **Euler angles** ``(..., 3)`` with a ``convention`` string of three axes, e.g. ``"XYZ"``:
  ``R = R_X(a0) @ R_Y(a1) @ R_Z(a2)`` -- the matrices multiply in the order the letters are
  written. Applied to a point, the *last* letter acts first in the fixed (extrinsic) frame;
  equivalently these are *intrinsic* rotations in the written order.
* **Yaw / pitch / roll** ``(..., 3)``: the named Euler wrapper used for head pose in camera
  axes (OpenCV camera: x right, y down, z forward): yaw about y, pitch about x, roll about z,
  composed as ``R = R_y(yaw) @ R_x(pitch) @ R_z(roll)`` (convention ``"YXZ"``).

``matrix_to_axis_angle`` goes through a quaternion (Shepperd's method picks the best-conditioned
of four formulas) and ``theta = 2 atan2(|v|, w)``, which stays accurate near ``theta = pi`` where
the naive ``arccos((tr R - 1) / 2)`` loses all precision.
"""

from __future__ import annotations

import math

import torch

from ..errors import InvalidInput

__all__ = [
    "axis_angle_to_matrix",
    "axis_angle_to_quaternion",
    "euler_angles_to_matrix",
    "geodesic_distance",
    "hat",
    "matrix_to_axis_angle",
    "matrix_to_euler_angles",
    "matrix_to_quaternion",
    "matrix_to_rotation_6d",
    "matrix_to_yaw_pitch_roll",
    "quaternion_multiply",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "random_rotations",
    "rotation_6d_to_matrix",
    "yaw_pitch_roll_to_matrix",
]

# |theta|^2 below which the Taylor series are used (theta < ~1e-3: the series' error
# theta^6 / 5040 is far below float64 epsilon).
_SMALL_ANGLE_SQ = 1e-6


def _check_last(name: str, x: torch.Tensor, n: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise InvalidInput(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1 or x.shape[-1] != n:
        raise InvalidInput(f"{name} must have shape (..., {n}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InvalidInput(f"{name} must be a floating-point tensor, got {x.dtype}")


def _check_matrix(name: str, m: torch.Tensor) -> None:
    if not isinstance(m, torch.Tensor):
        raise InvalidInput(f"{name} must be a torch.Tensor, got {type(m).__name__}")
    if m.dim() < 2 or m.shape[-2:] != (3, 3):
        raise InvalidInput(f"{name} must have shape (..., 3, 3), got {tuple(m.shape)}")
    if not m.is_floating_point():
        raise InvalidInput(f"{name} must be a floating-point tensor, got {m.dtype}")


def hat(w: torch.Tensor) -> torch.Tensor:
    """Cross-product (skew-symmetric) matrix ``[w]_x`` with ``[w]_x v = w x v``.

    ``w (..., 3)`` -> ``(..., 3, 3)``.
    """
    _check_last("w", w, 3)
    x, y, z = w.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*w.shape[:-1], 3, 3)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: ``axis_angle (..., 3)`` -> rotation matrix ``(..., 3, 3)``.

    ``R = I + a K + b K^2`` with ``K = [w]_x``, ``a = sin(t)/t``, ``b = (1 - cos t)/t^2``,
    ``t = |w|``; Taylor series for ``a`` and ``b`` when ``t^2 < 1e-6``, so the result and its
    gradient are finite and exact at ``w = 0`` (where ``dR/dw = [.]_x``).
    """
    _check_last("axis_angle", axis_angle, 3)
    t2 = (axis_angle * axis_angle).sum(-1)
    small = t2 < _SMALL_ANGLE_SQ
    t2_safe = torch.where(small, torch.ones_like(t2), t2)
    t = t2_safe.sqrt()
    a = torch.where(small, 1.0 - t2 / 6.0 + t2 * t2 / 120.0, torch.sin(t) / t)
    # 1 - cos t = 2 sin^2(t/2): no cancellation for small t (matters in float32)
    sh = torch.sin(0.5 * t)
    b = torch.where(small, 0.5 - t2 / 24.0 + t2 * t2 / 720.0, 2.0 * sh * sh / t2_safe)
    k = hat(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def axis_angle_to_quaternion(axis_angle: torch.Tensor) -> torch.Tensor:
    """``axis_angle (..., 3)`` -> unit quaternion ``(..., 4)`` as ``(w, x, y, z)``.

    ``q = (cos(t/2), sin(t/2) / t * w)``; Taylor series ``sin(t/2)/t ~ 1/2 - t^2/48 + t^4/3840``
    near 0.
    """
    _check_last("axis_angle", axis_angle, 3)
    t2 = (axis_angle * axis_angle).sum(-1)
    small = t2 < _SMALL_ANGLE_SQ
    t = torch.where(small, torch.ones_like(t2), t2).sqrt()
    half = torch.where(small, 0.5 - t2 / 48.0 + t2 * t2 / 3840.0, torch.sin(0.5 * t) / t)
    w = torch.where(small, 1.0 - t2 / 8.0 + t2 * t2 / 384.0, torch.cos(0.5 * t))
    return torch.cat([w[..., None], axis_angle * half[..., None]], dim=-1)


def quaternion_to_axis_angle(quaternion: torch.Tensor) -> torch.Tensor:
    """Unit quaternion ``(..., 4)`` ``(w, x, y, z)`` -> axis-angle ``(..., 3)`` with ``|.| <= pi``.

    The quaternion is first flipped to ``w >= 0`` (same rotation) and normalised. With
    ``n = |(x, y, z)| = sin(t/2)``: ``t = 2 atan2(n, w)`` and the result is ``(t / n) (x, y, z)``;
    for small ``n`` the factor uses ``t/n = (2/w)(1 - n^2/(3w^2) + n^4/(5w^4))``.
    """
    _check_last("quaternion", quaternion, 4)
    q = _normalize(quaternion)
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    n2 = (v * v).sum(-1)
    small = n2 < _SMALL_ANGLE_SQ
    n = torch.where(small, torch.ones_like(n2), n2).sqrt()
    w_safe = torch.where(small, w, torch.ones_like(w))  # w ~ 1 on the small branch
    x2 = n2 / (w_safe * w_safe)
    factor = torch.where(
        small,
        2.0 / w_safe * (1.0 - x2 / 3.0 + x2 * x2 / 5.0),
        2.0 * torch.atan2(n, w) / n,
    )
    return v * factor[..., None]


def _normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    n2 = (x * x).sum(-1, keepdim=True)
    return x / n2.clamp_min(eps * eps).sqrt()


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """Quaternion ``(..., 4)`` ``(w, x, y, z)`` -> rotation matrix ``(..., 3, 3)``.

    The quaternion is normalised first (so any non-zero 4-vector is accepted)::

        R = [[1-2(y²+z²), 2(xy-wz),   2(xz+wy)],
             [2(xy+wz),   1-2(x²+z²), 2(yz-wx)],
             [2(xz-wy),   2(yz+wx),   1-2(x²+y²)]]
    """
    _check_last("quaternion", quaternion, 4)
    w, x, y, z = _normalize(quaternion).unbind(-1)
    m = torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return m.reshape(*quaternion.shape[:-1], 3, 3)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``(..., 3, 3)`` -> unit quaternion ``(..., 4)`` ``(w, x, y, z)``, ``w >= 0``.

    Shepperd's method: the four squared magnitudes ``4w² = 1 + tr R``, ``4x² = 1 + R00 - R11 - R22``
    (etc.) are computed, and the components are recovered from the largest one (dividing by the
    best-conditioned denominator), which is stable for every rotation including ``theta = pi``.
    """
    _check_matrix("matrix", matrix)
    m = matrix
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    sq = torch.stack(
        [
            1.0 + m00 + m11 + m22,
            1.0 + m00 - m11 - m22,
            1.0 - m00 + m11 - m22,
            1.0 - m00 - m11 + m22,
        ],
        dim=-1,
    )
    # 2|q_i| for each candidate; clamp keeps sqrt's gradient finite on the unused branches.
    two_abs = sq.clamp_min(0.1).sqrt()
    # Candidate quaternions (each scaled by 2|q_i|, i.e. un-normalised): row i assumes q_i largest.
    cands = torch.stack(
        [
            torch.stack([sq[..., 0], m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, sq[..., 1], m10 + m01, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m10 + m01, sq[..., 2], m12 + m21], dim=-1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, sq[..., 3]], dim=-1),
        ],
        dim=-2,
    ) / (2.0 * two_abs[..., None])
    best = sq.argmax(dim=-1)
    idx = best[..., None, None].expand(*best.shape, 1, 4)
    q = cands.gather(-2, idx).squeeze(-2)
    q = _normalize(q)
    return torch.where(q[..., :1] < 0, -q, q)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``(..., 3, 3)`` -> axis-angle ``(..., 3)`` with angle in ``[0, pi]``.

    Goes through :func:`matrix_to_quaternion` and :func:`quaternion_to_axis_angle`, which are
    accurate at every angle (the direct ``arccos`` formula is not, near 0 and pi). At exactly
    ``pi`` the axis sign is arbitrary (both are the same rotation).
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``a * b`` of quaternions ``(..., 4)`` ``(w, x, y, z)``.

    ``quaternion_to_matrix(a * b) == quaternion_to_matrix(a) @ quaternion_to_matrix(b)``.
    """
    _check_last("a", a, 4)
    _check_last("b", b, 4)
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def rotation_6d_to_matrix(r6: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """6D representation ``(..., 6)`` -> rotation matrix ``(..., 3, 3)`` (Zhou et al. 2019).

    ``r6 = (a1, a2)`` are the (unnormalised) first two columns. Gram-Schmidt:
    ``b1 = a1/|a1|``, ``b2 = normalize(a2 - (b1.a2) b1)``, ``b3 = b1 x b2``, ``R = [b1 b2 b3]``.
    """
    _check_last("r6", r6, 6)
    a1, a2 = r6[..., :3], r6[..., 3:]
    b1 = _normalize(a1, eps)
    b2 = _normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, eps)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``(..., 3, 3)`` -> 6D ``(..., 6)``: its first two columns concatenated."""
    _check_matrix("matrix", matrix)
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


def _axis_rotation(axis: str, angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == "X":
        flat = (one, zero, zero, zero, c, -s, zero, s, c)
    elif axis == "Y":
        flat = (c, zero, s, zero, one, zero, -s, zero, c)
    else:
        flat = (c, -s, zero, s, c, zero, zero, zero, one)
    return torch.stack(flat, dim=-1).reshape(*angle.shape, 3, 3)


def _check_convention(convention: str) -> str:
    conv = convention.upper() if isinstance(convention, str) else ""
    if (
        len(conv) != 3
        or any(c not in "XYZ" for c in conv)
        or conv[0] == conv[1]
        or conv[1] == conv[2]
    ):
        raise InvalidInput(
            f"Euler convention must be 3 letters from X, Y, Z with no two consecutive equal "
            f"(e.g. 'XYZ', 'YXZ', 'ZYZ'), got {convention!r}"
        )
    return conv


def euler_angles_to_matrix(angles: torch.Tensor, convention: str = "XYZ") -> torch.Tensor:
    """Euler angles ``(..., 3)`` in radians -> rotation matrix ``(..., 3, 3)``.

    ``R = R_{c0}(angles[..., 0]) @ R_{c1}(angles[..., 1]) @ R_{c2}(angles[..., 2])`` for
    ``convention = c0 c1 c2`` (e.g. ``"XYZ"``), with the elementary rotations
    ``R_X(a) = [[1,0,0],[0,c,-s],[0,s,c]]``, ``R_Y(a) = [[c,0,s],[0,1,0],[-s,0,c]]``,
    ``R_Z(a) = [[c,-s,0],[s,c,0],[0,0,1]]``.
    """
    _check_last("angles", angles, 3)
    conv = _check_convention(convention)
    mats = [_axis_rotation(c, a) for c, a in zip(conv, angles.unbind(-1))]
    return mats[0] @ mats[1] @ mats[2]


def matrix_to_euler_angles(matrix: torch.Tensor, convention: str = "XYZ") -> torch.Tensor:
    """Inverse of :func:`euler_angles_to_matrix`: ``(..., 3, 3)`` -> angles ``(..., 3)``.

    For Tait-Bryan conventions (three different axes) the middle angle is in
    ``[-pi/2, pi/2]``; for proper Euler conventions (first == last axis, e.g. ``"ZYZ"``) it is in
    ``[0, pi]``. The others are in ``(-pi, pi]``. At gimbal lock (middle angle ``±pi/2``, resp.
    ``0``/``pi``) only the sum or difference of the outer angles is determined; a valid
    decomposition is still returned.
    """
    _check_matrix("matrix", matrix)
    conv = _check_convention(convention)
    ax = {"X": 0, "Y": 1, "Z": 2}
    i, j, k = ax[conv[0]], ax[conv[1]], ax[conv[2]]
    m = matrix
    if i != k:  # Tait-Bryan: R = R_i(a) R_j(b) R_k(c)
        # sign of the permutation (i, j, k): +1 for cyclic XYZ order
        sgn = 1.0 if (j - i) % 3 == 1 else -1.0
        # R[i, k] = sgn * sin(b)
        b = torch.asin((sgn * m[..., i, k]).clamp(-1.0, 1.0))
        a = torch.atan2(-sgn * m[..., j, k], m[..., k, k])
        c = torch.atan2(-sgn * m[..., i, j], m[..., i, i])
        return torch.stack([a, b, c], dim=-1)
    # proper Euler: R = R_i(a) R_j(b) R_i(c); l is the remaining axis
    l_ = 3 - i - j
    sgn = 1.0 if (j - i) % 3 == 1 else -1.0
    b = torch.acos(m[..., i, i].clamp(-1.0, 1.0))
    a = torch.atan2(m[..., j, i], -sgn * m[..., l_, i])
    c = torch.atan2(m[..., i, j], sgn * m[..., i, l_])
    return torch.stack([a, b, c], dim=-1)


def yaw_pitch_roll_to_matrix(ypr: torch.Tensor, degrees: bool = False) -> torch.Tensor:
    """Head pose ``ypr (..., 3)`` = (yaw, pitch, roll) -> rotation ``(..., 3, 3)``.

    Camera axes (OpenCV): yaw about y, pitch about x, roll about z, composed
    ``R = R_y(yaw) @ R_x(pitch) @ R_z(roll)`` (Euler convention ``"YXZ"``). With facelab's pose
    convention ``x_cam = R @ FLIP @ x_model + t``, each angle is a right-handed rotation about
    the named *camera* axis (note the camera's y points down). ``degrees=True`` takes and
    :func:`matrix_to_yaw_pitch_roll` returns degrees.
    """
    _check_last("ypr", ypr, 3)
    if degrees:
        ypr = ypr * (math.pi / 180.0)
    return euler_angles_to_matrix(ypr, "YXZ")


def matrix_to_yaw_pitch_roll(matrix: torch.Tensor, degrees: bool = False) -> torch.Tensor:
    """Inverse of :func:`yaw_pitch_roll_to_matrix`: ``(..., 3, 3)`` -> (yaw, pitch, roll) ``(..., 3)``.

    Pitch is in ``[-pi/2, pi/2]``; yaw and roll in ``(-pi, pi]``.
    """
    out = matrix_to_euler_angles(matrix, "YXZ")
    return out * (180.0 / math.pi) if degrees else out


def geodesic_distance(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Angle in radians ``(...)`` of the relative rotation ``r1^T r2`` between ``(..., 3, 3)`` matrices.

    ``angle = 2 atan2(|v|, |w|)`` of the relative quaternion, accurate at 0 and pi (unlike
    ``arccos((tr - 1)/2)``).
    """
    _check_matrix("r1", r1)
    _check_matrix("r2", r2)
    q = matrix_to_quaternion(r1.transpose(-1, -2) @ r2)
    return 2.0 * torch.atan2(q[..., 1:].norm(dim=-1), q[..., 0].abs())


def random_rotations(
    n: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``n`` rotation matrices ``(n, 3, 3)`` uniformly distributed on SO(3).

    Normalised standard-normal 4-vectors are uniform unit quaternions (Shoemake).
    """
    q = torch.randn(n, 4, generator=generator, dtype=dtype, device=device)
    return quaternion_to_matrix(q)
