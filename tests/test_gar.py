"""facelab.methods.gar: the normal injection module, consistency losses, training phases,
checkpoint round trip and the inversion step (tiny networks and a sphere-like 3DMM: seconds)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from facelab.errors import InvalidInput
from facelab.methods.gar.aux import AuxConfig, AuxNet, aux_loss
from facelab.methods.gar.encoder import Encoder, EncoderConfig
from facelab.methods.gar.geometry import render_normals
from facelab.methods.gar.invert import GARFitConfig, inversion_loss, refine
from facelab.methods.gar.losses import (
    identity_consistency,
    landmark_consistency,
    normal_consistency,
)
from facelab.methods.gar.renderer import GARConfig, GARGenerator, NormalInjection
from facelab.methods.gar.train import CONFIGS, GARModel, GARTrainConfig, export_gar, load_gar, train
from facelab.models import MorphableModel

TINY_G = {"resolution": 16, "channel_base": 64, "channel_max": 8, "hidden": 4, "z_dim": 8,
          "w_dim": 16, "mapping_layers": 1}  # fmt: skip


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=1)


def _perturb_injection(G: GARGenerator, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, NormalInjection):
                m.gamma.weight.copy_(torch.randn(m.gamma.weight.shape, generator=g))
                m.beta.weight.copy_(torch.randn(m.beta.weight.shape, generator=g))


# ------------------------------------------------------------------------- injection


def test_injection_shapes_and_zero_init():
    inj = NormalInjection(channels=6, map_channels=3, hidden=4)
    x = torch.randn(2, 6, 8, 8)
    n = _unit(torch.randn(2, 3, 16, 16))
    y = inj(x, n)
    assert y.shape == x.shape
    # gamma = beta = 0 at initialisation: the layer is plain StyleGAN2
    assert torch.equal(y, x)
    g, b = inj.params(n, (8, 8))
    assert g.shape == b.shape == (2, 6, 8, 8)
    with pytest.raises(InvalidInput):
        inj(x, n[:1])


def test_injection_is_spatial_affine():
    inj = NormalInjection(channels=4, map_channels=3, hidden=4)
    torch.nn.init.normal_(inj.gamma.weight)
    torch.nn.init.normal_(inj.beta.weight)
    x = torch.randn(1, 4, 8, 8)
    n = _unit(torch.randn(1, 3, 8, 8))
    g, b = inj.params(n, (8, 8))
    assert torch.allclose(inj(x, n), x * (1 + g) + b)
    assert g.std(dim=(2, 3)).min() > 0  # varies per pixel, unlike a style


def test_normals_change_the_output_and_gradients_flow():
    G = GARGenerator(GARConfig(**TINY_G))
    z = torch.randn(2, 8)
    n1 = _unit(torch.randn(2, 3, 16, 16))
    n2 = _unit(torch.randn(2, 3, 16, 16))
    a = G(n1, z, noise_mode="const")
    assert a.shape == (2, 3, 16, 16)
    assert torch.allclose(a, G(n2, z, noise_mode="const"))  # zero-initialised injection
    _perturb_injection(G)
    a, b = G(n1, z, noise_mode="const"), G(n2, z, noise_mode="const")
    assert (a - b).abs().max() > 1e-3
    n = n1.clone().requires_grad_(True)
    G(n, z, noise_mode="const").square().mean().backward()
    assert n.grad is not None and n.grad.abs().sum() > 0
    inj = next(m for m in G.modules() if isinstance(m, NormalInjection))
    assert inj.gamma.weight.grad is not None and inj.gamma.weight.grad.abs().sum() > 0
    assert G.mapping.net[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("injection", ["concat", "none"])
def test_ablation_generators(injection):
    G = GARGenerator(GARConfig(**TINY_G, injection=injection))
    z = torch.randn(2, 8)
    n1, n2 = _unit(torch.randn(2, 3, 16, 16)), _unit(torch.randn(2, 3, 16, 16))
    diff = (G(n1, z, noise_mode="const") - G(n2, z, noise_mode="const")).abs().max()
    assert (diff > 1e-4) == (injection == "concat")


def test_bad_inputs():
    G = GARGenerator(GARConfig(**TINY_G))
    with pytest.raises(InvalidInput):
        G(torch.zeros(2, 3, 16, 16), torch.zeros(2, 5))
    with pytest.raises(InvalidInput):
        G(torch.zeros(2, 1, 16, 16), torch.zeros(2, 8))
    with pytest.raises(InvalidInput):
        GARConfig(injection="add")


# ---------------------------------------------------------------------- consistency


def test_consistency_losses_known_values():
    n = _unit(torch.randn(2, 3, 4, 4))
    m = torch.ones(2, 1, 4, 4)
    assert float(normal_consistency(n, n, m)) == pytest.approx(0.0, abs=1e-6)
    assert float(normal_consistency(-n, n, m)) == pytest.approx(2.0, abs=1e-6)
    m0 = torch.zeros(2, 1, 4, 4)
    m0[0, 0, 0, 0] = 1
    flipped = n.clone()
    flipped[0, :, 0, 0] *= -1
    assert float(normal_consistency(flipped, n, m0)) == pytest.approx(2.0, abs=1e-6)
    lm = torch.rand(3, 68, 2) * 32
    assert float(landmark_consistency(lm, lm + torch.tensor([3.2, 0.0]), 32)) == pytest.approx(0.01)
    f = torch.randn(4, 6)
    assert float(identity_consistency(f, f)) == 0.0
    assert float(identity_consistency(f, f + 1)) == pytest.approx(1.0)


def test_aux_learns_on_a_small_set():
    torch.manual_seed(0)
    aux = AuxNet(AuxConfig(resolution=16, width=8, n_identity=3))
    img = torch.rand(8, 3, 16, 16) * 2 - 1
    nrm = _unit(img.clone())  # normals a function of the image: learnable
    mask = torch.ones(8, 1, 16, 16)
    lm = torch.rand(8, 68, 2) * 16
    ident = torch.randn(8, 3)
    opt = torch.optim.Adam(aux.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        ls = aux_loss(aux(img), nrm, mask, lm, ident)
        first = float(ls["total"].detach()) if first is None else first
        opt.zero_grad()
        ls["total"].backward()
        opt.step()
    assert float(ls["total"].detach()) < 0.7 * first


# ------------------------------------------------------------------------ training


def _tiny_data(directory, n: int = 8, S: int = 16, seed: int = 0) -> None:
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, S), torch.linspace(-1, 1, S), indexing="ij")
    disk = (xx**2 + yy**2 < 0.6).float()[None, None]
    sphere = torch.stack([xx, yy, -(1 - xx**2 - yy**2).clamp(min=0).sqrt()])[None] * disk
    img = (torch.rand(n, 3, S, S, generator=g) * 0.2 + 0.4 * (1 + sphere[:, :1])).clamp(0, 1)
    real = {"image": (img * 255).to(torch.uint8), "normals": sphere.expand(n, -1, -1, -1).half(),
            "mask": disk.expand(n, -1, -1, -1).to(torch.uint8), "lm": torch.rand(n, 68, 2, generator=g) * S,
            "identity": torch.randn(n, 10, generator=g)}  # fmt: skip
    geom = {"identity": torch.randn(n, 10, generator=g)}
    for t in "ab":
        geom[f"normals_{t}"] = sphere.expand(n, -1, -1, -1).half()
        geom[f"mask_{t}"] = disk.expand(n, -1, -1, -1).to(torch.uint8)
        geom[f"lm_{t}"] = torch.rand(n, 68, 2, generator=g) * S
        geom[f"expression_{t}"] = torch.rand(n, 8, generator=g)
        for k, d in (("rotation", 3), ("translation", 3)):
            geom[f"{k}_{t}"] = torch.zeros(n, d)
        geom[f"K_{t}"] = torch.eye(3).expand(n, 3, 3)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in real.items()}, str(directory / "real_0000.safetensors")
    )
    save_file(
        {k: v.contiguous() for k, v in geom.items()}, str(directory / "geom_0000.safetensors")
    )


def _tiny_cfg(**kw) -> GARTrainConfig:
    d = CONFIGS["tiny"].to_dict()
    d.update(data={"n_real": 8, "n_geom": 8, "chunk": 8, "image_size": 16}, **kw)
    return GARTrainConfig.from_dict(d)


def test_training_phases_checkpoint_and_resume(tmp_path):
    data = tmp_path / "data"
    _tiny_data(data)
    cfg = _tiny_cfg(steps=3)
    train(cfg, tmp_path / "run", data, progress=False)
    import json

    meta = json.loads((tmp_path / "run" / "last.json").read_text())
    assert meta["progress"] == {"aux_step": 3, "step": 3, "enc_step": 3}
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert {e["phase"] for e in log} == {"aux", "gan", "encoder"}
    gan = [e for e in log if e["phase"] == "gan"]
    assert all(math.isfinite(e["adv"]) and math.isfinite(e["normal"]) for e in gan)
    # resume continues the GAN phase (aux and encoder are done)
    cfg5 = _tiny_cfg(steps=5)
    train(cfg5, tmp_path / "run", data, progress=False)
    meta = json.loads((tmp_path / "run" / "last.json").read_text())
    assert meta["progress"] == {"aux_step": 3, "step": 5, "enc_step": 3}
    # the generator moved after the encoder was trained, so the encoder trained again on it
    n_enc = [e["phase"] for e in log].count("encoder")
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [e["phase"] for e in log].count("encoder") == 2 * n_enc
    assert log[-1]["phase"] == "encoder" and log[-1]["enc_step"] == 3
    # a resume with nothing left to do retrains nothing
    train(cfg5, tmp_path / "run", data, progress=False)
    log2 = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert len(log2) == len(log)
    # export -> load round trip: the loaded generator is the run's G_ema
    stem = tmp_path / "export" / "gar"
    export_gar(tmp_path / "run", stem)
    gm = load_gar(stem)
    from facelab.gan.checkpoint import load_checkpoint, prefixed

    tensors, _ = load_checkpoint(tmp_path / "run" / "last")
    ref = prefixed(tensors, "G_ema")
    for k, v in gm.G.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert (tmp_path / "export" / "gar.log.jsonl").is_file()
    # --resume-from: a new run seeded from the export (G = G_ema, fresh Adam) trains on
    from facelab.methods.gar.train import _seed_run

    assert _seed_run(stem, tmp_path / "run2") and not _seed_run(stem, tmp_path / "run2")
    train(_tiny_cfg(steps=6), tmp_path / "run2", data, progress=False)
    meta2 = json.loads((tmp_path / "run2" / "last.json").read_text())
    assert meta2["progress"] == {"aux_step": 3, "step": 6, "enc_step": 3}
    with pytest.raises(InvalidInput):
        GARTrainConfig.from_dict({"nope": 1})


def test_gan_losses_move_on_fixed_batch():
    from facelab.gan.loss import d_logistic_loss
    from facelab.methods.gar.renderer import make_discriminator

    torch.manual_seed(0)
    G = GARGenerator(GARConfig(**TINY_G))
    D = make_discriminator(16, 8)
    opt = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0, 0.99))
    n = _unit(torch.randn(4, 3, 16, 16))
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        fake = G(n, torch.randn(4, 8))
    losses = []
    for _ in range(10):
        ld = d_logistic_loss(D(real), D(fake))
        opt.zero_grad()
        ld.backward()
        opt.step()
        losses.append(float(ld.detach()))
    assert losses[-1] < losses[0] - 0.1  # D learns to separate a fixed real/fake batch


# ------------------------------------------------------------------------ inversion


def _sphere_model() -> MorphableModel:
    """A 3DMM on a front hemisphere (radius 10): 2 identity and 1 expression components."""
    rings, segs = 8, 12
    verts = []
    for i in range(rings + 1):
        th = 0.5 * math.pi * i / rings
        for j in range(segs):
            ph = 2 * math.pi * j / segs
            verts.append(
                [
                    10 * math.sin(th) * math.cos(ph),
                    10 * math.sin(th) * math.sin(ph),
                    10 * math.cos(th),
                ]
            )
    v = torch.tensor(verts)
    faces = []
    for i in range(rings):
        for j in range(segs):
            a, b = i * segs + j, i * segs + (j + 1) % segs
            c, d = a + segs, b + segs
            faces += [[a, c, b], [b, c, d]]
    V = v.shape[0]
    g = torch.Generator().manual_seed(0)
    idb = torch.stack([v * 0.1, torch.randn(V, 3, generator=g) * 0.3])
    exb = (v * torch.tensor([0.0, 0.1, 0.0]))[None]
    lm = torch.arange(68) % V
    return MorphableModel(mean=v, faces=torch.tensor(faces), identity_basis=idb,
                          identity_std=torch.ones(2), expression_basis=exb,
                          expression_names=["e"], landmarks=lm, name="sphere")  # fmt: skip


def test_inversion_step_lowers_its_loss():
    torch.manual_seed(0)
    model = _sphere_model()
    G = GARGenerator(GARConfig(**TINY_G))
    _perturb_injection(G, 1)
    G.requires_grad_(False)
    gm = GARModel(G=G, aux=AuxNet(AuxConfig(resolution=16, width=4, n_identity=2)),
                  E=Encoder(EncoderConfig(resolution=16, width=4, n_identity=2, n_expression=1, w_dim=16)),
                  D=torch.nn.Identity(), meta={}, config=CONFIGS["tiny"])  # fmt: skip
    K = torch.tensor([[[30.0, 0, 8], [0, 30.0, 8], [0, 0, 1]]])
    true = {"rotation": torch.tensor([[0.0, 0.2, 0.0]]), "translation": torch.tensor([[0.0, 0.0, 50.0]]),
            "identity": torch.tensor([[1.0, -0.5]]), "expression": torch.tensor([[0.5]]),
            "w": G.mapping(torch.randn(1, 8))}  # fmt: skip
    n, m, lm = render_normals(model, true["identity"], true["expression"], true["rotation"],
                              true["translation"], K, 16)  # fmt: skip
    assert n.shape == (1, 3, 16, 16) and m.sum() > 10 and lm.shape == (1, 68, 2)
    target = G.synthesis(true["w"], n, noise_mode="const")
    crop = {"target": target, "valid": torch.ones(1, 1, 16, 16), "K": K, "landmarks": lm}
    start = {k: v.clone() for k, v in true.items()}
    start["rotation"] = start["rotation"] + torch.tensor([[0.05, -0.15, 0.0]])
    start["identity"] = torch.zeros(1, 2)
    start["w"] = G.mapping.w_avg[None].clone() + 0.0
    cfg = GARFitConfig(w_identity=0.0, w_expression=0.0, w_latent=0.0)
    l0 = float(inversion_loss(gm, model, start, crop, cfg)["total"])
    assert float(inversion_loss(gm, model, true, crop, cfg)["total"]) < 1e-5  # exact at truth
    st, hist = refine(gm, model, start, crop, cfg, steps=8)
    assert hist[0] == pytest.approx(l0, rel=1e-5)
    assert hist[-1] < 0.8 * l0
    assert abs(float(st["rotation"][0, 1]) - 0.2) < 0.15


def test_cli_method_gar_refuses_multi_photo_modes(tmp_path, capsys):
    from facelab.cli import main

    photo = tmp_path / "p.png"
    from PIL import Image

    Image.new("RGB", (64, 64)).save(photo)
    code = main(["fit", str(photo), str(photo), "--method", "gar", "--shared-identity",
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code != 0
    assert "--method gar" in capsys.readouterr().err


# ---------------------------------------------------------------- condition ablation


def test_condition_channels_and_params_layout():
    from facelab.methods.gar.geometry import condition_channels, params_condition

    assert condition_channels("normals") == 3 and condition_channels("depth") == 1
    assert condition_channels("params") == 40 + 53 + 3
    assert condition_channels("params", 2, 1) == 6
    with pytest.raises(InvalidInput, match="condition"):
        condition_channels("mesh")
    ident, expr = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.5]])
    rot = torch.tensor([[0.1, 0.0, -0.2]])
    # identity cut to 2, expression padded to 2, rotation x ROTATION_SCALE (3)
    p = params_condition(ident, expr, rot, n_identity=2, n_expression=2)
    assert torch.allclose(p, torch.tensor([[1.0, 2.0, 0.5, 0.0, 0.3, 0.0, -0.6]]))
    with pytest.raises(InvalidInput, match="condition"):
        GARTrainConfig(condition="mesh")
    # a checkpoint written before the field existed is the normal-map generator
    d = CONFIGS["tiny"].to_dict()
    d.pop("condition")
    assert GARTrainConfig.from_dict(d).condition == "normals"


def _pose(tz: float = 50.0, dtype=torch.float32):
    K = torch.tensor([[[30.0, 0, 8], [0, 30.0, 8], [0, 0, 1]]], dtype=dtype)
    return (torch.zeros(1, 2, dtype=dtype), torch.zeros(1, 1, dtype=dtype),
            torch.zeros(1, 3, dtype=dtype), torch.tensor([[0.0, 0.0, tz]], dtype=dtype), K)  # fmt: skip


def test_render_condition_normals_and_depth_known_values():
    from facelab.methods.gar.geometry import render_condition

    model = _sphere_model()
    ident, expr, rot, t, K = _pose()
    c, n, m, lm = render_condition("normals", model, ident, expr, rot, t, K, 16)
    n0, m0, lm0 = render_normals(model, ident, expr, rot, t, K, 16)
    assert torch.equal(c, n0) and torch.equal(n, n0) and torch.equal(m, m0)
    assert torch.equal(lm, lm0)
    for tz in (50.0, 80.0):  # relative depth: the same map at any distance (up to perspective)
        ident, expr, rot, t, K = _pose(tz)
        d, _, m, _ = render_condition("depth", model, ident, expr, rot, t, K, 16)
        assert d.shape == (1, 1, 16, 16) and int(m.sum()) > 10
        assert torch.all(d[m == 0] == 0)  # background
        # the pole of the radius-10 mm hemisphere: 10 mm in front of the origin / 100 mm
        assert float(d[0, 0, 7:9, 7:9].max()) == pytest.approx(0.1, abs=3e-3)
        assert float(d.max()) <= 0.1 + 1e-6 and float(d[m > 0].min()) >= -1e-3
    p, _, _, _ = render_condition("params", model, ident + 1, expr, rot, t, K, 16, None, 2, 1)
    assert torch.allclose(p, torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0, 0.0]]))


def test_depth_condition_gradient_matches_finite_differences_float64():
    from facelab.methods.gar.geometry import render_condition

    model = _sphere_model().to(dtype=torch.float64)
    ident, expr, rot, t, K = _pose(dtype=torch.float64)
    ident = ident + torch.tensor([[0.5, 0.3]], dtype=torch.float64)
    wgt = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def f(x: torch.Tensor) -> torch.Tensor:
        d, _, _, _ = render_condition("depth", model, x, expr, rot, t, K, 16)
        assert d.dtype == torch.float64  # dtype follows the model and the inputs
        return (d * wgt).sum()

    x = ident.clone().requires_grad_(True)
    f(x).backward()
    eps = 1e-6
    for k in range(2):
        e = torch.zeros_like(ident)
        e[0, k] = eps
        fd = (f(ident + e) - f(ident - e)) / (2 * eps)
        assert float(x.grad[0, k]) == pytest.approx(float(fd), rel=1e-4, abs=1e-8)
    assert float(x.grad.abs().sum()) > 0


def test_vector_condition_is_a_constant_map():
    G = GARGenerator(GARConfig(**{**TINY_G, "map_channels": 5}))
    _perturb_injection(G, 2)
    v = torch.randn(2, 5)
    ws = G.mapping(torch.randn(2, 8))
    a = G.synthesis(ws, v, noise_mode="const")
    b = G.synthesis(ws, v[:, :, None, None].expand(-1, -1, 16, 16), noise_mode="const")
    assert torch.equal(a, b)
    assert not torch.allclose(a, G.synthesis(ws, v + 1, noise_mode="const"))
    with pytest.raises(InvalidInput, match="condition"):
        G.synthesis(ws, torch.randn(2, 4))


@pytest.mark.parametrize("condition", ["depth", "params"])
def test_ablation_conditions_train_and_invert(tmp_path, condition):
    """A run with another condition trains its three phases on inputs of that kind, and the
    inversion differentiates the same condition (gradient reaches the shape)."""
    from facelab.methods.gar.train import condition_tensors

    data = tmp_path / "data"
    _tiny_data(data)
    cfg = _tiny_cfg(steps=2, condition=condition)
    from facelab.methods.gar.data import GARData

    geom = GARData(data).geom
    cond = condition_tensors(cfg, geom)
    mc = cfg.gen_config().map_channels
    if condition == "params":
        assert mc == 4 + 8 + 3 and cond["a"].shape == (8, mc)
        assert torch.allclose(cond["a"][:, :4], geom["identity"][:, :4])
        assert torch.allclose(cond["b"][:, 4:12], geom["expression_b"])
    else:
        assert mc == 1 and cond["a"].shape == (8, 1, 16, 16)
    train(cfg, tmp_path / "run", data, progress=False)
    export_gar(tmp_path / "run", tmp_path / "exp")
    gm = load_gar(tmp_path / "exp")
    assert gm.config.condition == condition and gm.G.config.map_channels == mc
    model = _sphere_model()
    ident, expr, rot, t, K = _pose()
    st = {"rotation": rot, "translation": t,
          "identity": torch.zeros(1, 4, requires_grad=True),
          "expression": torch.full((1, 8), 0.5), "w": gm.G.mapping.w_avg[None].clone()}  # fmt: skip
    crop = {"target": torch.zeros(1, 3, 16, 16), "valid": torch.ones(1, 1, 16, 16), "K": K,
            "landmarks": torch.full((1, 68, 2), 8.0)}  # fmt: skip
    model4 = MorphableModel(
        mean=model.mean, faces=model.faces,
        identity_basis=torch.cat([model.identity_basis, model.identity_basis]),
        identity_std=torch.ones(4), expression_basis=model.expression_basis.expand(8, -1, -1),
        expression_names=[f"e{i}" for i in range(8)], landmarks=model.landmarks, name="sphere4",
    )  # fmt: skip
    ls = inversion_loss(gm, model4, st, crop, GARFitConfig(w_landmark=0.0, w_identity=0.0))
    ls["total"].backward()
    assert torch.isfinite(ls["total"]) and float(st["identity"].grad.abs().sum()) > 0


def test_start_state_does_not_depend_on_the_global_rng():
    from facelab.methods.gar.invert import start_state
    from facelab.models.params import FaceParams

    torch.manual_seed(0)
    G = GARGenerator(GARConfig(**TINY_G)).requires_grad_(False)
    E = Encoder(EncoderConfig(resolution=16, width=4, n_identity=2, n_expression=1, w_dim=16))
    gm = GARModel(G=G, aux=AuxNet(AuxConfig(resolution=16, width=4, n_identity=2)), E=E.eval(),
                  D=torch.nn.Identity(), meta={}, config=CONFIGS["tiny"])  # fmt: skip
    p = FaceParams(identity=torch.zeros(1, 2), expression=torch.zeros(1, 1),
                   rotation=torch.zeros(1, 3), translation=torch.tensor([[0.0, 0.0, 50.0]]))  # fmt: skip
    crop = {"target": torch.rand(1, 3, 16, 16) * 2 - 1}
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        states.append(start_state(gm, crop, p, "encoder"))
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
