"""Checks for the exercises of chapter 2, "3D Morphable Models".

Every checker builds small random inputs with a known answer (a known orthogonal basis, known
weights, an exactly symmetric shape), calls the student's function and asserts the result. They
run in well under a second and need no model files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import exercise


def _orthonormal_rows(k: int, d: int, g: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))
    return q.T  # (k, d), orthonormal rows


def _whitened(n: int, k: int, g: torch.Generator) -> torch.Tensor:
    """(n, k) weights with zero column means and A^T A = (n - 1) I exactly."""
    a = torch.randn(n, k, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(a - a.mean(0))
    return q * (n - 1) ** 0.5


@exercise(
    "ch2.pca_basis",
    "PCA basis from example shapes",
    hint="centre the (N, 3V) data, take torch.linalg.svd(..., full_matrices=False); "
    "std = singular values / sqrt(N - 1); basis = std[:, None] * Vh[:k]",
)
def check_pca_basis(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(2)
    n_checks = 0
    for n, V, k_true, k in ((40, 30, 6, 4), (25, 12, 5, 5)):
        U = _orthonormal_rows(k_true, 3 * V, g)
        std = torch.linspace(3.0, 0.5, k_true, dtype=torch.float64)
        mean = torch.randn(V, 3, generator=g, dtype=torch.float64)
        A = _whitened(n, k_true, g)
        shapes = mean + (A @ (std[:, None] * U)).reshape(n, V, 3)
        out = fn(shapes, k)
        assert isinstance(out, tuple) and len(out) == 3, (
            "return a tuple (mean (V, 3), basis (k, V, 3), std (k,))"
        )
        m, basis, s = (torch.as_tensor(t, dtype=torch.float64) for t in out)
        assert m.shape == (V, 3), f"mean should have shape ({V}, 3), got {tuple(m.shape)}"
        assert basis.shape == (k, V, 3), (
            f"basis should have shape ({k}, {V}, 3), got {tuple(basis.shape)}"
        )
        assert s.shape == (k,), f"std should have shape ({k},), got {tuple(s.shape)}"
        assert torch.allclose(m, mean, atol=1e-8), "the mean shape is wrong"
        n_checks += 1
        assert torch.allclose(s, std[:k], rtol=1e-6), (
            f"std should be {std[:k].tolist()} (divide singular values by sqrt(N - 1)), "
            f"got {s.tolist()}"
        )
        n_checks += 1
        b = basis.reshape(k, -1)
        expect = std[:k, None] * U[:k]
        sign = torch.sign((b * expect).sum(1))
        assert torch.all(sign != 0), "a basis vector is orthogonal to the true component"
        assert torch.allclose(b * sign[:, None], expect, atol=1e-6), (
            "basis[k] should be std[k] times the k-th principal direction (up to sign)"
        )
        n_checks += 1
    return n_checks


@exercise(
    "ch2.fit_identity",
    "least-squares identity fit",
    hint="flatten the basis to a (3V, K) matrix B and solve (B^T B + reg I) alpha = B^T (s - mean)",
)
def check_fit_identity(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(3)
    V, K, B = 50, 7, 3
    mean = torch.randn(V, 3, generator=g, dtype=torch.float64)
    basis = torch.randn(K, V, 3, generator=g, dtype=torch.float64)  # not orthogonal on purpose
    alpha = torch.randn(B, K, generator=g, dtype=torch.float64)
    verts = mean + torch.einsum("bk,kvc->bvc", alpha, basis)
    n_checks = 0
    out = torch.as_tensor(fn(verts, mean, basis, 0.0), dtype=torch.float64)
    assert out.shape == (B, K), f"alpha should have shape ({B}, {K}), got {tuple(out.shape)}"
    assert torch.allclose(out, alpha, atol=1e-7), (
        "with reg = 0 and an exact model shape, the fit must return the true weights"
    )
    n_checks += 1
    noisy = verts + 0.1 * torch.randn(verts.shape, generator=g, dtype=torch.float64)
    Bm = basis.reshape(K, -1).T
    r = (noisy - mean).reshape(B, -1).T
    for reg in (0.0, 5.0, 200.0):
        ref = torch.linalg.solve(Bm.T @ Bm + reg * torch.eye(K, dtype=Bm.dtype), Bm.T @ r).T
        got = torch.as_tensor(fn(noisy, mean, basis, reg), dtype=torch.float64)
        assert torch.allclose(got, ref, atol=1e-7, rtol=1e-6), (
            f"wrong weights for reg = {reg} (noisy scan): expected {ref[0].tolist()[:3]}..., "
            f"got {got[0].tolist()[:3]}..."
        )
        n_checks += 1
    big = torch.as_tensor(fn(noisy, mean, basis, 1e6), dtype=torch.float64)
    assert big.abs().max() < 0.05 * alpha.abs().max(), "a huge reg must shrink alpha toward 0"
    return n_checks + 1


def _symmetric_cloud(half: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random shape with ``half`` mirrored pairs plus 3 points on the x = 0 plane, shuffled."""
    left = torch.randn(half, 3, generator=g, dtype=torch.float64)
    left[:, 0] = left[:, 0].abs() + 0.1
    right = left * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    mid = torch.randn(3, 3, generator=g, dtype=torch.float64)
    mid[:, 0] = 0.0
    pts = torch.cat([left, right, mid])
    sym = torch.cat([torch.arange(half, 2 * half), torch.arange(half), 2 * half + torch.arange(3)])
    perm = torch.randperm(len(pts), generator=g)
    inv = torch.argsort(perm)
    return pts[perm], inv[sym[perm]]


@exercise(
    "ch2.mirror_shape",
    "mirror a shape with the symmetry map",
    hint="take the partner of every vertex (verts[..., symmetry, :]) and negate x",
)
def check_mirror_shape(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(4)
    pts, sym = _symmetric_cloud(20, g)
    assert torch.equal(sym[sym], torch.arange(len(sym)))
    n_checks = 0
    out = torch.as_tensor(fn(pts, sym))
    assert out.shape == pts.shape, f"shape should be {tuple(pts.shape)}, got {tuple(out.shape)}"
    assert torch.allclose(out, pts, atol=1e-12), "a symmetric shape must be its own mirror image"
    n_checks += 1
    x = pts + 0.3 * torch.randn(4, *pts.shape, generator=g, dtype=torch.float64)  # batched
    out = torch.as_tensor(fn(x, sym))
    assert out.shape == x.shape, f"batched shape should be {tuple(x.shape)}, got {tuple(out.shape)}"
    expect = x[:, sym] * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert torch.allclose(out, expect, atol=1e-12), (
        "vertex i of the mirror image is vertex symmetry[i] of the input with x negated"
    )
    n_checks += 1
    twice = torch.as_tensor(fn(out, sym))
    assert torch.allclose(twice, x, atol=1e-12), "mirroring twice must give the shape back"
    n_checks += 1
    assert not torch.allclose(out, x), "a non-symmetric shape must change when mirrored"
    return n_checks + 1


@exercise(
    "ch2.components_for_variance",
    "number of components for a fraction of the variance",
    hint="variances are std**2; compare the cumulative sum divided by the total with fraction",
)
def check_components_for_variance(fn: Callable[..., Any]) -> int:
    std = torch.tensor([2.0, 1.0, 1.0, 0.5, 0.5, 0.1], dtype=torch.float64)
    # variances 4, 1, 1, .25, .25, .01 (total 6.51): cumulative .61, .77, .92, .96, .998, 1
    cases = [(0.5, 1), (0.62, 2), (0.9, 3), (0.99, 5), (0.999, 6)]
    for frac, k in cases:
        got = fn(std, frac)
        assert int(got) == k, (
            f"std = {std.tolist()}, fraction = {frac:.4f}: expected {k}, got {got}"
        )
    g = torch.Generator().manual_seed(5)
    s = torch.sort(torch.rand(30, generator=g, dtype=torch.float64), descending=True).values
    cum = (s**2).cumsum(0) / (s**2).sum()
    for frac in (0.3, 0.75, 0.95):
        k = int(fn(s, frac))
        assert cum[k - 1] >= frac - 1e-12 and (k == 1 or cum[k - 2] < frac), (
            f"k = {k} is not the smallest number of components reaching {frac}"
        )
    return len(cases) + 3
