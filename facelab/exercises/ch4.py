"""Chapter 4, "Differentiable rendering": the from-scratch rasterizer and the exercise checks.

:func:`rasterize_from_scratch` is the chapter's teaching rasterizer, printed in the chapter
word for word (``tests/test_book_ch4.py`` checks that the chapter's cell and this function
are the same code, and that it agrees with :func:`facelab.render.rasterize` and
:func:`facelab.render.rasterize_reference`). It tests every pixel against every triangle —
cost ``F x H x W`` — where facelab's rasterizer tests each triangle only against the pixels
in its bounding box.

The checkers compare the student's functions with facelab's implementation or with analytic
answers on small random inputs. No model files are needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from . import exercise
from ._util import F64, as_f64

__all__ = ["rasterize_from_scratch"]


# fmt: off
def rasterize_from_scratch(verts_screen, faces, H, W, chunk=4096):
    """Rasterize one mesh: verts_screen (V, 3) = pixel (u, v) and depth z, faces (F, 3) long.
    Returns pix_to_face (H, W) (-1: background), perspective-correct barycentrics (H, W, 3)
    and depth (H, W) (-1: background). Every triangle tests every pixel centre."""
    x, y, z = verts_screen[faces].unbind(-1)  # (F, 3) each: corner k of every triangle
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    ok = (area != 0) & (z > 0).all(1)  # drop degenerate triangles and those behind the camera
    i, j = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    px, py = (j.reshape(-1, 1) + 0.5).to(x), (i.reshape(-1, 1) + 0.5).to(x)  # pixel centres
    out = []
    for s in range(0, H * W, chunk):  # a chunk of pixels against all triangles at once
        qx, qy = px[s : s + chunk], py[s : s + chunk]  # (n, 1)
        # l_k = E_k / area, E_k the edge function of the edge opposite corner k
        lam = torch.stack([((x[:, (k + 2) % 3] - x[:, (k + 1) % 3]) * (qy - y[:, (k + 1) % 3])
                            - (y[:, (k + 2) % 3] - y[:, (k + 1) % 3]) * (qx - x[:, (k + 1) % 3]))
                           / area for k in range(3)], -1)  # (n, F, 3)
        inside = (lam >= 0).all(-1) & ok
        w = lam / z  # l_k / z_k: the perspective correction
        zq = torch.where(inside, 1 / w.sum(-1), torch.inf)  # (n, F) depth of each triangle
        depth, face = zq.min(-1)  # the z-buffer: the nearest triangle wins
        hit = torch.isfinite(depth)
        bary = w[torch.arange(len(face)), face] * depth[:, None]  # b_k = (l_k / z_k) z
        out.append((torch.where(hit, face, -1), torch.where(hit[:, None], bary, 0.0),
                    torch.where(hit, depth, -1.0)))
    p2f, bary, depth = (torch.cat(t) for t in zip(*out))
    return p2f.view(H, W), bary.view(H, W, 3), depth.view(H, W)
# fmt: on


def _random_triangles(g: torch.Generator, n: int) -> torch.Tensor:
    """``(n, 3, 2)`` random non-degenerate screen triangles."""
    tri = 40 * torch.rand(n, 3, 2, generator=g, dtype=F64)
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    return tri[area.abs() > 20]


@exercise(
    "ch4.screen_barycentrics",
    "barycentrics from edge functions",
    hint="E_k(p) = (x_{k+2} - x_{k+1}) (p_y - y_{k+1}) - (y_{k+2} - y_{k+1}) (p_x - x_{k+1}) "
    "(indices mod 3); l_k = E_k / (E_0 + E_1 + E_2) — the sum is twice the signed area",
)
def check_screen_barycentrics(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(41)
    n = 0
    tri = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 2.0]], dtype=F64)
    out = as_f64(fn(tri.clone(), tri))
    assert out.shape == (3, 3), f"expected shape (N, 3) = (3, 3), got {tuple(out.shape)}"
    assert torch.allclose(out, torch.eye(3, dtype=F64), atol=1e-12), (
        f"at corner k the barycentrics must be the unit vector e_k; got\n{out}"
    )
    n += 1
    for t in _random_triangles(g, 6):
        p = 60 * torch.rand(50, 2, generator=g, dtype=F64) - 10  # inside and outside
        lam = as_f64(fn(p, t))
        assert torch.allclose(lam.sum(1), torch.ones(50, dtype=F64), atol=1e-10), (
            "barycentrics must sum to 1 (also outside the triangle)"
        )
        assert torch.allclose(lam @ t, p, atol=1e-9), (
            "sum_k l_k p_k must give back the point p (for both orientations of the triangle)"
        )
        n += 1
    return n


@exercise(
    "ch4.perspective_correct",
    "perspective-correct barycentrics and depth",
    hint="w_k = l_k / z_k; depth = 1 / sum_k w_k; b_k = w_k * depth",
)
def check_perspective_correct(fn: Callable[..., Any]) -> int:
    from ..geometry.camera import intrinsics, project

    g = torch.Generator().manual_seed(42)
    n = 0
    lam = torch.tensor([[0.2, 0.3, 0.5]], dtype=F64)
    b, z = (as_f64(v) for v in fn(lam, torch.tensor([[2.0, 2.0, 2.0]], dtype=F64)))
    assert b.shape == (1, 3) and z.shape == (1,), (
        f"return (b (N, 3), depth (N,)), got shapes {tuple(b.shape)}, {tuple(z.shape)}"
    )
    assert torch.allclose(b, lam) and torch.allclose(z, as_f64([2.0])), (
        "all corners at the same depth: nothing to correct, b = l and depth = z"
    )
    n += 1
    K = intrinsics(200.0, 200.0, 64.0, 64.0).to(F64)
    for _ in range(4):
        X = torch.randn(3, 3, generator=g, dtype=F64) * torch.tensor([8.0, 8.0, 6.0], dtype=F64)
        X[:, 2] += 30  # a camera-space triangle, tilted in depth
        w3 = torch.rand(40, 3, generator=g, dtype=F64)
        w3 = w3 / w3.sum(1, keepdim=True)  # true (3D) barycentrics of points on it
        P = w3 @ X  # 3D points on the triangle
        uv = project(P[None], K)[0]
        tri = project(X[None], K)[0]
        # screen-space barycentrics of the projected points
        d = tri[1:] - tri[0]
        l12 = torch.linalg.solve(d.T, (uv - tri[0]).T).T
        lam = torch.cat([1 - l12.sum(1, keepdim=True), l12], 1)
        b, z = (as_f64(v) for v in fn(lam, X[:, 2].expand(40, 3)))
        assert torch.allclose(z, P[:, 2], atol=1e-8), "depth: the true camera z of the point"
        assert torch.allclose(b, w3, atol=1e-8), (
            "b must be the barycentrics of the 3D point (b @ X = P): attributes are linear in "
            "camera space, not on the screen"
        )
        n += 1
    return n


@exercise(
    "ch4.sh_basis",
    "the nine spherical harmonics",
    hint="order (0,0), (1,-1), (1,0), (1,1), (2,-2), (2,-1), (2,0), (2,1), (2,2): 0.282095, "
    "0.488603 * (y, z, x), 1.092548 * (xy, yz), 0.315392 (3z^2 - 1), 1.092548 xz, "
    "0.546274 (x^2 - y^2)",
)
def check_sh_basis(fn: Callable[..., Any]) -> int:
    from ..render.shading import sh_basis

    g = torch.Generator().manual_seed(43)
    n = 0
    up = as_f64(fn(torch.tensor([[0.0, 0.0, 1.0]], dtype=F64)))
    assert up.shape == (1, 9), f"expected shape (N, 9) = (1, 9), got {tuple(up.shape)}"
    expect = sh_basis(torch.tensor([[0.0, 0.0, 1.0]], dtype=F64), lambertian=False)
    assert torch.allclose(up, expect, atol=1e-5), (
        f"at n = +z only Y00, Y10 and Y20 are non-zero: expected {expect[0].numpy().round(6)}, "
        f"got {up[0].numpy().round(6)}"
    )
    n += 1
    nrm = torch.nn.functional.normalize(torch.randn(200, 3, generator=g, dtype=F64), dim=-1)
    out = as_f64(fn(nrm))
    ref = sh_basis(nrm, lambertian=False)
    bad = (out - ref).abs().amax(0) > 1e-5
    assert not bool(bad.any()), (
        f"basis functions {bad.nonzero().flatten().tolist()} differ from Ramamoorthi & Hanrahan's "
        "(check the order and the constants)"
    )
    n += 1
    # orthonormal on the sphere: Monte-Carlo Gram matrix ~ I
    nrm = torch.nn.functional.normalize(torch.randn(40000, 3, generator=g, dtype=F64), dim=-1)
    Y = as_f64(fn(nrm))
    gram = 4 * math.pi * Y.T @ Y / len(Y)
    assert torch.allclose(gram, torch.eye(9, dtype=F64), atol=0.06), "not orthonormal"
    return n + 1


@exercise(
    "ch4.soft_coverage",
    "SoftRas coverage of one pixel",
    hint="D_j = sigmoid(delta_j d_j^2 / sigma) with delta_j = +1 inside, -1 outside; "
    "A = 1 - prod_j (1 - D_j)",
)
def check_soft_coverage(fn: Callable[..., Any]) -> int:
    n = 0
    one = float(as_f64(fn(as_f64([0.0]), torch.tensor([False]), 1.0)))
    assert abs(one - 0.5) < 1e-9, f"a pixel centre exactly on an edge has D = 1/2, got {one}"
    n += 1
    a = float(as_f64(fn(as_f64([4.0]), torch.tensor([True]), 2.0)))
    assert abs(a - 1 / (1 + math.exp(-2.0))) < 1e-9, (
        f"inside, d^2 = 4, sigma = 2: expected sigmoid(2) = {1 / (1 + math.exp(-2)):.6f}, got {a:.6f}"
    )
    n += 1
    a = float(as_f64(fn(as_f64([4.0]), torch.tensor([False]), 2.0)))
    assert abs(a - 1 / (1 + math.exp(2.0))) < 1e-9, "outside the sign flips: sigmoid(-d^2/sigma)"
    n += 1
    d2 = as_f64([1.0, 0.5, 3.0])
    ins = torch.tensor([False, True, False])
    D = torch.sigmoid(torch.where(ins, d2, -d2) / 0.7)
    expect = float(1 - (1 - D).prod())
    a = float(as_f64(fn(d2, ins, 0.7)))
    assert abs(a - expect) < 1e-9, (
        f"three triangles: A = 1 - prod(1 - D_j) = {expect:.6f} (probability that at least one "
        f"covers the pixel), got {a:.6f}"
    )
    n += 1
    far = float(as_f64(fn(as_f64([9.0, 16.0]), torch.tensor([False, False]), 0.01)))
    near = float(as_f64(fn(as_f64([9.0, 16.0]), torch.tensor([True, False]), 0.01)))
    assert far < 1e-6 and near > 1 - 1e-6, "as sigma -> 0 the coverage must become the hard mask"
    return n + 1
