r"""GAR's consistency losses (the terms the paper adds to the adversarial game).

With :math:`A` the frozen auxiliary estimator (:mod:`facelab.methods.gar.aux`) and
:math:`G(n, z)` the generator:

- **normal consistency** -- the image must show the geometry it was given:
  :math:`L_n = \operatorname{mean}_{\text{mask}}\,[1 - \langle A_n(G(n, z)), n \rangle]`;
- **identity consistency** -- two renders of one person (same identity and :math:`z`,
  different expression and pose) keep their identity features:
  :math:`L_{id} = \|A_{id}(G(n_a, z)) - A_{id}(G(n_b, z))\|^2`;
- **landmark consistency** -- two renders of one geometry (same :math:`n`, different
  :math:`z`: other skin, light, background) keep their landmarks:
  :math:`L_{lm} = \|A_{lm}(G(n, z_1)) - A_{lm}(G(n, z_2))\|^2 / R^2`.

Weights (``GARTrainConfig``): adversarial 1, normal 1, identity 0.1, landmark 10 (the landmark
term is in squared crop fractions, about 1e-3 for a 1-pixel error at 32 px; the identity
features have unit prior variance). They were chosen so each consistency term starts at a
fraction of the adversarial loss (about 0.1-0.7), not tuned further.
"""

from __future__ import annotations

import torch

__all__ = ["identity_consistency", "landmark_consistency", "normal_consistency"]


def normal_consistency(
    pred_normals: torch.Tensor, normals: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``mean over mask of (1 - <pred, n>)``; ``pred, n (B, 3, R, R)`` unit, ``mask (B, 1, R, R)``."""
    m = mask.to(normals.dtype)
    cos = (pred_normals * normals).sum(1, keepdim=True)
    return ((1 - cos) * m).sum() / m.sum().clamp(min=1)


def identity_consistency(feat_a: torch.Tensor, feat_b: torch.Tensor) -> torch.Tensor:
    """``mean_b ||f_a - f_b||^2 / K`` for identity features ``(B, K)`` of paired renders."""
    return (feat_a - feat_b).square().mean()


def landmark_consistency(lm_a: torch.Tensor, lm_b: torch.Tensor, size: int) -> torch.Tensor:
    """``mean over points of ||p_a - p_b||^2 / size^2`` for landmarks ``(B, 68, 2)`` in pixels."""
    return ((lm_a - lm_b) / float(size)).square().sum(-1).mean()
