"""facelab.methods.ganfit (texture data, evaluation) and facelab.gan.metrics."""

from __future__ import annotations

import math

import pytest
import torch

from facelab.errors import AssetMissing, InvalidInput
from facelab.gan.metrics import (
    band_energy,
    frechet_distance,
    kernel_distance,
    precision_recall,
    radial_power_spectrum,
)
from facelab.methods.ganfit import evaluate as ev
from facelab.methods.ganfit.texture_gan import (
    add_appearance_marks,
    load_texture_gan,
    texture_layout,
    texture_maps,
)


def test_appearance_marks_are_discrete_local_choices():
    lay = texture_layout(32)
    x = torch.full((3, 3, 32, 32), 0.6)
    none = add_appearance_marks(x, lay, torch.Generator().manual_seed(0), {k: 0.0 for k in
                                ("lipstick", "shadow", "mark", "scar")})  # fmt: skip
    torch.testing.assert_close(none, x)
    lips = lay.mask("lips")
    y = add_appearance_marks(x, lay, torch.Generator().manual_seed(0),
                             {"lipstick": 1.0, "shadow": 0.0, "mark": 0.0, "scar": 0.0})  # fmt: skip
    changed = (y - x).abs().sum(1) > 1e-3  # (B, S, S)
    assert bool(changed[:, lips > 0.5].all())  # the lips are painted ...
    assert not bool(changed[:, lips < 1e-4].any())  # ... and nothing else


def test_texture_maps_deterministic_in_range():
    a = texture_maps(3, 16, seed=4)
    b = texture_maps(3, 16, seed=4)
    assert a.shape == (3, 3, 16, 16) and a.dtype == torch.float32
    torch.testing.assert_close(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.allclose(a, texture_maps(3, 16, seed=5))
    with pytest.raises(InvalidInput):
        texture_maps(0, 16)


def test_render_textured_is_texture_times_shading():
    white = torch.ones(1, 3, 16, 16)
    img, lm = ev.render_textured(torch.cat([white, 0.5 * white]), size=64)
    assert img.shape == (2, 3, 64, 64) and lm.shape == (2, 68, 2)
    geo = ev._geometry(64, 48.0, 28.0, 0.0)
    m = geo["mask"][0, 0] > 0
    assert 0.1 < float(m.float().mean()) < 0.9
    torch.testing.assert_close(img[0][:, ~m], torch.full_like(img[0][:, ~m], 0.5))  # background
    # Lambert: albedo 0.5 gives half the radiance of albedo 1 wherever that is not clipped
    ok = m & (img[0].max(0).values < 0.99)
    torch.testing.assert_close(img[1][:, ok], 0.5 * img[0][:, ok], atol=1e-5, rtol=1e-5)
    assert bool((lm[0, :, 0] > 0).all() and (lm[0, :, 0] < 64).all())


def test_pca_baseline_reconstructs_its_span_and_projection_errors():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(4, 3, 8, 8, generator=g) * 0.2
    coef = torch.randn(40, 4, generator=g)
    maps = (0.5 + torch.einsum("nk,kchw->nchw", coef, base) * 0.3).clamp(0, 1)
    pca = ev.fit_pca(maps, 4, cache=False)
    rec = ev.project_pca(pca, maps[:5])
    errs = ev.reconstruction_errors(rec, maps[:5])
    assert errs["rmse"] < 1e-4 and errs["rmse_high"] < 1e-4
    assert errs["high_energy_kept"] == pytest.approx(1.0, abs=1e-3)


def test_spectrum_and_band_energy_known_answers():
    s = 32
    j = torch.arange(s, dtype=torch.float64)
    wave = torch.cos(2 * math.pi * 0.375 * j)[None, None, None, :].expand(
        1, 1, s, s
    )  # 0.375 cyc/px
    f, p = radial_power_spectrum(wave)
    assert abs(float(f[int(p.argmax())]) - 0.375) < 0.5 / (s // 2)
    assert band_energy(wave, 0.25) > 50 * band_energy(wave, 0.0, 0.25)
    smooth = torch.cos(2 * math.pi * 0.05 * j)[None, None, None, :].expand(1, 1, s, s)
    assert band_energy(smooth, 0.25) < 1e-3 * band_energy(smooth, 0.0, 0.25)


def test_distribution_metrics_known_answers():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 4, generator=g, dtype=torch.float64)
    b = torch.randn(400, 4, generator=g, dtype=torch.float64)
    shift = torch.tensor([2.0, 0, 0, 0], dtype=torch.float64)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + shift) == pytest.approx(4.0, abs=1e-6)  # |mu_a - mu_b|^2
    kid_same, kid_std = kernel_distance(a, b, subsets=20, subset_size=100)
    kid_far, _ = kernel_distance(a, b + shift, subsets=20, subset_size=100)
    assert abs(kid_same) < 3 * kid_std + 1e-3 and kid_far > 10 * (abs(kid_same) + kid_std)
    assert precision_recall(a, a) == (1.0, 1.0)
    assert precision_recall(a, a + 100) == (0.0, 0.0)
    with pytest.raises(InvalidInput):
        kernel_distance(a, b[:, :3])


def test_load_texture_gan_missing_file_says_how_to_train(tmp_path):
    with pytest.raises(AssetMissing):
        load_texture_gan(tmp_path / "nothing")


# --------------------------------------------------------------------------------------------
# GANFit fitting (facelab.methods.ganfit.losses / uv / fit) and `facelab fit --method ganfit`
# --------------------------------------------------------------------------------------------

from facelab.methods.ganfit import losses as gl  # noqa: E402
from facelab.methods.ganfit import uv as guv  # noqa: E402


def test_identity_loss_is_one_minus_cosine():
    a = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    assert float(gl.identity_loss(a, 5 * a)) == pytest.approx(0.0, abs=1e-7)  # scale-free
    assert float(gl.identity_loss(a, -a)) == pytest.approx(2.0)
    assert float(gl.identity_loss(a, a.roll(1, 1))) == pytest.approx(1.0)  # orthogonal
    b = torch.tensor([[1.0, 1.0, 0.0]])
    assert float(gl.identity_loss(b, a[:1])) == pytest.approx(1 - 1 / math.sqrt(2))
    with pytest.raises(InvalidInput):
        gl.identity_loss(a, a[:2])


def test_content_loss_normalised_per_layer():
    g = torch.Generator().manual_seed(0)
    t = {k: torch.randn(2, 4, 5, 5, generator=g) for k in gl.CONTENT_LAYERS}
    assert float(gl.content_loss(t, t)) == pytest.approx(0.0)
    half = {k: 0.5 * v for k, v in t.items()}  # each layer: mean((0.5 t - t)^2)/mean(t^2) = 0.25
    assert float(gl.content_loss(half, t)) == pytest.approx(0.25 * len(gl.CONTENT_LAYERS))
    big = {k: 10 * v for k, v in t.items()}  # scale-free: the same with 10x activations
    assert float(gl.content_loss({k: 5 * v for k, v in t.items()}, big)) == pytest.approx(
        0.75, rel=1e-5
    )
    assert float(gl.content_loss(half, t, layers=("level3",))) == pytest.approx(0.25)
    with pytest.raises(InvalidInput):
        gl.content_loss(t, t, layers=("nope",))


def test_pixel_loss_only_inside_the_mask():
    r = torch.zeros(1, 4, 4, 3)
    t = torch.full((1, 4, 4, 3), 0.2)
    m = torch.zeros(1, 4, 4, dtype=torch.bool)
    m[0, :2] = True
    t[0, 2:] = 5.0  # outside the mask: ignored
    assert float(gl.pixel_loss(r, t, m)) == pytest.approx(0.2)
    with pytest.raises(InvalidInput):
        gl.pixel_loss(r, t, m[:, :2])


def test_landmark_term_and_priors_known_values():
    x = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]])
    # shifted by 1 px: |d|^2 = 1, face size 10 -> 1 / 100
    assert float(gl.landmark_term(x + torch.tensor([1.0, 0.0]), x)) == pytest.approx(0.01)
    mean, std = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 2.0])
    assert float(gl.latent_prior(mean[None], mean, std)) == pytest.approx(0.0)
    assert float(gl.latent_prior((mean + std)[None], mean, std)) == pytest.approx(1.0)
    assert float(
        gl.latent_prior((mean + 2 * std)[None, None].expand(1, 3, 2), mean, std)
    ) == pytest.approx(4.0)
    assert float(gl.blendshape_prior(torch.tensor([[0.5, 0.5]]))) == pytest.approx(0.5)


def test_tps_exact_at_controls_and_affine():
    g = torch.Generator().manual_seed(1)
    src = torch.rand(20, 2, generator=g, dtype=torch.float64)
    A = torch.tensor([[1.2, 0.1], [-0.2, 0.9]], dtype=torch.float64)
    dst = src @ A.T + torch.tensor([0.3, -0.1], dtype=torch.float64)
    tps = guv.tps_fit(src, dst)
    q = torch.rand(50, 2, generator=g, dtype=torch.float64)
    torch.testing.assert_close(
        guv.tps_apply(tps, q), q @ A.T + torch.tensor([0.3, -0.1], dtype=torch.float64)
    )
    wavy = dst + 0.05 * torch.sin(7 * src)
    torch.testing.assert_close(guv.tps_apply(guv.tps_fit(src, wavy), src), wavy)


def test_gan_vertex_uvs_identity_for_the_gans_own_layout():
    from facelab.fit.albedo import vertex_uvs
    from facelab.models import load

    m = load("builtin")
    got = guv.gan_vertex_uvs(m, "builtin")
    face = (m.mean - m.mean[m.landmarks].mean(0)).norm(dim=-1) < 6.0
    assert float((got - vertex_uvs(m))[face].abs().max()) < 1e-3


def test_random_view_draws_are_bounded_and_seeded():
    from facelab.methods.ganfit.fit import random_view
    from facelab.render.shading import sh_ambient

    e = torch.rand(3, 15)
    light = sh_ambient(0.8, 3, 3)
    Ry, e2, l2 = random_view(e, light, torch.Generator().manual_seed(0), 20.0, 0.3)
    yaw = torch.atan2(Ry[:, 0, 2], Ry[:, 0, 0]).abs()
    assert float(yaw.max()) <= math.radians(20.0) + 1e-6
    torch.testing.assert_close(Ry @ Ry.transpose(1, 2), torch.eye(3).expand(3, 3, 3))
    assert float(e2.min()) >= 0 and float(e2.max()) <= 1 and bool((e2 >= e - 1e-7).all())
    torch.testing.assert_close(l2[:, 0], light[:, 0])  # the ambient term is kept
    assert float(l2[:, 1:4].norm()) > 0  # a directional band is added
    Ry_b, _, _ = random_view(e, light, torch.Generator().manual_seed(0), 20.0, 0.3)
    torch.testing.assert_close(Ry, Ry_b)


def test_gradient_flows_from_the_render_to_the_latent():
    from facelab.fit.render import render_face
    from facelab.geometry.camera import intrinsics
    from facelab.methods.ganfit.fit import gan_texture, latent_stats, load_components
    from facelab.models import load
    from facelab.render import srgb_to_linear
    from facelab.render.shading import sh_ambient
    from facelab.render.texture import sample_points

    m = load("builtin")
    G, _ = load_components()
    mean, std = latent_stats(G)
    w = (mean + 0.5 * std)[None].clone().requires_grad_(True)
    alb = srgb_to_linear(sample_points(gan_texture(G, w), guv.gan_vertex_uvs(m)))
    v = m.mean[None] * torch.tensor([1.0, -1.0, -1.0]) + torch.tensor([0.0, 0.0, 60.0])
    K = intrinsics(
        torch.tensor([200.0]), torch.tensor([200.0]), torch.tensor([32.0]), torch.tensor([32.0])
    )
    r = render_face(v, m.faces, alb, sh_ambient(1.0, 1, 3), K, (64, 64))
    assert int(r.mask.sum()) > 100
    loss = gl.pixel_loss(r.image, torch.full_like(r.image, 0.3), r.mask)
    loss.backward()
    assert w.grad is not None and float(w.grad.abs().sum()) > 0


@pytest.fixture(scope="module")
def ganfit_photo(tmp_path_factory, shared_data):
    """One synthetic ICT face at 160 px, written as a PNG (dlib detects it)."""
    from facelab.vision import save_image
    from facelab.world import WorldConfig, WorldDataset

    cfg = WorldConfig(model="ict-face", image_size=160, realism=0.3, yaw_range=(-15.0, 15.0),
                      pitch_range=(-5.0, 5.0))  # fmt: skip
    s = WorldDataset(cfg, length=1, seed=3)[0]
    p = tmp_path_factory.mktemp("ganfit") / "face.png"
    save_image(s["image"], p)
    return str(p)


def test_short_ganfit_lowers_its_loss_and_beats_the_mean_face(ganfit_photo):
    from facelab.geometry.camera import project
    from facelab.methods.ganfit.fit import GanFitConfig, GanFitResult, GanStage, fit
    from facelab.metrics import landmark_nme
    from facelab.models import load
    from facelab.models.morphable import pose_points

    m = load("builtin")
    cfg = GanFitConfig(resolution=64, stages=[GanStage("joint", 8, 0.03)], progress=False)
    r = fit(ganfit_photo, model=m, config=cfg)
    assert isinstance(r, GanFitResult)
    h = r.history["joint"]
    assert len(h) == 8 and h[-1] < h[0]
    assert r.gan_texture.shape == (3, 64, 64) and r.latent.shape == (G_W_DIM,)
    assert bool(torch.isfinite(r.vertices).all())
    # the mean face in the fitted pose projects its landmarks further from the detections
    p = r.params
    mean_posed = pose_points(m.mean[None], p.rotation, p.translation)
    mean_lm = project(mean_posed[:, r.landmark_vertices], r.K[None])[0]
    nme_mean = float(
        landmark_nme(mean_lm[None].double(), r.landmarks[None].double(), "outer_eye")[0]
    )
    assert r.landmark_nme < nme_mean


G_W_DIM = 128


def test_ganfit_config_rejects_unknown_names():
    from facelab.methods.ganfit.fit import GanFitConfig, GanStage

    with pytest.raises(InvalidInput):
        GanFitConfig(weights={"idd": 1.0})
    with pytest.raises(InvalidInput):
        GanFitConfig(stages=[GanStage("x", 1, params=("albedo",))])


def test_cli_fit_method_ganfit_round_trip(tmp_path, capsys, ganfit_photo):
    import json

    from facelab.cli import main
    from facelab.models import FaceParams

    out = tmp_path / "gf"
    code = main(["fit", ganfit_photo, "--out", str(out), "--model", "builtin", "--method", "ganfit",
                 "--fast", "--resolution", "48", "--json", "--quiet"])  # fmt: skip
    stdout = capsys.readouterr().out
    assert code == 0
    row = json.loads(stdout)["results"][0]
    assert {"mesh", "texture", "params", "overlay", "report", "gan_texture"} <= set(row["files"])
    for name in ("mesh.obj", "params.json", "overlay.png", "report.html", "gan_texture.png"):
        assert (out / name).is_file(), name
    p = json.loads((out / "params.json").read_text())
    FaceParams.from_dict(p["params"])
    assert p["method"] == "ganfit" and len(p["gan_latent"]) == G_W_DIM
    assert main(["fit", ganfit_photo, "--out", str(tmp_path / "x"), "--method", "ganfit",
                 "--landmarks-only"]) == 1  # fmt: skip
    # --fast-start is GANFit's: the classic fit refuses it with a message, writes nothing
    assert main(["fit", ganfit_photo, "--out", str(tmp_path / "y"), "--fast-start"]) == 1
    assert "--method ganfit" in capsys.readouterr().err and not (tmp_path / "y").exists()


def test_fit_multi_shares_identity_and_texture(ganfit_photo):
    from facelab.methods.ganfit.fit import GanFitConfig, GanStage, fit_multi
    from facelab.models import load

    cfg = GanFitConfig(resolution=48, stages=[GanStage("joint", 2, 0.03)], progress=False)
    rs = fit_multi([ganfit_photo, ganfit_photo], model=load("builtin"), config=cfg)
    assert len(rs) == 2
    torch.testing.assert_close(rs[0].params.identity, rs[1].params.identity)
    torch.testing.assert_close(rs[0].latent, rs[1].latent)
    torch.testing.assert_close(rs[0].gan_texture, rs[1].gan_texture)
