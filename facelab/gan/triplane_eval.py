"""Evaluating the tri-plane 3D GAN: turntables, meshes, multi-view consistency, depth, KID-dlib.

- :func:`turntable`: one face (one ``z``, one conditioning camera) rendered from cameras
  orbiting in yaw; images, camera-z depth and opacity per view.
- :func:`extract_mesh`: marching cubes (scikit-image) on the density sampled on a grid in the
  box — the geometry the generator learned, as a triangle mesh.
- :func:`generator_consistency` / :func:`world_consistency`: the multi-view check of
  :mod:`facelab.metrics.multiview` (reproject view B into view A through B's depth; masked
  colour error) for generated faces, and the same check on two real views of world faces
  (exact depth, moving highlights) as the reference.
- :func:`depth_stats`: camera-z statistics of the foreground (mean, relief = 95th - 5th
  percentile, foreground share), to compare generated geometry with the world's.
- :func:`kid_dlib`: the kernel distance (:func:`facelab.gan.metrics.kernel_distance`) in the
  feature space of the dlib face-recognition ResNet port (its 128-D embedding of the image
  upsampled to dlib's 150 px chip, the same for real and generated images) — **KID-dlib**,
  not Inception's KID (no Inception weights are available offline).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..geometry.eg3d import (
    camera_params,
    normalized_intrinsics,
    orbit_cam2world,
    pixel_intrinsics,
)
from ..metrics.multiview import consistency_error
from .triplane import TriplaneGenerator

__all__ = [
    "depth_stats",
    "extract_mesh",
    "extract_mesh_ws",
    "generator_consistency",
    "kid_dlib",
    "orbit_cameras",
    "turntable",
    "world_consistency",
]


def orbit_cameras(yaws, pitch: float = 0.0, like: torch.Tensor | None = None) -> torch.Tensor:
    """``(V, 25)`` EG3D cameras at ``yaws`` (radians) and one ``pitch``."""
    kw = {} if like is None else {"dtype": like.dtype, "device": like.device}
    y = (
        torch.as_tensor(yaws, **kw)
        .reshape(-1)
        .to(torch.get_default_dtype() if like is None else like.dtype)
    )
    c2w = orbit_cam2world(y, torch.full_like(y, pitch))
    return camera_params(
        c2w, normalized_intrinsics(batch=y.shape[0], dtype=y.dtype, device=y.device)
    )


@torch.no_grad()
def turntable(
    G: TriplaneGenerator,
    z: torch.Tensor,
    yaws,
    pitch: float = 0.0,
    psi: float = 0.7,
    resolution: int | None = None,
) -> dict[str, torch.Tensor]:
    """Views ``(V, ...)`` of the face of ``z (1, z_dim)`` at ``yaws``; conditioned on the
    frontal camera (EG3D's inference practice), constant noise."""
    cams = orbit_cameras(yaws, pitch, z)
    c_cond = orbit_cameras([0.0], 0.0, z).expand(cams.shape[0], -1)
    w = G.mapping(z.expand(cams.shape[0], -1), c_cond, psi)
    ws = w[:, None].expand(-1, G.num_ws, -1)
    out = G.synthesis(ws, cams, noise_mode="const", resolution=resolution)
    out["cameras"] = cams
    return out


@torch.no_grad()
def extract_mesh(
    G: TriplaneGenerator,
    z: torch.Tensor,
    resolution: int = 48,
    level: float = 10.0,
    psi: float = 0.7,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(verts (V, 3), faces (F, 3), level)`` of the ``sigma = level`` iso-surface in the box
    for the latent ``z`` (truncation ``psi``, frontal conditioning camera); see
    :func:`extract_mesh_ws`."""
    c = orbit_cameras([0.0], 0.0, z)
    w = G.mapping(z, c, psi)
    return extract_mesh_ws(G, w[:, None].expand(-1, G.num_ws, -1), resolution, level)


@torch.no_grad()
def extract_mesh_ws(
    G: TriplaneGenerator, ws: torch.Tensor, resolution: int = 48, level: float = 10.0
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(verts (V, 3), faces (F, 3), level)``: marching cubes (scikit-image) of the density of
    the tri-planes of ``ws (1, num_ws, w_dim)``, sampled at the centres of a ``resolution^3``
    grid over the box ``[-b/2, b/2]^3`` (``b = box_warp``), at the iso-level ``sigma = level``
    (moved to the middle of the density range if the field never crosses it). Vertices are in
    the box's coordinates, in the planes' dtype."""
    from skimage.measure import marching_cubes

    planes = G.planes(ws, "const")
    b = G.config.box_warp
    s = (torch.arange(resolution, dtype=planes.dtype) + 0.5) / resolution * b - b / 2
    X, Y, Z = torch.meshgrid(s, s, s, indexing="ij")
    pts = torch.stack([X, Y, Z], -1).reshape(1, -1, 3)
    sigma = torch.cat([G.field(planes)(p, p)[0] for p in pts.split(32768, dim=1)], 1)
    vol = sigma.reshape(resolution, resolution, resolution).cpu().numpy()
    if not (vol.min() < level < vol.max()):
        level = float(0.5 * (vol.min() + vol.max()))
    verts, faces, _, _ = marching_cubes(vol, level=level, spacing=(b / resolution,) * 3)
    verts = torch.as_tensor(verts.copy(), dtype=planes.dtype) - b / 2 + b / (2 * resolution)
    return verts, torch.as_tensor(faces.copy(), dtype=torch.long), float(level)


def _pair_error(img, depth, mask, cams, res, depth_tol):
    """Errors of views 1.. reprojected into view 0 (and 0 into 1..), averaged per pair."""
    from ..geometry.eg3d import split_camera_params

    c2w, K_norm = split_camera_params(cams.to(img.dtype))
    K = pixel_intrinsics(K_norm, res)
    errs, covs = [], []
    for i in range(1, img.shape[0]):
        for a, b in ((0, i), (i, 0)):
            out = consistency_error(
                img[a : a + 1], depth[a : a + 1], mask[a : a + 1], c2w[a : a + 1], K[a : a + 1],
                img[b : b + 1], depth[b : b + 1], mask[b : b + 1], c2w[b : b + 1], K[b : b + 1],
                depth_tol=depth_tol,
            )  # fmt: skip
            errs.append(out["error"])
            covs.append(out["coverage"])
    return torch.cat(errs), torch.cat(covs)


def _consistency_summary(
    errs: list[torch.Tensor], covs: list[torch.Tensor], stats: list[dict[str, float]]
) -> dict[str, float]:
    """The report of :func:`generator_consistency` / :func:`world_consistency` from the
    per-face pair errors and coverages (:func:`_pair_error`) and depth statistics
    (:func:`depth_stats`): ``error`` = mean over the pairs with any overlap (NaN if none),
    ``coverage`` = mean over all pairs, ``pairs`` = how many overlapped, ``depth_*`` = the
    per-face statistics averaged."""
    e, c = torch.cat(errs), torch.cat(covs)
    ok = ~torch.isnan(e)
    return {
        "error": float(e[ok].mean()) if ok.any() else float("nan"),
        "coverage": float(c.mean()),
        "pairs": int(ok.sum()),
        **{f"depth_{k}": sum(s[k] for s in stats) / len(stats) for k in stats[0]},
    }


@torch.no_grad()
def generator_consistency(
    G: TriplaneGenerator,
    n: int = 8,
    yaw: float = 0.35,
    seed: int = 0,
    psi: float = 0.7,
    depth_tol: float = 0.03,
    opacity_threshold: float = 0.5,
) -> dict[str, float]:
    """Mean consistency error (colour in [0, 1]) and coverage over ``n`` faces, views at yaw
    ``0`` and ``+-yaw`` (pairs (0, +yaw) and (0, -yaw), both directions)."""
    g = torch.Generator().manual_seed(seed)
    errs, covs, stats = [], [], []
    for _ in range(n):
        z = torch.randn(1, G.z_dim, generator=g)
        out = turntable(G, z, [0.0, yaw, -yaw], psi=psi)
        img = (out["image_raw"] + 1) / 2
        depth = out["depth"][:, 0]
        mask = out["opacity"][:, 0] > opacity_threshold
        e, c = _pair_error(img, depth, mask, out["cameras"], img.shape[-1], depth_tol)
        errs.append(e)
        covs.append(c)
        stats.append(depth_stats(depth[:1], mask[:1]))
    return _consistency_summary(errs, covs, stats)


@torch.no_grad()
def world_consistency(
    n: int = 8,
    yaw_degrees: float = 20.0,
    seed: int = 1000,
    resolution: int = 32,
    depth_tol: float = 0.03,
    views_config=None,
) -> dict[str, float]:
    """The same check on real world views: ``n`` random people, each at yaw 0 and
    ``+-yaw_degrees`` (the world's face yaw), rendered at ``resolution`` with exact depth,
    in EG3D's frame (:func:`facelab.gan.triplane_data.world_to_eg3d`)."""
    from dataclasses import replace

    from ..world import WorldDataset
    from .triplane_data import ViewsConfig, view_distance, world_config, world_to_eg3d

    vcfg = replace(views_config or ViewsConfig(), image_size=resolution)
    ds = WorldDataset(world_config(vcfg), length=n, seed=seed)
    r = ds.renderer
    distance = view_distance(r.face_width, vcfg.fill)
    errs, covs, stats = [], [], []
    for i in range(n):
        batch = r.sample_views(i, seed, 3, yaws=[0.0, yaw_degrees, -yaw_degrees])
        out = r.render(batch)
        c2w, s = world_to_eg3d(out["cam2world"].double(), r.face_center.double(), distance)
        img = out["image"].double()
        depth = out["depth"].double() * s
        mask = out["mask"]
        cams = camera_params(c2w, normalized_intrinsics(batch=3, dtype=torch.float64))
        e, c = _pair_error(img, depth, mask, cams, resolution, depth_tol)
        errs.append(e)
        covs.append(c)
        stats.append(depth_stats(depth[:1], mask[:1]))
    return _consistency_summary(errs, covs, stats)


def depth_stats(depth: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Foreground camera-z statistics of ``depth (B, H, W)`` under ``mask``: ``mean``,
    ``relief`` (95th - 5th percentile: how deep the face is), ``foreground`` share."""
    d = depth[mask.bool()].double()
    if d.numel() < 2:
        return {"mean": float("nan"), "relief": float("nan"), "foreground": 0.0}
    q = torch.quantile(d, torch.tensor([0.05, 0.95], dtype=d.dtype))
    return {
        "mean": float(d.mean()),
        "relief": float(q[1] - q[0]),
        "foreground": float(mask.double().mean()),
    }


def _dlib_embed(images01: torch.Tensor, net) -> torch.Tensor:
    x = F.interpolate(images01.float(), size=150, mode="bilinear", align_corners=False)
    return net.features(net.preprocess(x))["embedding"].double()


@torch.no_grad()
def kid_dlib(
    G: TriplaneGenerator | None,
    real01: torch.Tensor,
    cameras: torch.Tensor,
    n: int = 128,
    seed: int = 0,
    psi: float = 1.0,
    net=None,
) -> tuple[float, float]:
    """KID-dlib ``(mean, std)`` between ``n`` generated faces (rendered from ``cameras``,
    conditioned on them) and the real images ``real01 (N, 3, H, W)`` in [0, 1].

    ``G=None`` compares two disjoint halves of ``real01`` (the data's own floor)."""
    from ..vision.dlib_resnet import load_dlib_face_resnet
    from .metrics import kernel_distance

    net = net or load_dlib_face_resnet().eval()
    g = torch.Generator().manual_seed(seed)
    if G is None:
        perm = torch.randperm(real01.shape[0], generator=g)
        h = real01.shape[0] // 2
        a = _dlib_embed(real01[perm[:h]], net)
        b = _dlib_embed(real01[perm[h : 2 * h]], net)
        return kernel_distance(a, b, subsets=50, subset_size=min(100, h), seed=seed)
    fakes = []
    for s in range(0, n, 16):
        k = min(16, n - s)
        z = torch.randn(k, G.z_dim, generator=g)
        c = cameras[s : s + k]
        fakes.append((G(z, c, c, psi=psi, noise_mode="const")["image"].clamp(-1, 1) + 1) / 2)
    fake = torch.cat(fakes)
    if fake.shape[-1] != real01.shape[-1]:
        real01 = F.adaptive_avg_pool2d(real01, fake.shape[-1])
    a, b = _dlib_embed(real01, net), _dlib_embed(fake, net)
    return kernel_distance(
        a, b, subsets=50, subset_size=min(100, a.shape[0], b.shape[0]), seed=seed
    )


def yaw_of(cam: torch.Tensor) -> float:
    """Yaw (radians) of an orbit camera's centre ``(25,)``."""
    x, z = float(cam[3]), float(cam[11])
    return math.atan2(x, z)
