"""Lights as functions on the sphere, and their order-2 spherical-harmonics (SH) coefficients.

The fitter's image model shades with ``S(n) = sum_k Y_k(n) L_k`` (9 SH basis functions
``Y_k`` of :func:`facelab.render.sh_basis`, coefficients ``L (9, 3)`` per RGB channel). The
world draws lights as functions ``E(n)`` (``E_env`` a quadratic in ``n``; ``E_key = I c max(0,
<n, l>)``, see :mod:`facelab.world.scene`) and converts them with a least-squares fit on a
dense Fibonacci sphere of normals,

.. math::  L^* = \\arg\\min_L \\sum_i \\| Y(n_i) L - E(n_i) \\|^2,

which needs only the basis *function*, so it is correct for whatever normalisation the
renderer's ``sh_basis`` uses. A quadratic ``E`` lies in the span of the order-2 SH, so its fit
is exact; the clamped cosine of a directional light is not (the order-2 fit keeps ~99 % of its
energy; the rest, and the shadow, is part of the world's domain gap).

Rotating a light (multi-view: the light is fixed in the world, the camera moves) is the same
fit of ``E(R^T n)``: order-2 SH are closed under rotation, so that fit is exact too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

BasisFn = Callable[[torch.Tensor], torch.Tensor]
"""``basis(normals (..., 3)) -> (..., 9)``."""


def fibonacci_sphere(
    n: int = 400, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> torch.Tensor:
    """``(n, 3)`` near-uniform unit vectors (golden-angle spiral)."""
    i = torch.arange(n, dtype=dtype, device=device) + 0.5
    z = 1 - 2 * i / n
    r = torch.sqrt((1 - z * z).clamp_min(0))
    phi = math.pi * (3 - math.sqrt(5)) * i
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)


def default_basis() -> BasisFn:
    """The renderer's SH basis function (:func:`facelab.render.sh_basis`)."""
    from ..render import sh_basis

    return sh_basis


def fit_sh(
    values: torch.Tensor, basis: BasisFn | None = None, normals: torch.Tensor | None = None
) -> torch.Tensor:
    """Least-squares SH coefficients of a function sampled on ``normals``.

    Args:
        values: ``(B, N, C)`` samples ``E(n_i)``.
        basis: SH basis function; default :func:`facelab.render.sh_basis`.
        normals: ``(N, 3)`` sample directions; default ``fibonacci_sphere(N)``.

    Returns:
        ``(B, 9, C)`` coefficients (dtype of ``values``).
    """
    basis = basis or default_basis()
    n = values.shape[1]
    normals = (
        fibonacci_sphere(n, values.dtype, values.device)
        if normals is None
        else normals.to(values.device, values.dtype)
    )
    Y = basis(normals)  # (N, 9)
    sol = torch.linalg.lstsq(Y.unsqueeze(0).expand(values.shape[0], -1, -1), values).solution
    return sol


def environment_values(
    normals: torch.Tensor,
    ambient: torch.Tensor,
    sky_dir: torch.Tensor,
    sky: torch.Tensor,
    quad_dir: torch.Tensor,
    quad: torch.Tensor,
) -> torch.Tensor:
    """``E_env(n) = a (1 + s1 <n, d1> + s2 (3 <n, d2>^2 - 1) / 2)``.

    Shapes: ``normals (B, N, 3)``, ``ambient (B, 3)``, ``sky_dir (B, 3)``, ``sky (B,)``,
    ``quad_dir (B, 3)``, ``quad (B,)``. Returns ``(B, N, 3)``.
    """
    c1 = (normals * sky_dir[:, None]).sum(-1)
    c2 = (normals * quad_dir[:, None]).sum(-1)
    s = 1 + sky[:, None] * c1 + quad[:, None] * 0.5 * (3 * c2 * c2 - 1)
    return s[..., None] * ambient[:, None]


def key_values(
    normals: torch.Tensor, key_dir: torch.Tensor, key_color: torch.Tensor
) -> torch.Tensor:
    """``E_key(n) = c max(0, <n, l>)``; ``normals (B, N, 3)``, ``key_dir, key_color (B, 3)``."""
    cos = (normals * key_dir[:, None]).sum(-1).clamp_min(0)
    return cos[..., None] * key_color[:, None]


def sh_of_environment(
    scene_tensors: dict[str, torch.Tensor], basis: BasisFn | None = None, n: int = 400
) -> torch.Tensor:
    """``(B, 9, 3)`` exact SH coefficients of the environments (keys as in
    :func:`environment_values`)."""
    B = scene_tensors["ambient"].shape[0]
    dt = scene_tensors["ambient"].dtype
    dev = scene_tensors["ambient"].device
    normals = fibonacci_sphere(n, dt, dev).unsqueeze(0).expand(B, -1, -1)
    vals = environment_values(
        normals,
        scene_tensors["ambient"],
        scene_tensors["sky_dir"],
        scene_tensors["sky"],
        scene_tensors["quad_dir"],
        scene_tensors["quad"],
    )
    return fit_sh(vals, basis, normals[0])


def sh_of_key(
    key_dir: torch.Tensor, key_color: torch.Tensor, basis: BasisFn | None = None, n: int = 2000
) -> torch.Tensor:
    """``(B, 9, 3)`` best order-2 SH fit of directional key lights (``key_dir, key_color (B, 3)``)."""
    normals = fibonacci_sphere(n, key_dir.dtype, key_dir.device)
    normals = normals.unsqueeze(0).expand(key_dir.shape[0], -1, -1)
    return fit_sh(key_values(normals, key_dir, key_color), basis, normals[0])


def rotate_sh(
    coeffs: torch.Tensor, R: torch.Tensor, basis: BasisFn | None = None, n: int = 200
) -> torch.Tensor:
    """Coefficients of the rotated light ``E'(n) = E(R^T n)``.

    Args:
        coeffs: ``(B, 9, C)`` SH coefficients of ``E``.
        R: ``(B, 3, 3)`` rotation (a direction ``d`` becomes ``R d``).

    Returns:
        ``(B, 9, C)`` — exact (order-2 SH are closed under rotation).
    """
    basis = basis or default_basis()
    dt = coeffs.dtype
    normals = fibonacci_sphere(n, dt, coeffs.device)
    rotated = normals.unsqueeze(0) @ R.to(dt)  # rows: R^T n
    vals = basis(rotated) @ coeffs  # (B, N, C)
    return fit_sh(vals, basis, normals)
