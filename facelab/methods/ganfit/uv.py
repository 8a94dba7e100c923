"""Where a model's vertex reads the texture GAN's UV map: a landmark thin-plate spline.

The shipped texture GAN (:mod:`facelab.methods.ganfit.texture_gan`) generates maps in the
built-in head's UV layout; the fitter's model (ICT-FaceKit) has its own layout. Both layouts
place the facial regions from the UV positions of the same 68 iBUG landmarks
(:func:`facelab.models.albedo.uv_layout_from_model`), so the landmark UVs of the two charts are
corresponding points. A thin-plate spline (TPS) through the 68 pairs maps any UV of the
model's chart to the GAN's chart:

.. math::  \\phi(u) = A u + t + \\sum_{j=1}^{68} c_j\\, U(\\lVert u - u_j \\rVert),
           \\qquad U(r) = r^2 \\log r^2

(exact at the landmarks, affine far from them). GANFit samples its texture per vertex
(the author, GANFit issue 6); we do the same: vertex ``i`` takes the GAN map at
``phi(uv_i)`` through :func:`facelab.render.texture.sample_points`, the lookup Part I uses
for its albedo PCA (:func:`facelab.fit.albedo.sample_uv_map`).
"""

from __future__ import annotations

import torch

from ...errors import InvalidInput

__all__ = ["gan_vertex_uvs", "tps_apply", "tps_fit"]

_CACHE: dict = {}


def _tps_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r2 = (a[:, None, :] - b[None, :, :]).square().sum(-1)
    return r2 * torch.log(r2.clamp_min(1e-20))


def tps_fit(src: torch.Tensor, dst: torch.Tensor, reg: float = 0.0) -> dict[str, torch.Tensor]:
    """Thin-plate spline ``src (N, 2) -> dst (N, 2)`` (float64 solve; ``reg`` smooths).

    Returns ``{"ctrl": src, "w": (N, 2), "a": (3, 2)}`` for :func:`tps_apply`.
    """
    if src.shape != dst.shape or src.dim() != 2 or src.shape[1] != 2 or src.shape[0] < 3:
        raise InvalidInput(
            f"need matching (N>=3, 2) points, got {tuple(src.shape)}, {tuple(dst.shape)}"
        )
    s, d = src.double(), dst.double()
    n = s.shape[0]
    K = _tps_kernel(s, s) + reg * torch.eye(n, dtype=s.dtype)
    P = torch.cat([torch.ones(n, 1, dtype=s.dtype), s], 1)
    A = torch.zeros(n + 3, n + 3, dtype=s.dtype)
    A[:n, :n], A[:n, n:], A[n:, :n] = K, P, P.T
    rhs = torch.cat([d, torch.zeros(3, 2, dtype=s.dtype)])
    sol = torch.linalg.lstsq(A, rhs).solution
    return {"ctrl": s, "w": sol[:n], "a": sol[n:]}


def tps_apply(tps: dict[str, torch.Tensor], pts: torch.Tensor) -> torch.Tensor:
    """Map ``pts (M, 2)`` through a :func:`tps_fit` spline (returns ``pts``' dtype)."""
    p = pts.double()
    out = tps["a"][0] + p @ tps["a"][1:] + _tps_kernel(p, tps["ctrl"]) @ tps["w"]
    return out.to(pts.dtype)


def gan_vertex_uvs(model, gan_model: str = "builtin") -> torch.Tensor:
    """``(V, 2)`` UV in the GAN's chart (``gan_model``'s layout) of every vertex of ``model``.

    Cached per (model name, vertex count). Raises :class:`InvalidInput` for a model without
    UVs or landmarks.
    """
    from ...fit.albedo import vertex_uvs
    from ...models import load

    key = (getattr(model, "name", ""), model.n_vertices, gan_model)
    if key not in _CACHE:
        if model.landmarks is None:
            raise InvalidInput(f"model {model.name!r} has no 68 landmarks to align UV charts")
        uv = vertex_uvs(model).double().cpu()
        g = load(gan_model)
        guv = vertex_uvs(g).double().cpu()
        src = uv[model.landmarks.cpu()]
        dst = guv[g.landmarks.cpu()]
        _CACHE[key] = tps_apply(tps_fit(src, dst, reg=1e-4), uv)
    return _CACHE[key].to(model.device, model.dtype)
