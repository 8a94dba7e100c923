"""A linear albedo model: :class:`AlbedoPCA` fitted to procedural samples, and ``build_albedo_pca`` (built once per layout, cached as safetensors + JSON)."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..._checks import check_finite, check_shape
from ...errors import InvalidInput, ModelFormatError
from .layout import UVLayout
from .procedural import AlbedoConfig, ProceduralAlbedo

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

    @classmethod
    def fit_lowrank(cls, samples: torch.Tensor, k: int, seed: int = 0, niter: int = 4) -> AlbedoPCA:
        """PCA of ``samples (N, 3, S, S)`` by randomised SVD (``torch.svd_lowrank`` in
        float64, ``k + 16`` probe vectors, ``niter`` power iterations, seeded): the leading
        components agree with :meth:`fit` to about 1e-4 in seconds where the exact Gram
        eigendecomposition of thousands of samples takes minutes. Same sign convention."""
        check_shape("samples", samples, (None, 3, None, None))
        check_finite("samples", samples)
        n = samples.shape[0]
        if not 1 <= k <= n - 1:
            raise InvalidInput(f"k must be in [1, N-1] = [1, {n - 1}], got {k}; use more samples")
        x = samples.reshape(n, -1).double()
        mean = x.mean(0)
        xc = x - mean
        fork = [samples.device] if samples.device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork):
            torch.manual_seed(int(seed))
            _, sv, v = torch.svd_lowrank(xc, q=min(k + 16, *xc.shape), niter=niter)
        sv, v = sv[:k], v[:, :k].T
        idx = v.abs().argmax(1)
        v = v * torch.sign(v.gather(1, idx[:, None]))
        std = sv / math.sqrt(n - 1)
        total = float(xc.square().sum() / (n - 1))
        dt = samples.dtype
        basis = (v * std[:, None]).reshape(k, *samples.shape[1:]).to(dt)
        return cls(mean.reshape(samples.shape[1:]).to(dt), basis, std.to(dt), total)

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
    from ...data import cache_dir

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
