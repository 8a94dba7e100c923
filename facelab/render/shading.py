r"""Shading as plain tensor code: spherical-harmonics lighting, Lambert, Blinn-Phong, and the
normal/depth maps GAR and the symmetry chapter need.

Every function works on any leading shape: per-vertex ``(B, V, 3)``, per-pixel
``(B, H, W, 3)`` or packed ``(P, 3)``. Per-image parameters (``(B, 3)`` light directions,
``(B, 9, C)`` SH coefficients) broadcast over the middle dimensions.

**Spherical harmonics** (Ramamoorthi & Hanrahan, "An Efficient Representation for Irradiance
Environment Maps", SIGGRAPH 2001). The nine real SH of order <= 2 at a unit normal
``n = (x, y, z)``, in the order ``(l, m) = (0,0), (1,-1), (1,0), (1,1), (2,-2), (2,-1), (2,0),
(2,1), (2,2)``::

    Y00 = 0.282095
    Y1m = 0.488603 * (y, z, x)
    Y2m = 1.092548 * (x y, y z),  0.315392 * (3 z^2 - 1),  1.092548 * x z,  0.546274 * (x^2 - y^2)

A Lambertian surface convolves the incoming radiance ``L(w) = sum L_lm Y_lm(w)`` with the
clamped cosine, which scales band ``l`` by ``A_0 = pi, A_1 = 2 pi / 3, A_2 = pi / 4``: the
irradiance is ``E(n) = sum A_l L_lm Y_lm(n)``, and the radiance leaving a surface of albedo
``rho`` is ``rho E(n) / pi``. facelab's :func:`sh_basis` (``lambertian=True``, the default)
folds ``A_l / pi`` into the basis, so

.. math::  \text{shading}(n) = \sum_{k=0}^{8} \frac{A_{l(k)}}{\pi} Y_k(n)\, L_k,
           \qquad \text{colour} = \rho \cdot \text{shading}(n)

with ``L (B, 9, C)`` the SH coefficients of the environment's radiance. A uniform white
environment of radiance 1 has ``L_00 = sqrt(4 pi)`` and gives shading 1 (:func:`sh_ambient`).
(Deep3DFaceRecon and most face fitters use this model with other constant folds.)
"""

from __future__ import annotations

import math

import torch

from .._checks import check_shape
from ..errors import InvalidInput

__all__ = [
    "SH_C",
    "SH_LAMBERT",
    "blinn_phong",
    "normalized_blinn_phong",
    "depth_to_image",
    "encode_normals",
    "lambert",
    "sh_ambient",
    "sh_basis",
    "sh_shading",
    "sh_shading_packed",
]

SH_C = (0.282095, 0.488603, 1.092548, 0.315392, 0.546274)
"""Ramamoorthi-Hanrahan normalisation constants ``(Y00, Y1m, Y2(-2,-1,1), Y20, Y22)``."""

SH_LAMBERT = (math.pi, 2 * math.pi / 3, math.pi / 4)
"""Clamped-cosine convolution factors ``A_l`` for bands ``l = 0, 1, 2``."""


def sh_basis(normals: torch.Tensor, lambertian: bool = True) -> torch.Tensor:
    """The 9 real spherical harmonics at unit ``normals (..., 3)`` -> ``(..., 9)``.

    With ``lambertian=True`` band ``l`` is multiplied by ``A_l / pi`` (module docstring), so
    ``sh_basis(n) @ L`` is the reflected radiance of a white Lambertian surface. Constants:
    Ramamoorthi & Hanrahan 2001, eq. 3 and 8-9.
    """
    if normals.shape[-1] != 3:
        raise InvalidInput(f"normals must have 3 components, got shape {tuple(normals.shape)}")
    x, y, z = normals.unbind(-1)
    c0, c1, c2, c3, c4 = SH_C
    if lambertian:  # fold A_l / pi into the constants
        a0, a1, a2 = (a / math.pi for a in SH_LAMBERT)
        c0, c1, c2, c3, c4 = c0 * a0, c1 * a1, c2 * a2, c3 * a2, c4 * a2
    basis = [
        torch.full_like(x, c0),
        c1 * y,
        c1 * z,
        c1 * x,
        c2 * x * y,
        c2 * y * z,
        c3 * (3 * z * z - 1),
        c2 * x * z,
        c4 * (x * x - y * y),
    ]
    return torch.stack(basis, -1)


def _per_image(x: torch.Tensor, like: torch.Tensor, trailing: int) -> torch.Tensor:
    """Reshape a per-image ``(B, *t)`` tensor to broadcast against ``like (B, ..., *)``."""
    extra = like.dim() - 1 - trailing
    return x.reshape(x.shape[0], *([1] * max(extra, 0)), *x.shape[1:])


def sh_shading(
    normals: torch.Tensor, coeffs: torch.Tensor, lambertian: bool = True
) -> torch.Tensor:
    """SH shading ``sum_k sh_basis(n)_k L_k`` (module docstring).

    Args:
        normals: ``(B, ..., 3)`` unit normals (or ``(P, 3)`` with ``coeffs (P, 9, C)``).
        coeffs: ``(B, 9, C)`` SH coefficients per image and colour channel (``C = 3`` for RGB,
            1 for grey light).
        lambertian: include the Lambertian convolution ``A_l / pi`` (default).

    Returns:
        ``(B, ..., C)`` shading; multiply by the albedo for the colour.
    """
    if coeffs.dim() != 3 or coeffs.shape[1] != 9:
        raise InvalidInput(f"SH coeffs must be (B, 9, C), got {tuple(coeffs.shape)}")
    Y = sh_basis(normals, lambertian)  # (B, ..., 9)
    L = _per_image(coeffs, Y, 1)  # (B, 1.., 9, C)
    return (Y.unsqueeze(-1) * L).sum(-2)


def sh_shading_packed(
    normals: torch.Tensor,
    coeffs: torch.Tensor,
    batch_index: torch.Tensor,
    lambertian: bool = True,
) -> torch.Tensor:
    """SH shading of packed rows ``normals (P, 3)`` whose image is ``batch_index (P,)``.

    Same value as ``sh_shading(normals, coeffs[batch_index])`` but, when ``batch_index`` is
    sorted (as :class:`~facelab.render.Fragments` rows are), one ``(P_b, 9) @ (9, C)`` matrix
    product per image instead of gathering ``(P, 9, C)`` coefficients. Returns ``(P, C)``.
    """
    if coeffs.dim() != 3 or coeffs.shape[1] != 9:
        raise InvalidInput(f"SH coeffs must be (B, 9, C), got {tuple(coeffs.shape)}")
    Y = sh_basis(normals, lambertian).to(coeffs.dtype)  # (P, 9)
    B = coeffs.shape[0]
    if B == 1:
        return Y @ coeffs[0]
    if batch_index.numel() > 1 and not bool((batch_index[1:] >= batch_index[:-1]).all()):
        return (Y.unsqueeze(-1) * coeffs[batch_index]).sum(-2)
    counts = torch.bincount(batch_index, minlength=B).tolist()
    return torch.cat([y @ coeffs[b] for b, y in enumerate(Y.split(counts))], 0)


def sh_ambient(
    intensity: float | torch.Tensor = 1.0,
    batch: int = 1,
    channels: int = 3,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``(B, 9, C)`` SH coefficients of a uniform environment giving shading ``intensity``.

    ``L_00 = intensity / (A_0 / pi * Y_00) = intensity * sqrt(4 pi)``, other bands 0.
    """
    L = torch.zeros(batch, 9, channels, dtype=dtype, device=device)
    L[:, 0] = torch.as_tensor(intensity, dtype=L.dtype, device=L.device) / SH_C[0]
    return L


def lambert(
    normals: torch.Tensor,
    light_dir: torch.Tensor,
    light_color: torch.Tensor | float = 1.0,
    albedo: torch.Tensor | None = None,
) -> torch.Tensor:
    """Lambertian (diffuse) shading from a directional light: ``rho c max(0, n . l)``.

    Args:
        normals: ``(B, ..., 3)`` unit normals.
        light_dir: ``(B, 3)`` unit direction *towards* the light (camera space).
        light_color: ``(B, C)`` or a float.
        albedo: ``(B, ..., C)`` or None (white).

    Returns:
        ``(B, ..., C)`` (``C = 1`` if neither colour nor albedo has channels).
    """
    check_shape("light_dir", light_dir, (None, 3))
    cos = (normals * _per_image(light_dir, normals, 1)).sum(-1, keepdim=True).clamp_min(0)
    out = cos
    if isinstance(light_color, torch.Tensor):
        out = out * _per_image(light_color, normals, 1)
    else:
        out = out * light_color
    return out * albedo if albedo is not None else out


def blinn_phong(
    normals: torch.Tensor,
    light_dir: torch.Tensor,
    view_dir: torch.Tensor,
    shininess: float | torch.Tensor = 32.0,
    specular_color: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """Blinn-Phong specular term ``k_s max(0, n . h)^s`` with ``h = normalize(l + v)``
    (Blinn 1977), zero where the light is behind the surface (``n . l <= 0``).

    Args:
        normals: ``(B, ..., 3)`` unit normals.
        light_dir: ``(B, 3)`` towards the light.
        view_dir: ``(B, ..., 3)`` unit direction towards the camera (``-X / |X|`` for a
            camera-space point ``X``), or ``(B, 3)``.
        shininess: exponent ``s`` (float or ``(B,)``).
        specular_color: ``(B, C)`` or float ``k_s``.

    Returns:
        ``(B, ..., C)``.
    """
    check_shape("light_dir", light_dir, (None, 3))
    lb = _per_image(light_dir, normals, 1)
    vb = view_dir if view_dir.dim() == normals.dim() else _per_image(view_dir, normals, 1)
    h = torch.nn.functional.normalize(lb + vb, dim=-1)
    ndh = (normals * h).sum(-1, keepdim=True).clamp_min(0)
    front = (normals * lb).sum(-1, keepdim=True) > 0
    s = shininess
    if isinstance(s, torch.Tensor):
        s = s.reshape(-1, *([1] * (normals.dim() - 1)))
    spec = torch.where(front, ndh.clamp_min(1e-12) ** s, torch.zeros_like(ndh))
    if isinstance(specular_color, torch.Tensor):
        return spec * _per_image(specular_color, normals, 1)
    return spec * specular_color


def normalized_blinn_phong(
    normals: torch.Tensor,
    light_dir: torch.Tensor,
    view_dir: torch.Tensor,
    shininess: torch.Tensor | float,
) -> torch.Tensor:
    """Energy-normalised Blinn-Phong lobe ``(s + 8) / (8 pi) max(0, n . h)^s max(0, n . l)``
    with ``h = normalize(l + v)`` — the physically based variant (it integrates to at most 1
    over the hemisphere, so a sharper highlight is brighter), unlike :func:`blinn_phong`, the
    classic unnormalised ``max(0, n . h)^s``. The world's specular highlights use it.

    Args:
        normals, light_dir, view_dir: ``(..., 3)`` unit vectors of the same shape (e.g.
            packed pixels ``(P, 3)``).
        shininess: ``(...)`` or float exponent ``s``.

    Returns:
        ``(...)``.
    """
    h = torch.nn.functional.normalize(light_dir + view_dir, dim=-1)
    nh = (normals * h).sum(-1).clamp_min(0)
    nl = (normals * light_dir).sum(-1).clamp_min(0)
    return (shininess + 8.0) / (8.0 * math.pi) * nh.pow(shininess) * nl


def encode_normals(normals: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Unit normals ``(..., 3)`` in ``[-1, 1]`` -> colours ``(n + 1) / 2`` in ``[0, 1]``
    (the usual normal-map encoding); background (``mask`` False) -> 0."""
    out = (normals + 1) * 0.5
    if mask is not None:
        out = out * mask.unsqueeze(-1).to(out.dtype)
    return out


def depth_to_image(
    depth: torch.Tensor, mask: torch.Tensor, near: float | None = None, far: float | None = None
) -> torch.Tensor:
    """Depth ``(B, H, W)`` -> ``[0, 1]`` visualisation: near -> 1 (white), far -> 0.2, bg -> 0.

    ``near``/``far`` default to the min/max of the visible depths per image.
    """
    m = mask.to(depth.dtype)
    big = torch.finfo(depth.dtype).max
    lo = torch.where(mask, depth, torch.full_like(depth, big)).flatten(1).amin(1)
    hi = torch.where(mask, depth, torch.full_like(depth, -big)).flatten(1).amax(1)
    if near is not None:
        lo = torch.full_like(lo, near)
    if far is not None:
        hi = torch.full_like(hi, far)
    lo, hi = lo.view(-1, 1, 1), hi.view(-1, 1, 1)
    out = 1 - (depth - lo) / (hi - lo).clamp_min(1e-12) * 0.8
    return out.clamp(0, 1) * m
