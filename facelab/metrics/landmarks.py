"""Landmark error: the normalised mean error (NME) of 2D landmarks.

For one image with predicted points :math:`\\hat p_i` and ground truth :math:`p_i`
(:math:`i = 1..N`),

.. math::  \\mathrm{NME} = \\frac{1}{N d} \\sum_i \\lVert \\hat p_i - p_i \\rVert_2

where the normaliser :math:`d` is

* ``"inter_ocular"``: distance between the two eye centres (mean of iBUG points 36–41 and
  42–47), the 300-W "inter-pupil" convention;
* ``"outer_eye"``: distance between the outer eye corners 36 and 45 (300-W / menpo
  "inter-ocular" convention, larger than the eye-centre distance, so smaller NMEs);
* ``"bbox"``: :math:`\\sqrt{w h}` of the ground-truth points' bounding box (works for any N).
"""

from __future__ import annotations

import torch

from .._checks import check_finite, check_shape
from ..errors import InvalidInput

NORMALIZATIONS = ("inter_ocular", "outer_eye", "bbox")


def landmark_normalizer(gt: torch.Tensor, normalization: str = "inter_ocular") -> torch.Tensor:
    """The per-image normaliser ``d`` of :func:`landmark_nme`.

    Args:
        gt: ``(B, N, 2)`` ground-truth landmarks (``N == 68`` for the eye normalisations).
        normalization: one of ``"inter_ocular"``, ``"outer_eye"``, ``"bbox"``.

    Returns:
        ``(B,)`` positive distances, in pixels.
    """
    check_shape("gt", gt, (None, None, 2))
    if normalization not in NORMALIZATIONS:
        raise InvalidInput(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if normalization in ("inter_ocular", "outer_eye") and gt.shape[1] != 68:
        raise InvalidInput(
            f"normalization={normalization!r} needs the 68 iBUG landmarks, got {gt.shape[1]} "
            "points; use normalization='bbox' for other layouts"
        )
    if normalization == "inter_ocular":
        d = (gt[:, 36:42].mean(1) - gt[:, 42:48].mean(1)).norm(dim=-1)
    elif normalization == "outer_eye":
        d = (gt[:, 36] - gt[:, 45]).norm(dim=-1)
    else:
        span = gt.amax(1) - gt.amin(1)
        d = (span[:, 0] * span[:, 1]).clamp_min(0).sqrt()
    if bool((d <= 0).any()):
        raise InvalidInput(
            f"the {normalization} normaliser is zero for some image: the ground-truth landmarks "
            "are degenerate (all points coincide?)"
        )
    return d


def landmark_nme(
    pred: torch.Tensor,
    gt: torch.Tensor,
    normalization: str = "inter_ocular",
    visible: torch.Tensor | None = None,
) -> torch.Tensor:
    """Normalised mean landmark error per image (see the module docstring for the formula).

    Args:
        pred: ``(B, N, 2)`` predicted landmarks in pixels.
        gt: ``(B, N, 2)`` ground truth in pixels.
        normalization: ``"inter_ocular"`` (eye centres), ``"outer_eye"`` (corners 36–45) or
            ``"bbox"`` (sqrt of the ground-truth box area).
        visible: optional ``(B, N)`` bool mask; only those points are averaged.

    Returns:
        ``(B,)`` NME as a fraction (multiply by 100 for percent).
    """
    check_shape("pred", pred, (None, None, 2))
    check_shape("gt", gt, tuple(pred.shape))
    check_finite("pred", pred)
    check_finite("gt", gt)
    d = landmark_normalizer(gt, normalization)
    err = (pred - gt).norm(dim=-1)  # (B, N)
    if visible is None:
        mean = err.mean(1)
    else:
        check_shape("visible", visible, tuple(err.shape))
        w = visible.to(err.dtype)
        if bool((w.sum(1) == 0).any()):
            raise InvalidInput("visible marks no landmark as visible for some image")
        mean = (err * w).sum(1) / w.sum(1)
    return mean / d


__all__ = ["NORMALIZATIONS", "landmark_nme", "landmark_normalizer"]
