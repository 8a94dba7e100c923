"""facelab.gan: modulated convolution, losses, R1, networks, checkpoints, training, DDP."""

from __future__ import annotations

import json
import math

import pytest
import torch

from facelab.errors import AssetMissing, InvalidInput, ModelFormatError
from facelab.gan import (
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    d_logistic_loss,
    g_nonsaturating_loss,
    load_checkpoint,
    minibatch_stddev,
    modulated_conv2d,
    modulated_conv2d_reference,
    r1_penalty,
    save_checkpoint,
)
from facelab.gan.augment import AugmentConfig, augment
from facelab.gan.networks import modulated_conv2d_scaled
from facelab.gan.train import CONFIGS, TrainConfig, load_generator, spawn_train, train

TINY_CH = {"4": 8, "8": 8, "16": 4}


def tiny_config(**kw) -> TrainConfig:
    d = CONFIGS["tiny-16"].to_dict()
    d.update(generator={"resolution": 16, "z_dim": 4, "w_dim": 8, "mapping_layers": 1, "channels": TINY_CH},
             discriminator={"channels": TINY_CH}, batch=4, micro_batch=2, r1_interval=2,
             log_interval=1, ckpt_interval=100)  # fmt: skip
    d.update(kw)
    return TrainConfig.from_dict(d)


def tiny_data(n: int = 4, r: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return torch.rand(n, 3, r, r, generator=g) * 2 - 1


# -- modulated convolution --------------------------------------------------------------------


@pytest.mark.parametrize("demod", [True, False])
@pytest.mark.parametrize("fn", [modulated_conv2d, modulated_conv2d_scaled])
def test_modulated_conv_equals_reference_values_and_grads(fn, demod):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 4, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    s = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = fn(x, w, s, demod, 1)
    yr = modulated_conv2d_reference(x, w, s, demod, 1)
    assert y.shape == (3, 5, 6, 6)
    torch.testing.assert_close(y, yr)
    gy = torch.randn(y.shape, generator=g, dtype=torch.float64)
    ga = torch.autograd.grad(y, (x, w, s), gy)
    gb = torch.autograd.grad(yr, (x, w, s), gy)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)


def test_modulated_conv_gradcheck_and_demodulation_unit_variance():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    s = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: modulated_conv2d(a, b, c, True, 1), (x, w, s))
    # demodulated weights have unit norm per output channel: unit-variance white input ->
    # unit-variance output, whatever the style scale
    xb = torch.randn(1, 16, 64, 64, generator=g, dtype=torch.float64)
    wb = torch.randn(8, 16, 3, 3, generator=g, dtype=torch.float64)
    y = modulated_conv2d(xb, wb, torch.full((1, 16), 37.0, dtype=torch.float64), True, 0)
    assert abs(float(y.var()) - 1.0) < 0.05
    # style scales one input channel: an input-channel style of 0 removes its contribution
    s0 = torch.ones(1, 16, dtype=torch.float64)
    s0[0, 3] = 0
    x3 = torch.zeros_like(xb)
    x3[:, 3] = 1
    assert float(modulated_conv2d(x3, wb, s0, False, 0).abs().max()) == 0.0


def test_modulated_conv_bad_shapes():
    with pytest.raises(InvalidInput, match="styles"):
        modulated_conv2d(torch.zeros(2, 3, 4, 4), torch.zeros(5, 3, 3, 3), torch.zeros(2, 4))


# -- losses and R1 ----------------------------------------------------------------------------


def test_losses_known_values_and_nonsaturating_gradient():
    z = torch.zeros(4)
    assert float(d_logistic_loss(z, z)) == pytest.approx(2 * math.log(2))
    assert float(g_nonsaturating_loss(z)) == pytest.approx(math.log(2))
    # a confident discriminator (fake logit -10): the minimax loss -softplus(l) has a vanishing
    # gradient, the non-saturating one does not
    lf = torch.tensor([-10.0], requires_grad=True)
    (gn,) = torch.autograd.grad(g_nonsaturating_loss(lf), lf)
    (gm,) = torch.autograd.grad(-torch.nn.functional.softplus(lf).mean(), lf)
    assert abs(float(gn)) > 0.99 and abs(float(gm)) < 1e-4


def test_r1_penalty_matches_plain_reference():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(3, 5, 5, generator=g, dtype=torch.float64)
    x = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    # linear D: grad = a for every sample, penalty = ||a||^2
    assert float(r1_penalty(x, (x * a).sum(dim=(1, 2, 3)))) == pytest.approx(
        float(a.square().sum())
    )
    # a real discriminator: compare with per-sample gradients computed one by one
    D = Discriminator(
        DiscriminatorConfig(resolution=8, channels={"8": 4, "4": 4}, mbstd_group=1)
    ).double()
    x8 = torch.randn(3, 3, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)
    pen = r1_penalty(x8, D(x8))
    ref = []
    for i in range(3):
        xi = x8[i : i + 1].detach().requires_grad_(True)
        (gi,) = torch.autograd.grad(D(xi).sum(), xi)
        ref.append(gi.square().sum())
    assert float(pen.detach()) == pytest.approx(float(torch.stack(ref).mean()), rel=1e-9)
    # and it is differentiable w.r.t. D's parameters (R1 trains D)
    gp = torch.autograd.grad(pen, [p for p in D.parameters()], allow_unused=True)
    assert any(t is not None and float(t.abs().sum()) > 0 for t in gp)


# -- networks ---------------------------------------------------------------------------------


def test_minibatch_stddev():
    x = torch.ones(4, 2, 3, 3)
    assert float(minibatch_stddev(x)[:, -1].abs().max()) < 1e-3  # identical samples -> ~0
    y = torch.zeros(4, 1, 1, 1)
    y[:2] = 1.0  # group of 4: values 1,1,0,0 -> std 0.5
    assert float(minibatch_stddev(y)[0, -1]) == pytest.approx(0.5, abs=1e-4)


@pytest.mark.parametrize("arch", ["skip", "progressive"])
def test_generator_shapes_and_modes(arch):
    torch.manual_seed(0)
    cfg = GeneratorConfig(
        resolution=16, z_dim=4, w_dim=8, mapping_layers=2, channels=TINY_CH, architecture=arch
    )
    G = Generator(cfg)
    z = torch.randn(3, 4)
    assert G(z).shape == (3, 3, 16, 16)
    # const noise -> deterministic; random noise -> not
    torch.testing.assert_close(G(z, noise_mode="const"), G(z, noise_mode="const"))
    for mode in ("grouped", "scaled", "loop"):
        G2 = Generator(cfg, mode=mode)
        G2.load_state_dict(G.state_dict())
        torch.testing.assert_close(
            G2(z, noise_mode="const"), G(z, noise_mode="const"), atol=1e-5, rtol=1e-4
        )
    if arch == "progressive":
        G.set_stage(1)
        assert G(z).shape == (3, 3, 8, 8)
        G.set_stage(2, alpha=0.0)  # fade-in start = the upsampled 8 px output
        G8 = G(z, noise_mode="const")
        G.set_stage(1)
        up = torch.nn.functional.interpolate(
            G(z, noise_mode="const"), scale_factor=2.0, mode="bilinear"
        )
        torch.testing.assert_close(G8, up)
        D = Discriminator(
            DiscriminatorConfig(resolution=16, channels=TINY_CH, architecture="progressive")
        )
        D.set_stage(1)
        assert D(torch.randn(2, 3, 8, 8)).shape == (2,)
    # truncation psi=0 -> every sample is the w_avg image
    G.set_stage(len(G.resolutions) - 1)
    G.mapping.w_avg.normal_()
    t = G(z, psi=0.0, noise_mode="const")
    torch.testing.assert_close(t, t[:1].expand_as(t))
    with pytest.raises(InvalidInput):
        GeneratorConfig(resolution=12)


def test_conditioning_hooks():
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(resolution=8, z_dim=4, w_dim=8, mapping_layers=1, channels=TINY_CH,
                                  c_dim=2, map_channels=3))  # fmt: skip
    D = Discriminator(DiscriminatorConfig(resolution=8, channels=TINY_CH, c_dim=2, map_channels=3))
    z, c, m = torch.randn(2, 4), torch.randn(2, 2), torch.randn(2, 3, 32, 32)
    for p in G.parameters():  # the map injection starts at zero effect only through init
        p.data.normal_(0, 0.5) if p.dim() == 4 and p.shape[1] == 3 else None
    x = G(z, c=c, cond_map=m, noise_mode="const")
    assert x.shape == (2, 3, 8, 8)
    assert not torch.allclose(x, G(z, c=c, cond_map=-m, noise_mode="const"))  # the map matters
    assert not torch.allclose(x, G(z, c=-c, cond_map=m, noise_mode="const"))  # the class matters
    assert D(x, c=c, cond_map=m).shape == (2,)
    with pytest.raises(InvalidInput, match="conditional"):
        G(z)


def test_augment_identity_and_differentiable():
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    assert augment(x, AugmentConfig()) is x
    cfg = AugmentConfig(brightness=1, saturation=1, contrast=1, translation=1, cutout=1)
    y = augment(x, cfg, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.allclose(y, x)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert float(g.abs().sum()) > 0
    # translation alone only moves pixels (or pads zeros)
    t = augment(x, AugmentConfig(translation=1), torch.Generator().manual_seed(1))
    vals = set(torch.round(x.detach() * 1e4).flatten().tolist()) | {0.0}
    assert set(torch.round(t.detach() * 1e4).flatten().tolist()) <= vals


# -- checkpoints ------------------------------------------------------------------------------


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    t = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    save_checkpoint(tmp_path / "ck", t, {"step": 7, "command": "x", "metrics": {"m": 1.5}})
    tt, meta = load_checkpoint(tmp_path / "ck.safetensors")
    assert (
        meta["step"] == 7
        and meta["metrics"] == {"m": 1.5}
        and meta["format"] == "facelab-gan-checkpoint"
    )
    for k in t:
        torch.testing.assert_close(tt[k], t[k])
    with pytest.raises(AssetMissing):
        load_checkpoint(tmp_path / "nothing")
    # a pickle (torch.save) under the right names
    torch.save(t, tmp_path / "p.safetensors")
    (tmp_path / "p.json").write_text(json.dumps({"format": "facelab-gan-checkpoint", "version": 1}))
    with pytest.raises(ModelFormatError, match="not a safetensors file"):
        load_checkpoint(tmp_path / "p")
    # a JSON that is not ours
    (tmp_path / "ck.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ModelFormatError, match="not a facelab GAN checkpoint"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck.json").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ModelFormatError):
        load_checkpoint(tmp_path / "ck")


# -- training ---------------------------------------------------------------------------------


def _weights(G) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in G.parameters()])


def test_resume_is_exact_and_export_loads(tmp_path):
    cfg6 = tiny_config(steps=4, ckpt_interval=2)
    data = tiny_data()
    a = train(cfg6, tmp_path / "a", data=data, progress=False, command="test")
    train(
        tiny_config(steps=2, ckpt_interval=2),
        tmp_path / "b",
        data=data,
        progress=False,
        command="test",
    )
    b = train(cfg6, tmp_path / "b", out=tmp_path / "out", data=data, progress=False, command="test")
    torch.testing.assert_close(_weights(a["G"]), _weights(b["G"]))
    torch.testing.assert_close(_weights(a["D"]), _weights(b["D"]))
    torch.testing.assert_close(_weights(a["G_ema"]), _weights(b["G_ema"]))
    G, meta = load_generator(tmp_path / "out" / "texture_gan")
    assert (
        meta["step"] == 4
        and meta["seed"] == 0
        and meta["command"] == "test"
        and "wall_time_s" in meta
    )
    torch.testing.assert_close(_weights(G), _weights(a["G_ema"]))
    log = [json.loads(x) for x in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    # a checkpoint of another architecture is refused, not silently mixed
    with pytest.raises(ModelFormatError, match="generator"):
        train(tiny_config(steps=6, generator={**cfg6.generator, "w_dim": 6}), tmp_path / "b", data=data,
              progress=False)  # fmt: skip


def test_progressive_training_grows_and_fades(tmp_path):
    cfg = tiny_config(steps=6, fade_kimg=0.008, generator={"resolution": 16, "z_dim": 4, "w_dim": 8,
                      "mapping_layers": 1, "channels": TINY_CH, "architecture": "progressive"})  # fmt: skip
    res = train(cfg, tmp_path, data=tiny_data(), progress=False)
    stages = [(r["stage_resolution"], r["alpha"]) for r in res["log"]]
    # 8 images per phase at batch 4: 8 px stable, fade to 16 px, stable at 16 px
    assert stages[0] == (8, 1.0) and stages[-1] == (16, 1.0)
    assert any(r == 16 and a < 1.0 for r, a in stages)
    assert res["G_ema"](torch.randn(2, 4)).shape == (2, 3, 16, 16)


def test_micro_training_overfits_a_handful_of_textures(tmp_path):
    """G learns 4 textures' colours; D's loss falls from log 4 as it learns, then both move."""
    from facelab.methods.ganfit.texture_gan import texture_maps

    data = texture_maps(4, 8, seed=3, marks=False) * 2 - 1
    ch = {"4": 16, "8": 8}
    cfg = tiny_config(generator={"resolution": 8, "z_dim": 4, "w_dim": 8, "mapping_layers": 1, "channels": ch},
                      discriminator={"channels": ch}, batch=8, micro_batch=8, steps=120, r1_interval=4,
                      r1_gamma=0.1, ema_kimg=0.05, lr_g=0.01, lr_d=0.01, style_mixing=0.0)  # fmt: skip
    torch.manual_seed(cfg.seed)
    G0 = Generator(cfg.gen_config())

    def nn_dist(G):
        with torch.no_grad():
            x = G(
                torch.randn(32, 4, generator=torch.Generator().manual_seed(9)), noise_mode="const"
            )
        return float(torch.cdist(x.flatten(1), data.flatten(1)).min(1).values.mean())

    res = train(cfg, tmp_path, data=data, progress=False)
    log = res["log"]
    first, last = log[:10], log[-20:]
    d0 = sum(r["loss_D"] for r in first) / 10
    g_first = sum(r["loss_G"] for r in first) / 10
    g_last = sum(r["loss_G"] for r in last) / 20
    assert d0 < 2 * math.log(2) + 0.1  # D learns at once
    assert abs(g_last - g_first) > 0.05  # the game moves
    assert nn_dist(res["G_ema"]) < 0.5 * nn_dist(G0)  # samples close in on the training maps


def test_ddp_two_processes_equal_one_process_accumulating(tmp_path):
    """2 gloo processes x 1 micro-batch == 1 process x 2 accumulated micro-batches; the rank-0
    checkpoint resumes on 1 and on 2 processes to the same weights as a straight run."""
    import shutil

    data = tiny_data(8)
    cfg2 = tiny_config(steps=2, batch=4, micro_batch=2)
    one = train(cfg2, tmp_path / "one", data=data, progress=False)
    two = spawn_train(2, cfg2, tmp_path / "two", data=data)
    for name in ("G", "D", "G_ema"):
        for k, v in one[name].state_dict().items():
            torch.testing.assert_close(two[f"{name}.{k}"], v, atol=1e-5, rtol=1e-5)
    cfg3 = tiny_config(steps=3, batch=4, micro_batch=2)
    straight = train(cfg3, tmp_path / "straight", data=data, progress=False)
    shutil.copytree(tmp_path / "two", tmp_path / "two_b")
    r1 = train(cfg3, tmp_path / "two", data=data, progress=False)  # resume on 1 process
    r2 = spawn_train(2, cfg3, tmp_path / "two_b", data=data)  # resume on 2 processes
    assert r1["step"] == 3
    for k, v in straight["G"].state_dict().items():
        torch.testing.assert_close(r1["G"].state_dict()[k], v, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(r2[f"G.{k}"], v, atol=1e-5, rtol=1e-5)
