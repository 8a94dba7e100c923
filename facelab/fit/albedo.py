"""A per-vertex albedo model for fitting, from facelab's procedural UV albedo PCA.

Shape and albedo are ambiguous in a single photo: a darker patch is either darker skin or
a surface turned away from the light. A constant albedo pushes every colour variation
(lips, brows, cheeks) into the shape. A linear albedo model with a prior resolves most of it,
as the Basel Face Model's texture PCA does for BFM fitters. No open model ships one, so we
use :class:`facelab.models.albedo.AlbedoPCA` (fitted to procedural skin textures in the
model's UV layout) and sample its mean and components at each vertex's UV coordinate::

    albedo_v(c) = mean(uv_v) + sum_k c_k basis_k(uv_v),      c ~ N(0, I)
"""

from __future__ import annotations

import torch

from ..errors import InvalidInput


def vertex_uvs(model) -> torch.Tensor:
    """``(V, 2)`` one UV coordinate per vertex (a seam vertex takes one of its UVs)."""
    if model.uvs is None or model.uv_faces is None:
        raise InvalidInput(f"model {model.name!r} has no UVs")
    # deterministic: the UV of the vertex's last face corner (a duplicate-index scatter picks
    # an arbitrary one on CUDA); unreferenced vertices get (0, 0)
    fv = model.faces.reshape(-1).long()
    corner = torch.arange(fv.numel(), device=fv.device)
    last = torch.full((model.n_vertices,), -1, dtype=torch.long, device=fv.device)
    last = last.scatter_reduce(0, fv, corner, reduce="amax")
    uv = model.uvs[model.uv_faces.reshape(-1).long()[last.clamp_min(0)]]
    return torch.where((last >= 0)[:, None], uv, torch.zeros_like(uv))


def sample_uv_map(tex: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of ``tex (C, 3, S, S)`` (OBJ convention, v up) at ``uv (V, 2)`` ->
    ``(C, V, 3)``."""
    from ..render.texture import sample_points

    return sample_points(tex, uv)


def vertex_albedo_model(
    model, k: int = 20, size: int = 128, n_samples: int = 100, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-vertex albedo PCA ``(mean (V, 3), basis (k, V, 3))`` (one-std components, linear RGB).

    Uses the model's own albedo when it has one; otherwise builds (or reads from the cache)
    :func:`facelab.models.albedo.build_albedo_pca` for the model's UV layout.
    """
    if model.albedo_mean is not None and model.albedo_basis is not None:
        std = model.albedo_std if model.albedo_std is not None else 1.0
        return model.albedo_mean, model.albedo_basis[:k] * (
            std[:k, None, None] if isinstance(std, torch.Tensor) else 1.0
        )
    from ..models.albedo import build_albedo_pca, uv_layout_from_model

    layout = uv_layout_from_model(model, size=size)
    pca = build_albedo_pca(layout, n=n_samples, k=k, seed=seed, progress=False)
    uv = vertex_uvs(model)
    mean = sample_uv_map(pca.mean[None].to(model.dtype), uv)[0]
    basis = sample_uv_map(pca.basis.to(model.dtype), uv)
    return mean.to(model.device), basis.to(model.device)


__all__ = ["sample_uv_map", "vertex_albedo_model", "vertex_uvs"]
