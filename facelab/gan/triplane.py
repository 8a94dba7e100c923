r"""A small EG3D: a tri-plane 3D-aware GAN rendered with :mod:`facelab.render.volume`.

EG3D (Chan et al., "Efficient Geometry-aware 3D Generative Adversarial Networks", CVPR 2022)
at laptop scale. The generator is a 2D StyleGAN2 (:class:`facelab.gan.networks.Generator`)
whose output is not an image but **three axis-aligned feature planes**
``F_xy, F_xz, F_yz`` of ``C`` channels each (its "RGB" layer has ``3 C`` channels). A 3D point
``p`` in the box ``[-b/2, b/2]^3`` (``b = box_warp``) reads each plane bilinearly at its
projection and averages them,

.. math::

    f(p) = \tfrac13\big(F_{xy}(p_x, p_y) + F_{xz}(p_x, p_z) + F_{yz}(p_y, p_z)\big),

a small MLP decodes ``f(p)`` into a density ``sigma = softplus(s - 1)`` and features
``sigmoid(.) * 1.002 - 0.001`` (the first three are the colour), and the volume renderer
(:func:`facelab.render.volume.render_rays`) integrates them along the camera's rays
(stratified + importance samples between depths 2.25 and 3.3; EG3D's cameras,
:mod:`facelab.geometry.eg3d`). An optional 2D **super-resolution** network upsamples the
rendered feature image (EG3D renders 64-128 px and super-resolves to 512 px).

**Pose conditioning.** Real faces' appearance correlates with their pose in a data set (EG3D:
people smile more at frontal cameras), so the mapping network also sees a camera ``c``
(25 numbers: cam2world + normalised intrinsics). Conditioning only on the *rendering* camera
would let the generator cheat (a different face for every view); so, during training, with
probability ``swap_prob`` the conditioning camera is swapped for another random pose. At
inference one fixed conditioning camera is used for every rendered view. The discriminator is
conditioned on the rendering camera (projection discriminator), so it can penalise an image
that does not look like a face *seen from that camera* — this is what forces 3D structure.

**Density regularisation.** EG3D's: the L1 difference between densities at random points and at
points moved by ``N(0, eps^2)`` (``eps = 0.004 b``), weight 0.25, every 4 steps — it smooths
the density field and suppresses floaters.

Shapes: planes ``(B, 3, C, P, P)``; images ``(B, 3, R, R)`` in about ``[-1, 1]``; depth
``(B, 1, R, R)`` is camera ``z`` (EG3D units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidInput
from ..geometry.eg3d import (
    EG3D_RAY_END,
    EG3D_RAY_START,
    pixel_intrinsics,
    split_camera_params,
)
from ..render.volume import VolumeOutput, camera_rays, render_rays
from .checkpoint import JsonConfig
from .networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

__all__ = [
    "SuperResolution",
    "TriplaneConfig",
    "TriplaneDecoder",
    "TriplaneGenerator",
    "density_tv_loss",
    "make_discriminator",
    "sample_triplanes",
    "template_from_mesh",
    "template_occupancy",
]


@dataclass
class TriplaneConfig(JsonConfig):
    """Shape and rendering of a :class:`TriplaneGenerator` (all it needs to be rebuilt).

    Attributes:
        z_dim, w_dim, mapping_layers: latent sizes, mapping depth.
        plane_res, plane_channels: tri-plane resolution ``P`` and channels ``C`` per plane.
        channel_base, channel_max, channels: the backbone's channels (see
            :class:`~facelab.gan.networks.GeneratorConfig`).
        hidden: decoder MLP width; ``features``: decoded feature channels (first 3 = colour).
        render_res: neural rendering resolution; ``n_samples``, ``n_importance``: per ray.
        ray_start, ray_end: sampling range (ray distance); ``box_warp``: the box's side.
        sr_res: super-resolution output size (``0`` or ``render_res``: none).
        c_dim: camera conditioning size (25 = EG3D's; 0 = unconditional mapping).
        template_prior: ``beta`` of the template density prior (0 = none, EG3D's design):
            ``beta (2 o(p) - 1)`` is added to the density logit, ``o`` the occupancy of a
            template head (:func:`template_occupancy`), so the untrained field is already a
            solid head and training learns the residual.
        template_res, template_softness: the template's ``(x, y)`` grid and the width ``tau``
            of its front/back surfaces (box units).
    """

    z_dim: int = 64
    w_dim: int = 128
    mapping_layers: int = 4
    plane_res: int = 32
    plane_channels: int = 16
    channel_base: int = 1024
    channel_max: int = 64
    channels: dict = field(default_factory=dict)
    hidden: int = 32
    features: int = 3
    render_res: int = 32
    n_samples: int = 16
    n_importance: int = 8
    ray_start: float = EG3D_RAY_START
    ray_end: float = EG3D_RAY_END
    box_warp: float = 1.0
    sr_res: int = 0
    c_dim: int = 25
    template_prior: float = 0.0
    template_res: int = 64
    template_softness: float = 0.02

    def __post_init__(self) -> None:
        if self.template_prior < 0 or self.template_softness <= 0 or self.template_res < 4:
            raise InvalidInput(
                "template_prior must be >= 0, template_softness > 0 and template_res >= 4, "
                f"got {self.template_prior}, {self.template_softness}, {self.template_res}"
            )
        if self.features < 3:
            raise InvalidInput(
                f"features must be >= 3 (the first three are RGB), got {self.features}"
            )
        if self.sr_res and self.sr_res not in (
            self.render_res,
            2 * self.render_res,
            4 * self.render_res,
        ):
            raise InvalidInput(f"sr_res must be 0 or 1x/2x/4x render_res, got {self.sr_res}")
        self.channels = {int(k): int(v) for k, v in self.channels.items()}

    @property
    def out_res(self) -> int:
        return self.sr_res or self.render_res

    def backbone_config(self) -> GeneratorConfig:
        return GeneratorConfig(
            resolution=self.plane_res,
            z_dim=self.z_dim,
            w_dim=self.w_dim,
            mapping_layers=self.mapping_layers,
            channels=dict(self.channels),
            channel_base=self.channel_base,
            channel_max=self.channel_max,
            img_channels=3 * self.plane_channels,
            c_dim=self.c_dim,
        )


def sample_triplanes(
    planes: torch.Tensor, points: torch.Tensor, box_warp: float = 1.0
) -> torch.Tensor:
    """Features ``(B, M, C)`` of ``points (B, M, 3)`` from ``planes (B, 3, C, P, P)``.

    Plane 0 is indexed by ``(x, y)``, plane 1 by ``(x, z)``, plane 2 by ``(y, z)`` (first
    coordinate along the plane's width, second along its height), each coordinate mapped from
    ``[-box_warp/2, box_warp/2]`` to grid_sample's ``[-1, 1]`` (bilinear, pixel centres as in
    ``align_corners=False``, zeros outside); the three features are averaged.
    """
    if planes.dim() != 5 or planes.shape[1] != 3:
        raise InvalidInput(f"planes must be (B, 3, C, P, P), got {tuple(planes.shape)}")
    if points.dim() != 3 or points.shape[-1] != 3 or points.shape[0] != planes.shape[0]:
        raise InvalidInput(
            f"points must be (B, M, 3) with B = {planes.shape[0]}, got {tuple(points.shape)}"
        )
    B, _, C, P, Q = planes.shape
    q = points * (2.0 / box_warp)
    grids = torch.stack([q[..., [0, 1]], q[..., [0, 2]], q[..., [1, 2]]], 1)  # (B, 3, M, 2)
    out = F.grid_sample(
        planes.reshape(B * 3, C, P, Q),
        grids.reshape(B * 3, 1, -1, 2).to(planes.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # (B*3, C, 1, M)
    return out.reshape(B, 3, C, -1).mean(1).transpose(1, 2)


def template_from_mesh(
    verts: torch.Tensor, faces: torch.Tensor, res: int = 64, box_warp: float = 1.0
) -> torch.Tensor:
    """A two-sided depth hull ``(3, res, res)`` of a mesh in the box: the front (largest) and
    back (smallest) ``z`` of the surface over each ``(x, y)`` cell, and the cell's coverage.

    The mesh ``verts (V, 3)`` (box coordinates, +z towards the frontal camera) is rasterized
    orthographically along ``z`` twice (:func:`facelab.render.rasterize`, once with depth
    ``2 b - z`` so the front wins, once with ``2 b + z`` so the back wins) on the grid that
    :func:`sample_triplanes` uses for the ``xy`` plane (column ``j`` at
    ``x = ((2 j + 1) / res - 1) b / 2``, row ``i`` likewise in ``y``). Holes inside the
    silhouette (eye sockets, the mouth line) are closed (a 3 x 3 closing of the coverage) and
    every uncovered cell's ``z`` is filled from its neighbours, so bilinear reads at the
    silhouette do not mix in zeros.
    """
    from ..render.rasterize import rasterize

    if verts.dim() != 2 or verts.shape[-1] != 3 or faces.dim() != 2 or faces.shape[-1] != 3:
        raise InvalidInput(
            f"verts must be (V, 3) and faces (F, 3), got {tuple(verts.shape)}, {tuple(faces.shape)}"
        )
    b = float(box_warp)
    uv = (verts[:, :2] * (2.0 / b) + 1.0) * (res / 2.0)
    out = []
    for sign in (-1.0, 1.0):  # front: depth 2b - z; back: depth 2b + z
        screen = torch.cat([uv, (2 * b + sign * verts[:, 2:3])], 1)[None]
        frags = rasterize(screen, faces, res)
        z = (frags.zbuf[0] - 2 * b) * sign
        out.append(torch.where(frags.mask[0], z, torch.zeros_like(z)))
    cover = frags.mask[0].to(verts.dtype)[None, None]
    closed = -F.max_pool2d(-F.max_pool2d(cover, 3, 1, 1), 3, 1, 1)
    known = cover.clone()
    zs = torch.stack(out)[:, None]  # (2, 1, R, R)
    for _ in range(res):  # fill every uncovered cell from its known neighbours
        if bool(known.all()):
            break
        num = F.avg_pool2d(zs * known, 3, 1, 1, count_include_pad=False)
        den = F.avg_pool2d(known, 3, 1, 1, count_include_pad=False)
        grow = (den > 0) & (known == 0)
        zs = torch.where(grow, num / den.clamp_min(1e-12), zs)
        known = torch.where(grow, torch.ones_like(known), known)
    return torch.cat([zs[:, 0], torch.maximum(cover, closed)[0]], 0)


def template_occupancy(
    template: torch.Tensor, points: torch.Tensor, box_warp: float = 1.0, softness: float = 0.02
) -> torch.Tensor:
    r"""Soft occupancy ``(B, M)`` in [0, 1] of ``points (B, M, 3)`` in the two-sided depth hull
    ``template (3, R, R)`` (:func:`template_from_mesh`):

    .. math::  o(p) = m(p_x, p_y)\, s\big((f(p_x, p_y) - p_z)/\tau\big)\,
               s\big((p_z - k(p_x, p_y))/\tau\big)

    with ``f, k, m`` the front, back and coverage read bilinearly at ``(p_x, p_y)`` and ``s``
    the logistic function."""
    B, M, _ = points.shape
    g = (points[..., :2] * (2.0 / box_warp)).reshape(1, 1, B * M, 2).to(template.dtype)
    t = F.grid_sample(template[None], g, mode="bilinear", padding_mode="zeros",
                      align_corners=False)[0, :, 0].reshape(3, B, M)  # fmt: skip
    z = points[..., 2].to(template.dtype)
    return t[2] * torch.sigmoid((t[0] - z) / softness) * torch.sigmoid((z - t[1]) / softness)


class TriplaneDecoder(nn.Module):
    """EG3D's decoder: ``FC(C, hidden) -> softplus -> FC(hidden, 1 + features)``; density
    ``softplus(s - 1)``, features ``sigmoid(.) * 1.002 - 0.001``."""

    def __init__(self, in_channels: int, hidden: int = 32, features: int = 3) -> None:
        super().__init__()
        self.fc0 = nn.Linear(in_channels, hidden)
        self.fc1 = nn.Linear(hidden, 1 + features)

    def forward(
        self, f: torch.Tensor, density_bias: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``f (..., C)`` -> ``(sigma (...), features (..., F))``; ``density_bias (...)`` is
        added to the density logit before the softplus (the template prior)."""
        h = self.fc1(F.softplus(self.fc0(f)))
        logit = h[..., 0] - 1.0
        if density_bias is not None:
            logit = logit + density_bias
        sigma = F.softplus(logit)
        feats = torch.sigmoid(h[..., 1:]) * (1 + 2e-3) - 1e-3
        return sigma, feats


class SuperResolution(nn.Module):
    """Optional 2D upsampler of the rendered feature image: two 3x3 convolutions per 2x step
    on the features, added to the bilinearly upsampled raw colour (a residual, so an untrained
    SR network is a bilinear upsampler)."""

    def __init__(self, features: int, scale: int, hidden: int = 32) -> None:
        super().__init__()
        self.scale = int(scale)
        steps = int(round(math.log2(self.scale)))
        layers: list[nn.Module] = []
        c = features
        for _ in range(steps):
            layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)]
            layers += [nn.Conv2d(c, hidden, 3, padding=1), nn.LeakyReLU(0.2)]
            layers += [nn.Conv2d(hidden, hidden, 3, padding=1), nn.LeakyReLU(0.2)]
            c = hidden
        self.body = nn.Sequential(*layers)
        self.to_rgb = nn.Conv2d(hidden, 3, 1)
        nn.init.zeros_(self.to_rgb.weight)
        nn.init.zeros_(self.to_rgb.bias)

    def forward(self, feat: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(rgb, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return up + self.to_rgb(self.body(feat))


class TriplaneGenerator(nn.Module):
    """``G(z, c_cond, c_render) -> {"image", "image_raw", "depth", "opacity"}``.

    ``c_cond`` conditions the mapping network (pose conditioning), ``c_render`` is the camera
    the face is rendered from (both ``(B, 25)``, :func:`facelab.geometry.eg3d.camera_params`);
    ``c_render`` defaults to ``c_cond``. ``image`` is ``(B, 3, out_res, out_res)`` in about
    ``[-1, 1]`` over a black (``-1``) background; ``image_raw`` is the neural rendering at
    ``render_res``; ``depth`` is the expected camera ``z`` (``ray_end`` where empty).
    """

    def __init__(self, config: TriplaneConfig | None = None, **kw) -> None:
        super().__init__()
        cfg = config or TriplaneConfig(**kw)
        self.config = cfg
        self.backbone = Generator(cfg.backbone_config())
        self.decoder = TriplaneDecoder(cfg.plane_channels, cfg.hidden, cfg.features)
        self.sr = (
            SuperResolution(cfg.features, cfg.sr_res // cfg.render_res)
            if cfg.sr_res and cfg.sr_res != cfg.render_res
            else None
        )
        if cfg.template_prior > 0:
            # set by set_template (the training command builds it from the 3DMM's mean head)
            self.register_buffer("template", torch.zeros(3, cfg.template_res, cfg.template_res))

    def set_template(self, verts: torch.Tensor, faces: torch.Tensor) -> None:
        """Build the template prior's depth hull from a mesh in the box
        (:func:`template_from_mesh`); needs ``config.template_prior > 0``."""
        if self.config.template_prior <= 0:
            raise InvalidInput("set_template needs a config with template_prior > 0")
        t = template_from_mesh(verts, faces, self.config.template_res, self.config.box_warp)
        self.template.copy_(t.to(self.template))

    def density_bias(self, points: torch.Tensor) -> torch.Tensor | None:
        """The template prior's density-logit bias ``beta (2 o(p) - 1)`` at ``points``
        (None without a template)."""
        cfg = self.config
        if cfg.template_prior <= 0:
            return None
        o = template_occupancy(self.template, points, cfg.box_warp, cfg.template_softness)
        return cfg.template_prior * (2 * o - 1)

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def num_ws(self) -> int:
        return self.backbone.num_ws

    def mapping(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None,
        psi: float = 1.0,
        update_w_avg: float | None = None,
    ) -> torch.Tensor:
        """``w (B, w_dim)`` of ``z`` conditioned on camera ``c`` (None if ``c_dim == 0``)."""
        return self.backbone.mapping(z, c if self.config.c_dim else None, psi, update_w_avg)

    def planes(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        """``ws (B, num_ws, w_dim)`` -> tri-planes ``(B, 3, C, P, P)``."""
        x = self.backbone.synthesis(ws, noise_mode)
        B, _, P, Q = x.shape
        return x.reshape(B, 3, self.config.plane_channels, P, Q)

    def field(self, planes: torch.Tensor):
        """The radiance field of ``planes`` as a :data:`facelab.render.volume.Field`
        (density 0 outside the box)."""
        half = 0.5 * self.config.box_warp

        def f(points: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            feats_in = sample_triplanes(planes, points, self.config.box_warp)
            bias = self.density_bias(points)
            sigma, feats = self.decoder(feats_in, None if bias is None else bias.to(feats_in))
            inside = (points.abs() <= half).all(-1)
            return sigma * inside.to(sigma.dtype), feats

        return f

    def render(
        self,
        planes: torch.Tensor,
        c_render: torch.Tensor,
        resolution: int | None = None,
        perturb: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[VolumeOutput, torch.Tensor]:
        """Volume-render ``planes`` from cameras ``c_render (B, 25)``; returns the
        :class:`~facelab.render.volume.VolumeOutput` and the rays' ``z_per_t``."""
        cfg = self.config
        res = int(resolution or cfg.render_res)
        c2w, K_norm = split_camera_params(c_render.to(planes.dtype))
        rays = camera_rays(c2w, pixel_intrinsics(K_norm, res), res)
        out = render_rays(
            self.field(planes),
            rays,
            cfg.ray_start,
            cfg.ray_end,
            cfg.n_samples,
            cfg.n_importance,
            perturb=self.training if perturb is None else perturb,
            generator=generator,
        )
        return out, rays.z_per_t

    def synthesis(
        self,
        ws: torch.Tensor,
        c_render: torch.Tensor,
        noise_mode: str = "random",
        resolution: int | None = None,
    ) -> dict[str, torch.Tensor]:
        planes = self.planes(ws, noise_mode)
        out, z_per_t = self.render(planes, c_render, resolution)
        res = int(resolution or self.config.render_res)
        feat = out.image((res, res))  # (B, F, R, R) in [0, 1] over black
        raw = feat[:, :3] * 2 - 1
        image = raw
        if self.sr is not None:
            image = self.sr(feat * 2 - 1, raw)
        z = (out.depth * z_per_t).reshape(-1, 1, res, res)
        return {
            "image": image,
            "image_raw": raw,
            "depth": z,
            "opacity": out.opacity.reshape(-1, 1, res, res),
            "planes": planes,
        }

    def forward(
        self,
        z: torch.Tensor,
        c_cond: torch.Tensor | None,
        c_render: torch.Tensor | None = None,
        psi: float = 1.0,
        noise_mode: str = "random",
        update_w_avg: float | None = None,
        resolution: int | None = None,
    ) -> dict[str, torch.Tensor]:
        if z.dim() != 2 or z.shape[1] != self.config.z_dim:
            raise InvalidInput(f"z must be (B, {self.config.z_dim}), got {tuple(z.shape)}")
        c_render = c_cond if c_render is None else c_render
        if c_render is None or c_render.shape != (z.shape[0], 25):
            raise InvalidInput(
                "c_render must be (B, 25) camera parameters (geometry.eg3d.camera_params)"
            )
        w = self.mapping(z, c_cond, psi, update_w_avg)
        ws = w[:, None].expand(-1, self.num_ws, -1)
        return self.synthesis(ws, c_render, noise_mode, resolution)


def make_discriminator(
    config: TriplaneConfig, channel_max: int = 64, channel_base: int = 1024
) -> Discriminator:
    """The camera-conditioned discriminator (:class:`~facelab.gan.networks.Discriminator`
    with ``c_dim = 25`` projection conditioning) at the generator's output resolution."""
    return Discriminator(
        DiscriminatorConfig(
            resolution=config.out_res,
            channel_base=channel_base,
            channel_max=channel_max,
            img_channels=3,
            c_dim=25,
        )
    )


def density_tv_loss(
    G: TriplaneGenerator,
    planes: torch.Tensor,
    n_points: int = 1000,
    eps: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """EG3D's density regulariser: ``mean |sigma(p) - sigma(p + N(0, eps^2))|`` at ``n_points``
    uniform points of the box per sample (``eps = 0.004 box_warp``). ``sigma`` is the
    decoder's density *without* the template prior: the regulariser smooths what is learned,
    not the template's own surface."""
    b = G.config.box_warp
    eps = 0.004 * b if eps is None else eps
    B = planes.shape[0]
    kw = {"dtype": planes.dtype, "device": planes.device}
    p = (torch.rand(B, n_points, 3, generator=generator, **kw) - 0.5) * b
    q = p + eps * torch.randn(B, n_points, 3, generator=generator, **kw)
    s0, _ = G.decoder(sample_triplanes(planes, p, b))
    s1, _ = G.decoder(sample_triplanes(planes, q, b))
    return (s0 - s1).abs().mean()
