"""The shared GAN training loop (facelab.gan.loop): the D/G step, lazy R1, EMA, the loop's
bookkeeping (log rows, checkpoints, time cap) and exact resume through a training checkpoint."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.gan.checkpoint import JsonConfig, load_training_state, save_training_state
from facelab.gan.loop import (
    TrainingLoop,
    adversarial_step,
    discriminator_loss,
    ema_update,
    gradient_step,
    read_log,
    write_log,
)
from facelab.gan.loss import g_nonsaturating_loss, lazy_r1_weight


class _LinearD(torch.nn.Module):
    """``D(x, c) = <a, x> + b`` (c ignored): its input gradient is ``a`` everywhere."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.linspace(-1, 1, n).view(1, 1, n, 1) * 0.1)
        self.b = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return (x * self.a).sum(dim=(1, 2, 3)) + self.b


class _ToyG(torch.nn.Module):
    """``G(z) = W z`` reshaped to ``(B, 1, n, 1)``, with a buffer to check the EMA copies it."""

    def __init__(self, z_dim: int, n: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(z_dim, n)
        self.register_buffer("count", torch.zeros(()))
        self.z_dim, self.n = z_dim, n

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.lin(z).view(-1, 1, self.n, 1)


def test_discriminator_loss_and_lazy_r1_on_a_linear_d():
    torch.manual_seed(0)
    D = _LinearD(6)
    real, fake = torch.randn(5, 1, 6, 1), torch.randn(5, 1, 6, 1)
    plain = discriminator_loss(D, real, fake)
    lr, lf = D(real), D(fake)
    expect = torch.nn.functional.softplus(-lr).mean() + torch.nn.functional.softplus(lf).mean()
    torch.testing.assert_close(plain["loss"], expect)
    assert "r1" not in plain
    with_r1 = discriminator_loss(D, real, fake, r1_weight=3.0)
    # grad_x D = a for every sample: R1 = ||a||^2, and the loss adds 3 R1
    torch.testing.assert_close(with_r1["r1"], D.a.detach().square().sum())
    torch.testing.assert_close(with_r1["loss"], expect + 3.0 * D.a.detach().square().sum())
    with_r1["loss"].backward()  # R1 is differentiable w.r.t. D's parameters
    assert D.a.grad is not None and D.a.grad.abs().sum() > 0
    assert [lazy_r1_weight(t, 2.0, 4) for t in range(6)] == [4.0, 0, 0, 0, 4.0, 0]
    assert lazy_r1_weight(0, 0.0, 4) == 0 and lazy_r1_weight(0, 1.0, 0) == 0


def test_gradient_step_over_micro_batches_equals_the_whole_batch():
    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.randn(8)
    nets = [torch.nn.Linear(3, 1) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    opts = [torch.optim.SGD(n.parameters(), lr=0.1) for n in nets]

    def mse(net, i):
        return (net(x[i]).squeeze(-1) - y[i]).square().mean()

    synced, w0 = [], nets[0].weight.detach().clone()
    whole = gradient_step(opts[0], [mse(nets[0], slice(None))])
    halves = gradient_step(opts[1], (mse(nets[1], slice(h, h + 4)) for h in (0, 4)), accum=2,
                           sync=lambda: synced.append(nets[1].weight.grad.clone()))  # fmt: skip
    assert len(whole) == 1 and len(halves) == 2 and not halves[0].requires_grad
    torch.testing.assert_close((halves[0] + halves[1]) / 2, whole[0])
    torch.testing.assert_close(nets[1].weight, nets[0].weight)  # the same step
    assert len(synced) == 1 and not torch.equal(nets[0].weight, w0)  # it moved


def test_ema_update_is_the_formula_and_copies_buffers():
    torch.manual_seed(0)
    G, G_ema = _ToyG(3, 4), _ToyG(3, 4)
    G.count.fill_(7)
    before = [p.detach().clone() for p in G_ema.parameters()]
    ema_update(G_ema, G, 0.9)
    for pe, pe0, p in zip(G_ema.parameters(), before, G.parameters()):
        torch.testing.assert_close(pe, 0.9 * pe0 + 0.1 * p.detach())
    assert G_ema.count.item() == 7
    ema_update(G_ema, G, 0.0)  # beta 0: a copy of G
    for pe, p in zip(G_ema.parameters(), G.parameters()):
        torch.testing.assert_close(pe, p.detach())


def _toy(seed: int = 0):
    torch.manual_seed(seed)
    G, D = _ToyG(2, 6), _LinearD(6)
    G_ema = _ToyG(2, 6).requires_grad_(False)
    G_ema.load_state_dict(G.state_dict())
    opt_g = torch.optim.Adam(G.parameters(), lr=0.01, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=0.05, betas=(0.0, 0.99))
    return G, D, G_ema, opt_g, opt_d


def _run(tmp_path, steps: int, resume: bool, lr_g: float = 0.01, **loop_kw) -> dict:
    """A toy trainer built only from the shared pieces; the reals are ``N(1, 0.1)``."""
    G, D, G_ema, opt_g, opt_d = _toy()
    for pg in opt_g.param_groups:
        pg["lr"] = lr_g
    nets, opts = {"G": G, "D": D, "G_ema": G_ema}, {"opt_G": opt_g, "opt_D": opt_d}
    g = torch.Generator().manual_seed(1)
    step, log, stem = 0, [], tmp_path / "last"
    if resume and stem.with_suffix(".json").is_file():
        tensors, meta = load_training_state(stem, nets, opts)
        g.set_state(tensors["rng.data"])
        step, log = meta["step"], read_log(tmp_path / "log.jsonl", upto_step=meta["step"])
    loop = TrainingLoop(step, steps, log_interval=2, ckpt_interval=2, **loop_kw)

    def d_batch():
        real = 1 + 0.1 * torch.randn(4, 1, 6, 1, generator=g)
        with torch.no_grad():
            fake = G(torch.randn(4, 2, generator=g))
        return real, None, fake, None

    def g_losses():
        return {"total": g_nonsaturating_loss(D(G(torch.randn(4, 2, generator=g))))}

    def step_fn(t):
        o = adversarial_step(G, D, G_ema, opt_g, opt_d, d_batch, g_losses,
                             lazy_r1_weight(t, 1.0, 2), ema_beta=0.5)  # fmt: skip
        return {"loss_d": o["loss"], "loss_g": o["total"], "r1": o.get("r1")}

    def log_fn(t, acc, saving):
        log.append({"step": t, **{k: sum(v) / len(v) for k, v in acc.items() if k != "step_s"},
                    "saving": saving})  # fmt: skip

    def save_fn(t):
        save_training_state(stem, nets, opts, {"step": t}, {"rng.data": g.get_state()})
        write_log(tmp_path / "log.jsonl", log)

    reason = loop.run(step_fn, log_fn, save_fn)
    return {"nets": nets, "log": log, "reason": reason, "step": loop.step}


def test_resume_gives_the_same_next_steps_as_an_uninterrupted_run(tmp_path):
    a = _run(tmp_path / "a", 6, resume=False)
    _run(tmp_path / "b", 4, resume=False)
    b = _run(tmp_path / "b", 6, resume=True)
    for name in ("G", "D", "G_ema"):
        for (k, x), (_, y) in zip(a["nets"][name].state_dict().items(),
                                  b["nets"][name].state_dict().items()):  # fmt: skip
            assert torch.equal(x, y), f"{name}.{k}"
    assert a["log"] == b["log"] and [r["step"] for r in a["log"]] == [2, 4, 6]
    # R1 every 2 steps, logged as the mean over the steps that took it
    assert all(r["r1"] > 0 for r in a["log"])
    # the run moved the networks: the resumed copy is not trivially equal
    G0 = _toy()[0]
    assert not torch.equal(G0.lin.weight, a["nets"]["G"].lin.weight)


def test_only_d_training_lowers_its_loss(tmp_path):
    res = _run(tmp_path, 40, resume=False, lr_g=0.0)
    losses = [r["loss_d"] for r in res["log"]]
    assert losses[-1] < losses[0] - 0.3  # reals ~1, frozen fakes ~0: D separates them
    assert res["log"][-1]["loss_g"] > res["log"][0]["loss_g"]  # G cannot answer


def test_the_g_step_sends_no_gradient_into_d():
    G, D, G_ema, opt_g, opt_d = _toy()
    D_ref = _LinearD(6)
    D_ref.load_state_dict(D.state_dict())
    g0 = G.lin.weight.detach().clone()
    real, z = 1 + 0.1 * torch.randn(4, 1, 6, 1), torch.randn(4, 2)
    with torch.no_grad():
        fake = G(z)
    o = adversarial_step(G, D, G_ema, opt_g, opt_d, lambda: (real, None, fake, None),
                         lambda: {"total": g_nonsaturating_loss(D(G(z)))}, r1_weight=2.0)  # fmt: skip
    discriminator_loss(D_ref, real, fake, r1_weight=2.0)["loss"].backward()
    # D's gradient is its own loss's (with R1) alone; G moved; D is trainable again afterwards
    torch.testing.assert_close(D.a.grad, D_ref.a.grad)
    torch.testing.assert_close(D.b.grad, D_ref.b.grad)
    assert not torch.equal(G.lin.weight, g0) and all(p.requires_grad for p in D.parameters())
    assert set(o) >= {"loss", "logits_real", "logits_fake", "r1", "total"}


def test_loop_logs_and_saves_at_intervals_and_at_the_time_cap():
    calls = []
    loop = TrainingLoop(0, 10, log_interval=2, ckpt_interval=4, max_seconds=None)

    def step_fn(t):
        if t == 4:  # as if the time cap had passed during step 4 (no clock in the test)
            loop.max_seconds = 0.0
        return {"x": float(t), "skip": None}

    def log_fn(t, acc, saving):
        calls.append(("log", t, acc["x"], saving))
        assert "skip" not in acc and len(acc["step_s"]) == len(acc["x"])

    reason = loop.run(step_fn, log_fn, lambda t: calls.append(("save", t)))
    assert reason == "max_minutes" and loop.step == 5
    assert calls == [("log", 2, [0.0, 1.0], False), ("log", 4, [2.0, 3.0], True), ("save", 4),
                     ("log", 5, [4.0], True), ("save", 5)]  # fmt: skip
    calls.clear()
    done = TrainingLoop(3, 3, log_interval=1, ckpt_interval=1)  # resumed at the end: nothing
    assert done.run(step_fn, log_fn, lambda t: calls.append(t)) == "steps" and calls == []


def test_log_round_trip_and_resume_cut(tmp_path):
    rows = [{"step": s, "v": s * 0.5} for s in (1, 2, 3)]
    write_log(tmp_path / "log.jsonl", rows)
    assert read_log(tmp_path / "log.jsonl") == rows
    assert read_log(tmp_path / "log.jsonl", upto_step=2) == rows[:2]
    assert read_log(tmp_path / "missing.jsonl") == []


@dataclasses.dataclass
class _Cfg(JsonConfig):
    betas: tuple[float, float] = (0.0, 0.99)
    channels: dict = dataclasses.field(default_factory=dict)
    n: int = 1


def test_json_config_round_trip_and_unknown_fields():
    c = _Cfg(channels={4: 8})
    d = c.to_dict()
    assert d == {"betas": [0.0, 0.99], "channels": {"4": 8}, "n": 1}
    back = _Cfg.from_dict(d)
    assert back.betas == (0.0, 0.99) and back.n == 1
    with pytest.raises(InvalidInput, match="unknown _Cfg fields"):
        _Cfg.from_dict({"m": 2})
