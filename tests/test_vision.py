"""Tests of facelab.vision: image loading, dlib detection/landmarks, alignment crops, samples."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from facelab.errors import ImageReadError, InvalidInput, MultipleFacesFound, NoFaceFound
from facelab.vision import (
    Face,
    align_faces,
    apply_transform,
    crop_transform,
    ibug68,
    invert_transform,
    landmark_nme,
    load_image,
    samples,
    select_faces,
    similarity_transform,
    warp_to_crop,
)
from facelab.vision.align import five_points

PIL = pytest.importorskip("PIL.Image")


# --------------------------------------------------------------------------------------
# Image loader on synthetic files


def _gradient_rgb(h=20, w=30) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 77)], -1).astype(
        np.uint8
    )


def test_load_png_rgb_roundtrip(tmp_path):
    a = _gradient_rgb()
    p = tmp_path / "a.png"
    PIL.fromarray(a).save(p)
    img = load_image(p)
    assert img.tensor.shape == (1, 3, 20, 30) and img.tensor.dtype == torch.float32
    np.testing.assert_array_equal(img.to_uint8(), a)
    assert img.mode == "RGB" and img.bit_depth == 8 and img.exif_orientation == 1
    # same pixels from bytes, PIL, numpy and tensor inputs
    for src in (p.read_bytes(), PIL.open(p), a, img.tensor):
        np.testing.assert_array_equal(load_image(src).to_uint8(), a)
    # the loaded image does not alias the caller's array
    b = a.copy()
    from_np = load_image(b)
    b[:] = 0
    np.testing.assert_array_equal(from_np.to_uint8(), a)
    assert float(from_np.tensor.max()) > 0.5


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_applied(tmp_path, orientation):
    a = np.zeros((20, 40, 3), np.uint8)
    a[:5, :5] = 255  # white block in the stored top-left corner
    im = PIL.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = orientation
    p = tmp_path / "rot.jpg"
    im.save(p, quality=100, exif=exif.tobytes())
    img = load_image(p)
    assert img.exif_orientation == orientation and img.stored_size == (20, 40)
    g = img.tensor[0].mean(0)
    if orientation == 3:  # 180 deg: block goes to the bottom-right
        assert img.size == (20, 40) and g[-3, -3] > 0.8 and g[2, 2] < 0.2
    elif orientation == 6:  # rotate 90 CW to display: top-left -> top-right
        assert img.size == (40, 20) and g[2, -3] > 0.8 and g[2, 2] < 0.2
    else:  # 8: rotate 90 CCW: top-left -> bottom-left
        assert img.size == (40, 20) and g[-3, 2] > 0.8 and g[2, 2] < 0.2


def test_grayscale_rgba_palette_16bit(tmp_path):
    g = np.arange(0, 250, 10, dtype=np.uint8).reshape(5, 5)
    PIL.fromarray(g).save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.mode == "L"
    for c in range(3):
        np.testing.assert_allclose(img.tensor[0, c].numpy(), g / 255.0, atol=1e-7)

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = np.array([0, 85, 170, 255], np.uint8)[None, :]
    PIL.fromarray(rgba).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png", background=(0.0, 0.0, 0.0))
    alpha = np.array([0, 85, 170, 255]) / 255.0
    np.testing.assert_allclose(img.tensor[0, 0, 0].numpy(), alpha * 200 / 255, atol=1e-6)
    np.testing.assert_allclose(img.alpha[0, 0, 0].numpy(), alpha, atol=1e-7)
    white = load_image(tmp_path / "a.png")  # default white background
    np.testing.assert_allclose(white.tensor[0, 1, 0].numpy(), 1 - alpha, atol=1e-6)

    pal = PIL.fromarray(_gradient_rgb()).convert("P", palette=PIL.Palette.ADAPTIVE, colors=16)
    pal.save(tmp_path / "p.png")
    img = load_image(tmp_path / "p.png")
    assert img.mode == "P"
    np.testing.assert_array_equal(img.to_uint8(), np.asarray(pal.convert("RGB")))

    v = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000 + 7).astype(np.uint16)
    PIL.fromarray(v).save(tmp_path / "d.png")
    img = load_image(tmp_path / "d.png")
    assert img.bit_depth == 16
    # full 16-bit precision kept (not rounded to 8 bits)
    np.testing.assert_allclose(img.tensor[0, 0].numpy(), v / 65535.0, atol=1e-7)


def test_unreadable_files(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        load_image(tmp_path / "empty.jpg")
    (tmp_path / "text.jpg").write_text("this is not a picture\n")
    with pytest.raises(ImageReadError, match="not an image"):
        load_image(tmp_path / "text.jpg")
    with pytest.raises(ImageReadError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="directory"):
        load_image(tmp_path)
    buf = io.BytesIO()
    PIL.fromarray(_gradient_rgb(64, 64)).save(buf, "PNG")
    (tmp_path / "trunc.png").write_bytes(buf.getvalue()[:60])
    with pytest.raises(ImageReadError):
        load_image(tmp_path / "trunc.png")
    with pytest.raises(ImageReadError, match="max_pixels"):
        load_image(buf.getvalue(), max_pixels=100)
    with pytest.raises(InvalidInput, match=r"\[0, 1\]"):
        load_image(np.full((4, 4, 3), 255.0))
    with pytest.raises(InvalidInput, match="shape|must be"):
        load_image(np.zeros((4, 4, 2), np.uint8))


def test_downscale_for_detection_keeps_full_res():
    a = np.zeros((3000, 2000, 3), np.uint8)
    img = load_image(a)
    small, s = img.for_detection(1000)
    assert small.shape == (1000, 667, 3) and s == pytest.approx(1000 / 3000)
    assert img.size == (3000, 2000)


# --------------------------------------------------------------------------------------
# Detection + landmarks with dlib (real images shipped by installed packages)


@pytest.fixture(scope="module")
def dlib_detector():
    pytest.importorskip("dlib")
    from facelab.vision import get_detector

    return get_detector("dlib")


def test_dlib_astronaut_one_face(dlib_detector):
    s = samples.astronaut()
    faces = dlib_detector.detect(s.image)
    assert len(faces) == 1
    f = faces[0]
    x0, y0, x1, y1 = f.box.tolist()
    # the astronaut's face is in the upper middle of the 512x512 photo, ~90 px wide
    assert 150 < x0 < 200 and 60 < y0 < 110 and 70 < x1 - x0 < 120 and 70 < y1 - y0 < 120
    assert f.landmarks.shape == (68, 2) and f.score > 0.5
    # landmarks lie around the box; eyes above the mouth, subject's right eye on the left
    lm = f.landmarks
    assert (lm[:, 0] > x0 - 20).all() and (lm[:, 0] < x1 + 20).all()
    assert lm[36:42, 1].mean() < lm[48:60, 1].mean() and lm[36:42, 0].mean() < lm[42:48, 0].mean()


@pytest.mark.parametrize("name,bound", [("einstein", 0.10), ("takeo", 0.08)])
def test_dlib_nme_against_shipped_ground_truth(dlib_detector, name, bound):
    s = samples.load(name)
    assert s.landmarks.shape == (68, 2)
    f = select_faces(dlib_detector.detect(s.image), "largest")[0]
    nme = float(landmark_nme(f.landmarks.double(), s.landmarks))
    print(f"{name}: dlib NME (outer-eye normalised) = {100 * nme:.2f} %")
    assert nme < bound
    # and a gross error would be caught: shifting by 10% of the eye distance fails the bound
    shifted = s.landmarks + ibug68.interocular_distance(s.landmarks) * bound * 1.5
    assert float(landmark_nme(shifted, s.landmarks)) > bound


def test_no_face_found(dlib_detector):
    from facelab.vision import detect_faces

    gray = np.full((300, 300, 3), 128, np.uint8)
    assert dlib_detector.detect(gray) == []
    with pytest.raises(NoFaceFound, match="no face"):
        detect_faces(gray, dlib_detector)
    nonface = samples.lfw_nonfaces()[0]  # a real non-face patch, upscaled
    big = torch.nn.functional.interpolate(nonface[None], size=200, mode="bilinear")
    with pytest.raises(NoFaceFound):
        detect_faces(big, dlib_detector)


def _fake(x0, w, score=1.0):
    return Face(box=torch.tensor([x0, 0.0, x0 + w, w]), landmarks=torch.zeros(68, 2), score=score)


def test_face_policies():
    faces = [_fake(300, 50), _fake(0, 80), _fake(100, 30)]
    assert select_faces(faces, "largest")[0].box[0] == 0
    assert [float(f.box[0]) for f in select_faces(faces, "all")] == [0, 100, 300]
    assert select_faces(faces, 2)[0].box[0] == 300 and select_faces(faces, -1)[0].box[0] == 300
    with pytest.raises(MultipleFacesFound):
        select_faces(faces, "single")
    with pytest.raises(InvalidInput, match="out of range"):
        select_faces(faces, 5)
    with pytest.raises(NoFaceFound):
        select_faces([], "largest")


# --------------------------------------------------------------------------------------
# Alignment


def test_similarity_transform_recovers_known_answer():
    g = torch.Generator().manual_seed(0)
    src = torch.rand(3, 10, 2, generator=g, dtype=torch.float64) * 100
    ang = torch.tensor([0.3, -1.0, 2.5], dtype=torch.float64)
    s = torch.tensor([0.5, 2.0, 1.3], dtype=torch.float64)
    R = torch.stack([torch.cos(ang), -torch.sin(ang), torch.sin(ang), torch.cos(ang)], -1).view(
        3, 2, 2
    )
    t = torch.tensor([[5.0, -3.0], [0.0, 10.0], [-7.0, 2.0]], dtype=torch.float64)
    M_true = torch.cat([s[:, None, None] * R, t[..., None]], -1)
    dst = apply_transform(M_true, src)
    M = similarity_transform(src, dst)
    torch.testing.assert_close(M, M_true, atol=1e-10, rtol=0)
    torch.testing.assert_close(apply_transform(invert_transform(M), dst), src, atol=1e-9, rtol=0)


@pytest.mark.parametrize("template,size", [("arcface", 112), ("ffhq", 256), ("dlib", 150)])
def test_crop_inverse_roundtrip(template, size):
    s = samples.takeo()
    lm = s.landmarks[None].float()
    if template == "dlib":
        pytest.importorskip("dlib")
    crop = align_faces(s.image.tensor, lm, template, size)
    assert crop.image.shape == (1, 3, size, size)
    back = crop.to_photo(crop.to_crop(lm.double()))
    assert float((back - lm.double()).abs().max()) < 1e-3
    # the crop puts the face in the template's place: eyes in the upper half, left of right
    q = five_points(crop.to_crop(lm))[0]
    assert q[0, 0] < q[1, 0] and q[:2, 1].max() < size * 0.55 and q[3:, 1].min() > size * 0.55


def test_warp_matches_manual_sampling_and_has_gradients():
    # a pure translation by integer pixels must copy pixels exactly
    g = torch.Generator().manual_seed(1)
    img = torch.rand(1, 3, 16, 16, generator=g, dtype=torch.float64, requires_grad=True)
    M = torch.tensor([[[1.0, 0.0, -3.0], [0.0, 1.0, -5.0]]], dtype=torch.float64)
    out = warp_to_crop(img, M, 8)
    torch.testing.assert_close(out, img[:, :, 5:13, 3:11])
    # scale 2 upsampling: the crop centre pixel (7.5, 7.5) maps to photo (3.75+o)...
    M2 = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]], dtype=torch.float64)
    out2 = warp_to_crop(img, M2, 16)
    # crop pixel centre (1.5, 1.5) -> photo (0.75, 0.75): bilinear between pixels 0 and 1
    expected = (
        0.25 * 0.25 * img[0, :, 1, 1]
        + 0.75 * 0.75 * img[0, :, 0, 0]
        + 0.25 * 0.75 * (img[0, :, 0, 1] + img[0, :, 1, 0])
    )
    torch.testing.assert_close(out2[0, :, 1, 1], expected)
    out2.sum().backward()
    assert img.grad is not None and float(img.grad.abs().sum()) > 0
    # gradient w.r.t. the matrix (used to refine alignment) is finite and nonzero
    Mv = M2.clone().requires_grad_(True)
    warp_to_crop(img.detach(), Mv, 16).pow(2).sum().backward()
    assert torch.isfinite(Mv.grad).all() and float(Mv.grad.abs().sum()) > 0


def test_dlib_chip_matches_dlib_get_face_chip(dlib_detector):
    import dlib

    from facelab.vision.align import dlib_chip_transform

    s = samples.astronaut()
    f = dlib_detector.detect(s.image)[0]
    M = dlib_chip_transform(f.landmarks[None].double())
    ours = warp_to_crop(s.image.tensor.double(), M, 150)
    rect = dlib.rectangle(*[int(v) for v in f.box.tolist()])
    shape = dlib.full_object_detection(
        rect, [dlib.point(int(x - 0.5), int(y - 0.5)) for x, y in f.landmarks.tolist()]
    )
    ref = dlib.get_face_chip(s.image.to_uint8(), shape, 150, 0.25)
    ref = torch.from_numpy(ref).permute(2, 0, 1)[None].double() / 255
    assert float((ours - ref).abs().mean()) < 2.5 / 255  # equal up to 8-bit rounding
    assert float((ours - ref).abs().max()) < 8 / 255


def test_five_points_and_crop_transform_errors():
    with pytest.raises(InvalidInput):
        five_points(torch.zeros(5, 2))
    with pytest.raises(InvalidInput, match="template"):
        crop_transform(torch.zeros(1, 68, 2), "nope")


def test_pts_roundtrip(tmp_path):
    lm = torch.rand(68, 2, dtype=torch.float64) * 100
    p = ibug68.write_pts(tmp_path / "x.pts", lm)
    torch.testing.assert_close(ibug68.read_pts(p), lm, atol=1e-6, rtol=0)
    assert math.isclose(float(landmark_nme(lm, lm)), 0.0)


# --------------------------------------------------------------------------------------
# Command line (contracts: `facelab landmarks PHOTO [--json] [--out overlay.png]`,
# `facelab identity PHOTO_A PHOTO_B [--json]`)


def test_cli_landmarks_and_identity(tmp_path, capsys, dlib_detector):
    import json

    from facelab.cli import main
    from facelab.vision import save_image

    astro = save_image(samples.astronaut().image, tmp_path / "astro.png")
    flipped = save_image(samples.astronaut().image.tensor.flip(-1), tmp_path / "flip.png")
    takeo = save_image(samples.takeo().image, tmp_path / "takeo.png")
    overlay = tmp_path / "overlay.png"
    assert main(["landmarks", str(astro), "--json", "--out", str(overlay)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"image", "width", "height", "detector", "faces", "overlay"}
    assert out["width"] == 512 and len(out["faces"]) == 1
    face = out["faces"][0]
    assert len(face["landmarks"]) == 68 and len(face["box"]) == 4 and face["score"] > 0
    assert overlay.is_file() and load_image(overlay).size == (512, 512)
    assert main(["landmarks", str(astro)]) == 0
    assert "1 face(s)" in capsys.readouterr().out

    gray = tmp_path / "gray.png"
    PIL.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(gray)
    assert main(["landmarks", str(gray), "--json"]) == 1  # no face: the CLI's error object
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "NoFaceFound"
    notimg = tmp_path / "x.jpg"
    notimg.write_text("hello")
    assert main(["landmarks", str(notimg)]) == 1
    assert "not an image" in capsys.readouterr().err

    assert main(["identity", str(astro), str(flipped), "--json", "--backend", "dlib"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert set(same) == {
        "backend",
        "metric",
        "distance",
        "similarity",
        "threshold",
        "same_person",
        "faces",
    }
    assert same["backend"] == "dlib" and same["same_person"] and same["distance"] < 0.6
    assert main(["identity", str(astro), str(takeo), "--backend", "dlib"]) == 0
    text = capsys.readouterr().out
    assert "different people" in text and "backend: dlib" in text


def test_einstein_has_two_faces_and_policies_pick_right(dlib_detector):
    from facelab.vision import DlibConfig

    s = samples.einstein()
    det = dlib_detector.with_config(DlibConfig(upsample=1, threshold=-0.5))
    faces = det.detect(s.image)
    assert len(faces) == 2  # Einstein at the lectern and the man seated bottom-left
    ordered = select_faces(faces, "all")
    assert float(ordered[0].box[0]) < 250 and float(ordered[0].box[1]) > 550
    largest = select_faces(faces, "largest")[0]
    assert largest is ordered[1]
    assert float(landmark_nme(largest.landmarks.double(), s.landmarks)) < 0.12
    with pytest.raises(MultipleFacesFound, match="2 faces"):
        select_faces(faces, "single")


def test_dlib_cnn_detector_on_small_image(dlib_detector):
    from facelab.vision import DlibConfig

    s = samples.takeo()
    det = dlib_detector.with_config(DlibConfig(method="cnn", max_side=300))
    faces = det.detect(s.image)
    assert len(faces) == 1 and faces[0].score > 0.5
    nme = float(landmark_nme(faces[0].landmarks.double(), s.landmarks))
    print(f"takeo: CNN boxes + 68-pt predictor NME = {100 * nme:.2f} %")
    assert nme < 0.08
    with pytest.raises(InvalidInput, match="method"):
        from facelab.vision import DlibDetector

        DlibDetector(DlibConfig(method="sift"))


def test_read_ljson_menpo_convention(tmp_path):
    import json

    # menpo stores (y, x), 0-based
    doc = {
        "version": 3,
        "groups": {"LJSON": {"labels": [], "landmarks": {"points": [[10.0, 20.0], [30.0, 5.0]]}}},
    }
    (tmp_path / "a.ljson").write_text(json.dumps(doc))
    pts = ibug68.read_ljson(tmp_path / "a.ljson")
    torch.testing.assert_close(pts, torch.tensor([[20.5, 10.5], [5.5, 30.5]], dtype=torch.float64))
    (tmp_path / "bad.ljson").write_text("{}")
    from facelab.errors import ModelFormatError

    with pytest.raises(ModelFormatError):
        ibug68.read_ljson(tmp_path / "bad.ljson")


def _png16(a: np.ndarray) -> bytes:
    """A minimal 16-bit PNG encoder (filter 0), to test full-precision colour decoding."""
    import struct
    import zlib

    h, w, c = a.shape
    raw = b"".join(b"\x00" + a[i].astype(">u2").tobytes() for i in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_png_keeps_full_precision(tmp_path, channels):
    pytest.importorskip("cv2")
    a = (np.arange(4 * 5 * channels).reshape(4, 5, channels) * 997 + 3).astype(np.uint16)
    if channels == 4:
        a[..., 3] = 65535  # opaque
    p = tmp_path / "c16.png"
    p.write_bytes(_png16(a))
    img = load_image(p)
    assert img.bit_depth == 16 and img.size == (4, 5)
    np.testing.assert_allclose(
        img.tensor[0].permute(1, 2, 0).numpy(), a[..., :3] / 65535.0, atol=1e-7
    )


def test_huge_photo_detects_on_a_small_copy_and_keeps_full_resolution(dlib_detector, tmp_path):
    """A 4x upscaled astronaut (2048 px): boxes come from the 1024 px detection copy, the 68
    points from the full image, both in full-resolution pixels (4x the original's)."""
    s = samples.astronaut()
    ref = dlib_detector.detect(s.image)[0]
    big = PIL.fromarray(s.image.to_uint8()).resize((2048, 2048), PIL.Resampling.BICUBIC)
    p = tmp_path / "big.png"
    big.save(p)
    img = load_image(p)
    assert img.size == (2048, 2048)  # loaded at full resolution
    small, scale = img.for_detection(dlib_detector.config.max_side)
    assert small.shape[:2] == (1024, 1024) and scale == 0.5
    f = select_faces(dlib_detector.detect(img), "largest")[0]
    # the box is the detection copy's box mapped back: 4x the original's, up to the HOG
    # pyramid's scale steps (the two runs see the face at different pyramid levels)
    width = float(4 * (ref.box[2] - ref.box[0]))
    assert float((f.box - 4 * ref.box).abs().max()) < 0.1 * width
    # the landmarks are full-resolution pixels of this photo (not of the 1024 px copy)
    nme = float(landmark_nme(f.landmarks.double(), 4 * ref.landmarks.double()))
    print(f"2048 px astronaut vs 4 x the 512 px landmarks: NME {100 * nme:.2f} %")
    assert nme < 0.03, nme
    assert float(f.landmarks[:, 0].max()) > 1024 * 0.9  # beyond the copy's 1024 px extent


def test_palette_with_transparency_and_exif_on_pil_input(tmp_path):
    # a palette PNG whose index 0 is transparent: composited over the background, alpha kept
    pal = PIL.new("P", (4, 2))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * (254 * 3))
    pal.putdata([0, 0, 1, 1, 0, 1, 0, 1])
    pal.save(tmp_path / "t.png", transparency=0)
    img = load_image(tmp_path / "t.png", background=(0.0, 1.0, 0.0))
    assert img.mode == "P" and img.alpha is not None
    np.testing.assert_array_equal(img.alpha[0, 0].numpy(), [[0, 0, 1, 1], [0, 1, 0, 1]])
    green = torch.tensor([0.0, 1.0, 0.0])
    blue = torch.tensor([0.0, 0.0, 1.0])
    torch.testing.assert_close(img.tensor[0, :, 0, 0], green)
    torch.testing.assert_close(img.tensor[0, :, 0, 2], blue)
    # EXIF orientation is applied to PIL images passed directly, too
    a = np.zeros((10, 20, 3), np.uint8)
    a[:3, :3] = 255
    im = PIL.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "r.jpg", quality=100, exif=exif.tobytes())
    rot = load_image(PIL.open(tmp_path / "r.jpg"))
    assert rot.size == (20, 10) and rot.exif_orientation == 6
    assert float(rot.tensor[0].mean(0)[1, -2]) > 0.8


def _landmarks_from_five(five) -> torch.Tensor:
    """68 landmarks whose five alignment points are ``five`` (eye rings collapsed to the centre)."""
    lm = torch.zeros(68, 2, dtype=torch.float64)
    five = torch.as_tensor(five, dtype=torch.float64)
    lm[36:42], lm[42:48], lm[30], lm[48], lm[54] = five[0], five[1], five[2], five[3], five[4]
    return lm


def test_ffhq_and_arcface_templates_known_answers():
    from facelab.vision.align import ARCFACE_112, ffhq_transform

    # FFHQ recipe by hand: eyes (40, 50), (60, 50); mouth corners (42, 80), (58, 80):
    # e2e = (20, 0), e2m = (0, 30), x = e2e - flipud(e2m) * [-1, 1] = (50, 0) -> unit * max(2 * 20,
    # 1.8 * 30) = (54, 0), y = (0, 54), c = (50, 50) + 0.1 * e2m = (50, 53): the square
    # c +- x +- y (side 108) fills the 256 px crop, upright.
    lm = _landmarks_from_five([(40, 50), (60, 50), (50, 65), (42, 80), (58, 80)])
    M = ffhq_transform(lm[None], 256)[0]
    s = 256 / 108
    want = torch.tensor([[s, 0, 128 - s * 50], [0, s, 128 - s * 53]], dtype=torch.float64)
    torch.testing.assert_close(M, want, atol=1e-9, rtol=0)
    # ArcFace: landmarks exactly on the 112 template -> identity; on a rotated, scaled and
    # shifted copy of it -> the inverse of that similarity
    tmpl = torch.tensor(ARCFACE_112, dtype=torch.float64)
    M = crop_transform(_landmarks_from_five(tmpl)[None], "arcface")[0]
    torch.testing.assert_close(M, torch.eye(2, 3, dtype=torch.float64), atol=1e-9, rtol=0)
    a = 0.4
    S = torch.tensor(
        [[2 * math.cos(a), -2 * math.sin(a), 300.0], [2 * math.sin(a), 2 * math.cos(a), 80.0]],
        dtype=torch.float64,
    )
    M = crop_transform(_landmarks_from_five(apply_transform(S, tmpl))[None], "arcface", 224)[0]
    S224 = torch.cat([S[:, :2] / 2, S[:, 2:]], 1)  # template scaled by 224 / 112 = 2
    torch.testing.assert_close(M, invert_transform(S224), atol=1e-9, rtol=0)


def test_cli_identity_names_the_photo_without_a_face(tmp_path, capsys, dlib_detector):
    from facelab.cli import main
    from facelab.vision import save_image

    astro = save_image(samples.astronaut().image, tmp_path / "astro.png")
    gray = tmp_path / "gray.png"
    PIL.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(gray)
    assert main(["identity", str(astro), str(gray), "--backend", "dlib"]) == 1
    err = capsys.readouterr().err
    assert "gray.png" in err and "astro.png" not in err
