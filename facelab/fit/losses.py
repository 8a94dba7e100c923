"""Loss terms of analysis-by-synthesis fitting (plain functions, batch-first).

* :func:`landmark_loss` — mean squared 2D landmark distance, normalised by the face size so
  it is resolution independent: ``L = mean_j w_j |p_j - x_j|^2 / d^2``.
* :func:`photometric_loss` — a robust per-pixel colour distance averaged over a mask,
  ``L = sum_p m_p rho(|I_p - R_p|) / sum_p m_p`` with the Charbonnier penalty
  ``rho(r) = sqrt(r^2 + eps^2) - eps`` (a smooth L1: outliers such as hair, glasses or a
  hand cost linearly, not quadratically) or the L2,1 norm of Deep3DFaceRecon
  (``rho = |r|_2`` per pixel over the colour channels, ``robust="l21"``).
* :func:`gaussian_prior` — ``||w||^2 / K`` for standard-normal coefficients.
* :func:`sh_prior` — keeps the lighting near white ambient: penalises colour differences
  between channels and the non-ambient bands.
"""

from __future__ import annotations

import torch

from ..errors import InvalidInput


def face_size(landmarks2d: torch.Tensor) -> torch.Tensor:
    """``(B,)`` sqrt of the bounding-box area of ``(B, N, 2)`` landmarks (pixels)."""
    span = landmarks2d.amax(1) - landmarks2d.amin(1)
    return (span[:, 0] * span[:, 1]).clamp_min(1e-6).sqrt()


def landmark_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    normalizer: torch.Tensor | None = None,
) -> torch.Tensor:
    """Normalised squared landmark error, averaged over the batch.

    Args:
        pred, target: ``(B, N, 2)`` pixels.
        weights: optional ``(B, N)`` or ``(N,)`` per-landmark weights (0 = ignore).
        normalizer: ``(B,)`` face size ``d``; default :func:`face_size` of ``target``.

    Returns:
        scalar ``mean_b sum_j w_j |p_j - x_j|^2 / (d_b^2 sum_j w_j)``.
    """
    if pred.shape != target.shape:
        raise InvalidInput(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    d = face_size(target) if normalizer is None else normalizer
    e = (pred - target).square().sum(-1)  # (B, N)
    if weights is None:
        w = torch.ones_like(e)
    else:
        w = weights.to(e.dtype).expand_as(e)
    per = (e * w).sum(1) / w.sum(1).clamp_min(1e-12) / d.square()
    return per.mean()


def charbonnier(r: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """``sqrt(r^2 + eps^2) - eps`` elementwise: ~``r^2 / (2 eps)`` near 0, ~``|r|`` beyond."""
    return (r.square() + eps * eps).sqrt() - eps


def photometric_loss(
    rendered: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    robust: str = "charbonnier",
    eps: float = 0.01,
) -> torch.Tensor:
    """Robust colour distance over a mask.

    Args:
        rendered, target: ``(B, H, W, 3)`` channel-last colours (render buffers).
        mask: ``(B, H, W)`` bool or float weights (rendered face ∩ skin ∩ valid).
        robust: ``"charbonnier"`` (per channel), ``"l21"`` (Euclidean norm over the colour per
            pixel, Deep3DFaceRecon) or ``"l2"`` (squared error).
        eps: Charbonnier / l21 smoothing.

    Returns:
        scalar, the masked mean over pixels (averaged over the batch's pixels).
    """
    r = rendered - target
    if robust == "charbonnier":
        per = charbonnier(r, eps).sum(-1)
    elif robust == "l21":
        per = (r.square().sum(-1) + eps * eps).sqrt() - eps
    elif robust == "l2":
        per = r.square().sum(-1)
    else:
        raise InvalidInput(f"robust must be 'charbonnier', 'l21' or 'l2', got {robust!r}")
    m = mask.to(per.dtype)
    return (per * m).sum() / m.sum().clamp_min(1.0)


def gaussian_prior(w: torch.Tensor) -> torch.Tensor:
    """``mean_b ||w_b||^2`` — the negative log of a standard-normal prior (up to constants)."""
    if w.numel() == 0:
        return w.new_zeros(())
    return w.square().sum(-1).mean()


def sh_prior(light: torch.Tensor) -> torch.Tensor:
    """Lighting regulariser for ``(B, 9, 3)`` SH: channel spread + non-ambient energy,
    relative to the ambient term: ``(|L - mean_c L|^2 + 0.1 |L_{1..8}|^2) / L_00^2``."""
    grey = light.mean(-1, keepdim=True)
    amb = light[:, 0].mean(-1).abs().clamp_min(1e-3)
    spread = (light - grey).square().sum((1, 2))
    bands = light[:, 1:].square().sum((1, 2))
    return ((spread + 0.1 * bands) / amb.square()).mean()


__all__ = [
    "charbonnier",
    "face_size",
    "gaussian_prior",
    "landmark_loss",
    "photometric_loss",
    "sh_prior",
]
