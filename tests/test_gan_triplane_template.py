"""The tri-plane GAN's template density prior (facelab.gan.triplane: template_from_mesh,
template_occupancy, TriplaneConfig.template_prior): a known box, occupancy inside / outside /
on the surface, a solid untrained head, dtype, the regulariser ignoring the template, a
checkpoint round trip and bad input."""

from __future__ import annotations

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.gan.triplane import (
    TriplaneConfig,
    TriplaneGenerator,
    density_tv_loss,
    template_from_mesh,
    template_occupancy,
)
from facelab.gan.triplane_eval import orbit_cameras
from facelab.gan.triplane_train import CONFIGS, export_generator, load_triplane_generator, train

D64 = torch.float64
TINY = dict(CONFIGS["tiny"].generator)
LO = (-0.2, -0.3, -0.1)
HI = (0.2, 0.1, 0.25)


def _box(lo=LO, hi=HI, dtype=D64) -> tuple[torch.Tensor, torch.Tensor]:
    """A closed axis-aligned cuboid: 8 corners, 12 triangles."""
    corners = [[(lo, hi)[i >> k & 1][k] for k in range(3)] for i in range(8)]
    v = torch.tensor(corners, dtype=dtype)
    quads = [(0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5)]
    f = [t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))]
    return v, torch.tensor(f, dtype=torch.long)


def _cell_centres(res: int, dtype=D64) -> torch.Tensor:
    return ((torch.arange(res, dtype=dtype) + 0.5) / res - 0.5).to(dtype)


def test_template_of_a_box_is_its_front_back_and_silhouette():
    v, f = _box()
    res = 32
    t = template_from_mesh(v, f, res)
    assert t.shape == (3, res, res) and t.dtype == D64
    c = _cell_centres(res)
    inside_x = (c > LO[0]) & (c < HI[0])  # columns
    inside_y = (c > LO[1]) & (c < HI[1])  # rows
    inside = inside_y[:, None] & inside_x[None, :]
    assert torch.equal(t[2] > 0.5, inside)
    torch.testing.assert_close(t[0][inside], torch.full_like(t[0][inside], HI[2]))
    torch.testing.assert_close(t[1][inside], torch.full_like(t[1][inside], LO[2]))
    # cells outside the silhouette are filled from their neighbours (no zeros to blend in)
    torch.testing.assert_close(t[0], torch.full_like(t[0], HI[2]))
    torch.testing.assert_close(t[1], torch.full_like(t[1], LO[2]))


def test_occupancy_inside_outside_and_on_the_surface():
    v, f = _box()
    t = template_from_mesh(v, f, 64)
    pts = torch.tensor(
        [[[0.0, -0.1, 0.05],  # centre: inside
          [0.0, -0.1, 0.40],  # in front of the face
          [0.0, -0.1, -0.30],  # behind the back
          [0.35, -0.1, 0.05],  # beside it
          [0.0, -0.1, HI[2]],  # on the front surface: half
          [0.0, -0.1, LO[2]]]],  # on the back surface: half
        dtype=D64,
    )  # fmt: skip
    o = template_occupancy(t, pts, softness=0.01)[0]
    assert o[0] > 0.999
    assert o[1] < 1e-4 and o[2] < 1e-4 and o[3] < 1e-4
    torch.testing.assert_close(o[4:], torch.full_like(o[4:], 0.5), atol=1e-3, rtol=0)
    # softness widens the transition: 0.05 in front of the surface is ~0 for tau = 0.005
    # and clearly not for tau = 0.05
    p = torch.tensor([[[0.0, -0.1, HI[2] + 0.05]]], dtype=D64)
    assert template_occupancy(t, p, softness=0.005) < 1e-4
    assert template_occupancy(t, p, softness=0.05) > 0.2


def _prior_generator(beta: float = 20.0, dtype=D64, **kw) -> TriplaneGenerator:
    torch.manual_seed(0)
    cfg = TriplaneConfig(**{**TINY, **kw}, template_prior=beta, template_res=32)
    G = TriplaneGenerator(cfg).to(dtype)
    G.set_template(*_box(dtype=dtype))
    return G.eval()


def test_untrained_generator_with_the_prior_is_a_solid_box():
    G = _prior_generator(n_samples=48, n_importance=48, template_softness=0.002)
    assert G.template.dtype == D64
    z = torch.randn(1, G.z_dim, dtype=D64)
    cam = orbit_cameras([0.0], 0.0, z)
    out = G(z, cam, resolution=16, noise_mode="const")
    assert out["depth"].dtype == D64 and out["image"].dtype == D64
    # the ray through the centre pixel enters the box's front face at z = 0.25, camera depth
    # 2.45 (the frontal camera sits 2.7 along +z); inside, the density is ~constant sigma (a
    # sharp template: softness 0.002), so
    # the expected depth is exponentially distributed behind the face: 2.45 + 1 / sigma
    centre = out["opacity"][0, 0, 7:9, 7:9]
    assert centre.min() > 0.99
    planes = out["planes"]
    p = torch.tensor([[[0.0, 0.0, HI[2] - 0.03]]], dtype=D64)
    sigma = G.field(planes)(p, p)[0]
    assert sigma > 15  # softplus(beta - 1 + small): the prior dominates an untrained decoder
    expected = 2.7 - HI[2] + 1 / float(sigma.detach())
    torch.testing.assert_close(
        out["depth"][0, 0, 7:9, 7:9], torch.full((2, 2), expected, dtype=D64), atol=0.01, rtol=0
    )
    assert out["opacity"][0, 0, 0, 0] < 0.01  # a corner ray misses the box
    # the same generator without the prior is not a box: its centre is a thin fog
    torch.manual_seed(0)
    G0 = TriplaneGenerator(TriplaneConfig(**TINY)).to(D64).eval()
    assert G0(z, cam, resolution=16, noise_mode="const")["opacity"][0, 0, 7:9, 7:9].max() < 0.99


def test_density_regulariser_ignores_the_template():
    G = _prior_generator()
    planes = torch.zeros(2, 3, TINY["plane_channels"], 8, 8, dtype=D64)  # constant, padding too
    # the learned density is constant, whatever the template's surface does (large moves
    # cross the box's surface at eps = 0.05 — with the template included they would count)
    with torch.no_grad():
        assert float(density_tv_loss(G, planes, n_points=400, eps=0.05)) == pytest.approx(0.0)
    # the bias itself: beta (2 o - 1), o = s((0.25 - 0) / tau) s((0 + 0.1) / tau) at the origin
    bias = G.density_bias(torch.zeros(1, 1, 3, dtype=D64))
    o = torch.sigmoid(torch.tensor(0.25 / 0.02)) * torch.sigmoid(torch.tensor(0.1 / 0.02))
    assert float(bias) == pytest.approx(float(20 * (2 * o - 1)), rel=1e-6)


def test_template_survives_a_checkpoint_round_trip(tmp_path):
    cfg = CONFIGS["tiny"]
    cfg = type(cfg).from_dict(
        {**cfg.to_dict(), "generator": {**cfg.generator, "template_prior": 5.0, "template_res": 16}}
    )
    train(cfg, tmp_path / "run", tmp_path / "views", progress=False)
    stem = export_generator(tmp_path / "run", tmp_path / "ship" / "tiny")
    G, meta = load_triplane_generator(stem)
    assert meta["config"]["generator"]["template_prior"] == 5.0
    assert G.template[2].max() == 1.0 and G.template[2].min() == 0.0  # a head, not zeros
    from facelab.gan.triplane_data import mean_head

    ref = TriplaneGenerator(G.config)
    ref.set_template(*mean_head(cfg.views_config()))
    torch.testing.assert_close(G.template, ref.template)


def test_bad_template_input_fails_clearly():
    with pytest.raises(InvalidInput, match="template_prior"):
        TriplaneConfig(template_prior=-1.0)
    with pytest.raises(InvalidInput, match="template_softness"):
        TriplaneConfig(template_prior=1.0, template_softness=0.0)
    with pytest.raises(InvalidInput, match="set_template"):
        TriplaneGenerator(TriplaneConfig(**TINY)).set_template(*_box())
    v, f = _box()
    with pytest.raises(InvalidInput, match="verts"):
        template_from_mesh(v[:, :2], f)


def test_shipped_checkpoint_is_the_template_prior_generator():
    from facelab.gan.triplane_train import SHIPPED, shipped_triplane_checkpoint

    G, meta = load_triplane_generator(shipped_triplane_checkpoint())
    assert meta["config"]["name"] == SHIPPED == "cpu-32-prior"
    assert G.config.template_prior == 20.0
    assert G.template[2].sum() > 100 and float(G.template[0].max()) > 0.2  # a head, not zeros
    with pytest.raises(InvalidInput, match="shipped: \\['cpu-32"):
        shipped_triplane_checkpoint("no-such-run")
