"""The staged optimisation loop every analysis-by-synthesis fit runs.

A fit is a dictionary ``z`` of leaf tensors (one per parameter group) and a schedule of stages;
each stage (``name``, ``steps``, ``lr``, ``params``: the groups it moves) runs ``steps``
optimiser steps on the sum of the loss terms ``losses(stage)`` returns. Part I's
:func:`facelab.fit.photometric.fit_photometric` and GANFit's ``fit_crops`` both run
:func:`run_stages`; they differ only in their parameters and loss terms.

* **Schedule** (Adam): :func:`lr_factor` -- a linear warm-up over the first 10 % of the
  steps (Adam's first steps are full-size in every coordinate at once), then a cosine decay
  to 10 % of ``lr`` (a constant step jitters around the optimum instead of settling in it).
  ``"lbfgs"``: L-BFGS with a strong-Wolfe line search, ``lr = 1``, 5 iterations per step.
* **NaN guard**: after every step the loss and every tensor of ``z`` are checked; on a
  non-finite value the last finite state is restored and the run either raises
  :class:`~facelab.errors.FitDiverged` (``on_nan="raise"``) or stops with a warning
  (``on_nan="stop"``).
* **Constraints**: ``project()`` runs after every good step (e.g. blendshape weights clamped
  to [0, 1]) and before the state is saved as the last finite one.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..errors import FitDiverged, InvalidInput


class StageLike(Protocol):
    """What :func:`run_stages` reads of a stage (:class:`facelab.fit.photometric.Stage`)."""

    name: str
    steps: int
    lr: float
    params: tuple[str, ...]


@dataclass
class StageRun:
    """What :func:`run_stages` returns.

    Attributes:
        history: one dict per step: ``stage``, ``step``, ``loss`` and each loss term (terms
            whose name starts with ``_`` are left out).
        stage_seconds: wall time per stage.
        warnings: human-readable issues (a stage stopped by the NaN guard).
    """

    history: list[dict[str, float | str | int]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def lr_factor(n: int) -> Callable[[int], float]:
    """The learning-rate factor of step ``i`` of an ``n``-step Adam stage (for
    :class:`torch.optim.lr_scheduler.LambdaLR`): with ``w = max(1, n // 10)`` warm-up steps,

    .. math::
        f(i) = \\frac{i + 1}{w} \\; (i < w), \\qquad
        f(i) = 0.1 + 0.45 \\left(1 + \\cos \\pi \\frac{\\min(i - w, n)}{\\max(n - w, 1)}\\right)
        \\; (i \\ge w),

    a linear ramp to 1, then a cosine from 1 down to 0.1.
    """
    warm = max(1, n // 10)

    def f(i: int) -> float:
        if i < warm:
            return (i + 1) / warm
        return 0.1 + 0.45 * (1 + math.cos(math.pi * min(i - warm, n) / max(n - warm, 1)))

    return f


def run_stages(
    z: dict[str, torch.Tensor],
    stages: Sequence[StageLike],
    losses: Callable[[Any], dict[str, torch.Tensor]],
    *,
    optimizer: str = "adam",
    on_nan: str = "raise",
    project: Callable[[], None] | None = None,
    label: str = "fit",
    progress: bool = False,
    last_good: Callable[[], object] | None = None,
) -> StageRun:
    """Run ``stages`` in order on the leaf tensors ``z`` (see the module doc).

    Args:
        z: parameter groups, leaf tensors with ``requires_grad``; updated in place.
        stages: the schedule; a stage with no steps, or none of whose ``params`` is in ``z``,
            is skipped.
        losses: ``losses(stage) -> {name: scalar tensor}``; the loss is their sum.
        optimizer: ``"adam"`` (warm-up + cosine schedule, :func:`lr_factor`) or ``"lbfgs"``.
        on_nan: ``"raise"`` (:class:`~facelab.errors.FitDiverged`) or ``"stop"`` (restore,
            warn, stop).
        project: called after every good step (constraints on ``z``).
        label: the fit's name in the progress bar and in the divergence message.
        progress: show a tqdm progress bar.
        last_good: called after a divergence has restored ``z``; its value is attached to the
            raised :class:`~facelab.errors.FitDiverged` as ``.last_good``.

    Returns:
        :class:`StageRun` (history, seconds per stage, warnings).
    """
    if optimizer not in ("adam", "lbfgs"):
        raise InvalidInput(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    run = StageRun()
    stages = [s for s in stages if s.steps > 0]
    total = sum(s.steps for s in stages)
    bar = None
    if progress and total:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=label, leave=False)
    saved = {k: v.detach().clone() for k, v in z.items()}
    try:
        for stage in stages:
            t0 = time.perf_counter()
            tensors = [z[g] for g in stage.params if g in z]
            if not tensors:
                continue
            sched = None
            if optimizer == "adam":
                opt: torch.optim.Optimizer = torch.optim.Adam(tensors, lr=stage.lr)
                sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(stage.steps))
            else:
                opt = torch.optim.LBFGS(
                    tensors, lr=1.0, max_iter=5, history_size=10, line_search_fn="strong_wolfe"
                )
            stopped = False
            for step in range(stage.steps):
                terms: dict[str, torch.Tensor] = {}

                def closure(terms=terms, opt=opt, stage=stage) -> torch.Tensor:
                    opt.zero_grad()
                    tt = losses(stage)
                    loss = sum(tt.values())
                    if torch.isfinite(loss):
                        loss.backward()
                    terms.clear()
                    terms.update(tt)
                    terms["_total"] = loss
                    return loss

                if sched is not None:
                    loss = closure()
                    if torch.isfinite(loss):
                        opt.step()
                        sched.step()
                else:
                    loss = opt.step(closure)
                    loss = terms.get("_total", loss)
                finite = bool(torch.isfinite(loss)) and all(
                    bool(torch.isfinite(t).all()) for t in z.values()
                )
                if not finite:
                    with torch.no_grad():
                        for k, v in saved.items():
                            z[k].copy_(v)
                    msg = (
                        f"{label} diverged in stage {stage.name!r} at step {step}: "
                        "non-finite loss or parameters; the last finite parameters were restored"
                    )
                    if on_nan == "raise":
                        raise FitDiverged(
                            msg + (" (attached as .last_good)" if last_good else ""),
                            last_good=last_good() if last_good else None,
                        )
                    run.warnings.append(msg)
                    warnings.warn(msg, RuntimeWarning, stacklevel=3)
                    stopped = True
                    break
                if project is not None:
                    project()
                with torch.no_grad():
                    for k, v in z.items():
                        saved[k].copy_(v)
                rec: dict[str, float | str | int] = {
                    "stage": stage.name,
                    "step": step,
                    "loss": float(loss.detach()),
                }
                rec.update(
                    {k: float(v.detach()) for k, v in terms.items() if not k.startswith("_")}
                )
                run.history.append(rec)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(stage=stage.name, loss=f"{float(loss.detach()):.4g}")
            run.stage_seconds[stage.name] = time.perf_counter() - t0
            if stopped:
                break
    finally:
        if bar is not None:
            bar.close()
    return run


__all__ = ["StageLike", "StageRun", "lr_factor", "run_stages"]
