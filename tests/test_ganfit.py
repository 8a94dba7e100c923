"""facelab.methods.ganfit (texture data, evaluation) and facelab.gan.metrics."""

from __future__ import annotations

import math

import pytest
import torch

from facelab.errors import AssetMissing, InvalidInput
from facelab.gan.metrics import (
    band_energy,
    frechet_distance,
    kernel_distance,
    precision_recall,
    radial_power_spectrum,
)
from facelab.methods.ganfit import evaluate as ev
from facelab.methods.ganfit.texture_gan import (
    add_appearance_marks,
    load_texture_gan,
    texture_layout,
    texture_maps,
)


def test_appearance_marks_are_discrete_local_choices():
    lay = texture_layout(32)
    x = torch.full((3, 3, 32, 32), 0.6)
    none = add_appearance_marks(x, lay, torch.Generator().manual_seed(0), {k: 0.0 for k in
                                ("lipstick", "shadow", "mark", "scar")})  # fmt: skip
    torch.testing.assert_close(none, x)
    lips = lay.mask("lips")
    y = add_appearance_marks(x, lay, torch.Generator().manual_seed(0),
                             {"lipstick": 1.0, "shadow": 0.0, "mark": 0.0, "scar": 0.0})  # fmt: skip
    changed = (y - x).abs().sum(1) > 1e-3  # (B, S, S)
    assert bool(changed[:, lips > 0.5].all())  # the lips are painted ...
    assert not bool(changed[:, lips < 1e-4].any())  # ... and nothing else


def test_texture_maps_deterministic_in_range():
    a = texture_maps(3, 16, seed=4)
    b = texture_maps(3, 16, seed=4)
    assert a.shape == (3, 3, 16, 16) and a.dtype == torch.float32
    torch.testing.assert_close(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.allclose(a, texture_maps(3, 16, seed=5))
    with pytest.raises(InvalidInput):
        texture_maps(0, 16)


def test_render_textured_is_texture_times_shading():
    white = torch.ones(1, 3, 16, 16)
    img, lm = ev.render_textured(torch.cat([white, 0.5 * white]), size=64)
    assert img.shape == (2, 3, 64, 64) and lm.shape == (2, 68, 2)
    geo = ev._geometry(64, 48.0, 28.0, 0.0)
    m = geo["mask"][0, 0] > 0
    assert 0.1 < float(m.float().mean()) < 0.9
    torch.testing.assert_close(img[0][:, ~m], torch.full_like(img[0][:, ~m], 0.5))  # background
    # Lambert: albedo 0.5 gives half the radiance of albedo 1 wherever that is not clipped
    ok = m & (img[0].max(0).values < 0.99)
    torch.testing.assert_close(img[1][:, ok], 0.5 * img[0][:, ok], atol=1e-5, rtol=1e-5)
    assert bool((lm[0, :, 0] > 0).all() and (lm[0, :, 0] < 64).all())


def test_pca_baseline_reconstructs_its_span_and_projection_errors():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(4, 3, 8, 8, generator=g) * 0.2
    coef = torch.randn(40, 4, generator=g)
    maps = (0.5 + torch.einsum("nk,kchw->nchw", coef, base) * 0.3).clamp(0, 1)
    pca = ev.fit_pca(maps, 4, cache=False)
    rec = ev.project_pca(pca, maps[:5])
    errs = ev.reconstruction_errors(rec, maps[:5])
    assert errs["rmse"] < 1e-4 and errs["rmse_high"] < 1e-4
    assert errs["high_energy_kept"] == pytest.approx(1.0, abs=1e-3)


def test_spectrum_and_band_energy_known_answers():
    s = 32
    j = torch.arange(s, dtype=torch.float64)
    wave = torch.cos(2 * math.pi * 0.375 * j)[None, None, None, :].expand(
        1, 1, s, s
    )  # 0.375 cyc/px
    f, p = radial_power_spectrum(wave)
    assert abs(float(f[int(p.argmax())]) - 0.375) < 0.5 / (s // 2)
    assert band_energy(wave, 0.25) > 50 * band_energy(wave, 0.0, 0.25)
    smooth = torch.cos(2 * math.pi * 0.05 * j)[None, None, None, :].expand(1, 1, s, s)
    assert band_energy(smooth, 0.25) < 1e-3 * band_energy(smooth, 0.0, 0.25)


def test_distribution_metrics_known_answers():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 4, generator=g, dtype=torch.float64)
    b = torch.randn(400, 4, generator=g, dtype=torch.float64)
    shift = torch.tensor([2.0, 0, 0, 0], dtype=torch.float64)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + shift) == pytest.approx(4.0, abs=1e-6)  # |mu_a - mu_b|^2
    kid_same, kid_std = kernel_distance(a, b, subsets=20, subset_size=100)
    kid_far, _ = kernel_distance(a, b + shift, subsets=20, subset_size=100)
    assert abs(kid_same) < 3 * kid_std + 1e-3 and kid_far > 10 * (abs(kid_same) + kid_std)
    assert precision_recall(a, a) == (1.0, 1.0)
    assert precision_recall(a, a + 100) == (0.0, 0.0)
    with pytest.raises(InvalidInput):
        kernel_distance(a, b[:, :3])


def test_load_texture_gan_missing_file_says_how_to_train(tmp_path):
    with pytest.raises(AssetMissing):
        load_texture_gan(tmp_path / "nothing")
