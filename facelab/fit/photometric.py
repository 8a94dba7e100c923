"""Stage 2 of fitting: analysis by synthesis with the differentiable renderer.

Starting from the landmark fit, minimise

.. math::
    E = w_{ph} E_{photo} + w_{lm} E_{lm} + w_{id} \\lVert\\alpha\\rVert^2
        + w_{exp} \\lVert\\beta\\rVert^2 + w_{alb} E_{albedo} + w_{sh} E_{light}

over pose, identity, expression, albedo, SH light (and optionally the focal length):

* :math:`E_{photo}`: Charbonnier distance between the photo and the render over the rendered
  skin pixels (:func:`facelab.fit.losses.photometric_loss`);
* :math:`E_{lm}`: the landmark term of stage 1 (keeps the silhouette and the jaw in place);
* priors: standard-normal identity (and PCA expression / albedo) coefficients, blendshape
  weights projected to [0, 1] after every step, SH light close to white ambient,
  per-vertex albedo offsets small, smooth and left/right symmetric.

The optimisation runs in **stages** (:class:`Stage`): first pose, light and colour with the
shape fixed, then everything. Each parameter group is optimised as an offset ``z`` with a
group scale, ``theta = theta_0 + s z``, so one learning rate fits all groups and L-BFGS sees a
well-scaled problem. ``optimizer="adam"`` (default) or ``"lbfgs"``.

**NaN guard**: after every step the loss and the parameters are checked; on a non-finite
value the last finite state is restored and :class:`~facelab.errors.FitDiverged` is raised
with ``.last_good`` (``on_nan="raise"``), or the stage stops and the result carries a warning
(``on_nan="stop"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..color import linear_to_srgb, srgb_to_linear  # the one sRGB pair (re-exported)
from ..errors import InvalidInput
from ..geometry.camera import intrinsics, project
from ..models.morphable import pose_points
from ..models.params import FaceParams
from ..render.shading import sh_ambient
from .calibration import LandmarkEmbedding
from .losses import gaussian_prior, landmark_loss, photometric_loss, sh_prior
from .optimize import run_stages
from .render import render_face

PARAM_GROUPS = (
    "rotation",
    "translation",
    "identity",
    "expression",
    "albedo",
    "albedo_detail",
    "light",
    "focal",
)


@dataclass
class Stage:
    """One stage of the schedule: ``steps`` optimiser steps on the groups in ``params``.

    ``weights`` override ``FitConfig.weights`` for this stage (keys as there).
    """

    name: str
    steps: int
    lr: float = 0.03
    params: tuple[str, ...] = ("rotation", "translation", "light", "albedo")
    weights: dict[str, float] = field(default_factory=dict)


def default_stages(fast: bool = False, fit_focal: bool = False) -> list[Stage]:
    """The default schedule: pose + light + colour, then everything, then albedo detail."""
    k = 0.4 if fast else 1.0
    shape = ("rotation", "translation", "identity", "expression", "light", "albedo")
    if fit_focal:
        shape = shape + ("focal",)
    return [
        Stage(
            "pose_light", max(1, int(30 * k)), 0.05, ("rotation", "translation", "light", "albedo")
        ),
        Stage("shape", max(1, int(90 * k)), 0.03, shape),
        Stage("detail", 0 if fast else 30, 0.02, shape + ("albedo_detail",)),
    ]


@dataclass
class FitConfig:
    """Options of the photometric fit (:func:`fit_photometric`) and of :func:`facelab.fit.fit`.

    Attributes:
        resolution: side of the square face crop the photometric stage works on (pixels).
        crop_scale: crop side = ``crop_scale`` x the landmark box's larger side.
        stages: the schedule; ``None`` = :func:`default_stages` (``fast`` and ``fit_focal``).
        optimizer: ``"adam"`` or ``"lbfgs"``.
        weights: loss weights: ``photo``, ``landmark``, ``identity``, ``expression``,
            ``albedo`` (PCA albedo prior), ``albedo_detail`` (per-vertex offsets),
            ``albedo_smooth``, ``albedo_sym``, ``light``.
        scales: per-group step scales (see the module docstring); translation is relative to
            the initial depth.
        albedo: ``"pca"`` (the model's albedo basis, else the procedural albedo PCA sampled at
            the vertices, :mod:`facelab.fit.albedo`), ``"model"`` (require the model's own) or
            ``"constant"`` (one colour); per-vertex offsets are added in ``albedo_detail``
            stages.
        albedo_components: number of albedo components used.
        robust: photometric penalty (``"charbonnier"``, ``"l21"``, ``"l2"``).
        erode: pixels dropped along the silhouette (``None``: 1 per 128 px of crop).
        linearize: treat the photo as sRGB and compare in linear light.
        fit_focal: optimise the focal length (log-parametrised).
        on_nan: ``"raise"`` (:class:`FitDiverged`) or ``"stop"`` (warning in the result).
        fast: shorter schedule and a 128-px crop (also ``FACELAB_FAST=1``).
        progress: show a tqdm progress bar.
    """

    resolution: int = 192
    crop_scale: float = 1.6
    stages: list[Stage] | None = None
    optimizer: str = "adam"
    weights: dict[str, float] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)
    albedo: str = "pca"
    albedo_components: int = 20
    robust: str = "charbonnier"
    erode: int | None = None
    linearize: bool = True
    fit_focal: bool = False
    on_nan: str = "raise"
    fast: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "lbfgs"):
            raise InvalidInput(f"optimizer must be 'adam' or 'lbfgs', got {self.optimizer!r}")
        if self.albedo not in ("pca", "model", "constant"):
            raise InvalidInput(f"albedo must be 'pca', 'model' or 'constant', got {self.albedo!r}")
        if self.on_nan not in ("raise", "stop"):
            raise InvalidInput(f"on_nan must be 'raise' or 'stop', got {self.on_nan!r}")
        unknown = set(self.weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise InvalidInput(
                f"unknown loss weights {sorted(unknown)}; known {sorted(DEFAULT_WEIGHTS)}"
            )
        unknown = set(self.scales) - set(PARAM_GROUPS)
        if unknown:
            raise InvalidInput(f"unknown parameter groups {sorted(unknown)}; known {PARAM_GROUPS}")

    def schedule(self) -> list[Stage]:
        """The stages to run (explicit ``stages`` or the defaults)."""
        if self.stages is not None:
            for s in self.stages:
                bad = set(s.params) - set(PARAM_GROUPS)
                if bad:
                    raise InvalidInput(f"stage {s.name!r}: unknown parameter groups {sorted(bad)}")
            return self.stages
        return default_stages(self.fast, self.fit_focal)

    def weight(self, name: str, stage: Stage | None = None) -> float:
        if stage is not None and name in stage.weights:
            return float(stage.weights[name])
        return float(self.weights.get(name, DEFAULT_WEIGHTS[name]))

    def scale(self, name: str) -> float:
        return float(self.scales.get(name, DEFAULT_SCALES[name]))


DEFAULT_WEIGHTS = {
    "photo": 1.0,
    "landmark": 300.0,
    "identity": 2e-4,
    "expression": 2e-4,
    "albedo": 1e-3,
    "albedo_detail": 0.3,
    "albedo_smooth": 30.0,
    "albedo_sym": 3.0,
    "light": 1e-3,
}

DEFAULT_SCALES = {
    "rotation": 0.05,
    "translation": 0.01,  # x initial depth
    "identity": 1.0,
    "expression": 0.3,
    "albedo": 1.0,
    "albedo_detail": 0.1,
    "light": 0.3,
    "focal": 0.1,
}


@dataclass
class PhotometricFit:
    """Result of :func:`fit_photometric` (crop coordinates).

    Attributes:
        params: fitted :class:`FaceParams` (``light`` and ``focal`` filled; ``albedo`` when the
            model has an albedo basis).
        vertex_albedo: ``(B, V, 3)`` the per-vertex albedo used (linear RGB).
        K: ``(B, 3, 3)`` the intrinsics in crop pixels (with the fitted focal).
        history: one dict per step: ``stage``, ``step``, ``loss`` and each term.
        stage_seconds: wall time per stage.
        warnings: human-readable issues (a stopped stage ...).
    """

    params: FaceParams
    vertex_albedo: torch.Tensor
    K: torch.Tensor
    history: list[dict[str, float | str | int]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def skin_vertex_mask(model) -> torch.Tensor:
    """``(V,)`` bool: vertices whose pixels the photometric term compares.

    The ``"face"`` region when the model has one (else all), minus ``"eyes"``, ``"mouth"`` and
    ``"mouth_interior"`` regions when present.
    """
    mask = model.regions.get("face")
    mask = (
        torch.ones(model.n_vertices, dtype=torch.bool, device=model.device)
        if mask is None
        else mask.clone()
    )
    for k in ("eyes", "mouth", "mouth_interior"):
        if k in model.regions:
            mask &= ~model.regions[k]
    if not bool(mask.any()):
        mask = torch.ones_like(mask)
    return mask


def _edges(faces: torch.Tensor) -> torch.Tensor:
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = torch.sort(e, dim=1).values
    return torch.unique(e, dim=0)


def fit_photometric(
    model,
    image: torch.Tensor,
    landmarks2d: torch.Tensor,
    init: FaceParams,
    K: torch.Tensor,
    landmark_vertices: torch.Tensor | None = None,
    config: FitConfig | None = None,
    landmark_weights: torch.Tensor | None = None,
    shared_identity: bool = False,
    target_valid: torch.Tensor | None = None,
    landmark_points: LandmarkEmbedding | None = None,
) -> PhotometricFit:
    """Photometric refinement of ``init`` against ``image``.

    Args:
        model: :class:`~facelab.models.MorphableModel`.
        image: ``(B, 3, H, W)`` float RGB in [0, 1] (sRGB-encoded photos; see ``linearize``).
        landmarks2d: ``(B, 68, 2)`` detected landmarks in the same pixel frame.
        init: starting :class:`FaceParams` (e.g. from :func:`facelab.fit.fit_landmarks`).
        K: ``(B, 3, 3)`` intrinsics of ``image``'s pixel frame.
        landmark_vertices: ``(B, 68)`` model vertices of the landmarks (sliding jaw from stage
            1); default ``model.landmarks``.
        config: :class:`FitConfig`.
        landmark_weights: optional ``(B, 68)``.
        shared_identity: one identity for all ``B`` images.
        target_valid: optional ``(B, H, W)`` bool, False where the photo has no data (a crop
            beyond the photo's border); those pixels are not compared.
        landmark_points: the landmarks as surface points, a ``(B, 68, 3)`` or ``(68, 3)``
            :class:`~facelab.fit.calibration.LandmarkEmbedding` (stage 1's
            ``LandmarkFit.landmark_points``, a detector's embedding); replaces
            ``landmark_vertices`` when given.

    Returns:
        :class:`PhotometricFit`.

    Raises:
        FitDiverged: a non-finite loss or parameter (``on_nan="raise"``); ``.last_good`` holds
            the last finite :class:`FaceParams`.
    """
    cfg = config or FitConfig()
    if image.dim() != 4 or image.shape[1] != 3:
        raise InvalidInput(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
    B, _, H, W = image.shape
    dev = model.device
    dt = model.dtype
    target = image.to(dev, dt).permute(0, 2, 3, 1)
    if cfg.linearize:
        target = srgb_to_linear(target)
    x2d = landmarks2d.to(dev, dt)
    if target_valid is not None:
        target_valid = target_valid.to(dev).bool()
    lm_ids = (
        model.landmarks[None].expand(B, -1)
        if landmark_vertices is None
        else landmark_vertices.to(dev)
    )
    faces = model.faces
    vmask = skin_vertex_mask(model)
    edges = _edges(faces)
    sym = model.symmetry
    blend = model.expression_kind == "blendshapes"
    alb_mean, alb_basis = _albedo_model(model, cfg)
    has_alb = alb_basis is not None

    # ---- base values -------------------------------------------------------------------------
    p0 = init.detach().to(dev, dt)
    f0 = K[:, 0, 0].to(dev, dt).clone()
    aspect = (K[:, 1, 1] / K[:, 0, 0]).to(dev, dt)  # fy / fx, kept when the focal is fitted
    base = {
        "rotation": p0.rotation.clone(),
        "translation": p0.translation.clone(),
        "identity": (p0.identity[:1] if shared_identity else p0.identity).clone(),
        "expression": p0.expression.clone(),
        "focal": torch.zeros(B, dtype=dt, device=dev),
        "albedo_detail": torch.zeros(
            1 if shared_identity else B, model.n_vertices, 3, dtype=dt, device=dev
        ),
    }
    depth0 = p0.translation[:, 2].abs().mean().clamp_min(1e-6)
    if p0.light is not None and bool(p0.light.abs().sum() > 0):
        base["light"] = p0.light.clone()
    else:
        base["light"] = sh_ambient(1.0, B, 3, dtype=dt, device=dev)
    # Albedo: the model's basis, or a colour + per-vertex offsets.
    given_light = p0.light is not None and bool(p0.light.abs().sum() > 0)
    if has_alb:
        ka = alb_basis.shape[0]
        a0 = p0.albedo if p0.albedo is not None and p0.albedo.shape[1] == ka else None
        if a0 is None:
            a0 = torch.zeros(B, ka, dtype=dt, device=dev)
        base["albedo"] = (a0[:1] if shared_identity else a0).clone()
        if not given_light:
            alb0 = (alb_mean + torch.einsum("bk,kvc->bvc", a0, alb_basis)).clamp(0.02, 1)
            _, base["light"] = estimate_light(model, p0, K.to(dev, dt), target, vmask, albedo=alb0)
    else:
        colour, light = estimate_light(model, p0, K.to(dev, dt), target, vmask)
        base["albedo"] = colour
        if not given_light:
            base["light"] = light
        if shared_identity:
            base["albedo"] = base["albedo"].mean(0, keepdim=True)
    z = {k: torch.zeros_like(v, requires_grad=True) for k, v in base.items()}
    erode = max(1, round(max(H, W) / 128)) if cfg.erode is None else cfg.erode

    def scale(name: str) -> float:
        s = cfg.scale(name)
        return s * float(depth0) if name == "translation" else s

    def value(name: str) -> torch.Tensor:
        return base[name] + scale(name) * z[name]

    def current_params() -> FaceParams:
        with torch.no_grad():
            ident = value("identity")
            alb = value("albedo") if has_alb else None
            if shared_identity:
                ident = ident.expand(B, -1)
                alb = None if alb is None else alb.expand(B, -1)
            focal = f0 * torch.exp(value("focal"))
            return FaceParams(
                identity=ident.clone(),
                expression=value("expression").clone(),
                rotation=value("rotation").clone(),
                translation=value("translation").clone(),
                albedo=None if alb is None else alb.clone(),
                light=value("light").clone(),
                focal=focal.clone(),
            )

    def vertex_albedo() -> torch.Tensor:
        if has_alb:
            a = value("albedo")
            a = a.expand(B, -1) if shared_identity else a
            alb = alb_mean + torch.einsum("bk,kvc->bvc", a, alb_basis)
        else:
            alb = value("albedo")[:, None, :].expand(-1, model.n_vertices, -1)
            if shared_identity:
                alb = alb.expand(B, -1, -1)
        det = value("albedo_detail")
        return alb + (det.expand(B, -1, -1) if shared_identity else det)

    def k_now() -> torch.Tensor:
        f = f0 * torch.exp(value("focal"))
        return intrinsics(f, f * aspect, K[:, 0, 2].to(dt), K[:, 1, 2].to(dt))

    def losses(stage: Stage) -> dict[str, torch.Tensor]:
        ident = value("identity")
        if shared_identity:
            ident = ident.expand(B, -1)
        expr = value("expression")
        verts = model.forward(ident, expr)
        vc = pose_points(verts, value("rotation"), value("translation"))
        Kc = k_now()
        out: dict[str, torch.Tensor] = {}
        w_ph = cfg.weight("photo", stage)
        if w_ph > 0:
            r = render_face(
                vc, faces, vertex_albedo(), value("light"), Kc, (H, W), vmask, erode=erode
            )
            m = r.mask if target_valid is None else r.mask & target_valid
            out["photo"] = w_ph * photometric_loss(r.image, target, m, cfg.robust)
        if landmark_points is None:
            lmk = torch.gather(vc, 1, lm_ids[..., None].expand(-1, -1, 3))
        else:
            lmk = landmark_points.points(vc)
        out["landmark"] = cfg.weight("landmark", stage) * landmark_loss(
            project(lmk, Kc), x2d, landmark_weights
        )
        out["identity"] = cfg.weight("identity", stage) * gaussian_prior(ident)
        if blend:
            out["expression"] = cfg.weight("expression", stage) * expr.square().sum(-1).mean()
        else:
            out["expression"] = cfg.weight("expression", stage) * gaussian_prior(expr)
        out["light"] = cfg.weight("light", stage) * sh_prior(value("light"))
        if has_alb:
            out["albedo"] = cfg.weight("albedo", stage) * gaussian_prior(value("albedo"))
        if "albedo_detail" in stage.params:
            d = value("albedo_detail")
            out["albedo_detail"] = cfg.weight("albedo_detail", stage) * d.square().mean()
            out["albedo_smooth"] = cfg.weight("albedo_smooth", stage) * (
                (d[:, edges[:, 0]] - d[:, edges[:, 1]]).square().mean()
            )
            out["albedo_sym"] = cfg.weight("albedo_sym", stage) * (d - d[:, sym]).square().mean()
        return out

    def project_constraints() -> None:
        with torch.no_grad():
            if blend:
                e = value("expression").clamp(0, 1)
                z["expression"].copy_((e - base["expression"]) / scale("expression"))
            if not has_alb:
                # keep the colour in a physical range
                c = value("albedo").clamp(0.02, 1.0)
                z["albedo"].copy_((c - base["albedo"]) / scale("albedo"))

    run = run_stages(
        z, cfg.schedule(), losses, optimizer=cfg.optimizer, on_nan=cfg.on_nan,
        project=project_constraints, label="photometric fit", progress=cfg.progress,
        last_good=current_params,
    )  # fmt: skip
    with torch.no_grad():
        return PhotometricFit(
            params=current_params(), vertex_albedo=vertex_albedo().detach().clamp(0, 1),
            K=k_now().detach(), history=run.history, stage_seconds=run.stage_seconds,
            warnings=run.warnings,
        )  # fmt: skip


def _albedo_model(model, cfg: FitConfig) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(mean (V, 3), basis (K, V, 3))`` of the albedo the fit uses, or ``(None, None)`` for
    a constant colour."""
    if cfg.albedo == "constant":
        return None, None
    if model.albedo_mean is not None and model.albedo_basis is not None:
        from .albedo import vertex_albedo_model

        return vertex_albedo_model(model, k=cfg.albedo_components)
    if cfg.albedo == "model":
        raise InvalidInput(f"model {model.name!r} has no albedo; use FitConfig(albedo='pca')")
    if model.uvs is None or model.landmarks is None:
        return None, None  # no UV layout: constant colour
    from .albedo import vertex_albedo_model

    return vertex_albedo_model(model, k=cfg.albedo_components)


@torch.no_grad()
def estimate_light(
    model,
    params: FaceParams,
    K: torch.Tensor,
    target: torch.Tensor,
    vertex_mask: torch.Tensor,
    ridge: float = 1e-4,
    albedo: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form colour and SH light for a constant albedo, given the shape and pose.

    With the normals of the rendered skin pixels, ``I_c(p) = rho_c Y(n_p) . L_c``. Only the
    products ``g_c = rho_c L_c`` are identifiable: solve the ridge least squares
    ``min |Y g_c - I_c|^2 + ridge |g_c[1:]|^2`` per channel, then split it so the mean shading
    is 1: ``rho_c = mean_p Y(n_p) . g_c``, ``L_c = g_c / rho_c``.

    With a known per-vertex ``albedo (B, V, 3)`` the light alone is solved,
    ``min |rho_c(p) Y(n_p) . L_c - I_c(p)|^2`` (then ``colour`` is the mean albedo).

    Args:
        target: ``(B, H, W, 3)`` linear colours.

    Returns:
        ``colour (B, 3)``, ``light (B, 9, 3)``.
    """
    from ..render.shading import sh_basis

    B, H, W, _ = target.shape
    dt, dev = target.dtype, target.device
    verts = model.forward(params.identity, params.expression)
    vc = pose_points(verts, params.rotation, params.translation)
    ones = torch.ones(B, model.n_vertices, 3, dtype=vc.dtype, device=vc.device)
    r = render_face(
        vc,
        model.faces,
        ones if albedo is None else albedo.to(vc.dtype),
        sh_ambient(1.0, B, 3, dtype=vc.dtype, device=vc.device),
        K.to(vc.dtype),
        (H, W),
        vertex_mask,
        erode=max(1, round(max(H, W) / 128)),
    )
    colours, lights = [], []
    for b in range(B):
        m = r.mask[b]
        if int(m.sum()) < 30:
            colours.append(torch.full((3,), 0.5, dtype=dt, device=dev))
            lights.append(sh_ambient(1.0, 1, 3, dtype=dt, device=dev)[0])
            continue
        Y = sh_basis(r.normals[b][m]).to(dt)  # (P, 9)
        obs = target[b][m]  # (P, 3)
        reg = torch.full((9,), ridge * len(obs), dtype=dt, device=dev)
        reg[0] = 0.0
        if albedo is not None:
            rho = r.albedo[b][m].to(dt)  # (P, 3)
            light = []
            for c in range(3):
                A = Y * rho[:, c : c + 1]
                light.append(torch.linalg.solve(A.T @ A + torch.diag(reg), A.T @ obs[:, c]))
            colours.append(rho.mean(0))
            lights.append(torch.stack(light, -1))
            continue
        g = torch.linalg.solve(Y.T @ Y + torch.diag(reg), Y.T @ obs)  # (9, 3)
        rho = (Y @ g).mean(0).clamp_min(1e-3)  # (3,)
        colours.append(rho.clamp(0.02, 1.0))
        lights.append(g / rho)
    return torch.stack(colours), torch.stack(lights)


__all__ = [
    "DEFAULT_SCALES",
    "DEFAULT_WEIGHTS",
    "FitConfig",
    "PARAM_GROUPS",
    "PhotometricFit",
    "Stage",
    "default_stages",
    "estimate_light",
    "fit_photometric",
    "linear_to_srgb",
    "skin_vertex_mask",
    "srgb_to_linear",
]
