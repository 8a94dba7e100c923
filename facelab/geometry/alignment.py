"""Rigid and similarity alignment of point sets (Umeyama / orthogonal Procrustes).

Given corresponding points ``x_i`` (source) and ``y_i`` (target) in D = 2 or 3 dimensions and
weights ``w_i >= 0``, find ``s, R, t`` minimising

.. math:: \\sum_i w_i \\, \\| y_i - (s R x_i + t) \\|^2, \\qquad R^T R = I, \\; \\det R = +1.

Umeyama (1991): with weighted means ``mu_x, mu_y``, centred points, the weighted
cross-covariance ``S = sum_i w_i (y_i - mu_y)(x_i - mu_x)^T / sum w`` and its SVD ``S = U Σ V^T``,

* ``R = U E V^T`` with ``E = diag(1, ..., 1, sign(det U det V))`` -- ``E`` turns a best
  *reflection* into the best proper rotation;
* ``s = tr(Σ E) / σ_x^2`` with ``σ_x^2 = sum_i w_i |x_i - mu_x|^2 / sum w`` (``s = 1`` for a
  rigid fit);
* ``t = mu_y - s R mu_x``.

Everything is batched over leading dimensions and differentiable (through ``torch.linalg.svd``;
gradients are ill-defined when two singular values coincide, e.g. for perfectly symmetric
point sets).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..errors import InvalidInput

__all__ = [
    "SimilarityTransform",
    "align_points",
    "apply_similarity",
    "procrustes",
    "umeyama",
]


class SimilarityTransform(NamedTuple):
    """``y = scale * R @ x + translation``; unpacks as ``(scale, rotation, translation)``.

    ``scale (...)``, ``rotation (..., D, D)``, ``translation (..., D)``.
    """

    scale: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor

    def apply(self, points: torch.Tensor) -> torch.Tensor:
        """Transform ``points (..., N, D)``."""
        return apply_similarity(points, self.scale, self.rotation, self.translation)

    def inverse(self) -> SimilarityTransform:
        """``x = (1/s) R^T (y - t)``."""
        rt = self.rotation.transpose(-1, -2)
        inv_s = 1.0 / self.scale
        t = -inv_s[..., None] * (rt @ self.translation[..., None])[..., 0]
        return SimilarityTransform(inv_s, rt, t)


def _check_points(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None) -> None:
    for name, x in (("src", src), ("dst", dst)):
        if not isinstance(x, torch.Tensor):
            raise InvalidInput(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 2 or x.shape[-1] not in (2, 3):
            raise InvalidInput(
                f"{name} must have shape (..., N, 2) or (..., N, 3), got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise InvalidInput(f"{name} must be floating point, got {x.dtype}")
        if not bool(torch.isfinite(x).all()):
            raise InvalidInput(
                f"{name} contains NaN/Inf; drop invalid points or give them weight 0"
            )
    if src.shape[-2:] != dst.shape[-2:]:
        raise InvalidInput(
            f"src and dst must have the same number of points and dimension, got "
            f"{tuple(src.shape)} and {tuple(dst.shape)}"
        )
    d, n = src.shape[-1], src.shape[-2]
    if n < d:
        raise InvalidInput(f"need at least {d} corresponding points for a {d}-D alignment, got {n}")
    if weights is not None:
        if not isinstance(weights, torch.Tensor) or weights.shape[-1:] != (n,):
            shape = (
                tuple(weights.shape)
                if isinstance(weights, torch.Tensor)
                else type(weights).__name__
            )
            raise InvalidInput(f"weights must have shape (..., {n}), got {shape}")
        if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
            raise InvalidInput("weights must be finite and >= 0")
        if bool((weights.sum(-1) <= 0).any()):
            raise InvalidInput("weights sum to zero: give at least D points a positive weight")


def umeyama(
    src: torch.Tensor,
    dst: torch.Tensor,
    weights: torch.Tensor | None = None,
    with_scale: bool = True,
    eps: float = 1e-12,
) -> SimilarityTransform:
    """Least-squares ``(s, R, t)`` with ``dst ≈ s R src + t`` (Umeyama 1991), ``det R = +1``.

    Args:
        src, dst: ``(..., N, D)`` corresponding points, ``D`` in {2, 3}; leading dims broadcast.
        weights: optional ``(..., N)`` non-negative per-point weights.
        with_scale: ``False`` for a rigid fit (``s = 1``).

    Returns:
        :class:`SimilarityTransform` ``(scale (...), rotation (..., D, D), translation (..., D))``.

    Raises:
        InvalidInput: bad shapes, NaN, negative weights, fewer than D points, or a degenerate
            source (all points equal) when ``with_scale``.
    """
    _check_points(src, dst, weights)
    if weights is None:
        w = torch.ones(src.shape[:-1], dtype=src.dtype, device=src.device)
    else:
        w = weights.to(src.dtype)
    batch = torch.broadcast_shapes(src.shape[:-2], dst.shape[:-2], w.shape[:-1])
    n, d = src.shape[-2], src.shape[-1]
    src = src.expand(*batch, n, d)
    dst = dst.expand(*batch, n, d)
    w = w.expand(*batch, n)
    wn = w / w.sum(-1, keepdim=True)  # (..., N)
    mu_x = (wn[..., None] * src).sum(-2)
    mu_y = (wn[..., None] * dst).sum(-2)
    xc = src - mu_x[..., None, :]
    yc = dst - mu_y[..., None, :]
    cov = (yc * wn[..., None]).transpose(-1, -2) @ xc  # (..., D, D) = sum w y x^T
    u, sig, vh = torch.linalg.svd(cov)
    det = torch.linalg.det(u) * torch.linalg.det(vh)
    e = torch.ones_like(sig)
    e[..., -1] = torch.where(det < 0, -torch.ones_like(det), torch.ones_like(det))
    rot = u @ (e[..., :, None] * vh)
    if with_scale:
        var_x = (wn * (xc * xc).sum(-1)).sum(-1)
        if bool((var_x <= eps).any()):
            raise InvalidInput(
                "src points are all at the same place (zero spread): the scale is undefined; "
                "use with_scale=False or more distinct points"
            )
        scale = (sig * e).sum(-1) / var_x
    else:
        scale = torch.ones(batch, dtype=src.dtype, device=src.device)
    t = mu_y - scale[..., None] * (rot @ mu_x[..., None])[..., 0]
    return SimilarityTransform(scale, rot, t)


def procrustes(
    src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None = None
) -> SimilarityTransform:
    """Rigid alignment (``scale = 1``): :func:`umeyama` with ``with_scale=False``."""
    return umeyama(src, dst, weights, with_scale=False)


def apply_similarity(
    points: torch.Tensor, scale: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor
) -> torch.Tensor:
    """``y = s R x + t`` for ``points (..., N, D)``, ``scale (...)`` (or float),
    ``rotation (..., D, D)``, ``translation (..., D)``."""
    if not isinstance(points, torch.Tensor) or points.dim() < 2:
        raise InvalidInput("points must be a tensor of shape (..., N, D)")
    scale = torch.as_tensor(scale, dtype=points.dtype, device=points.device)
    return (
        scale[..., None, None] * (points @ rotation.transpose(-1, -2)) + translation[..., None, :]
    )


def align_points(
    src: torch.Tensor,
    dst: torch.Tensor,
    weights: torch.Tensor | None = None,
    with_scale: bool = True,
) -> tuple[torch.Tensor, SimilarityTransform]:
    """Align ``src`` onto ``dst``; returns ``(aligned_src (..., N, D), transform)``."""
    tf = umeyama(src, dst, weights, with_scale=with_scale)
    return tf.apply(src), tf
