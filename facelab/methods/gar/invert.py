r"""Inverting GAR: fit a 3DMM to a photo *through the learned renderer*.

For one photo (Piao et al.'s "renderer inverting", made a full pipeline):

1. **Detect** 68 landmarks (as Part I) and run Part I's **landmark fit**
   (:func:`facelab.fit.landmarks.fit_landmarks`, with the detector's calibration): pose and a
   focal from the assumed field of view.
2. **Crop** the face as GAR's training crops were made (:data:`~.geometry.CROP_SCALE` x the
   landmark box) at the generator's resolution; the intrinsics follow the crop.
3. **Start** (``start``): the encoder's identity, expression and latent ``w``
   (``"encoder"``), or the mean face and ``w_avg`` (``"mean"``), or the landmark fit's shape
   with the encoder's ``w`` (``"landmarks"``).
4. **Refine** pose, identity, expression and ``w`` by Adam on

   .. math::

       L = \lambda_{pix} \lVert G(N(\theta), w) - I \rVert_1
         + \lambda_{lm} \tfrac{1}{R^2}\textstyle\sum_j c_j \lVert \pi_j(\theta) - x_j \rVert^2
         + \lambda_{id} \lVert\alpha\rVert^2 + \lambda_{exp} \lVert\beta\rVert^2
         + \lambda_w \lVert (w - \bar w) / \sigma_w \rVert^2 / d

   where :math:`N(\theta)` is the rasterizer's normal map of the posed 3DMM
   (:func:`~.geometry.render_condition`): the photometric gradient reaches the shape through the
   normals the generator was trained to respect, not through a Lambert-SH image formation.
   (A generator of chapter 8's ablation takes its own condition here: the depth map or the
   parameter vector.)
   Expression weights stay in [0, 1] (projected after each step).
5. **Package** the same :class:`facelab.fit.FitResult` as Part I (``facelab fit --method gar``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import torch

from ...errors import InvalidInput
from ...fit.api import _resolve_model, crop_face, fast_mode, package_result, prepare_photo
from ...fit.result import FitResult
from ...geometry.camera import intrinsics
from ...models.params import FaceParams
from .geometry import CROP_SCALE, render_condition
from .train import GARModel, load_gar

__all__ = ["GARFitConfig", "fit_gar", "inversion_loss", "prepare_crop", "refine"]

_GAR_CACHE: dict[str, GARModel] = {}


@dataclass
class GARFitConfig:
    """Options of :func:`fit_gar` (weights of :func:`inversion_loss`, Adam rates, steps)."""

    steps: int = 80
    fast_steps: int = 25
    start: str = "encoder"
    lr_rotation: float = 0.01
    lr_translation: float = 0.1
    lr_identity: float = 0.05
    lr_expression: float = 0.02
    lr_w: float = 0.03
    w_pixel: float = 1.0
    w_landmark: float = 100.0
    w_identity: float = 1e-3
    w_expression: float = 1e-2
    w_latent: float = 1e-2


def _gar(gar: GARModel | str | None) -> GARModel:
    if isinstance(gar, GARModel):
        return gar
    key = str(gar)
    if key not in _GAR_CACHE:
        _GAR_CACHE[key] = load_gar(gar)
    return _GAR_CACHE[key]


def prepare_crop(
    image: torch.Tensor, landmarks: torch.Tensor, K_full: torch.Tensor, size: int
) -> dict[str, Any]:
    """The GAR crop of ``image (1, 3, H, W)`` around ``landmarks (68, 2)``: ``target
    (1, 3, S, S)`` in [-1, 1], ``valid (1, 1, S, S)``, ``K (1, 3, 3)``, ``landmarks (1, 68, 2)``
    (crop pixels), ``box``."""
    c = crop_face(image.float(), landmarks.float(), K_full, size, CROP_SCALE)
    return {"target": c.image * 2 - 1, "valid": c.valid[:, None].float(), "K": c.K,
            "landmarks": c.to_crop(landmarks.float())[None], "box": c.box}  # fmt: skip


def inversion_loss(
    gar: GARModel,
    model,
    state: dict[str, torch.Tensor],
    crop: dict[str, Any],
    cfg: GARFitConfig,
    landmark_vertices: torch.Tensor | None = None,
    landmark_weights: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The refinement loss (module doc) of ``state`` = ``{rotation, translation, identity,
    expression, w}`` (batch 1) against a :func:`prepare_crop` crop; also returns the image."""
    S = gar.resolution
    ecfg = gar.E.config
    cond, n, mask, lm = render_condition(
        gar.config.condition, model, state["identity"], state["expression"], state["rotation"],
        state["translation"], crop["K"], S, landmark_vertices, ecfg.n_identity, ecfg.n_expression,
    )  # fmt: skip
    img = gar.G.synthesis(state["w"], cond.float(), noise_mode="const")
    v = crop["valid"]
    pix = ((img - crop["target"]).abs() * v).sum() / (3 * v.sum()).clamp(min=1)
    d2 = ((lm.float() - crop["landmarks"]) / S).square().sum(-1)  # (1, 68)
    c = landmark_weights if landmark_weights is not None else torch.ones_like(d2)
    lmk = (c * d2).sum() / c.sum().clamp(min=1e-6)
    G = gar.G
    w_scale = state.get("w_scale", torch.ones_like(state["w"]))
    lat = ((state["w"] - G.mapping.w_avg) / w_scale).square().mean()
    total = (
        cfg.w_pixel * pix
        + cfg.w_landmark * lmk
        + cfg.w_identity * state["identity"].square().sum()
        + cfg.w_expression * state["expression"].square().sum()
        + cfg.w_latent * lat
    )
    return {"total": total, "pixel": pix, "landmark": lmk, "latent": lat, "image": img,
            "normals": n, "mask": mask}  # fmt: skip


def start_state(
    gar: GARModel, crop: dict[str, Any], stage1: FaceParams, start: str = "encoder"
) -> dict[str, torch.Tensor]:
    """Initial ``{rotation, translation, identity, expression, w, w_scale}``."""
    if start not in ("encoder", "mean", "landmarks"):
        raise InvalidInput(f"start must be 'encoder', 'mean' or 'landmarks', got {start!r}")
    ecfg = gar.E.config
    with torch.no_grad():
        e = gar.E(crop["target"])
        # the latent prior's scale from a fixed draw: the same photo gives the same fit
        z = torch.randn(256, gar.G.config.z_dim, generator=torch.Generator().manual_seed(0))
        w_scale = gar.G.mapping(z.to(e["w"])).std(0, keepdim=True)
    st = {"rotation": stage1.rotation.detach().float().clone(),
          "translation": stage1.translation.detach().float().clone()}  # fmt: skip
    if start == "mean":
        st["identity"] = torch.zeros(1, ecfg.n_identity)
        st["expression"] = torch.zeros(1, ecfg.n_expression)
        st["w"] = gar.G.mapping.w_avg[None].clone()
    elif start == "landmarks":
        st["identity"] = stage1.identity[:, : ecfg.n_identity].detach().float().clone()
        st["expression"] = stage1.expression[:, : ecfg.n_expression].detach().float().clone()
        st["w"] = e["w"].clone()
    else:
        st["identity"] = e["identity"].clone()
        st["expression"] = e["expression"].clamp(0, 1).clone()
        st["w"] = e["w"].clone()
    st["w_scale"] = w_scale.clamp(min=1e-3)
    return st


def refine(
    gar: GARModel,
    model,
    state: dict[str, torch.Tensor],
    crop: dict[str, Any],
    cfg: GARFitConfig,
    steps: int,
    landmark_vertices: torch.Tensor | None = None,
    landmark_weights: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], list[float]]:
    """``steps`` Adam steps on :func:`inversion_loss`; returns the state and the loss history."""
    names = ("rotation", "translation", "identity", "expression", "w")
    lrs = (cfg.lr_rotation, cfg.lr_translation, cfg.lr_identity, cfg.lr_expression, cfg.lr_w)
    st = {k: v.detach().clone() for k, v in state.items()}
    for k in names:
        st[k].requires_grad_(True)
    opt = torch.optim.Adam([{"params": [st[k]], "lr": lr} for k, lr in zip(names, lrs)])
    hist = []
    for _ in range(steps):
        ls = inversion_loss(gar, model, st, crop, cfg, landmark_vertices, landmark_weights)
        opt.zero_grad(set_to_none=True)
        ls["total"].backward()
        opt.step()
        with torch.no_grad():
            st["expression"].clamp_(0, 1)
        hist.append(float(ls["total"].detach()))
    return {k: v.detach() for k, v in st.items()}, hist


def fit_gar(
    photo: Any,
    model: Any = "ict-face",
    gar: GARModel | str | None = None,
    landmarks: torch.Tensor | None = None,
    config: GARFitConfig | None = None,
    detector: Any = "auto",
    face: str | int = "largest",
    fast: bool | None = None,
    refine_steps: int | None = None,
    landmark_config: Any = None,
    calibration: Any = "auto",
    source: str | None = None,
    progress: bool | None = None,
    texture_size: int = 512,
) -> FitResult:
    """Fit ``model`` to ``photo`` by inverting GAR (module doc); returns a :class:`FitResult`.

    ``gar``: a :class:`GARModel`, a checkpoint stem, or None (the shipped ``cpu-32``).
    ``landmarks (68, 2)`` skip detection. ``fast`` (default ``FACELAB_FAST``) uses
    ``config.fast_steps``; ``refine_steps`` overrides both (0 = encoder / start only).
    Raises as :func:`facelab.fit.fit` (no face, tiny face, bad landmarks). ``progress`` is
    accepted for the CLI's uniform call and ignored (a fit takes seconds). ``texture_size``:
    the UV texture unwrapped from the photo (0 = none, faster).
    """
    from ...fit.landmarks import LandmarkFitConfig, fit_landmarks
    from ...render.shading import sh_ambient

    t_all = time.perf_counter()
    cfg = config or GARFitConfig()
    mdl = _resolve_model(model)
    gm = _gar(gar)
    prep = prepare_photo(
        photo, mdl, landmarks, face, detector, calibration=calibration, source=source
    )
    timings: dict[str, float] = {}
    if prep.detected:
        timings["detect"] = prep.detect_seconds
    img, lm, lm_t = prep.image, prep.landmarks, prep.target
    lm_w = None if prep.weights is None else prep.weights[None]
    _, _, H, W = img.shape
    t0 = time.perf_counter()
    lcfg = prep.landmark_config(landmark_config) or LandmarkFitConfig(identity_prior=10.0)
    lf = fit_landmarks(mdl, lm_t[None], (H, W), lcfg, visible=lm_w)
    timings["landmarks"] = time.perf_counter() - t0
    f = lf.params.focal
    K_full = intrinsics(f, f, W / 2.0, H / 2.0)[0]
    t0 = time.perf_counter()
    crop = prepare_crop(img, lm_t, K_full, gm.resolution)
    state = start_state(gm, crop, lf.params, cfg.start)
    timings["encoder"] = time.perf_counter() - t0
    steps = (
        refine_steps
        if refine_steps is not None
        else (cfg.fast_steps if fast_mode(fast) else cfg.steps)
    )
    lmv = lf.landmark_vertices[0]
    t0 = time.perf_counter()
    state, hist = refine(gm, mdl, state, crop, cfg, steps, lmv, lm_w)
    timings["refine"] = time.perf_counter() - t0
    dt = mdl.dtype
    params = FaceParams(
        identity=state["identity"].to(dt), expression=state["expression"].to(dt),
        rotation=state["rotation"].to(dt), translation=state["translation"].to(dt),
        light=sh_ambient(1.0, 1, 3, dtype=dt), focal=f.to(dt),
    )  # fmt: skip
    albedo = torch.full((mdl.mean.shape[0], 3), 0.45, dtype=dt)
    warnings: list[str] = []
    res = package_result(mdl, img.to(dt), lm, params, K_full, lmv, albedo,
                         {"landmarks": list(lf.history), "gar": hist}, timings, warnings, prep.source,
                         texture_size=texture_size)  # fmt: skip
    res.timings["total"] = time.perf_counter() - t_all
    with torch.no_grad():
        fin = inversion_loss(gm, mdl, state, crop, cfg, lmv, lm_w)
    res.gar = {"crop": crop, "image": fin["image"], "normals": fin["normals"], "state": state}  # type: ignore[attr-defined]
    return res


def with_start(cfg: GARFitConfig | None, start: str) -> GARFitConfig:
    """``cfg`` with another start (``"encoder"``, ``"mean"``, ``"landmarks"``)."""
    return replace(cfg or GARFitConfig(), start=start)
