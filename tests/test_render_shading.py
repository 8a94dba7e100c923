"""Tests of facelab.render.shading: SH constants and identities, Lambert, Blinn-Phong, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.render import (
    blinn_phong,
    depth_to_image,
    encode_normals,
    lambert,
    sh_ambient,
    sh_basis,
    sh_shading,
)

D = torch.float64


def _sphere_points(n=4000):
    i = torch.arange(n, dtype=D) + 0.5
    z = 1 - 2 * i / n
    r = (1 - z * z).sqrt()
    phi = math.pi * (3 - math.sqrt(5)) * i
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)


def test_sh_basis_is_orthonormal_on_the_sphere():
    n = _sphere_points()
    Y = sh_basis(n, lambertian=False)
    gram = Y.T @ Y * (4 * math.pi / n.shape[0])  # quadrature of int Y_i Y_j dw
    assert torch.allclose(gram, torch.eye(9, dtype=D), atol=2e-3)


def test_sh_irradiance_matches_ramamoorthi_hanrahan_closed_form():
    # E(n) = c1 L22 (x^2 - y^2) + c3 L20 z^2 + c4 L00 - c5 L20
    #        + 2 c1 (L2-2 xy + L21 xz + L2-1 yz) + 2 c2 (L11 x + L1-1 y + L10 z)   (R-H eq. 13)
    c1, c2, c3, c4, c5 = 0.429043, 0.511664, 0.743125, 0.886227, 0.247708
    g = torch.Generator().manual_seed(0)
    L = torch.randn(2, 9, 3, generator=g, dtype=D)
    n = torch.nn.functional.normalize(torch.randn(2, 50, 3, generator=g, dtype=D), dim=-1)
    x, y, z = (t.unsqueeze(-1) for t in n.unbind(-1))
    Lk = [L[:, k].unsqueeze(1) for k in range(9)]  # order 00, 1-1, 10, 11, 2-2, 2-1, 20, 21, 22
    E = (
        c1 * Lk[8] * (x * x - y * y)
        + c3 * Lk[6] * z * z
        + c4 * Lk[0]
        - c5 * Lk[6]
        + 2 * c1 * (Lk[4] * x * y + Lk[7] * x * z + Lk[5] * y * z)
        + 2 * c2 * (Lk[3] * x + Lk[1] * y + Lk[2] * z)
    )
    # facelab's Lambertian basis folds A_l / pi: shading = E / pi
    assert torch.allclose(sh_shading(n, L) * math.pi, E, atol=2e-5)


def test_sh_ambient_gives_uniform_shading_and_lambertian_convolution():
    n = _sphere_points(500).unsqueeze(0)
    s = sh_shading(n, sh_ambient(0.7, dtype=D))
    assert torch.allclose(s, torch.full_like(s, 0.7), atol=1e-5)
    # A directional light of radiance "delta" in direction l: L_lm = Y_lm(l); its irradiance
    # must be the order-2 SH projection of max(0, n.l) (Funk-Hecke): the residual is
    # orthogonal to all nine basis functions, and small (max ~0.09 near the terminator)
    l_dir = torch.tensor([0.0, 0.0, 1.0], dtype=D)
    L = sh_basis(l_dir, lambertian=False).reshape(1, 9, 1)
    approx = sh_shading(n, L)[0, :, 0] * math.pi
    exact = (n[0] @ l_dir).clamp_min(0)
    Y = sh_basis(n[0], lambertian=False)
    resid_coeffs = Y.T @ (exact - approx) * (4 * math.pi / n.shape[1])
    assert resid_coeffs.abs().max() < 1e-3
    assert (approx - exact).abs().mean() < 0.035 and (approx - exact).abs().max() < 0.1


def test_sh_shading_per_pixel_and_packed_shapes_agree():
    g = torch.Generator().manual_seed(1)
    n = torch.nn.functional.normalize(torch.randn(2, 4, 5, 3, generator=g, dtype=D), dim=-1)
    L = torch.randn(2, 9, 3, generator=g, dtype=D)
    img = sh_shading(n, L)
    assert img.shape == (2, 4, 5, 3)
    bi = torch.arange(2).repeat_interleave(20)
    packed = sh_shading(n.reshape(-1, 3), L[bi])
    assert torch.allclose(packed, img.reshape(-1, 3))
    with pytest.raises(InvalidInput, match="9"):
        sh_shading(n, L[:, :4])


def test_sh_shading_gradcheck():
    g = torch.Generator().manual_seed(2)
    n = torch.nn.functional.normalize(torch.randn(1, 6, 3, generator=g, dtype=D), dim=-1)
    L = torch.randn(1, 9, 3, generator=g, dtype=D)
    assert torch.autograd.gradcheck(sh_shading, (n.requires_grad_(), L.requires_grad_()))


def test_lambert_and_blinn_phong_known_values():
    n = torch.tensor([[[0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]], dtype=D)
    light = torch.tensor([[0.0, -0.6, -0.8]], dtype=D)
    col = torch.tensor([[1.0, 0.5, 0.25]], dtype=D)
    out = lambert(n, light, col)
    assert torch.allclose(out[0, 0], 0.8 * col[0]) and torch.equal(
        out[0, 1], torch.zeros(3, dtype=D)
    )
    # mirror configuration: view = reflection of light -> h = n, specular = k_s
    view = torch.tensor([[[0.0, 0.6, -0.8], [0.0, 0.6, -0.8]]], dtype=D)
    spec = blinn_phong(n, light, view, shininess=20.0)
    assert spec[0, 0].item() == pytest.approx(1.0)
    assert spec[0, 1].item() == 0.0  # light behind the surface
    h = torch.nn.functional.normalize(
        torch.tensor([0.0, 0.0, -1.0]) + torch.tensor([0.0, 1.0, 0.0]), dim=0
    )
    v2 = torch.tensor([[[0.0, 1.0, 0.0]]], dtype=D)
    sp = blinn_phong(n[:, :1], torch.tensor([[0.0, 0.0, -1.0]], dtype=D), v2, 8.0)
    assert sp.item() == pytest.approx(float(h[2].abs()) ** 8)


def test_lambert_blinn_phong_gradcheck():
    g = torch.Generator().manual_seed(3)
    n = torch.nn.functional.normalize(torch.randn(1, 5, 3, generator=g, dtype=D), dim=-1)
    n[..., 2] = -n[..., 2].abs()
    l_dir = torch.nn.functional.normalize(torch.tensor([[0.2, -0.3, -1.0]], dtype=D), dim=-1)
    v = torch.nn.functional.normalize(torch.tensor([[-0.1, 0.2, -1.0]], dtype=D), dim=-1)
    assert torch.autograd.gradcheck(
        lambda nn_, ll: lambert(nn_, ll) + blinn_phong(nn_, ll, v, 5.0),
        (n.requires_grad_(), l_dir.requires_grad_()),
    )


def test_encodings():
    n = torch.tensor([[[[0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]]])
    m = torch.tensor([[[True, False]]])
    enc = encode_normals(n, m)
    assert torch.equal(enc[0, 0, 0], torch.tensor([0.5, 0.5, 0.0]))
    assert torch.equal(enc[0, 0, 1], torch.zeros(3))
    depth = torch.tensor([[[2.0, 4.0, 9.0]]])
    img = depth_to_image(depth, torch.tensor([[[True, True, False]]]))
    assert img[0, 0, 0] == 1.0 and img[0, 0, 1] == pytest.approx(0.2) and img[0, 0, 2] == 0


def test_normalized_blinn_phong_is_the_energy_normalised_lobe():
    from facelab.render import normalized_blinn_phong

    D = torch.float64
    n = torch.tensor([[0.0, 0.0, -1.0]], dtype=D)
    # mirror configuration n = l = v: the lobe's peak (s + 8) / (8 pi)
    for s in (1.0, 20.0, 200.0):
        val = normalized_blinn_phong(n, n, n, s)
        torch.testing.assert_close(val, torch.tensor([(s + 8) / (8 * math.pi)], dtype=D))
    # it is blinn_phong times (s + 8) / (8 pi) times n.l for a light in front
    ll = torch.nn.functional.normalize(torch.tensor([[0.3, -0.2, -1.0]], dtype=D), dim=-1)
    v = torch.nn.functional.normalize(torch.tensor([[-0.1, 0.1, -1.0]], dtype=D), dim=-1)
    classic = blinn_phong(n, ll, v, shininess=20.0)[..., 0]
    nl = (n * ll).sum(-1)
    torch.testing.assert_close(
        normalized_blinn_phong(n, ll, v, 20.0), classic * 28 / (8 * math.pi) * nl
    )
    # light behind the surface: 0
    assert float(normalized_blinn_phong(n, -n, n, 20.0)) == 0.0
