"""facelab.fit: landmark and photometric stages, crops, multi-image fitting, failures, output.

Everything runs on the small built-in model and synthetic faces from :mod:`facelab.world`
(exact ground truth, ``realism=0``: the world's image is exactly the fitter's image model),
with small images and short schedules so the module stays fast on one thread. The detector
tests use dlib (offline).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import facelab.fit.photometric as photometric_mod
from facelab.errors import FitDiverged, InvalidInput, MultipleFacesFound, NoFaceFound
from facelab.fit import (
    FitConfig,
    FitResult,
    LandmarkFitConfig,
    Stage,
    crop_box,
    crop_image,
    crop_intrinsics,
    fit,
    fit_landmarks,
    fit_multi,
    fit_photometric,
    pos_pose,
)
from facelab.fit.api import package_result
from facelab.geometry.camera import intrinsics, project
from facelab.geometry.rotation import axis_angle_to_matrix
from facelab.metrics import aligned_vertex_error
from facelab.models import FaceParams, load
from facelab.world import WorldConfig, WorldDataset

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    return load("builtin")


def _world(model, size=128, yaw=(-15.0, 15.0), seed=3, views=1, **kw):
    cfg = WorldConfig(model="builtin", image_size=size, realism=0.0, yaw_range=yaw, **kw)
    return WorldDataset(cfg, length=4, seed=seed, views=views, model=model)


@pytest.fixture(scope="module")
def sample(model):
    return _world(model)[0]


def _gt_verts(model, s):
    return model.forward(s["identity"][None].to(model.dtype), s["expression"][None].to(model.dtype))


def _vertex_error(model, verts, s) -> float:
    """Mean per-vertex error in mm after a similarity alignment to the ground truth."""
    gt = _gt_verts(model, s)
    e = aligned_vertex_error(verts.reshape(1, -1, 3).double(), gt.double(), units_to_mm=10.0)
    return float(e["mean"][0])


def _rotation_error_deg(r1: torch.Tensor, r2: torch.Tensor) -> float:
    R = axis_angle_to_matrix(r1.double()) @ axis_angle_to_matrix(r2.double()).T
    c = ((torch.diagonal(R).sum() - 1) / 2).clamp(-1, 1)
    return math.degrees(float(torch.arccos(c)))


@pytest.fixture(scope="module")
def lm_fit(model, sample):
    return fit(
        sample["image"], model=model, landmarks=sample["landmarks2d"], photometric=False,
        progress=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def ph_fit(model, sample):
    return fit(
        sample["image"], model=model, landmarks=sample["landmarks2d"], fast=True, progress=False
    )


# ---------------------------------------------------------------------------------------------
# stage 1: landmarks


def test_pos_pose_is_exact_for_scaled_orthography():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(68, 3, generator=g, dtype=torch.float64)
    R = axis_angle_to_matrix(torch.tensor([0.2, -0.5, 0.1], dtype=torch.float64))
    s, b = 3.5, torch.tensor([100.0, 80.0], dtype=torch.float64)
    x = s * X @ R[:2].T + b
    s_hat, R_hat, b_hat = pos_pose(X, x)
    assert float(s_hat) == pytest.approx(s, rel=1e-9)
    torch.testing.assert_close(R_hat, R, atol=1e-9, rtol=0)
    torch.testing.assert_close(b_hat, b, atol=1e-7, rtol=0)
    assert float(torch.det(R_hat)) == pytest.approx(1.0, abs=1e-9)


def test_landmark_fit_is_exact_for_the_mean_face(model):
    s = _world(model, yaw=(-30.0, 30.0), truncation=0.0, expression_scale=0.0)[1]
    H, W = s["image"].shape[-2:]
    cfg = LandmarkFitConfig(focal=float(s["focal"]), contour=False)
    lf = fit_landmarks(model, s["landmarks2d"][None].to(model.dtype), (H, W), cfg)
    assert float(lf.rms_px[0]) < 0.05
    assert _rotation_error_deg(lf.params.rotation[0], s["rotation"]) < 0.2
    torch.testing.assert_close(lf.params.translation[0], s["translation"], atol=0.05, rtol=0)
    assert float(lf.params.identity.abs().max()) < 0.05


def test_landmark_fit_recovers_pose_and_shape_from_exact_landmarks(model, sample):
    H, W = sample["image"].shape[-2:]
    cfg = LandmarkFitConfig(focal=float(sample["focal"]), contour=False)
    lf = fit_landmarks(model, sample["landmarks2d"][None].to(model.dtype), (H, W), cfg)
    assert float(lf.rms_px[0]) < 0.5  # sub-pixel reprojection
    # 68 points leave a small shape/pose ambiguity: a few degrees, not more
    assert _rotation_error_deg(lf.params.rotation[0], sample["rotation"]) < 6.0
    t_err = float((lf.params.translation[0] - sample["translation"]).norm())
    assert t_err < 0.05 * float(sample["translation"].norm())
    verts = model.forward(lf.params.identity, lf.params.expression)
    gt = _gt_verts(model, sample)
    lm_ids = model.landmarks
    lm_fit = aligned_vertex_error(verts[:, lm_ids].double(), gt[:, lm_ids].double(), units_to_mm=10)
    lm_mean = aligned_vertex_error(
        model.mean[None, lm_ids].double(), gt[:, lm_ids].double(), units_to_mm=10
    )
    # the landmarks pin down the shape where they are, the prior fills in the rest
    # (depth along the viewing ray is not observed: 2.3 vs 4.4 mm at the time of writing)
    assert float(lm_fit["mean"][0]) < 0.6 * float(lm_mean["mean"][0])
    assert _vertex_error(model, verts, sample) < 0.9 * _vertex_error(model, model.mean, sample)


def test_landmark_fit_history_decreases_and_jaw_slides_with_yaw(model):
    ds = _world(model, yaw=(35.0, 45.0), seed=5)
    s = ds[0]
    H, W = s["image"].shape[-2:]
    lf = fit_landmarks(model, s["landmarks2d"][None].to(model.dtype), (H, W))
    assert lf.history[-1] <= lf.history[0] + 1e-6
    jaw = lf.landmark_vertices[0, :17]
    # a turned head: some jaw landmarks move off the frontal contour vertices
    assert bool((jaw != model.landmarks[:17]).any())
    assert bool((lf.landmark_vertices[0, 17:] == model.landmarks[17:]).all())


def test_shared_identity_landmark_fit(model):
    s = _world(model, yaw=(-40.0, 40.0), seed=2).multiview(0, 3)
    H, W = s["image"].shape[-2:]
    # the world's jaw landmarks are fixed vertices (no silhouette): no sliding contour here
    cfg = LandmarkFitConfig(focal=float(s["focal"][0]), contour=False)
    lf = fit_landmarks(model, s["landmarks2d"].to(model.dtype), (H, W), cfg, shared_identity=True)
    ident = lf.params.identity
    torch.testing.assert_close(ident, ident[:1].expand_as(ident))
    assert lf.params.rotation.shape == (3, 3)
    for k in range(3):
        assert _rotation_error_deg(lf.params.rotation[k], s["rotation"][k]) < 6.0


# ---------------------------------------------------------------------------------------------
# crops


def test_crop_intrinsics_and_crop_image_agree():
    H, W, size = 90, 120, 64
    img = torch.zeros(1, 3, H, W, dtype=torch.float64)
    u, v = 71, 40  # a bright 3x3 dot centred on pixel (u, v), i.e. at (u + 0.5, v + 0.5)
    img[:, :, v - 1 : v + 2, u - 1 : u + 2] = 1.0
    K = intrinsics(100.0, 100.0, W / 2, H / 2, batch=1).double()
    X = torch.tensor([[[(u + 0.5 - W / 2) / 100 * 5, (v + 0.5 - H / 2) / 100 * 5, 5.0]]]).double()
    assert torch.allclose(project(X, K)[0, 0], torch.tensor([u + 0.5, v + 0.5]).double())
    lm = torch.tensor([[50.0, 20.0], [95.0, 70.0]])
    box = crop_box(lm, 1.3)
    crop, valid = crop_image(img, box, size)
    Kc = crop_intrinsics(K[0], box, size)
    uc = project(X, Kc[None])[0, 0]
    a = size / box[2]
    torch.testing.assert_close(
        uc, (torch.tensor([u + 0.5, v + 0.5]).double() - torch.tensor(box[:2]).double()) * a
    )  # noqa: E501
    # the crop's brightest pixel is where the crop camera projects the point
    g = crop[0, 0]
    iy, ix = divmod(int(g.argmax()), size)
    assert abs(ix + 0.5 - float(uc[0])) <= 1.0 and abs(iy + 0.5 - float(uc[1])) <= 1.0
    assert valid.shape == (1, size, size) and bool(valid.all())
    # a box beyond the photo: invalid pixels are flagged
    _, valid2 = crop_image(img, (-30.0, -30.0, 60.0), 32)
    assert not bool(valid2[0, 0, 0]) and bool(valid2[0, -1, -1])


# ---------------------------------------------------------------------------------------------
# stage 2: photometric


def _photo_error(res: FitResult, s) -> float:
    """Mean absolute colour error between the fit's render and the photo on the face pixels."""
    m = res.mask & s["mask_skin"]
    d = (res.render - s["image"].to(res.render.dtype)).abs().sum(0)
    return float(d[m].mean())


def test_photometric_fit_improves_on_the_landmark_fit(model, sample, lm_fit, ph_fit):
    assert _photo_error(ph_fit, sample) < 0.7 * _photo_error(lm_fit, sample)
    e_lm = _vertex_error(model, lm_fit.vertices, sample)
    e_ph = _vertex_error(model, ph_fit.vertices, sample)
    assert e_ph < e_lm
    assert ph_fit.landmark_nme < 0.02
    losses = ph_fit.history["shape"]
    assert losses[-1] < losses[0]
    assert {"landmarks", "photometric", "total"} <= set(ph_fit.timings)


def test_lbfgs_option_and_custom_stages_reduce_the_loss(model, sample, lm_fit):
    crop, Kc, lm_c, lf = _crop_inputs(model, sample, 64)
    cfg = FitConfig(
        resolution=64, optimizer="lbfgs", progress=False,
        stages=[Stage("pose_light", 3, 1.0, ("rotation", "translation", "light", "albedo"))],
    )  # fmt: skip
    ph = fit_photometric(model, crop, lm_c, lf.params, Kc, lf.landmark_vertices, cfg)
    assert [r["stage"] for r in ph.history] == ["pose_light"] * 3
    assert ph.history[-1]["loss"] < ph.history[0]["loss"]
    assert all(bool(torch.isfinite(t).all()) for _, t in ph.params.items())


def test_fit_config_validation():
    with pytest.raises(InvalidInput, match="optimizer"):
        FitConfig(optimizer="sgd")
    with pytest.raises(InvalidInput, match="unknown loss weights"):
        FitConfig(weights={"nope": 1.0})
    with pytest.raises(InvalidInput, match="unknown parameter groups"):
        FitConfig(stages=[Stage("x", 1, 0.1, ("pose",))]).schedule()


def _crop_inputs(model, s, R):
    H, W = s["image"].shape[-2:]
    lm = s["landmarks2d"].to(model.dtype)
    lf = fit_landmarks(model, lm[None], (H, W))
    box = crop_box(lm, 1.6)
    crop, _ = crop_image(s["image"][None].to(model.dtype), box, R)
    f = float(lf.params.focal[0])
    Kc = crop_intrinsics(intrinsics(f, f, W / 2, H / 2)[0].to(model.dtype), box, R)[None]
    lm_c = ((lm - torch.tensor(box[:2], dtype=model.dtype)) * (R / box[2]))[None]
    return crop, Kc, lm_c, lf


# ---------------------------------------------------------------------------------------------
# several photos, one identity


def test_fit_multi_shares_the_identity(model):
    s = _world(model, yaw=(-35.0, 35.0), seed=2).multiview(0, 2)
    res = fit_multi(
        [s["image"][k] for k in range(2)], model=model,
        landmarks=[s["landmarks2d"][k] for k in range(2)], fast=True, progress=False,
        config=FitConfig(resolution=64),
    )  # fmt: skip
    assert len(res) == 2
    torch.testing.assert_close(res[0].params.identity, res[1].params.identity)
    torch.testing.assert_close(res[0].vertices.shape, res[1].vertices.shape)
    for k, r in enumerate(res):
        assert bool(torch.isfinite(r.posed_vertices).all())
        assert abs(r.ypr[0] - float(s["ypr"][k, 0])) < 8.0
    # one person seen twice is reconstructed at least as well as the mean face
    gt = {"identity": s["identity"][0], "expression": s["expression"][0]}
    assert _vertex_error(model, res[0].vertices, gt) < _vertex_error(model, model.mean, gt)


# ---------------------------------------------------------------------------------------------
# clear failures


def test_no_face_found_on_a_blank_photo(model):
    blank = torch.full((1, 3, 160, 160), 0.5)
    with pytest.raises(NoFaceFound, match="blank.png"):
        fit(blank, model=model, source="blank.png", progress=False)


def test_several_faces_policy(model):
    from facelab.vision import samples

    img = samples.astronaut().image.tensor[..., 60:200, 150:300]
    two = torch.cat([img, img], -1)  # the same face twice, side by side
    with pytest.raises(MultipleFacesFound):
        fit(two, model=model, face="single", photometric=False, progress=False)
    r = fit(two, model=model, face=1, photometric=False, progress=False)
    assert float(r.landmarks[:, 0].min()) > img.shape[-1]  # the right-hand face


@pytest.mark.parametrize(
    "landmarks, match",
    [
        (torch.zeros(5, 2), r"\(68, 2\)"),
        (torch.zeros(68, 3), r"\(68, 2\)"),
        (torch.full((68, 2), float("nan")), "NaN"),
    ],
)
def test_bad_landmarks_are_invalid_input(model, sample, landmarks, match):
    with pytest.raises(InvalidInput, match=match):
        fit(sample["image"], model=model, landmarks=landmarks, progress=False)
    from facelab.fit import fit_multi  # the same check for several photos (it had none)

    good = sample["landmarks2d"]
    with pytest.raises(InvalidInput, match=match):
        fit_multi([sample["image"]] * 2, model=model, landmarks=[good, landmarks], progress=False)


def test_tiny_face_is_invalid_input(model, sample):
    lm = sample["landmarks2d"]
    tiny = (lm - lm.mean(0)) * 0.3 + lm.mean(0)
    with pytest.raises(InvalidInput, match="px wide"):
        fit(sample["image"], model=model, landmarks=tiny, progress=False)


def test_extreme_pose_is_reported(model):
    s = _world(model, yaw=(66.0, 70.0), seed=1)[0]
    r = fit(s["image"], model=model, landmarks=s["landmarks2d"], photometric=False, progress=False)
    assert any("extreme pose" in w for w in r.warnings)


def _nan_after(monkeypatch, n: int):
    calls = {"n": 0}
    real = photometric_mod.photometric_loss

    def bad(*a, **k):
        calls["n"] += 1
        out = real(*a, **k)
        return out * float("nan") if calls["n"] > n else out

    monkeypatch.setattr(photometric_mod, "photometric_loss", bad)


def test_nan_during_the_fit_raises_fit_diverged(model, sample, monkeypatch):
    _nan_after(monkeypatch, 3)
    with pytest.raises(FitDiverged) as ei:
        fit(
            sample["image"], model=model, landmarks=sample["landmarks2d"], fast=True,
            progress=False, config=FitConfig(resolution=48),
        )  # fmt: skip
    last = ei.value.last_good
    assert isinstance(last, FaceParams)
    assert all(bool(torch.isfinite(t).all()) for _, t in last.items())


def test_nan_with_on_nan_stop_returns_the_last_finite_fit(model, sample, monkeypatch):
    _nan_after(monkeypatch, 3)
    with pytest.warns(RuntimeWarning, match="diverged"):
        r = fit(
            sample["image"], model=model, landmarks=sample["landmarks2d"], fast=True,
            progress=False, config=FitConfig(resolution=48, on_nan="stop"),
        )  # fmt: skip
    assert any("diverged" in w for w in r.warnings)
    assert bool(torch.isfinite(r.vertices).all()) and bool(torch.isfinite(r.posed_vertices).all())


def test_package_result_never_returns_a_nan_mesh(model, sample, lm_fit):
    p = lm_fit.params.clone()
    p.identity[0, 0] = float("nan")
    with pytest.raises(FitDiverged, match="NaN"):
        package_result(
            model, sample["image"][None], lm_fit.landmarks, p, lm_fit.K, lm_fit.landmark_vertices,
            lm_fit.vertex_albedo, {}, {}, [], "x",
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# output


def test_overlay_blends_the_face_region_only(model, ph_fit):
    """The overlay keeps the photo wherever the render shows neck / scalp, not the face region."""
    from facelab.fit.result import face_region

    region = face_region(model)
    assert region is not None and ph_fit.face_vertices is not None
    assert torch.equal(ph_fit.face_vertices.cpu(), region.cpu())
    changed = (ph_fit.overlay - ph_fit.image).abs().amax(0) > 1e-6
    assert bool(changed.any())  # the face is blended
    assert bool((changed & ~ph_fit.mask).sum() < 0.01 * changed.sum())  # (landmark dots only)
    # rendered, but off the face region: the photo itself (up to the landmark dots drawn on top)
    assert float((changed & ph_fit.mask).sum()) < 0.999 * float(ph_fit.mask.sum())


def test_save_writes_mesh_texture_params_overlay_report(tmp_path, model, ph_fit):
    from facelab.geometry.io import load_obj
    from facelab.vision import load_image

    paths = ph_fit.save(tmp_path / "out")
    out = tmp_path / "out"
    for name in ("mesh.obj", "mesh.mtl", "mesh.png", "params.json", "overlay.png", "report.html"):
        assert (out / name).is_file(), name
    assert set(paths) >= {"mesh", "texture", "params", "overlay", "report"}
    mesh = load_obj(out / "mesh.obj")
    assert mesh.verts.shape == ph_fit.vertices.shape and mesh.uvs is not None
    torch.testing.assert_close(mesh.verts, ph_fit.vertices.float(), atol=1e-5, rtol=0)
    assert "map_Kd mesh.png" in (out / "mesh.mtl").read_text()
    tex = load_image(out / "mesh.png").tensor
    assert tex.shape[-2:] == ph_fit.texture.shape[-2:] and float(tex.std()) > 0.01
    ov = load_image(out / "overlay.png").tensor
    assert ov.shape[-2:] == ph_fit.image.shape[-2:]
    report = (out / "report.html").read_text()
    assert "<svg" in report and "overlay.png" in report and "landmark_nme" in report
    # params.json round trip
    d = json.loads((out / "params.json").read_text())
    assert {"params", "K", "focal", "ypr_degrees", "landmark_nme", "timings", "warnings"} <= set(d)
    p = FaceParams.from_dict(d["params"])
    for name, t in ph_fit.params.items():
        torch.testing.assert_close(getattr(p, name), t.float(), atol=1e-6, rtol=1e-6)
    verts = model.forward(p.identity, p.expression)[0]
    torch.testing.assert_close(verts, ph_fit.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(d["K"]), ph_fit.K.float())


@pytest.mark.parametrize("side", [80.0, 120.0])  # shrink 2.5x (k = 2) and 3.75x (k = 3)
def test_crop_image_prefilter_does_not_shift(side):
    # a horizontal ramp, value u / W at pixel centre u: box filters and bilinear keep it, so
    # every crop pixel must read the ramp at its own centre (an even avg_pool kernel with
    # padding k // 2 shifted it by half a photo pixel)
    H = W = 160
    x = torch.arange(W, dtype=torch.float64) + 0.5
    img = (x / W).expand(1, 3, H, W).clone()
    box, size = (20.0, 20.0, side), 32
    crop, _ = crop_image(img, box, size)
    j = torch.arange(size, dtype=torch.float64) + 0.5
    u = box[0] + j * box[2] / size
    torch.testing.assert_close(crop[0, 0, size // 2] * W, u, atol=1e-9, rtol=0)


def test_fitted_focal_keeps_the_pixel_aspect(model, sample):
    # non-square pixels (fy = 1.1 fx): fitting the focal scales both, it must not set fy = fx
    crop, Kc, lm_c, lf = _crop_inputs(model, sample, 48)
    Kc = Kc.clone()
    Kc[:, 1, 1] = 1.1 * Kc[:, 0, 0]
    cfg = FitConfig(
        resolution=48, progress=False, albedo="constant",
        stages=[Stage("focal", 2, 0.05, ("focal", "rotation", "translation"))],
    )  # fmt: skip
    ph = fit_photometric(model, crop, lm_c, lf.params, Kc, lf.landmark_vertices, cfg)
    ratio = ph.K[:, 1, 1] / ph.K[:, 0, 0]
    torch.testing.assert_close(ratio, torch.full_like(ratio, 1.1))
