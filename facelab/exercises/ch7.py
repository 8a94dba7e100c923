"""Checks for the exercises of chapter 7, "GANFit: fitting with a texture GAN".

The identity and content checks compare the student's function with
``facelab.methods.ganfit.losses`` on small random float64 inputs plus analytic cases; the
schedule check validates the stages the student builds against the rules the exercise
states. No model files; each runs in well under a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..methods.ganfit.fit import GROUPS, GanFitConfig, GanStage, default_stages
from ..methods.ganfit.losses import content_loss, identity_loss
from . import exercise
from ._util import F64, as_f64


@exercise(
    "ch7.identity_loss",
    "GANFit's identity loss",
    hint="cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)); return (1 - cos).mean()",
)
def check_identity_loss(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(71)
    a = torch.randn(4, 16, generator=g, dtype=F64)
    b = torch.randn(4, 16, generator=g, dtype=F64)
    n = 0
    got = as_f64(torch.as_tensor(fn(a, b)).detach())
    assert got.dim() == 0, f"return a scalar (the batch mean), got shape {tuple(got.shape)}"
    ref = float(identity_loss(a, b))
    assert abs(float(got) - ref) < 1e-10, f"expected {ref:.6f}, got {float(got):.6f}"
    n += 1
    same = float(as_f64(torch.as_tensor(fn(a, 3.0 * a))))
    assert abs(same) < 1e-10, (
        f"an embedding and 3x itself: loss 0 (cosine ignores length), got {same:.4g}"
    )
    n += 1
    opp = float(as_f64(torch.as_tensor(fn(a, -a))))
    assert abs(opp - 2.0) < 1e-10, f"opposite embeddings: loss 2, got {opp:.4g}"
    n += 1
    e = torch.eye(3, dtype=F64)
    orth = float(as_f64(torch.as_tensor(fn(e, e.roll(1, 0)))))
    assert abs(orth - 1.0) < 1e-10, f"orthogonal embeddings: loss 1, got {orth:.4g}"
    return n + 1


@exercise(
    "ch7.content_loss",
    "the content loss on feature maps",
    hint="for each layer: (f[l] - t[l]).square().mean() / t[l].square().mean(); sum over layers",
)
def check_content_loss(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(72)
    layers = ("a", "b", "c")
    t = {
        k: torch.randn(2, 3 + i, 6 - i, 6 - i, generator=g, dtype=F64) for i, k in enumerate(layers)
    }
    f = {k: v + 0.3 * torch.randn(v.shape, generator=g, dtype=F64) for k, v in t.items()}
    n = 0
    got = float(as_f64(torch.as_tensor(fn(f, t, layers)).detach()))
    ref = float(content_loss(f, t, layers))
    assert abs(got - ref) < 1e-10, f"expected {ref:.6f}, got {got:.6f}"
    n += 1
    zero = float(as_f64(torch.as_tensor(fn(t, t, layers))))
    assert abs(zero) < 1e-12, f"identical maps: loss 0, got {zero:.4g}"
    n += 1
    half = {k: 0.5 * v for k, v in t.items()}
    hv = float(as_f64(torch.as_tensor(fn(half, t, layers))))
    assert abs(hv - 0.75) < 1e-10, (
        f"half the activations in 3 layers: 3 x 0.25 = 0.75, got {hv:.4g}"
    )
    n += 1
    big = {k: 100.0 * v for k, v in t.items()}
    bf = {k: 100.0 * v for k, v in f.items()}
    sv = float(as_f64(torch.as_tensor(fn(bf, big, layers))))
    assert abs(sv - ref) < 1e-8, (
        "normalise each layer by the photo's energy: scaling both maps must not change the loss"
    )
    n += 1
    one = float(as_f64(torch.as_tensor(fn(f, t, ("b",)))))
    assert abs(one - float(content_loss(f, t, ("b",)))) < 1e-10, "use only the layers asked for"
    return n + 1


@exercise(
    "ch7.schedule",
    "a three-stage GANFit schedule",
    hint="[GanStage('texture', a, lr, ('latent', 'light')), GanStage('pose', b, lr, ('rotation', "
    "'translation', 'latent', 'light')), GanStage('joint', c, lr, GROUPS)] with a + b + c equal "
    "to the default total",
)
def check_schedule(fn: Callable[..., Any]) -> int:
    n = 0
    for fast in (True, False):
        stages = fn(fast)
        assert isinstance(stages, list) and all(isinstance(s, GanStage) for s in stages), (
            "return a list of GanStage"
        )
        assert len(stages) == 3, f"three stages, got {len(stages)}"
        GanFitConfig(stages=stages)  # known parameter groups
        budget = sum(s.steps for s in default_stages(fast))
        got = sum(s.steps for s in stages)
        assert got == budget, f"fast={fast}: keep the default budget of {budget} steps, got {got}"
        assert all(s.steps > 0 for s in stages), "every stage needs at least one step"
        assert set(stages[0].params) == {"latent", "light"}, (
            "stage 1: texture latent and light only"
        )
        p1 = set(stages[1].params)
        assert {"rotation", "translation"} <= p1 and not p1 & {"identity", "expression"}, (
            "stage 2: pose (with texture and light) but not the shape"
        )
        assert set(stages[2].params) == set(GROUPS), "stage 3: every parameter group"
        n += 1
    return n
