r"""Fast-GANFit's start: a small CNN from a face crop to the initial shape and expression.

Gecer et al.'s TPAMI follow-up ("Fast-GANFit") replaces part of GANFit's optimisation with a
regression network that gives the fit a starting point near the answer, so fewer Adam steps
reach the same error. Ours, at CPU scale:

- **Input**: the square crop of the photo around the (detected) landmarks,
  :func:`regressor_crop` -- :func:`facelab.fit.crop_box` with ``crop_scale`` (1.6, as
  GANFit's own crop) resampled by :func:`facelab.fit.crop_image` to ``resolution`` px,
  mapped to [-1, 1]. The same function makes the training crops and the inference crops.
- **Output**: the first ``n_identity`` ICT identity coefficients :math:`\hat p_s` and the
  ``n_expression`` blendshape weights :math:`\hat p_e` (clamped to [0, 1] at inference). Pose
  is not predicted: the landmark fit gives it (as in GAR's encoder).
- **Training** (:func:`train_start_regressor`): photos of :mod:`facelab.world` at realism 1
  (seed ``data_seed`` = 101, apart from the benchmarks' tuning seed 5 and reporting seed 7),
  whose identity and expression are known exactly. The crop is taken at the world's exact
  2D landmarks **jittered** like a detector's (Gaussian noise of ``jitter_px``, a box shift
  of ``jitter_shift`` x side and a scale change of ``jitter_scale``): a user's crop comes from
  a detector. Loss (:func:`start_loss`):
  :math:`\|\hat p_s - p_s\|^2 / n_s + \lambda_e \|\hat p_e - p_e\|^2 / n_e +
  \lambda_v \|B_s (\hat p_s - p_s) + B_e (\hat p_e - p_e)\|^2 / 3n` -- the last term is the
  error of the face's vertices (``vertex_points`` of the face region, in mm), so a
  coefficient counts as much as the shape it moves (the coefficient terms alone let the
  network predict the mean: measured, validation error 1.0x and 0.9x the zero predictor's).
- **Check**: the validation error is reported beside the zero predictor's (the mean face:
  identity 0, neutral expression) -- the floor a regressor must beat.

Shipped as ``facelab/assets/ganfit_start/`` (``start.safetensors`` + ``start.json`` +
``start.log.jsonl``), made by ``python -m facelab.methods.ganfit.regressor --seed 0 --out
facelab/assets/ganfit_start``; :func:`load_start_regressor` loads it.
``GanFitConfig.fast_start`` (:class:`facelab.methods.ganfit.fit.GanFitConfig`) uses it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import check_shape
from ...errors import AssetMissing, InvalidInput, ModelFormatError
from ...gan.checkpoint import JsonConfig, load_checkpoint, prefixed, save_checkpoint

__all__ = [
    "StartRegressor",
    "StartRegressorConfig",
    "load_start_regressor",
    "predict_start",
    "regressor_crop",
    "shipped_start_path",
    "start_loss",
    "train_start_regressor",
    "vertex_basis",
]

KIND = "ganfit-start-regressor"


@dataclass
class StartRegressorConfig(JsonConfig):
    """Sizes, training data and budget of :class:`StartRegressor` (CPU budget: ~15 min on one
    core, most of it rendering the training photos)."""

    resolution: int = 64
    width: int = 32
    n_identity: int = 40
    n_expression: int = 53
    crop_scale: float = 1.6
    n_train: int = 4000
    n_val: int = 300
    image_size: int = 256
    realism: float = 1.0
    data_seed: int = 101
    steps: int = 4000
    batch: int = 32
    lr: float = 2e-3
    jitter_px: float = 2.0
    jitter_shift: float = 0.04
    jitter_scale: float = 0.06
    expression_weight: float = 10.0
    vertex_weight: float = 1.0
    vertex_points: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise InvalidInput(f"resolution must be a power of two >= 8, got {self.resolution}")
        for name in ("n_identity", "n_expression", "n_train", "n_val", "steps", "batch"):
            if int(getattr(self, name)) <= 0:
                raise InvalidInput(f"{name} must be positive, got {getattr(self, name)}")


class StartRegressor(nn.Module):
    """``crop (B, 3, R, R) in [-1, 1] -> {"identity": (B, n_s), "expression": (B, n_e)}``:
    3x3 convolutions (group-normalised) and 2x average pooling down to 4 px, a 256-unit
    layer, a linear head."""

    def __init__(self, config: StartRegressorConfig | None = None) -> None:
        super().__init__()
        cfg = config or StartRegressorConfig()
        self.config = cfg
        c, cin, r = cfg.width, 3, cfg.resolution
        layers: list[nn.Module] = []
        while r > 4:
            layers += [nn.Conv2d(cin, c, 3, padding=1), nn.GroupNorm(min(8, c), c),
                       nn.LeakyReLU(0.2), nn.AvgPool2d(2)]  # fmt: skip
            cin, c, r = c, min(2 * c, 128), r // 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(cin * 16, 256), nn.LeakyReLU(0.2))
        self.out = nn.Linear(256, cfg.n_identity + cfg.n_expression)

    def forward(self, crop: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.config
        check_shape("crop", crop, (None, 3, cfg.resolution, cfg.resolution))
        y = self.out(self.fc(self.features(crop)))
        return {"identity": y[:, : cfg.n_identity], "expression": y[:, cfg.n_identity :]}


def regressor_crop(
    image: torch.Tensor,
    landmarks: torch.Tensor,
    size: int = 64,
    scale: float = 1.6,
    shift: torch.Tensor | None = None,
    zoom: torch.Tensor | None = None,
) -> torch.Tensor:
    """The regressor's input: crops ``(B, 3, size, size)`` in [-1, 1] of ``image (B, 3, H, W)``
    (sRGB in [0, 1]) around ``landmarks (B, 68, 2)`` (photo pixels): :func:`crop_box` with
    ``scale``, :func:`crop_image`. ``shift (B, 2)`` (fractions of the side) and ``zoom (B,)``
    (side factors) move the box: the training jitter (None at inference)."""
    from ...fit.api import crop_box, crop_image

    check_shape("image", image, (None, 3, None, None))
    check_shape("landmarks", landmarks, (image.shape[0], 68, 2))
    out = []
    for b in range(image.shape[0]):
        x0, y0, side = crop_box(landmarks[b].detach(), scale)
        if zoom is not None:
            z = float(zoom[b])
            x0, y0, side = x0 + side * (1 - z) / 2, y0 + side * (1 - z) / 2, side * z
        if shift is not None:
            x0, y0 = x0 + float(shift[b, 0]) * side, y0 + float(shift[b, 1]) * side
        crop, _ = crop_image(image[b : b + 1], (x0, y0, side), size)
        out.append(crop)
    return torch.cat(out) * 2.0 - 1.0


def start_loss(
    out: dict[str, torch.Tensor],
    identity: torch.Tensor,
    expression: torch.Tensor,
    expression_weight: float = 10.0,
    basis: torch.Tensor | None = None,
    vertex_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Mean squared errors of the predicted identity (its first ``n_s`` coefficients) and
    expression, and with ``basis`` ``(n_s + n_e, 3n)`` (the model's identity and expression
    bases at ``n`` vertices, flattened) the vertices' mean squared error ``"vertex"``;
    ``total = identity + expression_weight * expression + vertex_weight * vertex``."""
    ns, ne = out["identity"].shape[1], out["expression"].shape[1]
    di = out["identity"] - identity[:, :ns]
    de = out["expression"] - expression[:, :ne]
    li, le = di.pow(2).mean(), de.pow(2).mean()
    res = {"identity": li, "expression": le, "total": li + expression_weight * le}
    if basis is not None:
        if basis.shape[0] != ns + ne:
            raise InvalidInput(f"basis has {basis.shape[0]} rows for {ns} + {ne} coefficients")
        lv = (torch.cat([di, de], 1) @ basis.to(di)).pow(2).mean()
        res["vertex"] = lv
        res["total"] = res["total"] + vertex_weight * lv
    return res


def vertex_basis(model, cfg: StartRegressorConfig) -> torch.Tensor:
    """``(n_s + n_e, 3 n)`` the model's first ``n_s`` identity and ``n_e`` expression basis
    vectors at ``cfg.vertex_points`` face-region vertices (seeded), in mm."""
    from ...fit.result import face_region

    region = face_region(model)
    idx = torch.arange(model.n_vertices) if region is None else region.nonzero()[:, 0]
    g = torch.Generator().manual_seed(0)
    idx = idx[torch.randperm(len(idx), generator=g)[: cfg.vertex_points]]
    from ...models.morphable import _UNIT_MM

    to_mm = _UNIT_MM[model.units]
    b = torch.cat([model.identity_basis[: cfg.n_identity, idx],
                   model.expression_basis[: cfg.n_expression, idx]])  # fmt: skip
    return (b.reshape(b.shape[0], -1) * to_mm).float().cpu()


@torch.no_grad()
def predict_start(
    reg: StartRegressor, image: torch.Tensor, landmarks: torch.Tensor, n_identity: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(identity (B, n_identity), expression (B, n_e))`` for photos ``(B, 3, H, W)`` and their
    landmarks ``(B, 68, 2)``, in ``image``'s dtype and device; the identity is zero-padded to
    ``n_identity`` (the model's size), the expression clamped to [0, 1]."""
    p = next(reg.parameters())
    x = regressor_crop(image.to(p.device, p.dtype), landmarks.to(p.device, p.dtype),
                       reg.config.resolution, reg.config.crop_scale)  # fmt: skip
    was = reg.training
    reg.eval()
    y = reg(x)
    reg.train(was)
    ident, expr = y["identity"], y["expression"].clamp(0.0, 1.0)
    n = ident.shape[1] if n_identity is None else int(n_identity)
    if n < ident.shape[1]:
        ident = ident[:, :n]
    elif n > ident.shape[1]:
        ident = F.pad(ident, (0, n - ident.shape[1]))
    return ident.to(image.device, image.dtype), expr.to(image.device, image.dtype)


def shipped_start_path() -> Path:
    """The shipped checkpoint's stem, ``facelab/assets/ganfit_start/start``."""
    return Path(__file__).resolve().parents[2] / "assets" / "ganfit_start" / "start"


def load_start_regressor(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> tuple[StartRegressor, dict[str, Any]]:
    """``(regressor in eval mode, meta)`` from a checkpoint (default: the shipped one).

    Raises:
        AssetMissing: no such checkpoint (with the command that makes it).
        ModelFormatError: a checkpoint of something else.
    """
    p = Path(path) if path is not None else shipped_start_path()
    if path is None and not p.with_suffix(".safetensors").is_file():
        raise AssetMissing(
            f"{p}.safetensors is missing: train it with `python -m "
            "facelab.methods.ganfit.regressor --seed 0 --out facelab/assets/ganfit_start`"
        )
    tensors, meta = load_checkpoint(p, device=device)
    if meta.get("kind") != KIND:
        raise ModelFormatError(f"{p}: a {meta.get('kind')!r} checkpoint, not a {KIND!r} one")
    reg = StartRegressor(StartRegressorConfig.from_dict(meta["config"])).to(device)
    reg.load_state_dict(prefixed(tensors, "net"))
    return reg.eval(), meta


def _world_data(
    cfg: StartRegressorConfig, n: int, seed: int, model, progress: bool, cache: Path | None = None
):
    """``(images uint8 (n, 3, S, S), landmarks (n, 68, 2), identity, expression)``; with
    ``cache`` (a folder) stored there as safetensors keyed by the settings that make them."""
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm

    key = f"world-ict-face-r{cfg.realism}-s{cfg.image_size}-seed{seed}-n{n}-i{cfg.n_identity}"
    path = None if cache is None else Path(cache) / f"{key}.safetensors"
    if path is not None and path.is_file():
        t = load_file(str(path))
        return t["images"], t["landmarks"], t["identity"], t["expression"]

    from ...world import WorldConfig, WorldDataset

    ds = WorldDataset(WorldConfig(model="ict-face", image_size=cfg.image_size, realism=cfg.realism),
                      length=n, seed=seed, model=model)  # fmt: skip
    S = cfg.image_size
    imgs = torch.empty(n, 3, S, S, dtype=torch.uint8)
    lms, ids, exs = torch.empty(n, 68, 2), torch.empty(n, cfg.n_identity), None
    for i in tqdm(range(n), desc=f"world photos (seed {seed})", disable=not progress):
        s = ds[i]
        imgs[i] = (s["image"].clamp(0, 1) * 255).round().to(torch.uint8)
        lms[i] = s["landmarks2d"].float()
        ids[i] = s["identity"][: cfg.n_identity].float()
        e = s["expression"][: cfg.n_expression].float()
        exs = torch.empty(n, e.shape[0]) if exs is None else exs
        exs[i] = e
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"images": imgs, "landmarks": lms, "identity": ids, "expression": exs},
                  str(path))  # fmt: skip
    return imgs, lms, ids, exs


def _batch(cfg, data, idx: torch.Tensor, g: torch.Generator | None) -> tuple[torch.Tensor, ...]:
    imgs, lms, ids, exs = data
    img = imgs[idx].float() / 255.0
    lm = lms[idx]
    shift = zoom = None
    if g is not None:  # a detector's points: noisy, its box shifted and scaled
        B = len(idx)
        lm = lm + cfg.jitter_px * torch.randn(lm.shape, generator=g)
        shift = cfg.jitter_shift * torch.randn(B, 2, generator=g)
        zoom = torch.exp(cfg.jitter_scale * torch.randn(B, generator=g))
    x = regressor_crop(img, lm, cfg.resolution, cfg.crop_scale, shift, zoom)
    return x, ids[idx], exs[idx]


@torch.no_grad()
def _evaluate(reg, cfg, data, g: torch.Generator, basis: torch.Tensor) -> dict[str, float]:
    reg.eval()
    n = data[0].shape[0]
    names = ("identity", "expression", "vertex")
    tot = {k: 0.0 for n_ in names for k in (n_, f"{n_}_floor")}
    for i in range(0, n, 64):
        idx = torch.arange(i, min(n, i + 64))
        x, ident, expr = _batch(cfg, data, idx, g)
        y = reg(x)
        y["expression"] = y["expression"].clamp(0, 1)
        ls = start_loss(y, ident, expr, basis=basis)
        zero = {k: torch.zeros_like(v) for k, v in y.items()}
        l0 = start_loss(zero, ident, expr, basis=basis)
        for k in names:
            tot[k] += float(ls[k]) * len(idx)
            tot[f"{k}_floor"] += float(l0[k]) * len(idx)
    reg.train()
    out = {k: v / n for k, v in tot.items()}
    for k in names:
        out[f"{k}_ratio_to_floor"] = out[k] / max(out[f"{k}_floor"], 1e-12)
    out["vertex_rms_mm"], out["vertex_rms_mm_floor"] = (
        out["vertex"] ** 0.5,
        out["vertex_floor"] ** 0.5,
    )
    return out


def train_start_regressor(
    config: StartRegressorConfig | None = None,
    out: str | os.PathLike = "facelab/assets/ganfit_start",
    progress: bool = True,
    command: str = "",
    data_cache: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Render the training and validation photos (or read them from ``data_cache``), train,
    write ``OUT/start.{safetensors,json,log.jsonl}``; returns the checkpoint's meta
    (validation errors vs the zero predictor)."""
    from tqdm.auto import tqdm

    from ...models import load

    cfg = config or StartRegressorConfig()
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    model = load("ict-face")
    cache = None if data_cache is None else Path(data_cache)
    train = _world_data(cfg, cfg.n_train, cfg.data_seed, model, progress, cache)
    val = _world_data(cfg, cfg.n_val, cfg.data_seed + 1, model, progress, cache)
    t_data = time.perf_counter() - t0
    basis = vertex_basis(model, cfg)
    reg = StartRegressor(cfg)
    opt = torch.optim.Adam(reg.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=cfg.lr * 0.05)
    g = torch.Generator().manual_seed(cfg.seed)
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    log_path = outp / "start.log.jsonl"
    log = log_path.open("w")
    bar = tqdm(range(cfg.steps), desc="start regressor", disable=not progress)
    for step in bar:
        idx = torch.randint(0, cfg.n_train, (cfg.batch,), generator=g)
        x, ident, expr = _batch(cfg, train, idx, g)
        ls = start_loss(reg(x), ident, expr, cfg.expression_weight, basis, cfg.vertex_weight)
        opt.zero_grad(set_to_none=True)
        ls["total"].backward()
        opt.step()
        sched.step()
        if not math.isfinite(ls["total"].item()):
            raise RuntimeError(f"start regressor diverged at step {step}")
        if step % 50 == 0 or step == cfg.steps - 1:
            rec: dict[str, Any] = {"step": step, "seconds": time.perf_counter() - t0,
                                   **{k: v.item() for k, v in ls.items()}}  # fmt: skip
            if step % 1000 == 0 or step == cfg.steps - 1:
                rec["val"] = _evaluate(reg, cfg, val, torch.Generator().manual_seed(1), basis)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{ls['total'].item():.3f}")
    log.close()
    metrics = _evaluate(reg, cfg, val, torch.Generator().manual_seed(1), basis)
    meta = {"kind": KIND, "config": cfg.to_dict(), "seed": cfg.seed, "step": cfg.steps,
            "command": command or f"python -m facelab.methods.ganfit.regressor --seed {cfg.seed}",
            "wall_time_s": time.perf_counter() - t0, "data_seconds": t_data,
            "threads": torch.get_num_threads(), "metrics": {"validation": metrics},
            "data": f"facelab.world ict-face realism {cfg.realism}, {cfg.image_size} px, "
                    f"seeds {cfg.data_seed} (train, {cfg.n_train}) / {cfg.data_seed + 1} (val, {cfg.n_val})",
            "license": "MIT (facelab; trained on facelab.world renders of ICT-FaceKit shapes)"}  # fmt: skip
    save_checkpoint(outp / "start", {f"net.{k}": v for k, v in reg.state_dict().items()}, meta)
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train Fast-GANFit's start regressor on the world.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="facelab/assets/ganfit_start")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a StartRegressorConfig field (repeatable)")  # fmt: skip
    ap.add_argument("--data-cache", default=None, help="folder for the rendered photos (reused)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    d = StartRegressorConfig(seed=args.seed).to_dict()
    for kv in args.set:
        k, _, v = kv.partition("=")
        if k not in d:
            raise InvalidInput(f"--set {kv!r}: unknown field; known {sorted(d)}")
        d[k] = type(d[k])(v)
    cfg = StartRegressorConfig.from_dict(d)
    cmd = "python -m facelab.methods.ganfit.regressor " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    meta = train_start_regressor(cfg, args.out, not args.no_progress, cmd.strip(), args.data_cache)
    print(json.dumps(meta["metrics"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
