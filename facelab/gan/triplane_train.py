"""Training the tri-plane 3D GAN (:mod:`facelab.gan.triplane`) on world views with known cameras.

The step and the loop are the shared ones of :mod:`facelab.gan.loop` (D step with lazy R1,
G step, EMA, logging, checkpoints, time cap); a 3D GAN needs three more things per step,
which this module's hooks add:

1. every real image comes with its camera ``c`` (25 numbers), and a random half of the batch
   is **mirrored together with its camera** (:func:`facelab.geometry.eg3d.mirror_cam2world`):
   flipping the image alone would tell D that a face seen from the right looks like a face
   seen from the left, i.e. teach G a mirrored geometry;
2. fakes are rendered from cameras drawn from the data's pose distribution, with the mapping
   network's conditioning camera swapped for another random pose with ``swap_prob``;
3. the density regulariser every ``density_interval`` steps.

Command (the shipped CPU run; resumable, ``--resume`` continues from ``OUT/last``)::

    OMP_NUM_THREADS=1 python -m facelab.gan.triplane_train --config cpu-32 --seed 0 --out runs/triplane --resume

To continue the shipped (partial) checkpoint in a new run directory, add
``--resume-from facelab/assets/triplane_gan/cpu-32``; ``--export STEM`` writes ``OUT/last`` as
a shippable checkpoint (``STEM.safetensors``, ``STEM.json`` with ``status`` = steps done of
planned, ``STEM.log.jsonl``).

The views are rendered once by :func:`facelab.gan.triplane_data.build_views` (about 10 min
for 3,072 views at 64 px on one core); checkpoints ``OUT/last.{safetensors,json}`` hold G,
G_ema, D, both optimizers and the RNG state; ``OUT/log.jsonl`` a line per ``log_interval``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import InvalidInput
from ..geometry.eg3d import camera_params, mirror_cam2world
from .checkpoint import load_checkpoint, prefixed
from .loop import (
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
from .loss import g_nonsaturating_loss, lazy_r1_weight
from .triplane import TriplaneConfig, TriplaneGenerator, density_tv_loss, make_discriminator
from .triplane_data import TriplaneViews, ViewsConfig, build_views, mean_head

__all__ = [
    "CONFIGS",
    "TriplaneTrainConfig",
    "export_generator",
    "load_triplane_generator",
    "main",
    "SHIPPED",
    "seed_run",
    "shipped_triplane_checkpoint",
    "train",
]


@dataclass
class TriplaneTrainConfig(GANLoopConfig):
    """Everything a tri-plane training run depends on (stored in every checkpoint); the
    shared loop's fields (batch, steps, max_minutes, Adam, R1, intervals, seed) are
    :class:`~facelab.gan.loop.GANLoopConfig`'s.

    Attributes:
        name: config name. ``views``: :class:`ViewsConfig` fields (the world the data comes
            from); ``generator``: :class:`TriplaneConfig` fields; ``d_channel_max``: D width.
        steps: planned steps (4000 by default); Adam as EG3D (0.0025, 0.002, (0, 0.99)).
        density_weight, density_interval: EG3D's density regulariser (0.25 every 4 steps).
        swap_prob: probability of swapping the generator's conditioning pose.
        mirror: probability of mirroring a real image with its camera.
        ema_beta: per-step EMA decay of G_ema.
    """

    name: str = "custom"
    views: dict = field(default_factory=dict)
    generator: dict = field(default_factory=dict)
    d_channel_max: int = 64
    steps: int = 4000
    density_weight: float = 0.25
    density_interval: int = 4
    swap_prob: float = 0.5
    mirror: float = 0.5
    ema_beta: float = 0.995

    def gen_config(self) -> TriplaneConfig:
        return TriplaneConfig(**self.generator)

    def views_config(self) -> ViewsConfig:
        d = dict(self.views)
        for k in ("yaw_range", "pitch_range", "roll_range"):
            if k in d:
                d[k] = tuple(d[k])
        return ViewsConfig(**d)


CONFIGS: dict[str, TriplaneTrainConfig] = {
    # The shipped run, planned for 2 h at one thread on a 2-core CPU: 32 px planes x 16 ch,
    # 32 px neural rendering, 16 + 8 samples per ray, batch 8. Measured at 1 thread: 1.05 s of
    # CPU per step (G+D fwd+bwd with lazy R1 and the density regulariser; 612 s for 580
    # steps); wall time 3.6-21 s per step under nice 19 at load 10-13. Two hours of a free
    # core are ~6,800 steps; 3,000 planned steps fit two hours of half a core.
    "cpu-32": TriplaneTrainConfig(
        name="cpu-32",
        views={},
        generator={},
        batch=8,
        steps=3000,
        max_minutes=120.0,
    ),
    # The shipped run: cpu-32 plus the template density prior (TriplaneConfig.template_prior):
    # the 3DMM's mean head as a two-sided depth hull, beta = 20 on the density logit, so the
    # field starts as a solid head and the GAN learns colour and the geometric residual.
    # Without it (cpu-32, 3000 steps, 125 min) the field stays a semi-transparent fog
    # (opacity 0.33, relief 0.13 vs the world's 0.30). Measured at one thread: 0.44 s per
    # step on a free core (30-step smoke run and the first 350 steps); 10,000 steps planned
    # (75-90 min), capped at 115 min.
    "cpu-32-prior": TriplaneTrainConfig(
        name="cpu-32-prior",
        views={},
        generator={"template_prior": 20.0},
        batch=8,
        steps=10000,
        max_minutes=115.0,
    ),
    # Smoke test (seconds): the loop, checkpoint and resume, not a model.
    "tiny": TriplaneTrainConfig(
        name="tiny",
        views={"length": 8, "chunk": 8, "image_size": 32, "model": "builtin", "realism": 0.0},
        generator={
            "plane_res": 8,
            "plane_channels": 4,
            "channel_max": 16,
            "channel_base": 64,
            "z_dim": 8,
            "w_dim": 16,
            "mapping_layers": 1,
            "hidden": 8,
            "render_res": 8,
            "n_samples": 6,
            "n_importance": 4,
        },
        d_channel_max=16,
        batch=4,
        steps=4,
        log_interval=1,
        ckpt_interval=2,
    ),  # fmt: skip
    # For a GPU (not run here): EG3D-like proportions at 64 px neural rendering + 128 px SR.
    "gpu-128": TriplaneTrainConfig(
        name="gpu-128",
        views={"image_size": 128, "length": 50_000},
        generator={
            "plane_res": 128,
            "plane_channels": 32,
            "channel_max": 256,
            "channel_base": 16384,
            "z_dim": 256,
            "w_dim": 256,
            "mapping_layers": 8,
            "hidden": 64,
            "features": 32,
            "render_res": 64,
            "n_samples": 48,
            "n_importance": 48,
            "sr_res": 128,
        },
        d_channel_max=256,
        batch=32,
        steps=100_000,
        ema_beta=0.999,
        ckpt_interval=2000,
    ),  # fmt: skip
}


# ------------------------------------------------------------------------------- helpers


def real_batch(
    views: TriplaneViews, idx: torch.Tensor, res: int, mirror: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Real images ``(B, 3, res, res)`` in [-1, 1] (area-downsampled) and their cameras
    ``(B, 25)``; samples with ``mirror`` True are flipped with their camera mirrored."""
    img = views.image[idx].float() / 127.5 - 1.0
    if img.shape[-1] != res:
        img = F.adaptive_avg_pool2d(img, res)
    c2w = views.c2w[idx]
    m = mirror.view(-1, 1, 1, 1)
    img = torch.where(m, img.flip(-1), img)
    c2w = torch.where(mirror.view(-1, 1, 1), mirror_cam2world(c2w), c2w)
    return img, camera_params(c2w, views.K_norm[None])


def sample_cameras(
    views: TriplaneViews, n: int, g: torch.Generator, mirror_p: float
) -> torch.Tensor:
    """``(n, 25)`` cameras drawn from the data's poses (randomly mirrored)."""
    idx = torch.randint(0, len(views), (n,), generator=g)
    c2w = views.c2w[idx]
    m = torch.rand(n, generator=g) < mirror_p
    c2w = torch.where(m.view(-1, 1, 1), mirror_cam2world(c2w), c2w)
    return camera_params(c2w, views.K_norm[None])


# --------------------------------------------------------------------------------- train


def train(
    cfg: TriplaneTrainConfig,
    out_dir: str | Path,
    views_dir: str | Path,
    resume: bool = True,
    command: str = "",
    progress: bool = True,
) -> dict:
    """Train (or resume) and return the last log entry. See the module doc."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    views_dir = Path(views_dir)
    build_views(views_dir, cfg.views_config(), progress=progress)
    views = TriplaneViews(views_dir)
    gcfg = cfg.gen_config()
    torch.manual_seed(cfg.seed)
    G = TriplaneGenerator(gcfg)
    if gcfg.template_prior > 0:  # the 3DMM's mean head as the density prior
        G.set_template(*mean_head(cfg.views_config()))
    D = make_discriminator(gcfg, channel_max=cfg.d_channel_max)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    nets = {"G": G, "G_ema": G_ema, "D": D}
    opts = {"opt_G": opt_g, "opt_D": opt_d}
    g = torch.Generator().manual_seed(cfg.seed)
    step, wall, log = 0, 0.0, []
    meta = resume_run(out_dir, nets, opts, g) if resume else None
    if meta is not None:
        step, wall = int(meta["step"]), float(meta.get("wall_time_s", 0.0))
        log = read_log(out_dir / "log.jsonl", upto_step=step)
        if progress:
            print(f"resumed at step {step} ({wall / 60:.1f} min so far)", flush=True)
    res = gcfg.out_res
    B = cfg.batch
    max_s = None if cfg.max_minutes is None else cfg.max_minutes * 60
    loop = TrainingLoop(step, cfg.steps, cfg.log_interval, cfg.ckpt_interval, max_s, wall)

    def cameras() -> tuple[torch.Tensor, torch.Tensor]:
        """``(c_cond, c_render)``: a data pose to render from and, with ``swap_prob``,
        another one for the mapping network's conditioning."""
        c_fake = sample_cameras(views, B, g, cfg.mirror)
        swap = torch.rand(B, generator=g) < cfg.swap_prob
        return torch.where(swap[:, None], sample_cameras(views, B, g, cfg.mirror), c_fake), c_fake

    def d_batch():
        idx = torch.randint(0, len(views), (B,), generator=g)
        mir = torch.rand(B, generator=g) < cfg.mirror
        real, c_real = real_batch(views, idx, res, mir)
        c_cond, c_fake = cameras()
        z = torch.randn(B, gcfg.z_dim, generator=g)
        with torch.no_grad():
            fake = G(z, c_cond, c_fake)["image"]
        return real, c_real, fake, c_fake

    def step_fn(t: int) -> dict[str, float | None]:
        def g_losses() -> dict[str, torch.Tensor]:
            z = torch.randn(B, gcfg.z_dim, generator=g)
            c_cond, c_fake = cameras()
            out = G(z, c_cond, c_fake, update_w_avg=0.995)
            ls = {"total": g_nonsaturating_loss(D(out["image"], c_fake)), "opacity": out["opacity"]}
            if cfg.density_weight > 0 and t % cfg.density_interval == 0:
                ls["density_tv"] = density_tv_loss(G, out["planes"], n_points=500, generator=g)
                ls["total"] = (
                    ls["total"] + cfg.density_weight * cfg.density_interval * ls["density_tv"]
                )
            return ls

        r1_w = lazy_r1_weight(t, cfg.r1_gamma, cfg.r1_interval)
        o = adversarial_step(G, D, G_ema, opt_g, opt_d, d_batch, g_losses, r1_w, cfg.ema_beta)
        return {"loss_d": o["loss"], "loss_g": o["total"], "d_real": o["logits_real"].mean(),
                "d_fake": o["logits_fake"].mean(), "opacity": o["opacity"].mean(),
                "r1": o.get("r1"), "density_tv": o.get("density_tv")}  # fmt: skip

    def log_fn(t: int, acc: dict[str, list[float]], saving: bool) -> None:
        entry = {"step": t, "images": t * B, "wall_min": round(loop.wall_time() / 60, 2)}
        sums = ("r1", "density_tv")  # summed over the interval (taken every k steps)
        entry.update({k: round(sum(v) / len(v), 4) for k, v in acc.items() if k not in sums})
        entry.update({k: round(sum(acc[k]), 5) for k in sums if k in acc})
        log.append(entry)
        if progress:
            print(json.dumps(entry), flush=True)

    def save_fn(t: int) -> None:
        meta = {
            "kind": "triplane-gan",
            "config": cfg.to_dict(),
            "command": command,
            "seed": cfg.seed,
            "step": t,
            "steps_planned": cfg.steps,
            "images_seen": t * B,
            "wall_time_s": round(loop.wall_time(), 1),
            "threads": torch.get_num_threads(),
            "views_meta": views.meta,
            "last_log": log[-1] if log else None,
        }
        save_run(out_dir, nets, opts, meta, g, log)

    loop.run(step_fn, log_fn, save_fn)
    return log[-1] if log else {}


def export_generator(run_dir: str | Path, stem: str | Path, log_tail: int | None = None) -> Path:
    """Write the shippable checkpoint ``stem.{safetensors,json}`` (G_ema, G, D, optimizers,
    RNG — everything needed to resume) and ``stem.log.jsonl`` from a run's ``last``."""

    def status(meta: dict) -> str:
        done = meta["step"] >= meta["steps_planned"]
        return (
            f"{meta['step']} of {meta['steps_planned']} planned steps "
            f"({'complete' if done else 'partial: resume to continue'})"
        )

    return export_run(run_dir, stem, status)


def seed_run(stem: str | Path, run_dir: str | Path) -> bool:
    """Copy an exported checkpoint (+ its log) into ``run_dir/last`` unless the run already
    has one, so that ``train(..., resume=True)`` continues it. Returns True if copied."""
    import shutil

    from .checkpoint import checkpoint_paths

    run_dir = Path(run_dir)
    if (run_dir / "last.json").is_file():
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    w, j = checkpoint_paths(stem)
    shutil.copyfile(w, run_dir / "last.safetensors")
    shutil.copyfile(j, run_dir / "last.json")
    log = Path(str(Path(stem).with_suffix("")) + ".log.jsonl")
    if log.is_file():
        shutil.copyfile(log, run_dir / "log.jsonl")
    return True


SHIPPED = "cpu-32-prior"
"""The tri-plane checkpoint the book, ``facelab invert3d`` and the benchmarks load."""


def shipped_triplane_checkpoint(name: str = SHIPPED) -> Path:
    """The stem ``facelab/assets/triplane_gan/NAME`` of a shipped tri-plane checkpoint
    (``cpu-32-prior``: the template-prior generator; ``cpu-32``: EG3D's design, no prior)."""
    stem = Path(__file__).resolve().parents[1] / "assets" / "triplane_gan" / name
    if not stem.with_suffix(".json").is_file():
        have = sorted(p.stem for p in stem.parent.glob("*.json"))
        raise InvalidInput(f"no shipped tri-plane checkpoint {name!r}; shipped: {have}")
    return stem


def load_triplane_generator(
    stem: str | Path, ema: bool = True, device: str | torch.device = "cpu"
) -> tuple[TriplaneGenerator, dict]:
    """``(G, meta)`` from a checkpoint (``G_ema`` by default), in eval mode."""
    tensors, meta = load_checkpoint(stem, device=device)
    if meta.get("kind") != "triplane-gan":
        raise InvalidInput(f"{stem}: not a tri-plane GAN checkpoint (kind={meta.get('kind')!r})")
    cfg = TriplaneTrainConfig.from_dict(meta["config"])
    G = TriplaneGenerator(cfg.gen_config()).to(device)
    G.load_state_dict(prefixed(tensors, "G_ema" if ema else "G"))
    return G.eval().requires_grad_(False), meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m facelab.gan.triplane_train", description=__doc__.split("\n")[0]
    )
    add_run_arguments(p, CONFIGS, "cpu-32")
    p.add_argument(
        "--views", default=None, help="views directory (default ~/.cache/facelab/triplane-views-v1)"
    )
    args = p.parse_args(argv)
    if args.export:
        print(export_generator(args.out, args.export))
        return 0
    try:
        set_threads(args.threads)
    except InvalidInput as e:
        p.error(str(e))
    if args.resume_from:  # e.g. facelab/assets/triplane_gan/cpu-32
        seed_run(args.resume_from, args.out)
        args.resume = True
    cfg = config_from_run_args(args, CONFIGS)
    views = args.views or os.path.expanduser("~/.cache/facelab/triplane-views-v1")
    argv_ = argv if argv is not None else sys.argv[1:]
    train(cfg, args.out, views, resume=args.resume,
          command=" ".join(["python", "-m", "facelab.gan.triplane_train", *argv_]))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
