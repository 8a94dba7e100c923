"""GANFit's energy, term by term (Gecer et al. 2019, Sec. 3.3), as plain functions.

.. math::
    E = \\lambda_{id} E_{id} + \\lambda_{\\hat{id}} E_{\\hat{id}} + \\lambda_{con} E_{con}
      + \\lambda_{pix} E_{pix} + \\lambda_{lan} E_{lan}
      + \\lambda_{s} \\lVert p_s \\rVert^2 + \\lambda_{e} \\lVert p_e \\rVert^2
      + \\lambda_{t} \\lVert p_t \\rVert^2_{\\Sigma}

* :func:`identity_loss` -- :math:`1 - \\cos(F(I), F(I_R))` of face-recognition embeddings of
  the photo and the render (and of the randomised second render :math:`\\hat I_R`: the same
  function, other inputs);
* :func:`content_loss` -- distances of intermediate feature maps of the same network,
  each normalised by the photo's feature energy so every layer counts alike;
* :func:`pixel_loss` -- mean absolute colour difference inside the face mask;
* :func:`landmark_term` -- Part I's normalised landmark loss
  (:func:`facelab.fit.losses.landmark_loss`) with the detector calibration's weights;
* :func:`latent_prior` -- Mahalanobis norm of the texture latent around its mean
  (diagonal, per-coordinate std of the mapping network's outputs); shape and expression
  priors are Part I's (:func:`facelab.fit.losses.gaussian_prior`, :func:`blendshape_prior`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...errors import InvalidInput
from ...fit.losses import gaussian_prior, landmark_loss

__all__ = [
    "CONTENT_LAYERS",
    "blendshape_prior",
    "content_loss",
    "gaussian_prior",
    "identity_loss",
    "landmark_term",
    "latent_prior",
    "pixel_loss",
]

#: dlib-ResNet maps the content loss compares (35, 17 and 8 px for a 150 px chip).
CONTENT_LAYERS = ("level4", "level3", "level2")


def identity_loss(emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean_b (1 - cos(emb_b, target_b))`` for ``(B, D)`` embeddings (0 = same direction,
    1 = orthogonal, 2 = opposite). ``target`` is usually the photo's, without gradient."""
    if emb.shape != target.shape or emb.dim() != 2:
        raise InvalidInput(
            f"embeddings must both be (B, D), got {tuple(emb.shape)}, {tuple(target.shape)}"
        )
    cos = torch.nn.functional.cosine_similarity(emb, target.to(emb), dim=-1, eps=1e-12)
    return (1.0 - cos).mean()


def content_loss(
    feats: dict[str, torch.Tensor],
    target: dict[str, torch.Tensor],
    layers: Sequence[str] = CONTENT_LAYERS,
) -> torch.Tensor:
    """``sum_l mean((F_l(I_R) - F_l(I))^2) / mean(F_l(I)^2)`` over ``layers``.

    Each layer's squared distance is divided by the photo's mean squared activation, so the
    loss is scale-free per layer (0 = identical maps; 1 = as far as an all-zero map).
    """
    total = None
    for name in layers:
        if name not in feats or name not in target:
            raise InvalidInput(f"feature map {name!r} missing; have {sorted(feats)}")
        a, b = feats[name], target[name].to(feats[name])
        if a.shape != b.shape:
            raise InvalidInput(f"{name}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
        term = (a - b).square().mean() / b.square().mean().clamp_min(1e-12)
        total = term if total is None else total + term
    if total is None:
        raise InvalidInput("content_loss needs at least one layer")
    return total


def pixel_loss(render: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over the pixels in ``mask``: ``sum m |R - I| / (3 sum m)``.

    ``render``, ``target``: ``(B, H, W, 3)``; ``mask``: ``(B, H, W)`` bool or weights.
    """
    if render.shape != target.shape or render.shape[:-1] != mask.shape:
        raise InvalidInput(
            f"render {tuple(render.shape)}, target {tuple(target.shape)} and mask "
            f"{tuple(mask.shape)} do not match"
        )
    m = mask.to(render.dtype)
    return ((render - target).abs().sum(-1) * m).sum() / (3.0 * m.sum().clamp_min(1.0))


def landmark_term(
    projected: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Part I's landmark term (:func:`facelab.fit.losses.landmark_loss`):
    ``mean_b sum_j w_j |p_j - x_j|^2 / (d^2 sum_j w_j)`` with ``d`` the face size."""
    return landmark_loss(projected, target, weights)


def latent_prior(w: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``mean_b sum_k ((w_bk - mean_k) / std_k)^2 / D`` for ``w (B, D)`` or ``(B, L, D)``
    (W+: averaged over layers). 1 on average for a sample of the mapping network."""
    z = (w - mean.to(w)) / std.to(w).clamp_min(1e-8)
    return z.square().mean(-1).mean()


def blendshape_prior(e: torch.Tensor) -> torch.Tensor:
    """``mean_b ||e_b||^2`` for blendshape weights (kept in [0, 1] by projection)."""
    return gaussian_prior(e)
