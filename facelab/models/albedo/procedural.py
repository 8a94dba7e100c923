"""The procedural albedo generator: :class:`AlbedoConfig`, per-sample :class:`AlbedoParams` and :class:`ProceduralAlbedo` (noise, regions, freckles, moles, pores, hair)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ...color import linear_to_srgb
from ...errors import InvalidInput
from .layout import UVLayout, uv_layout_from_model
from .skin import _skin_spectrum, _spectral_tables, hair_reflectance

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
