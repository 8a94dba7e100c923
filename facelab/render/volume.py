r"""Volume rendering: rays, samples along them, and the emission-absorption integral.

The fifth primitive beside rasterize / interpolate / texture / antialias. It knows nothing of
GANs or networks: a *field* is any function ``points (B, M, 3), directions (B, M, 3) ->
(sigma (B, M), color (B, M, C))`` (density >= 0, per-unit-length, and any C-channel
"colour"), and this module turns it into images.

**The integral** (Kajiya & Von Herzen 1984; Max 1995; NeRF, Mildenhall et al. 2020). Along a
ray ``r(t) = o + t d`` with unit ``d`` between ``t_n`` and ``t_f``:

.. math::

    C = \int_{t_n}^{t_f} T(t)\, \sigma(t)\, c(t)\, dt, \qquad
    T(t) = \exp\Big(-\int_{t_n}^{t} \sigma(s)\, ds\Big)

``T`` is the transmittance (the probability that light travels from ``t`` to the camera
unabsorbed) and ``T sigma dt`` the probability that the ray *ends* in ``[t, t + dt]``.

**The quadrature** used here: sample depths ``t_1 < ... < t_N``, each standing for an interval
``[e_i, e_{i+1}]`` of length ``delta_i`` (the sample's bin for stratified samples; the
midpoints between neighbours after importance resampling) in which ``sigma`` and ``c`` are
taken constant. Then exactly

.. math::

    \alpha_i = 1 - e^{-\sigma_i \delta_i}, \quad
    T_i = \prod_{j<i} (1 - \alpha_j) = e^{-\sum_{j<i} \sigma_j \delta_j}, \quad
    w_i = T_i \alpha_i, \quad
    \hat C = \sum_i w_i c_i + (1 - \textstyle\sum_i w_i)\, c_{bg}

— front-to-back alpha compositing. ``sum w_i`` is the opacity; ``sum w_i t_i / sum w_i`` the
expected depth; the median depth is where the cumulative weight reaches half the opacity.
A constant density slab ``[a, b]`` aligned with the bins has ``T = e^{-\sigma (b - a)}``
exactly.

**Hierarchical sampling** (NeRF's coarse-to-fine): the coarse weights ``w_i`` define a
piecewise-constant pdf over the coarse bins; :func:`sample_pdf` draws new depths by inverting
its CDF, so samples concentrate where the ray ends (a surface). The field is evaluated again
there and all samples are composited together (:func:`render_rays`).

Cameras: :func:`camera_rays` builds rays from facelab's convention (OpenCV camera, pixel
centres at +0.5, see :mod:`facelab.geometry.camera`) given ``cam2world (B, 4, 4)`` and pixel
intrinsics ``K (B, 3, 3)``. Directions are unit vectors, so ``t`` is the Euclidean distance
from the camera centre (as in EG3D: its ``ray_start = 2.25``, ``ray_end = 3.3`` are
distances); ``Rays.z_per_t`` converts ray distance to camera depth ``z``.

Everything is batch-first, differentiable in the field's outputs, the sample depths and the
ray origins/directions (importance sample positions are detached, as in NeRF), and follows the
device and dtype of its inputs. :func:`composite_reference` is the plain loop twin of
:func:`composite` (the test oracle and the benchmark's baseline).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._checks import check_shape
from ..errors import InvalidInput

__all__ = [
    "Field",
    "Rays",
    "VolumeOutput",
    "camera_rays",
    "composite",
    "composite_reference",
    "intervals_from_depths",
    "ray_aabb",
    "render_rays",
    "sample_pdf",
    "stratified_depths",
]

Field = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``field(points (B, M, 3), directions (B, M, 3)) -> (sigma (B, M), color (B, M, C))``."""


@dataclass
class Rays:
    """A batch of rays ``o + t d``.

    Attributes:
        origins: ``(B, R, 3)`` world-space origins (the camera centres).
        directions: ``(B, R, 3)`` unit world-space directions.
        z_per_t: ``(B, R)`` camera depth per unit ray distance (``d . camera z axis``):
            camera ``z = t * z_per_t``.
        image_size: ``(H, W)`` when the rays are an image's pixels (row-major), else ``None``.
    """

    origins: torch.Tensor
    directions: torch.Tensor
    z_per_t: torch.Tensor
    image_size: tuple[int, int] | None = None


@dataclass
class VolumeOutput:
    """What :func:`composite` and :func:`render_rays` return (``R`` rays, ``N`` samples).

    Attributes:
        color: ``(B, R, C)`` composited colour (over ``background`` if one was given).
        depth: ``(B, R)`` expected ray distance ``sum w t / sum w`` (``far`` where the
            opacity is below ``1e-6``).
        depth_median: ``(B, R)`` the sample depth where the cumulative weight first reaches
            half the opacity.
        opacity: ``(B, R)`` ``sum w`` = ``1 - T(t_far)``.
        weights: ``(B, R, N)`` per-sample weights ``w_i``.
        depths: ``(B, R, N)`` the sample depths ``t_i`` (sorted).
        transmittance: ``(B, R, N)`` ``T_i`` (before sample ``i``).
    """

    color: torch.Tensor
    depth: torch.Tensor
    depth_median: torch.Tensor
    opacity: torch.Tensor
    weights: torch.Tensor
    depths: torch.Tensor
    transmittance: torch.Tensor

    def image(self, image_size: tuple[int, int], what: str = "color") -> torch.Tensor:
        """Reshape a per-ray output to an image: ``color -> (B, C, H, W)``, others
        ``-> (B, H, W)``."""
        H, W = image_size
        x = getattr(self, what)
        if what == "color":
            return x.reshape(x.shape[0], H, W, -1).permute(0, 3, 1, 2)
        return x.reshape(x.shape[0], H, W)


# ------------------------------------------------------------------------------------ rays


def camera_rays(
    cam2world: torch.Tensor,
    K: torch.Tensor,
    image_size: tuple[int, int] | int,
    pixels: torch.Tensor | None = None,
) -> Rays:
    """Rays through pixel centres of pinhole cameras (OpenCV axes, facelab's convention).

    The ray of pixel ``(u, v)`` has camera-space direction ``K^{-1} [u, v, 1]^T`` (z = 1),
    rotated to world space by ``cam2world[:3, :3]`` and normalised; its origin is the camera
    centre ``cam2world[:3, 3]``.

    Args:
        cam2world: ``(B, 4, 4)`` camera-to-world transforms (columns: camera x right, y down,
            z forward, in world coordinates; then the centre).
        K: ``(B, 3, 3)`` or ``(3, 3)`` pixel intrinsics.
        image_size: ``(H, W)``; rays for every pixel, row-major (``R = H W``).
        pixels: optional ``(B, R, 2)`` pixel coordinates ``(u, v)`` instead of all centres.
    """
    check_shape("cam2world", cam2world, (None, 4, 4))
    K = K if K.dim() == 3 else K.unsqueeze(0)
    check_shape("K", K, (None, 3, 3))
    B = cam2world.shape[0]
    H, W = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if pixels is None:
        v, u = torch.meshgrid(
            torch.arange(H, dtype=cam2world.dtype, device=cam2world.device) + 0.5,
            torch.arange(W, dtype=cam2world.dtype, device=cam2world.device) + 0.5,
            indexing="ij",
        )
        pixels = torch.stack([u.reshape(-1), v.reshape(-1)], -1).expand(B, H * W, 2)
        size: tuple[int, int] | None = (H, W)
    else:
        check_shape("pixels", pixels, (B, None, 2))
        size = None
    uv1 = torch.cat([pixels, torch.ones_like(pixels[..., :1])], -1)
    d_cam = uv1 @ torch.linalg.inv(K).transpose(1, 2).expand(B, 3, 3)  # z = 1
    norm = d_cam.norm(dim=-1)
    d_world = d_cam @ cam2world[:, :3, :3].transpose(1, 2)
    directions = d_world / norm.unsqueeze(-1)
    origins = cam2world[:, None, :3, 3].expand_as(directions)
    return Rays(origins, directions, 1.0 / norm, size)


def ray_aabb(
    origins: torch.Tensor,
    directions: torch.Tensor,
    box_min: float | torch.Tensor = -0.5,
    box_max: float | torch.Tensor = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab-method intersection of rays with an axis-aligned box.

    Returns ``near (B, R)``, ``far (B, R)`` and ``hit (B, R) bool``; ``near`` is clamped to 0
    (origins inside the box) and ``near = far = 0`` where the ray misses.
    """
    lo = torch.as_tensor(box_min, dtype=origins.dtype, device=origins.device)
    hi = torch.as_tensor(box_max, dtype=origins.dtype, device=origins.device)
    safe = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    inv = 1.0 / safe
    t0, t1 = (lo - origins) * inv, (hi - origins) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp(min=0)
    far = torch.maximum(t0, t1).amin(-1)
    hit = far > near
    zero = torch.zeros_like(near)
    return torch.where(hit, near, zero), torch.where(hit, far, zero), hit


# -------------------------------------------------------------------------------- sampling


def _bounds(x: torch.Tensor | float, shape: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=like.dtype, device=like.device)
    return t.expand(shape) if t.dim() == 0 else t.reshape(shape)


def stratified_depths(
    near: torch.Tensor | float,
    far: torch.Tensor | float,
    n: int,
    shape: tuple[int, int],
    like: torch.Tensor,
    perturb: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` stratified depths per ray and their bin edges.

    ``[near, far]`` is cut into ``n`` equal bins; sample ``i`` is uniform in bin ``i``
    (``perturb=True``, an unbiased estimator of the integral) or at its centre.

    Args:
        near, far: floats or ``(B, R)`` tensors.
        shape: ``(B, R)``; ``like``: a tensor giving device and dtype.

    Returns:
        ``depths (B, R, n)`` and ``edges (B, R, n + 1)``.
    """
    if n < 1:
        raise InvalidInput(f"need at least one sample per ray, got n={n}")
    nr = _bounds(near, shape, like)
    fr = _bounds(far, shape, like)
    s = torch.linspace(0.0, 1.0, n + 1, dtype=like.dtype, device=like.device)
    edges = nr[..., None] + (fr - nr)[..., None] * s
    if perturb:
        u = torch.rand(*shape, n, dtype=like.dtype, device=like.device, generator=generator)
    else:
        u = torch.full((*shape, n), 0.5, dtype=like.dtype, device=like.device)
    depths = edges[..., :-1] + (edges[..., 1:] - edges[..., :-1]) * u
    return depths, edges


def sample_pdf(
    edges: torch.Tensor,
    weights: torch.Tensor,
    n: int,
    perturb: bool = True,
    generator: torch.Generator | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Inverse-CDF sampling of ``n`` depths per ray from a piecewise-constant pdf.

    The pdf is ``(w_i + eps) / sum`` on bin ``[e_i, e_{i+1}]`` (``eps`` keeps every bin
    reachable); ``u`` is stratified (``perturb``) or the bin centres of ``[0, 1]``. The result
    is sorted and detached (sample positions carry no gradient, as in NeRF).

    Args:
        edges: ``(B, R, N + 1)`` increasing bin edges.
        weights: ``(B, R, N)`` non-negative bin weights.

    Returns:
        ``(B, R, n)`` depths.
    """
    if edges.shape[-1] != weights.shape[-1] + 1:
        raise InvalidInput(
            f"edges must have one more entry than weights, got {edges.shape[-1]} and {weights.shape[-1]}"
        )
    edges = edges.detach()
    w = weights.detach() + eps
    pdf = w / w.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[..., :1]), pdf.cumsum(-1)], -1)
    cdf[..., -1] = 1.0
    shape = (*weights.shape[:-1], n)
    base = torch.arange(n, dtype=edges.dtype, device=edges.device)
    if perturb:
        u = (
            base + torch.rand(shape, dtype=edges.dtype, device=edges.device, generator=generator)
        ) / n
    else:
        u = ((base + 0.5) / n).expand(shape)
    u = u.contiguous()
    idx = torch.searchsorted(cdf.contiguous(), u, right=True).clamp(1, cdf.shape[-1] - 1)
    c0, c1 = cdf.gather(-1, idx - 1), cdf.gather(-1, idx)
    e0, e1 = edges.gather(-1, idx - 1), edges.gather(-1, idx)
    frac = (u - c0) / (c1 - c0).clamp(min=1e-12)
    return (e0 + frac.clamp(0, 1) * (e1 - e0)).sort(-1).values


def intervals_from_depths(
    depths: torch.Tensor, near: torch.Tensor | float, far: torch.Tensor | float
) -> torch.Tensor:
    """Interval lengths ``delta (B, R, N)`` of sorted depths: edges at the midpoints between
    neighbours, ``near`` and ``far`` at the ends (so ``sum delta = far - near``)."""
    shape = tuple(depths.shape[:-1])
    nr = _bounds(near, shape, depths)[..., None]
    fr = _bounds(far, shape, depths)[..., None]
    mid = 0.5 * (depths[..., 1:] + depths[..., :-1])
    edges = torch.cat([nr, mid, fr], -1)
    return edges[..., 1:] - edges[..., :-1]


# ------------------------------------------------------------------------------ compositing


def composite(
    sigma: torch.Tensor,
    color: torch.Tensor,
    depths: torch.Tensor,
    deltas: torch.Tensor,
    background: torch.Tensor | float | None = None,
    far: torch.Tensor | float | None = None,
) -> VolumeOutput:
    """Emission-absorption compositing of ``N`` samples per ray (see the module doc).

    Args:
        sigma: ``(B, R, N)`` densities (>= 0, per unit ray distance).
        color: ``(B, R, N, C)`` sample colours.
        depths: ``(B, R, N)`` sorted sample depths ``t_i``.
        deltas: ``(B, R, N)`` interval lengths ``delta_i`` (ray distance).
        background: colour behind the volume (float or ``(C,)`` / ``(B, R, C)``); ``None`` =
            no background term (i.e. black).
        far: depth reported where the opacity is ~0 (default: the last sample depth).
    """
    check_shape("sigma", sigma, (None, None, None))
    check_shape("color", color, (*sigma.shape, None))
    if depths.shape != sigma.shape or deltas.shape != sigma.shape:
        raise InvalidInput(
            f"depths {tuple(depths.shape)} and deltas {tuple(deltas.shape)} must match sigma {tuple(sigma.shape)}"
        )
    tau = sigma * deltas  # optical depth of each interval
    alpha = 1.0 - torch.exp(-tau)
    acc = torch.cumsum(tau, -1)
    T = torch.exp(-torch.cat([torch.zeros_like(acc[..., :1]), acc[..., :-1]], -1))
    weights = T * alpha
    return _finish(weights, T, color, depths, background, far)


def _finish(weights, T, color, depths, background, far) -> VolumeOutput:
    opacity = weights.sum(-1)
    rgb = (weights.unsqueeze(-1) * color).sum(-2)
    if background is not None:
        bg = torch.as_tensor(background, dtype=rgb.dtype, device=rgb.device)
        rgb = rgb + (1.0 - opacity).unsqueeze(-1) * bg
    far_t = depths[..., -1] if far is None else _bounds(far, tuple(opacity.shape), depths)
    ok = opacity > 1e-6
    expected = (weights * depths).sum(-1) / torch.where(ok, opacity, torch.ones_like(opacity))
    depth = torch.where(ok, expected, far_t)
    cum = weights.cumsum(-1)
    idx = (cum < 0.5 * opacity.unsqueeze(-1)).sum(-1, keepdim=True).clamp(max=depths.shape[-1] - 1)
    median = torch.where(ok, depths.gather(-1, idx).squeeze(-1), far_t)
    return VolumeOutput(rgb, depth, median, opacity, weights, depths, T)


def composite_reference(
    sigma: torch.Tensor,
    color: torch.Tensor,
    depths: torch.Tensor,
    deltas: torch.Tensor,
    background: torch.Tensor | float | None = None,
    far: torch.Tensor | float | None = None,
) -> VolumeOutput:
    """The loop twin of :func:`composite`: walk the samples front to back, keeping the
    transmittance ``T`` and multiplying by ``(1 - alpha)`` after each sample — the formula as
    written, one sample at a time (slow; the oracle)."""
    T = torch.ones_like(sigma[..., 0])
    ws, Ts = [], []
    for i in range(sigma.shape[-1]):
        alpha = 1.0 - torch.exp(-sigma[..., i] * deltas[..., i])
        Ts.append(T)
        ws.append(T * alpha)
        T = T * (1.0 - alpha)
    return _finish(torch.stack(ws, -1), torch.stack(Ts, -1), color, depths, background, far)


# ---------------------------------------------------------------------------- the renderer


def _query(field: Field, rays: Rays, depths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    B, R, N = depths.shape
    pts = rays.origins.unsqueeze(2) + depths.unsqueeze(-1) * rays.directions.unsqueeze(2)
    dirs = rays.directions.unsqueeze(2).expand(B, R, N, 3)
    sigma, color = field(pts.reshape(B, R * N, 3), dirs.reshape(B, R * N, 3))
    if sigma.shape != (B, R * N) or color.dim() != 3 or color.shape[:2] != (B, R * N):
        raise InvalidInput(
            f"field must return sigma (B, M) and color (B, M, C) for M = {R * N} points, got "
            f"{tuple(sigma.shape)} and {tuple(color.shape)}"
        )
    return sigma.reshape(B, R, N), color.reshape(B, R, N, -1)


def render_rays(
    field: Field,
    rays: Rays,
    near: torch.Tensor | float,
    far: torch.Tensor | float,
    n_samples: int = 48,
    n_importance: int = 0,
    perturb: bool = True,
    background: torch.Tensor | float | None = None,
    generator: torch.Generator | None = None,
) -> VolumeOutput:
    """Render ``field`` along ``rays``: stratified samples, optional importance resampling,
    compositing.

    1. ``n_samples`` stratified depths in ``[near, far]`` (bins as intervals), field queried,
       composited -> coarse weights.
    2. If ``n_importance > 0``: that many depths drawn from the coarse weights
       (:func:`sample_pdf`), the field queried there, and all ``n_samples + n_importance``
       samples composited together with midpoint intervals (:func:`intervals_from_depths`).
       (EG3D's FFHQ setting: 48 + 48, ``near = 2.25``, ``far = 3.3``.)

    ``near``/``far`` are floats or ``(B, R)`` (e.g. from :func:`ray_aabb`). Output depths are
    ray distances; multiply by ``rays.z_per_t`` for camera ``z``.
    """
    B, R, _ = rays.origins.shape
    like = rays.origins
    depths, edges = stratified_depths(near, far, n_samples, (B, R), like, perturb, generator)
    sigma, color = _query(field, rays, depths)
    coarse = composite(sigma, color, depths, edges[..., 1:] - edges[..., :-1], background, far)
    if n_importance <= 0:
        return coarse
    fine = sample_pdf(edges, coarse.weights, n_importance, perturb, generator)
    sigma_f, color_f = _query(field, rays, fine)
    all_t, order = torch.cat([depths, fine], -1).sort(-1)
    all_s = torch.cat([sigma, sigma_f], -1).gather(-1, order)
    C = color.shape[-1]
    all_c = torch.cat([color, color_f], -2).gather(-2, order.unsqueeze(-1).expand(B, R, -1, C))
    deltas = intervals_from_depths(all_t, near, far)
    return composite(all_s, all_c, all_t, deltas, background, far)
