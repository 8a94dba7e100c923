r"""Anti-aliased 2x resampling with a separable FIR low-pass filter (StyleGAN2's ``upfirdn2d``).

A 2x resampler is a low-pass filter around a change of sampling rate:

- **upsample** (``up = 2``): insert a zero after every sample (the spectrum now holds the
  signal *and* its mirror image about the old Nyquist frequency), then low-pass filter with
  gain 2 per axis to remove the image;
- **downsample** (``down = 2``): low-pass filter (to remove what would fold back onto the
  low frequencies), then keep every second sample.

The filter is separable, :math:`h_{2D}(y, x) = h(y)\, h(x)`, with the 1-D taps normalised to
:math:`\sum_k h_k = 1` (DC gain 1). For StyleGAN2's binomial ``[1, 3, 3, 1] / 8`` the
frequency response is :math:`|H(f)| = |\cos(\pi f)|^3` (``f`` in cycles per sample): 1 at DC,
0 at the Nyquist frequency 0.5 (a checkerboard is removed exactly). The 2x2 average pool is
the same construction with ``[1, 1] / 2``, :math:`|H(f)| = |\cos(\pi f)|`, which lets through
much more of the band that aliases (``0.25 < f < 0.5``: at ``f = 3/8``, 0.38 against 0.056).

**Alignment.** Pixel centres sit at ``i + 1/2``. With an even number of taps ``K`` the
zero padding is (as in StyleGAN2) ``((K + 1) // 2, (K - 2) // 2)`` for the upsampler and
``((K - 1) // 2, (K - 2) // 2)`` for the downsampler, so an upsampled pixel ``2i`` sits at
``i - 1/4`` and ``2i + 1`` at ``i + 1/4`` (the ``align_corners=False`` convention), and a
downsampled pixel at the centre of its 2x2 block: neither direction shifts the image, and
``downsample2d(upsample2d(x))`` is ``x`` filtered by a low-pass of response
:math:`\approx |H(f/2)|^2` (1 on smooth images). Only even tap counts have such a centred
alignment; odd ones are refused.

Two identities worth knowing (and tested): ``upsample2d`` with ``[1, 3, 3, 1]`` *is*
bilinear interpolation away from the border (``F.interpolate(..., "bilinear",
align_corners=False)`` clamps at the edge where this pads with zeros), and ``downsample2d``
with ``[1, 1]`` *is* ``F.avg_pool2d(x, 2)``. So for the generator the filter changes only the
border handling; for the discriminator it replaces the box filter by a real low-pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import InvalidInput

__all__ = ["downsample2d", "fir_filter2d", "fir_kernel", "upsample2d", "upsample2d_reference"]


def fir_kernel(
    taps: Sequence[float] | torch.Tensor,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The 1-D filter ``h = taps / sum(taps)`` (DC gain 1), ``(K,)``.

    Raises :class:`~facelab.errors.InvalidInput` unless ``taps`` is an even number (>= 2) of
    values, symmetric (``h[k] == h[K-1-k]``: a zero-phase filter about the half-pixel centre)
    with a positive sum."""
    h = torch.as_tensor(taps, dtype=torch.float64).flatten()
    if h.numel() < 2 or h.numel() % 2:
        raise InvalidInput(
            f"resample filter needs an even number of taps (>= 2), e.g. [1, 3, 3, 1]; got {h.tolist()}"
        )
    if not torch.equal(h, h.flip(0)) or float(h.sum()) <= 0:
        raise InvalidInput(
            f"resample filter taps must be symmetric with a positive sum, got {h.tolist()}"
        )
    return (h / h.sum()).to(dtype=dtype, device=device)


def _kernel2d(x: torch.Tensor, h: torch.Tensor, gain: float) -> torch.Tensor:
    """The depthwise weight ``(C, 1, K, K) = gain^2 h h^T`` for ``x (B, C, H, W)``."""
    k = h.to(dtype=x.dtype, device=x.device) * gain
    return (k[:, None] * k[None, :]).expand(x.shape[1], 1, k.numel(), k.numel())


def fir_filter2d(
    x: torch.Tensor,
    h: torch.Tensor,
    pad: tuple[int, int] = (0, 0),
    gain: float = 1.0,
    down: int = 1,
) -> torch.Tensor:
    r"""Separable FIR filter of ``x (B, C, H, W)``, each channel alone:

    .. math:: y = g^2\, (h \otimes h) * \text{pad}(x)

    ``h (K,)`` (a symmetric :func:`fir_kernel`, so convolution and correlation agree), zero
    padding ``pad = (before, after)`` on both axes; ``gain`` ``g`` is per axis (the
    upsampler's 2); ``down`` keeps every ``down``-th output (computed as a strided
    convolution, not filtered and then dropped). Output ``(B, C, (H + before + after - K) //
    down + 1, ...)``. One depthwise ``conv2d`` (``groups=C``) with the ``K x K`` outer product:
    on a CPU that is 15x faster than two 1-D passes over ``(B*C, 1, H, W)``."""
    if x.dim() != 4 or h.dim() != 1:
        raise InvalidInput(
            f"fir_filter2d needs x (B, C, H, W) and h (K,), got {tuple(x.shape)} and {tuple(h.shape)}"
        )
    y = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    return F.conv2d(y, _kernel2d(x, h, gain), stride=down, groups=x.shape[1])


def upsample2d(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """2x upsampling ``(B, C, H, W) -> (B, C, 2H, 2W)``: zero insertion, then the filter
    with gain 2 per axis (so a constant image stays constant away from the border), zero
    padding ``((K + 1) // 2, (K - 2) // 2)`` (see the module doc). Computed as one strided
    transposed depthwise convolution (``conv_transpose2d(stride=2, padding=(K - 2) / 2)``,
    which inserts the zeros and pads exactly so); :func:`upsample2d_reference` is the
    plain zero-insertion twin it is tested against."""
    k = h.numel()
    return F.conv_transpose2d(
        x, _kernel2d(x, h, 2.0), stride=2, padding=(k - 2) // 2, groups=x.shape[1]
    )


def upsample2d_reference(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """:func:`upsample2d` as written: put ``x`` at the even pixels of a zero image of twice
    the size, then :func:`fir_filter2d` with gain 2 and padding ``((K + 1) // 2, (K - 2) // 2)``."""
    b, c, hh, ww = x.shape
    z = x.new_zeros(b, c, hh, 2, ww, 2)
    z[:, :, :, 0, :, 0] = x
    k = h.numel()
    return fir_filter2d(z.reshape(b, c, 2 * hh, 2 * ww), h, ((k + 1) // 2, (k - 2) // 2), 2.0)


def downsample2d(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """2x downsampling ``(B, C, H, W) -> (B, C, H/2, W/2)`` (``H``, ``W`` even): low-pass
    :func:`fir_filter2d`, every second sample (a stride-2 depthwise convolution). Padding
    ``((K - 1) // 2, (K - 2) // 2)``; with ``h = [1, 1] / 2`` this is ``F.avg_pool2d(x, 2)``."""
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise InvalidInput(f"downsample2d needs an even size, got {tuple(x.shape[-2:])}")
    k = h.numel()
    return fir_filter2d(x, h, ((k - 1) // 2, (k - 2) // 2), down=2)
