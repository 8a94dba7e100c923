"""The GAN training loop shared by every facelab GAN trainer.

Three trainers use it: the texture GAN (``facelab train``, ``facelab.gan.train``), the
tri-plane 3D GAN (``facelab.gan.triplane_train``) and GAR (``facelab.methods.gar.train``).
What they share lives here, once:

- :func:`discriminator_loss`: the non-saturating logistic D loss with lazy R1 on the same
  forward pass,
  ``L_D = softplus(D(x_fake)) + softplus(-D(x_real)) + w_R1 ||grad_x D(x_real)||^2``
  with ``w_R1 = k gamma / 2`` every ``k`` steps (:func:`facelab.gan.loss.lazy_r1_weight`);
- :func:`gradient_step`: one optimiser step on a loss given as micro-batch terms (each
  back-propagated as it comes, the gradients synchronised, e.g. averaged over processes);
- :func:`adversarial_step`: one D update, one G update, the EMA update; the trainer says
  what differs through two hooks: ``d_batch()`` (the real images and the detached fakes, with
  their conditioning: cameras for the tri-plane GAN, none for GAR) and ``g_losses()`` (the
  generator call and its losses: the adversarial term plus GAR's consistency terms or the
  tri-plane density regulariser);
- :func:`ema_update`: ``G_ema <- beta G_ema + (1 - beta) G``;
- :class:`TrainingLoop`: the bookkeeping around the steps: the step counter, the time cap,
  the mean of every logged number over a ``log_interval``, checkpoints every
  ``ckpt_interval`` steps and at the end, the tqdm bar;
- :func:`read_log` / :func:`write_log`: the JSON-lines log (one object per line);
- :func:`add_run_arguments` / :func:`config_from_run_args` / :func:`set_threads`: the
  command-line options of a trainer (``--config``, ``--out``, ``--resume``, ``--steps``,
  ``--max-minutes``, ``--seed``, ``--threads``, ``--export``, ``--resume-from``) and
  a run directory (``OUT/last.{safetensors,json}`` + ``OUT/log.jsonl``): :func:`save_run`,
  :func:`resume_run`, and :func:`export_run` (its ``last`` checkpoint as a shippable file);
- :class:`GANLoopConfig`: the optimisation and bookkeeping fields every trainer's config
  shares (batch, steps, time cap, Adam, R1, intervals, seed), each trainer's config
  dataclass adds its own.

Checkpoints (networks, optimizers, RNG states, meta) are
:func:`facelab.gan.checkpoint.save_training_state` /
:func:`~facelab.gan.checkpoint.load_training_state`.

The texture GAN's step is StyleGAN2's (G first, the D phase reusing its images, micro-batches,
gradients averaged over processes, R1 in a pass of its own with its own augmentation), so
it does not call :func:`adversarial_step`; it is built from the same pieces
(:func:`gradient_step`, :func:`discriminator_loss`, :func:`ema_update`) inside
:class:`TrainingLoop`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidInput
from .checkpoint import (
    JsonConfig,
    load_checkpoint,
    load_training_state,
    save_checkpoint,
    save_training_state,
)
from .loss import d_logistic_loss, r1_penalty

__all__ = [
    "GANLoopConfig",
    "TrainingLoop",
    "add_run_arguments",
    "adversarial_step",
    "config_from_run_args",
    "discriminator_loss",
    "ema_update",
    "export_run",
    "gradient_step",
    "read_log",
    "resume_run",
    "save_run",
    "set_threads",
    "write_log",
]


@dataclass
class GANLoopConfig(JsonConfig):
    """The fields of a GAN training config that the shared loop reads (a trainer's config
    inherits them and may change their defaults).

    Attributes:
        batch: images per step; ``steps``: planned training steps; ``max_minutes``: also stop
            (with a checkpoint) after this wall time of one invocation (None: no cap).
        lr_g, lr_d, betas: Adam settings of G and D.
        r1_gamma, r1_interval: R1 weight ``gamma`` and laziness ``k`` (the penalty is taken
            every ``k`` steps with weight ``k gamma / 2``; ``gamma = 0``: none).
        log_interval, ckpt_interval: steps between log rows / checkpoints.
        seed: master seed.
    """

    batch: int = 8
    steps: int = 1000
    max_minutes: float | None = None
    lr_g: float = 0.0025
    lr_d: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 1.0
    r1_interval: int = 16
    log_interval: int = 25
    ckpt_interval: int = 100
    seed: int = 0


def ema_update(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    """``G_ema <- beta G_ema + (1 - beta) G`` for every parameter (in place, no gradient);
    buffers (noise constants, ``w_avg``) are copied."""
    with torch.no_grad():
        for pe, p in zip(G_ema.parameters(), G.parameters()):
            pe.lerp_(p, 1 - beta)
        for be, b in zip(G_ema.buffers(), G.buffers()):
            be.copy_(b)


def discriminator_loss(
    D: torch.nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    r1_weight: float = 0.0,
    c_real: torch.Tensor | None = None,
    c_fake: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """``L_D = mean softplus(D(fake)) + mean softplus(-D(real)) [+ r1_weight R1(real)]``.

    ``R1 = mean_b ||grad_x D(x_b)||^2`` is taken on the same forward pass as the loss when
    ``r1_weight > 0`` (pass :func:`facelab.gan.loss.lazy_r1_weight`). ``c_real`` / ``c_fake``
    condition D (cameras), None for an unconditional D.

    Returns ``{"loss", "logits_real", "logits_fake"}`` and ``"r1"`` (unweighted) if taken.
    """
    do_r1 = r1_weight > 0
    real_in = real.detach().requires_grad_(do_r1)
    logits_real = D(real_in, c_real)
    logits_fake = D(fake, c_fake)
    out = {"logits_real": logits_real, "logits_fake": logits_fake}
    loss = d_logistic_loss(logits_real, logits_fake)
    if do_r1:
        out["r1"] = r1_penalty(real_in, logits_real)
        loss = loss + r1_weight * out["r1"]
    out["loss"] = loss
    return out


def gradient_step(
    opt: torch.optim.Optimizer,
    losses: Iterable[torch.Tensor],
    accum: int = 1,
    sync: Callable[[], None] | None = None,
) -> list[torch.Tensor]:
    """One step of ``opt`` on ``L = sum_k L_k / accum``: each term ``L_k`` of ``losses`` (a
    micro-batch's loss; an iterator may build them one at a time) is back-propagated as it
    comes, then ``sync()`` (e.g. averaging the gradients over processes) and ``opt.step()``.
    Returns the terms, detached."""
    opt.zero_grad(set_to_none=True)
    out = []
    for loss in losses:
        (loss / accum).backward()
        out.append(loss.detach())
    if sync is not None:
        sync()
    opt.step()
    return out


def adversarial_step(
    G: torch.nn.Module,
    D: torch.nn.Module,
    G_ema: torch.nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    d_batch: Callable[[], tuple[torch.Tensor, Any, torch.Tensor, Any]],
    g_losses: Callable[[], dict[str, torch.Tensor]],
    r1_weight: float = 0.0,
    ema_beta: float = 0.999,
) -> dict[str, torch.Tensor]:
    """One training step: a D update, a G update, the EMA update.

    1. ``real, c_real, fake, c_fake = d_batch()`` (``fake`` generated without gradient);
       D descends :func:`discriminator_loss` (with R1 when ``r1_weight > 0``);
    2. with D frozen, G descends ``g_losses()["total"]`` (the hook calls G and D and returns
       the total and any other terms it wants logged);
    3. :func:`ema_update` of ``G_ema`` with ``ema_beta``.

    Returns the D terms (:func:`discriminator_loss`) and the G terms, detached.
    """
    G.train()
    real, c_real, fake, c_fake = d_batch()
    d = discriminator_loss(D, real, fake, r1_weight, c_real, c_fake)
    gradient_step(opt_d, [d["loss"]])
    D.requires_grad_(False)
    g = g_losses()
    gradient_step(opt_g, [g["total"]])
    D.requires_grad_(True)
    ema_update(G_ema, G, ema_beta)
    return {k: v.detach() for k, v in {**d, **g}.items()}


def read_log(path: str | os.PathLike, upto_step: int | None = None) -> list[dict]:
    """The rows of a JSON-lines log (``[]`` if there is none); with ``upto_step``, only the
    rows with ``row["step"] <= upto_step`` (a resumed run drops what came after its
    checkpoint)."""
    p = Path(path)
    if not p.is_file():
        return []
    rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    if upto_step is not None:
        rows = [r for r in rows if r["step"] <= upto_step]
    return rows


def write_log(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write ``rows`` as JSON lines, atomically (temp file + rename)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, p)


class TrainingLoop:
    """Runs ``step_fn`` from ``step`` to ``steps`` with logging, checkpoints and a time cap.

    :meth:`run` calls, for each step ``t``: ``values = step_fn(t)`` (a dict of numbers to
    log; None values are skipped); appends them, and ``step_s`` (its seconds), to the
    interval's lists; then ``log_fn(t + 1, lists, saving)`` every ``log_interval`` steps and
    ``save_fn(t + 1)`` every ``ckpt_interval`` steps. The last step of a run (``steps``
    reached, or ``max_seconds`` of this invocation spent: checked before each step) is
    always logged and saved. ``saving`` tells ``log_fn`` that a checkpoint follows (e.g. to
    add metrics to the row).

    Args:
        step, steps: the first step to run (a resumed run's) and the planned total.
        log_interval, ckpt_interval: steps between log rows / checkpoints.
        max_seconds: time cap of this invocation (None: none), counted from ``t_start``
            (``time.perf_counter()``; default: now).
        wall0: wall time of the previous invocations (a resumed run's), for :meth:`wall_time`.
        bar: a tqdm description to show a progress bar (None: no bar); ``bar_keys`` maps
            the bar's fields to keys of ``step_fn``'s values.
    """

    def __init__(
        self,
        step: int,
        steps: int,
        log_interval: int,
        ckpt_interval: int,
        max_seconds: float | None = None,
        wall0: float = 0.0,
        t_start: float | None = None,
        bar: str | None = None,
        bar_keys: dict[str, str] | None = None,
    ) -> None:
        self.step, self.steps = int(step), int(steps)
        self.log_interval, self.ckpt_interval = int(log_interval), int(ckpt_interval)
        self.max_seconds, self.wall0 = max_seconds, float(wall0)
        self.t_start = time.perf_counter() if t_start is None else t_start
        self.bar, self.bar_keys = bar, bar_keys or {}
        self.stop_reason = "steps"

    def elapsed(self) -> float:
        """Seconds since ``t_start`` (this invocation)."""
        return time.perf_counter() - self.t_start

    def wall_time(self) -> float:
        """Seconds of all invocations: ``wall0 + elapsed()``."""
        return self.wall0 + self.elapsed()

    def out_of_time(self) -> bool:
        return self.max_seconds is not None and self.elapsed() >= self.max_seconds

    def run(
        self,
        step_fn: Callable[[int], dict[str, float | None]],
        log_fn: Callable[[int, dict[str, list[float]], bool], None],
        save_fn: Callable[[int], None],
    ) -> str:
        """Run the steps; returns why it stopped: ``"steps"`` or ``"max_minutes"``."""
        bar = None
        if self.bar is not None:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.steps, initial=self.step, desc=self.bar, dynamic_ncols=True)
        acc: dict[str, list[float]] = {}
        logged = saved = self.step
        while self.step < self.steps:
            if self.out_of_time():
                self.stop_reason = "max_minutes"
                break
            t0 = time.perf_counter()
            values = step_fn(self.step)
            self.step += 1
            for k, v in values.items():
                if v is not None:
                    acc.setdefault(k, []).append(float(v))
            acc.setdefault("step_s", []).append(time.perf_counter() - t0)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({b: f"{values[k]:.3f}" for b, k in self.bar_keys.items()})
            end = self.step >= self.steps
            save = self.step % self.ckpt_interval == 0 or end
            if self.step % self.log_interval == 0 or end:
                log_fn(self.step, acc, save)
                acc, logged = {}, self.step
            if save:
                save_fn(self.step)
                saved = self.step
        if logged != self.step:  # stopped by the time cap between two log rows
            log_fn(self.step, acc, saved != self.step)
        if saved != self.step:
            save_fn(self.step)
        if bar is not None:
            bar.close()
        return self.stop_reason


# ------------------------------------------------------------- run directories, command line


def save_run(
    run_dir: str | os.PathLike,
    nets: dict[str, torch.nn.Module],
    opts: dict[str, torch.optim.Optimizer],
    meta: dict[str, Any],
    rng: torch.Generator,
    log: list[dict],
) -> None:
    """Write ``run_dir/last`` (:func:`~facelab.gan.checkpoint.save_training_state` of ``nets``,
    ``opts``, ``meta`` and the RNG states ``rng.data`` (the run's data generator ``rng``) and
    ``rng.torch``) and ``run_dir/log.jsonl``."""
    states = {"rng.data": rng.get_state(), "rng.torch": torch.get_rng_state()}
    save_training_state(Path(run_dir) / "last", nets, opts, meta, states)
    write_log(Path(run_dir) / "log.jsonl", log)


def resume_run(
    run_dir: str | os.PathLike,
    nets: dict[str, torch.nn.Module],
    opts: dict[str, torch.optim.Optimizer],
    rng: torch.Generator,
) -> dict[str, Any] | None:
    """Load ``run_dir/last`` (written by :func:`save_run`) into ``nets``, ``opts``, ``rng`` and
    torch's RNG; returns its meta, or None if the run has no checkpoint yet."""
    last = Path(run_dir) / "last"
    if not last.with_suffix(".json").is_file():
        return None
    tensors, meta = load_training_state(last, nets, opts)
    rng.set_state(tensors["rng.data"])
    torch.set_rng_state(tensors["rng.torch"])
    return meta


def export_run(
    run_dir: str | os.PathLike,
    stem: str | os.PathLike,
    status: Callable[[dict], str],
    keep: tuple[str, ...] | None = None,
    note: str | None = None,
) -> Path:
    """Write a run's ``run_dir/last`` checkpoint as ``stem.{safetensors,json}`` and its log
    as ``stem.log.jsonl``; returns the weights' path.

    ``meta["status"] = status(meta)`` says how far the run got; ``keep`` (tensor-name
    prefixes, e.g. ``("G_ema", "D")``) drops the rest (optimizer state), and ``note`` is
    then recorded as ``meta["exported"]``."""
    run_dir = Path(run_dir)
    tensors, meta = load_checkpoint(run_dir / "last")
    if keep is not None:
        tensors = {k: v for k, v in tensors.items() if k.split(".", 1)[0] in keep}
    meta = {k: v for k, v in meta.items() if k not in ("format", "version")}
    meta["status"] = status(meta)
    if note is not None:
        meta["exported"] = note
    wpath, _ = save_checkpoint(stem, tensors, meta)
    log = (run_dir / "log.jsonl").read_text() if (run_dir / "log.jsonl").is_file() else ""
    Path(str(stem) + ".log.jsonl").write_text(log)
    return wpath


def add_run_arguments(p: argparse.ArgumentParser, configs: dict, default: str) -> None:
    """The options of a trainer that works in a run directory ``--out`` (``OUT/last``,
    ``OUT/log.jsonl``): the named ``configs`` and the overrides read by
    :func:`config_from_run_args`."""
    p.add_argument("--config", default=default, choices=sorted(configs))
    p.add_argument("--out", required=True, help="run directory (checkpoints, log)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last if it exists")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--export", default=None, help="only export OUT/last to this stem and exit")
    p.add_argument(
        "--resume-from",
        default=None,
        help="start OUT from an exported checkpoint if OUT has none yet; implies --resume",
    )


def config_from_run_args(args: argparse.Namespace, configs: dict):
    """A copy of ``configs[args.config]`` with ``--steps``, ``--max-minutes``, ``--seed``."""
    cfg = copy.deepcopy(configs[args.config])
    if args.steps is not None:
        cfg.steps = args.steps
    if args.max_minutes is not None:
        cfg.max_minutes = args.max_minutes
    if args.seed is not None:
        cfg.seed = args.seed
    return cfg


def set_threads(n: int) -> None:
    """``--threads``: ``n`` torch threads, 0 for torch's default (one per core)."""
    if int(n) < 0:
        raise InvalidInput(f"--threads must be >= 0 (0: torch's default), got {n}")
    if int(n) > 0:
        torch.set_num_threads(int(n))
