"""The generator's linear path (``GeneratorConfig.linear_basis``): a PCA model inside the GAN.

Known answers: whitening gives coefficients with zero mean and identity covariance; the image
is exactly the synthesis network's output plus ``sum_k a_k basis_k``; the randomised PCA
agrees with the exact one; bad input is refused; a checkpoint round trip keeps the path."""

from __future__ import annotations

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.gan import Generator, GeneratorConfig
from facelab.models.albedo import AlbedoPCA

CH = {"4": 8, "8": 8, "16": 4}
K = 6


def _config(**kw) -> GeneratorConfig:
    base = dict(resolution=16, z_dim=8, w_dim=16, mapping_layers=2, channels=CH, base_image=True,
                rgb_init=0.03, linear_basis=K)  # fmt: skip
    return GeneratorConfig(**{**base, **kw})


def _basis(dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(3 * 16 * 16, K, generator=g, dtype=torch.float64))
    std = torch.linspace(2.0, 0.5, K, dtype=torch.float64)
    return (q.T * std[:, None]).reshape(K, 3, 16, 16).to(dtype)


def test_config_checks_and_round_trip():
    with pytest.raises(InvalidInput, match="linear_basis"):
        _config(linear_basis=-1)
    cfg = _config()
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    old = {k: v for k, v in cfg.to_dict().items() if k != "linear_basis"}
    assert GeneratorConfig.from_dict(old).linear_basis == 0  # configs written before the field
    G0 = Generator(_config(linear_basis=0))
    assert G0.basis is None and G0.coeff is None
    assert not any("basis" in k or "coeff" in k for k in G0.state_dict())


def test_whitened_coefficients_have_identity_covariance():
    torch.manual_seed(0)
    G = Generator(_config())
    G.init_linear_basis(_basis(), n_w=4096, seed=1)
    z = torch.randn(8192, 8, generator=torch.Generator().manual_seed(99))  # fresh draws
    with torch.no_grad():
        a = G.coeff(G.mapping(z)).double()
    assert a.shape == (8192, K)
    assert a.mean(0).abs().max() < 0.08
    torch.testing.assert_close(torch.cov(a.T), torch.eye(K, dtype=torch.float64), atol=0.1, rtol=0)


def test_image_is_synthesis_plus_linear_combination_of_the_basis():
    torch.manual_seed(0)
    G = Generator(_config())
    mean = torch.rand(3, 16, 16)
    G.init_base(mean)
    basis = _basis()
    G.init_linear_basis(basis, n_w=1024, seed=0)
    z = torch.randn(5, 8)
    with torch.no_grad():
        x = G(z, noise_mode="const")
        a = G.coeff(G.mapping(z))
        G.basis.zero_()
        x_res = G(z, noise_mode="const")  # the same generator without its linear path
    want = x_res + torch.einsum("bk,kchw->bchw", a, basis)
    torch.testing.assert_close(x, want, atol=1e-5, rtol=1e-5)
    # the linear part, projected back on the basis, returns the coefficients (orthogonal basis)
    b = basis.reshape(K, -1)
    got = (x - x_res).reshape(5, -1) @ b.T / b.square().sum(1)
    torch.testing.assert_close(got, a, atol=1e-4, rtol=1e-4)
    # an untrained residual is small beside the PCA part: the untrained G is PCA + residual
    assert (x_res - mean).abs().mean() < 0.5 * (x - x_res).abs().mean()


def test_gradient_reaches_mapping_and_coefficients_not_basis():
    torch.manual_seed(0)
    G = Generator(_config())
    G.init_linear_basis(_basis(), n_w=512)
    G(torch.randn(3, 8)).square().mean().backward()
    assert G.coeff.weight.grad is not None and G.coeff.weight.grad.abs().sum() > 0
    assert G.mapping.net[0].weight.grad.abs().sum() > 0
    assert "basis" in dict(G.named_buffers()) and not G.basis.requires_grad


def test_float64_follows_the_module():
    torch.manual_seed(0)
    G = Generator(_config()).double()
    G.init_linear_basis(_basis(torch.float32), n_w=512)  # a float32 basis is cast to G's dtype
    x = G(torch.randn(2, 8, dtype=torch.float64))
    assert x.dtype == torch.float64 and G.basis.dtype == torch.float64


def test_bad_input_is_refused():
    G = Generator(_config())
    with pytest.raises(InvalidInput, match=r"basis must be \(6, 3, 16, 16\)"):
        G.init_linear_basis(_basis()[:4])
    with pytest.raises(InvalidInput, match="no linear path"):
        Generator(_config(linear_basis=0)).init_linear_basis(_basis())


def test_state_dict_round_trip_keeps_the_linear_path():
    torch.manual_seed(0)
    G = Generator(_config())
    G.init_linear_basis(_basis(), n_w=512)
    G2 = Generator(GeneratorConfig.from_dict(G.config.to_dict()))
    G2.load_state_dict(G.state_dict())
    z = torch.randn(3, 8)
    torch.testing.assert_close(G2(z, noise_mode="const"), G(z, noise_mode="const"))


def test_lowrank_pca_agrees_with_exact_pca():
    g = torch.Generator().manual_seed(0)
    # 300 samples of a 12-dimensional linear model plus small noise, 3 x 8 x 8 texels
    comps = torch.randn(12, 3 * 64, generator=g, dtype=torch.float64)
    coef = torch.randn(300, 12, generator=g, dtype=torch.float64) * torch.linspace(3, 0.5, 12)
    x = coef @ comps + 0.01 * torch.randn(300, 192, generator=g, dtype=torch.float64)
    x = x.reshape(300, 3, 8, 8)
    exact, fast = AlbedoPCA.fit(x, 8), AlbedoPCA.fit_lowrank(x, 8, seed=0)
    torch.testing.assert_close(fast.std, exact.std, rtol=1e-6, atol=0)
    torch.testing.assert_close(fast.basis, exact.basis, rtol=0, atol=1e-6)
    torch.testing.assert_close(fast.mean, exact.mean)
    assert float(fast.total_variance) == pytest.approx(float(exact.total_variance), rel=1e-9)
    assert fast.basis.dtype == torch.float64
    with pytest.raises(InvalidInput, match="k must be"):
        AlbedoPCA.fit_lowrank(x[:5], 5)
