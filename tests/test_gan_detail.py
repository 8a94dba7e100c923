"""The residual's sampling scale (``Generator.detail``, ``TrainConfig.sample_detail``) and the
discriminator conditioned on the PCA coordinates (``TrainConfig.disc_cond="coefficients"``).

Known answers: ``detail = 0`` gives exactly the linear (PCA) part, any ``detail`` is the
linear part plus that multiple of the centred residual, and ``detail = 1`` is the unscaled
generator; calibration does not depend on the attribute; the export carries the default
through a round trip; the coefficient view of maps built from known coordinates returns
them, standardised; a conditioned game trains the discriminator's projection; float64 follows
the module; bad input is refused."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.gan import Generator, GeneratorConfig

CH = {"4": 8, "8": 8, "16": 4}
K = 5


def _generator(dtype=torch.float64) -> Generator:
    cfg = GeneratorConfig(resolution=16, z_dim=8, w_dim=16, mapping_layers=2, channels=CH,
                          base_image=True, rgb_init=1.0, train_base=False, linear_basis=K,
                          residual_orthogonal=True, center_output=True)  # fmt: skip
    torch.manual_seed(0)
    G = Generator(cfg).to(dtype)
    G.init_base(torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1)))
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(3 * 16 * 16, K, generator=g, dtype=torch.float64))
    G.init_linear_basis((q.T * torch.linspace(2.0, 0.5, K, dtype=torch.float64)[:, None])
                        .reshape(K, 3, 16, 16).to(dtype))  # fmt: skip
    G.calibrate_out_avg(256, seed=0)
    return G.eval()


def _parts(G: Generator, z: torch.Tensor):
    """(base + linear part, the generator at detail 1) for ``z`` (constant noise)."""
    ws = G.mix_ws(G.mapping(z))
    a = G.coefficients(ws[:, 0])
    lin = torch.einsum("bk,kchw->bchw", a, G.basis) + G.base[None]
    return lin, G.synthesis(ws, "const", detail=1.0)


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.3])
def test_detail_scales_the_centred_residual(lam):
    G = _generator()
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        lin, full = _parts(G, z)
        x = G(z, noise_mode="const", detail=lam)
    assert x.dtype == torch.float64
    assert (full - lin).abs().max() > 0.05  # a residual that is not small
    torch.testing.assert_close(x, lin + lam * (full - lin), atol=1e-12, rtol=0)
    if lam == 0.0:  # the PCA model: nothing off the basis' span
        off = (x - G.base[None]).reshape(6, -1)
        q = G.basis_q
        assert (off - (off @ q.T) @ q).abs().max() < 1e-10


def test_detail_attribute_is_the_default_and_calibration_ignores_it():
    G = _generator()
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        x1 = G(z, noise_mode="const")
        avg = G.out_avg.clone()
        G.detail = 0.7
        torch.testing.assert_close(G(z, noise_mode="const"), G(z, noise_mode="const", detail=0.7))
        assert not torch.allclose(G(z, noise_mode="const"), x1)
        torch.testing.assert_close(G(z, noise_mode="const", detail=1.0), x1, atol=0, rtol=0)
        G.calibrate_out_avg(256, seed=0)  # the learned mean is the unscaled generator's
    torch.testing.assert_close(G.out_avg, avg, atol=0, rtol=0)


def test_detail_needs_a_linear_path():
    G = Generator(GeneratorConfig(resolution=16, z_dim=8, w_dim=16, mapping_layers=2, channels=CH))
    z = torch.randn(2, 8)
    G(z, detail=1.0)  # the identity is fine
    with pytest.raises(InvalidInput, match="linear path"):
        G(z, detail=0.5)


def _cfg(steps: int, **kw):
    from facelab.gan.train import CONFIGS

    tiny = CONFIGS["tiny-16"]
    gen = {**tiny.generator, "base_image": True, "train_base": False, "linear_basis": 4,
           "residual_orthogonal": True, "center_output": True}  # fmt: skip
    return replace(tiny, generator=gen, steps=steps, ckpt_interval=100, disc_view="residual", **kw)


def test_coefficient_view_returns_standardised_coordinates():
    from facelab.gan.train import coefficient_view

    G = _generator()
    g = torch.Generator().manual_seed(0)
    coords = torch.randn(50, K, generator=g, dtype=torch.float64) * 3 + 1
    resid = torch.randn(50, 3 * 16 * 16, generator=g, dtype=torch.float64)
    q = G.basis_q
    resid = resid - (resid @ q.T) @ q  # off the span: must not show
    data = (coords @ q + 0.1 * resid).reshape(50, 3, 16, 16) + G.base[None]
    cond = coefficient_view(G, data)
    c = cond(data)
    assert c.shape == (50, K) and c.dtype == torch.float64
    want = (coords - coords.mean(0)) / coords.std(0)
    torch.testing.assert_close(c, want, atol=1e-9, rtol=0)
    with pytest.raises(InvalidInput, match="residual_orthogonal"):
        coefficient_view(Generator(GeneratorConfig(resolution=16, z_dim=8, w_dim=16,
                                                   mapping_layers=2, channels=CH)), data)  # fmt: skip


def test_conditioned_game_trains_the_projection_and_exports_the_detail(tmp_path):
    from facelab.gan.train import load_generator, train

    data = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cfg = _cfg(4, disc_cond="coefficients", r1_interval=2, sample_detail=0.6)
    assert cfg.disc_config().c_dim == 4
    r0 = train(_cfg(0, disc_cond="coefficients"), tmp_path / "w0", data=data, progress=False)
    r = train(cfg, tmp_path / "w", out=tmp_path / "o", data=data, progress=False)
    e0, e1 = r0["D"].embed.weight, r["D"].embed.weight
    assert not torch.allclose(e0, e1)  # the projection term got gradients
    assert r["G"].detail == 1.0  # training never scales
    G, meta = load_generator(tmp_path / "o" / "texture_gan")
    assert G.detail == 0.6 and meta["config"]["sample_detail"] == 0.6


def test_bad_configs():
    with pytest.raises(InvalidInput, match="disc_cond"):
        _cfg(1, disc_cond="labels")
    with pytest.raises(InvalidInput, match="needs disc_view='residual'"):
        replace(_cfg(1), disc_view="image", disc_cond="coefficients")
    with pytest.raises(InvalidInput, match="sample_detail must be"):
        _cfg(1, sample_detail=-0.5)
    from facelab.gan.train import CONFIGS

    with pytest.raises(InvalidInput, match="linear path"):
        replace(CONFIGS["tiny-16"], sample_detail=0.5)


def test_claim_verdicts_known_answers():
    import numpy as np

    from facelab.methods.ganfit.evaluate import claim_verdicts

    g = np.random.default_rng(0)
    floor = {"high_band_each": np.ones(4), "kid_values": np.zeros(100)}
    pca = {"high_band_each": 0.3 + 0.02 * g.standard_normal(256),
           "kid_values": 0.17 + 0.01 * g.standard_normal(100)}  # fmt: skip
    close = {"high_band_each": 0.9 + 0.02 * g.standard_normal(256),
             "kid_values": pca["kid_values"] - 0.04}  # fmt: skip
    v = claim_verdicts([floor, floor, pca, close])
    assert v["kid"].word == "holds" and v["high_band"].word == "holds"
    # three times the data's energy is as far off (|log 3| > |log 0.3|) as too little
    loud = {"high_band_each": np.full(256, 3.5), "kid_values": pca["kid_values"] + 0.04}
    v = claim_verdicts([floor, floor, pca, loud])
    assert v["kid"].word == "fails" and v["high_band"].word == "fails"
