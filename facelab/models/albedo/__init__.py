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

**Files** (one idea each; everything is importable from ``facelab.models.albedo``):

- :mod:`~facelab.models.albedo.skin` — the spectral skin colour model (layer 1);
- :mod:`~facelab.models.albedo.layout` — UV layouts and region masks (layer 2), the texel
  coverage of a UV mesh (:func:`uv_coverage`: the rasterizer's fill rule plus closed edges);
- :mod:`~facelab.models.albedo.procedural` — the generator (layer 3);
- :mod:`~facelab.models.albedo.pca` — the linear albedo model and its cache.

Per-vertex colours from a UV image are a texture lookup: :func:`facelab.render.sample_vertex_albedo`
(``models`` sits below ``render`` and does not import it).

The sRGB transfer functions are :mod:`facelab.color`'s (re-exported here).
"""

from __future__ import annotations

from ...color import linear_to_srgb, srgb_to_linear
from .layout import (
    REGION_NAMES,
    UVLayout,
    uv_coverage,
    uv_layout_from_mesh,
    uv_layout_from_model,
)
from .pca import AlbedoPCA, build_albedo_pca
from .procedural import AlbedoConfig, AlbedoParams, ProceduralAlbedo
from .skin import hair_reflectance, skin_reflectance

# isort: off
# private names that other modules and the tests read through this package
from .pca import _GENERATOR_VERSION, _PCA_FORMAT, _layout_key  # noqa: F401
from .procedural import _stroke_kernels  # noqa: F401
# isort: on

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
    "skin_reflectance",
    "srgb_to_linear",
    "uv_coverage",
    "uv_layout_from_mesh",
    "uv_layout_from_model",
]
