r"""Procedural skin albedo in UV space, and a linear albedo PCA built from its samples.

No open face model ships a texture model, so facelab makes one. Three layers:

1. **A skin colour model** (:func:`skin_reflectance`): two chromophores, *melanin* in the
   epidermis and *haemoglobin* in the dermis, mapped to linear-sRGB diffuse reflectance by
   a small spectral computation, after Donner & Jensen, "A spectral BSSRDF for shading human
   skin" (EGSR 2006) and Jimenez et al., "A practical appearance model for dynamic facial
   color" (SIGGRAPH Asia 2010), who also tabulate colour over (melanin, haemoglobin) as we do.

   For each wavelength :math:`\lambda` (400–700 nm, 10 nm steps), in mm^-1:

   .. math::

       \sigma_{em} = 6.6\times10^{10}\lambda^{-3.33},\quad
       \sigma_{pm} = 2.9\times10^{14}\lambda^{-4.75},\quad
       \sigma_{base} = 0.0244 + 8.53\,e^{-(\lambda-154)/66.2}

       \sigma_{epi} = C_m(\beta\sigma_{em} + (1-\beta)\sigma_{pm}) + (1-C_m)\sigma_{base}

       \sigma_{blood} = \ln 10\;\frac{150\,\mathrm{g/l}}{64500\,\mathrm{g/mol}}
                        (\gamma\,\varepsilon_{HbO_2} + (1-\gamma)\,\varepsilon_{Hb})

       \sigma_{derm} = C_h\sigma_{blood} + (1-C_h)\sigma_{base}

   with :math:`C_m` the melanin volume fraction, :math:`\beta` the eumelanin share (the
   rest is pheomelanin), :math:`C_h` the dermal blood fraction, :math:`\gamma` the oxygen
   saturation and :math:`\varepsilon` Prahl's molar extinction table. Light crosses the
   epidermis twice (Beer–Lambert); because diffuse light travels a distribution of path
   lengths, we average :math:`e^{-\sigma L}` over a Gamma(k=2) path length of mean
   :math:`2 d_{epi}`, :math:`T^2 = (1 + 2\sigma_{epi}d_{epi}/k)^{-k}` (plain Beer–Lambert
   over-saturates dark skin to orange). The dermis is a semi-infinite scattering medium with
   reduced scattering :math:`\sigma_s' = a(\lambda/500)^{-1.42}` (Jacques 2013) and the
   diffusion-approximation total reflectance (Jensen et al. 2001)

   .. math::

       R_d = \tfrac{\alpha'}{2}\big(1 + e^{-\frac43 A\sqrt{3(1-\alpha')}}\big)
             e^{-\sqrt{3(1-\alpha')}},\qquad \alpha' = \frac{\sigma_s'}{\sigma_s'+\sigma_{derm}}

   and :math:`R(\lambda) = r_{sc} + (1-r_{sc})\,T^2 R_d` with a small spectrally flat
   stratum-corneum backscatter :math:`r_{sc}`. :math:`R(\lambda)` is integrated against the
   CIE 1931 observer (the Wyman–Sloan–Shirley 2013 analytic fit) under D65, converted to
   linear sRGB and white-balanced so a perfect reflector is (1, 1, 1).

2. **A UV layout** (:class:`UVLayout`): soft masks of facial regions (lips, brows, eyes,
   cheeks, nose, beard, forehead) in a UV image, built for *any* mesh with UVs from the UV
   positions of its 68 iBUG landmark vertices (:func:`uv_layout_from_model`).

3. **A generator** (:class:`ProceduralAlbedo`): per-sample parameters (:class:`AlbedoParams`)
   -> maps of melanin and haemoglobin (smooth noise + regional factors + freckles + moles)
   -> colour by a per-sample (melanin, haemoglobin) lookup table -> pores, eyelash line,
   brows and stubble composited as hair. Everything is batched tensor code (FFT noise,
   ``grid_sample``, ``conv2d``); a sample is reproducible from its parameters alone.

:class:`AlbedoPCA` is a linear albedo model fitted to samples, like the texture PCA of the
Basel Face Model; :func:`build_albedo_pca` builds (and caches) one for a layout.

**UV image convention** (OBJ/OpenGL): ``image[..., i, j]`` is the texel at
``u = (j + 0.5) / S``, ``v = 1 - (i + 0.5) / S``; v points *up*, so a face's UV map looks
upright. ``grid_sample`` coordinates are ``(2u - 1, 1 - 2v)`` with ``align_corners=False``.
Albedo images are ``(B, 3, S, S)`` in [0, 1], linear reflectance by default
(``AlbedoConfig.encoding="srgb"`` gives display-encoded values).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_finite, check_shape
from ..errors import InvalidInput, ModelFormatError
from ..render.color import linear_to_srgb, srgb_to_linear  # the one sRGB pair (re-exported)

__all__ = [
    "REGION_NAMES",
    "AlbedoConfig",
    "AlbedoPCA",
    "AlbedoParams",
    "ProceduralAlbedo",
    "UVLayout",
    "build_albedo_pca",
    "hair_reflectance",
    "linear_to_srgb",
    "rasterize_uv_coverage",
    "sample_uv",
    "sample_vertex_albedo",
    "skin_reflectance",
    "srgb_to_linear",
    "uv_layout_from_mesh",
    "uv_layout_from_model",
]

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


# --------------------------------------------------------------------------------------------
# UV layout: soft region masks from landmark UVs
# --------------------------------------------------------------------------------------------

#: Region masks a :class:`UVLayout` holds, in this order.
REGION_NAMES = ("lips", "brows", "eyes", "lash_line", "cheeks", "nose", "beard", "forehead")

# UV positions of the 68 iBUG landmarks on the ICT-FaceKit face chart (v up), rounded: the
# canonical layout used when no mesh is at hand (UVLayout.canonical).
_CANONICAL_LMK_UV = (
    (0.140, 0.711), (0.160, 0.615), (0.173, 0.534), (0.182, 0.456), (0.209, 0.368),
    (0.276, 0.297), (0.346, 0.275), (0.433, 0.285), (0.500, 0.283), (0.567, 0.285),
    (0.654, 0.275), (0.724, 0.297), (0.791, 0.368), (0.818, 0.456), (0.827, 0.534),
    (0.840, 0.615), (0.860, 0.711), (0.243, 0.796), (0.298, 0.814), (0.353, 0.814),
    (0.415, 0.809), (0.460, 0.802), (0.540, 0.802), (0.585, 0.809), (0.647, 0.814),
    (0.702, 0.814), (0.757, 0.796), (0.500, 0.723), (0.500, 0.680), (0.500, 0.650),
    (0.500, 0.607), (0.433, 0.543), (0.470, 0.541), (0.500, 0.541), (0.530, 0.541),
    (0.567, 0.543), (0.315, 0.719), (0.339, 0.723), (0.368, 0.722), (0.401, 0.714),
    (0.368, 0.712), (0.330, 0.712), (0.599, 0.714), (0.632, 0.722), (0.661, 0.723),
    (0.685, 0.719), (0.670, 0.712), (0.632, 0.712), (0.388, 0.442), (0.424, 0.493),
    (0.469, 0.510), (0.500, 0.510), (0.531, 0.510), (0.576, 0.493), (0.612, 0.442),
    (0.594, 0.385), (0.556, 0.363), (0.500, 0.359), (0.444, 0.363), (0.406, 0.385),
    (0.411, 0.434), (0.455, 0.466), (0.500, 0.469), (0.545, 0.466), (0.589, 0.434),
    (0.556, 0.395), (0.500, 0.391), (0.444, 0.395),
)  # fmt: skip


def _texel_centres(size: int, device=None, dtype=None) -> torch.Tensor:
    """``(S*S, 2)`` UV coordinates of texel centres, row-major (row 0 is v = 1)."""
    c = (torch.arange(size, device=device, dtype=dtype) + 0.5) / size
    v, u = torch.meshgrid(1.0 - c, c, indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], -1)


def _segment_distance(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
    """Distance from points ``p (P, 2)`` to segments ``a -> b (N, 2)``: ``(P, N)`` and ``t``."""
    ab = b - a
    ap = p[:, None, :] - a[None]
    t = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-20)).clamp(0.0, 1.0)
    d = (ap - t[..., None] * ab).norm(dim=-1)
    return d, t


def _polygon_sdf(p: torch.Tensor, poly: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) from ``p (P, 2)`` to a closed polygon ``(N, 2)``."""
    a, b = poly, poly.roll(-1, 0)
    d, _ = _segment_distance(p, a, b)
    dist = d.min(1).values
    # even-odd crossing test of a horizontal ray
    py, px = p[:, None, 1], p[:, None, 0]
    cond = (a[None, :, 1] > py) != (b[None, :, 1] > py)
    dy = b[:, 1] - a[:, 1]
    dy = torch.where(dy.abs() < 1e-20, torch.full_like(dy, 1e-20), dy)
    x_int = a[None, :, 0] + (py - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / dy[None]
    inside = ((cond & (px < x_int)).sum(1) % 2) == 1
    return torch.where(inside, -dist, dist)


def _soft(sd: torch.Tensor, sigma: float) -> torch.Tensor:
    """A step blurred by a Gaussian of std ``sigma``: ``0.5 erfc(sd / (sqrt(2) sigma))``."""
    return 0.5 * torch.erfc(sd / (math.sqrt(2.0) * sigma))


def _capsules(p: torch.Tensor, pts: torch.Tensor, widths: torch.Tensor, sigma: float):
    """Soft union of tapered capsules along the polyline ``pts (N, 2)``, widths ``(N,)``."""
    d, t = _segment_distance(p, pts[:-1], pts[1:])
    w = widths[:-1] + t * (widths[1:] - widths[:-1])
    return _soft(d - w, sigma).amax(1)


def _region_masks(lmk: torch.Tensor, size: int) -> torch.Tensor:
    """Soft masks ``(R, S, S)`` of :data:`REGION_NAMES` from landmark UVs ``(68, 2)``.

    All distances scale with the inter-ocular distance ``iod`` in UV, and "up" is the
    direction chin (8) -> nose bridge (27), so any upright-ish UV chart works.
    """
    p = _texel_centres(size, lmk.device, lmk.dtype)
    eye_r, eye_l = lmk[36:42].mean(0), lmk[42:48].mean(0)
    iod = float((eye_l - eye_r).norm())
    if not iod > 0:
        raise InvalidInput("landmark UVs are degenerate (both eyes at the same UV position)")
    up = lmk[27] - lmk[8]
    up = up / up.norm().clamp_min(1e-12)
    s = iod

    lips = _soft(_polygon_sdf(p, lmk[48:60]) - 0.01 * s, 0.035 * s)

    def brow(idx: list[int], inner_last: bool) -> torch.Tensor:
        pts = lmk[idx] - 0.05 * s * up
        w = torch.linspace(0.045, 0.075, len(idx), dtype=lmk.dtype, device=lmk.device) * s
        return _capsules(p, pts, w if inner_last else w.flip(0), 0.025 * s)

    brows = torch.maximum(brow(list(range(17, 22)), True), brow(list(range(22, 27)), False))

    eyes_sd = torch.minimum(_polygon_sdf(p, lmk[36:42]), _polygon_sdf(p, lmk[42:48]))
    eyes = _soft(eyes_sd - 0.06 * s, 0.05 * s)
    lash = torch.exp(-0.5 * (eyes_sd / (0.018 * s)) ** 2)

    def blob(c: torch.Tensor, r: float) -> torch.Tensor:
        return torch.exp(-0.5 * ((p - c) ** 2).sum(-1) / r**2)

    c_r = 0.5 * (lmk[2:4].mean(0) + lmk[31]) + 0.12 * s * up
    c_l = 0.5 * (lmk[13:15].mean(0) + lmk[35]) + 0.12 * s * up
    cheeks = torch.maximum(blob(c_r, 0.22 * s), blob(c_l, 0.22 * s))

    bridge = _capsules(p, lmk[27:31], torch.tensor([0.06, 0.07, 0.09, 0.12], dtype=lmk.dtype,
                                                   device=lmk.device) * s, 0.04 * s)  # fmt: skip
    wings = _soft(_polygon_sdf(p, lmk[[30, 35, 34, 33, 32, 31]]) - 0.09 * s, 0.04 * s)
    nose = torch.maximum(bridge, wings)

    centre = lmk[30]
    jaw = lmk[2:15]
    out = jaw - centre
    jaw_out = jaw + 0.3 * s * out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    nose_base = lmk[[35, 34, 33, 32, 31]] - 0.04 * s * up
    poly = torch.cat([jaw_out, (0.5 * (lmk[14] + lmk[35]))[None], nose_base,
                      (0.5 * (lmk[2] + lmk[31]))[None]])  # fmt: skip
    beard = _soft(_polygon_sdf(p, poly), 0.07 * s)
    beard = beard * (1 - _soft(_polygon_sdf(p, lmk[48:60]) - 0.02 * s, 0.02 * s))

    brow_pts = lmk[17:27]
    top = torch.cat([brow_pts + 0.15 * s * up, (brow_pts + 1.2 * s * up).flip(0)])
    forehead = _soft(_polygon_sdf(p, top), 0.12 * s)

    masks = torch.stack([lips, brows, eyes, lash, cheeks, nose, beard, forehead])
    return masks.reshape(len(REGION_NAMES), size, size).clamp(0.0, 1.0)


def rasterize_uv_coverage(uvs: torch.Tensor, uv_faces: torch.Tensor, size: int) -> torch.Tensor:
    """Binary ``(S, S)`` mask of texels whose centre lies inside some UV triangle.

    Args:
        uvs: ``(T, 2)`` texture coordinates (v up, the texel convention of this module).
        uv_faces: ``(F, 3) long`` triangles indexing ``uvs``.
        size: ``S``.

    Each triangle enumerates the texel centres of its bounding box (a vectorised
    ``repeat_interleave``; cost ~ covered texels), tests them with edge functions, and
    marks the inside ones. Orientation of the triangles does not matter.
    """
    check_shape("uvs", uvs, (None, 2))
    check_shape("uv_faces", uv_faces, (None, 3))
    dev = uvs.device
    tri = uvs.to(torch.float64)[uv_faces.long()]  # (F, 3, 2)
    x = tri[..., 0] * size - 0.5  # texel j has centre x = j
    y = (1.0 - tri[..., 1]) * size - 0.5
    x0 = x.amin(1).ceil().clamp(0, size - 1).long()
    x1 = x.amax(1).floor().clamp(-1, size - 1).long()
    y0 = y.amin(1).ceil().clamp(0, size - 1).long()
    y1 = y.amax(1).floor().clamp(-1, size - 1).long()
    w = (x1 - x0 + 1).clamp_min(0)
    h = (y1 - y0 + 1).clamp_min(0)
    n = w * h
    cov = torch.zeros(size * size, dtype=uvs.dtype, device=dev)
    total = int(n.sum())
    if total == 0:
        return cov.reshape(size, size)
    tid = torch.repeat_interleave(torch.arange(len(n), device=dev), n)
    local = torch.arange(total, device=dev) - torch.repeat_interleave(n.cumsum(0) - n, n)
    px = x0[tid] + local % w[tid]
    py = y0[tid] + torch.div(local, w[tid], rounding_mode="floor")
    ax, ay, bx, by, cx, cy = (
        t[tid] for t in (x[:, 0], y[:, 0], x[:, 1], y[:, 1], x[:, 2], y[:, 2])
    )
    qx, qy = px.to(x.dtype), py.to(x.dtype)
    e0 = (bx - ax) * (qy - ay) - (by - ay) * (qx - ax)
    e1 = (cx - bx) * (qy - by) - (cy - by) * (qx - bx)
    e2 = (ax - cx) * (qy - cy) - (ay - cy) * (qx - cx)
    eps = 1e-9
    inside = ((e0 >= -eps) & (e1 >= -eps) & (e2 >= -eps)) | (
        (e0 <= eps) & (e1 <= eps) & (e2 <= eps)
    )
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    inside = inside & (area.abs() > 1e-12)
    cov[(py * size + px)[inside]] = 1.0
    return cov.reshape(size, size)


@dataclass
class UVLayout:
    """Where facial features lie in a model's UV space, as soft masks in an ``S x S`` image.

    Attributes:
        size: ``S``, texels per side.
        landmarks_uv: ``(68, 2)`` UV of the iBUG-68 landmarks (v up).
        coverage: ``(S, S)`` 1 where a UV triangle of the face chart covers the texel centre
            (all ones for :meth:`canonical`).
        masks: ``(R, S, S)`` soft masks in [0, 1], one per :data:`REGION_NAMES` entry.

    Build it with :func:`uv_layout_from_model`, :func:`uv_layout_from_mesh` or
    :meth:`canonical`; get one mask with :meth:`mask`.
    """

    size: int
    landmarks_uv: torch.Tensor
    coverage: torch.Tensor
    masks: torch.Tensor
    names: tuple[str, ...] = REGION_NAMES

    def mask(self, name: str) -> torch.Tensor:
        """The ``(S, S)`` soft mask of region ``name`` (one of :data:`REGION_NAMES`)."""
        if name == "coverage":
            return self.coverage
        if name not in self.names:
            raise InvalidInput(f"unknown region {name!r}; choose from {self.names + ('coverage',)}")
        return self.masks[self.names.index(name)]

    def to(self, device=None, dtype=None) -> UVLayout:
        """A copy on ``device`` / ``dtype``."""
        return UVLayout(
            self.size,
            self.landmarks_uv.to(device=device, dtype=dtype),
            self.coverage.to(device=device, dtype=dtype),
            self.masks.to(device=device, dtype=dtype),
            self.names,
        )

    @property
    def device(self) -> torch.device:
        return self.masks.device

    @property
    def dtype(self) -> torch.dtype:
        return self.masks.dtype

    @classmethod
    def from_landmarks(
        cls, landmarks_uv: torch.Tensor, size: int = 256, coverage: torch.Tensor | None = None
    ) -> UVLayout:
        """Layout from landmark UVs ``(68, 2)``; ``coverage (S, S)`` defaults to all ones."""
        check_shape("landmarks_uv", landmarks_uv, (68, 2))
        check_finite("landmarks_uv", landmarks_uv)
        if size < 8:
            raise InvalidInput(f"size must be >= 8, got {size}")
        lmk = landmarks_uv if landmarks_uv.is_floating_point() else landmarks_uv.double()
        masks = _region_masks(lmk, size)
        if coverage is None:
            coverage = torch.ones(size, size, dtype=lmk.dtype, device=lmk.device)
        check_shape("coverage", coverage, (size, size))
        return cls(size, lmk, coverage.to(lmk.dtype), masks)

    @classmethod
    def canonical(cls, size: int = 256, dtype: torch.dtype | None = None, device=None) -> UVLayout:
        """A model-free layout: the ICT-FaceKit landmark UVs, full coverage."""
        lmk = torch.tensor(
            _CANONICAL_LMK_UV, dtype=dtype or torch.get_default_dtype(), device=device
        )
        return cls.from_landmarks(lmk, size)


def _connected_faces(faces: np.ndarray, seeds: np.ndarray, num_vertices: int) -> np.ndarray:
    """Bool mask of faces in the vertex-connected components that contain ``seeds``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(num_vertices, num_vertices))
    _, label = connected_components(g, directed=False)
    keep = np.isin(label, label[seeds])
    return keep[faces[:, 0]]


def uv_layout_from_mesh(
    uvs: torch.Tensor,
    uv_faces: torch.Tensor,
    faces: torch.Tensor,
    landmarks: torch.Tensor | Sequence[int],
    size: int = 256,
    face_mask: torch.Tensor | None = None,
) -> UVLayout:
    """A :class:`UVLayout` for any mesh with UVs.

    Args:
        uvs: ``(T, 2)`` texture coordinates (v up, OBJ convention).
        uv_faces: ``(F, 3) long``, the UV index of each face corner.
        faces: ``(F, 3) long``, the vertex index of each face corner (same faces, same order).
        landmarks: ``(68,)`` vertex indices of the iBUG-68 landmarks.
        size: ``S`` of the layout's images.
        face_mask: optional ``(F,) bool`` — the faces forming the skin chart. Default: faces
            whose three UVs lie in the unit square *and* that are vertex-connected to a
            landmark (this drops eyeballs, teeth and UDIM tiles that share or sit beside
            the face's UV square, e.g. in ICT-FaceKit).

    A landmark vertex's UV is that of its first corner in a chart face (a vertex on a UV
    seam has several UVs; landmarks are interior to the face chart in practice).
    """
    check_shape("uvs", uvs, (None, 2))
    check_shape("uv_faces", uv_faces, (None, 3))
    check_shape("faces", faces, (uv_faces.shape[0], 3))
    lm = torch.as_tensor(landmarks).long().reshape(-1).cpu().numpy()
    if lm.shape != (68,):
        raise InvalidInput(f"landmarks must be 68 iBUG vertex indices, got shape {tuple(lm.shape)}")
    uv_np = uvs.detach().cpu().double().numpy()
    ft = uv_faces.detach().long().cpu().numpy()
    fv = faces.detach().long().cpu().numpy()
    nv = int(max(fv.max(), lm.max())) + 1
    if face_mask is None:
        in_tile = np.all((uv_np[ft] >= 0.0) & (uv_np[ft] <= 1.0), axis=(1, 2))
        sel = in_tile.copy()
        sel[in_tile] = _connected_faces(fv[in_tile], lm, nv)
    else:
        sel = torch.as_tensor(face_mask).bool().cpu().numpy()
        if sel.shape != (len(fv),):
            raise InvalidInput(f"face_mask must have shape ({len(fv)},), got {sel.shape}")
    cv, ct = fv[sel].reshape(-1), ft[sel].reshape(-1)
    first = np.full(nv, -1, dtype=np.int64)
    order = np.arange(len(cv))[::-1]  # assign in reverse so the first corner wins
    first[cv[order]] = ct[order]
    missing = lm[first[lm] < 0]
    if len(missing):
        raise InvalidInput(
            f"landmark vertices {missing.tolist()[:8]} are not on any face of the UV chart; "
            "check the landmark indices or pass face_mask"
        )
    lmk_uv = torch.as_tensor(uv_np[first[lm]], dtype=uvs.dtype if uvs.is_floating_point()
                             else torch.get_default_dtype(), device=uvs.device)  # fmt: skip
    cov = rasterize_uv_coverage(lmk_uv.new_tensor(uv_np), torch.as_tensor(ft[sel]), size)
    return UVLayout.from_landmarks(lmk_uv, size, cov.to(lmk_uv.device))


def uv_layout_from_model(
    model: Any, size: int = 256, face_mask: torch.Tensor | None = None
) -> UVLayout:
    """:func:`uv_layout_from_mesh` with ``model.uvs``, ``model.uv_faces``, ``model.faces``,
    ``model.landmarks`` (a facelab ``MorphableModel`` or anything with those attributes)."""
    missing = [
        a for a in ("uvs", "uv_faces", "faces", "landmarks") if getattr(model, a, None) is None
    ]
    if missing:
        raise InvalidInput(
            f"the model has no {', '.join(missing)}; a UV layout needs UVs and the 68 iBUG "
            "landmark vertex indices (use UVLayout.canonical(size) for a model-free layout)"
        )
    return uv_layout_from_mesh(
        torch.as_tensor(model.uvs), torch.as_tensor(model.uv_faces), torch.as_tensor(model.faces),
        torch.as_tensor(model.landmarks), size=size, face_mask=face_mask,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Procedural generator
# --------------------------------------------------------------------------------------------


@dataclass
class AlbedoConfig:
    """Settings of :class:`ProceduralAlbedo` (the parameter ranges of :meth:`sample_params`).

    Attributes:
        size: texels per side when :class:`ProceduralAlbedo` builds the canonical layout
            itself (default 256); with a given layout it must be None or equal its size.
        encoding: ``"linear"`` (reflectance, for physically based shading) or ``"srgb"``
            (display-encoded, like photo pixels and the Basel Face Model's texture).
        detail: master switch of the high-frequency detail below (False -> smooth albedo,
            e.g. for a linear PCA).
        pores, freckles, moles, stubble: individual detail switches.
        melanin_range: log-uniform range of the base epidermal melanin fraction.
        haemoglobin_range: log-uniform range of the base dermal blood fraction.
        eumelanin_range: uniform range of the eumelanin share (plus up to 0.1 for dark skin).
        oxy_range: uniform range of blood oxygen saturation.
        freckle_probability: chance that a sample has freckles, scaled by ``(1 - t)^2`` where
            ``t`` in [0, 1] is the sample's log-melanin position in ``melanin_range``.
        stubble_probability: chance that a sample has stubble.
        lut_size: resolution of the per-sample (log melanin, log haemoglobin) colour table.
    """

    size: int | None = None
    encoding: str = "linear"
    detail: bool = True
    pores: bool = True
    freckles: bool = True
    moles: bool = True
    stubble: bool = True
    melanin_range: tuple[float, float] = (0.003, 0.45)
    haemoglobin_range: tuple[float, float] = (0.006, 0.03)
    eumelanin_range: tuple[float, float] = (0.55, 0.85)
    oxy_range: tuple[float, float] = (0.6, 0.9)
    freckle_probability: float = 0.5
    stubble_probability: float = 0.35
    lut_size: int = 48

    def __post_init__(self) -> None:
        if self.encoding not in ("linear", "srgb"):
            raise InvalidInput(f"encoding must be 'linear' or 'srgb', got {self.encoding!r}")
        for name in ("melanin_range", "haemoglobin_range"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi < 1:
                raise InvalidInput(f"{name} must satisfy 0 < lo <= hi < 1, got {(lo, hi)}")
        if self.size is not None and self.size < 8:
            raise InvalidInput(f"size must be >= 8, got {self.size}")
        if self.lut_size < 4:
            raise InvalidInput(f"lut_size must be >= 4, got {self.lut_size}")


#: Fields of :class:`AlbedoParams`, each a ``(B,)`` tensor.
_PARAM_FIELDS = (
    "melanin", "eumelanin_ratio", "haemoglobin", "oxy_ratio", "cheek_redness", "lip_redness",
    "lip_melanin", "brow_density", "hair_melanin", "hair_eumelanin_ratio", "freckle_density",
    "mole_density", "stubble", "pore_strength", "seed",
)  # fmt: skip


@dataclass
class AlbedoParams:
    """Per-sample parameters of a procedural albedo; every field is a ``(B,)`` tensor.

    Attributes:
        melanin: base epidermal melanin fraction :math:`C_m`.
        eumelanin_ratio: eumelanin share :math:`\\beta` of skin melanin.
        haemoglobin: base dermal blood fraction :math:`C_h`.
        oxy_ratio: blood oxygen saturation :math:`\\gamma`.
        cheek_redness: extra blood in the cheeks, [0, 1] -> up to 2.5x.
        lip_redness: lip blood factor, [0, 1] -> 2x..6x.
        lip_melanin: factor on melanin in the lips (< 1: lips paler in melanin than skin).
        brow_density: eyebrow hair opacity in [0, 1].
        hair_melanin, hair_eumelanin_ratio: hair colour (:func:`hair_reflectance`).
        freckle_density: freckles per unit UV area (0 = none).
        mole_density: moles per unit UV area.
        stubble: stubble density in [0, 1] (0 = shaven).
        pore_strength: contrast of pores (relative).
        seed: ``int64`` seed of the sample's noise fields.

    The image is a deterministic function of these (and the layout and config), so a sample
    is reproduced exactly by ``ProceduralAlbedo.render(params)``.
    """

    melanin: torch.Tensor
    eumelanin_ratio: torch.Tensor
    haemoglobin: torch.Tensor
    oxy_ratio: torch.Tensor
    cheek_redness: torch.Tensor
    lip_redness: torch.Tensor
    lip_melanin: torch.Tensor
    brow_density: torch.Tensor
    hair_melanin: torch.Tensor
    hair_eumelanin_ratio: torch.Tensor
    freckle_density: torch.Tensor
    mole_density: torch.Tensor
    stubble: torch.Tensor
    pore_strength: torch.Tensor
    seed: torch.Tensor

    def __post_init__(self) -> None:
        n = {
            int(getattr(self, f).shape[0]) if getattr(self, f).dim() == 1 else -1
            for f in _PARAM_FIELDS
        }
        if len(n) != 1 or -1 in n:
            raise InvalidInput("every AlbedoParams field must be a 1-D tensor of the same length")

    def __len__(self) -> int:
        return int(self.seed.shape[0])

    def __getitem__(self, idx: int | slice | torch.Tensor) -> AlbedoParams:
        if isinstance(idx, int):
            idx = slice(idx, idx + 1 if idx != -1 else None)
        return AlbedoParams(**{f: getattr(self, f)[idx] for f in _PARAM_FIELDS})

    def to_dict(self) -> dict[str, torch.Tensor]:
        """``{field: (B,) tensor}``."""
        return {f: getattr(self, f) for f in _PARAM_FIELDS}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlbedoParams:
        """Inverse of :meth:`to_dict` (values may be tensors, arrays or lists)."""
        missing = [f for f in _PARAM_FIELDS if f not in d]
        if missing:
            raise InvalidInput(f"AlbedoParams.from_dict: missing fields {missing}")
        out = {}
        for f in _PARAM_FIELDS:
            v = torch.as_tensor(d[f])
            out[f] = v.long() if f == "seed" else (v if v.is_floating_point() else v.double())
        return cls(**out)

    @classmethod
    def cat(cls, items: Sequence[AlbedoParams]) -> AlbedoParams:
        """Concatenate along the batch."""
        return cls(**{f: torch.cat([getattr(p, f) for p in items]) for f in _PARAM_FIELDS})


def _lowpass_gain(size: int, cycles: float, device, dtype) -> torch.Tensor:
    """rfft2 gain ``(S, S//2+1)`` of a Gaussian low-pass with std ``cycles`` per UV unit,
    normalised so filtered unit white noise has unit variance."""
    fy = torch.fft.fftfreq(size, device=device, dtype=dtype) * size
    fx = torch.fft.rfftfreq(size, device=device, dtype=dtype) * size
    r2 = fy[:, None] ** 2 + fx[None, :] ** 2
    h = torch.exp(-0.5 * r2 / cycles**2)
    return h / _rfft_rms(h, size)


def _bandpass_gain(size: int, sigma_px: float, device, dtype) -> torch.Tensor:
    """rfft2 gain of a difference of Gaussians (``sigma_px`` and ``2 sigma_px`` texels),
    unit output variance; zero when the band is beyond Nyquist."""
    fy = torch.fft.fftfreq(size, device=device, dtype=dtype)
    fx = torch.fft.rfftfreq(size, device=device, dtype=dtype)
    r2 = (fy[:, None] ** 2 + fx[None, :] ** 2) * (2 * math.pi) ** 2
    h = torch.exp(-0.5 * r2 * sigma_px**2) - torch.exp(-0.5 * r2 * (2 * sigma_px) ** 2)
    rms = _rfft_rms(h, size)
    return h / rms if rms > 1e-6 else torch.zeros_like(h)


def _rfft_rms(h: torch.Tensor, size: int) -> float:
    """RMS over the full spectrum of an rfft-layout real gain (counts mirrored columns)."""
    w = torch.full((h.shape[-1],), 2.0, dtype=h.dtype, device=h.device)
    w[0] = 1.0
    if size % 2 == 0:
        w[-1] = 1.0
    return float(((h**2) * w).sum() / (size * size)) ** 0.5


def _gauss_peak_gain(size: int, sigma_px: float, device, dtype) -> torch.Tensor:
    """rfft2 gain of a Gaussian blur scaled so one unit impulse becomes a peak-1 blob."""
    fy = torch.fft.fftfreq(size, device=device, dtype=dtype)
    fx = torch.fft.rfftfreq(size, device=device, dtype=dtype)
    r2 = (fy[:, None] ** 2 + fx[None, :] ** 2) * (2 * math.pi) ** 2
    s = max(sigma_px, 0.5)
    return torch.exp(-0.5 * r2 * s**2) * (2 * math.pi * s * s)


def _stroke_kernels(length: float, angles: Sequence[float], dtype, device) -> torch.Tensor:
    """``(A, 1, K, K)`` anti-aliased line kernels (hair strokes) of ``length`` texels,
    ``angles`` in radians measured from the image's +x axis (rows grow downwards)."""
    k = int(2 * math.ceil(length / 2) + 1)
    c = torch.arange(k, dtype=dtype, device=device) - k // 2
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    out = []
    for a in angles:
        dx, dy = math.cos(a), math.sin(a)
        t = (xx * dx + yy * dy).clamp(-length / 2, length / 2)
        d2 = (xx - t * dx) ** 2 + (yy - t * dy) ** 2
        out.append(torch.exp(-d2 / (2 * 0.45**2)))
    return torch.stack(out)[:, None]


class ProceduralAlbedo:
    """Batched procedural skin albedo in a :class:`UVLayout`.

    >>> gen = ProceduralAlbedo(UVLayout.canonical(64))
    >>> img, params = gen.sample(4, torch.Generator().manual_seed(0))
    >>> img.shape
    torch.Size([4, 3, 64, 64])

    Pipeline of :meth:`render` for each sample (formulas in the module docstring):

    1. ``log C_m = log melanin + 0.07 n_1 + 0.03 n_3 + log(lip_melanin) lips + 0.22 eyes
       + 0.06 nose + 0.05 forehead + log(1 + 1.6 freckles) + 1.3 moles`` and
       ``log C_h = log haemoglobin + 0.15 n_2 + log(1 + 2 cheek_redness) cheeks
       + 0.3 nose + log(2 + 4 lip_redness) lips + 0.25 cheek_redness capillaries``, with
       ``n_1, n_2`` smooth unit Gaussian noise (Gaussian spectrum, std 3 cycles per UV
       unit), ``n_3`` finer mottling (14 cycles), capillaries = rectified band-passed noise
       in the cheeks and nose;
    2. colour = bilinear lookup in the sample's table of :func:`skin_reflectance` over
       (log C_m, log C_h) — the spectral model is evaluated on the table, not per texel;
    3. pores: ``colour *= exp(-0.06 pore_strength p)``, ``p`` band-passed noise at texel scale;
    4. hair: brows (tapered strokes along the brow) and stubble (short downward strokes,
       plus a shadow) composited over the skin with the colour :func:`hair_reflectance`;
       eyelash line darkened.

    Freckles and moles are Bernoulli seeds (density per UV area, weighted by region) blurred
    into blobs of ~2.5 mm and ~5 mm (the face chart spans ~15 cm per UV unit).
    Stubble and pores are texel-scale detail; they vanish gracefully at small ``S``.
    """

    def __init__(self, layout: UVLayout | None = None, config: AlbedoConfig | None = None) -> None:
        self.config = config or AlbedoConfig()
        if layout is None:
            layout = UVLayout.canonical(self.config.size or 256)
        elif self.config.size is not None and self.config.size != layout.size:
            raise InvalidInput(
                f"config.size={self.config.size} but the layout has size {layout.size}; "
                "build the layout at the size you want (uv_layout_from_model(model, size))"
            )
        self.layout = layout
        self._cache: dict[tuple, torch.Tensor] = {}

    @classmethod
    def from_model(
        cls, model: Any, size: int = 256, config: AlbedoConfig | None = None
    ) -> ProceduralAlbedo:
        """A generator for ``model``'s UV layout (:func:`uv_layout_from_model`)."""
        return cls(uv_layout_from_model(model, size), config)

    @property
    def size(self) -> int:
        return self.layout.size

    # -- parameters -------------------------------------------------------------------------

    def sample_params(self, batch: int, generator: torch.Generator | None = None) -> AlbedoParams:
        """Draw ``batch`` parameter sets (on the layout's device, float64 scalars)."""
        cfg = self.config
        g = generator
        dev = self.layout.device
        kw = {"dtype": torch.float64, "device": dev}

        def u(lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(batch, generator=g, **kw)

        def logu(lo: float, hi: float) -> torch.Tensor:
            return torch.exp(u(math.log(lo), math.log(hi)))

        t = u()  # skin darkness position in [0, 1] (log-melanin)
        lo, hi = cfg.melanin_range
        melanin = torch.exp(math.log(lo) + t * (math.log(hi) - math.log(lo)))
        eum = u(*cfg.eumelanin_range) + 0.1 * t
        haem = logu(*cfg.haemoglobin_range)
        oxy = u(*cfg.oxy_range)
        cheek = u(0.0, 1.0) ** 1.5
        lip_red = u(0.2, 1.0)
        lip_mel = u(0.35, 0.8)
        brow = u(0.55, 1.0)
        hpos = (0.35 + 0.75 * t + 0.3 * torch.randn(batch, generator=g, **kw)).clamp(0.0, 1.0)
        hair_mel = torch.exp(math.log(1.5) + hpos * (math.log(80.0) - math.log(1.5)))
        hair_eum = u(0.1, 1.0)
        has_fr = torch.rand(batch, generator=g, **kw) < cfg.freckle_probability * (1 - t) ** 2
        freckles = torch.where(has_fr, logu(300.0, 3000.0), torch.zeros_like(t))
        moles = u(0.0, 3.0)
        has_st = torch.rand(batch, generator=g, **kw) < cfg.stubble_probability
        stubble = torch.where(has_st, u(0.25, 1.0), torch.zeros_like(t))
        pores = u(0.5, 1.5)
        seed = torch.randint(0, 2**62, (batch,), generator=g, device=dev, dtype=torch.int64)
        return AlbedoParams(melanin, eum, haem, oxy, cheek, lip_red, lip_mel, brow, hair_mel,
                            hair_eum, freckles, moles, stubble, pores, seed)  # fmt: skip

    def sample(
        self, batch: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, AlbedoParams]:
        """``batch`` random albedos: ``((B, 3, S, S) in [0, 1], AlbedoParams)``."""
        params = self.sample_params(batch, generator)
        return self.render(params), params

    # -- rendering --------------------------------------------------------------------------

    def _noise(self, params: AlbedoParams, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample white noise from each sample's seed: ``randn (B, 4, S, S)`` and
        ``rand (B, 5, S, S)``."""
        s, dev = self.size, self.layout.device
        gauss, unif = [], []
        for sd in params.seed.tolist():
            g = torch.Generator(device=dev).manual_seed(int(sd))
            gauss.append(torch.randn(4, s, s, generator=g, device=dev, dtype=dtype))
            unif.append(torch.rand(5, s, s, generator=g, device=dev, dtype=dtype))
        return torch.stack(gauss), torch.stack(unif)

    def _gain(self, kind: str, arg: float, dtype) -> torch.Tensor:
        key = (kind, arg, dtype)
        if key not in self._cache:
            fn = {"low": _lowpass_gain, "band": _bandpass_gain, "blob": _gauss_peak_gain}[kind]
            self._cache[key] = fn(self.size, arg, self.layout.device, dtype)
        return self._cache[key]

    def _filter(self, x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(torch.fft.rfft2(x) * gain, s=x.shape[-2:])

    def _lut(self, params: AlbedoParams, dtype) -> tuple[torch.Tensor, tuple[float, ...]]:
        """Per-sample colour tables ``(B, 3, G, G)`` over (log C_m [x], log C_h [y])."""
        gsz = self.config.lut_size
        lo_m, hi_m = math.log(5e-4), math.log(0.95)
        lo_h, hi_h = math.log(1e-3), math.log(0.4)
        dev = self.layout.device
        cm = torch.exp(torch.linspace(lo_m, hi_m, gsz, device=dev, dtype=torch.float64))
        ch = torch.exp(torch.linspace(lo_h, hi_h, gsz, device=dev, dtype=torch.float64))
        t = _spectral_tables(dev, torch.float64)
        b = params.eumelanin_ratio.to(dev, torch.float64)[:, None, None, None]
        gm = params.oxy_ratio.to(dev, torch.float64)[:, None, None, None]
        spec = _skin_spectrum(t, cm[None, None, :, None], ch[None, :, None, None], b, gm)
        rgb = (spec @ t["to_rgb"]).clamp(0.0, 1.0)  # (B, Gh, Gm, 3)
        return rgb.permute(0, 3, 1, 2).to(dtype), (lo_m, hi_m, lo_h, hi_h)

    def render(self, params: AlbedoParams) -> torch.Tensor:
        """The albedo images ``(B, 3, S, S)`` in [0, 1] of ``params`` (deterministic)."""
        cfg, lay = self.config, self.layout
        dtype = lay.dtype if lay.dtype in (torch.float32, torch.float64) else torch.float32
        dev, s = lay.device, self.size
        bsz = len(params)
        m = lay.masks.to(dtype)
        reg = {n: m[i] for i, n in enumerate(lay.names)}

        def col(name: str) -> torch.Tensor:
            return getattr(params, name).to(dev, dtype)[:, None, None]

        gauss, unif = self._noise(params, dtype)
        low = self._filter(gauss[:, :2], self._gain("low", 3.0, dtype))
        n_mel, n_hb = low[:, 0], low[:, 1]
        mid = self._filter(gauss[:, 2:3], self._gain("low", 14.0, dtype))[:, 0]
        detail = cfg.detail
        zero = torch.zeros(bsz, s, s, dtype=dtype, device=dev)

        # freckles and moles: Bernoulli seeds -> blobs
        area_px = 1.0 / (s * s)
        freckles, moles = zero, zero
        if detail and cfg.freckles:
            where = (reg["cheeks"] + reg["nose"] + 0.4 * reg["forehead"]).clamp(max=1.0)
            where = where * (1 - reg["lips"]) * (1 - reg["eyes"])
            p = col("freckle_density") * area_px * where
            seeds = (unif[:, 0] < p).to(dtype)
            f = self._filter(seeds, self._gain("blob", 0.0045 * s, dtype))
            freckles = 1 - torch.exp(-f.clamp_min(0.0))  # clamp: FFT ringing
        if detail and cfg.moles:
            where = (
                lay.coverage.to(dtype) * (1 - reg["lips"]) * (1 - reg["eyes"]) * (1 - reg["brows"])
            )
            p = col("mole_density") * area_px * where
            seeds = (unif[:, 1] < p).to(dtype)
            f = self._filter(seeds, self._gain("blob", 0.011 * s, dtype))
            moles = ((f - 0.3) / 0.4).clamp(0.0, 1.0)

        cap = zero
        if detail:
            cap = self._filter(gauss[:, 3:4], self._gain("band", 1.5, dtype))[:, 0]
            cap = (cap.clamp_min(0.0) * (reg["cheeks"] + 0.5 * reg["nose"])).clamp(max=3.0)

        log_cm = (torch.log(col("melanin")) + 0.07 * n_mel + 0.03 * mid
                  + torch.log(col("lip_melanin")) * reg["lips"]
                  + 0.22 * reg["eyes"] + 0.06 * reg["nose"] + 0.05 * reg["forehead"]
                  + torch.log1p(1.6 * freckles) + 1.3 * moles)  # fmt: skip
        log_ch = (torch.log(col("haemoglobin")) + 0.15 * n_hb
                  + torch.log1p(2.0 * col("cheek_redness")) * reg["cheeks"] + 0.3 * reg["nose"]
                  + torch.log(2 + 4 * col("lip_redness")) * reg["lips"]
                  + 0.25 * cap * col("cheek_redness"))  # fmt: skip

        lut, (lo_m, hi_m, lo_h, hi_h) = self._lut(params, dtype)
        gx = 2 * (log_cm - lo_m) / (hi_m - lo_m) - 1
        gy = 2 * (log_ch - lo_h) / (hi_h - lo_h) - 1
        grid = torch.stack([gx, gy], -1).clamp(-1.0, 1.0)
        rgb = F.grid_sample(lut, grid, mode="bilinear", padding_mode="border", align_corners=True)

        if detail and cfg.pores:
            pores = self._filter(unif[:, 4:5] - 0.5, self._gain("band", 0.7, dtype))
            w = 0.6 + 0.8 * (reg["nose"] + reg["cheeks"]).clamp(max=1.0)
            rgb = rgb * torch.exp(-0.06 * col("pore_strength")[:, None] * pores * w)

        hair = hair_reflectance(
            params.hair_melanin.to(dev, dtype), params.hair_eumelanin_ratio.to(dev, dtype)
        )
        hair = hair[:, :, None, None]  # (B, 3, 1, 1)
        # eyelash line
        lash_dark = 0.55 * reg["lash_line"] * (1 - hair.mean(1, keepdim=True))  # (B, 1, S, S)
        rgb = rgb * (1 - lash_dark)
        # brows: base density times strands
        strands = self._strokes(unif[:, 2], reg["brows"] * 0.35, "brows", dtype) if detail else None
        b_alpha = reg["brows"] * col("brow_density")
        b_alpha = b_alpha * (0.3 + 0.6 * strands) if strands is not None else 0.6 * b_alpha
        brow_col = hair_reflectance(1.6 * params.hair_melanin.to(dev, dtype),
                                    params.hair_eumelanin_ratio.to(dev, dtype))[:, :, None, None]  # fmt: skip
        rgb = rgb * (1 - b_alpha[:, None]) + brow_col * b_alpha[:, None]
        if detail and cfg.stubble:
            st = col("stubble")
            shadow = 0.3 * st * reg["beard"]
            hairs = self._strokes(unif[:, 3], 0.12 * st * reg["beard"], "stubble", dtype)
            a = (shadow + 0.5 * hairs * reg["beard"]).clamp(0.0, 1.0)[:, None]
            # hair under and on the skin only darkens it (blond stubble is nearly invisible)
            rgb = rgb * (1 - a) + torch.minimum(brow_col, 0.8 * rgb) * a

        rgb = rgb.clamp(0.0, 1.0)
        if cfg.encoding == "srgb":
            rgb = linear_to_srgb(rgb)
        return rgb

    def _strokes(self, unif: torch.Tensor, prob: torch.Tensor, kind: str, dtype) -> torch.Tensor:
        """Hair strokes ``(B, S, S)`` in [0, 1] grown from Bernoulli(``prob``) seeds.

        Two slanted line kernels (:func:`_stroke_kernels`) are applied by FFT (circular
        convolution; much faster than ``conv2d`` on CPU): brows lean outwards-up on each
        side of the nose bridge, stubble seeds are split between two downward slants.
        """
        s = self.size
        key = ("k_" + kind, dtype)
        if key not in self._cache:
            scale = s / 256.0
            if kind == "brows":  # image rows grow downwards: pi + 0.35 is left-up
                kern = _stroke_kernels(
                    max(5.0 * scale, 1.0), [math.pi + 0.35, -0.35], dtype, self.layout.device
                )
            else:
                kern = _stroke_kernels(
                    max(1.5 * scale, 1.0),
                    [math.pi / 2 - 0.3, math.pi / 2 + 0.3],
                    dtype,
                    self.layout.device,
                )
            k = kern.shape[-1]
            full = torch.zeros(2, s, s, dtype=dtype, device=self.layout.device)
            full[:, :k, :k] = kern[:, 0]
            full = full.roll((-(k // 2), -(k // 2)), (-2, -1))  # centre the kernel at (0, 0)
            self._cache[key] = torch.fft.rfft2(full)
        spec = self._cache[key]  # (2, S, S//2+1)
        seeds = (unif < prob).to(dtype)  # (B, S, S)
        if kind == "brows":
            lines = self._filter(seeds[:, None], spec)  # (B, 2, S, S): both slants everywhere
            centre_u = float(self.layout.landmarks_uv[27, 0])  # nose bridge splits the face
            right = ((torch.arange(s, device=unif.device) + 0.5) / s >= centre_u).to(dtype)
            out = lines[:, 0] * (1 - right) + lines[:, 1] * right
        else:
            half = (unif < prob * 0.5).to(dtype)  # split seeds between the two slants
            out = self._filter(torch.stack([seeds * half, seeds * (1 - half)], 1), spec).sum(1)
        return out.clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Linear albedo model (PCA)
# --------------------------------------------------------------------------------------------

_PCA_FORMAT = 1
#: Bump when the generator's output for given parameters changes (invalidates PCA caches).
_GENERATOR_VERSION = 3


class AlbedoPCA(torch.nn.Module):
    r"""A linear albedo model :math:`A(c) = \bar A + \sum_k c_k\,\sigma_k U_k`, ``c ~ N(0, I)``.

    Buffers (tensors registered on the module):

    - ``mean``: ``(3, S, S)`` mean albedo :math:`\bar A`.
    - ``basis``: ``(K, 3, S, S)`` principal directions *scaled to one standard deviation*,
      :math:`\sigma_k U_k` (orthogonal; ``basis[k]`` has norm ``std[k]``).
    - ``std``: ``(K,)`` :math:`\sigma_k`, decreasing.
    - ``total_variance``: scalar, the total variance of the fitted samples (all components),
      so :meth:`explained_variance_ratio` is :math:`\sigma_k^2 / \mathrm{total}`.

    Fit with :meth:`fit`, or get a cached one for a layout with :func:`build_albedo_pca`.
    """

    mean: torch.Tensor
    basis: torch.Tensor
    std: torch.Tensor
    total_variance: torch.Tensor

    def __init__(
        self,
        mean: torch.Tensor,
        basis: torch.Tensor,
        std: torch.Tensor,
        total_variance: torch.Tensor | float,
    ) -> None:
        super().__init__()
        check_shape("mean", mean, (3, None, None))
        check_shape("basis", basis, (None, *mean.shape))
        check_shape("std", std, (basis.shape[0],))
        self.register_buffer("mean", mean)
        self.register_buffer("basis", basis)
        self.register_buffer("std", std)
        self.register_buffer(
            "total_variance", torch.as_tensor(total_variance, dtype=mean.dtype, device=mean.device)
        )

    @property
    def k(self) -> int:
        """Number of components ``K``."""
        return int(self.basis.shape[0])

    @property
    def size(self) -> int:
        return int(self.mean.shape[-1])

    @classmethod
    def fit(cls, samples: torch.Tensor, k: int) -> AlbedoPCA:
        r"""PCA of ``samples (N, 3, S, S)`` keeping ``k <= N - 1`` components.

        With :math:`X` the ``(N, D)`` centred data, the thin SVD :math:`X = U\Sigma V^T`
        gives directions :math:`V` and standard deviations :math:`\sigma = \Sigma/\sqrt{N-1}`.
        When ``D`` is large the SVD is taken of the ``(N, N)`` Gram matrix in float64
        (:math:`XX^T = U\Sigma^2U^T`, :math:`V = X^TU\Sigma^{-1}`), which is much faster
        for N in the hundreds. Signs are fixed so each direction's largest entry is positive.
        """
        check_shape("samples", samples, (None, 3, None, None))
        check_finite("samples", samples)
        n = samples.shape[0]
        if not 1 <= k <= n - 1:
            raise InvalidInput(f"k must be in [1, N-1] = [1, {n - 1}], got {k}; use more samples")
        x = samples.reshape(n, -1)
        mean = x.mean(0)
        xc = x - mean
        if xc.shape[1] <= 4 * n:
            _, sv, vh = torch.linalg.svd(xc.double(), full_matrices=False)
            sv, v = sv[:k], vh[:k].to(x.dtype)
            total = float(xc.double().pow(2).sum() / (n - 1))
        else:
            gram = (xc @ xc.T).double()
            evals, evecs = torch.linalg.eigh(gram)
            evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
            sv = evals[:k].sqrt()
            v = (evecs[:, :k].T.to(x.dtype) @ xc) / sv[:, None].clamp_min(1e-20).to(x.dtype)
            # re-orthonormalise (QR, signs kept) against the float32 product's rounding
            q, r = torch.linalg.qr(v.double().T)
            v = (q * torch.sign(r.diagonal())).T.to(x.dtype)
            total = float(evals.sum() / (n - 1))
        idx = v.abs().argmax(1)
        sign = torch.sign(v.gather(1, idx[:, None]))
        v = v * torch.where(sign == 0, torch.ones_like(sign), sign)
        std = (sv / math.sqrt(n - 1)).to(x.dtype)
        basis = (v * std[:, None]).reshape(k, *samples.shape[1:])
        return cls(mean.reshape(samples.shape[1:]), basis, std, total)

    def forward(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Albedo ``(B, 3, S, S)`` from standard-normal coefficients ``coeffs (B, K')``,
        ``K' <= K`` (the leading components). Not clamped to [0, 1]."""
        check_shape("coeffs", coeffs, (None, None))
        kk = coeffs.shape[1]
        if kk > self.k:
            raise InvalidInput(f"coeffs has {kk} components but the model has {self.k}")
        flat = coeffs.to(self.basis.dtype) @ self.basis[:kk].reshape(kk, -1)
        return self.mean + flat.reshape(-1, *self.mean.shape)

    def project(self, images: torch.Tensor, k: int | None = None) -> torch.Tensor:
        r"""Least-squares coefficients ``(B, K)`` of ``images (B, 3, S, S)``:
        :math:`c_k = \langle A - \bar A, b_k\rangle / \sigma_k^2` (the basis is orthogonal)."""
        check_shape("images", images, (None, *self.mean.shape))
        kk = self.k if k is None else k
        b = self.basis[:kk].reshape(kk, -1)
        d = (images.to(b.dtype) - self.mean).reshape(images.shape[0], -1)
        return (d @ b.T) / (self.std[:kk] ** 2)

    def explained_variance_ratio(self) -> torch.Tensor:
        """``(K,)`` share of the samples' total variance explained by each component."""
        return self.std**2 / self.total_variance

    def sample(
        self, batch: int, generator: torch.Generator | None = None, clamp: bool = True
    ) -> torch.Tensor:
        """Random albedos ``(B, 3, S, S)`` with ``c ~ N(0, I)`` (clamped to [0, 1] by default)."""
        c = torch.randn(
            batch, self.k, generator=generator, device=self.std.device, dtype=self.std.dtype
        )
        out = self(c)
        return out.clamp(0.0, 1.0) if clamp else out

    def save(self, path: str | os.PathLike) -> None:
        """Write an ``.npz`` (no pickled objects)."""
        arrays = {
            "format": np.array(_PCA_FORMAT),
            "mean": self.mean.detach().cpu().numpy(),
            "basis": self.basis.detach().cpu().numpy(),
            "std": self.std.detach().cpu().numpy(),
            "total_variance": self.total_variance.detach().cpu().numpy(),
        }
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> AlbedoPCA:
        """Read a file written by :meth:`save` (``allow_pickle=False``)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {key: z[key] for key in z.files}
        except (OSError, ValueError) as e:
            raise ModelFormatError(f"{path}: not a readable albedo PCA .npz ({e})") from e
        need = {"format", "mean", "basis", "std", "total_variance"}
        if not need <= set(d) or int(d["format"]) != _PCA_FORMAT:
            raise ModelFormatError(
                f"{path}: not an AlbedoPCA file (format {_PCA_FORMAT} with keys {sorted(need)}); "
                "rebuild it with build_albedo_pca"
            )
        try:
            return cls(
                *(
                    torch.from_numpy(np.asarray(d[key]))
                    for key in ("mean", "basis", "std", "total_variance")
                )
            )
        except InvalidInput as e:
            raise ModelFormatError(f"{path}: inconsistent array shapes ({e})") from e


def _layout_key(layout: UVLayout) -> str:
    h = hashlib.sha256()
    h.update(str(layout.size).encode())
    h.update(np.round(layout.landmarks_uv.detach().cpu().double().numpy(), 6).tobytes())
    h.update(np.packbits(layout.coverage.detach().cpu().numpy() > 0.5).tobytes())
    return h.hexdigest()


def build_albedo_pca(
    layout: UVLayout,
    n: int = 200,
    k: int = 40,
    seed: int = 0,
    config: AlbedoConfig | None = None,
    cache: bool = True,
    batch: int = 16,
    progress: bool = True,
) -> AlbedoPCA:
    """Fit an :class:`AlbedoPCA` to ``n`` procedural samples of ``layout``, cached on disk.

    Args:
        layout: where features lie (see :func:`uv_layout_from_model`).
        n, k: number of samples and of kept components.
        seed: seed of the samples' ``torch.Generator``.
        config: generator settings; default ``AlbedoConfig(detail=False)`` — pores, freckles
            and stubble are high-frequency and random in position, which a linear model can
            only blur, so the PCA models the smooth albedo (GANFit-style texture GANs use
            the detailed samples instead).
        cache: read/write ``<facelab.data.cache_dir()>/albedo/albedo_pca_<hash>.npz``, the
            hash covering the layout, config, ``n``, ``k``, ``seed`` and the file format.
        batch: samples generated per step; ``progress`` shows a tqdm bar.

    Returns the model on the layout's device, in the layout's dtype.
    """
    from ..data import cache_dir

    cfg = config if config is not None else AlbedoConfig(detail=False)
    h = hashlib.sha256()
    h.update(_layout_key(layout).encode())
    h.update(repr(sorted(asdict(cfg).items())).encode())
    h.update(f"{n}|{k}|{seed}|{_PCA_FORMAT}|{_GENERATOR_VERSION}".encode())
    path = Path(cache_dir()) / "albedo" / f"albedo_pca_{h.hexdigest()[:20]}.npz"
    if cache and path.is_file():
        return AlbedoPCA.load(path).to(device=layout.device, dtype=layout.dtype)

    from tqdm.auto import tqdm

    gen = ProceduralAlbedo(layout, cfg)
    g = torch.Generator(device=layout.device).manual_seed(seed)
    params = gen.sample_params(n, g)
    chunks = []
    for i in tqdm(range(0, n, batch), desc="albedo samples", disable=not progress):
        chunks.append(gen.render(params[i : i + batch]))
    pca = AlbedoPCA.fit(torch.cat(chunks), k)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        pca.save(tmp)
        os.replace(tmp, path)
    return pca


# --------------------------------------------------------------------------------------------
# Per-vertex colours
# --------------------------------------------------------------------------------------------


def sample_uv(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of ``image (B, C, S, S)`` at ``uv (N, 2)`` or ``(B, N, 2)`` -> ``(B, N, C)``.

    Texel convention of this module (v up, texel centres at ``(j + 0.5) / S``); UVs outside
    [0, 1] take the border texel (``padding_mode="border"``), so UDIM tiles beyond the
    first one get edge colours rather than wrapped facial features.
    """
    from ..render.texture import sample_points

    check_shape("image", image, (None, None, None, None))
    if uv.dim() == 3:
        check_shape("uv", uv, (image.shape[0], None, 2))
    return sample_points(image, uv)  # the one bilinear point lookup


def sample_vertex_albedo(
    albedo: torch.Tensor,
    uvs: torch.Tensor,
    uv_faces: torch.Tensor,
    faces: torch.Tensor,
    num_vertices: int | None = None,
) -> torch.Tensor:
    """Per-vertex colours ``(B, V, 3)`` from UV albedo ``(B, 3, S, S)``.

    Args:
        albedo: ``(B, 3, S, S)`` UV image (e.g. :meth:`ProceduralAlbedo.sample`).
        uvs: ``(T, 2)`` texture coordinates; ``uv_faces``, ``faces``: ``(F, 3) long`` — the
            UV and vertex index of each face corner (as in a ``MorphableModel``).
        num_vertices: ``V``; default ``faces.max() + 1``.

    A vertex on a UV seam has several UVs: its colour is the **mean over its distinct UVs**
    (each distinct (vertex, uv) pair counts once, however many faces share it). Vertices on
    no face get 0. Bilinear sampling via :func:`sample_uv`.
    """
    check_shape("albedo", albedo, (None, 3, None, None))
    check_shape("uvs", uvs, (None, 2))
    check_shape("uv_faces", uv_faces, (None, 3))
    check_shape("faces", faces, (uv_faces.shape[0], 3))
    dev = albedo.device
    fv = faces.reshape(-1).long().to(dev)
    ft = uv_faces.reshape(-1).long().to(dev)
    nv = int(fv.max()) + 1 if num_vertices is None else int(num_vertices)
    if int(fv.max()) >= nv:
        raise InvalidInput(f"faces index vertex {int(fv.max())} but num_vertices is {nv}")
    nt = uvs.shape[0]
    pairs = torch.unique(fv * nt + ft)
    pv, pt = torch.div(pairs, nt, rounding_mode="floor"), pairs % nt
    cols = sample_uv(albedo, uvs.to(dev, albedo.dtype)[pt])  # (B, P, 3)
    out = albedo.new_zeros(albedo.shape[0], nv, 3).index_add(1, pv, cols)
    cnt = albedo.new_zeros(nv).index_add(0, pv, torch.ones_like(pv, dtype=albedo.dtype))
    return out / cnt.clamp_min(1.0)[None, :, None]
