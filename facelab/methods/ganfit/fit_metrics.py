"""Measuring a fitted texture against the ground-truth albedo, in the model's UV space.

GANFit's claim for its texture is about the *whole* face, the parts the photo shows and the
parts it hides. With the world's ground truth (:class:`facelab.world.WorldDataset` with
``include_albedo=True``: the UV albedo map, sRGB) we can measure both:

* :func:`vertex_to_uv` -- a per-vertex quantity rasterized into the model's UV chart
  (barycentric interpolation), the texture a per-vertex albedo *is*;
* :func:`visible_vertices` -- which vertices the photo's camera sees (in front of the
  z-buffer of the ground-truth face, within 1 % of its depth, facing the camera);
* :func:`uv_texture_error` -- RMSE (sRGB, [0, 1]) between a fitted per-vertex albedo and the
  ground-truth map on the skin texels that were visible and on those that were hidden.
"""

from __future__ import annotations

import torch

from ...errors import InvalidInput
from ...geometry.camera import project
from ...render import linear_to_srgb

__all__ = ["uv_texture_error", "vertex_to_uv", "visible_vertices"]


def vertex_to_uv(model, values: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``values (V, C)`` -> ``(map (C, S, S), covered (S, S) bool)`` in the model's UV chart
    (row 0 is v = 1, the OBJ / image convention of the world's albedo maps)."""
    from ...render import rasterize

    if model.uvs is None or model.uv_faces is None:
        raise InvalidInput(f"model {model.name!r} has no UVs")
    if values.shape[0] != model.n_vertices:
        raise InvalidInput(f"values must be (V={model.n_vertices}, C), got {tuple(values.shape)}")
    uvs = model.uvs.to(values.dtype)
    screen = torch.stack([uvs[:, 0] * size, (1 - uvs[:, 1]) * size, torch.ones_like(uvs[:, 0])], -1)
    frags = rasterize(screen[None], model.uv_faces, (size, size))
    f = frags.pix_to_face[0]
    cov = f >= 0
    tri = model.faces[f.clamp_min(0)]  # (S, S, 3) vertex ids of each texel's triangle
    out = (values[tri] * frags.bary[0][..., None].to(values.dtype)).sum(-2)
    out = torch.where(cov[..., None], out, torch.zeros_like(out))
    return out.permute(2, 0, 1), cov


@torch.no_grad()
def visible_vertices(
    model, posed: torch.Tensor, K: torch.Tensor, image_size: tuple[int, int]
) -> torch.Tensor:
    """``(V,)`` bool: vertices of ``posed (V, 3)`` (camera space) the camera ``K (3, 3)`` sees."""
    from ...fit.render import render_face
    from ...geometry.mesh import vertex_normals
    from ...render.shading import sh_ambient

    H, W = image_size
    ones = torch.ones(1, posed.shape[0], 3, dtype=posed.dtype, device=posed.device)
    amb = sh_ambient(1.0, 1, 3, dtype=posed.dtype, device=posed.device)
    zbuf = render_face(
        posed[None], model.faces, ones, amb, K[None].to(posed), (H, W)
    ).fragments.zbuf[0]
    uv = project(posed[None], K[None])[0]
    ix = uv[:, 0].floor().long().clamp(0, W - 1)
    iy = uv[:, 1].floor().long().clamp(0, H - 1)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
    zb = zbuf[iy, ix]
    front = (posed[:, 2] - zb).abs() <= 0.01 * zb.abs()
    n = vertex_normals(posed[None], model.faces)[0]
    facing = (n * posed).sum(-1) < 0  # normal towards the camera (at the origin)
    return inside & (zb > 0) & front & facing


def uv_texture_error(
    model,
    vertex_albedo: torch.Tensor,
    gt_texture: torch.Tensor,
    visible: torch.Tensor,
    region: torch.Tensor | None = None,
) -> dict[str, float]:
    """RMSE (sRGB) of a fitted per-vertex **linear** albedo ``(V, 3)`` against the ground-truth
    sRGB UV map ``gt_texture (3, S, S)``, on skin texels seen (``visible``: ``(V,)`` bool) and
    hidden in the photo. ``region``: ``(V,)`` bool texels to score (default the model's skin
    mask, :func:`facelab.fit.photometric.skin_vertex_mask`).

    Returns ``{"visible", "hidden", "all", "visible_fraction"}``.
    """
    from ...fit.photometric import skin_vertex_mask

    S = gt_texture.shape[-1]
    dt = gt_texture.dtype
    pred, cov = vertex_to_uv(model, linear_to_srgb(vertex_albedo.to(dt).clamp(0, 1)), S)
    reg = skin_vertex_mask(model) if region is None else region
    inreg, _ = vertex_to_uv(model, reg.to(dt)[:, None], S)
    vis, _ = vertex_to_uv(model, visible.to(dt)[:, None], S)
    keep = cov & (inreg[0] > 0.999)
    se = (pred - gt_texture.to(dt)).square().mean(0)  # (S, S)
    seen = keep & (vis[0] > 0.5)
    hidden = keep & (vis[0] <= 0.5)

    def rmse(m: torch.Tensor) -> float:
        return float(se[m].mean().sqrt()) if bool(m.any()) else float("nan")

    return {"visible": rmse(seen), "hidden": rmse(hidden), "all": rmse(keep),
            "visible_fraction": float(seen.sum()) / max(int(keep.sum()), 1)}  # fmt: skip
