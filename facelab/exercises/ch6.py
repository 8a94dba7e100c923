"""Checks for the exercises of chapter 6, "GANs for face textures".

Each checker compares the student's function with ``facelab.gan`` (the per-sample
reference ``facelab.gan.networks.modulated_conv2d_reference``, ``facelab.gan.loss.r1_penalty``,
the mapping network's truncation) on small random float64 inputs, plus an analytic case. No
model files; each runs in well under a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..gan.loss import r1_penalty
from ..gan.networks import modulated_conv2d_reference
from . import exercise
from ._util import F64, as_f64


@exercise(
    "ch6.modulated_conv",
    "modulated + demodulated convolution of a batch",
    hint="w_b = weight[None] * styles[:, None, :, None, None]; demodulate by "
    "rsqrt(sum over (C_in, k, k) of w_b^2 + eps); then one conv2d per sample (or groups=B)",
)
def check_modulated_conv(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(61)
    n = 0
    x = torch.randn(3, 4, 7, 7, generator=g, dtype=F64)
    w = torch.randn(5, 4, 3, 3, generator=g, dtype=F64)
    s = torch.rand(3, 4, generator=g, dtype=F64) + 0.5
    for demod in (True, False):
        got = as_f64(fn(x, w, s, demod))
        ref = modulated_conv2d_reference(x, w, s, demod, padding=1)
        assert got.shape == ref.shape, (
            f"demodulate={demod}: shape {tuple(got.shape)}, expected {tuple(ref.shape)} (padding 1)"
        )
        err = float((got - ref).abs().max())
        assert err < 1e-8, f"demodulate={demod}: differs from the reference by {err:.3g}"
        n += 1
    # demodulation makes the output independent of the style's overall scale
    a = as_f64(fn(x, w, s, True))
    b = as_f64(fn(x, w, 10 * s, True))
    assert float((a - b).abs().max()) < 1e-6, (
        "with demodulation, styles s and 10 s must give the same output"
    )
    n += 1
    # each sample has its own weights: permuting the batch permutes the output
    p = torch.tensor([2, 0, 1])
    c = as_f64(fn(x[p], w, s[p], True))
    assert float((c - a[p]).abs().max()) < 1e-8, "sample b must use styles[b] only"
    return n + 1


@exercise(
    "ch6.r1_penalty",
    "R1 gradient penalty",
    hint="x = x.detach().requires_grad_(True); grad = torch.autograd.grad(D(x).sum(), x, "
    "create_graph=True)[0]; return grad.square().sum(dim=(1, 2, 3)).mean()",
)
def check_r1_penalty(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(62)
    n = 0
    a = torch.randn(2, 4, 4, generator=g, dtype=F64)

    def lin(x: torch.Tensor) -> torch.Tensor:
        return (x * a).sum(dim=(1, 2, 3))

    x = torch.randn(3, 2, 4, 4, generator=g, dtype=F64)
    got = as_f64(torch.as_tensor(fn(lin, x)).detach())
    assert got.dim() == 0, f"return a scalar, got shape {tuple(got.shape)}"
    assert abs(float(got) - float(a.square().sum())) < 1e-9, (
        f"linear D(x) = <a, x>: the penalty is |a|^2 = {float(a.square().sum()):.4f}, got {float(got):.4f}"
    )
    n += 1
    wq = torch.randn(2, 4, 4, generator=g, dtype=F64, requires_grad=True)

    def quad(x: torch.Tensor) -> torch.Tensor:
        return ((x * wq).sum(dim=(1, 2, 3))) ** 2

    xr = x.clone().requires_grad_(True)
    ref = float(r1_penalty(xr, quad(xr)).detach())
    got = fn(quad, x)
    gv = float(torch.as_tensor(got).detach())
    assert abs(gv - ref) < 1e-9, f"quadratic D: expected {ref:.6f}, got {gv:.6f}"
    n += 1
    # it must be differentiable w.r.t. D's parameters (create_graph=True): R1 trains D
    (gw,) = torch.autograd.grad(got, wq, allow_unused=True)
    assert gw is not None and float(gw.abs().sum()) > 0, (
        "the penalty has no gradient w.r.t. D's weights: use create_graph=True"
    )
    return n + 1


@exercise(
    "ch6.truncate",
    "the truncation trick",
    hint="w_avg + psi * (w - w_avg), broadcasting w_avg (D,) over the batch",
)
def check_truncate(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(63)
    w = torch.randn(5, 8, generator=g, dtype=F64)
    avg = torch.randn(8, generator=g, dtype=F64)
    n = 0
    for psi in (0.0, 0.5, 1.0, 1.5):
        got = as_f64(fn(w, avg, psi))
        ref = avg + psi * (w - avg)
        assert got.shape == w.shape, (
            f"psi={psi}: shape {tuple(got.shape)}, expected {tuple(w.shape)}"
        )
        assert float((got - ref).abs().max()) < 1e-12, (
            f"psi={psi}: expected w_avg + psi (w - w_avg)"
        )
        n += 1
    return n
