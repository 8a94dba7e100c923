r"""GAN metrics that need no download: spectra, Fréchet/kernel distances in a given feature
space, precision/recall, and latent-space reconstruction.

**No Inception network is available offline** (pytorch-fid and torch-fidelity download it),
so FID/KID proper cannot be computed here. We compute the same statistics in the feature space
of the pretrained dlib face-recognition ResNet (:mod:`facelab.vision.dlib_resnet`, 128-D
embeddings of faces rendered with the textures; :mod:`facelab.methods.ganfit.evaluate`) and
call them **FID-dlib** and **KID-dlib** — numbers comparable only with each other.

- :func:`frechet_distance`: :math:`\|\mu_a-\mu_b\|^2 + \operatorname{tr}(\Sigma_a + \Sigma_b
  - 2(\Sigma_a\Sigma_b)^{1/2})` between Gaussian fits of two feature sets (Heusel et al. 2017).
- :func:`kernel_distance`: the unbiased MMD² with the cubic polynomial kernel
  :math:`k(x,y) = (x^\top y / d + 1)^3`, averaged over random subsets (Bińkowski et al. 2018);
  unbiased, so it can be slightly negative for equal distributions, and reliable at small N.
- :func:`precision_recall`: Kynkäänniemi et al. 2019 — the share of generated samples inside
  the real data's k-NN balls (precision: are samples realistic?) and vice versa (recall: is
  the data covered?).
- :func:`radial_power_spectrum`, :func:`band_energy`: the radially averaged power spectrum of
  images (per frequency ring in cycles per pixel) and the share of energy above a cut-off; a
  model that blurs detail has too little energy in the high band.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InvalidInput

__all__ = [
    "band_energy",
    "frechet_distance",
    "high_band_ratio",
    "kernel_distance",
    "precision_recall",
    "radial_power_spectrum",
    "training_metrics",
]


def radial_power_spectrum(
    images: torch.Tensor, bins: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Radially averaged power spectrum of ``images (B, C, H, W)`` (``H == W``).

    Each image channel has its mean removed and is windowed by a Hann window (so the image
    border is not a spurious edge); the power :math:`|F|^2` is averaged over rings of
    radius ``f`` (cycles per pixel, ``0 .. 0.5``), channels and the batch.

    Returns ``(freqs (K,), power (K,))`` with ``K = bins`` (default ``H // 2``).
    """
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise InvalidInput(f"images must be (B, C, S, S), got {tuple(images.shape)}")
    x = images.double()
    s = x.shape[-1]
    k = bins or s // 2
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    win = torch.hann_window(s, periodic=False, dtype=x.dtype, device=x.device)
    x = x * (win[:, None] * win[None, :])
    p = torch.fft.fft2(x).abs().square().mean(dim=(0, 1)) / (s * s)  # (S, S)
    fy = torch.fft.fftfreq(s, device=x.device, dtype=x.dtype)
    r = (fy[:, None] ** 2 + fy[None, :] ** 2).sqrt()
    edges = torch.linspace(0, 0.5, k + 1, device=x.device, dtype=x.dtype)
    idx = torch.bucketize(r.reshape(-1), edges[1:-1])
    keep = r.reshape(-1) <= 0.5
    sums = torch.zeros(k, dtype=x.dtype, device=x.device).index_add(
        0, idx[keep], p.reshape(-1)[keep]
    )
    cnt = torch.zeros(k, dtype=x.dtype, device=x.device).index_add(
        0, idx[keep], torch.ones_like(p.reshape(-1)[keep])
    )
    freqs = 0.5 * (edges[1:] + edges[:-1])
    return freqs, sums / cnt.clamp_min(1)


def band_energy(images: torch.Tensor, lo: float = 0.25, hi: float = 0.5) -> float:
    """Mean spectral power per pixel of ``images`` in the ring ``lo <= f < hi`` cycles/px
    (windowed, mean removed; sum over the band of the 2-D power / number of pixels)."""
    x = images.double()
    s = x.shape[-1]
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    win = torch.hann_window(s, periodic=False, dtype=x.dtype, device=x.device)
    x = x * (win[:, None] * win[None, :])
    p = torch.fft.fft2(x).abs().square().mean(dim=(0, 1)) / (s * s)
    fy = torch.fft.fftfreq(s, device=x.device, dtype=x.dtype)
    r = (fy[:, None] ** 2 + fy[None, :] ** 2).sqrt()
    m = (r >= lo) & (r < hi)
    return float(p[m].sum() / (s * s))


def high_band_ratio(samples: torch.Tensor, data: torch.Tensor, lo: float = 0.25) -> float:
    """``band_energy(samples) / band_energy(data)`` above ``lo`` cycles/px (1 = same detail)."""
    return band_energy(samples, lo) / max(band_energy(data, lo), 1e-20)


def frechet_distance(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of features ``a (N, D)`` and ``b (M, D)``."""
    a = np.asarray(torch.as_tensor(a).double().cpu())
    b = np.asarray(torch.as_tensor(b).double().cpu())
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise InvalidInput(f"need two (N>=2, D) feature sets, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr (Ca Cb)^(1/2) = sum of sqrt(eig(Ca^(1/2) Cb Ca^(1/2))): symmetric PSD, no complex sqrtm
    ev_a, vec_a = np.linalg.eigh(ca)
    sa = (vec_a * np.sqrt(np.clip(ev_a, 0, None))) @ vec_a.T
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(sa @ cb @ sa), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr_sqrt)


def kernel_distance(
    a: torch.Tensor | np.ndarray,
    b: torch.Tensor | np.ndarray,
    subsets: int = 50,
    subset_size: int = 100,
    seed: int = 0,
    return_values: bool = False,
) -> tuple[float, float] | tuple[float, float, list[float]]:
    """Unbiased polynomial-kernel MMD² (KID) between ``a (N, D)`` and ``b (M, D)``:
    ``(mean, std)`` over ``subsets`` random subsets of ``min(subset_size, N, M)``
    (``+ [value per subset]`` with ``return_values``; the subsets depend only on ``seed``
    and the sizes, so two calls with the same ``b``, sizes and seed are paired)."""
    a = torch.as_tensor(a).double().cpu()
    b = torch.as_tensor(b).double().cpu()
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise InvalidInput(
            f"need two (N, D) feature sets, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    d = a.shape[1]
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise InvalidInput("kernel_distance needs at least 2 samples per set")
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(subsets):
        x = a[torch.randperm(a.shape[0], generator=g)[:m]]
        y = b[torch.randperm(b.shape[0], generator=g)[:m]]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        off = 1 - torch.eye(m, dtype=x.dtype)
        v = (kxx * off).sum() / (m * (m - 1)) + (kyy * off).sum() / (m * (m - 1)) - 2 * kxy.mean()
        vals.append(float(v))
    t = torch.tensor(vals)
    out = (float(t.mean()), float(t.std()) if len(vals) > 1 else 0.0)
    return (*out, vals) if return_values else out


def precision_recall(
    real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray, k: int = 3
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of feature sets ``(N, D)``.

    A sample is "inside" a set if it lies within the k-th-nearest-neighbour radius of some
    member of the set. Precision: share of ``fake`` inside ``real``; recall: share of ``real``
    inside ``fake``."""
    r = torch.as_tensor(real).double().cpu()
    f = torch.as_tensor(fake).double().cpu()
    if min(r.shape[0], f.shape[0]) <= k:
        raise InvalidInput(f"precision_recall needs more than k={k} samples per set")

    def radii(x: torch.Tensor) -> torch.Tensor:
        dd = torch.cdist(x, x)
        return dd.kthvalue(k + 1, dim=1).values  # +1: the point itself

    def inside(x: torch.Tensor, ref: torch.Tensor, rad: torch.Tensor) -> float:
        return float((torch.cdist(x, ref) <= rad[None, :]).any(dim=1).double().mean())

    return inside(f, r, radii(r)), inside(r, f, radii(f))


@torch.no_grad()
def training_metrics(G, data: torch.Tensor, n: int = 64, seed: int = 123) -> dict[str, float]:
    """Cheap metrics logged at checkpoints: high- (f >= 0.25 cycles/px) and mid-band energy
    ratios of ``n`` EMA samples to ``n`` data maps (deviations from the data mean), and the
    per-channel mean/std gaps."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.config.z_dim, generator=g).to(next(G.parameters()).device)
    was = G.training
    G.eval()
    x = G(z).float().cpu().clamp(-1, 1)
    G.train(was)
    idx = torch.randperm(data.shape[0], generator=g)[:n]
    d = data[idx].float()
    if d.shape[-1] != x.shape[-1]:
        d = torch.nn.functional.adaptive_avg_pool2d(d, x.shape[-1])
    m = d.mean(0, keepdim=True)  # ratios of the variation around the mean (not the mean's own)
    return {
        "high_band_ratio": round(high_band_ratio(x - m, d - m), 4),
        "mid_band_ratio": round(
            band_energy(x - m, 0.08, 0.25) / max(band_energy(d - m, 0.08, 0.25), 1e-20), 4
        ),
        "mean_gap": round(float((x.mean((0, 2, 3)) - d.mean((0, 2, 3))).abs().mean()), 4),
        "std_gap": round(float((x.std((0, 2, 3)) - d.std((0, 2, 3))).abs().mean()), 4),
        "pixel_std_ratio": round(float(x.std(0).mean() / d.std(0).mean().clamp_min(1e-12)), 4),
    }
