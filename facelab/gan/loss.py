r"""GAN losses: the non-saturating logistic game and the (lazy) R1 penalty.

With :math:`D` producing logits and :math:`\sigma` the logistic function,

.. math::

    L_D = \mathbb{E}_x[\operatorname{softplus}(-D(x))] + \mathbb{E}_z[\operatorname{softplus}(D(G(z)))]

    L_G = \mathbb{E}_z[\operatorname{softplus}(-D(G(z)))]

:math:`L_D` is the cross-entropy of a real/fake classifier. The *minimax* generator loss
:math:`-L_D` has gradient :math:`\sigma(D(G(z)))\nabla D`, which vanishes exactly when the
generator is bad (``D(G(z)) << 0``, early in training); the *non-saturating* :math:`L_G` has
gradient :math:`-(1-\sigma(D(G(z))))\nabla D`, large when the generator is bad (Goodfellow et
al. 2014).

R1 (Mescheder et al. 2018) penalises the discriminator's gradient on real data,
:math:`\frac{\gamma}{2}\mathbb{E}_x\|\nabla_x D(x)\|^2`, which makes the game converge
locally. *Lazy* regularisation (StyleGAN2) evaluates it only every ``k`` steps and multiplies it
by ``k`` so its average strength is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["d_logistic_loss", "g_nonsaturating_loss", "lazy_r1_weight", "r1_penalty"]


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``mean softplus(-D(x)) + mean softplus(D(G(z)))`` (scalar)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """``mean softplus(-D(G(z)))`` (scalar)."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_img: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """``mean_b ||d D(x_b) / d x_b||^2`` (scalar, differentiable w.r.t. D's parameters).

    ``real_img`` must have ``requires_grad=True`` and ``real_logits = D(real_img)``. The
    gradient of the *sum* of the logits gives each sample's own input gradient (samples do not
    interact in D except through minibatch std, which StyleGAN2 also ignores here). Multiply by
    ``gamma / 2`` (and the lazy interval) yourself.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real_img, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean()


def lazy_r1_weight(step: int, gamma: float, interval: int) -> float:
    """The weight of :func:`r1_penalty` at training step ``step`` under lazy regularisation:
    ``interval * gamma / 2`` every ``interval`` steps (``step % interval == 0``), else 0
    (also 0 when ``gamma <= 0`` or ``interval <= 0``: no R1)."""
    if gamma <= 0 or interval <= 0 or step % interval:
        return 0.0
    return 0.5 * gamma * interval
