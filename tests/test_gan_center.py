"""The generator's centred output (``GeneratorConfig.center_output``): its mean is pinned to
the base image.

Known answers: after setting ``out_avg`` from a batch, the same batch re-synthesised averages
exactly to the base image; the running update is a lerp; the exported model of a training run
carries the exact calibrated mean; float64 follows the module; bad input is refused."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.gan import Generator, GeneratorConfig

CH = {"4": 8, "8": 8, "16": 4}


def _config(**kw) -> GeneratorConfig:
    base = dict(resolution=16, z_dim=8, w_dim=16, mapping_layers=2, channels=CH, base_image=True,
                rgb_init=1.0, train_base=False, linear_basis=4, center_output=True)  # fmt: skip
    return GeneratorConfig(**{**base, **kw})


def _batch(G: Generator, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.config.z_dim, generator=g).to(G.const)
    noise = [torch.randn(n, 1, b.shape[-2], b.shape[-1], generator=g).to(z)
             for b in (getattr(G, f"noise_const_{i}") for i in range(len(G.convs)))]  # fmt: skip
    return G.mix_ws(G.mapping(z)), noise


def _generator(dtype=torch.float32) -> Generator:
    torch.manual_seed(0)
    G = Generator(_config()).to(dtype)
    G.init_base(torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1)))
    G.init_linear_basis(0.1 * torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(2)))
    return G


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_centred_batch_mean_is_the_base_image(dtype):
    G = _generator(dtype)
    ws, noise = _batch(G, 64, 5)
    with torch.no_grad():
        before = G.synthesis(ws, noise=noise)
        assert before.dtype == dtype
        # untrained, rgb_init 1: the learned part has a mean far from zero
        assert (before.mean(0) - G.base).abs().max() > 0.05
        G.update_out_avg(before.mean(0), beta=0.0)
        after = G.synthesis(ws, noise=noise)
    assert G.out_avg.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(after.mean(0), G.base, atol=tol, rtol=0)
    # centring shifts every sample by the same image: the variation is untouched
    torch.testing.assert_close(after - after.mean(0), before - before.mean(0), atol=tol, rtol=0)
    raw = G.synthesis(ws, noise=noise, center=False)
    torch.testing.assert_close(raw - G.out_avg, after, atol=tol, rtol=0)


def test_running_update_is_a_lerp():
    G = _generator()
    ws, noise = _batch(G, 16, 7)
    with torch.no_grad():
        x = G.synthesis(ws, noise=noise)
        learned = x.mean(0) - G.base + G.out_avg  # the learned part's batch mean (out_avg = 0)
        G.update_out_avg(x.mean(0), beta=0.75)
    torch.testing.assert_close(G.out_avg, 0.25 * learned, atol=1e-6, rtol=0)


def test_calibration_is_the_learned_mean_and_centres_fresh_samples():
    G = _generator()
    G.calibrate_out_avg(n=512, seed=3)
    torch.testing.assert_close(G.out_avg, G.learned_mean(512, seed=3), atol=1e-6, rtol=0)
    with torch.no_grad():  # fresh z: the mean is the base to sampling error
        x = torch.cat([G(torch.randn(512, 8, generator=torch.Generator().manual_seed(s)))
                       for s in range(8)])  # fmt: skip
        raw = x + G.out_avg - G.base
    err = (x.mean(0) - G.base).abs().mean()
    assert err < 0.25 * (raw.mean(0)).abs().mean()  # at least 4x closer than uncentred


def test_bad_input_refused():
    with pytest.raises(InvalidInput, match="center_output"):
        _config(architecture="progressive")
    G0 = Generator(_config(center_output=False))
    assert G0.out_avg is None and "out_avg" not in G0.state_dict()
    with pytest.raises(InvalidInput, match="center_output"):
        G0.update_out_avg(torch.zeros(3, 16, 16))
    with pytest.raises(InvalidInput, match="center_output"):
        G0.calibrate_out_avg(8)
    G = _generator()
    with pytest.raises(InvalidInput, match="samples_mean"):
        G.update_out_avg(torch.zeros(3, 8, 8))
    old = {k: v for k, v in _config().to_dict().items() if k != "center_output"}
    assert GeneratorConfig.from_dict(old).center_output is False  # configs written before it


def test_training_exports_the_calibrated_mean(tmp_path):
    from facelab.gan.train import CONFIGS, load_generator, train

    tiny = CONFIGS["tiny-16"]
    cfg = replace(tiny, generator={**tiny.generator, "base_image": True, "center_output": True},
                  steps=6, ckpt_interval=3)  # fmt: skip
    data = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    r = train(cfg, tmp_path / "w", out=tmp_path / "o", data=data, progress=False)
    assert r["step"] == 6
    G, meta = load_generator(tmp_path / "o" / "texture_gan")
    assert meta["out_avg"] == {"samples": 2048, "seed": cfg.seed}
    assert G.out_avg.abs().max() > 0  # the running mean was set from the first step on
    torch.testing.assert_close(G.out_avg, G.learned_mean(2048, seed=cfg.seed), atol=1e-6, rtol=0)
    # the training checkpoint's G holds the running mean (not the calibrated one)
    Gw, _ = load_generator(tmp_path / "w" / "checkpoint")
    assert Gw.out_avg.shape == (3, 16, 16)
