r"""3D GAN inversion with a facial symmetry prior (Yin et al., CVPR 2023), on facelab's tri-plane GAN.

Two stages, as in the paper (and in PTI, Roich et al. 2022, which it builds on):

1. **Latent inversion** (:func:`invert_latent`): find ``w`` (one vector, **W**) or one vector
   per synthesis layer (**W+**) whose render from the photo's camera matches the photo. It
   starts from the mean latent (:func:`mean_latent`, 1,000 samples of the mapping network
   conditioned on the frontal camera), adds latent noise that ramps down to 0 over the first
   75 % of the steps (:func:`latent_noise_strength`) and follows StyleGAN2's projector
   learning-rate ramp (5 % warm-up, cosine decay over the last 25 %,
   :func:`learning_rate_at`). The loss is :func:`~facelab.methods.spi.losses.reconstruction_loss`
   plus the **symmetry prior** :func:`~facelab.methods.spi.losses.mirror_loss`: the flipped
   photo against the render from the mirrored camera, weighted by ``mirror`` x
   :func:`~facelab.methods.spi.camera.mirror_weight` (0 for a near-frontal photo).
2. **Pivotal tuning** (:func:`pivotal_tuning`): freeze the found latent (the pivot) and tune the
   generator's synthesis network and decoder so that it reproduces the photo — with, besides the
   reconstruction and mirror terms, **depth-guided warping pseudo labels** for a few views
   around the input and the mirrored cameras (:func:`warp_labels`; computed once from the
   pivot's depth, or from ground-truth depth for the oracle), **conflict masks** (occlusion,
   bounds, face region; the flipped photo's conflicts with the photo,
   :mod:`facelab.methods.spi.masks`) and a **depth regulariser** that keeps the depth at far
   views close to the frozen generator's.

Weights (:class:`SPIConfig`): mirror 0.05, warp 0.1, depth 1 — the published configuration as
given in facelab's issue 18 (not re-checked against the authors' code, which is not available
offline); reconstruction = MSE + 1 x perceptual distance. All renders are at the GAN's neural
rendering resolution (32 px for the shipped ``cpu-32``). Images are ``(B, 3, R, R)`` in
``[-1, 1]``; cameras ``(B, 25)`` (:mod:`facelab.geometry.eg3d`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from ...errors import InvalidInput
from ...gan.triplane_eval import extract_mesh_ws  # re-exported: the inverted face's mesh
from ...geometry.eg3d import (
    EG3D_LOOKAT,
    camera_params,
    normalized_intrinsics,
    orbit_cam2world,
    split_camera_params,
)
from .camera import camera_yaw_pitch, mirror_camera_params, mirror_weight
from .losses import depth_regularizer, mirror_loss, reconstruction_loss, warp_loss
from .masks import (
    face_region_mask,
    in_bounds_mask,
    occlusion_mask,
    symmetry_conflict_mask,
)
from .warp import depth_warp

__all__ = [
    "LatentInversion",
    "SPIConfig",
    "SPIResult",
    "WarpLabel",
    "extract_mesh_ws",
    "far_cameras",
    "invert3d",
    "invert_latent",
    "latent_noise_strength",
    "learning_rate_at",
    "mean_latent",
    "mirror_conflict",
    "orbit_like",
    "pivotal_tuning",
    "render_views",
    "warp_labels",
]


@dataclass
class SPIConfig:
    """Options of :func:`invert3d` (defaults: the published weights, a 2-core CPU schedule).

    Attributes:
        space: ``"w+"`` (one latent per synthesis layer) or ``"w"``.
        w_steps, w_lr: latent optimisation steps and peak learning rate (Adam, betas 0.9/0.999).
        lr_rampup, lr_rampdown: warm-up / cosine-decay fractions of the schedule.
        noise_initial, noise_ramp: latent noise ``w_std * noise_initial * max(0, 1 - t /
            noise_ramp)^2`` (StyleGAN2's projector).
        w_avg_samples: mapping samples for the mean latent.
        perceptual: weight of the perceptual distance in every image term (0 = MSE only).
        symmetry: use the mirror term (and mirrored warps) at all.
        mirror: weight of the mirror term (x the yaw weight); frontal_degrees, full_degrees:
            the yaw weight's ramp (:func:`~facelab.methods.spi.camera.mirror_weight`).
        tune: run pivotal tuning after the latent inversion.
        pti_steps, pti_lr: tuning steps and learning rate (Adam).
        warp: weight of the depth-warped pseudo labels; warp_offsets: their cameras' yaw
            offsets (degrees) around the input and the mirrored camera.
        depth: weight of the depth regulariser; far_yaws: candidate yaws (degrees) of its
            views, used when at least ``far_margin`` degrees from the input and mirror yaws.
        conflict_masks: occlusion / face-region / symmetry-conflict masks (False: warp labels
            wherever they land in bounds on the face, mirror term everywhere).
        depth_tol: occlusion test tolerance (camera z, EG3D units).
        conflict_threshold: colour difference (0-1) above which the flipped photo conflicts.
        opacity_threshold: a rendered pixel is foreground (a surface to warp through) above
            this opacity. 0.3, not 0.5: the shipped partially trained generator is a
            semi-transparent fog whose opacity rarely reaches 0.5 (Chapter 9).
        seed: latent noise and view sampling.
    """

    space: str = "w+"
    w_steps: int = 300
    w_lr: float = 0.01
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.25
    noise_initial: float = 0.05
    noise_ramp: float = 0.75
    w_avg_samples: int = 1000
    perceptual: float = 1.0
    symmetry: bool = True
    mirror: float = 0.05
    frontal_degrees: float = 10.0
    full_degrees: float = 30.0
    tune: bool = True
    pti_steps: int = 150
    pti_lr: float = 3e-4
    warp: float = 0.1
    warp_offsets: tuple[float, ...] = (-15.0, 15.0)
    depth: float = 1.0
    far_yaws: tuple[float, ...] = (-60.0, -45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0, 60.0)
    far_margin: float = 25.0
    conflict_masks: bool = True
    depth_tol: float = 0.05
    conflict_threshold: float = 0.15
    opacity_threshold: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.space not in ("w", "w+"):
            raise InvalidInput(f"space must be 'w' or 'w+', got {self.space!r}")
        if self.w_steps < 0 or self.pti_steps < 0:
            raise InvalidInput("w_steps and pti_steps must be >= 0")

    @classmethod
    def fast(cls, **kw) -> SPIConfig:
        """The FAST schedule (book builds, ``--fast``): 60 latent + 30 tuning steps."""
        return cls(**{"w_steps": 60, "pti_steps": 30, "w_avg_samples": 500, **kw})

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------ schedules and the start


def learning_rate_at(t: float, base: float, rampup: float = 0.05, rampdown: float = 0.25) -> float:
    """StyleGAN2 projector's learning rate at progress ``t`` in [0, 1]: linear warm-up over the
    first ``rampup``, cosine decay to 0 over the last ``rampdown``."""
    down = min(1.0, (1.0 - t) / max(rampdown, 1e-9))
    down = 0.5 - 0.5 * math.cos(down * math.pi)
    up = min(1.0, t / max(rampup, 1e-9))
    return base * down * up


def latent_noise_strength(
    t: float, w_std: float, initial: float = 0.05, ramp: float = 0.75
) -> float:
    """Std of the noise added to the latent at progress ``t``: ``w_std initial
    max(0, 1 - t / ramp)^2`` (explores early, none in the last quarter)."""
    return w_std * initial * max(0.0, 1.0 - t / max(ramp, 1e-9)) ** 2


def frontal_camera(like: torch.Tensor | None = None) -> torch.Tensor:
    """The ``(1, 25)`` frontal EG3D camera (the conditioning camera at inference)."""
    kw = {} if like is None else {"dtype": like.dtype, "device": like.device}
    c2w = orbit_cam2world(torch.zeros(1, **kw), torch.zeros(1, **kw))
    return camera_params(c2w, normalized_intrinsics(**kw))


@torch.no_grad()
def mean_latent(G, n: int = 1000, seed: int = 0) -> tuple[torch.Tensor, float]:
    """``(w_avg (1, w_dim), w_std)``: mean and RMS spread of ``n`` mapped latents, conditioned
    on the frontal camera."""
    p = next(G.parameters())
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=g).to(p)
    w = G.mapping(z, frontal_camera(p).expand(n, -1))
    w_avg = w.mean(0, keepdim=True)
    return w_avg, float((w - w_avg).square().sum(1).mean().sqrt())


def render_views(G, ws: torch.Tensor, cameras: torch.Tensor) -> dict[str, torch.Tensor]:
    """Render one face ``ws (1, num_ws, w_dim)`` from ``cameras (V, 25)``: the tri-planes are
    synthesised once and rendered ``V`` times. Returns ``image (V, 3, R, R)`` in [-1, 1],
    ``depth (V, R, R)`` (camera z), ``opacity (V, R, R)``."""
    planes = G.planes(ws, "const")
    V = cameras.shape[0]
    out, z_per_t = G.render(planes.expand(V, -1, -1, -1, -1), cameras.to(planes.dtype))
    res = G.config.render_res
    feat = out.image((res, res))
    image = feat[:, :3] * 2 - 1
    if G.sr is not None:
        image = G.sr(feat * 2 - 1, image)
    depth = (out.depth * z_per_t).reshape(V, res, res)
    return {"image": image, "depth": depth, "opacity": out.opacity.reshape(V, res, res)}


def orbit_like(camera: torch.Tensor, yaws_degrees) -> torch.Tensor:
    """``(V, 25)`` cameras at ``yaws_degrees`` with the pitch of ``camera (1, 25)`` and its
    distance from the look-at point, looking at it without roll (the framing of the GAN's
    training photos, :func:`facelab.gan.triplane_data.world_to_eg3d`)."""
    _, pitch = camera_yaw_pitch(camera)
    look = camera.new_tensor(EG3D_LOOKAT)
    r = float((split_camera_params(camera)[0][0, :3, 3] - look).norm())
    y = torch.as_tensor(yaws_degrees, dtype=camera.dtype, device=camera.device).reshape(-1)
    c2w = orbit_cam2world(torch.deg2rad(y), pitch.expand_as(y), radius=r, look_at=(0.0, 0.0, 0.0))
    c2w[:, :3, 3] += look
    return camera_params(c2w, normalized_intrinsics(batch=len(y), dtype=y.dtype, device=y.device))


def far_cameras(camera: torch.Tensor, config: SPIConfig) -> torch.Tensor:
    """Cameras of the depth regulariser: the ``far_yaws`` at least ``far_margin`` degrees from
    both the input and the mirrored yaw (``(V, 25)``, possibly empty)."""
    yaw = math.degrees(float(camera_yaw_pitch(camera)[0][0]))
    far = [y for y in config.far_yaws if min(abs(y - yaw), abs(y + yaw)) >= config.far_margin]
    return orbit_like(camera, far) if far else camera[:0]


# ------------------------------------------------------------------ stage 1: latent inversion


@dataclass
class LatentInversion:
    """Result of :func:`invert_latent`: ``ws (1, num_ws, w_dim)`` and the loss history."""

    ws: torch.Tensor
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


def _progress(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, leave=False)


def _photo_and_mirror(
    images: torch.Tensor,
    photo: torch.Tensor,
    cfg: SPIConfig,
    mirror_w: float | None,
    conflict: torch.Tensor | None,
    distance: nn.Module | None,
    hist: dict[str, list[float]],
) -> torch.Tensor:
    """The terms both stages share, on renders ``images (K, 3, R, R)`` whose view 0 is the
    photo's camera and view 1 its mirror: ``L_rec(images[0], photo)`` plus, unless
    ``mirror_w`` is None (no mirror view), ``L_mirror(images[1], photo)`` weighted
    ``cfg.mirror * mirror_w`` (``conflict``: the conflict mask or None). Appends each value to
    ``hist``."""
    rec = reconstruction_loss(images[:1], photo, cfg.perceptual, distance)
    loss = rec
    hist["reconstruction"].append(float(rec.detach()))
    if mirror_w is not None:
        mir = mirror_loss(
            images[1:2], photo, cfg.mirror * mirror_w, conflict, cfg.perceptual, distance
        )
        loss = loss + mir
        hist["mirror"].append(float(mir.detach()))
    return loss


def invert_latent(
    G,
    photo: torch.Tensor,
    camera: torch.Tensor,
    config: SPIConfig | None = None,
    distance: nn.Module | None = None,
    progress: bool = False,
    start: torch.Tensor | None = None,
) -> LatentInversion:
    """Optimise a W or W+ latent so that ``G`` renders ``photo (1, 3, R, R)`` from ``camera
    (1, 25)``, with the mirror term when ``config.symmetry`` (see the module docstring)."""
    cfg = config or SPIConfig()
    t0 = time.perf_counter()
    _check_photo(G, photo, camera)
    w_avg, w_std = mean_latent(G, cfg.w_avg_samples, cfg.seed)
    n_ws = G.num_ws
    if start is not None:
        init = start.detach().clone()
        if cfg.space == "w":
            init = init.mean(1)
    else:
        init = w_avg.clone() if cfg.space == "w" else w_avg[:, None].repeat(1, n_ws, 1)
    w = init.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=cfg.w_lr, betas=(0.9, 0.999))
    mw = float(mirror_weight(camera_yaw_pitch(camera)[0][0], cfg.frontal_degrees, cfg.full_degrees))
    use_mirror = cfg.symmetry and cfg.mirror * mw > 0
    cams = torch.cat([camera, mirror_camera_params(camera)]) if use_mirror else camera
    g = torch.Generator().manual_seed(cfg.seed + 1)
    hist: dict[str, list[float]] = {"reconstruction": [], "mirror": []}
    bar = _progress(cfg.w_steps, f"latent ({cfg.space})", progress)
    for i in range(cfg.w_steps):
        t = i / max(cfg.w_steps, 1)
        for pg in opt.param_groups:
            pg["lr"] = learning_rate_at(t, cfg.w_lr, cfg.lr_rampup, cfg.lr_rampdown)
        sd = latent_noise_strength(t, w_std, cfg.noise_initial, cfg.noise_ramp)
        noise = torch.randn(w.shape, generator=g).to(w) * sd
        wn = w + noise
        ws = wn[:, None].expand(-1, n_ws, -1) if cfg.space == "w" else wn
        out = render_views(G, ws, cams)
        loss = _photo_and_mirror(out["image"], photo, cfg, mw if use_mirror else None, None,
                                 distance, hist)  # fmt: skip
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update(1)
    bar.close()
    ws = w.detach()
    ws = ws[:, None].expand(-1, n_ws, -1).clone() if cfg.space == "w" else ws
    return LatentInversion(ws, hist, time.perf_counter() - t0)


def _check_photo(G, photo: torch.Tensor, camera: torch.Tensor) -> None:
    R = G.config.out_res
    if (
        photo.dim() != 4
        or photo.shape[:2] != (1, 3)
        or photo.shape[-1] != R
        or photo.shape[-2] != R
    ):
        raise InvalidInput(f"photo must be (1, 3, {R}, {R}) in [-1, 1], got {tuple(photo.shape)}")
    if camera.shape != (1, 25):
        raise InvalidInput(
            f"camera must be (1, 25) (geometry.eg3d.camera_params), got {tuple(camera.shape)}"
        )


# ------------------------------------------------------------------ pseudo labels and masks


@dataclass
class WarpLabel:
    """A pseudo-labelled novel view: ``camera (1, 25)``, ``label (1, 3, R, R)``, ``valid
    (1, R, R)`` and, for figures, ``from_input`` / ``from_mirror`` (where each source was
    used)."""

    camera: torch.Tensor
    label: torch.Tensor
    valid: torch.Tensor
    from_input: torch.Tensor
    from_mirror: torch.Tensor


def _source_valid(warp, size, tol, face_mask, fg_target, masks: bool) -> torch.Tensor:
    v = in_bounds_mask(warp.uv, size) & fg_target
    if masks:
        v = v & occlusion_mask(warp.z, warp.source_depth, tol)
        if face_mask is not None:
            v = v & face_region_mask(face_mask, warp.uv)
    return v


def warp_labels(
    photo: torch.Tensor,
    camera: torch.Tensor,
    input_depth: torch.Tensor,
    targets: torch.Tensor,
    target_depth: torch.Tensor,
    target_fg: torch.Tensor,
    config: SPIConfig,
    face_mask: torch.Tensor | None = None,
    mirror_depth: torch.Tensor | None = None,
) -> list[WarpLabel]:
    """Pseudo labels for the views ``targets (V, 25)`` whose depth ``target_depth (V, R, R)``
    and foreground ``target_fg (V, R, R)`` are given: the photo warped from the input camera
    where it is valid, else (with ``config.symmetry``) the flipped photo warped from the
    mirrored camera. ``input_depth (1, R, R)`` is the depth seen from the input camera,
    ``mirror_depth`` from the mirrored one (default: ``input_depth`` flipped); ``face_mask
    (1, R, R)`` the photo's face region."""
    size = tuple(photo.shape[-2:])
    masks = config.conflict_masks
    mirror_cam = mirror_camera_params(camera)
    md = input_depth.flip(-1) if mirror_depth is None else mirror_depth
    fm = None if face_mask is None else face_mask.flip(-1)
    out = []
    for k in range(targets.shape[0]):
        c, d, fg = targets[k : k + 1], target_depth[k : k + 1], target_fg[k : k + 1].bool()
        wi = depth_warp(photo, d, c, camera, input_depth)
        vi = _source_valid(wi, size, config.depth_tol, face_mask, fg, masks)
        label, valid = wi.image, vi
        vm = torch.zeros_like(vi)
        if config.symmetry:
            wm = depth_warp(photo.flip(-1), d, c, mirror_cam, md)
            vm = _source_valid(wm, size, config.depth_tol, fm, fg, masks) & ~vi
            label = torch.where(vi[:, None], wi.image, wm.image)
            valid = vi | vm
        out.append(WarpLabel(c, label.detach(), valid, vi, vm))
    return out


def mirror_conflict(
    photo: torch.Tensor,
    camera: torch.Tensor,
    input_depth: torch.Tensor,
    mirror_depth: torch.Tensor,
    mirror_fg: torch.Tensor,
    config: SPIConfig,
    face_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(1, R, R)`` bool: pixels of the mirrored view where the flipped photo conflicts with
    the photo itself, warped there through ``mirror_depth`` on the foreground ``mirror_fg``
    (occlusion-tested with ``input_depth``)."""
    mirror_cam = mirror_camera_params(camera)
    size = tuple(photo.shape[-2:])
    w = depth_warp(photo, mirror_depth, mirror_cam, camera, input_depth)
    valid = _source_valid(w, size, config.depth_tol, face_mask, mirror_fg.bool(), True)
    return symmetry_conflict_mask(photo.flip(-1), w.image, valid, config.conflict_threshold)


# ------------------------------------------------------------------ stage 2: pivotal tuning


def pivotal_tuning(
    G,
    ws: torch.Tensor,
    photo: torch.Tensor,
    camera: torch.Tensor,
    config: SPIConfig | None = None,
    distance: nn.Module | None = None,
    face_mask: torch.Tensor | None = None,
    oracle: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    progress: bool = False,
) -> tuple[nn.Module, dict[str, list[float]], dict]:
    """Tune a copy of ``G`` around the pivot ``ws`` (see the module docstring).

    ``oracle(cameras (V, 25)) -> (depth (V, R, R), foreground (V, R, R), cameras (V, 25))``,
    if given, supplies ground-truth depth for the warps (the input camera first) and the
    exact cameras it was rendered from (which then replace the warp cameras). Returns
    ``(G_tuned, history, extras)``; ``extras`` holds the warp labels and the conflict mask.
    """
    cfg = config or SPIConfig()
    _check_photo(G, photo, camera)
    mw = float(mirror_weight(camera_yaw_pitch(camera)[0][0], cfg.frontal_degrees, cfg.full_degrees))
    use_mirror = cfg.symmetry and cfg.mirror * mw > 0
    mirror_cam = mirror_camera_params(camera)
    yaw = math.degrees(float(camera_yaw_pitch(camera)[0][0]))
    centres = [yaw, -yaw] if cfg.symmetry else [yaw]
    wyaws = sorted({round(c + o, 3) for c in centres for o in cfg.warp_offsets})
    wcams = orbit_like(camera, wyaws) if cfg.warp > 0 and wyaws else camera[:0]
    fcams = far_cameras(camera, cfg) if cfg.depth > 0 else camera[:0]
    with torch.no_grad():
        piv = render_views(G, ws, torch.cat([camera, mirror_cam, wcams, fcams]))
    nw = wcams.shape[0]
    d_in, d_m = piv["depth"][:1], piv["depth"][1:2]
    thr = cfg.opacity_threshold
    fg_w = piv["opacity"][2 : 2 + nw] > thr
    fg_m = piv["opacity"][1:2] > thr
    d_w = piv["depth"][2 : 2 + nw]
    if oracle is not None:
        d_all, fg_all, c_all = oracle(torch.cat([camera, wcams]))
        d_in, d_w, fg_w = d_all[:1], d_all[1:], fg_all[1:].bool()
        wcams = c_all[1:].to(camera)
        d_m = d_in.flip(-1)
        fg_m = fg_all[:1].bool().flip(-1)
    labels: list[WarpLabel] = []
    if nw:
        labels = warp_labels(photo, camera, d_in, wcams, d_w, fg_w, cfg, face_mask, d_m)
    conflict = None
    if use_mirror and cfg.conflict_masks:
        conflict = mirror_conflict(photo, camera, d_in, d_m, fg_m, cfg, face_mask)
    far_depth, far_op = piv["depth"][2 + nw :], piv["opacity"][2 + nw :]
    Gt = copy.deepcopy(G)
    Gt.requires_grad_(False)
    params = [p for n, p in Gt.named_parameters() if not n.startswith("backbone.mapping.")]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=cfg.pti_lr)
    g = torch.Generator().manual_seed(cfg.seed + 2)
    hist: dict[str, list[float]] = {"reconstruction": [], "mirror": [], "warp": [], "depth": []}
    bar = _progress(cfg.pti_steps, "pivotal tuning", progress)
    ws = ws.detach()
    for _ in range(cfg.pti_steps):
        cams = [camera] + ([mirror_cam] if use_mirror else [])
        lab = None
        if labels:
            lab = labels[int(torch.randint(len(labels), (1,), generator=g))]
            cams.append(lab.camera)
        far = None
        if fcams.shape[0]:
            far = int(torch.randint(fcams.shape[0], (1,), generator=g))
            cams.append(fcams[far : far + 1])
        out = render_views(Gt, ws, torch.cat(cams))
        loss = _photo_and_mirror(out["image"], photo, cfg, mw if use_mirror else None, conflict,
                                 distance, hist)  # fmt: skip
        k = 2 if use_mirror else 1
        if lab is not None:
            wl = cfg.warp * warp_loss(out["image"][k : k + 1], lab.label, lab.valid)
            loss = loss + wl
            hist["warp"].append(float(wl.detach()))
            k += 1
        if far is not None:
            dr = cfg.depth * depth_regularizer(
                out["depth"][k : k + 1], far_depth[far : far + 1], far_op[far : far + 1], thr
            )
            loss = loss + dr
            hist["depth"].append(float(dr.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update(1)
    bar.close()
    Gt.requires_grad_(False).eval()
    return Gt, hist, {"labels": labels, "conflict": conflict, "mirror_weight": mw}


# ------------------------------------------------------------------ the whole method


@dataclass
class SPIResult:
    """What :func:`invert3d` found: the (tuned) generator ``G``, the pivot ``ws``, the photo's
    ``camera``, loss histories, seconds per stage and the warp labels / conflict mask used."""

    G: nn.Module
    ws: torch.Tensor
    camera: torch.Tensor
    config: SPIConfig
    history: dict[str, dict[str, list[float]]]
    timings: dict[str, float]
    extras: dict

    @torch.no_grad()
    def render(self, cameras: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of the inverted face from ``cameras (V, 25)`` (see :func:`render_views`)."""
        return render_views(self.G, self.ws, cameras)

    def render_yaws(self, yaws_degrees, pitch_of_photo: bool = True) -> dict[str, torch.Tensor]:
        """Views at absolute yaws (degrees), at the photo's pitch (or 0)."""
        cam = self.camera if pitch_of_photo else frontal_camera(self.camera)
        return self.render(orbit_like(cam, yaws_degrees))


def invert3d(
    G,
    photo: torch.Tensor,
    camera: torch.Tensor,
    config: SPIConfig | None = None,
    distance: nn.Module | None = None,
    face_mask: torch.Tensor | None = None,
    oracle: Callable | None = None,
    progress: bool = False,
    start: LatentInversion | None = None,
) -> SPIResult:
    """One photo ``(1, 3, R, R)`` in [-1, 1] seen from ``camera (1, 25)`` -> a 3D face:
    :func:`invert_latent`, then (``config.tune``) :func:`pivotal_tuning`. ``start``: reuse a
    latent inversion already run with the same settings (ablations)."""
    cfg = config or SPIConfig()
    lat = start if start is not None else invert_latent(G, photo, camera, cfg, distance, progress)
    timings = {"latent": lat.seconds}
    hist = {"latent": lat.history}
    Gt, extras = G, {}
    if cfg.tune and cfg.pti_steps > 0:
        t0 = time.perf_counter()
        Gt, h, extras = pivotal_tuning(
            G, lat.ws, photo, camera, cfg, distance, face_mask, oracle, progress
        )
        timings["tuning"] = time.perf_counter() - t0
        hist["tuning"] = h
    timings["total"] = sum(timings.values())
    return SPIResult(Gt, lat.ws, camera, cfg, hist, timings, extras)


def variant(config: SPIConfig, **changes) -> SPIConfig:
    """``config`` with ``changes`` (for ablations)."""
    return replace(config, **changes)
