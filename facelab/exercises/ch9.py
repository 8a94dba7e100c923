"""Chapter 9, "Volume rendering and a 3D-aware GAN": the from-scratch renderer and the checks.

:func:`render_ray_from_scratch` is the chapter's volume integral in a few lines, printed in
the chapter word for word (``tests/test_book_ch9.py`` checks that the chapter's cell and this
function are the same code, and that it agrees with :func:`facelab.render.volume.render_rays`).

The checkers compare the student's functions with :mod:`facelab.render.volume`,
``facelab.gan.triplane.sample_triplanes`` or analytic answers on small random inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from . import exercise
from ._util import F64, as_f64

__all__ = ["render_ray_from_scratch"]


# fmt: off
def render_ray_from_scratch(field, origin, direction, near, far, n=64):
    """Colour, expected depth and opacity of ONE ray o + t d through field(points (n, 3)) ->
    (sigma (n,), colour (n, C)): n bins in [near, far], one sample at each bin centre."""
    edges = torch.linspace(near, far, n + 1, dtype=origin.dtype)
    t = (edges[1:] + edges[:-1]) / 2  # sample depths
    delta = edges[1:] - edges[:-1]  # bin lengths
    sigma, color = field(origin + t[:, None] * direction)
    alpha = 1 - torch.exp(-sigma * delta)  # the chance that the ray ends in bin i ...
    T = torch.cumprod(torch.cat([torch.ones(1, dtype=t.dtype), 1 - alpha[:-1]]), 0)  # ... given it got there
    w = T * alpha
    return (w[:, None] * color).sum(0), (w * t).sum() / w.sum().clamp(min=1e-10), w.sum()
# fmt: on


@exercise(
    "ch9.composite_weights",
    "alpha-compositing weights",
    hint="alpha_i = 1 - exp(-sigma_i delta_i); T_i = prod_{j<i} (1 - alpha_j) (T_0 = 1); "
    "w_i = T_i alpha_i",
)
def check_composite_weights(fn: Callable[..., Any]) -> int:
    from ..render.volume import composite

    g = torch.Generator().manual_seed(91)
    n = 0
    w = as_f64(fn(torch.tensor([0.0, 0.0], dtype=F64), torch.tensor([1.0, 1.0], dtype=F64)))
    assert w.shape == (2,), f"expected weights of shape (N,) = (2,), got {tuple(w.shape)}"
    assert torch.allclose(w, torch.zeros(2, dtype=F64)), "empty space (sigma = 0) has zero weight"
    n += 1
    w = as_f64(fn(torch.tensor([1e6, 5.0], dtype=F64), torch.tensor([1.0, 1.0], dtype=F64)))
    assert torch.allclose(w, torch.tensor([1.0, 0.0], dtype=F64), atol=1e-9), (
        "an opaque first sample takes all the weight: nothing behind it is seen"
    )
    n += 1
    sig = torch.tensor([2.0], dtype=F64)
    w = as_f64(fn(sig, torch.tensor([0.5], dtype=F64)))
    assert abs(float(w[0]) - (1 - math.exp(-1.0))) < 1e-12, "one sample: w = 1 - exp(-sigma delta)"
    n += 1
    for _ in range(4):
        N = int(torch.randint(3, 20, (1,), generator=g))
        s = torch.rand(N, generator=g, dtype=F64) * 4
        d = torch.rand(N, generator=g, dtype=F64) * 0.3 + 0.01
        t = d.cumsum(0)
        ref = composite(
            s[None, None], torch.zeros(1, 1, N, 1, dtype=F64), t[None, None], d[None, None]
        ).weights[0, 0]
        w = as_f64(fn(s, d))
        assert torch.allclose(w, ref, atol=1e-10), (
            "weights differ from facelab.render.volume.composite"
        )
        n += 1
    return n


@exercise(
    "ch9.inverse_cdf",
    "importance sampling by inverting the CDF",
    hint="cdf = [0, cumsum(w) / sum(w)]; find the bin k with cdf[k] <= u < cdf[k+1]; "
    "t = e_k + (u - cdf[k]) / (cdf[k+1] - cdf[k]) * (e_{k+1} - e_k)",
)
def check_inverse_cdf(fn: Callable[..., Any]) -> int:
    from ..render.volume import sample_pdf

    g = torch.Generator().manual_seed(92)
    n = 0
    edges = torch.tensor([0.0, 1.0, 2.0], dtype=F64)
    t = as_f64(
        fn(edges, torch.tensor([1.0, 1.0], dtype=F64), torch.tensor([0.25, 0.5, 0.75], dtype=F64))
    )
    assert t.shape == (3,), f"one depth per u: expected shape (3,), got {tuple(t.shape)}"
    assert torch.allclose(t, torch.tensor([0.5, 1.0, 1.5], dtype=F64)), (
        "a uniform pdf on [0, 2] maps u to 2 u"
    )
    n += 1
    t = as_f64(fn(edges, torch.tensor([0.0, 1.0], dtype=F64), torch.tensor([0.1, 0.9], dtype=F64)))
    assert ((t >= 1) & (t <= 2)).all(), "no sample may land in a bin of weight 0"
    n += 1
    for _ in range(3):
        N = int(torch.randint(3, 12, (1,), generator=g))
        e = torch.cat([torch.zeros(1, dtype=F64), torch.rand(N, generator=g, dtype=F64).cumsum(0)])
        w = torch.rand(N, generator=g, dtype=F64) + 0.05
        M = 16
        u = (torch.arange(M, dtype=F64) + 0.5) / M
        ref = sample_pdf(e[None, None], w[None, None], M, perturb=False, eps=0.0)[0, 0]
        t = as_f64(fn(e, w, u))
        assert torch.allclose(t.sort().values, ref, atol=1e-9), (
            "depths differ from facelab.render.volume.sample_pdf (same u, eps = 0)"
        )
        n += 1
    return n


@exercise(
    "ch9.triplane_lookup",
    "tri-plane feature lookup",
    hint="project p onto the (x, y), (x, z) and (y, z) planes, read each bilinearly with "
    "grid_sample(plane, coords / (box/2), align_corners=False), average the three",
)
def check_triplane_lookup(fn: Callable[..., Any]) -> int:
    from ..gan.triplane import sample_triplanes

    g = torch.Generator().manual_seed(93)
    n = 0
    for C, P in ((1, 4), (3, 8), (5, 16)):
        planes = torch.randn(3, C, P, P, generator=g, dtype=F64)
        p = (torch.rand(20, 3, generator=g, dtype=F64) - 0.5) * 0.9
        f = as_f64(fn(planes.clone(), p.clone()))
        assert f.shape == (20, C), f"expected features (M, C) = (20, {C}), got {tuple(f.shape)}"
        ref = sample_triplanes(planes[None], p[None])[0]
        assert torch.allclose(f, ref, atol=1e-10), (
            "features differ from facelab.gan.triplane.sample_triplanes (planes xy, xz, yz; mean)"
        )
        n += 1
    # a point at the centre reads each plane's centre texels
    planes = torch.zeros(3, 1, 2, 2, dtype=F64)
    planes[1] = 3.0
    f = as_f64(fn(planes, torch.zeros(1, 3, dtype=F64)))
    assert torch.allclose(f, torch.ones(1, 1, dtype=F64)), (
        "the three planes are averaged (0 + 3 + 0) / 3"
    )
    return n + 1
