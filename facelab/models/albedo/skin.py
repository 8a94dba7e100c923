"""Spectral skin colour model: melanin and haemoglobin -> linear-sRGB reflectance (``skin_reflectance``, ``hair_reflectance``); formulas in :mod:`facelab.models.albedo`."""

from __future__ import annotations

import math
from typing import Any

import torch

# --------------------------------------------------------------------------------------------
# Spectral skin model
# --------------------------------------------------------------------------------------------

_LAMBDA = tuple(float(x) for x in range(400, 701, 10))  # nm, 31 samples
# Prahl's molar extinction coefficients of haemoglobin (cm^-1 / M), 400..700 nm step 10.
_EPS_HBO2 = (266232, 466840, 480360, 214120, 109564, 62816, 44480, 33209.2, 26629.2, 23684.4,
             20932.8, 20035.2, 24202.4, 39956.8, 53236, 43016, 32613.2, 44496, 50104, 14400.8,
             3200, 1506, 942, 610, 442, 368, 319.6, 294, 277.6, 276, 290)  # fmt: skip
_EPS_HB = (223296, 303956, 407560, 528600, 413280, 103292, 23388.8, 16156.4, 14550, 16684,
           20862, 25773.6, 31589.6, 39036.4, 46592, 53412, 53788, 45072, 37020, 28324.4,
           14677.2, 9443.6, 6509.6, 5148.8, 4345.2, 3750.12, 3226.56, 2795.12, 2407.92,
           2051.96, 1794.28)  # fmt: skip
# CIE D65 relative spectral power, 400..700 nm step 10.
_D65 = (82.75, 91.49, 93.43, 86.68, 104.86, 117.01, 117.81, 114.86, 115.92, 108.81, 109.35,
        107.80, 104.79, 107.69, 104.41, 104.05, 100.0, 96.33, 95.79, 88.69, 90.01, 89.60,
        87.70, 83.29, 83.70, 80.03, 80.21, 82.28, 78.28, 69.72, 71.61)  # fmt: skip
_XYZ_TO_SRGB = ((3.2406, -1.5372, -0.4986), (-0.9689, 1.8758, 0.0415), (0.0557, -0.2040, 1.0570))

#: Epidermis thickness (mm), dermis reduced scattering at 500 nm (mm^-1), its spectral
#: exponent, the Gamma path-length shape, the stratum-corneum backscatter and refractive index.
_D_EPI, _SCAT_A, _SCAT_B, _PATH_K, _R_SC, _ETA = 0.25, 7.0, 1.42, 2.0, 0.02, 1.4
_HB_SCALE = math.log(10.0) * 150.0 / 64500.0 / 10.0  # (cm^-1/M) * M -> mm^-1
# Hair fibre absorption per unit melanin concentration, RGB (d'Eon et al. 2011).
_HAIR_EU = (0.419, 0.697, 1.37)
_HAIR_PHEO = (0.187, 0.4, 1.05)


def _piecewise_gauss(lam: torch.Tensor, mu: float, s1: float, s2: float) -> torch.Tensor:
    s = torch.where(lam < mu, torch.full_like(lam, s1), torch.full_like(lam, s2))
    return torch.exp(-0.5 * ((lam - mu) / s) ** 2)


def _spectral_tables(device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Absorption spectra and the reflectance->linear-sRGB weights, each over ``_LAMBDA``."""
    kw = {"device": device, "dtype": dtype}
    lam = torch.tensor(_LAMBDA, **kw)
    g = _piecewise_gauss
    xb = 1.056 * g(lam, 599.8, 37.9, 31.0) + 0.362 * g(lam, 442.0, 16.0, 26.7)
    xb = xb - 0.065 * g(lam, 501.1, 20.4, 26.2)
    yb = 0.821 * g(lam, 568.8, 46.9, 40.5) + 0.286 * g(lam, 530.9, 16.3, 31.1)
    zb = 1.217 * g(lam, 437.0, 11.8, 36.0) + 0.681 * g(lam, 459.0, 26.0, 13.8)
    xyz_w = torch.stack([xb, yb, zb], -1) * torch.tensor(_D65, **kw)[:, None]  # (L, 3)
    to_rgb = xyz_w @ torch.tensor(_XYZ_TO_SRGB, **kw).T  # (L, 3)
    to_rgb = to_rgb / to_rgb.sum(0)  # white balance: R(lambda) = 1 -> rgb = 1
    return {
        "lam": lam,
        "eu": 6.6e10 * lam**-3.33,
        "pheo": 2.9e14 * lam**-4.75,
        "base": 0.0244 + 8.53 * torch.exp(-(lam - 154.0) / 66.2),
        "oxy": torch.tensor(_EPS_HBO2, **kw) * _HB_SCALE,
        "deoxy": torch.tensor(_EPS_HB, **kw) * _HB_SCALE,
        "scat": _SCAT_A * (lam / 500.0) ** (-_SCAT_B),
        "to_rgb": to_rgb,
    }


def _as_tensor(x: Any, like: torch.Tensor | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.to(torch.get_default_dtype())
    if like is not None:
        return torch.as_tensor(x, dtype=like.dtype, device=like.device)
    return torch.as_tensor(x, dtype=torch.get_default_dtype())


def skin_reflectance(
    melanin: torch.Tensor | float,
    haemoglobin: torch.Tensor | float,
    eumelanin_ratio: torch.Tensor | float = 0.7,
    oxy_ratio: torch.Tensor | float = 0.75,
) -> torch.Tensor:
    r"""Linear-sRGB diffuse reflectance of skin from chromophore concentrations.

    Args:
        melanin: epidermal melanin volume fraction :math:`C_m`, any shape; ~0.003 (very
            light skin) to ~0.45 (very dark skin).
        haemoglobin: dermal blood volume fraction :math:`C_h`, ~0.005 to ~0.05 (lips ~0.1).
        eumelanin_ratio: :math:`\beta`, share of eumelanin (brown-black) vs pheomelanin
            (red-yellow), in [0, 1].
        oxy_ratio: :math:`\gamma`, blood oxygen saturation in [0, 1].

    All arguments broadcast together. See the module docstring for the formulas.

    Returns:
        ``(*shape, 3)`` linear RGB reflectance in [0, 1] (dtype/device of the first tensor
        argument). More melanin darkens all channels; more haemoglobin lowers green and blue
        more than red.
    """
    like = next((a for a in (melanin, haemoglobin, eumelanin_ratio, oxy_ratio)
                 if isinstance(a, torch.Tensor) and a.is_floating_point()), None)  # fmt: skip
    cm, ch, beta, gamma = (
        _as_tensor(a, like) for a in (melanin, haemoglobin, eumelanin_ratio, oxy_ratio)
    )
    cm, ch, beta, gamma = torch.broadcast_tensors(cm, ch, beta, gamma)
    t = _spectral_tables(cm.device, cm.dtype)
    cm, ch, beta, gamma = (a.unsqueeze(-1) for a in (cm, ch, beta, gamma))
    spec = _skin_spectrum(t, cm, ch, beta, gamma)
    return (spec @ t["to_rgb"]).clamp(0.0, 1.0)


def _skin_spectrum(t: dict[str, torch.Tensor], cm, ch, beta, gamma) -> torch.Tensor:
    """Spectral reflectance ``(..., L)``; inputs broadcast with a trailing wavelength dim."""
    sig_epi = cm * (beta * t["eu"] + (1 - beta) * t["pheo"]) + (1 - cm) * t["base"]
    t2 = (1.0 + 2.0 * sig_epi * _D_EPI / _PATH_K) ** (-_PATH_K)
    sig_derm = ch * (gamma * t["oxy"] + (1 - gamma) * t["deoxy"]) + (1 - ch) * t["base"]
    alpha = t["scat"] / (t["scat"] + sig_derm)
    f_dr = -1.440 / _ETA**2 + 0.710 / _ETA + 0.668 + 0.0636 * _ETA
    a_coef = (1 + f_dr) / (1 - f_dr)
    q = torch.sqrt(3.0 * (1.0 - alpha))
    r_d = 0.5 * alpha * (1.0 + torch.exp(-(4.0 / 3.0) * a_coef * q)) * torch.exp(-q)
    return _R_SC + (1 - _R_SC) * t2 * r_d


def hair_reflectance(
    melanin: torch.Tensor | float, eumelanin_ratio: torch.Tensor | float = 0.8
) -> torch.Tensor:
    r"""Approximate linear-RGB albedo of (eyebrow / beard) hair.

    With the fibre absorption coefficients of d'Eon et al. 2011,
    :math:`\sigma = \beta\sigma_{eu} + (1-\beta)\sigma_{pheo}`, and multiple scattering
    approximated like the skin's epidermis by a Gamma(1.5) path length,

    .. math:: \rho = 0.012 + 0.55\,(1 + C\sigma/1.5)^{-1.5}

    ``C`` ~1.5 (blond; golden when pheomelanin-rich) to ~80 (black). Returns ``(*shape, 3)``.
    """
    like = melanin if isinstance(melanin, torch.Tensor) else None
    c = _as_tensor(melanin, like)
    b = _as_tensor(eumelanin_ratio, c)
    c, b = torch.broadcast_tensors(c, b)
    eu = torch.tensor(_HAIR_EU, dtype=c.dtype, device=c.device)
    ph = torch.tensor(_HAIR_PHEO, dtype=c.dtype, device=c.device)
    sig = b.unsqueeze(-1) * eu + (1 - b.unsqueeze(-1)) * ph
    return 0.012 + 0.55 * (1.0 + c.unsqueeze(-1) * sig / 1.5) ** -1.5
