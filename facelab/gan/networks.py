r"""Generators and discriminators: a compact StyleGAN2 and a progressive-growing configuration.

One codebase, two configurations (:class:`GeneratorConfig`):

- ``architecture="skip"`` — StyleGAN2 (Karras et al., CVPR 2020): a mapping network
  :math:`z \mapsto w`, a learned 4x4 constant, per resolution two *modulated + demodulated*
  3x3 convolutions with per-pixel noise, and a skip generator that sums the upsampled RGB
  outputs of every resolution.
- ``architecture="progressive"`` — ProGAN-style growing (Karras et al., ICLR 2018; the texture
  model GANFit trained): the same blocks, but only the current top resolution's RGB output is
  used, faded in from the upsampled previous one with ``alpha`` in [0, 1]
  (:meth:`Generator.set_stage`). The discriminator fades its input layers the same way.

**Modulated convolution.** With style :math:`s \in \mathbb{R}^{C_{in}}` (an affine map of
:math:`w`), the weight of sample :math:`b` is

.. math::

    w'_{b,o,i,k} = w_{o,i,k}\, s_{b,i}, \qquad
    w''_{b,o,i,k} = w'_{b,o,i,k} \Big/ \sqrt{\textstyle\sum_{i,k} w'^2_{b,o,i,k} + \epsilon}

(demodulation restores unit output variance for unit-variance input, replacing AdaIN's
instance normalisation without its "droplet" artifacts). Every sample has its own weights;
:func:`modulated_conv2d` runs the whole batch as *one* grouped convolution
(``groups=B``: reshape the input to ``(1, B*C_in, H, W)`` and the weights to
``(B*C_out, C_in, k, k)``), the trick of rosinality's implementation;
:func:`modulated_conv2d_reference` is the plain per-sample loop it is tested against.

**Equalised learning rate.** Weights are stored ~N(0, 1) and scaled at run time by
:math:`c = \text{lr\_mul}/\sqrt{\text{fan\_in}}` (He's constant), so Adam's per-parameter step
size is the same in every layer; the mapping network uses ``lr_mul = 0.01``.

**Conditioning hooks.** ``c_dim > 0``: a class/camera vector is embedded and concatenated
with :math:`z` in the mapping network, and the discriminator adds a projection term
:math:`\langle \phi(x), e(c) \rangle` (Miyato & Koyama 2018). ``map_channels > 0``: a
condition map (e.g. GAR's normal map, ``(B, M, H, W)``) is resized to every resolution and,
after each modulated convolution, turned into per-pixel scale and shift by a 1x1 convolution
(``x * (1 + a) + b``); the discriminator sees it concatenated to the image.

**Resampling.** ``resample_filter=None`` (the default, and every shipped checkpoint) upsamples
bilinearly and downsamples with a 2x2 average pool; a list of taps such as ``[1, 3, 3, 1]``
uses StyleGAN2's FIR filters instead (``facelab.gan.resample``: the same up-filter as bilinear
away from the border, zero padding at it; a binomial low-pass instead of the box filter
before every discriminator downsampling).

Images are ``(B, C, H, W)``; generator outputs are unbounded (about [-1, 1] for data scaled
to [-1, 1]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidInput
from .checkpoint import JsonConfig
from .resample import downsample2d, fir_kernel, upsample2d

__all__ = [
    "Discriminator",
    "DiscriminatorConfig",
    "EqualConv2d",
    "EqualLinear",
    "Generator",
    "GeneratorConfig",
    "MappingNetwork",
    "minibatch_stddev",
    "modulated_conv2d",
    "modulated_conv2d_reference",
    "modulated_conv2d_scaled",
]

_SQRT2 = math.sqrt(2.0)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU (slope 0.2) with StyleGAN's gain :math:`\\sqrt 2` (keeps unit variance)."""
    return F.leaky_relu(x, 0.2) * _SQRT2


class _Resample(nn.Module):
    """2x up/down resampling: bilinear / 2x2 average pool (``taps=None``) or the FIR filter
    ``taps`` (``facelab.gan.resample``). The taps live in a non-persistent buffer, so a
    checkpoint's parameter names do not depend on the filter."""

    def __init__(self, taps: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.fir = taps is not None
        self.register_buffer(
            "kernel", fir_kernel(taps) if taps is not None else torch.ones(0), persistent=False
        )

    def up(self, x: torch.Tensor) -> torch.Tensor:
        if self.fir:
            return upsample2d(x, self.kernel)
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    def down(self, x: torch.Tensor) -> torch.Tensor:
        return downsample2d(x, self.kernel) if self.fir else F.avg_pool2d(x, 2)


# --------------------------------------------------------------------------------------------
# Equalised layers
# --------------------------------------------------------------------------------------------


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: ``y = x (c W)^T + lr_mul * b``.

    ``activation=True`` applies ``_lrelu``. ``bias_init`` fills the bias (1 for the style
    affines, so an untrained style is the identity modulation).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = (
            nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        )
        self.scale = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias * self.lr_mul if self.bias is not None else None
        y = F.linear(x, self.weight * self.scale, b)
        return _lrelu(y) if self.activation else y


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate (weight ~N(0,1) scaled by ``1/sqrt(fan_in)``)."""

    def __init__(
        self, cin: int, cout: int, kernel: int, padding: int = 0, bias: bool = True
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = 1.0 / math.sqrt(cin * kernel * kernel)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


# --------------------------------------------------------------------------------------------
# Modulated convolution
# --------------------------------------------------------------------------------------------


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    padding: int = 0,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Modulated (+ demodulated) convolution of a batch as one grouped ``conv2d``.

    Args:
        x: ``(B, C_in, H, W)`` input.
        weight: ``(C_out, C_in, k, k)`` shared weight (already scaled).
        styles: ``(B, C_in)`` per-sample input-channel scales :math:`s`.
        demodulate: divide each output channel's weight by its norm (see the module doc).
        padding: conv padding.

    Returns ``(B, C_out, H', W')``. Equal to :func:`modulated_conv2d_reference`.
    """
    b, cin, h, w_ = x.shape
    cout, cin_w, kh, kw = weight.shape
    if cin_w != cin or styles.shape != (b, cin):
        raise InvalidInput(
            f"modulated_conv2d: x {tuple(x.shape)}, weight {tuple(weight.shape)} and styles "
            f"{tuple(styles.shape)} disagree (need styles (B, C_in) and weight (C_out, C_in, k, k))"
        )
    wb = weight[None] * styles[:, None, :, None, None]  # (B, Cout, Cin, k, k)
    if demodulate:
        d = torch.rsqrt(wb.square().sum(dim=(2, 3, 4)) + eps)  # (B, Cout)
        wb = wb * d[:, :, None, None, None]
    out = F.conv2d(
        x.reshape(1, b * cin, h, w_), wb.reshape(b * cout, cin, kh, kw), padding=padding, groups=b
    )
    return out.reshape(b, cout, out.shape[-2], out.shape[-1])


def modulated_conv2d_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    padding: int = 0,
    eps: float = 1e-8,
) -> torch.Tensor:
    """The plain twin of :func:`modulated_conv2d`: one ``conv2d`` per sample, formula as written.

    For each sample ``b``: ``w' = weight * s_b`` over input channels; if ``demodulate``,
    ``w'' = w' / sqrt(sum_{i,k} w'^2 + eps)`` per output channel; ``y_b = conv2d(x_b, w'')``.
    """
    outs = []
    for i in range(x.shape[0]):
        wi = weight * styles[i][None, :, None, None]
        if demodulate:
            wi = wi / torch.sqrt(wi.pow(2).sum(dim=(1, 2, 3), keepdim=True) + eps)
        outs.append(F.conv2d(x[i : i + 1], wi, padding=padding))
    return torch.cat(outs)


def modulated_conv2d_scaled(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    padding: int = 0,
    eps: float = 1e-8,
) -> torch.Tensor:
    """The same result with one *ordinary* convolution: scale the input channels by ``s``,
    convolve with the shared weight, scale the output channels by the demodulation factors
    (StyleGAN2's ``fused_modconv=False`` path). Cheaper than the grouped form when the
    per-sample weights are large compared with the activations (many channels, few pixels)."""
    y = F.conv2d(x * styles[:, :, None, None], weight, padding=padding)
    if demodulate:
        d = torch.rsqrt(
            (weight[None] * styles[:, None, :, None, None]).square().sum((2, 3, 4)) + eps
        )
        y = y * d[:, :, None, None]
    return y


_MODCONV = {
    "grouped": modulated_conv2d,
    "scaled": modulated_conv2d_scaled,
    "loop": modulated_conv2d_reference,
}


def _auto_mode(x: torch.Tensor, weight: torch.Tensor) -> str:
    """Grouped when the activations outweigh the per-sample weights (measured on CPU: grouped
    is 1.3x faster at 64 px / 16 ch, 1.9x slower at 8 px / 128 ch, forward + backward)."""
    return (
        "grouped"
        if x.shape[-1] * x.shape[-2] * 4 >= weight.shape[0] * weight.shape[1]
        else "scaled"
    )


class ModulatedConv(nn.Module):
    """A modulated conv layer: style affine ``w -> s`` (bias 1) + shared weight.

    ``mode``: ``"grouped"`` (:func:`modulated_conv2d`), ``"scaled"``
    (:func:`modulated_conv2d_scaled`), ``"loop"`` (:func:`modulated_conv2d_reference`, the
    plain reference of the benchmark) or ``"auto"`` (per call, by ``_auto_mode``). All
    give the same result; only the speed differs."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        w_dim: int,
        demodulate: bool = True,
        mode: str = "auto",
    ) -> None:
        super().__init__()
        if mode not in ("auto", *_MODCONV):
            raise InvalidInput(
                f"modulated conv mode must be auto/grouped/scaled/loop, got {mode!r}"
            )
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.scale = 1.0 / math.sqrt(cin * kernel * kernel)
        self.padding = kernel // 2
        self.demodulate = demodulate
        self.mode = mode

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.affine(w)
        weight = self.weight * self.scale
        mode = _auto_mode(x, weight) if self.mode == "auto" else self.mode
        return _MODCONV[mode](x, weight, s, self.demodulate, self.padding)


class StyledConv(nn.Module):
    """[2x upsample] -> modulated 3x3 conv -> [map injection] -> noise -> bias -> lrelu.

    The upsampling is bilinear, or the FIR filter ``resample_filter`` (taps)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        w_dim: int,
        up: bool,
        map_channels: int = 0,
        mode: str = "auto",
        resample_filter: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.up = up
        self.resample = _Resample(resample_filter)
        self.conv = ModulatedConv(cin, cout, 3, w_dim, mode=mode)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.inject = EqualConv2d(map_channels, 2 * cout, 1) if map_channels else None

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise: torch.Tensor | None = None,
        cond_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.up:
            x = self.resample.up(x)
        x = self.conv(x, w)
        if self.inject is not None and cond_map is not None:
            m = F.interpolate(cond_map, size=x.shape[-2:], mode="bilinear", align_corners=False)
            a, b = self.inject(m).chunk(2, dim=1)
            x = x * (1 + a) + b
        if noise is None:
            noise = torch.randn(
                x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype
            )
        x = x + self.noise_strength * noise
        return _lrelu(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation -> ``img_channels``."""

    def __init__(
        self, cin: int, w_dim: int, img_channels: int, mode: str = "auto", init: float = 1.0
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv(cin, img_channels, 1, w_dim, demodulate=False, mode=mode)
        self.conv.weight.data.mul_(init)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


# --------------------------------------------------------------------------------------------
# Mapping network and generator
# --------------------------------------------------------------------------------------------


class MappingNetwork(nn.Module):
    """``z (B, z_dim)`` [+ ``c (B, c_dim)``] -> ``w (B, w_dim)``: normalise, MLP (lr_mul 0.01).

    Tracks ``w_avg`` (a running mean of ``w`` during training) for truncation:
    ``w' = w_avg + psi (w - w_avg)``. ``layers=0`` gives ``w = normalise(z)`` (ProGAN has no
    mapping network); then ``z_dim`` must equal ``w_dim``.
    """

    def __init__(
        self, z_dim: int, w_dim: int, layers: int = 4, c_dim: int = 0, lr_mul: float = 0.01
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.c_dim = z_dim, w_dim, c_dim
        self.embed = EqualLinear(c_dim, w_dim) if c_dim else None
        dims = [z_dim + (w_dim if c_dim else 0)] + [w_dim] * layers
        if layers == 0 and dims[0] != w_dim:
            raise InvalidInput(
                "a mapping network with 0 layers needs z_dim (+ w_dim if c_dim) == w_dim"
            )
        self.net = nn.Sequential(
            *[
                EqualLinear(dims[i], dims[i + 1], lr_mul=lr_mul, activation=True)
                for i in range(layers)
            ]
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    @staticmethod
    def _normalize(x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        psi: float = 1.0,
        update_w_avg: float | None = None,
    ) -> torch.Tensor:
        x = self._normalize(z)
        if self.embed is not None:
            if c is None:
                raise InvalidInput(
                    f"this mapping network is conditional (c_dim={self.c_dim}); pass c"
                )
            x = torch.cat([x, self._normalize(self.embed(c))], dim=1)
        w = self.net(x)
        if update_w_avg is not None:
            self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, update_w_avg))
        if psi != 1.0:
            w = self.w_avg.lerp(w, psi)
        return w


class _Layout(JsonConfig):
    """What :class:`GeneratorConfig` and :class:`DiscriminatorConfig` share: the resolution
    and architecture check and the channel rule (fields declared by the dataclasses)."""

    resolution: int
    architecture: str
    channels: dict[int, int]
    channel_base: int
    channel_max: int
    resample_filter: tuple[int, ...] | None

    def _check(self, architectures: tuple[str, ...]) -> None:
        """Validate ``resolution`` (a power of two >= 8), ``architecture`` and
        ``resample_filter`` (even, symmetric taps, as a tuple); ``channels`` keys and values
        to ``int``."""
        r = self.resolution
        if r < 8 or r & (r - 1):
            raise InvalidInput(f"resolution must be a power of two >= 8, got {r}")
        if self.architecture not in architectures:
            names = " or ".join(repr(a) for a in architectures)
            raise InvalidInput(f"architecture must be {names}, got {self.architecture!r}")
        self.channels = {int(k): int(v) for k, v in self.channels.items()}
        if self.resample_filter is not None:
            self.resample_filter = tuple(self.resample_filter)
            fir_kernel(self.resample_filter)  # raises InvalidInput for odd or asymmetric taps

    def ch(self, res: int) -> int:
        """Channels at resolution ``res``: ``channels[res]`` if given, else
        ``clip(channel_base // res, 1, channel_max)``."""
        return self.channels.get(res, max(1, min(self.channel_max, self.channel_base // res)))


@dataclass
class GeneratorConfig(_Layout):
    """Shape of a :class:`Generator` (all the information needed to rebuild it).

    Attributes:
        resolution: output size (a power of two >= 8).
        z_dim, w_dim: latent sizes (``z_dim`` is "the latent size" compared with a PCA's K).
        mapping_layers: depth of the mapping network (StyleGAN2: 8; 0 = none).
        channels: ``{resolution: channels}`` as a dict with string or int keys; missing
            resolutions use ``channel_base / resolution`` clipped to ``channel_max``.
        channel_base, channel_max: see above.
        img_channels: 3 for RGB.
        architecture: ``"skip"`` (StyleGAN2) or ``"progressive"`` (ProGAN fade-in).
        c_dim, map_channels: conditioning hooks (see the module doc).
        base_image: add a learned ``(C, R, R)`` image to the output (initialise it with the
            data mean, :meth:`Generator.init_base`): for aligned data such as UV textures the
            network then learns the *variation* around the mean layout from the first step,
            which cuts the images a small CPU run needs by a large factor.
        rgb_init: initial scale of the toRGB weights (StyleGAN2: 1, an output of std ~1 per
            resolution; with a base image, 0.1 starts the generator close to the mean).
        train_base: learn the base image (True, the shipped texture GAN) or keep it fixed at
            its initial value, the data mean (a buffer, not a parameter). A learned base is a
            free per-pixel parameter: Adam moves every texel by about ``lr`` per step along
            the sign of a noisy adversarial gradient, and in the shipped run it drifted into
            the fixed pattern every sample carries (see ``CHANGELOG.md``, issue 14).
        resample_filter: ``None`` (bilinear upsampling) or FIR taps such as ``[1, 3, 3, 1]``
            for every 2x upsampling (``facelab.gan.resample.upsample2d``).
        linear_basis: ``K > 0`` adds a *linear path* beside the synthesis network: a fixed
            basis ``(K, C, R, R)`` (the data's first ``K`` principal components, each scaled
            by its standard deviation, :meth:`Generator.init_linear_basis`) weighted by
            ``K`` coefficients, an affine map of the first layer's ``w`` (lr_mul 0.01). Set up
            so that the coefficients of the untrained mapping are whitened, the untrained
            generator is the PCA model plus a small residual; training then moves the
            coefficients' distribution and learns, in the residual, what a linear model
            cannot hold (local marks, high-band detail). 0: no linear path.
        center_output: pin the generator's mean image to its base image (the data mean):
            the learned part of the output (synthesis network plus linear path) has its
            running mean over ``z`` subtracted, ``x = base + f(w) - E_z[f(w)]``, the mean kept
            in the buffer ``out_avg`` (updated during training by
            :meth:`Generator.update_out_avg`, like ``w_avg``; recomputed exactly on export by
            :meth:`Generator.calibrate_out_avg`). Without it the shipped texture GAN's
            samples carried a z-independent pattern (a texel-mean gap of 0.05, five times
            its data-like variation) that its discriminator did not punish (issue 14).
        whiten_coeff: (needs ``linear_basis``) the linear path's coefficients are whitened
            with their running statistics over ``z``: ``a = (c(w) - mu) Sigma^{-1/2}`` (ZCA;
            ``mu``, ``Sigma`` in the buffers ``coeff_mean``, ``coeff_whiten``, updated during
            training by :meth:`Generator.update_coeff_stats`, recomputed exactly on export
            by :meth:`Generator.calibrate_coeff_stats`). The coefficients then have the
            data's first two moments (zero mean, identity covariance: the PCA's) whatever the
            training does, and the game can only change their *shape* (skin-tone clusters,
            heavy tails). In the ``cpu-64-pca`` run their mean drifted to a norm of 2.1.
        residual_orthogonal: (needs ``linear_basis``) the synthesis network's output is
            projected onto the orthogonal complement of the basis' span, ``r - Q^T Q r``
            (``Q``: orthonormal rows spanning the basis), so the residual holds only what the
            ``K`` principal components cannot and cannot move the coefficients.
    """

    resolution: int = 64
    z_dim: int = 64
    w_dim: int = 128
    mapping_layers: int = 4
    channels: dict = field(default_factory=dict)
    channel_base: int = 2048
    channel_max: int = 128
    img_channels: int = 3
    architecture: str = "skip"
    c_dim: int = 0
    map_channels: int = 0
    base_image: bool = False
    rgb_init: float = 1.0
    train_base: bool = True
    resample_filter: tuple[int, ...] | None = None
    linear_basis: int = 0
    center_output: bool = False
    whiten_coeff: bool = False
    residual_orthogonal: bool = False

    def __post_init__(self) -> None:
        self._check(("skip", "progressive"))
        if self.linear_basis < 0:
            raise InvalidInput(f"linear_basis must be >= 0, got {self.linear_basis}")
        if self.center_output and self.architecture == "progressive":
            raise InvalidInput("center_output needs the full-resolution 'skip' architecture")
        for name in ("whiten_coeff", "residual_orthogonal"):
            if getattr(self, name) and not self.linear_basis:
                raise InvalidInput(f"{name} needs a linear path (linear_basis > 0)")
        if self.residual_orthogonal and self.architecture == "progressive":
            raise InvalidInput("residual_orthogonal needs the full-resolution 'skip' architecture")


class Generator(nn.Module):
    """``G(z) -> image (B, img_channels, R, R)``; see the module doc for the architecture.

    ``forward(z, c=None, psi=1, noise_mode="random"|"const"|"none", mix_z=None,
    mix_layer=None, cond_map=None, detail=None)``; :meth:`synthesis` takes ``ws (B, L,
    w_dim)`` (one ``w`` per layer: ``W+``) directly, for inversion and style mixing.

    ``detail`` (a sampling knob of generators with a linear path, like truncation's ``psi``):
    the synthesis network's centred residual is scaled by it, ``x = base + sum_k a_k b_k +
    detail * (r - out_avg)`` (``r``: its output off the basis' span; ``out_avg``: with
    ``center_output``, the learned output's mean, ``r``'s plus the linear part's, which is
    near zero; else 0); ``None`` uses the attribute ``self.detail`` (1.0 unless set:
    :func:`facelab.gan.train.load_generator` sets it from the export's
    ``TrainConfig.sample_detail``). Training never scales (its generators keep 1.0).
    """

    def __init__(self, config: GeneratorConfig | None = None, mode: str = "auto", **kw) -> None:
        super().__init__()
        cfg = config or GeneratorConfig(**kw)
        self.config = cfg
        self.detail = 1.0
        self.mapping = MappingNetwork(cfg.z_dim, cfg.w_dim, cfg.mapping_layers, cfg.c_dim)
        self.resolutions = [2**i for i in range(2, int(math.log2(cfg.resolution)) + 1)]
        self.const = nn.Parameter(torch.randn(cfg.ch(4), 4, 4))
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        mc, rf = cfg.map_channels, cfg.resample_filter
        self.resample = _Resample(rf)  # the skip path's RGB upsampling
        for i, res in enumerate(self.resolutions):
            cin = cfg.ch(4) if i == 0 else cfg.ch(self.resolutions[i - 1])
            cout = cfg.ch(res)
            if i == 0:
                self.convs.append(StyledConv(cin, cout, cfg.w_dim, False, mc, mode, rf))
            else:
                self.convs.append(StyledConv(cin, cout, cfg.w_dim, True, mc, mode, rf))
                self.convs.append(StyledConv(cout, cout, cfg.w_dim, False, mc, mode, rf))
            self.to_rgbs.append(ToRGB(cout, cfg.w_dim, cfg.img_channels, mode, cfg.rgb_init))
        self.num_ws = len(self.convs) + 1  # the last toRGB takes the next w
        for i in range(len(self.convs)):
            res = 4 * 2 ** ((i + 1) // 2)
            self.register_buffer(f"noise_const_{i}", torch.randn(1, 1, res, res))
        base = torch.zeros(cfg.img_channels, cfg.resolution, cfg.resolution)
        if not cfg.base_image:
            self.base = None
        elif cfg.train_base:
            self.base = nn.Parameter(base)
        else:
            self.register_buffer("base", base)
        k = cfg.linear_basis
        if k:
            self.coeff = EqualLinear(cfg.w_dim, k, lr_mul=0.01)
            self.register_buffer(
                "basis", torch.zeros(k, cfg.img_channels, cfg.resolution, cfg.resolution)
            )
        else:
            self.coeff = self.basis = None
        if cfg.whiten_coeff:
            self.register_buffer("coeff_mean", torch.zeros(k))
            self.register_buffer("coeff_cov", torch.eye(k))
            self.register_buffer("coeff_whiten", torch.eye(k))
        else:
            self.coeff_mean = self.coeff_cov = self.coeff_whiten = None
        if cfg.residual_orthogonal:
            self.register_buffer(
                "basis_q", torch.zeros(k, cfg.img_channels * cfg.resolution * cfg.resolution)
            )
        else:
            self.basis_q = None
        if cfg.center_output:
            self.register_buffer(
                "out_avg", torch.zeros(cfg.img_channels, cfg.resolution, cfg.resolution)
            )
        else:
            self.out_avg = None
        # progressive growing state (ignored by the skip architecture)
        self.stage = len(self.resolutions) - 1
        self.alpha = 1.0

    @torch.no_grad()
    def init_base(self, mean_image: torch.Tensor) -> None:
        """Set the learned base image (``config.base_image``) to ``mean_image (C, R, R)``."""
        if self.base is None:
            raise InvalidInput(
                "this generator has no base image (GeneratorConfig.base_image=False)"
            )
        self.base.copy_(mean_image.to(self.base))

    @torch.no_grad()
    def init_linear_basis(self, basis: torch.Tensor, n_w: int = 4096, seed: int = 0) -> None:
        """Set the linear path (``config.linear_basis = K``) to a PCA model.

        ``basis (K, C, R, R)``: the data's principal directions, each scaled by its standard
        deviation (``AlbedoPCA.basis``). The coefficient map is set to whiten the current
        mapping network's ``w`` (over ``n_w`` seeded ``z``): ``a = L (w - mu)`` with ``L``
        the top ``K`` rows of ``Sigma_w^{-1/2}``, so the coefficients have zero mean and
        identity covariance and ``sum_k a_k basis_k`` has the PCA's covariance.
        """
        if self.basis is None:
            raise InvalidInput("this generator has no linear path (GeneratorConfig.linear_basis=0)")
        if basis.shape != self.basis.shape:
            raise InvalidInput(f"basis must be {tuple(self.basis.shape)}, got {tuple(basis.shape)}")
        k = basis.shape[0]
        self.basis.copy_(basis.to(self.basis))
        g = torch.Generator(device="cpu").manual_seed(int(seed))
        z = torch.randn(n_w, self.config.z_dim, generator=g).to(self.const)
        w = self.mapping(z).double()
        mu = w.mean(0)
        evals, evecs = torch.linalg.eigh(torch.cov((w - mu).T))
        top = evals.argsort(descending=True)[:k]
        lw = evecs[:, top].T / evals[top].clamp_min(1e-12).sqrt()[:, None]  # (K, w_dim)
        lin = self.coeff
        lin.weight.copy_((lw / lin.scale).to(lin.weight))
        lin.bias.copy_((-(lw @ mu) / lin.lr_mul).to(lin.bias))
        if self.basis_q is not None:  # orthonormal rows spanning the basis
            q, _ = torch.linalg.qr(basis.reshape(k, -1).double().T)
            self.basis_q.copy_(q.T.to(self.basis_q))
        if self.coeff_mean is not None:
            self.coeff_mean.zero_()
            self.coeff_cov.copy_(torch.eye(k))
            self.coeff_whiten.copy_(torch.eye(k))

    def raw_coefficients(self, w: torch.Tensor) -> torch.Tensor:
        """``(B, K)``: the linear path's coefficients of ``w (B, w_dim)`` before whitening."""
        if self.coeff is None:
            raise InvalidInput("this generator has no linear path (GeneratorConfig.linear_basis=0)")
        return self.coeff(w)

    def coefficients(self, w: torch.Tensor) -> torch.Tensor:
        """``(B, K)``: the linear path's coefficients of ``w`` (whitened if ``whiten_coeff``)."""
        a = self.raw_coefficients(w)
        if self.coeff_whiten is not None:
            a = (a - self.coeff_mean.to(a.dtype)) @ self.coeff_whiten.to(a.dtype)
        return a

    @torch.no_grad()
    def update_coeff_stats(self, raw: torch.Tensor, beta: float = 0.99) -> None:
        """Training: running mean and covariance of the raw coefficients ``raw (B, K)``
        (``beta = 0`` sets them from this batch) and the ZCA whitening ``Sigma^{-1/2}``."""
        if self.coeff_whiten is None:
            raise InvalidInput(
                "this generator does not whiten its coefficients (whiten_coeff=False)"
            )
        k = self.coeff_mean.shape[0]
        if raw.dim() != 2 or raw.shape[1] != k or raw.shape[0] < 2:
            raise InvalidInput(f"raw must be (B >= 2, {k}), got {tuple(raw.shape)}")
        raw = raw.to(self.coeff_mean)
        mu = raw.mean(0)
        m2 = (raw - self.coeff_mean).T @ (raw - self.coeff_mean) / raw.shape[0]
        if beta > 0:  # covariance about the running mean, then re-centred
            new_mu = mu.lerp(self.coeff_mean, beta)
            d = (new_mu - self.coeff_mean)[:, None]
            cov = m2.lerp(self.coeff_cov, beta) - d @ d.T
        else:
            new_mu, cov = mu, torch.cov(raw.T, correction=0)
        self.coeff_mean.copy_(new_mu)
        self.coeff_cov.copy_(0.5 * (cov + cov.T))
        self.coeff_whiten.copy_(_inverse_sqrt(self.coeff_cov))

    @torch.no_grad()
    def calibrate_coeff_stats(self, n: int = 4096, seed: int = 0, batch: int = 512) -> None:
        """Set the whitening to the raw coefficients' exact statistics over ``n`` seeded ``z``
        (of the first layer's ``w``, as :meth:`synthesis` reads it): for export."""
        if self.coeff_whiten is None:
            raise InvalidInput(
                "this generator does not whiten its coefficients (whiten_coeff=False)"
            )
        g = torch.Generator(device="cpu").manual_seed(int(seed))
        raws = []
        for i in range(0, n, batch):
            z = torch.randn(min(batch, n - i), self.config.z_dim, generator=g).to(self.const)
            raws.append(self.raw_coefficients(self.mapping(z)).double())
        raw = torch.cat(raws)
        self.coeff_mean.copy_(raw.mean(0).to(self.coeff_mean))
        cov = torch.cov(raw.T, correction=0)
        self.coeff_cov.copy_(cov.to(self.coeff_cov))
        self.coeff_whiten.copy_(_inverse_sqrt(cov).to(self.coeff_whiten))

    def set_stage(self, stage: int, alpha: float = 1.0) -> None:
        """Progressive growing: output at ``resolutions[stage]``, fading in with ``alpha``."""
        if not 0 <= stage < len(self.resolutions):
            raise InvalidInput(f"stage must be in [0, {len(self.resolutions) - 1}], got {stage}")
        self.stage, self.alpha = int(stage), float(alpha)

    @property
    def output_resolution(self) -> int:
        if self.config.architecture == "progressive":
            return self.resolutions[self.stage]
        return self.config.resolution

    def _noises(self, b: int, mode: str, like: torch.Tensor) -> list[torch.Tensor | None]:
        out = []
        for i in range(len(self.convs)):
            buf = getattr(self, f"noise_const_{i}")
            if mode == "random":
                out.append(None)
            elif mode == "const":
                out.append(buf.to(like.dtype).expand(b, -1, -1, -1))
            elif mode == "none":
                out.append(torch.zeros_like(buf, dtype=like.dtype).expand(b, -1, -1, -1))
            else:
                raise InvalidInput(f"noise_mode must be 'random', 'const' or 'none', got {mode!r}")
        return out

    def mix_ws(
        self, w: torch.Tensor, w2: torch.Tensor | None = None, cut: int | None = None
    ) -> torch.Tensor:
        """``(B, L, w_dim)``: ``w`` for layers ``< cut``, ``w2`` from ``cut`` on (style mixing)."""
        ws = w[:, None].expand(-1, self.num_ws, -1)
        if w2 is not None and cut is not None:
            idx = torch.arange(self.num_ws, device=w.device)[None, :, None]
            ws = torch.where(idx < cut, ws, w2[:, None].expand(-1, self.num_ws, -1))
        return ws

    def synthesis(
        self,
        ws: torch.Tensor,
        noise_mode: str = "random",
        noise: list[torch.Tensor] | None = None,
        cond_map: torch.Tensor | None = None,
        center: bool = True,
        detail: float | None = None,
    ) -> torch.Tensor:
        """Image ``(B, C, R, R)`` from ``ws (B, num_ws, w_dim)`` (``center=False``: without
        the ``out_avg`` subtraction of ``config.center_output``; ``detail``: the residual's
        scale, see the class doc)."""
        detail = float(self.detail if detail is None else detail)
        if detail != 1.0 and self.basis is None:
            raise InvalidInput(
                "detail scales the residual over a linear path; this generator has none "
                "(linear_basis=0)"
            )
        if ws.dim() != 3 or ws.shape[1] != self.num_ws:
            raise InvalidInput(
                f"ws must be (B, {self.num_ws}, {self.config.w_dim}), got {tuple(ws.shape)}"
            )
        b = ws.shape[0]
        noises = list(noise) if noise is not None else self._noises(b, noise_mode, ws)
        x = self.const[None].expand(b, -1, -1, -1).to(ws.dtype)
        prog = self.config.architecture == "progressive"
        last = self.stage if prog else len(self.resolutions) - 1
        img = prev_rgb = None
        li = 0
        for r in range(last + 1):
            n_conv = 1 if r == 0 else 2
            for _ in range(n_conv):
                x = self.convs[li](x, ws[:, li], noises[li], cond_map)
                li += 1
            if prog:
                if r == last:
                    rgb = self.to_rgbs[r](x, ws[:, li])
                    if r > 0 and self.alpha < 1.0 and prev_rgb is not None:
                        rgb = self.resample.up(prev_rgb).lerp(rgb, self.alpha)
                    img = rgb
                elif r == last - 1 and self.alpha < 1.0:
                    prev_rgb = self.to_rgbs[r](x, ws[:, li])
            else:
                rgb = self.to_rgbs[r](x, ws[:, li])
                img = rgb if img is None else self.resample.up(img) + rgb
        if self.basis_q is not None:  # the residual: only what the basis cannot hold
            q = self.basis_q.to(img.dtype)
            flat = img.reshape(b, -1)
            img = (flat - (flat @ q.T) @ q).reshape(img.shape)
        if detail != 1.0:  # the residual centred by the learned output's mean (the linear
            if self.out_avg is not None and center:  # part's own is near zero), then scaled
                img = img - self._fit(self.out_avg, img)
            img = img * detail
        if self.basis is not None:
            a = self.coefficients(ws[:, 0])
            lin = torch.einsum("bk,kchw->bchw", a, self.basis.to(img.dtype))
            if lin.shape[-1] != img.shape[-1]:
                lin = F.adaptive_avg_pool2d(lin, img.shape[-1])
            img = img + lin
        if self.out_avg is not None and center and detail == 1.0:  # after the linear part:
            img = img - self._fit(self.out_avg, img)  # the order trained runs reproduce bitwise
        if self.base is not None:
            img = img + self._fit(self.base, img)
        return img

    @staticmethod
    def _fit(image: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``image (C, R, R)`` as ``(1, C, r, r)`` in ``like``'s dtype and resolution."""
        x = image[None].to(like.dtype)
        return x if x.shape[-1] == like.shape[-1] else F.adaptive_avg_pool2d(x, like.shape[-1])

    @torch.no_grad()
    def learned_mean(self, n: int = 2048, seed: int = 0, batch: int = 256) -> torch.Tensor:
        """``(C, R, R)``: the mean over ``n`` seeded ``z`` (random noise maps) of the learned
        part of the output (everything but the base image, before centering)."""
        g = torch.Generator(device="cpu").manual_seed(int(seed))
        total = None
        for i in range(0, n, batch):
            z = torch.randn(min(batch, n - i), self.config.z_dim, generator=g).to(self.const)
            noise = [torch.randn(z.shape[0], 1, 4 * 2 ** ((j + 1) // 2), 4 * 2 ** ((j + 1) // 2),
                                 generator=g).to(z) for j in range(len(self.convs))]  # fmt: skip
            ws = self.mix_ws(self.mapping(z))
            x = self.synthesis(ws, noise=noise, center=False, detail=1.0)
            if self.base is not None:
                x = x - self._fit(self.base, x)
            s = x.sum(0)
            total = s if total is None else total + s
        return total / n

    @torch.no_grad()
    def update_out_avg(self, samples_mean: torch.Tensor, beta: float = 0.99) -> None:
        """Training: ``out_avg <- lerp(learned mean, out_avg, beta)``, the learned mean read off
        ``samples_mean (C, R, R)``, the mean of a batch of this generator's (centred) outputs
        (the training step's own fakes: no extra forward pass). ``beta = 0`` sets it."""
        if self.out_avg is None:
            raise InvalidInput("this generator does not center its output (center_output=False)")
        if samples_mean.shape != self.out_avg.shape:
            raise InvalidInput(
                f"samples_mean must be {tuple(self.out_avg.shape)}, got {tuple(samples_mean.shape)}"
            )
        m = samples_mean.to(self.out_avg) + self.out_avg
        if self.base is not None:
            m = m - self.base
        self.out_avg.copy_(m.lerp(self.out_avg, beta))

    @torch.no_grad()
    def calibrate_out_avg(self, n: int = 2048, seed: int = 0) -> None:
        """Set ``out_avg`` to :meth:`learned_mean` over ``n`` seeded ``z`` (exact, for export)."""
        if self.out_avg is None:
            raise InvalidInput("this generator does not center its output (center_output=False)")
        self.out_avg.copy_(self.learned_mean(n, seed).to(self.out_avg))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        psi: float = 1.0,
        noise_mode: str = "random",
        mix_z: torch.Tensor | None = None,
        mix_layer: int | None = None,
        cond_map: torch.Tensor | None = None,
        update_w_avg: float | None = None,
        detail: float | None = None,
    ) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.config.z_dim:
            raise InvalidInput(f"z must be (B, {self.config.z_dim}), got {tuple(z.shape)}")
        w = self.mapping(z, c, psi, update_w_avg)
        w2 = self.mapping(mix_z, c, psi) if mix_z is not None else None
        ws = self.mix_ws(w, w2, mix_layer)
        return self.synthesis(ws, noise_mode, cond_map=cond_map, detail=detail)


# --------------------------------------------------------------------------------------------
# Discriminator
# --------------------------------------------------------------------------------------------


def _inverse_sqrt(cov: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Symmetric ``cov^{-1/2}`` (eigenvalues clamped at ``eps`` times the largest)."""
    evals, evecs = torch.linalg.eigh(cov.double())
    evals = evals.clamp_min(eps * float(evals.max().clamp_min(1e-30)))
    return ((evecs / evals.sqrt()[None]) @ evecs.T).to(cov.dtype)


def minibatch_stddev(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append one channel: the std over groups of ``group`` samples, averaged over features.

    A discriminator that sees the batch's spread can tell a collapsed generator (all samples
    alike) from the data (Karras et al. 2018). ``group`` is reduced to divide the batch."""
    b, c, h, w = x.shape
    g = min(group, b)
    while b % g:
        g -= 1
    y = x.reshape(g, b // g, c, h, w)
    y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()  # (B/g, C, H, W)
    y = y.mean(dim=(1, 2, 3))  # (B/g,)
    y = y.reshape(1, b // g, 1, 1, 1).expand(g, -1, 1, h, w).reshape(b, 1, h, w)
    return torch.cat([x, y], dim=1)


@dataclass
class DiscriminatorConfig(_Layout):
    """Shape of a :class:`Discriminator` (same channel rule as :class:`GeneratorConfig`;
    ``channels`` sets the width per resolution). ``resample_filter``: ``None`` (2x2 average
    pool) or FIR taps such as ``[1, 3, 3, 1]`` for every 2x downsampling
    (``facelab.gan.resample.downsample2d``)."""

    resolution: int = 64
    channels: dict = field(default_factory=dict)
    channel_base: int = 2048
    channel_max: int = 128
    img_channels: int = 3
    architecture: str = "resnet"  # "resnet" (StyleGAN2) or "progressive"
    mbstd_group: int = 4
    c_dim: int = 0
    map_channels: int = 0
    resample_filter: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        self._check(("resnet", "progressive"))


class DBlock(nn.Module):
    """conv3x3 -> lrelu -> 2x down -> conv3x3 -> lrelu; residual: down -> 1x1 (``/sqrt 2``).

    "down" is a 2x2 average pool, or the FIR low-pass ``resample_filter`` then every second
    sample. (StyleGAN2 blurs and convolves with stride 2; downsampling before the second conv
    costs a quarter of convolving at full resolution.)"""

    def __init__(
        self,
        cin: int,
        cout: int,
        residual: bool = True,
        resample_filter: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.resample = _Resample(resample_filter)
        self.conv0 = EqualConv2d(cin, cin, 3, 1)
        self.conv1 = EqualConv2d(cin, cout, 3, 1)
        self.skip = EqualConv2d(cin, cout, 1, bias=False) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.resample.down(_lrelu(self.conv0(x)))
        y = _lrelu(self.conv1(y))
        if self.skip is not None:
            y = (y + self.skip(self.resample.down(x))) / _SQRT2
        return y


class Discriminator(nn.Module):
    """``D(image [, c] [, cond_map]) -> logits (B,)``: fromRGB, residual blocks down to 4x4,
    minibatch std, conv, FC, output (+ projection conditioning)."""

    def __init__(self, config: DiscriminatorConfig | None = None, **kw) -> None:
        super().__init__()
        cfg = config or DiscriminatorConfig(**kw)
        self.config = cfg
        self.resolutions = [2**i for i in range(int(math.log2(cfg.resolution)), 2, -1)]  # R..8
        cin = cfg.img_channels + cfg.map_channels
        prog = cfg.architecture == "progressive"
        self.from_rgbs = nn.ModuleList(
            [
                EqualConv2d(cin, cfg.ch(r), 1)
                for r in (self.resolutions if prog else self.resolutions[:1])
            ]
        )
        self.blocks = nn.ModuleList(
            [
                DBlock(cfg.ch(r), cfg.ch(r // 2), not prog, cfg.resample_filter)
                for r in self.resolutions
            ]
        )
        c4 = cfg.ch(4)
        self.conv = EqualConv2d(c4 + 1, c4, 3, 1)
        self.fc = EqualLinear(c4 * 16, c4, activation=True)
        self.out = EqualLinear(c4, 1)
        self.embed = EqualLinear(cfg.c_dim, c4) if cfg.c_dim else None
        self.resample = _Resample(cfg.resample_filter)  # progressive fade-in's image downsampling
        self.stage = len(self.resolutions)  # progressive: index into G's resolutions (4 px = 0)
        self.alpha = 1.0

    def set_stage(self, stage: int, alpha: float = 1.0) -> None:
        """Progressive growing: input at ``4 * 2**stage`` px (``stage >= 1``), fading in."""
        if not 1 <= stage <= len(self.resolutions):
            raise InvalidInput(
                f"discriminator stage must be in [1, {len(self.resolutions)}], got {stage}"
            )
        self.stage, self.alpha = int(stage), float(alpha)

    def forward(
        self,
        img: torch.Tensor,
        c: torch.Tensor | None = None,
        cond_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        cfg = self.config
        if cfg.map_channels:
            if cond_map is None:
                raise InvalidInput(
                    f"this discriminator is conditioned on a {cfg.map_channels}-channel map"
                )
            m = F.interpolate(cond_map, size=img.shape[-2:], mode="bilinear", align_corners=False)
            img = torch.cat([img, m], dim=1)
        if cfg.architecture == "progressive":
            first = len(self.resolutions) - self.stage  # index of the block at this input size
            x = _lrelu(self.from_rgbs[first](img))
            x = self.blocks[first](x)
            if self.alpha < 1.0 and first + 1 < len(self.resolutions) + 1:
                small = self.resample.down(img)
                if first + 1 < len(self.resolutions):
                    y = _lrelu(self.from_rgbs[first + 1](small))
                    x = y.lerp(x, self.alpha)
            for blk in self.blocks[first + 1 :]:
                x = blk(x)
        else:
            if img.shape[-1] != cfg.resolution:
                raise InvalidInput(
                    f"discriminator expects {cfg.resolution} px, got {img.shape[-1]}"
                )
            x = _lrelu(self.from_rgbs[0](img))
            for blk in self.blocks:
                x = blk(x)
        x = minibatch_stddev(x, cfg.mbstd_group)
        x = _lrelu(self.conv(x))
        h = self.fc(x.flatten(1))
        out = self.out(h)[:, 0]
        if self.embed is not None:
            if c is None:
                raise InvalidInput(f"this discriminator is conditional (c_dim={cfg.c_dim}); pass c")
            out = out + (h * self.embed(c)).sum(1) / math.sqrt(h.shape[1])
        return out
