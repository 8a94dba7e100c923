"""Training the tri-plane 3D GAN (:mod:`facelab.gan.triplane`) on world views with known cameras.

The generic loop in :mod:`facelab.gan.train` trains on a tensor of images with no camera; a
3D GAN needs three more things per step, which this small loop adds on top of the shared
pieces (:mod:`facelab.gan.loss`, :mod:`facelab.gan.checkpoint`):

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
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import InvalidInput
from ..geometry.eg3d import camera_params, mirror_cam2world
from .checkpoint import load_checkpoint, prefixed, save_checkpoint
from .loss import d_logistic_loss, g_nonsaturating_loss, r1_penalty
from .triplane import TriplaneConfig, TriplaneGenerator, density_tv_loss, make_discriminator
from .triplane_data import TriplaneViews, ViewsConfig, build_views

__all__ = [
    "CONFIGS",
    "TriplaneTrainConfig",
    "export_generator",
    "load_triplane_generator",
    "main",
    "seed_run",
    "train",
]


@dataclass
class TriplaneTrainConfig:
    """Everything a tri-plane training run depends on (stored in every checkpoint).

    Attributes:
        name: config name. ``views``: :class:`ViewsConfig` fields (the world the data comes
            from); ``generator``: :class:`TriplaneConfig` fields; ``d_channel_max``: D width.
        batch, steps, max_minutes: images per step, planned steps, and a wall-time stop for
            one invocation (a checkpoint is written when it triggers).
        lr_g, lr_d, betas: Adam (EG3D: 0.0025, 0.002, (0, 0.99)).
        r1_gamma, r1_interval: lazy R1 on reals.
        density_weight, density_interval: EG3D's density regulariser (0.25 every 4 steps).
        swap_prob: probability of swapping the generator's conditioning pose.
        mirror: probability of mirroring a real image with its camera.
        ema_beta: per-step EMA decay of G_ema.
        log_interval, ckpt_interval: steps between log lines / checkpoints.
        seed: master seed.
    """

    name: str = "custom"
    views: dict = field(default_factory=dict)
    generator: dict = field(default_factory=dict)
    d_channel_max: int = 64
    batch: int = 8
    steps: int = 4000
    max_minutes: float | None = None
    lr_g: float = 0.0025
    lr_d: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 1.0
    r1_interval: int = 16
    density_weight: float = 0.25
    density_interval: int = 4
    swap_prob: float = 0.5
    mirror: float = 0.5
    ema_beta: float = 0.995
    log_interval: int = 25
    ckpt_interval: int = 100
    seed: int = 0

    def gen_config(self) -> TriplaneConfig:
        return TriplaneConfig(**self.generator)

    def views_config(self) -> ViewsConfig:
        d = dict(self.views)
        for k in ("yaw_range", "pitch_range", "roll_range"):
            if k in d:
                d[k] = tuple(d[k])
        return ViewsConfig(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TriplaneTrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InvalidInput(f"unknown TriplaneTrainConfig fields {sorted(unknown)}")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


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


def _opt_tensors(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    out = {}
    for idx, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"{prefix}.{idx}.{k}"] = torch.as_tensor(v)
    return out


def _load_opt(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in prefixed(tensors, prefix).items():
        idx, name = k.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def _rng_tensors(g: torch.Generator) -> dict[str, torch.Tensor]:
    return {"rng.data": g.get_state(), "rng.torch": torch.get_rng_state()}


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


def _ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    with torch.no_grad():
        for pe, p in zip(G_ema.parameters(), G.parameters()):
            pe.lerp_(p, 1 - beta)
        for be, b in zip(G_ema.buffers(), G.buffers()):
            be.copy_(b)


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
    D = make_discriminator(gcfg, channel_max=cfg.d_channel_max)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    g = torch.Generator().manual_seed(cfg.seed)
    step, wall, log = 0, 0.0, []
    last = out_dir / "last"
    log_path = out_dir / "log.jsonl"
    if resume and last.with_suffix(".json").is_file():
        tensors, meta = load_checkpoint(last)
        G.load_state_dict(prefixed(tensors, "G"))
        G_ema.load_state_dict(prefixed(tensors, "G_ema"))
        D.load_state_dict(prefixed(tensors, "D"))
        _load_opt(opt_g, tensors, "opt_G")
        _load_opt(opt_d, tensors, "opt_D")
        g.set_state(tensors["rng.data"])
        torch.set_rng_state(tensors["rng.torch"])
        step, wall = int(meta["step"]), float(meta.get("wall_time_s", 0.0))
        if log_path.is_file():
            log = [json.loads(x) for x in log_path.read_text().splitlines() if x.strip()]
            log = [e for e in log if e["step"] <= step]
        if progress:
            print(f"resumed at step {step} ({wall / 60:.1f} min so far)", flush=True)
    res = gcfg.out_res
    B = cfg.batch
    t_start = time.time()
    t_last = t_start
    acc: dict[str, float] = {}

    def save() -> None:
        tensors = {f"G.{k}": v for k, v in G.state_dict().items()}
        tensors.update({f"G_ema.{k}": v for k, v in G_ema.state_dict().items()})
        tensors.update({f"D.{k}": v for k, v in D.state_dict().items()})
        tensors.update(_opt_tensors(opt_g, "opt_G"))
        tensors.update(_opt_tensors(opt_d, "opt_D"))
        tensors.update(_rng_tensors(g))
        meta = {
            "kind": "triplane-gan",
            "config": cfg.to_dict(),
            "command": command,
            "seed": cfg.seed,
            "step": step,
            "steps_planned": cfg.steps,
            "images_seen": step * B,
            "wall_time_s": round(wall + time.time() - t_start, 1),
            "threads": torch.get_num_threads(),
            "views_meta": views.meta,
            "last_log": log[-1] if log else None,
        }
        save_checkpoint(last, tensors, meta)
        log_path.write_text("".join(json.dumps(e) + "\n" for e in log))

    while step < cfg.steps:
        t0 = time.time()
        G.train()
        # ---------------- D step
        idx = torch.randint(0, len(views), (B,), generator=g)
        mir = torch.rand(B, generator=g) < cfg.mirror
        real, c_real = real_batch(views, idx, res, mir)
        c_fake = sample_cameras(views, B, g, cfg.mirror)
        swap = torch.rand(B, generator=g) < cfg.swap_prob
        c_cond = torch.where(swap[:, None], sample_cameras(views, B, g, cfg.mirror), c_fake)
        z = torch.randn(B, gcfg.z_dim, generator=g)
        with torch.no_grad():
            fake = G(z, c_cond, c_fake)["image"]
        do_r1 = cfg.r1_gamma > 0 and step % cfg.r1_interval == 0
        real_in = real.detach().requires_grad_(do_r1)
        logits_real = D(real_in, c_real)
        logits_fake = D(fake, c_fake)
        loss_d = d_logistic_loss(logits_real, logits_fake)
        if do_r1:
            r1 = r1_penalty(real_in, logits_real)
            loss_d = loss_d + 0.5 * cfg.r1_gamma * cfg.r1_interval * r1
            acc["r1"] = acc.get("r1", 0.0) + float(r1.detach())
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # ---------------- G step
        z = torch.randn(B, gcfg.z_dim, generator=g)
        c_fake = sample_cameras(views, B, g, cfg.mirror)
        swap = torch.rand(B, generator=g) < cfg.swap_prob
        c_cond = torch.where(swap[:, None], sample_cameras(views, B, g, cfg.mirror), c_fake)
        D.requires_grad_(False)
        out = G(z, c_cond, c_fake, update_w_avg=0.995)
        loss_g = g_nonsaturating_loss(D(out["image"], c_fake))
        if cfg.density_weight > 0 and step % cfg.density_interval == 0:
            tv = density_tv_loss(G, out["planes"], n_points=500, generator=g)
            loss_g = loss_g + cfg.density_weight * cfg.density_interval * tv
            acc["density_tv"] = acc.get("density_tv", 0.0) + float(tv.detach())
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        _ema(G_ema, G, cfg.ema_beta)
        step += 1
        acc["loss_d"] = acc.get("loss_d", 0.0) + float(loss_d.detach())
        acc["loss_g"] = acc.get("loss_g", 0.0) + float(loss_g.detach())
        acc["d_real"] = acc.get("d_real", 0.0) + float(logits_real.detach().mean())
        acc["d_fake"] = acc.get("d_fake", 0.0) + float(logits_fake.detach().mean())
        acc["opacity"] = acc.get("opacity", 0.0) + float(out["opacity"].detach().mean())
        acc["n"] = acc.get("n", 0.0) + 1
        acc["step_s"] = acc.get("step_s", 0.0) + time.time() - t0
        if step % cfg.log_interval == 0 or step == cfg.steps:
            n = acc.pop("n")
            entry = {
                "step": step,
                "images": step * B,
                "wall_min": round((wall + time.time() - t_start) / 60, 2),
            }
            entry.update(
                {k: round(v / n, 4) for k, v in acc.items() if k not in ("r1", "density_tv")}
            )
            for k in ("r1", "density_tv"):
                if k in acc:
                    entry[k] = round(acc[k], 5)
            log.append(entry)
            acc = {}
            if progress:
                print(json.dumps(entry), flush=True)
        minutes = (time.time() - t_start) / 60
        stop = cfg.max_minutes is not None and minutes >= cfg.max_minutes
        if step % cfg.ckpt_interval == 0 or step == cfg.steps or stop:
            save()
            t_last = time.time()
        if stop:
            break
    if t_last < time.time() - 1:
        save()
    return log[-1] if log else {}


def export_generator(run_dir: str | Path, stem: str | Path, log_tail: int | None = None) -> Path:
    """Write the shippable checkpoint ``stem.{safetensors,json}`` (G_ema, G, D, optimizers,
    RNG — everything needed to resume) and ``stem.log.jsonl`` from a run's ``last``."""
    run_dir = Path(run_dir)
    tensors, meta = load_checkpoint(run_dir / "last")
    meta = dict(meta)
    meta.pop("format", None)
    meta.pop("version", None)
    meta["status"] = (
        f"{meta['step']} of {meta['steps_planned']} planned steps "
        f"({'complete' if meta['step'] >= meta['steps_planned'] else 'partial: resume to continue'})"
    )
    wpath, _ = save_checkpoint(stem, tensors, meta)
    log = (run_dir / "log.jsonl").read_text() if (run_dir / "log.jsonl").is_file() else ""
    Path(str(stem) + ".log.jsonl").write_text(log)
    return wpath


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
    p.add_argument("--config", default="cpu-32", choices=sorted(CONFIGS))
    p.add_argument("--out", required=True, help="run directory (checkpoints, log)")
    p.add_argument(
        "--views", default=None, help="views directory (default ~/.cache/facelab/triplane-views-v1)"
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/last if it exists")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--export", default=None, help="only export OUT/last to this stem and exit")
    p.add_argument(
        "--resume-from",
        default=None,
        help="start OUT from an exported checkpoint (e.g. facelab/assets/triplane_gan/cpu-32) "
        "if OUT has none yet; implies --resume",
    )
    args = p.parse_args(argv)
    if args.export:
        print(export_generator(args.out, args.export))
        return 0
    if args.threads < 0:
        p.error(f"--threads must be >= 0 (0: torch's default), got {args.threads}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.resume_from:
        seed_run(args.resume_from, args.out)
        args.resume = True
    cfg = copy.deepcopy(CONFIGS[args.config])
    if args.steps is not None:
        cfg.steps = args.steps
    if args.max_minutes is not None:
        cfg.max_minutes = args.max_minutes
    if args.seed is not None:
        cfg.seed = args.seed
    views = args.views or os.path.expanduser("~/.cache/facelab/triplane-views-v1")
    train(
        cfg,
        args.out,
        views,
        resume=args.resume,
        command=" ".join(
            [
                "python",
                "-m",
                "facelab.gan.triplane_train",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
