"""facelab.gan.resample: FIR up/down sampling, and the ``resample_filter`` / ``train_base``
options of the generator and discriminator (off by default: shipped weights unchanged)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from facelab.errors import InvalidInput
from facelab.gan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from facelab.gan.resample import (
    downsample2d,
    fir_filter2d,
    fir_kernel,
    upsample2d,
    upsample2d_reference,
)
from facelab.gan.train import CONFIGS, TrainConfig

B4 = (1, 3, 3, 1)
CH = {"4": 8, "8": 8, "16": 4}


def cosine(f: float, n: int, axis: int = -1, phase: float = 0.3) -> torch.Tensor:
    """``(1, 1, n, n)`` float64 image ``cos(2 pi f (i + 1/2) + phase)`` along ``axis``."""
    t = torch.cos(2 * math.pi * f * (torch.arange(n, dtype=torch.float64) + 0.5) + phase)
    img = t[None, :].expand(n, n) if axis == -1 else t[:, None].expand(n, n)
    return img[None, None].clone()


def test_kernel_dc_gain_and_bad_taps():
    h = fir_kernel(B4, torch.float64)
    assert h.dtype == torch.float64
    torch.testing.assert_close(h, torch.tensor([1, 3, 3, 1], dtype=torch.float64) / 8)
    x = torch.full((2, 3, 12, 12), 0.7, dtype=torch.float64)
    y = fir_filter2d(x, h, (1, 2))  # "same" size; away from the zero padding: the constant
    assert y.shape == x.shape and y.dtype == torch.float64
    torch.testing.assert_close(y[..., 2:-2, 2:-2], x[..., 2:-2, 2:-2])
    for bad in ([1, 2, 1], [1, 3, 2, 1], [1], [-1, -1]):
        with pytest.raises(InvalidInput):
            fir_kernel(bad)
    with pytest.raises(InvalidInput, match="even number"):
        GeneratorConfig(resolution=16, resample_filter=[1, 2, 1])


@pytest.mark.parametrize("f", [0.125, 0.25, 0.375, 0.5])
def test_frequency_response_is_cos_cubed_and_kills_nyquist(f):
    """Filtering a cosine of frequency f multiplies it by |H(f)| = |cos(pi f)|^3 (binomial
    [1,3,3,1]/8) against |cos(pi f)| for the 2x2 box; at Nyquist (a checkerboard) both are 0."""
    x = cosine(f, 32) * cosine(f, 32, axis=-2)  # separable 2-D cosine
    y = fir_filter2d(x, fir_kernel(B4, torch.float64), (1, 2))
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    # the filter is symmetric about the half-pixel between taps 1 and 2: a shift of 1/2 px
    shifted = cosine(f, 32, phase=0.3 + math.pi * f) * cosine(
        f, 32, axis=-2, phase=0.3 + math.pi * f
    )
    gain = abs(math.cos(math.pi * f)) ** 3
    torch.testing.assert_close(y[inner], gain**2 * shifted[inner], atol=1e-12, rtol=0)
    checker = torch.tensor([[(-1.0) ** (i + j) for j in range(16)] for i in range(16)])
    d = downsample2d(checker[None, None].double(), fir_kernel(B4, torch.float64))
    assert d.shape == (1, 1, 8, 8)
    assert d[..., 1:-1, 1:-1].abs().max() < 1e-12
    if f == 0.375:  # the band that aliases: the box lets 0.38 through, the binomial 0.056
        assert gain < 0.06 < 0.38 < abs(math.cos(math.pi * f))


def test_known_identities_bilinear_and_avg_pool():
    """[1,3,3,1] upsampling is bilinear interpolation (align_corners=False) away from the
    border; [1,1] downsampling is the 2x2 average pool, border included."""
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    u = upsample2d(x, fir_kernel(B4, torch.float64))
    assert u.shape == (2, 3, 16, 16) and u.dtype == torch.float64
    bil = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    torch.testing.assert_close(u[..., 1:-1, 1:-1], bil[..., 1:-1, 1:-1], atol=1e-12, rtol=0)
    assert (u[..., 0, :] - bil[..., 0, :]).abs().max() > 1e-3  # zero padding vs edge clamp
    torch.testing.assert_close(
        downsample2d(x, fir_kernel([1, 1], torch.float64)), F.avg_pool2d(x, 2)
    )
    for taps in ([1, 1], B4, [1, 5, 10, 10, 5, 1]):  # the transposed conv = zero insertion
        h = fir_kernel(taps, torch.float64)
        torch.testing.assert_close(upsample2d(x, h), upsample2d_reference(x, h), atol=1e-12, rtol=0)
    with pytest.raises(InvalidInput, match="even size"):
        downsample2d(torch.zeros(1, 1, 5, 5), fir_kernel(B4))


def test_up_then_down_round_trip_on_a_smooth_image():
    """down(up(x)) of a smooth image is x up to the filters' response (no shift): for a
    cosine of frequency f the round trip multiplies it by cos^6(pi f / 2) + sin^6(pi f / 2)."""
    h = fir_kernel(B4, torch.float64)
    for f in (1 / 32, 1 / 16, 1 / 8):
        x = cosine(f, 32) + 0.5 * cosine(f / 2, 32, axis=-2, phase=1.0)
        y = downsample2d(upsample2d(x, h), h)
        assert y.shape == x.shape
        inner = (..., slice(3, -3), slice(3, -3))
        c, s = math.cos(math.pi * f / 2), math.sin(math.pi * f / 2)
        want = (c**6 + s**6) * cosine(f, 32) + 0.5 * (
            math.cos(math.pi * f / 4) ** 6 + math.sin(math.pi * f / 4) ** 6
        ) * cosine(f / 2, 32, axis=-2, phase=1.0)
        torch.testing.assert_close(y[inner], want[inner], atol=1e-9, rtol=0)
        if f <= 1 / 32:  # a smooth image comes back (response 0.993 at 1/32 cycles/px)
            assert (y[inner] - x[inner]).abs().max() < 0.015


def test_gradcheck_up_and_down():
    h = fir_kernel(B4, torch.float64)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: upsample2d(t, h), (x,))
    assert torch.autograd.gradcheck(lambda t: downsample2d(t, h), (x,))


def test_config_round_trip_and_networks_with_filters():
    g = GeneratorConfig(resolution=16, z_dim=4, w_dim=8, mapping_layers=1, channels=CH,
                        resample_filter=[1, 3, 3, 1], base_image=True, train_base=False)  # fmt: skip
    assert g.resample_filter == B4
    g2 = GeneratorConfig.from_dict(g.to_dict())
    assert g2 == g and g.to_dict()["resample_filter"] == [1, 3, 3, 1]
    d = DiscriminatorConfig(resolution=16, channels=CH, resample_filter=B4)
    assert DiscriminatorConfig.from_dict(d.to_dict()) == d
    assert (
        GeneratorConfig().resample_filter is None and DiscriminatorConfig().resample_filter is None
    )
    torch.manual_seed(0)
    G, G0 = Generator(g), Generator(GeneratorConfig(**{**g.to_dict(), "resample_filter": None}))
    G0.load_state_dict(G.state_dict())  # the filter adds no parameters
    z = torch.randn(3, 4)
    x = G(z, noise_mode="const")
    assert x.shape == (3, 3, 16, 16)
    assert not torch.allclose(x, G0(z, noise_mode="const"))  # the border handling differs
    D = Discriminator(d)
    D0 = Discriminator(DiscriminatorConfig(resolution=16, channels=CH))
    D0.load_state_dict(D.state_dict())
    assert D(x).shape == (3,) and not torch.allclose(D(x), D0(x))
    dp = DiscriminatorConfig(
        resolution=16, channels=CH, architecture="progressive", resample_filter=B4
    )
    Dp = Discriminator(dp)
    Dp.set_stage(2, alpha=0.5)
    assert Dp(x).shape == (3,)


def test_fixed_base_is_a_buffer_with_the_same_name():
    kw = dict(resolution=8, z_dim=4, w_dim=8, mapping_layers=1, channels=CH, base_image=True)
    G = Generator(GeneratorConfig(**kw, train_base=False))
    assert "base" in G.state_dict() and all(n != "base" for n, _ in G.named_parameters())
    mean = torch.rand(3, 8, 8)
    G.init_base(mean)
    G_learned = Generator(GeneratorConfig(**kw))
    G_learned.load_state_dict(G.state_dict())  # same names and shapes either way
    torch.testing.assert_close(G_learned.base.detach(), mean)
    G(torch.randn(2, 4)).square().mean().backward()
    assert G_learned.base.grad is None and not G.base.requires_grad


def test_cpu_64_aa_config():
    cfg = CONFIGS["cpu-64-aa"]
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    g, d = cfg.gen_config(), cfg.disc_config()
    assert g.resample_filter == B4 and d.resample_filter == B4 and not g.train_base
    assert cfg.r1_gamma == pytest.approx(0.0002 * 64**2 / cfg.batch)
    old_g, old_d = CONFIGS["cpu-64-v1"].gen_config(), CONFIGS["cpu-64-v1"].disc_config()
    assert old_g.resample_filter is None and old_g.train_base and old_d.resample_filter is None
    assert [d.ch(r) for r in (4, 8, 16, 32, 64)] == [old_d.ch(r) for r in (4, 8, 16, 32, 64)]


def test_shipped_weights_load_and_give_the_recorded_output():
    """The shipped texture GAN (``cpu-64``: FIR filters, fixed base, the 64-component PCA as its
    frozen linear path, an orthogonal centred residual sampled at 0.8) loads and gives the
    output recorded when it was shipped (same weights, same code path)."""
    from facelab.methods.ganfit.texture_gan import load_texture_gan

    G, meta = load_texture_gan()
    assert G.config.resample_filter == B4 and not G.config.train_base
    assert G.config.linear_basis == 64 and G.basis.shape == (64, 3, 64, 64)
    assert G.config.residual_orthogonal and G.config.center_output
    assert meta["step"] == 4000 and meta["config"]["name"] == "cpu-64" and G.detail == 0.8
    assert meta["config"] == CONFIGS["cpu-64"].to_dict()  # the named config made it
    z = torch.randn(4, G.config.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = G(z, noise_mode="const")
    assert float(x.double().mean()) == pytest.approx(-0.5000449058194741, abs=1e-5)
    want = torch.tensor([[-0.4027704, -0.5943359, -0.6719197], [0.2657018, -0.2032570, -0.4919028],
                         [-0.2672357, -0.7785577, -0.9980232]])  # fmt: skip
    got = torch.stack([x[0, :, 10, 20], x[1, :, 0, 0], x[3, :, 63, 31]])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
