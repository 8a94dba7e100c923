"""Checks for the exercises of chapter 5, "Analysis-by-synthesis" — and the chapter's small code.

The chapter builds a photometric fitter in a few lines before it uses
:func:`facelab.fit.fit_photometric`. Those few lines live here too (:func:`minimal_fit`), so the
test suite can check that the chapter's small version and the library agree
(``tests/test_book_ch5.py`` also checks that the chapter's copy is this code, character for
character).

Each checker compares the student's function with :mod:`facelab.fit.losses` or with an
analytic answer on small random inputs; the landmark-fitting exercise builds a small synthetic
"face" with a known pose and shape. No model files are needed; every check runs in about a
second.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..fit.losses import gaussian_prior, landmark_loss, photometric_loss
from ..fit.render import render_face
from ..geometry.camera import project
from ..models.morphable import pose_points
from ..render.shading import sh_ambient
from . import exercise
from ._util import F64, as_f64


# ---------------------------------------------------------------------------------------------
# The chapter's minimal analysis-by-synthesis loop (keep identical to the chapter's cell)
# ---------------------------------------------------------------------------------------------
def minimal_fit(model, target, K, init, lm2d, lm_ids, skin, steps=100, snapshot_every=0):
    """Fit identity, expression, pose, one skin colour and SH light to a linear-RGB photo.

    target (1, H, W, 3) linear RGB; K (1, 3, 3); init: FaceParams with the landmark fit's pose;
    lm2d (1, 68, 2) landmarks; lm_ids (1, 68) their vertices; skin (V,) bool vertex mask.
    Returns (params, log): log["loss"][i] is the loss of step i, log["snapshots"] holds
    (step, render, coverage, identity, expression) every snapshot_every steps.
    """
    H, W, V = target.shape[1], target.shape[2], model.n_vertices
    rot = init.rotation.clone().requires_grad_()
    trans = init.translation.clone().requires_grad_()
    alpha = torch.zeros(1, model.n_identity, requires_grad=True)  # start from the mean face
    beta = torch.zeros(1, model.n_expression, requires_grad=True)  # ... and no expression
    light = sh_ambient(1.0, 1, 3).requires_grad_()  # white ambient light
    colour = torch.full((1, 1, 3), 0.5, requires_grad=True)  # one skin colour
    groups = [
        (rot, 0.003),
        (trans, 0.05),
        (alpha, 0.05),
        (beta, 0.01),
        (light, 0.02),
        (colour, 0.02),
    ]
    opt = torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in groups])
    log = {"loss": [], "snapshots": []}
    for step in range(steps):
        verts = pose_points(model.forward(alpha, beta), rot, trans)  # synthesis ...
        r = render_face(verts, model.faces, colour.expand(-1, V, -1), light, K, (H, W), skin, 1)
        lm = project(torch.gather(verts, 1, lm_ids[..., None].expand(-1, -1, 3)), K)
        loss = (
            photometric_loss(r.image, target, r.mask)  # ... analysis
            + 20.0 * landmark_loss(lm, lm2d)
            + 2e-3 * gaussian_prior(alpha)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            beta.clamp_(0, 1)  # blendshape weights live in [0, 1]
        log["loss"].append(float(loss.detach()))
        if snapshot_every and step % snapshot_every == 0:
            snap = (step, r.image.detach()[0], r.fragments.mask[0], alpha.detach(), beta.detach())
            log["snapshots"].append(tuple(x.clone() if torch.is_tensor(x) else x for x in snap))
    params = init.detach().clone()
    params.identity, params.expression = alpha.detach(), beta.detach()
    params.rotation, params.translation, params.light = rot.detach(), trans.detach(), light.detach()
    return params, log


# ---------------------------------------------------------------------------------------------
# Exercise checks
# ---------------------------------------------------------------------------------------------
@exercise(
    "ch5.charbonnier_photo_loss",
    "robust (Charbonnier) photometric loss inside a mask",
    hint="rho(r) = sqrt(r^2 + eps^2) - eps per colour channel, summed over the channels; then "
    "(per_pixel * m).sum() / m.sum() with m = mask as float (guard m.sum() = 0 with clamp_min(1))",
)
def check_charbonnier_photo_loss(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(51)
    n = 0
    B, H, W = 2, 9, 11
    a = torch.rand(B, H, W, 3, generator=g, dtype=F64)
    b = torch.rand(B, H, W, 3, generator=g, dtype=F64)
    mask = torch.rand(B, H, W, generator=g) > 0.4
    out = as_f64(fn(a, a.clone(), mask, 0.01))
    assert out.dim() == 0, f"return a scalar (0-dim tensor), got shape {tuple(out.shape)}"
    assert abs(float(out)) < 1e-12, f"identical images must cost 0, got {float(out):.3g}"
    n += 1
    for eps in (0.01, 0.1):
        got = as_f64(fn(a, b, mask, eps))
        ref = photometric_loss(a, b, mask, "charbonnier", eps)
        assert abs(float(got - ref)) < 1e-9, (
            f"eps = {eps}: got {float(got):.6f}, facelab.fit.losses.photometric_loss gives "
            f"{float(ref):.6f} (sum the channels, average over the masked pixels)"
        )
        n += 1
    # pixels outside the mask must not matter
    c = b.clone()
    c[~mask] = 100.0
    assert abs(float(as_f64(fn(a, c, mask, 0.01)) - as_f64(fn(a, b, mask, 0.01)))) < 1e-9, (
        "pixels outside the mask changed the loss"
    )
    n += 1
    # float weights work like a soft mask
    wts = torch.rand(B, H, W, generator=g, dtype=F64)
    got = as_f64(fn(a, b, wts, 0.01))
    ref = photometric_loss(a, b, wts, "charbonnier", 0.01)
    assert abs(float(got - ref)) < 1e-9, "with a float (soft) mask: weight each pixel by it"
    n += 1
    # robustness: one huge outlier costs about |r|, not r^2
    z = torch.zeros(1, 1, 1, 3, dtype=F64)
    big = z.clone()
    big[..., 0] = 10.0
    one = torch.ones(1, 1, 1, dtype=torch.bool)
    val = float(as_f64(fn(big, z, one, 0.01)))
    assert abs(val - (math.sqrt(100 + 1e-4) - 0.01)) < 1e-9, (
        f"a residual of 10 in one channel should cost sqrt(10^2 + eps^2) - eps ~ 10, got {val:.4f}"
    )
    n += 1
    empty = torch.zeros(B, H, W, dtype=torch.bool)
    val = as_f64(fn(a, b, empty, 0.01))
    assert torch.isfinite(val) and abs(float(val)) < 1e-12, (
        "an empty mask must give 0, not NaN (clamp the pixel count to at least 1)"
    )
    return n + 1


@exercise(
    "ch5.gaussian_prior",
    "Gaussian prior on model coefficients",
    hint="mean over the batch of sum_k (w_k / sigma_k)^2; sigma = None means sigma_k = 1",
)
def check_gaussian_prior(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(52)
    n = 0
    w = torch.randn(4, 7, generator=g, dtype=F64)
    got = as_f64(fn(w))
    assert got.dim() == 0, f"return a scalar, got shape {tuple(got.shape)}"
    assert abs(float(got - gaussian_prior(w))) < 1e-10, (
        "sigma = None: must equal facelab.fit.losses.gaussian_prior (mean_b |w_b|^2)"
    )
    n += 1
    sigma = 0.5 + torch.rand(7, generator=g, dtype=F64)
    got = as_f64(fn(w, sigma))
    # -2 log N(w; 0, diag(sigma^2)) up to a constant, averaged over the batch
    normal = torch.distributions.Normal(torch.zeros(7, dtype=F64), sigma)
    nll = -2 * (normal.log_prob(w) - normal.log_prob(torch.zeros_like(w))).sum(-1).mean()
    assert abs(float(got - nll)) < 1e-9, (
        f"with sigma: expected -2 log p(w) + const = {float(nll):.6f}, got {float(got):.6f}"
    )
    n += 1
    wg = w.clone().requires_grad_()
    fn(wg, sigma).backward()
    assert wg.grad is not None, "the prior must be differentiable (use torch operations)"
    expect = 2 * w / sigma**2 / w.shape[0]
    assert torch.allclose(wg.grad, expect, atol=1e-9), "wrong gradient: d/dw = 2 w / sigma^2 / B"
    n += 1
    assert abs(float(as_f64(fn(torch.zeros(3, 5, dtype=F64))))) < 1e-12, "w = 0 (the mean) costs 0"
    return n + 1


def _toy_face(g: torch.Generator, n_pts: int = 68, k: int = 6):
    """A small synthetic 'face': (N, 3) mean in a 14 x 18 x 8 box, (k, N, 3) basis."""
    mean = torch.randn(n_pts, 3, generator=g, dtype=F64) * torch.tensor([7.0, 9.0, 4.0], dtype=F64)
    basis = 0.8 * torch.randn(k, n_pts, 3, generator=g, dtype=F64)
    return mean, basis


@exercise(
    "ch5.fit_landmarks_gd",
    "gradient-descent fit of pose and shape to landmarks",
    hint="three leaf tensors with requires_grad (rotation (3,), translation (3,), coeffs (k,)), "
    "torch.optim.Adam with one learning rate per group (e.g. 0.01, 0.5, 0.05), ~500 steps of: "
    "X = mean + einsum('k,kjc->jc', c, basis); pixels = project_fn(X, rotation, translation); "
    "loss = mean squared pixel error + lam |c|^2",
)
def check_fit_landmarks_gd(fn: Callable[..., Any]) -> int:
    from ..geometry.camera import intrinsics, pose_to_camera
    from ..geometry.rotation import (
        axis_angle_to_matrix,
        matrix_to_axis_angle,
        yaw_pitch_roll_to_matrix,
    )

    g = torch.Generator().manual_seed(53)
    mean, basis = _toy_face(g)
    k = basis.shape[0]
    K = intrinsics(800.0, 800.0, 128.0, 128.0).to(F64)

    def project_fn(X, rotation, translation):
        """(N, 3) model points, (3,) axis-angle, (3,) translation -> (N, 2) pixels."""
        return project(pose_to_camera(X[None], rotation[None], translation[None]), K)[0]

    n = 0
    for ypr, c_scale in (((20.0, -8.0, 4.0), 1.0), ((-35.0, 10.0, -5.0), 0.7)):
        c_true = c_scale * torch.randn(k, generator=g, dtype=F64)
        R = yaw_pitch_roll_to_matrix(torch.tensor([ypr], dtype=F64), degrees=True)
        rot_true = matrix_to_axis_angle(R)[0]
        t_true = torch.tensor([1.5, -2.0, 90.0], dtype=F64)
        X = mean + torch.einsum("k,kjc->jc", c_true, basis)
        x2d = project_fn(X, rot_true, t_true)
        t0 = torch.tensor([0.0, 0.0, 100.0], dtype=F64)  # a rough guess: in front, frontal
        out = fn(x2d, mean, basis, project_fn, t0)
        assert isinstance(out, tuple) and len(out) == 3, "return (rotation, translation, coeffs)"
        rot, t, c = (as_f64(v).detach() for v in out)
        assert rot.shape == (3,) and t.shape == (3,) and c.shape == (k,), (
            f"shapes: rotation (3,), translation (3,), coeffs ({k},); got {tuple(rot.shape)}, "
            f"{tuple(t.shape)}, {tuple(c.shape)}"
        )
        fit2d = project_fn(mean + torch.einsum("k,kjc->jc", c, basis), rot, t)
        rms = float((fit2d - x2d).square().sum(-1).mean().sqrt())
        assert rms < 0.5, (
            f"yaw {ypr[0]}: reprojection RMS {rms:.2f} px after your fit (should be < 0.5 px): "
            "more steps or larger learning rates?"
        )
        dR = axis_angle_to_matrix(rot[None])[0].T @ axis_angle_to_matrix(rot_true[None])[0]
        ang = math.degrees(math.acos(max(-1.0, min(1.0, (float(torch.trace(dR)) - 1) / 2))))
        assert ang < 3.0, f"yaw {ypr[0]}: the rotation is {ang:.1f} degrees off (should be < 3)"
        n += 2
    return n


@exercise(
    "ch5.erode_mask",
    "erode a mask away from its border",
    hint="a pixel survives if no pixel within (2r+1) x (2r+1) around it is outside the mask: "
    "max-pool the complement (~mask) with kernel 2r+1, stride 1, padding r, and keep mask & ~grown",
)
def check_erode_mask(fn: Callable[..., Any]) -> int:
    n = 0
    m = torch.zeros(1, 12, 12, dtype=torch.bool)
    m[0, 2:10, 3:11] = True
    out = torch.as_tensor(fn(m, 1))
    assert out.shape == m.shape and out.dtype == torch.bool, (
        f"return a bool mask of shape {tuple(m.shape)}, got {out.dtype} {tuple(out.shape)}"
    )
    expect = torch.zeros_like(m)
    expect[0, 3:9, 4:10] = True
    assert torch.equal(out, expect), "an 8 x 8 square eroded by 1 must become the inner 6 x 6"
    n += 1
    assert torch.equal(torch.as_tensor(fn(m, 0)), m), "r = 0 must return the mask unchanged"
    n += 1
    g = torch.Generator().manual_seed(54)
    rnd = torch.rand(3, 20, 20, generator=g) > 0.3
    outside = (~rnd).to(torch.float32)[:, None]
    grown = torch.nn.functional.max_pool2d(outside, 5, stride=1, padding=2)[:, 0] > 0
    assert torch.equal(torch.as_tensor(fn(rnd, 2)), rnd & ~grown), (
        "random mask, r = 2: differs from the erosion facelab.fit.render_face applies"
    )
    return n + 1


__all__ = [
    "check_charbonnier_photo_loss",
    "check_erode_mask",
    "check_fit_landmarks_gd",
    "check_gaussian_prior",
    "minimal_fit",
]
