"""Checks for the exercises of chapter 8, "GAR: a learned renderer and its inversion".

The checkers compare the student's function with an inline reference on small float64 inputs
(the normal injection module of ``facelab.methods.gar.renderer``, the normal-consistency loss
of ``facelab.methods.gar.losses``, one gradient step of an L1 inversion), plus analytic
cases. No model files; each runs in well under a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..methods.gar.losses import normal_consistency
from . import exercise
from ._util import F64, as_f64


def _scalar(v: Any) -> float:
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


def _inject_ref(x, n, shared_w, gamma_w, beta_w):
    if n.shape[-2:] != x.shape[-2:]:
        n = F.interpolate(n, size=x.shape[-2:], mode="bilinear", align_corners=False)
    h = F.leaky_relu(F.conv2d(n, shared_w, padding=1), 0.2)
    return x * (1 + F.conv2d(h, gamma_w, padding=1)) + F.conv2d(h, beta_w, padding=1)


@exercise(
    "ch8.normal_injection",
    "the normal injection module (spatially varying scale and bias)",
    hint="resize n to x's size (bilinear, align_corners=False); h = leaky_relu(conv2d(n, "
    "shared_w, padding=1), 0.2); gamma, beta = conv2d(h, gamma_w / beta_w, padding=1); "
    "return x * (1 + gamma) + beta",
)
def check_normal_injection(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(81)
    x = torch.randn(2, 5, 8, 8, generator=g, dtype=F64)
    n = F.normalize(torch.randn(2, 3, 16, 16, generator=g, dtype=F64), dim=1)
    sw = torch.randn(4, 3, 3, 3, generator=g, dtype=F64) * 0.5
    gw = torch.randn(5, 4, 3, 3, generator=g, dtype=F64) * 0.3
    bw = torch.randn(5, 4, 3, 3, generator=g, dtype=F64) * 0.3
    got = as_f64(fn(x, n, sw, gw, bw))
    ref = _inject_ref(x, n, sw, gw, bw)
    assert got.shape == x.shape, f"shape {tuple(got.shape)}, expected x's {tuple(x.shape)}"
    err = float((got - ref).abs().max())
    assert err < 1e-8, f"differs from x * (1 + gamma(n)) + beta(n) by {err:.3g}"
    z = torch.zeros_like(gw)
    same = as_f64(fn(x, n, sw, z, z))
    assert float((same - x).abs().max()) < 1e-12, "gamma = beta = 0 must return x unchanged"
    # per-pixel: changing the normals in one corner must not change the far corner
    n2 = n.clone()
    n2[:, :, :4, :4] = -n2[:, :, :4, :4]
    d = (as_f64(fn(x, n2, sw, gw, bw)) - got).abs()
    assert float(d[..., :2, :2].max()) > 1e-6, "the output must depend on the normals there"
    assert float(d[..., -2:, -2:].max()) < 1e-12, (
        "a 3x3 injection is local: far pixels must not change (is the modulation global?)"
    )
    return 4


@exercise(
    "ch8.normal_consistency",
    "the normal-consistency loss",
    hint="cos = (pred * n).sum(1, keepdim=True); return ((1 - cos) * mask).sum() / mask.sum()",
)
def check_normal_consistency(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(82)
    n = F.normalize(torch.randn(2, 3, 6, 6, generator=g, dtype=F64), dim=1)
    p = F.normalize(torch.randn(2, 3, 6, 6, generator=g, dtype=F64), dim=1)
    m = (torch.rand(2, 1, 6, 6, generator=g, dtype=F64) > 0.4).to(F64)
    got = _scalar(fn(p, n, m))
    ref = float(normal_consistency(p, n, m))
    assert abs(got - ref) < 1e-10, f"expected {ref:.6f}, got {got:.6f}"
    assert abs(_scalar(fn(n, n, m))) < 1e-10, "pred = n must give 0"
    v = _scalar(fn(-n, n, m))
    assert abs(v - 2.0) < 1e-10, f"opposite normals must give 2 (1 - cos 180 deg), got {v:.4f}"
    m1 = torch.zeros_like(m)
    m1[0, 0, 0, 0] = 1
    p1 = n.clone()
    p1[:, :, 1:] = -p1[:, :, 1:]  # wrong everywhere outside the one masked pixel
    v1 = _scalar(fn(p1, n, m1))
    assert abs(v1) < 1e-10, "only pixels inside the mask count (a mean over the mask)"
    return 4


@exercise(
    "ch8.inversion_step",
    "one gradient step of an inversion",
    hint="theta = theta.detach().requires_grad_(True); loss = (render(theta) - target)"
    ".abs().mean(); grad = torch.autograd.grad(loss, theta)[0]; return (theta - lr * grad)"
    ".detach(), float(loss)",
)
def check_inversion_step(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(83)
    A = torch.randn(20, 4, generator=g, dtype=F64)

    def render(theta: torch.Tensor) -> torch.Tensor:
        return torch.tanh(A @ theta)

    true = torch.randn(4, generator=g, dtype=F64)
    target = render(true)
    theta = torch.zeros(4, dtype=F64)
    new, loss = fn(render, target, theta, 0.1)
    new = as_f64(torch.as_tensor(new)).detach()
    loss = _scalar(loss)
    t = theta.clone().requires_grad_(True)
    ref_loss = (render(t) - target).abs().mean()
    (grad,) = torch.autograd.grad(ref_loss, t)
    ref = float(ref_loss.detach())
    assert abs(loss - ref) < 1e-10, (
        f"return the loss before the step: expected {ref:.6f}, got {loss:.6f}"
    )
    err = float((new - (theta - 0.1 * grad)).abs().max())
    assert err < 1e-10, f"theta - lr * grad of the mean L1 loss differs by {err:.3g}"
    assert float(theta.abs().max()) == 0.0, "do not modify theta in place"
    cur = theta
    losses = []
    for _ in range(30):
        cur, lo = fn(render, target, torch.as_tensor(cur).detach(), 0.05)
        losses.append(_scalar(lo))
    assert losses[-1] < 0.7 * losses[0], "repeated steps must lower the loss"
    return 4
