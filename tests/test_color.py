"""facelab.color: the one sRGB pair (known values, round trip, gradients, dtype)."""

from __future__ import annotations

import torch

from facelab.color import linear_to_srgb, srgb_to_linear


def test_known_values_and_round_trip():
    x = torch.tensor([0.0, 0.0031308, 0.18, 0.5, 1.0], dtype=torch.float64)
    y = linear_to_srgb(x)
    # IEC 61966-2-1: 18 % grey encodes to 0.4614, linear 0.5 to 0.7354
    torch.testing.assert_close(
        y[2:4], torch.tensor([0.46135, 0.73536], dtype=torch.float64), atol=1e-4, rtol=0
    )
    assert float(y[0]) == 0.0 and abs(float(y[-1]) - 1.0) < 1e-12
    # the two branches meet at the threshold (continuous to 1e-7)
    assert abs(float(y[1]) - 12.92 * 0.0031308) < 1e-6
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    torch.testing.assert_close(srgb_to_linear(linear_to_srgb(t)), t, atol=1e-12, rtol=0)
    torch.testing.assert_close(linear_to_srgb(srgb_to_linear(t)), t, atol=1e-12, rtol=0)


def test_clamps_and_finite_gradients_and_dtype():
    x = torch.tensor([-0.5, 0.0, 0.002, 0.3, 1.7], requires_grad=True)
    y = linear_to_srgb(x)
    assert float(y[0]) == 0.0 and abs(float(y[-1]) - 1.0) < 1e-6
    y.sum().backward()
    assert bool(torch.isfinite(x.grad).all())  # no NaN from the unused branch at 0
    z = srgb_to_linear(x.detach().double())
    assert z.dtype == torch.float64
