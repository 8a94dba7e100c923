"""GANFit fitting (Gecer et al. 2019), at CPU scale, on top of the Part I fitter.

**Parameters**: ICT identity :math:`p_s` and expression :math:`p_e`, pose and focal
(from the landmark stage), SH light, and the texture GAN's latent :math:`w` (one ``w`` for
every layer; ``w_plus=True`` gives one per layer, W+). The GAN's UV map is sampled per vertex
(:func:`facelab.methods.ganfit.uv.gan_vertex_uvs`, :func:`facelab.render.texture.sample_points`)
and rendered by Part I's image formation (:func:`facelab.fit.render.render_face`, i.e.
:class:`facelab.render.Renderer` with SH shading): no second renderer.

**Energy** (:mod:`facelab.methods.ganfit.losses`): identity of the render and of a second
render :math:`\\hat I_R` with randomised expression, yaw and light, content (dlib-ResNet
feature maps), pixel L1 in the face mask, landmarks (Part I's term with the detector
calibration), priors on shape, expression, latent and light.

**Schedule**: ``"landmarks"`` -- Part I's landmark fit (:func:`facelab.fit.fit_landmarks`:
pose, shape, expression); then Adam stages over offsets ``theta = theta_0 + s z`` (as
Part I's photometric stage): by default a short ``"texture"`` stage (latent and light, shape
fixed: ours, it lets the texture settle before it can pull the shape) and the ``"joint"``
stage (everything). By default (``one_stage=True``) the Adam stages start from the mean
shape and neutral expression: only the pose comes from the landmark fit, whose shape bends to
explain a detector's points (issue 11). ``one_stage=False`` starts them from the landmark
fit's shape and expression (two stages: the ablation "two stages"). The default and the
landmark weight 100 were chosen on the tuning faces only (``benchmarks/tune_ganfit.py``,
``benchmarks/results/tune_ganfit_fast.json``: world seed 5 and the Blender tuning half, 24
faces, detected landmarks): median s2m 1.32 mm against 1.44 mm for two stages at weight 300.

:func:`fit` fits one photo; :func:`fit_multi` several photos of one person (identity and
texture latent shared, pose / expression / light per photo). Both return
:class:`GanFitResult`, a :class:`facelab.fit.FitResult` that also carries the GAN's UV
texture and latent.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...errors import InvalidInput
from ...fit.api import _fit_config, _resolve_model, crop_face, package_result, prepare_photos
from ...fit.landmarks import LandmarkFitConfig, fit_landmarks
from ...fit.optimize import run_stages
from ...fit.photometric import estimate_light, skin_vertex_mask
from ...fit.render import render_face
from ...fit.result import FitResult, face_region
from ...geometry.camera import intrinsics, project
from ...models.morphable import pose_points
from ...models.params import FaceParams
from ...render import linear_to_srgb, srgb_to_linear
from ...render.shading import sh_ambient, sh_basis
from ...render.texture import sample_points
from .losses import (
    blendshape_prior,
    content_loss,
    gaussian_prior,
    identity_loss,
    landmark_term,
    latent_prior,
    pixel_loss,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "GROUPS",
    "GanFitConfig",
    "GanFitResult",
    "GanStage",
    "default_stages",
    "fit",
    "fit_crops",
    "fit_multi",
    "gan_texture",
    "latent_stats",
    "load_components",
    "random_view",
    "start_from_regressor",
]

#: Parameter groups an Adam stage may optimise.
GROUPS = ("rotation", "translation", "identity", "expression", "light", "latent")

#: Loss weights (``GanFitConfig.weights`` overrides by name; 0 switches a term off).
DEFAULT_WEIGHTS = {
    "id": 0.5,  # 1 - cos(F(I), F(I_R))
    "id_random": 0.25,  # the same for the randomised second render
    "content": 0.05,  # dlib-ResNet feature maps
    "pixel": 1.0,  # L1 in the face mask (sRGB)
    "landmark": 100.0,  # Part I's normalised landmark term (300 there; 100 tuned here)
    "shape": 2e-4,  # ||p_s||^2
    "expression": 2e-4,  # ||p_e||^2
    "latent": 0.02,  # Mahalanobis ||w - mean||^2 / D
    "light": 1e-3,  # Part I's SH prior
}

_SCALES = {"rotation": 0.05, "translation": 0.01, "identity": 1.0, "expression": 0.3,
           "light": 0.3, "latent": 1.0}  # fmt: skip


@dataclass
class GanStage:
    """One Adam stage: ``steps`` steps at ``lr`` on ``params`` (a subset of :data:`GROUPS`);
    ``weights`` override the config's for this stage."""

    name: str
    steps: int
    lr: float = 0.03
    params: tuple[str, ...] = GROUPS
    weights: dict[str, float] = field(default_factory=dict)


def default_stages(fast: bool = False) -> list[GanStage]:
    """``texture`` (latent + light, shape fixed) then ``joint`` (everything)."""
    return [
        GanStage("texture", 8 if fast else 25, 0.05, ("latent", "light")),
        GanStage("joint", 32 if fast else 110, 0.03, GROUPS),
    ]


@dataclass
class GanFitConfig:
    """Options of :func:`fit` / :func:`fit_crops`.

    Attributes:
        resolution: side of the face crop the losses see (FAST: 128).
        crop_scale: crop side = ``crop_scale`` x the landmark box's larger side.
        stages: Adam stages after the landmark fit (``None``: :func:`default_stages`).
        one_stage: start the Adam stages from the mean shape, not the landmark fit's
            (default; see the module doc).
        weights: loss weights by name (:data:`DEFAULT_WEIGHTS`).
        w_plus: one latent per generator layer (W+) instead of one ``w``.
        random_yaw: the second render's yaw offset is uniform in +-this (degrees).
        random_expression: its blendshape weights move by up to this.
        seed: seed of the second render's draws.
        fast_start: start the Adam stages from the start regressor's identity and expression
            (Fast-GANFit, :mod:`facelab.methods.ganfit.regressor`) instead of the mean shape
            (``one_stage``) or the landmark fit's (two stages); the pose still comes from
            the landmark fit.
        fast: FAST mode (128 px, short schedule; also ``FACELAB_FAST=1``).
        progress: a tqdm bar.
        on_nan: ``"raise"`` (``FitDiverged``) or ``"stop"`` (keep the last finite state, warn).
    """

    resolution: int = 160
    crop_scale: float = 1.6
    stages: list[GanStage] | None = None
    one_stage: bool = True
    weights: dict[str, float] = field(default_factory=dict)
    w_plus: bool = False
    random_yaw: float = 25.0
    random_expression: float = 0.3
    seed: int = 0
    fast_start: bool = False
    fast: bool = False
    progress: bool = True
    on_nan: str = "raise"

    def __post_init__(self) -> None:
        bad = set(self.weights) - set(DEFAULT_WEIGHTS)
        if bad:
            raise InvalidInput(
                f"unknown GANFit weights {sorted(bad)}; known {sorted(DEFAULT_WEIGHTS)}"
            )
        if self.on_nan not in ("raise", "stop"):
            raise InvalidInput(f"on_nan must be 'raise' or 'stop', got {self.on_nan!r}")
        for s in self.stages or []:
            if set(s.params) - set(GROUPS):
                raise InvalidInput(
                    f"stage {s.name!r}: unknown groups {sorted(set(s.params) - set(GROUPS))}"
                )

    def schedule(self) -> list[GanStage]:
        return self.stages if self.stages is not None else default_stages(self.fast)

    def weight(self, name: str, stage: GanStage | None = None) -> float:
        if stage is not None and name in stage.weights:
            return float(stage.weights[name])
        return float(self.weights.get(name, DEFAULT_WEIGHTS[name]))


_COMPONENTS: dict[str, Any] = {}


def load_components(generator=None, encoder=None):
    """``(G, encoder)``: the shipped texture GAN and the dlib identity network (cached)."""
    if generator is None:
        if "G" not in _COMPONENTS:
            from .texture_gan import load_texture_gan

            _COMPONENTS["G"] = load_texture_gan()[0]
        generator = _COMPONENTS["G"]
    if encoder is None:
        if "enc" not in _COMPONENTS:
            from ...vision.identity import DlibIdentity

            _COMPONENTS["enc"] = DlibIdentity().eval()
        encoder = _COMPONENTS["enc"]
    return generator, encoder


def start_from_regressor(
    params: FaceParams,
    images: torch.Tensor,
    landmarks: torch.Tensor,
    shared_identity: bool = False,
    regressor=None,
) -> FaceParams:
    """``params`` (the landmark fit's) with identity and expression replaced by the start
    regressor's predictions for ``images (B, 3, H, W)`` at ``landmarks (B, 68, 2)``
    (the detector's points); ``shared_identity`` averages the identity over the photos.
    ``regressor``: a :class:`~facelab.methods.ganfit.regressor.StartRegressor` (default: the
    shipped one, cached)."""
    from .regressor import load_start_regressor, predict_start

    if regressor is None:
        if "start" not in _COMPONENTS:
            _COMPONENTS["start"] = load_start_regressor()[0]
        regressor = _COMPONENTS["start"]
    ident, expr = predict_start(regressor, images, landmarks, params.identity.shape[1])
    if expr.shape[1] != params.expression.shape[1]:
        raise InvalidInput(
            f"the start regressor predicts {expr.shape[1]} expression weights, the model has "
            f"{params.expression.shape[1]}"
        )
    if shared_identity:
        ident = ident.mean(0, keepdim=True).expand_as(params.identity)
    out = params.clone()
    out.identity = ident.to(params.identity).clone()
    out.expression = expr.to(params.expression).clone()
    return out


@torch.no_grad()
def latent_stats(G, n: int = 2000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` ``(w_dim,)`` of the mapping network's ``w`` over ``n`` seeded ``z``."""
    key = ("stats", id(G), n, seed)
    if key not in _COMPONENTS:
        g = torch.Generator().manual_seed(seed)
        dev = G.const.device
        z = torch.randn(n, G.config.z_dim, generator=g).to(dev)
        w = G.mapping(z)
        _COMPONENTS[key] = (w.mean(0), w.std(0).clamp_min(1e-4))
    return _COMPONENTS[key]


def gan_texture(G, w: torch.Tensor) -> torch.Tensor:
    """sRGB UV maps ``(B, 3, R, R)`` in [0, 1] from ``w (B, w_dim)`` or W+ ``(B, L, w_dim)``
    (constant noise: the same latent always gives the same texture)."""
    ws = G.mix_ws(w) if w.dim() == 2 else w
    return ((G.synthesis(ws, noise_mode="const") + 1.0) / 2.0).clamp(0.0, 1.0)


def _yaw_matrix(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(c), torch.zeros_like(c)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(-1, 3, 3)


def random_view(
    expression: torch.Tensor,
    light: torch.Tensor,
    g: torch.Generator,
    max_yaw_deg: float = 25.0,
    expression_step: float = 0.3,
    blendshapes: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The second render's draws: ``(yaw rotation (B, 3, 3) in model space, expression,
    light)``. Yaw uniform in +-``max_yaw_deg``; each blendshape moves by ``U(0, step)`` with
    probability 0.1 (kept in [0, 1]); the light keeps its ambient term and gets a new random
    direction (first band) of the same strength."""
    B = expression.shape[0]
    dt, dev = light.dtype, light.device
    yaw = (torch.rand(B, generator=g, dtype=torch.float64) * 2 - 1) * math.radians(max_yaw_deg)
    Ry = _yaw_matrix(yaw.to(dev, dt))
    pick = (torch.rand(expression.shape, generator=g, dtype=torch.float64) < 0.1).to(dev, dt)
    step = torch.rand(expression.shape, generator=g, dtype=torch.float64).to(dev, dt)
    e = expression + expression_step * pick * step
    if blendshapes:
        e = e.clamp(0.0, 1.0)
    d = torch.randn(B, 3, generator=g, dtype=torch.float64).to(dev, dt)
    d = d / d.norm(dim=-1, keepdim=True)
    d[:, 2] = -d[:, 2].abs()  # light from the camera's side
    amb = light[:, :1]
    strength = light[:, 1:4].norm(dim=1, keepdim=True).clamp_min(0.2 * amb.abs())
    band1 = sh_basis(d, lambertian=False)[:, 1:4, None] / 0.4886 * strength
    new = torch.cat([amb, band1, torch.zeros_like(light[:, 4:])], 1)
    return Ry, e, new


@dataclass
class GanFitResult(FitResult):
    """A :class:`~facelab.fit.FitResult` plus GANFit's texture.

    Attributes:
        gan_texture: ``(3, R, R)`` sRGB UV map the GAN produced (the GAN's own UV chart, the
            built-in head's); ``latent``: the fitted ``w`` ``(w_dim,)`` or W+ ``(L, w_dim)``.
    """

    gan_texture: torch.Tensor | None = None
    latent: torch.Tensor | None = None

    def save(self, out_dir: str | Path, glb: bool = False, report: bool = True) -> dict[str, Path]:
        """:meth:`FitResult.save` plus ``gan_texture.png`` (and the latent in
        ``params.json`` under ``"gan_latent"``)."""
        import json

        from ...vision import save_image

        paths = super().save(out_dir, glb=glb, report=report)
        out = Path(out_dir)
        if self.gan_texture is not None:
            p = out / "gan_texture.png"
            save_image(self.gan_texture.clamp(0, 1), p)
            paths["gan_texture"] = p
        if self.latent is not None:
            pj = paths["params"]
            d = json.loads(pj.read_text())
            d["method"] = "ganfit"
            d["gan_latent"] = self.latent.tolist()
            pj.write_text(json.dumps(d, indent=2, sort_keys=True))
        return paths


@dataclass
class CropFit:
    """What :func:`fit_crops` returns (crop pixel frame)."""

    params: FaceParams
    latent: torch.Tensor  # (1|B, D) or (1|B, L, D)
    texture: torch.Tensor  # (1|B, 3, R, R) sRGB
    vertex_albedo: torch.Tensor  # (B, V, 3) linear
    history: list[dict] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def fit_crops(
    model,
    crops: torch.Tensor,
    landmarks: torch.Tensor,
    init: FaceParams,
    K: torch.Tensor,
    landmark_vertices: torch.Tensor,
    config: GanFitConfig | None = None,
    landmark_weights: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    shared_identity: bool = False,
    generator=None,
    encoder=None,
    id_landmarks: torch.Tensor | None = None,
) -> CropFit:
    """The Adam stages of GANFit on face crops.

    Args:
        crops: ``(B, 3, R, R)`` sRGB photos in [0, 1]; landmarks ``(B, 68, 2)`` crop pixels
            (calibrated targets); init: the landmark fit's :class:`FaceParams`;
            K ``(B, 3, 3)`` crop intrinsics; landmark_vertices ``(B, 68)``.
        landmark_weights: ``(B, 68)`` or None; valid: ``(B, R, R)`` bool (False off-photo).
        shared_identity: one identity and one texture latent for all ``B`` crops.
        generator, encoder: override the shipped GAN / dlib network.
        id_landmarks: ``(B, 68, 2)`` landmarks for the identity network's chip (default
            ``landmarks``; the detector's raw points).
    """
    cfg = config or GanFitConfig()
    G, enc = load_components(generator, encoder)
    dev, dt = model.device, model.dtype
    B, _, H, W = crops.shape
    photo = crops.to(dev, dt)
    photo_hwc = photo.permute(0, 2, 3, 1)
    lm = landmarks.to(dev, dt)
    lm_ids = landmark_vertices.to(dev)
    blend = model.expression_kind == "blendshapes"
    vmask = skin_vertex_mask(model)
    region = face_region(model)
    on_face = (
        region.to(dev)[model.faces].all(-1)
        if region is not None
        else torch.ones(model.faces.shape[0], dtype=torch.bool, device=dev)
    )
    from .uv import gan_vertex_uvs

    guv = gan_vertex_uvs(model)
    Gd = next(G.parameters()).dtype
    mean_w, std_w = latent_stats(G)
    # identity network targets (photo), computed once
    with torch.no_grad():
        chip = enc.align(
            photo.float(), (lm if id_landmarks is None else id_landmarks.to(dev)).float()
        )
        M = chip.matrix
        tfeat = enc.crop_features(chip.image)
    # base values and offsets
    p0 = init.detach().to(dev, dt)
    nb = 1 if shared_identity else B
    depth0 = float(p0.translation[:, 2].abs().mean().clamp_min(1e-6))
    L = G.num_ws
    w0 = mean_w[None].expand(nb, -1)
    if cfg.w_plus:
        w0 = w0[:, None].expand(-1, L, -1)
    base = {
        "rotation": p0.rotation.clone(),
        "translation": p0.translation.clone(),
        "identity": (p0.identity[:1] if shared_identity else p0.identity).clone(),
        "expression": p0.expression.clone(),
        "latent": w0.clone().to(dt),
    }
    if cfg.one_stage and not cfg.fast_start:  # fast_start: init carries the regressor's
        base["identity"] = torch.zeros_like(base["identity"])
        base["expression"] = torch.zeros_like(base["expression"])

    def shape_params(values) -> FaceParams:
        ident = values["identity"].expand(B, -1) if shared_identity else values["identity"]
        return FaceParams(identity=ident, expression=values["expression"], rotation=values["rotation"],
                          translation=values["translation"])  # fmt: skip

    def vertex_albedo(latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tex = gan_texture(G, latent.to(Gd))
        alb = srgb_to_linear(sample_points(tex.to(dt), guv))  # (nb, V, 3)
        return tex, alb.expand(B, -1, -1) if shared_identity else alb

    with torch.no_grad():
        _, alb0 = vertex_albedo(base["latent"])
        _, light0 = estimate_light(model, shape_params(base), K.to(dev, dt), srgb_to_linear(photo_hwc),
                                   vmask, albedo=alb0)  # fmt: skip
    if not bool(torch.isfinite(light0).all()):
        light0 = sh_ambient(1.0, B, 3, dtype=dt, device=dev)
    base["light"] = light0
    scale = {k: _SCALES[k] * (depth0 if k == "translation" else 1.0) for k in GROUPS}
    z = {k: torch.zeros_like(v, requires_grad=True) for k, v in base.items()}
    scale_latent = std_w.to(dt)  # the latent moves in units of its own spread

    def value(name: str) -> torch.Tensor:
        if name == "latent":
            return base[name] + scale_latent * z[name]
        return base[name] + scale[name] * z[name]

    g = torch.Generator().manual_seed(int(cfg.seed))
    erode = max(1, round(max(H, W) / 128))

    def losses(stage: GanStage) -> dict[str, torch.Tensor]:
        vals = {k: value(k) for k in base}
        fp = shape_params(vals)
        verts = model.forward(fp.identity, fp.expression)
        vc = pose_points(verts, fp.rotation, fp.translation)
        tex, alb = vertex_albedo(vals["latent"])
        light = vals["light"]
        wt = {k: cfg.weight(k, stage) for k in DEFAULT_WEIGHTS}
        out: dict[str, torch.Tensor] = {}
        r = render_face(vc, model.faces, alb, light, K, (H, W), vmask, erode=erode)
        srgb = linear_to_srgb(r.image.clamp(0.0, 1.0))
        m = r.mask if valid is None else r.mask & valid
        if wt["pixel"] > 0:
            out["pixel"] = wt["pixel"] * pixel_loss(srgb, photo_hwc, m)
        if wt["id"] > 0 or wt["content"] > 0:
            p2f = r.fragments.pix_to_face
            cover = (p2f >= 0) & on_face[p2f.clamp_min(0)]
            comp = torch.where(cover[..., None], srgb, photo_hwc).permute(0, 3, 1, 2)
            from ...vision.align import warp_to_crop

            feats = enc.crop_features(
                warp_to_crop(comp.float(), M.to(torch.float32), enc.input_size)
            )
            if wt["id"] > 0:
                out["id"] = wt["id"] * identity_loss(feats["embedding"], tfeat["embedding"])
            if wt["content"] > 0:
                out["content"] = wt["content"] * content_loss(feats, tfeat)
        if wt["id_random"] > 0:
            Ry, e2, l2 = random_view(vals["expression"].detach(), light.detach(), g, cfg.random_yaw,
                                     cfg.random_expression, blend)  # fmt: skip
            v2 = model.forward(fp.identity, e2) @ Ry.transpose(1, 2)
            vc2 = pose_points(v2, fp.rotation, fp.translation)
            r2 = render_face(vc2, model.faces, alb, l2, K, (H, W))
            p2 = r2.fragments.pix_to_face
            cov2 = (p2 >= 0) & on_face[p2.clamp_min(0)]
            grey = photo_hwc.mean((1, 2), keepdim=True).expand_as(r2.image)
            img2 = torch.where(cov2[..., None], linear_to_srgb(r2.image.clamp(0, 1)), grey)
            lm2 = project(torch.gather(vc2, 1, lm_ids[..., None].expand(-1, -1, 3)), K).detach()
            e_r = enc.embed(img2.permute(0, 3, 1, 2).float(), lm2.float())
            out["id_random"] = wt["id_random"] * identity_loss(e_r, tfeat["embedding"])
        lmk = torch.gather(vc, 1, lm_ids[..., None].expand(-1, -1, 3))
        out["landmark"] = wt["landmark"] * landmark_term(project(lmk, K), lm, landmark_weights)
        out["shape"] = wt["shape"] * gaussian_prior(vals["identity"])
        out["expression"] = wt["expression"] * (
            blendshape_prior(vals["expression"]) if blend else gaussian_prior(vals["expression"])
        )
        out["latent"] = wt["latent"] * latent_prior(vals["latent"], mean_w, std_w)
        from ...fit.losses import sh_prior

        out["light"] = wt["light"] * sh_prior(light)
        return out

    def project_constraints() -> None:
        if blend:
            with torch.no_grad():
                e = value("expression").clamp(0, 1)
                z["expression"].copy_((e - base["expression"]) / scale["expression"])

    run = run_stages(
        z, cfg.schedule(), losses, on_nan=cfg.on_nan, project=project_constraints,
        label="GANFit", progress=cfg.progress,
    )  # fmt: skip
    res = CropFit(
        params=init, latent=base["latent"], texture=torch.empty(0), vertex_albedo=torch.empty(0),
        history=run.history, stage_seconds=run.stage_seconds, warnings=run.warnings,
    )  # fmt: skip
    with torch.no_grad():
        vals = {k: value(k).detach() for k in base}
        fp = shape_params(vals)
        tex, alb = vertex_albedo(vals["latent"])
        res.params = FaceParams(identity=fp.identity.clone(), expression=fp.expression.clone(),
                                rotation=fp.rotation.clone(), translation=fp.translation.clone(),
                                light=vals["light"].clone(), focal=K[:, 0, 0].clone())  # fmt: skip
        res.latent, res.texture, res.vertex_albedo = vals["latent"], tex, alb.clamp(0, 1)
    return res


def fit_multi(
    photos: list[Any],
    model: Any = "ict-face",
    landmarks: list[torch.Tensor] | None = None,
    config: GanFitConfig | None = None,
    landmark_config: LandmarkFitConfig | None = None,
    face: str | int = "largest",
    detector: Any = "dlib",
    fast: bool | None = None,
    progress: bool | None = None,
    calibration: Any = "auto",
    shared_identity: bool = True,
    min_face_px: float = 40,
    generator=None,
    encoder=None,
    start_regressor=None,
) -> list[GanFitResult]:
    """GANFit on several photos: with ``shared_identity`` one identity and one texture latent
    (one person), else each photo on its own. Arguments as :func:`fit` (lists); with
    ``config.fast_start`` and ``shared_identity`` the regressor's identities are averaged."""
    t_all = time.perf_counter()
    mdl = _resolve_model(model)
    cfg = _fit_config(config, fast, progress, GanFitConfig)
    preps = prepare_photos(photos, mdl, landmarks, face, detector, min_face_px, calibration)
    sizes = {tuple(p.image.shape[-2:]) for p in preps}
    if len(sizes) != 1:
        raise InvalidInput(f"fit_multi needs photos of one size, got {sorted(sizes)}")
    (H, W), R = sizes.pop(), cfg.resolution
    targets = torch.stack([p.target for p in preps])
    wts = None if preps[0].weights is None else torch.stack([p.weights for p in preps])
    t0 = time.perf_counter()
    lf = fit_landmarks(
        mdl, targets, (H, W), preps[0].landmark_config(landmark_config), visible=wts,
        shared_identity=shared_identity,
    )  # fmt: skip
    t_lm = time.perf_counter() - t0
    init, t_start = lf.params, 0.0
    if cfg.fast_start:
        t0 = time.perf_counter()
        init = start_from_regressor(
            lf.params, torch.cat([p.image for p in preps]).to(mdl.dtype),
            torch.stack([p.landmarks for p in preps]), shared_identity, start_regressor,
        )  # fmt: skip
        t_start = time.perf_counter() - t0
    f = lf.params.focal
    K_full = intrinsics(f, f, torch.full_like(f, W / 2.0), torch.full_like(f, H / 2.0))
    crops = [
        crop_face(p.image.to(mdl.dtype), p.landmarks, K_full[b], R, cfg.crop_scale)
        for b, p in enumerate(preps)
    ]
    lmc = torch.stack([c.to_crop(p.target) for c, p in zip(crops, preps)])
    lmr = torch.stack([c.to_crop(p.landmarks) for c, p in zip(crops, preps)])
    cf = fit_crops(mdl, torch.cat([c.image for c in crops]), lmc, init,
                   torch.cat([c.K for c in crops]), lf.landmark_vertices, cfg, wts,
                   torch.cat([c.valid for c in crops]), shared_identity, generator, encoder,
                   id_landmarks=lmr)  # fmt: skip
    results = []
    for b, p in enumerate(preps):
        params = FaceParams(identity=cf.params.identity[b : b + 1], expression=cf.params.expression[b : b + 1],
                            rotation=cf.params.rotation[b : b + 1], translation=cf.params.translation[b : b + 1],
                            light=cf.params.light[b : b + 1], focal=lf.params.focal[b : b + 1])  # fmt: skip
        history: dict[str, list[float]] = {"landmarks": list(lf.history)}
        for rec in cf.history:
            history.setdefault(str(rec["stage"]), []).append(float(rec["loss"]))
        timings = {"detect": p.detect_seconds, "landmarks": t_lm, "start": t_start, **{f"stage_{k}": v for k, v in cf.stage_seconds.items()},
                   "ganfit": sum(cf.stage_seconds.values())}  # fmt: skip
        kb = 0 if shared_identity else b
        res = package_result(mdl, p.image, p.landmarks, params, K_full[b], lf.landmark_vertices[b],
                             cf.vertex_albedo[b], history, timings, list(cf.warnings), p.source)  # fmt: skip
        res.timings["total"] = time.perf_counter() - t_all
        out = GanFitResult(**{k: getattr(res, k) for k in res.__dataclass_fields__})
        out.gan_texture, out.latent = (
            cf.texture[kb].detach().float(),
            cf.latent[kb].detach().float(),
        )
        results.append(out)
    return results


def fit(
    photo: Any,
    model: Any = "ict-face",
    landmarks: torch.Tensor | None = None,
    config: GanFitConfig | None = None,
    landmark_config: LandmarkFitConfig | None = None,
    face: str | int = "largest",
    detector: Any = "dlib",
    fast: bool | None = None,
    progress: bool | None = None,
    calibration: Any = "auto",
    min_face_px: float = 40,
    generator=None,
    encoder=None,
    start_regressor=None,
) -> GanFitResult:
    """GANFit on one photo: detect (or take ``landmarks``), landmark fit, GANFit stages,
    package a :class:`GanFitResult` over the full photo.

    Arguments as :func:`facelab.fit.fit` (``config`` is a :class:`GanFitConfig`);
    ``generator`` / ``encoder`` / ``start_regressor`` override the shipped texture GAN, dlib
    network and start regressor (used with ``config.fast_start``).
    Raises what :func:`facelab.fit.fit` raises (NoFaceFound, InvalidInput, FitDiverged).
    """
    return fit_multi([photo], model, None if landmarks is None else [landmarks], config,
                     landmark_config, face, detector, fast, progress, calibration, False,
                     min_face_px, generator, encoder, start_regressor)[0]  # fmt: skip
