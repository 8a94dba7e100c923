"""The landmark refiner (:mod:`facelab.vision.refine`).

Known answers: the lattice features of a ramp image (constant differences along the ramp,
none across it, and the roles swap when the frame turns by 90 degrees); a cascade trained on
synthetic faces whose "detector" carries a fixed bias plus noise removes most of the error
on held-out faces; the save/load round trip reproduces the outputs; float64 follows the
images; bad input and bad files are refused."""

from __future__ import annotations

import math

import pytest
import torch

from facelab.errors import AssetMissing, InvalidInput, ModelFormatError
from facelab.vision.refine import (
    LandmarkRefiner,
    RefinerConfig,
    evaluate_refiner,
    patch_features,
    train_refiner,
)

P = 68


def _ramp(h: int = 64, w: int = 64, dtype=torch.float64) -> torch.Tensor:
    x = (torch.arange(w, dtype=dtype) + 0.5) / w
    return x[None, None, None, :].expand(1, 1, h, w).clone()


def _frame(angle: float, scale: float, dtype=torch.float64) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[[scale * c, -scale * s, 0.0], [scale * s, scale * c, 0.0]]], dtype=dtype)


def test_ramp_features_known_answer():
    img = _ramp()
    pts = torch.tensor([[[32.0, 32.0], [20.0, 40.0]]], dtype=torch.float64)
    g = 4
    m = g * (g - 1)  # differences per direction per point
    f = patch_features(img, pts, _frame(0.0, 0.1), radius=0.5, grid=g)
    assert f.shape == (1, 2 * 2 * m) and f.dtype == torch.float64
    dxs, dys = f[0, : 2 * m], f[0, 2 * m :]  # all points' x differences, then their y
    # the ramp's differences along x are all equal, none along y; contrast-normalised to
    # RMS 1 over the face: sqrt(2) (half of the features are zero)
    torch.testing.assert_close(dxs, torch.full_like(dxs, math.sqrt(2.0)), atol=1e-9, rtol=0)
    torch.testing.assert_close(dys, torch.zeros_like(dys), atol=1e-9, rtol=0)
    # the frame turned by 90 degrees: the lattice's y axis runs along the image's x
    rot = patch_features(img, pts, _frame(math.pi / 2, 0.1), 0.5, g)[0]
    assert rot[: 2 * m].abs().max() < 1e-9
    torch.testing.assert_close(rot[2 * m :].abs(), torch.full_like(dys, math.sqrt(2.0)))


def _synthetic(n: int, seed: int, bias: torch.Tensor, noise: float, dtype=torch.float32):
    """Faces: 68 Gaussian dots (varied brightness) at a random similarity of a base shape;
    the 'detector' sees them shifted by ``bias`` (in the face's frame) plus noise."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(P, 2, generator=torch.Generator().manual_seed(99)) * 0.35
    amp = 0.3 + 0.7 * torch.rand(P, generator=torch.Generator().manual_seed(98))
    size = 96
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    imgs, det, tgt = [], [], []
    for _ in range(n):
        a = 0.3 * torch.randn((), generator=g)
        s = 28 * (1 + 0.1 * torch.randn((), generator=g))
        t = size / 2 + 4 * torch.randn(2, generator=g)
        rot = torch.stack([torch.cos(a), -torch.sin(a), torch.sin(a), torch.cos(a)]).reshape(2, 2)
        pts = s * base @ rot.T + t
        img = torch.zeros(size, size)
        for p, am in zip(pts, amp):
            img += am * torch.exp(-((xx - p[0]) ** 2 + (yy - p[1]) ** 2) / (2 * 1.5**2))
        imgs.append(img.clamp(0, 1)[None].expand(3, -1, -1))
        d = pts + s * bias @ rot.T + noise * s * torch.randn(P, 2, generator=g)
        det.append(d)
        tgt.append(pts)
    return torch.stack(imgs).to(dtype), torch.stack(det).to(dtype), torch.stack(tgt).to(dtype)


@pytest.fixture(scope="module")
def trained():
    bias = 0.04 * torch.randn(P, 2, generator=torch.Generator().manual_seed(5))
    tr = _synthetic(240, 0, bias, 0.01)
    te = _synthetic(40, 1, bias, 0.01)
    cfg = RefinerConfig(radii=(0.25, 0.15), grid=4, ridge=0.05, jitter=1, jitter_scale=0.02)
    ref, log = train_refiner(*tr, cfg)
    return ref, log, te


def test_cascade_removes_a_detector_bias_on_held_out_faces(trained):
    ref, log, (imgs, det, tgt) = trained
    rows = evaluate_refiner(ref, imgs, det, tgt)
    assert rows[0]["detected"] == 40
    before, after = rows[0]["detector_inner"], rows[0]["refined_inner"]
    assert after < 0.5 * before, (before, after)
    assert log["stages"][-1]["train_after_inner"] < log["stages"][0]["train_before_inner"]
    # a missed face is counted, not refined
    det2 = det.clone()
    det2[0] = torch.nan
    assert evaluate_refiner(ref, imgs, det2, tgt)[0]["detected"] == 39


def test_round_trip_and_float64(trained, tmp_path):
    ref, _, (imgs, det, _) = trained
    out = ref.refine(imgs[:3], det[:3])
    ref.save(tmp_path / "r", {"note": "test"})
    back = LandmarkRefiner.load(tmp_path / "r.json")
    torch.testing.assert_close(back.refine(imgs[:3], det[:3]), out)
    assert back.meta["note"] == "test" and back.config == ref.config
    out64 = ref.refine(imgs[:3].double(), det[:3].double())
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), out, atol=1e-3, rtol=0)
    single = ref.refine(imgs[0], det[0])
    torch.testing.assert_close(single, out[0])
    torch.testing.assert_close(ref.refine(imgs[:1], det[0]), out[0])  # a (1, 3, H, W) photo
    u8 = (imgs[:3] * 255).round().to(torch.uint8)
    assert ref.refine(u8, det[:3]).shape == (3, P, 2)


def test_bad_input_and_files(trained, tmp_path):
    ref, _, (imgs, det, tgt) = trained
    with pytest.raises(InvalidInput, match="NaN"):
        ref.refine(imgs[:1], torch.full((1, P, 2), torch.nan))
    with pytest.raises(InvalidInput, match="points must be"):
        ref.refine(imgs[:1], det[:1, :10])
    with pytest.raises(InvalidInput, match="images must be"):
        ref.refine(imgs[:1, 0], det[:1])
    with pytest.raises(InvalidInput, match="at least 10"):
        train_refiner(imgs[:5], det[:5], tgt[:5])
    with pytest.raises(InvalidInput, match="radii"):
        RefinerConfig(radii=())
    with pytest.raises(AssetMissing):
        LandmarkRefiner.load(tmp_path / "nothing")
    ref.save(tmp_path / "r")
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    (tmp_path / "bad.safetensors").write_bytes((tmp_path / "r.safetensors").read_bytes())
    with pytest.raises(ModelFormatError, match="not a facelab landmark refiner"):
        LandmarkRefiner.load(tmp_path / "bad")
    (tmp_path / "r.safetensors").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelFormatError, match="not a safetensors file"):
        LandmarkRefiner.load(tmp_path / "r")
