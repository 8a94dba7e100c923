r"""GAR's generator: a StyleGAN2 whose every layer is told the face's normal map.

``G(normals, z) -> image``. The mapping network, modulated convolutions, noise and skip toRGB
are :mod:`facelab.gan.networks`' (Chapter 6). What is new is the **normal injection module**
after every modulated convolution: a spatially varying modulation in the manner of SPADE
(Park et al. 2019).

**The injection module, derived.** A modulated, demodulated convolution outputs features
:math:`x \in \mathbb{R}^{C \times H \times W}` of about unit variance whose *style* (one scale
per channel, from :math:`w`) is the same at every pixel: :math:`w` can say "pale skin, warm
light", not "this pixel faces the light". The geometry must vary per pixel, so the map
:math:`n` (resized to :math:`H \times W`) goes through a small conv net

.. math::

    h = \operatorname{lrelu}(\operatorname{conv}_{3\times3}(n)), \qquad
    \gamma = \operatorname{conv}_{3\times3}(h), \quad \beta = \operatorname{conv}_{3\times3}(h),

    x' = x \odot (1 + \gamma) + \beta .

:math:`\gamma, \beta \in \mathbb{R}^{C\times H\times W}`: a per-pixel, per-channel affine map.
With :math:`\gamma = \beta = 0` (the initialisation of the last convs) the layer is plain
StyleGAN2, so training starts from an unconditional generator and learns how much geometry to
let in. A :math:`3\times3` receptive field sees normal *differences* (curvature, edges,
occluding contours), which a :math:`1\times1` map of :math:`n` alone (``facelab.gan``'s
``map_channels`` hook) cannot. Why not concatenate :math:`n` to the input of each conv
(``injection="concat"``)? Then the first thing the convolution does with it is mix it with
:math:`x` under a per-sample *demodulated* weight, which rescales the geometry's contribution
differently for every :math:`w`; the SPADE form keeps the geometry's effect independent of the
style.

The latent :math:`z` carries what the normals do not: albedo, light, background, hair.
Images are ``(B, 3, R, R)`` in about [-1, 1]; normal maps ``(B, 3, R, R)`` unit vectors, 0 on
the background.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InvalidInput
from ...gan.networks import (
    Discriminator,
    DiscriminatorConfig,
    EqualConv2d,
    MappingNetwork,
    ModulatedConv,
    ToRGB,
    _lrelu,
)

__all__ = [
    "GARConfig",
    "GARGenerator",
    "NormalInjection",
    "make_discriminator",
]

INJECTIONS = ("spade", "concat", "none")


class NormalInjection(nn.Module):
    """``(x (B, C, H, W), n (B, M, h, w)) -> x * (1 + gamma(n)) + beta(n)``; see the module doc.

    ``n`` is resized (bilinear) to ``x``'s size. ``gamma`` and ``beta`` start at exactly 0."""

    def __init__(self, channels: int, map_channels: int = 3, hidden: int = 32) -> None:
        super().__init__()
        self.shared = EqualConv2d(map_channels, hidden, 3, 1)
        self.gamma = EqualConv2d(hidden, channels, 3, 1)
        self.beta = EqualConv2d(hidden, channels, 3, 1)
        for m in (self.gamma, self.beta):
            nn.init.zeros_(m.weight)

    def params(self, n: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gamma, beta)`` each ``(B, C, H, W)`` for the map ``n`` at ``size``."""
        if n.shape[-2:] != size:
            n = F.interpolate(n, size=size, mode="bilinear", align_corners=False)
        h = _lrelu(self.shared(n))
        return self.gamma(h), self.beta(h)

    def forward(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        if n.dim() != 4 or n.shape[0] != x.shape[0]:
            raise InvalidInput(
                f"normal map must be (B, M, H, W) with B = {x.shape[0]}, got {tuple(n.shape)}"
            )
        g, b = self.params(n, tuple(x.shape[-2:]))
        return x * (1 + g) + b


class GARLayer(nn.Module):
    """[2x upsample] -> modulated 3x3 conv -> normal injection -> noise -> bias -> lrelu."""

    def __init__(
        self, cin: int, cout: int, w_dim: int, up: bool, injection: str, hidden: int, mc: int
    ) -> None:
        super().__init__()
        self.up = up
        self.injection = injection
        extra = mc if injection == "concat" else 0
        self.conv = ModulatedConv(cin + extra, cout, 3, w_dim)
        self.inject = NormalInjection(cout, mc, hidden) if injection == "spade" else None
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, n: torch.Tensor, noise: torch.Tensor | None
    ) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        if self.injection == "concat":
            m = F.interpolate(n, size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = torch.cat([x, m], dim=1)
        x = self.conv(x, w)
        if self.inject is not None:
            x = self.inject(x, n)
        if noise is None:
            noise = torch.randn(
                x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype
            )
        x = x + self.noise_strength * noise
        return _lrelu(x + self.bias[None, :, None, None])


@dataclass
class GARConfig:
    """Shape of a :class:`GARGenerator`.

    Attributes:
        resolution: output size (power of two >= 8).
        z_dim, w_dim, mapping_layers: latent sizes and mapping depth.
        channel_base, channel_max: channels at resolution ``r``: ``min(max, base // r)``.
        map_channels: channels of the condition (3: a normal map; 1: a depth map; the
            parameter count for the 3DMM-parameter condition, see
            :func:`facelab.methods.gar.geometry.condition_channels`).
        injection: ``"spade"`` (the injection module), ``"concat"`` (the map concatenated to
            every conv's input: the ablation), ``"none"`` (unconditional).
        hidden: hidden channels of each injection module.
    """

    resolution: int = 32
    z_dim: int = 64
    w_dim: int = 128
    mapping_layers: int = 4
    channel_base: int = 2048
    channel_max: int = 128
    map_channels: int = 3
    injection: str = "spade"
    hidden: int = 32

    def __post_init__(self) -> None:
        r = self.resolution
        if r < 8 or r & (r - 1):
            raise InvalidInput(f"resolution must be a power of two >= 8, got {r}")
        if self.injection not in INJECTIONS:
            raise InvalidInput(f"injection must be one of {INJECTIONS}, got {self.injection!r}")

    def ch(self, res: int) -> int:
        return max(1, min(self.channel_max, self.channel_base // res))

    def to_dict(self) -> dict:
        return asdict(self)


class GARGenerator(nn.Module):
    """``G(normals (B, 3, R, R), z (B, z_dim)) -> image (B, 3, R, R)``.

    :meth:`synthesis` takes ``ws (B, num_ws, w_dim)`` (the inversion optimises them).
    """

    def __init__(self, config: GARConfig | None = None, **kw) -> None:
        super().__init__()
        cfg = config or GARConfig(**kw)
        self.config = cfg
        self.mapping = MappingNetwork(cfg.z_dim, cfg.w_dim, cfg.mapping_layers)
        self.resolutions = [2**i for i in range(2, int(math.log2(cfg.resolution)) + 1)]
        self.const = nn.Parameter(torch.randn(cfg.ch(4), 4, 4))
        self.layers = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        a = (cfg.w_dim, cfg.injection, cfg.hidden, cfg.map_channels)
        for i, res in enumerate(self.resolutions):
            cout = cfg.ch(res)
            if i == 0:
                self.layers.append(GARLayer(cfg.ch(4), cout, a[0], False, *a[1:]))
            else:
                cin = cfg.ch(self.resolutions[i - 1])
                self.layers.append(GARLayer(cin, cout, a[0], True, *a[1:]))
                self.layers.append(GARLayer(cout, cout, a[0], False, *a[1:]))
            self.to_rgbs.append(ToRGB(cout, cfg.w_dim, 3))
        self.num_ws = len(self.layers) + 1
        for i in range(len(self.layers)):
            res = 4 * 2 ** ((i + 1) // 2)
            self.register_buffer(f"noise_const_{i}", torch.randn(1, 1, res, res))

    def noises(self, b: int, mode: str, like: torch.Tensor) -> list[torch.Tensor | None]:
        """Per-layer noise: ``"random"`` (None = fresh), ``"const"`` (the fixed buffers), ``"none"``."""
        if mode == "random":
            return [None] * len(self.layers)
        if mode not in ("const", "none"):
            raise InvalidInput(f"noise_mode must be 'random', 'const' or 'none', got {mode!r}")
        out = []
        for i in range(len(self.layers)):
            buf = getattr(self, f"noise_const_{i}").to(like.dtype)
            out.append((buf if mode == "const" else torch.zeros_like(buf)).expand(b, -1, -1, -1))
        return out

    def synthesis(
        self, ws: torch.Tensor, normals: torch.Tensor, noise_mode: str = "random"
    ) -> torch.Tensor:
        """Image from ``ws (B, num_ws, w_dim)`` (or ``(B, w_dim)``, broadcast) and the condition
        ``normals`` (the map ``(B, map_channels, H, W)``, resized to the resolution; or a vector
        ``(B, map_channels)``, broadcast to a constant map)."""
        if ws.dim() == 2:
            ws = ws[:, None].expand(-1, self.num_ws, -1)
        if ws.dim() != 3 or ws.shape[1] != self.num_ws:
            raise InvalidInput(
                f"ws must be (B, {self.num_ws}, {self.config.w_dim}), got {tuple(ws.shape)}"
            )
        R = self.config.resolution
        if normals.dim() == 2 and normals.shape[1] == self.config.map_channels:
            # a condition vector (the 3DMM-parameter ablation): a constant map
            normals = normals[:, :, None, None].expand(-1, -1, R, R)
        if normals.dim() != 4 or normals.shape[1] != self.config.map_channels:
            raise InvalidInput(
                f"the condition must be (B, {self.config.map_channels}, H, W) or "
                f"(B, {self.config.map_channels}), got {tuple(normals.shape)}"
            )
        if normals.shape[0] != ws.shape[0]:
            raise InvalidInput(f"normals batch {normals.shape[0]} != latent batch {ws.shape[0]}")
        if normals.shape[-1] != R:
            normals = F.interpolate(normals, size=(R, R), mode="bilinear", align_corners=False)
        b = ws.shape[0]
        n = normals.to(ws.dtype)
        noises = self.noises(b, noise_mode, ws)
        x = self.const[None].expand(b, -1, -1, -1).to(ws.dtype)
        img = None
        li = 0
        for r in range(len(self.resolutions)):
            for _ in range(1 if r == 0 else 2):
                x = self.layers[li](x, ws[:, li], n, noises[li])
                li += 1
            rgb = self.to_rgbs[r](x, ws[:, li])
            if img is not None:
                img = F.interpolate(img, scale_factor=2.0, mode="bilinear", align_corners=False)
            img = rgb if img is None else img + rgb
        return img

    def forward(
        self,
        normals: torch.Tensor,
        z: torch.Tensor,
        psi: float = 1.0,
        noise_mode: str = "random",
        update_w_avg: float | None = None,
    ) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.config.z_dim:
            raise InvalidInput(f"z must be (B, {self.config.z_dim}), got {tuple(z.shape)}")
        w = self.mapping(z, None, psi, update_w_avg)
        return self.synthesis(w, normals, noise_mode)


def make_discriminator(resolution: int, channel_max: int = 128) -> Discriminator:
    """The unconditional StyleGAN2 discriminator of :mod:`facelab.gan.networks`: the real
    photos come without normal maps (unpaired training), so D judges images alone."""
    return Discriminator(
        DiscriminatorConfig(resolution=resolution, channel_max=channel_max, channel_base=2048)
    )
