"""The linear path's whitened coefficients and orthogonal residual
(``GeneratorConfig.whiten_coeff``, ``residual_orthogonal``).

Known answers: after calibration the coefficients of the same seeded ``z`` have zero mean and
identity covariance; the running update is the moments of the mixture of the old statistics
and the batch; the residual has no component in the basis' span, so the output's PCA
coordinates are exactly the coefficients; float64 follows the module (a float32 leak fails);
a finite-difference gradient of the whitened path; a training run exports exact statistics;
bad input is refused."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.gan import Generator, GeneratorConfig

CH = {"4": 8, "8": 8, "16": 4}
K = 5


def _config(**kw) -> GeneratorConfig:
    base = dict(resolution=16, z_dim=8, w_dim=16, mapping_layers=2, channels=CH, base_image=True,
                rgb_init=1.0, train_base=False, linear_basis=K, whiten_coeff=True,
                residual_orthogonal=True)  # fmt: skip
    return GeneratorConfig(**{**base, **kw})


def _basis(dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(3 * 16 * 16, K, generator=g, dtype=torch.float64))
    std = torch.linspace(2.0, 0.5, K, dtype=torch.float64)
    return (q.T * std[:, None]).reshape(K, 3, 16, 16).to(dtype)


def _generator(dtype=torch.float32, **kw) -> Generator:
    torch.manual_seed(0)
    G = Generator(_config(**kw)).to(dtype)
    G.init_base(torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1)))
    G.init_linear_basis(_basis(dtype))
    return G


def _seeded_w(G: Generator, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return G.mapping(torch.randn(n, G.config.z_dim, generator=g).to(G.const))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_calibrated_coefficients_are_white(dtype):
    G = _generator(dtype)
    with torch.no_grad():
        # move the raw coefficients away from white: the whitening must undo it
        G.coeff.bias.add_(torch.linspace(-50, 50, K, dtype=dtype))
        G.coeff.weight.mul_(torch.linspace(0.3, 3.0, K, dtype=dtype)[:, None])
        raw = G.raw_coefficients(_seeded_w(G, 1024, 4))
        assert raw.mean(0).abs().max() > 0.2
        G.calibrate_coeff_stats(1024, seed=4, batch=300)
        a = G.coefficients(_seeded_w(G, 1024, 4))
    assert a.dtype == dtype and G.coeff_whiten.dtype == dtype
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(a.mean(0), torch.zeros(K, dtype=dtype), atol=tol, rtol=0)
    cov = torch.cov(a.T, correction=0)
    torch.testing.assert_close(cov, torch.eye(K, dtype=dtype), atol=10 * tol, rtol=0)
    # ZCA: the symmetric inverse square root (W C W = I and W = W^T)
    W, C = G.coeff_whiten, G.coeff_cov
    torch.testing.assert_close(W, W.T, atol=tol, rtol=0)
    torch.testing.assert_close(W @ C @ W, torch.eye(K, dtype=dtype), atol=10 * tol, rtol=0)


def test_running_update_is_the_mixture_of_old_statistics_and_batch():
    G = _generator(torch.float64)
    g = torch.Generator().manual_seed(7)
    m0 = torch.randn(K, generator=g, dtype=torch.float64)
    a0 = torch.randn(K, K, generator=g, dtype=torch.float64)
    c0 = a0 @ a0.T + torch.eye(K, dtype=torch.float64)
    G.coeff_mean.copy_(m0)
    G.coeff_cov.copy_(c0)
    x = 3.0 + 2.0 * torch.randn(40, K, generator=g, dtype=torch.float64)
    beta = 0.7
    G.update_coeff_stats(x, beta)
    mb = x.mean(0)
    cb = torch.cov(x.T, correction=0)
    mean = beta * m0 + (1 - beta) * mb
    # second moments about the mixture mean, each component's own plus its offset
    d0, db = (m0 - mean)[:, None], (mb - mean)[:, None]
    cov = beta * (c0 + d0 @ d0.T) + (1 - beta) * (cb + db @ db.T)
    torch.testing.assert_close(G.coeff_mean, mean, atol=1e-12, rtol=0)
    torch.testing.assert_close(G.coeff_cov, cov, atol=1e-10, rtol=0)
    w = G.coeff_whiten
    torch.testing.assert_close(w @ cov @ w, torch.eye(K, dtype=torch.float64), atol=1e-9, rtol=0)
    G.update_coeff_stats(x, 0.0)  # beta 0: the batch's own statistics
    torch.testing.assert_close(G.coeff_cov, cb, atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_residual_is_orthogonal_to_the_basis(dtype):
    G = _generator(dtype)
    ws = G.mix_ws(_seeded_w(G, 8, 5))
    with torch.no_grad():
        x = G.synthesis(ws, noise_mode="const")
        a = G.coefficients(ws[:, 0])
    assert x.dtype == dtype
    basis = G.basis.reshape(K, -1)
    lin = a @ basis
    res = (x - G.base[None]).reshape(8, -1) - lin
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert res.abs().max() > 0.1  # rgb_init 1: a residual that is not small
    # no component in the span: the output's coordinates in the basis are the coefficients
    torch.testing.assert_close(res @ basis.T, torch.zeros(8, K, dtype=dtype), atol=tol, rtol=0)
    coords = torch.linalg.lstsq(basis.T, (x - G.base[None]).reshape(8, -1).T).solution.T
    torch.testing.assert_close(coords, a, atol=10 * tol, rtol=0)
    # without the projection the same network leaves a component in the span
    G2 = _generator(dtype, residual_orthogonal=False)
    G2.load_state_dict({k: v for k, v in G.state_dict().items() if k != "basis_q"})
    with torch.no_grad():
        x2 = G2.synthesis(ws, noise_mode="const")
    res2 = (x2 - G2.base[None]).reshape(8, -1) - lin
    assert (res2 @ basis.T).abs().max() > 100 * tol


def test_whitened_path_gradient_matches_finite_differences():
    G = _generator(torch.float64)
    with torch.no_grad():
        G.coeff.bias.add_(1.0)
        G.calibrate_coeff_stats(256, seed=1)
    w = _seeded_w(G, 3, 2).detach().requires_grad_(True)
    ws = lambda w: G.mix_ws(w)  # noqa: E731
    assert torch.autograd.gradcheck(
        lambda w: G.synthesis(ws(w), noise_mode="const")[:, :, ::4, ::4], (w,), eps=1e-6, atol=1e-6
    )


def test_bad_input_and_old_configs():
    with pytest.raises(InvalidInput, match="whiten_coeff needs a linear path"):
        _config(linear_basis=0, residual_orthogonal=False)
    with pytest.raises(InvalidInput, match="residual_orthogonal needs a linear path"):
        _config(linear_basis=0, whiten_coeff=False)
    with pytest.raises(InvalidInput, match="residual_orthogonal needs"):
        _config(architecture="progressive", whiten_coeff=False)
    G = _generator()
    with pytest.raises(InvalidInput, match="raw must be"):
        G.update_coeff_stats(torch.zeros(4, K + 1))
    with pytest.raises(InvalidInput, match="raw must be"):
        G.update_coeff_stats(torch.zeros(1, K))
    G0 = _generator(whiten_coeff=False, residual_orthogonal=False)
    assert G0.coeff_whiten is None and G0.basis_q is None
    assert "coeff_whiten" not in G0.state_dict() and "basis_q" not in G0.state_dict()
    with pytest.raises(InvalidInput, match="does not whiten"):
        G0.calibrate_coeff_stats(8)
    with pytest.raises(InvalidInput, match="does not whiten"):
        G0.update_coeff_stats(torch.zeros(4, K))
    old = {k: v for k, v in _config().to_dict().items()
           if k not in ("whiten_coeff", "residual_orthogonal")}  # fmt: skip
    cfg = GeneratorConfig.from_dict(old)  # configs written before these options
    assert cfg.whiten_coeff is False and cfg.residual_orthogonal is False


def test_training_exports_exact_statistics(tmp_path):
    from facelab.gan.train import CONFIGS, load_generator, train

    tiny = CONFIGS["tiny-16"]
    gen = {**tiny.generator, "base_image": True, "train_base": False, "linear_basis": 4,
           "whiten_coeff": True, "residual_orthogonal": True}  # fmt: skip
    cfg = replace(tiny, generator=gen, steps=6, ckpt_interval=3)
    data = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    r = train(cfg, tmp_path / "w", out=tmp_path / "o", data=data, progress=False)
    assert r["step"] == 6
    G, meta = load_generator(tmp_path / "o" / "texture_gan")
    assert meta["coeff_stats"] == {"samples": 4096, "seed": cfg.seed}
    with torch.no_grad():
        a = G.coefficients(_seeded_w(G, 4096, cfg.seed))
    torch.testing.assert_close(a.mean(0), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.cov(a.T, correction=0), torch.eye(4), atol=1e-3, rtol=0)
    # the running statistics moved during training (the checkpoint's G holds them)
    Gw, _ = load_generator(tmp_path / "w" / "checkpoint")
    assert not torch.allclose(Gw.coeff_cov, torch.eye(4))


def _residual_cfg(steps: int):
    from facelab.gan.train import CONFIGS

    tiny = CONFIGS["tiny-16"]
    gen = {**tiny.generator, "base_image": True, "train_base": False, "linear_basis": 4,
           "residual_orthogonal": True, "center_output": True}  # fmt: skip
    return replace(tiny, generator=gen, steps=steps, ckpt_interval=100, disc_view="residual")


def test_residual_view_known_answers():
    from facelab.gan.train import residual_view

    G = _generator(torch.float64)
    data = torch.rand(
        40, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    view = residual_view(G, data)
    v = view(data)
    assert v.dtype == torch.float64
    torch.testing.assert_close(v.std(), torch.tensor(1.0, dtype=torch.float64))  # unit scale
    basis = G.basis.reshape(K, -1)
    proj = v.reshape(40, -1) @ basis.T
    torch.testing.assert_close(proj, torch.zeros_like(proj), atol=1e-9, rtol=0)
    # anything in the basis' span (a PCA sample around the base) is invisible to it
    lin = (torch.randn(3, K, dtype=torch.float64) @ basis).reshape(3, 3, 16, 16) + G.base[None]
    assert view(lin).abs().max() < 1e-9


def test_residual_game_leaves_the_linear_path_untouched(tmp_path):
    from facelab.gan.train import train

    data = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    G0 = train(_residual_cfg(0), tmp_path / "w0", data=data, progress=False)["G"]
    G1 = train(_residual_cfg(6), tmp_path / "w1", data=data, progress=False)["G"]
    frozen = ("mapping.", "coeff.")
    moved = []
    for (n, p0), (_, p1) in zip(G0.named_parameters(), G1.named_parameters()):
        if n.startswith(frozen):
            torch.testing.assert_close(p1, p0, atol=0, rtol=0, msg=n)
        elif not torch.equal(p0, p1):
            moved.append(n)
    assert any(n.startswith("convs.") for n in moved)  # the synthesis network did learn
    with pytest.raises(InvalidInput, match="residual_orthogonal=True"):
        replace(_residual_cfg(1), generator={**_residual_cfg(1).generator,
                                             "residual_orthogonal": False})  # fmt: skip
    with pytest.raises(InvalidInput, match="disc_view"):
        replace(_residual_cfg(1), disc_view="pixels")
