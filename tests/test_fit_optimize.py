"""facelab.fit.optimize: the warm-up + cosine schedule and the staged loop with its NaN guard."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from facelab.errors import FitDiverged
from facelab.fit.optimize import lr_factor, run_stages


@dataclass
class _Stage:
    name: str
    steps: int
    lr: float = 0.1
    params: tuple[str, ...] = ("x",)


def test_lr_factor_ramps_up_then_decays_to_a_tenth():
    f = lr_factor(20)  # 2 warm-up steps
    assert f(0) == pytest.approx(0.5)
    assert f(1) == pytest.approx(1.0)
    assert f(2) == pytest.approx(1.0)  # the cosine starts at its top
    assert f(11) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 9 / 18)))
    assert f(20) == pytest.approx(0.1)
    vals = [f(i) for i in range(2, 21)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))
    assert lr_factor(3)(0) == pytest.approx(1.0)  # at least one warm-up step


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_run_stages_minimises_in_the_inputs_dtype(optimizer, dtype):
    z = {"x": torch.zeros(3, dtype=dtype, requires_grad=True)}
    goal = torch.tensor([1.0, -2.0, 0.5], dtype=dtype)
    run = run_stages(
        z, [_Stage("a", 200, 0.1)], lambda s: {"d": (z["x"] - goal).square().sum()},
        optimizer=optimizer,
    )  # fmt: skip
    assert z["x"].dtype == dtype
    assert torch.allclose(z["x"].detach(), goal, atol=1e-3)
    assert [r["step"] for r in run.history] == list(range(200))
    assert set(run.history[0]) == {"stage", "step", "loss", "d"}
    assert run.history[-1]["loss"] < 1e-5  # from |goal|^2 = 5.25 at x = 0
    assert set(run.stage_seconds) == {"a"} and not run.warnings


def test_run_stages_moves_only_the_stage_groups_and_projects():
    z = {k: torch.zeros(1, requires_grad=True) for k in ("x", "y")}
    calls = []

    def project():
        calls.append(1)
        with torch.no_grad():
            z["x"].clamp_(max=0.5)

    loss = lambda s: {"d": (z["x"] - 1).square().sum() + (z["y"] - 1).square().sum()}  # noqa: E731
    stages = [_Stage("x only", 50, 0.1, ("x",)), _Stage("empty", 0), _Stage("none", 5, 0.1, ("w",))]
    run = run_stages(z, stages, loss, project=project)
    assert float(z["y"].detach()) == 0.0  # never in a stage
    assert float(z["x"].detach()) == pytest.approx(0.5)  # the projection holds
    assert len(calls) == 50 and set(run.stage_seconds) == {"x only"}


def _nan_after(z, n):
    count = {"n": 0}

    def losses(stage):
        count["n"] += 1
        t = (z["x"] - 3).square().sum()
        return {"d": t * float("nan") if count["n"] > n else t}

    return losses


def test_run_stages_restores_the_last_finite_state_and_raises():
    z = {"x": torch.zeros(2, requires_grad=True)}
    snapshot = []
    with pytest.raises(FitDiverged, match="toy diverged in stage 'a' at step 4") as ei:
        run_stages(
            z, [_Stage("a", 10)], _nan_after(z, 4), label="toy",
            last_good=lambda: snapshot.append(z["x"].detach().clone()) or "state",
        )  # fmt: skip
    assert ei.value.last_good == "state"
    assert (
        bool(torch.isfinite(z["x"]).all()) and float(z["x"][0].detach()) > 0
    )  # four good steps kept
    assert torch.equal(snapshot[0], z["x"].detach())


def test_run_stages_stop_warns_and_skips_the_later_stages():
    z = {"x": torch.zeros(2, requires_grad=True)}
    with pytest.warns(RuntimeWarning, match="diverged"):
        run = run_stages(
            z, [_Stage("a", 10), _Stage("b", 10)], _nan_after(z, 3), on_nan="stop", label="toy"
        )  # fmt: skip
    assert len(run.history) == 3 and set(run.stage_seconds) == {"a"}
    assert len(run.warnings) == 1 and "stage 'a' at step 3" in run.warnings[0]
    assert bool(torch.isfinite(z["x"]).all())
