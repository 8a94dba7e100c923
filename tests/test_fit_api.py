"""facelab.fit.api: the photo preparation and the face crop every fitter (Part I, GANFit, GAR) shares."""

from __future__ import annotations

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.fit.api import crop_box, crop_face, crop_image, prepare_photo
from facelab.fit.calibration import LandmarkCalibration
from facelab.geometry.camera import intrinsics, project
from facelab.models import load

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    return load("builtin")


def _landmarks(x0=40.0, y0=30.0, side=60.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    lm = torch.rand(68, 2, generator=g) * side + torch.tensor([x0, y0])
    lm[0], lm[1] = torch.tensor([x0, y0]), torch.tensor([x0 + side, y0 + side])
    return lm


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_crop_face_camera_and_points_agree_in_the_images_dtype(dtype):
    H, W, size = 100, 140, 48
    img = torch.rand(1, 3, H, W, dtype=dtype)
    K = intrinsics(120.0, 120.0, W / 2, H / 2, batch=1)[0].float()  # float32 K: follows image
    lm = _landmarks().to(dtype)
    c = crop_face(img, lm, K, size, 1.25)
    assert c.image.shape == (1, 3, size, size) and c.image.dtype == dtype
    assert c.K.shape == (1, 3, 3) and c.K.dtype == dtype
    assert c.valid.shape == (1, size, size) and c.valid.dtype == torch.bool
    assert c.box == crop_box(lm, 1.25) and c.scale == pytest.approx(size / (60.0 * 1.25))
    torch.testing.assert_close(c.image, crop_image(img, c.box, size)[0])
    # a 3D point seen by the photo camera at p is seen by the crop camera at to_crop(p)
    X = torch.tensor([[[0.3, -0.2, 4.0], [-0.5, 0.4, 6.0]]], dtype=dtype)
    p = project(X, K.to(dtype)[None])[0]
    torch.testing.assert_close(project(X, c.K)[0], c.to_crop(p))
    assert c.to_crop(p).dtype == dtype
    # the landmark box's corner maps to the crop's border margin: (scale - 1) / 2 of the side
    q = c.to_crop(lm[:1])[0]
    m = size * (1 - 1 / 1.25) / 2
    torch.testing.assert_close(q, torch.tensor([m, m], dtype=dtype))


def test_prepare_photo_applies_a_given_calibration(model):
    img = torch.rand(1, 3, 120, 160)
    lm = _landmarks()
    g = torch.Generator().manual_seed(1)
    cal = LandmarkCalibration(
        "dlib", "builtin", torch.randn(68, 2, generator=g) * 0.01,
        torch.rand(68, generator=g) + 0.5,
    )  # fmt: skip
    p = prepare_photo(img, model, lm, calibration=cal, source="mine")
    assert not p.detected and p.source == "mine"
    assert p.landmarks.dtype == model.dtype and torch.equal(p.landmarks, lm.to(model.dtype))
    want = cal.correct(lm.double()).to(torch.float32).to(model.dtype)
    torch.testing.assert_close(p.target, want, rtol=0, atol=0)
    assert not torch.equal(p.target, p.landmarks)
    torch.testing.assert_close(p.weights, cal.weights().to(model.dtype))
    off = prepare_photo(img, model, lm, calibration=cal, calibration_offsets=False)
    assert torch.equal(off.target, off.landmarks) and off.weights is not None
    now = prepare_photo(img, model, lm, calibration=cal, calibration_weights=False)
    assert now.weights is None and torch.equal(now.target, p.target)


def test_prepare_photo_auto_calibration_and_refusals(model, tmp_path):
    from PIL import Image

    img = torch.rand(1, 3, 120, 160)
    lm = _landmarks()
    path = tmp_path / "face.png"
    Image.fromarray((img[0].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(path)
    p = prepare_photo(str(path), model, lm)
    assert p.weights is None and torch.equal(p.target, p.landmarks)  # given: no calibration
    assert p.source == str(path) and p.image.shape == (1, 3, 120, 160)
    with pytest.raises(InvalidInput, match=r"mine: landmarks must be \(68, 2\)"):
        prepare_photo(img, model, lm[:5], source="mine")
    bad = lm.clone()
    bad[3, 0] = float("nan")
    with pytest.raises(InvalidInput, match="NaN"):
        prepare_photo(img, model, bad)
    with pytest.raises(InvalidInput, match="only 20 px"):
        prepare_photo(img, model, _landmarks(side=20.0))
    with pytest.raises(InvalidInput, match="calibration must be"):
        prepare_photo(img, model, lm, calibration="shipped")
