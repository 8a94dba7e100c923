"""Training GAR: auxiliary estimator, then the adversarial renderer, then the encoder.

One command, three phases, one resumable checkpoint (``OUT/last.{safetensors,json}``)::

    OMP_NUM_THREADS=1 python -m facelab.methods.gar.train --config cpu-32 --seed 0 --out runs/gar --resume

1. **aux** (``aux.steps``): :class:`~facelab.methods.gar.aux.AuxNet` learns normals,
   landmarks and identity from the *real* crops and their ground truth; then frozen.
2. **gan** (``steps``, or until ``max_minutes - encoder_minutes``): per step one D update
   (``batch`` real crops vs ``batch`` renders of random geometry; lazy R1) and one G update on
   ``batch / 2`` geometry pairs ``(n_a, n_b)`` sharing an identity and two latents
   ``z_1, z_2``: ``x_a = G(n_a, z_1)``, ``x_b = G(n_b, z_1)``, ``x_c = G(n_a, z_2)``; loss
   ``adv(x_a, x_b, x_c) + w_n L_n(x_a, x_b, x_c) + w_id L_id(x_a, x_b) + w_lm L_lm(x_a, x_c)``
   (:mod:`facelab.methods.gar.losses`); EMA of G. The step and its bookkeeping are
   :mod:`facelab.gan.loop`'s (``adversarial_step``, ``TrainingLoop``); GAR's hooks draw the
   batches and add the consistency terms.
3. **encoder** (``encoder.steps`` or the time left): :class:`~facelab.methods.gar.encoder.Encoder`
   regresses ``(identity, expression, w)`` from ``G_ema``'s samples.

The data are rendered once into ``~/.cache/facelab/gar-data-v1-<hash>``
(:func:`facelab.methods.gar.data.build_gar_data`, ~8 min for the cpu-32 set on one core).
``--export STEM`` writes the shippable checkpoint (``G_ema``, ``D``, ``aux``, ``E``; no optimizer
state: a run seeded from it with ``--resume-from`` restarts Adam with ``G = G_ema``).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...errors import AssetMissing, InvalidInput
from ...gan.checkpoint import load_checkpoint, prefixed, save_checkpoint
from ...gan.loop import (
    GANLoopConfig,
    TrainingLoop,
    add_run_arguments,
    adversarial_step,
    config_from_run_args,
    export_run,
    read_log,
    resume_run,
    save_run,
    set_threads,
)
from ...gan.loss import g_nonsaturating_loss, lazy_r1_weight
from .aux import AuxConfig, AuxNet, aux_loss
from .data import GARData, GARDataConfig, build_gar_data, default_data_dir
from .encoder import Encoder, EncoderConfig, encoder_loss
from .geometry import CONDITIONS, condition_channels, params_condition, render_condition
from .losses import identity_consistency, landmark_consistency, normal_consistency
from .renderer import GARConfig, GARGenerator, make_discriminator

__all__ = [
    "CONFIGS",
    "GARModel",
    "condition_tensors",
    "GARTrainConfig",
    "export_gar",
    "load_gar",
    "main",
    "shipped_gar_path",
    "train",
]


@dataclass
class GARTrainConfig(GANLoopConfig):
    """Everything a GAR run depends on (stored in every checkpoint); the shared loop's
    fields (batch, steps, max_minutes, Adam, R1, intervals, seed) are
    :class:`~facelab.gan.loop.GANLoopConfig`'s, with these meanings here:

    Attributes:
        name: config name; ``data``, ``generator``, ``aux``, ``encoder``: fields of
            :class:`GARDataConfig`, :class:`GARConfig`, :class:`AuxConfig`,
            :class:`EncoderConfig`; ``d_channel_max``: discriminator width.
        batch, steps: images per D step (G: ``batch / 2`` pairs, 1.5 ``batch`` images),
            planned GAN steps.
        max_minutes: wall-time budget of the whole invocation; the GAN phase stops at
            ``max_minutes - encoder_minutes`` so the encoder phase fits.
        ema_beta: per-step EMA decay of ``G_ema``; ``lr_g``: 0.002 here.
        w_adv, w_normal, w_identity, w_landmark: loss weights (see :mod:`...losses`).
        condition: what G is told of the geometry (:data:`~.geometry.CONDITIONS`):
            ``"normals"`` (the paper's), ``"depth"`` or ``"params"`` (chapter 8's ablation);
            the consistency losses compare with the normal maps whatever the condition.
    """

    name: str = "custom"
    data: dict = field(default_factory=dict)
    generator: dict = field(default_factory=dict)
    aux: dict = field(default_factory=dict)
    encoder: dict = field(default_factory=dict)
    d_channel_max: int = 64
    steps: int = 3000
    encoder_minutes: float = 4.0
    lr_g: float = 0.002
    ema_beta: float = 0.995
    w_adv: float = 1.0
    w_normal: float = 1.0
    w_identity: float = 0.1
    w_landmark: float = 10.0
    condition: str = "normals"

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise InvalidInput(f"condition must be one of {CONDITIONS}, got {self.condition!r}")

    def data_config(self) -> GARDataConfig:
        return GARDataConfig(**self.data)

    def gen_config(self) -> GARConfig:
        e = EncoderConfig()
        mc = condition_channels(self.condition, self.encoder.get("n_identity", e.n_identity),
                                self.encoder.get("n_expression", e.n_expression))  # fmt: skip
        return GARConfig(
            **{"resolution": self.data_config().image_size, "map_channels": mc, **self.generator}
        )

    def aux_config(self) -> AuxConfig:
        return AuxConfig(**{"resolution": self.data_config().image_size, **self.aux})

    def encoder_config(self) -> EncoderConfig:
        g = self.gen_config()
        return EncoderConfig(**{"resolution": g.resolution, "w_dim": g.w_dim, **self.encoder})


CONFIGS: dict[str, GARTrainConfig] = {
    # The shipped run. Measured on this shared 2-core machine at 1 thread (load ~5): one GAN
    # step (D on 8 + 8 images, G on 12 images with the three consistency losses) costs about
    # 1 s of CPU and 1.5-3 s of wall time at 32 px with these widths (64 px would be ~4x:
    # four times the pixels in the top layers); 60 minutes buy ~1,500-2,500 steps = 12-20k
    # images at 32 px, against ~500 at 64 px -- too few for a GAN to leave the blob stage.
    "cpu-32": GARTrainConfig(
        name="cpu-32",
        generator={"channel_base": 1024, "channel_max": 64, "hidden": 16},
        d_channel_max=64,
        batch=8,
        steps=3000,
        max_minutes=55.0,
    ),
    # Chapter 8's condition ablation: cpu-32's widths and 3000-step schedule in one
    # uninterrupted run (0.31 s per GAN step on one quiet thread: ~16 min, ~22 min with the aux
    # and encoder phases), once per condition / injection, same seed and data, so the four
    # differ only in what G is told of the geometry and how. ablation-normals is the shipped
    # design trained the same way (the fair baseline: the shipped cpu-32 was two runs, the
    # second restarting Adam).
    **{
        f"ablation-{tag}": GARTrainConfig(
            name=f"ablation-{tag}",
            generator={"channel_base": 1024, "channel_max": 64, "hidden": 16, **gen},
            d_channel_max=64,
            batch=8,
            steps=3000,
            max_minutes=60.0,
            condition=condition,
        )
        for tag, condition, gen in (
            ("normals", "normals", {}),
            ("depth", "depth", {}),
            ("params", "params", {}),
            ("concat", "normals", {"injection": "concat"}),
        )
    },
    # Smoke test (seconds): the three phases, checkpoint and resume -- not a model.
    "tiny": GARTrainConfig(
        name="tiny",
        data={"n_real": 16, "n_geom": 16, "chunk": 16, "image_size": 16, "photo_size": 64},
        generator={
            "channel_base": 64,
            "channel_max": 8,
            "hidden": 4,
            "z_dim": 8,
            "w_dim": 16,
            "mapping_layers": 1,
        },
        aux={"width": 4, "steps": 3, "batch": 4, "n_identity": 4},
        encoder={"width": 4, "steps": 3, "batch": 4, "n_identity": 4, "n_expression": 8},
        d_channel_max=8,
        batch=4,
        steps=4,
        log_interval=1,
        ckpt_interval=2,
    ),  # fmt: skip
    # For a GPU (not run here): 128 px crops, StyleGAN2-like widths, 50k photos.
    "gpu-128": GARTrainConfig(
        name="gpu-128",
        data={
            "image_size": 128,
            "photo_size": 256,
            "n_real": 50_000,
            "n_geom": 50_000,
            "chunk": 1024,
        },
        generator={
            "channel_base": 16384,
            "channel_max": 512,
            "hidden": 128,
            "z_dim": 256,
            "w_dim": 256,
            "mapping_layers": 8,
        },
        aux={"width": 64, "steps": 20_000, "batch": 64},
        encoder={"width": 64, "steps": 20_000, "batch": 64},
        d_channel_max=512,
        batch=32,
        steps=200_000,
        r1_gamma=2.0,
        ema_beta=0.999,
        ckpt_interval=2000,
    ),  # fmt: skip
    # A middle size for a GPU or a long CPU weekend: 64 px.
    "gpu-64": GARTrainConfig(
        name="gpu-64",
        data={
            "image_size": 64,
            "photo_size": 160,
            "n_real": 20_000,
            "n_geom": 20_000,
            "chunk": 1024,
        },
        generator={
            "channel_base": 8192,
            "channel_max": 256,
            "hidden": 64,
            "z_dim": 128,
            "w_dim": 256,
            "mapping_layers": 8,
        },
        aux={"width": 48, "steps": 10_000, "batch": 64},
        encoder={"width": 48, "steps": 10_000, "batch": 64},
        d_channel_max=256,
        batch=32,
        steps=100_000,
        ema_beta=0.999,
        ckpt_interval=2000,
    ),  # fmt: skip
}


# ------------------------------------------------------------------------------- helpers


@dataclass
class GARModel:
    """A trained GAR: ``G`` (EMA generator), ``aux`` (estimator), ``E`` (encoder), ``D``, ``meta``."""

    G: GARGenerator
    aux: AuxNet
    E: Encoder
    D: torch.nn.Module
    meta: dict
    config: GARTrainConfig

    @property
    def resolution(self) -> int:
        return self.G.config.resolution


def _build(cfg: GARTrainConfig):
    torch.manual_seed(cfg.seed)
    G = GARGenerator(cfg.gen_config())
    D = make_discriminator(G.config.resolution, cfg.d_channel_max)
    aux = AuxNet(cfg.aux_config())
    E = Encoder(cfg.encoder_config())
    return G, D, aux, E


def condition_tensors(
    cfg: GARTrainConfig, geom: dict[str, torch.Tensor], chunk: int = 256
) -> dict[str, torch.Tensor]:
    """The generator's inputs ``{"a": ..., "b": ...}`` for every geometry pair of ``geom``
    (:class:`~.data.GARData`'s): the cached normal maps for ``condition="normals"``; for
    ``"depth"`` the depth maps rendered from the stored parameters and crop cameras (the same
    :func:`~.geometry.render_condition` the inversion differentiates); for ``"params"`` the
    parameter vectors."""
    if cfg.condition == "normals":
        return {"a": geom["normals_a"], "b": geom["normals_b"]}
    e = cfg.encoder_config()
    ni, ne = e.n_identity, e.n_expression
    out: dict[str, torch.Tensor] = {}
    if cfg.condition == "params":
        for t in ("a", "b"):
            out[t] = params_condition(geom["identity"], geom[f"expression_{t}"],
                                      geom[f"rotation_{t}"], ni, ne).float()  # fmt: skip
        return out
    from ...models import load

    model = load(cfg.data_config().model)
    S = int(geom["normals_a"].shape[-1])
    for t in ("a", "b"):
        parts = []
        for lo in range(0, geom["identity"].shape[0], chunk):
            sl = slice(lo, lo + chunk)
            with torch.no_grad():
                c, _, _, _ = render_condition(
                    cfg.condition, model, geom["identity"][sl], geom[f"expression_{t}"][sl],
                    geom[f"rotation_{t}"][sl], geom[f"translation_{t}"][sl], geom[f"K_{t}"][sl],
                    S, None, ni, ne,
                )  # fmt: skip
            parts.append(c.float())
        out[t] = torch.cat(parts)
    return out


def gan_losses(
    G: GARGenerator,
    D: torch.nn.Module,
    aux: AuxNet,
    geom: dict[str, torch.Tensor],
    idx: torch.Tensor,
    cfg: GARTrainConfig,
    g: torch.Generator,
    update_w_avg: float | None = None,
    cond: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The generator's losses on the geometry pairs ``idx`` (see the module doc); ``cond``:
    :func:`condition_tensors` (default: the normal maps)."""
    p = idx.shape[0]
    n_a, n_b = geom["normals_a"][idx], geom["normals_b"][idx]
    c_a, c_b = (n_a, n_b) if cond is None else (cond["a"][idx], cond["b"][idx])
    m_a, m_b = geom["mask_a"][idx], geom["mask_b"][idx]
    z1 = torch.randn(p, G.config.z_dim, generator=g)
    z2 = torch.randn(p, G.config.z_dim, generator=g)
    x = G(torch.cat([c_a, c_b, c_a]), torch.cat([z1, z1, z2]), update_w_avg=update_w_avg)
    x_a, x_b, x_c = x.split(p)
    out: dict[str, torch.Tensor] = {"adv": g_nonsaturating_loss(D(x))}
    a = aux(x)
    out["normal"] = normal_consistency(
        a["normals"], torch.cat([n_a, n_b, n_a]), torch.cat([m_a, m_b, m_a])
    )
    ida, idb, _ = a["identity"].split(p)
    out["identity"] = identity_consistency(ida, idb)
    la, _, lc = a["landmarks"].split(p)
    out["landmark"] = landmark_consistency(la, lc, x.shape[-1])
    out["total"] = (
        cfg.w_adv * out["adv"]
        + cfg.w_normal * out["normal"]
        + cfg.w_identity * out["identity"]
        + cfg.w_landmark * out["landmark"]
    )
    out["images"] = x
    return out


def encoder_batch(
    G: GARGenerator,
    geom: dict[str, torch.Tensor],
    idx: torch.Tensor,
    g: torch.Generator,
    cond: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(images, targets)``: ``G``'s samples of geometry ``idx`` and their exact inputs
    (``cond``: the ``"a"`` conditions of :func:`condition_tensors`; default the normal maps)."""
    z = torch.randn(idx.shape[0], G.config.z_dim, generator=g)
    with torch.no_grad():
        w = G.mapping(z)
        x = G.synthesis(w, (geom["normals_a"] if cond is None else cond)[idx])
    return x, {"identity": geom["identity"][idx], "expression": geom["expression_a"][idx], "w": w}


# --------------------------------------------------------------------------------- train


def train(
    cfg: GARTrainConfig,
    out_dir: str | Path,
    data_dir: str | Path | None = None,
    resume: bool = True,
    command: str = "",
    progress: bool = True,
) -> dict:
    """Run (or resume) the three phases; returns the last log entry. See the module doc."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dcfg = cfg.data_config()
    data_dir = build_gar_data(data_dir or default_data_dir(dcfg), dcfg, progress=progress)
    data = GARData(data_dir)
    G, D, aux, E = _build(cfg)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    acfg, ecfg = cfg.aux_config(), cfg.encoder_config()
    opt_a = torch.optim.Adam(aux.parameters(), lr=acfg.lr)
    opt_e = torch.optim.Adam(E.parameters(), lr=ecfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    st = {"aux_step": 0, "step": 0, "enc_step": 0}
    wall, log = 0.0, []
    nets = {"G": G, "G_ema": G_ema, "D": D, "aux": aux, "E": E}
    opts = {"opt_G": opt_g, "opt_D": opt_d, "opt_aux": opt_a, "opt_E": opt_e}
    meta = resume_run(out_dir, nets, opts, g) if resume else None
    if meta is not None:
        st = {k: int(meta["progress"][k]) for k in st}
        wall = float(meta.get("wall_time_s", 0.0))
        log = read_log(out_dir / "log.jsonl")
        if progress:
            print(f"resumed at {st} ({wall / 60:.1f} min so far)", flush=True)
    t_start = time.perf_counter()

    def minutes() -> float:
        return (time.perf_counter() - t_start) / 60

    def save() -> None:
        meta = {
            "kind": "gar",
            "config": cfg.to_dict(),
            "command": command,
            "seed": cfg.seed,
            "progress": dict(st),
            "step": st["step"],
            "steps_planned": cfg.steps,
            "images_seen": st["step"] * cfg.batch,
            "wall_time_s": round(wall + time.perf_counter() - t_start, 1),
            "threads": torch.get_num_threads(),
            "data": {"dir": str(data_dir), "n_real": data.n_real, "n_geom": data.n_geom},
            "last_log": log[-1] if log else None,
        }
        save_run(out_dir, nets, opts, meta, g, log)

    def emit(entry: dict) -> None:
        entry["wall_min"] = round((wall + time.perf_counter() - t_start) / 60, 2)
        log.append(entry)
        if progress:
            print(json.dumps(entry), flush=True)

    real, geom = data.real, data.geom
    cond = condition_tensors(cfg, geom)
    # ---------------------------------------------------------------- phase 1: aux
    if st["aux_step"] < acfg.steps:
        aux.train()
        acc: dict[str, float] = {}
        while st["aux_step"] < acfg.steps:
            idx = torch.randint(0, data.n_real, (acfg.batch,), generator=g)
            out = aux(data.real_images(idx))
            ls = aux_loss(out, real["normals"][idx], real["mask"][idx], real["lm"][idx],
                          real["identity"][idx])  # fmt: skip
            opt_a.zero_grad(set_to_none=True)
            ls["total"].backward()
            opt_a.step()
            st["aux_step"] += 1
            for k, v in ls.items():
                acc[k] = acc.get(k, 0.0) + float(v.detach())
            n_log = max(1, min(cfg.log_interval * 4, acfg.steps))
            if st["aux_step"] % n_log == 0 or st["aux_step"] == acfg.steps:
                n = st["aux_step"] % n_log or n_log
                emit({"phase": "aux", "aux_step": st["aux_step"],
                      **{f"aux_{k}": round(v / n, 5) for k, v in acc.items()}})  # fmt: skip
                acc = {}
        save()
    aux.eval().requires_grad_(False)
    # ---------------------------------------------------------------- phase 2: gan
    gan_stop = None if cfg.max_minutes is None else cfg.max_minutes - cfg.encoder_minutes
    B, P = cfg.batch, max(1, cfg.batch // 2)
    loop = TrainingLoop(st["step"], cfg.steps, cfg.log_interval, cfg.ckpt_interval,
                        None if gan_stop is None else gan_stop * 60, t_start=t_start)  # fmt: skip

    def d_batch():
        idx = torch.randint(0, data.n_real, (B,), generator=g)
        gidx = torch.randint(0, data.n_geom, (B,), generator=g)
        z = torch.randn(B, G.config.z_dim, generator=g)
        with torch.no_grad():
            fake = G(cond["a"][gidx], z)
        return data.real_images(idx), None, fake, None

    def g_losses() -> dict[str, torch.Tensor]:
        pidx = torch.randint(0, data.n_geom, (P,), generator=g)
        return gan_losses(G, D, aux, geom, pidx, cfg, g, update_w_avg=0.995, cond=cond)

    def step_fn(t: int) -> dict[str, float | None]:
        r1_w = lazy_r1_weight(t, cfg.r1_gamma, cfg.r1_interval)
        o = adversarial_step(G, D, G_ema, opt_g, opt_d, d_batch, g_losses, r1_w, cfg.ema_beta)
        st["step"] = t + 1
        return {**{k: o[k] for k in ("adv", "normal", "identity", "landmark")},
                "loss_d": o["loss"], "d_real": o["logits_real"].mean(),
                "d_fake": o["logits_fake"].mean(), "r1": o.get("r1")}  # fmt: skip

    def log_fn(t: int, acc: dict[str, list[float]], saving: bool) -> None:
        r1v = acc.pop("r1", None)  # summed over the interval (taken every r1_interval steps)
        entry = {"phase": "gan", "step": t, "images": t * B}
        entry.update({k: round(sum(v) / len(v), 4) for k, v in acc.items()})
        if r1v is not None:
            entry["r1"] = round(sum(r1v), 5)
        emit(entry)

    step0 = st["step"]
    loop.run(step_fn, log_fn, lambda t: save())
    if st["step"] > step0 and st["enc_step"] > 0:
        # the generator moved since the encoder was trained (a run continued after its
        # encoder phase, e.g. --resume-from a shipped checkpoint): retrain it on the new
        # G_ema's samples, warm-started from its weights
        st["enc_step"] = 0
    # ---------------------------------------------------------------- phase 3: encoder
    if st["enc_step"] < ecfg.steps:
        E.train()
        with torch.no_grad():
            w_scale = G_ema.mapping(torch.randn(256, G.config.z_dim, generator=g)).std(0)
        w_scale = w_scale.clamp(min=1e-3)
        acc = {}
        while st["enc_step"] < ecfg.steps:
            if cfg.max_minutes is not None and minutes() >= cfg.max_minutes:
                break
            idx = torch.randint(0, data.n_geom, (ecfg.batch,), generator=g)
            x, tgt = encoder_batch(G_ema, geom, idx, g, cond["a"])
            ls = encoder_loss(E(x), tgt["identity"], tgt["expression"], tgt["w"], w_scale)
            opt_e.zero_grad(set_to_none=True)
            ls["total"].backward()
            opt_e.step()
            st["enc_step"] += 1
            for k, v in ls.items():
                acc[k] = acc.get(k, 0.0) + float(v.detach())
            n_log = max(1, min(cfg.log_interval * 2, ecfg.steps))
            if st["enc_step"] % n_log == 0 or st["enc_step"] == ecfg.steps:
                n = st["enc_step"] % n_log or n_log
                emit({"phase": "encoder", "enc_step": st["enc_step"],
                      **{f"enc_{k}": round(v / n, 5) for k, v in acc.items()}})  # fmt: skip
                acc = {}
        save()
    return log[-1] if log else {}


# ------------------------------------------------------------------------- export / load


def export_gar(run_dir: str | Path, stem: str | Path) -> Path:
    """Write ``stem.{safetensors,json}`` (``G_ema``, ``D``, ``aux``, ``E``) and
    ``stem.log.jsonl`` from a run's ``last``."""

    def status(meta: dict) -> str:
        pr = meta["progress"]
        done = pr["step"] >= meta["steps_planned"]
        return (
            f"GAN {pr['step']} of {meta['steps_planned']} planned steps"
            f" ({'complete' if done else 'stopped by the time budget'}),"
            f" aux {pr['aux_step']} steps, encoder {pr['enc_step']} steps"
        )

    keep = ("G_ema", "D", "aux", "E")
    return export_run(run_dir, stem, status, keep, "G_ema, D, aux, E (no optimizer state)")


def shipped_gar_path() -> Path:
    """Stem of the committed GAR checkpoint (``facelab/assets/gar/cpu-32``)."""
    return Path(__file__).resolve().parents[2] / "assets" / "gar" / "cpu-32"


def load_gar(stem: str | Path | None = None, device: str | torch.device = "cpu") -> GARModel:
    """A trained GAR (the shipped one by default), all networks in eval mode, frozen.

    Loads a run's ``last`` or an exported checkpoint (``G_ema`` is the generator)."""
    p = Path(stem) if stem is not None else shipped_gar_path()
    if stem is None and not p.with_suffix(".safetensors").is_file():
        raise AssetMissing(
            f"{p}.safetensors is missing: train it with `python -m facelab.methods.gar.train "
            "--config cpu-32 --seed 0 --out runs/gar` and export it with --export"
        )
    tensors, meta = load_checkpoint(p, device=device)
    if meta.get("kind") != "gar":
        raise InvalidInput(f"{p}: not a GAR checkpoint (kind={meta.get('kind')!r})")
    cfg = GARTrainConfig.from_dict(meta["config"])
    G, D, aux, E = _build(cfg)
    G.load_state_dict(prefixed(tensors, "G_ema"))
    D.load_state_dict(prefixed(tensors, "D"))
    aux.load_state_dict(prefixed(tensors, "aux"))
    E.load_state_dict(prefixed(tensors, "E"))
    nets = [n.to(device).eval().requires_grad_(False) for n in (G, aux, E, D)]
    return GARModel(G=nets[0], aux=nets[1], E=nets[2], D=nets[3], meta=meta, config=cfg)


def _seed_run(stem: str | Path, run_dir: str | Path) -> bool:
    """Start ``run_dir/last`` from an exported checkpoint (``G = G_ema``, fresh Adam)."""
    run_dir = Path(run_dir)
    if (run_dir / "last.json").is_file():
        return False
    tensors, meta = load_checkpoint(stem)
    tensors = dict(tensors)
    tensors.update({"G." + k[6:]: v.clone() for k, v in tensors.items() if k.startswith("G_ema.")})
    g = torch.Generator().manual_seed(int(meta.get("seed", 0)) + 1)
    tensors["rng.data"], tensors["rng.torch"] = g.get_state(), torch.get_rng_state()
    meta = {k: v for k, v in meta.items() if k not in ("format", "version")}
    save_checkpoint(run_dir / "last", tensors, meta)
    log = Path(str(Path(stem).with_suffix("")) + ".log.jsonl")
    if log.is_file():
        (run_dir / "log.jsonl").write_text(log.read_text())
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m facelab.methods.gar.train", description=__doc__.split("\n")[0]
    )
    add_run_arguments(p, CONFIGS, "cpu-32")
    p.add_argument("--data", default=None, help="data directory (default ~/.cache/facelab/...)")
    args = p.parse_args(argv)
    if args.export:
        print(export_gar(args.out, args.export))
        return 0
    try:
        set_threads(args.threads)
    except InvalidInput as e:
        p.error(str(e))
    if args.resume_from:
        _seed_run(args.resume_from, args.out)
        args.resume = True
    cfg = config_from_run_args(args, CONFIGS)
    argv_ = argv if argv is not None else sys.argv[1:]
    train(cfg, args.out, args.data, resume=args.resume,
          command=" ".join(["python", "-m", "facelab.methods.gar.train", *argv_]))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
