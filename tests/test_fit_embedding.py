"""A detector's landmarks as 3D points on the mesh (facelab.fit.calibration.LandmarkEmbedding)."""

from __future__ import annotations

import json

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.fit import fit_landmarks
from facelab.fit.calibration import (
    LandmarkCalibration,
    LandmarkEmbedding,
    barycentric_grid,
    embedding_residuals,
    fit_embedding,
    load_calibration,
    measure_embedding_spread,
)
from facelab.fit.photometric import FitConfig, Stage, fit_photometric
from facelab.geometry.camera import intrinsics, project
from facelab.geometry.rotation import axis_angle_to_matrix
from facelab.models import FaceParams, load
from facelab.models.morphable import pose_points

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    return load("builtin")


def _poses(n: int, g: torch.Generator, max_yaw: float = 0.7):
    """``n`` head poses: yaw in ``[-max_yaw, max_yaw]`` rad, small pitch/roll, 30 units away."""
    rot = torch.stack(
        [
            0.15 * (torch.rand(n, generator=g) - 0.5),
            max_yaw * (2 * torch.rand(n, generator=g) - 1),
            0.1 * (torch.rand(n, generator=g) - 0.5),
        ],
        1,
    ).double()
    t = torch.zeros(n, 3, dtype=torch.float64)
    t[:, 2] = 30.0
    return rot, t


def _camera_vertices(verts: torch.Tensor, rot: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``(V, 3)`` model-space vertices posed by each ``(rot, t)`` -> ``(N, V, 3)`` camera."""
    return pose_points(verts.double()[None].expand(rot.shape[0], -1, -1), rot, t)


def _a_shifted_embedding(model) -> LandmarkEmbedding:
    """The model's landmarks moved off their vertices: landmark ``j`` at ``bary_j`` of a
    triangle next to its vertex (not on the vertex itself)."""
    emb = LandmarkEmbedding.from_vertices(model.landmarks.cpu())
    F = model.faces.cpu()
    g = torch.Generator().manual_seed(3)
    for j in range(17, 68):
        tris = torch.nonzero((F == int(model.landmarks[j])).any(-1)).squeeze(1)
        tri = F[tris[int(torch.randint(len(tris), (1,), generator=g))]]
        emb.vertices[j] = tri
        emb.bary[j] = torch.tensor([1 / 6, 2 / 3, 1 / 6], dtype=torch.float64)  # on the grid
    return emb


# --- the embedding itself --------------------------------------------------------------------
def test_points_are_the_barycentric_combination_and_differentiable():
    verts = torch.randn(2, 10, 3, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, 10, (68, 3))
    bary = torch.rand(68, 3, dtype=torch.float64)
    bary = bary / bary.sum(-1, keepdim=True)
    emb = LandmarkEmbedding(ids, bary)
    p = emb.points(verts)
    ref = (verts[:, ids] * bary[None, ..., None]).sum(-2)
    torch.testing.assert_close(p, ref)
    # d p_j / d v = the barycentric weights of its corners
    p[1, 5, 0].backward()
    expect = torch.zeros(10, dtype=torch.float64)
    expect.index_add_(0, ids[5], bary[5])
    torch.testing.assert_close(verts.grad[1, :, 0], expect)
    assert float(verts.grad[0].abs().sum()) == 0.0
    v = LandmarkEmbedding.from_vertices(torch.arange(68))
    assert torch.equal(v.nearest_vertices(), torch.arange(68))
    with pytest.raises(InvalidInput, match="sum to 1"):
        LandmarkEmbedding(ids, torch.ones(68, 3))
    with pytest.raises(InvalidInput, match="68, 3"):
        LandmarkEmbedding(ids[:5], bary[:5])


def test_barycentric_grid():
    g = barycentric_grid(4)
    assert g.shape == (15, 3)
    torch.testing.assert_close(g.sum(-1), torch.ones(15, dtype=torch.float64))
    assert bool((g >= 0).all())


def test_fit_embedding_recovers_a_known_shifted_surface_point(model):
    """A detector simulated as the exact projection of known off-vertex surface points (+ a
    little noise and a few gross failures) over many poses: the search finds those points."""
    truth = _a_shifted_embedding(model)
    g = torch.Generator().manual_seed(0)
    N = 40
    rot, t = _poses(N, g)
    V = _camera_vertices(model.mean, rot, t)
    K = intrinsics(800.0, 800.0, 128.0, 128.0, batch=N).double()
    det = project(truth.points(V), K)
    det = det + 0.3 * torch.randn(det.shape, generator=g, dtype=torch.float64)
    det[:4, 30] += 40.0  # the detector fails on a few faces: the Huber loss must not care
    det[5] = torch.nan  # a missed face
    yaw = torch.rad2deg(rot[:, 1])
    rows = (19, 30, 36, 45, 48, 57)
    emb = fit_embedding(
        det, V, K, yaw, model.faces, model.mean, model.landmarks, radius=1.5, rows=rows
    )
    P, Q = emb.points(model.mean.double()[None])[0], truth.points(model.mean.double()[None])[0]
    for j in rows:
        moved = float((Q[j] - model.mean.double()[model.landmarks[j]]).norm())
        assert moved > 0.05  # the answer is not the landmark vertex ...
        assert float((P[j] - Q[j]).norm()) < 0.1 * moved  # ... and it is found
    # rows not searched keep the landmark vertices; the residual after the embedding is tiny
    assert torch.equal(emb.nearest_vertices()[:17], model.landmarks.cpu()[:17])
    r = embedding_residuals(det, V, K, emb)[:, list(rows)]
    r0 = embedding_residuals(det, V, K, LandmarkEmbedding.from_vertices(model.landmarks))
    assert float(r[6:].median()) < 0.25 * float(r0[6:, list(rows)].median())
    spread = measure_embedding_spread(det, V, K, yaw, emb)
    assert spread.shape == (68,) and bool((spread > 0).all())


def test_fit_embedding_refuses_too_few_faces(model):
    V = model.mean.double()[None].expand(2, -1, -1) + torch.tensor([0.0, 0.0, 30.0]).double()
    K = intrinsics(800.0, 800.0, 128.0, 128.0, batch=2).double()
    det = torch.zeros(2, 68, 2, dtype=torch.float64)
    with pytest.raises(InvalidInput, match="at least 3"):
        fit_embedding(det, V, K, torch.zeros(2), model.faces, model.mean, model.landmarks, 1.5)


# --- the calibration file -------------------------------------------------------------------
def test_calibration_with_embedding_json_round_trip(tmp_path, model):
    emb = _a_shifted_embedding(model)
    cal = LandmarkCalibration(
        "d", "m", torch.full((68, 2), 0.01), torch.linspace(0.01, 0.1, 68),
        embedding=emb, embedding_spread=torch.linspace(0.02, 0.05, 68),
    )  # fmt: skip
    cal.save(tmp_path / "c.json")
    back = LandmarkCalibration.from_json(json.loads((tmp_path / "c.json").read_text()))
    assert torch.equal(back.embedding.vertices, emb.vertices)
    torch.testing.assert_close(back.embedding.bary, emb.bary, atol=1e-6, rtol=0)
    torch.testing.assert_close(back.embedding_spread, cal.embedding_spread, atol=1e-5, rtol=0)
    # a fit with the embedding weighs by the spread after it; without, by the old spread
    torch.testing.assert_close(back.fit_weights(), back.fit_weights(True))
    assert not torch.allclose(back.fit_weights(), back.weights())
    torch.testing.assert_close(back.fit_weights(use_embedding=False), back.weights())
    with pytest.raises(InvalidInput, match="embedding_spread"):
        LandmarkCalibration("d", "m", torch.zeros(68, 2), torch.ones(68), embedding=emb)


def test_old_format_calibration_still_loads(tmp_path):
    old = {"detector": "auto", "model": "ict-face", "n_faces": 3, "note": "old",
           "offset": [[0.01, -0.02]] * 68, "spread": [0.03] * 68}  # fmt: skip
    cal = LandmarkCalibration.from_json(old)
    assert cal.embedding is None and cal.embedding_spread is None
    torch.testing.assert_close(cal.fit_weights(), cal.weights())
    assert "embedding" not in cal.to_json()
    shipped = load_calibration("auto", "ict-face")
    assert shipped is not None and shipped.offset.shape == (68, 2)


# --- the fitter uses the embedded points ------------------------------------------------------
def test_landmark_fit_with_an_embedding_fits_its_points(model):
    """Landmarks generated from an embedding's points: the fit with that embedding explains
    them exactly (mean shape, known pose), the fit on the landmark vertices does not."""
    emb = _a_shifted_embedding(model)
    rot = torch.tensor([[0.05, 0.4, 0.02]], dtype=torch.float64)
    t = torch.tensor([[0.3, -0.2, 30.0]], dtype=torch.float64)
    Vc = _camera_vertices(model.mean, rot, t)
    H = W = 256
    f = 800.0
    K = intrinsics(f, f, W / 2, H / 2, batch=1).double()
    lm2 = project(emb.points(Vc), K).to(model.dtype)
    from facelab.fit import LandmarkFitConfig

    cfg = LandmarkFitConfig(focal=f, fit_identity=False, fit_expression=False, contour=False)
    with_emb = fit_landmarks(model, lm2, (H, W), cfg, embedding=emb)
    without = fit_landmarks(model, lm2, (H, W), cfg)
    assert float(with_emb.rms_px[0]) < 0.01
    assert float(without.rms_px[0]) > 20 * float(with_emb.rms_px[0])
    # the points it reports are the embedding's (jaw: the landmark vertices, contour off)
    pts = with_emb.landmark_points
    assert pts.vertices.shape == (1, 68, 3)
    assert torch.equal(pts.vertices[0, 17:].cpu(), emb.vertices[17:])
    torch.testing.assert_close(with_emb.projected.double(), lm2.double(), atol=0.02, rtol=0)  # noqa: E501
    assert torch.equal(with_emb.landmark_vertices[0, 17:].cpu(), emb.nearest_vertices()[17:])
    torch.testing.assert_close(
        axis_angle_to_matrix(with_emb.params.rotation[0].double()),
        axis_angle_to_matrix(rot[0]),
        atol=1e-3,
        rtol=0,
    )
    with pytest.raises(InvalidInput, match="one \\(68, 3\\)"):
        fit_landmarks(model, lm2, (H, W), cfg, embedding=with_emb.landmark_points)


def test_photometric_landmark_term_uses_the_embedded_points(model):
    """At the true pose the photometric stage's landmark term is ~0 with the embedding's
    points and large with the landmark vertices."""
    emb = _a_shifted_embedding(model)
    dt = model.dtype
    params = FaceParams(
        identity=torch.zeros(1, model.n_identity, dtype=dt),
        expression=torch.zeros(1, model.n_expression, dtype=dt),
        rotation=torch.tensor([[0.05, 0.3, 0.0]], dtype=dt),
        translation=torch.tensor([[0.0, 0.0, 30.0]], dtype=dt),
        focal=torch.tensor([300.0], dtype=dt),
    )
    K = intrinsics(300.0, 300.0, 32.0, 32.0, batch=1).to(dt)
    verts = model.forward(params.identity, params.expression)
    lm2 = project(emb.points(pose_points(verts, params.rotation, params.translation)), K)
    img = torch.full((1, 3, 64, 64), 0.5, dtype=dt)
    cfg = FitConfig(
        resolution=64, progress=False,
        stages=[Stage("lm", 1, 1e-6, ("translation",), weights={"photo": 0.0})],
    )  # fmt: skip
    ph = fit_photometric(model, img, lm2, params, K, config=cfg, landmark_points=emb)
    ph0 = fit_photometric(model, img, lm2, params, K, config=cfg)
    assert ph.history[0]["landmark"] < 1e-6
    assert ph0.history[0]["landmark"] > 1e3 * max(ph.history[0]["landmark"], 1e-9)
    # a (B, 68, 3) embedding (stage 1's landmark_points) gives the same term
    batched = LandmarkEmbedding(emb.vertices[None], emb.bary[None])
    ph1 = fit_photometric(model, img, lm2, params, K, config=cfg, landmark_points=batched)
    assert abs(ph1.history[0]["landmark"] - ph.history[0]["landmark"]) < 1e-6


def _calibration_with(emb: LandmarkEmbedding) -> LandmarkCalibration:
    off = torch.zeros(68, 2)
    off[:, 1] = 0.05
    return LandmarkCalibration(
        "d", "builtin", off, torch.full((68,), 0.03),
        embedding=emb, embedding_spread=torch.linspace(0.02, 0.05, 68),
    )  # fmt: skip


def test_prepare_photo_gives_the_embedding_only_to_callers_that_use_it(model):
    from facelab.fit.api import prepare_photo

    cal = _calibration_with(_a_shifted_embedding(model))
    img = torch.full((1, 3, 128, 128), 0.5)
    lm = 30 + 60 * torch.rand(68, 2, generator=torch.Generator().manual_seed(0))
    p = prepare_photo(img, model, lm, calibration=cal, use_embedding=True)
    assert p.embedding is cal.embedding
    assert torch.equal(p.target, p.landmarks)  # no 2D offset on top of the 3D points
    torch.testing.assert_close(p.weights, cal.fit_weights().to(p.weights.dtype))
    old = prepare_photo(img, model, lm, calibration=cal)  # a caller without the embedding
    assert old.embedding is None and not torch.equal(old.target, old.landmarks)
    torch.testing.assert_close(old.weights, cal.weights().to(old.weights.dtype))
    off = prepare_photo(img, model, lm, calibration=cal, use_embedding=True,
                        calibration_offsets=False)  # fmt: skip
    assert off.embedding is None and torch.equal(off.target, off.landmarks)


def test_fit_with_an_embedding_calibration_projects_its_points(model):
    """``facelab.fit.fit`` with a calibration that has an embedding fits landmarks made from
    the embedding's points and reports their projections as ``projected_landmarks``."""
    from facelab.fit import LandmarkFitConfig, fit

    emb = _a_shifted_embedding(model)
    cal = _calibration_with(emb)
    H = W = 128
    f = 400.0
    rot = torch.tensor([[0.05, 0.35, 0.0]], dtype=torch.float64)
    t = torch.tensor([[0.0, 0.0, 30.0]], dtype=torch.float64)
    K = intrinsics(f, f, W / 2, H / 2, batch=1).double()
    lm2 = project(emb.points(_camera_vertices(model.mean, rot, t)), K)[0].float()
    cfg = LandmarkFitConfig(focal=f, fit_identity=False, fit_expression=False, contour=False)
    img = torch.full((1, 3, H, W), 0.5)
    r = fit(img, model=model, landmarks=lm2, landmark_config=cfg, calibration=cal,
            photometric=False, progress=False)  # fmt: skip
    r0 = fit(img, model=model, landmarks=lm2, landmark_config=cfg, calibration=None,
             photometric=False, progress=False)  # fmt: skip
    err = (r.projected_landmarks.double() - lm2.double()).norm(dim=-1)
    err0 = (r0.projected_landmarks.double() - lm2.double()).norm(dim=-1)
    assert float(err.max()) < 0.05
    assert float(err0.mean()) > 20 * float(err.mean())
