"""Fast-GANFit's start regressor: crops, predictions, checkpoints, and the fit using them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from facelab.errors import AssetMissing, InvalidInput, ModelFormatError
from facelab.gan.checkpoint import save_checkpoint
from facelab.methods.ganfit.regressor import (
    KIND,
    StartRegressor,
    StartRegressorConfig,
    load_start_regressor,
    predict_start,
    regressor_crop,
    start_loss,
    vertex_basis,
)


def _landmarks(cx: float, cy: float, half: float, B: int = 1) -> torch.Tensor:
    """68 points whose bounding box is the square of side 2 * half around (cx, cy)."""
    t = torch.linspace(0, 1, 68)
    pts = torch.stack([cx - half + 2 * half * t, cy - half + 2 * half * t.flip(0)], -1)
    return pts[None].expand(B, -1, -1).clone()


def test_config_rejects_bad_values():
    with pytest.raises(InvalidInput, match="power of two"):
        StartRegressorConfig(resolution=48)
    with pytest.raises(InvalidInput, match="steps"):
        StartRegressorConfig(steps=0)
    with pytest.raises(InvalidInput, match="unknown"):
        StartRegressorConfig.from_dict({"resolution": 32, "depth": 3})


def test_forward_shapes_and_bad_input():
    cfg = StartRegressorConfig(resolution=32, width=8, n_identity=7, n_expression=5)
    y = StartRegressor(cfg)(torch.zeros(3, 3, 32, 32))
    assert y["identity"].shape == (3, 7) and y["expression"].shape == (3, 5)
    with pytest.raises(InvalidInput):
        StartRegressor(cfg)(torch.zeros(3, 3, 64, 64))


def test_crop_is_the_landmark_box_scaled_and_moves_with_the_jitter():
    # the image's red channel is the x coordinate: a crop's centre column reads the box centre
    H = W = 200
    x = (torch.arange(W, dtype=torch.float64) + 0.5) / W
    img = torch.stack([x.expand(H, W), torch.zeros(H, W), torch.full((H, W), 0.25)])[None]
    lm = _landmarks(100.0, 100.0, 25.0).double()
    c = regressor_crop(img, lm, size=16, scale=1.6)
    assert c.shape == (1, 3, 16, 16) and c.dtype == torch.float64
    torch.testing.assert_close(c[0, 2], torch.full((16, 16), -0.5, dtype=torch.float64))
    # side 1.6 * 50 = 80 px around x = 100: red spans (60..140) / 200 in [0, 1] -> [-1, 1]
    lo, hi = float(c[0, 0, 8, 0]), float(c[0, 0, 8, -1])
    assert abs((lo + 1) / 2 * W - (60 + 2.5)) < 1.0 and abs((hi + 1) / 2 * W - (140 - 2.5)) < 1.0
    shifted = regressor_crop(img, lm, 16, 1.6, shift=torch.tensor([[0.25, 0.0]]))
    moved = (shifted[0, 0] - c[0, 0]).mean() / 2 * W  # 0.25 * 80 px = 20 px
    assert abs(float(moved) - 20.0) < 0.5
    zoomed = regressor_crop(img, lm, 16, 1.6, zoom=torch.tensor([0.5]))
    span = float(zoomed[0, 0, 8, -1] - zoomed[0, 0, 8, 0]) / 2 * W
    assert abs(span - 0.5 * (80 - 5)) < 1.0
    with pytest.raises(InvalidInput):
        regressor_crop(img, lm[:, :60], 16)


def test_start_loss_known_values():
    out = {"identity": torch.ones(2, 3), "expression": torch.zeros(2, 4)}
    ls = start_loss(out, torch.zeros(2, 10), torch.full((2, 4), 0.5), expression_weight=10.0)
    assert float(ls["identity"]) == pytest.approx(1.0)  # only the first 3 coefficients count
    assert float(ls["expression"]) == pytest.approx(0.25)
    assert float(ls["total"]) == pytest.approx(3.5)
    # with a basis: the vertices' error, d @ B; here every vertex moves by the sum of errors
    basis = torch.ones(7, 6)  # 3 identity + 4 expression rows, 2 vertices x 3
    lv = start_loss(out, torch.zeros(2, 10), torch.full((2, 4), 0.5), 10.0, basis, 2.0)
    assert float(lv["vertex"]) == pytest.approx((3 * 1.0 - 4 * 0.5) ** 2)
    assert float(lv["total"]) == pytest.approx(3.5 + 2.0 * 1.0)
    with pytest.raises(InvalidInput, match="rows"):
        start_loss(out, torch.zeros(2, 10), torch.zeros(2, 4), basis=torch.ones(6, 6))


def test_vertex_basis_moves_the_model_vertices_in_mm():
    from facelab.models import load

    m = load("builtin")
    cfg = StartRegressorConfig(n_identity=3, n_expression=2, vertex_points=50)
    b = vertex_basis(m, cfg)
    assert b.shape == (5, 150)
    c = torch.tensor([[0.5, -1.0, 0.25, 0.3, 0.0]])
    v = m.forward(c[:, :3].to(m.dtype), c[:, 3:].to(m.dtype)) - m.forward(
        torch.zeros(1, 3, dtype=m.dtype), torch.zeros(1, 2, dtype=m.dtype)
    )
    # the basis's columns are some 50 vertices: their displacements appear in v (mm)
    from facelab.models.morphable import _UNIT_MM

    d = (c @ b).reshape(50, 3).double()
    vmm = (v[0] * _UNIT_MM[m.units]).double()
    hits = [(vmm - p).norm(dim=-1).min() for p in d]
    assert max(float(h) for h in hits) < 1e-4


def _constant_regressor(n_identity=4, n_expression=3, ident=0.5, expr=1.7, resolution=8):
    cfg = StartRegressorConfig(resolution=resolution, width=4, n_identity=n_identity,
                               n_expression=n_expression)  # fmt: skip
    reg = StartRegressor(cfg)
    with torch.no_grad():
        reg.out.weight.zero_()
        reg.out.bias.copy_(torch.tensor([ident] * n_identity + [expr] * n_expression))
    return reg


def test_predict_start_pads_clamps_and_follows_the_dtype():
    reg = _constant_regressor()
    img = torch.rand(2, 3, 40, 40, dtype=torch.float64)
    i, e = predict_start(reg, img, _landmarks(20, 20, 8, 2).double(), n_identity=6)
    assert i.dtype == e.dtype == torch.float64
    torch.testing.assert_close(i, torch.tensor([[0.5] * 4 + [0.0] * 2] * 2, dtype=torch.float64))
    torch.testing.assert_close(e, torch.ones(2, 3, dtype=torch.float64))  # 1.7 clamped
    i2, _ = predict_start(reg, img, _landmarks(20, 20, 8, 2).double(), n_identity=2)
    assert i2.shape == (2, 2)
    assert reg.training  # restored


def test_checkpoint_round_trip_and_refusals(tmp_path):
    reg = StartRegressor(StartRegressorConfig(resolution=16, width=4, n_identity=3, n_expression=2))
    meta = {"kind": KIND, "config": reg.config.to_dict()}
    save_checkpoint(tmp_path / "start", {f"net.{k}": v for k, v in reg.state_dict().items()}, meta)
    back, m = load_start_regressor(tmp_path / "start")
    x = torch.randn(2, 3, 16, 16)
    reg.eval()
    torch.testing.assert_close(back(x)["identity"], reg(x)["identity"])
    assert not back.training and m["kind"] == KIND
    save_checkpoint(tmp_path / "other", {"x": torch.zeros(1)}, {"kind": "gar", "config": {}})
    with pytest.raises(ModelFormatError, match="not a"):
        load_start_regressor(tmp_path / "other")
    with pytest.raises(AssetMissing):
        load_start_regressor(tmp_path / "missing")


class _BrightnessRegressor(nn.Module):
    """identity = the crop's mean brightness (so two photos predict two identities)."""

    def __init__(self, n_expression: int) -> None:
        super().__init__()
        self.config = StartRegressorConfig(resolution=8, n_identity=2, n_expression=n_expression)
        self.p = nn.Parameter(torch.zeros(()))

    def forward(self, crop):
        b = crop.mean((1, 2, 3))[:, None]
        e = torch.full((crop.shape[0], self.config.n_expression), 0.2, dtype=crop.dtype)
        return {"identity": b.expand(-1, 2) + self.p, "expression": e}


def test_start_from_regressor_replaces_shape_and_averages_a_shared_identity():
    from facelab.methods.ganfit.fit import start_from_regressor
    from facelab.models import FaceParams

    p = FaceParams(identity=torch.full((2, 5), 9.0), expression=torch.full((2, 3), 9.0),
                   rotation=torch.zeros(2, 3), translation=torch.ones(2, 3))  # fmt: skip
    img = torch.cat([torch.zeros(1, 3, 32, 32), torch.ones(1, 3, 32, 32)])
    lm = _landmarks(16, 16, 6, 2)
    reg = _BrightnessRegressor(3)
    own = start_from_regressor(p, img, lm, False, reg)
    torch.testing.assert_close(own.identity[:, :2], torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
    assert float(own.identity[:, 2:].abs().max()) == 0.0
    torch.testing.assert_close(own.expression, torch.full((2, 3), 0.2))
    torch.testing.assert_close(own.translation, p.translation)  # the pose is the landmark fit's
    shared = start_from_regressor(p, img, lm, True, reg)
    torch.testing.assert_close(shared.identity, torch.zeros(2, 5))
    with pytest.raises(InvalidInput, match="expression"):
        start_from_regressor(p, img, lm, False, _BrightnessRegressor(4))


@pytest.mark.parametrize("fast_start", [False, True])
def test_fit_starts_its_stages_from_the_regressor_only_with_fast_start(monkeypatch, fast_start):
    """A spy on ``fit_crops``: with ``fast_start`` its ``init`` carries the regressor's
    identity and expression; without, the landmark fit's (then zeroed by ``one_stage``)."""
    from facelab.methods.ganfit import fit as gf
    from facelab.models import load
    from facelab.world import WorldConfig, WorldDataset

    m = load("builtin")
    s = WorldDataset(WorldConfig(model="builtin", image_size=96, realism=0.0), length=1, seed=2,
                     model=m)[0]  # fmt: skip
    seen = {}

    class Stop(Exception):
        pass

    def spy(model, crops, landmarks, init, *a, **k):
        seen["init"] = init
        raise Stop

    monkeypatch.setattr(gf, "fit_crops", spy)
    reg = _constant_regressor(n_identity=3, n_expression=m.n_expression, ident=0.75, expr=0.1)
    cfg = gf.GanFitConfig(resolution=32, fast_start=fast_start, progress=False)
    with pytest.raises(Stop):
        gf.fit(s["image"], model=m, landmarks=s["landmarks2d"], config=cfg, calibration=None,
               start_regressor=reg)  # fmt: skip
    ident = seen["init"].identity
    if fast_start:
        assert torch.allclose(ident[0, :3], torch.full((3,), 0.75, dtype=ident.dtype))
        assert float(ident[0, 3:].abs().max()) == 0.0
        assert torch.allclose(
            seen["init"].expression, torch.full_like(seen["init"].expression, 0.1)
        )
    else:
        assert not torch.allclose(ident[0, :3], torch.full((3,), 0.75, dtype=ident.dtype))
