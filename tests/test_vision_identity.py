"""Identity networks: dlib serialization parser, the dlib ResNet port vs dlib, ArcFace/IResNet."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from facelab.errors import AssetMissing, InvalidInput, ModelFormatError
from facelab.vision import samples
from facelab.vision.dlib_format import DlibReader, parse_dlib_net
from facelab.vision.dlib_resnet import add_zero_padded

# --------------------------------------------------------------------------------------
# dlib serialization primitives (known answers from dlib's encoding rules)


def test_dlib_integer_and_float_encoding():
    r = DlibReader(
        b"\x00" + b"\x01\x02" + b"\x81\x1c" + b"\x02\x34\x12" + b"\x88" + b"\xff" * 7 + b"\x7f"
    )
    assert r.int() == 0 and r.int() == 2 and r.int() == -28 and r.int() == 0x1234
    assert r.int() == -(2**63 - 1)
    # 0.04 as written by dlib: mantissa 0xa3d70a, exponent -28
    f = DlibReader(b"\x03\x0a\xd7\xa3\x81\x1c").float()
    assert f == pytest.approx(0.04, rel=1e-7) and f == 10737418 * 2.0**-28
    s = DlibReader(b"\x01\x05relu_1").string()
    assert s == "relu_"
    t = DlibReader(
        b"\x01\x02" + b"\x01\x01\x01\x02\x01\x01\x01\x01" + np.array([1.5, -2.0], "<f4").tobytes()
    ).tensor()
    assert t.shape == (1, 2, 1, 1) and t.ravel().tolist() == [1.5, -2.0]


def test_dlib_parser_rejects_bad_input():
    with pytest.raises(ModelFormatError, match="control byte"):
        DlibReader(b"\x7f").int()
    with pytest.raises(ModelFormatError, match="end of file"):
        DlibReader(b"\x04\x01").int()
    with pytest.raises(ModelFormatError):
        parse_dlib_net(b"\x01\x02garbage")


def test_add_zero_padded_matches_dlib_add_prev():
    a = torch.ones(1, 2, 3, 3)
    b = torch.full((1, 1, 4, 4), 10.0)
    out = add_zero_padded(a, b)
    assert out.shape == (1, 2, 4, 4)
    assert (
        out[0, 0, :3, :3].eq(11).all()
        and out[0, 0, 3, :].eq(10).all()
        and out[0, 0, :, 3].eq(10).all()
    )
    assert out[0, 1, :3, :3].eq(1).all() and out[0, 1, 3, :].eq(0).all()


# --------------------------------------------------------------------------------------
# The dlib ResNet port against dlib itself, on real faces


@pytest.fixture(scope="module")
def dlib_env():
    dlib = pytest.importorskip("dlib")
    from facelab.vision import get_detector
    from facelab.vision.detect import dlib_model_path
    from facelab.vision.dlib_resnet import MODEL_FILE, load_dlib_face_resnet

    try:
        path = dlib_model_path(MODEL_FILE)
    except AssetMissing as e:
        pytest.skip(str(e))
    net = load_dlib_face_resnet(path)
    rec = dlib.face_recognition_model_v1(str(path))
    det = get_detector("dlib")
    chips, shapes, imgs = [], [], []
    for name in ("astronaut", "einstein", "takeo"):
        s = samples.load(name)
        f = det.detect(s.image)[0]
        rect = dlib.rectangle(*[int(v) for v in f.box.tolist()])
        shape = dlib.full_object_detection(
            rect, [dlib.point(int(x - 0.5), int(y - 0.5)) for x, y in f.landmarks.tolist()]
        )
        chips.append(dlib.get_face_chip(s.image.to_uint8(), shape, 150, 0.25))
        shapes.append((f, shape))
        imgs.append(s.image)
    # real LFW faces (25x25 crops), upscaled to chip size: more real inputs for the comparison
    lfw = samples.lfw_faces()[:3]
    up = torch.nn.functional.interpolate(lfw, size=150, mode="bilinear", align_corners=False)
    for c in up:
        chips.append(
            np.ascontiguousarray((c.permute(1, 2, 0) * 255).round().clamp(0, 255).byte().numpy())
        )
    return {"dlib": dlib, "net": net, "rec": rec, "chips": chips, "shapes": shapes, "images": imgs}


def _to_tensor(chips):
    return torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float() / 255.0


def test_resnet_port_matches_dlib(dlib_env):
    net, rec, chips = dlib_env["net"], dlib_env["rec"], dlib_env["chips"]
    ref = np.stack([np.array(rec.compute_face_descriptor(c)) for c in chips])
    with torch.no_grad():
        ours = net.embed_chips(_to_tensor(chips)).double().numpy()
    diff = np.abs(ours - ref).max()
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    print(
        f"dlib ResNet port vs dlib on {len(chips)} real chips: max |diff| = {diff:.2e}, min cos = {cos.min():.9f}"
    )
    assert diff < 1e-4
    assert cos.min() > 1 - 1e-7
    # the descriptors are not trivial: different faces give clearly different vectors
    assert np.linalg.norm(ref[0] - ref[1]) > 0.3


def test_batched_equals_single(dlib_env):
    net = dlib_env["net"]
    x = _to_tensor(dlib_env["chips"][:4])
    with torch.no_grad():
        batched = net.embed_chips(x)
        single = torch.cat([net.embed_chips(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_resnet_gradients_finite_differences(dlib_env):
    net = dlib_env["net"]
    x0 = _to_tensor(dlib_env["chips"][:1]).double()
    net64 = net.double()
    try:
        w = torch.randn(128, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        x = x0.clone().requires_grad_(True)
        (net64.embed_chips(x) @ w).sum().backward()
        g = x.grad
        assert torch.isfinite(g).all() and float(g.abs().sum()) > 0
        # central differences on a few pixels around the eyes and mouth
        eps = 1e-4
        for c, i, j in [(0, 60, 55), (1, 60, 95), (2, 110, 75), (0, 75, 75)]:
            xp, xm = x0.clone(), x0.clone()
            xp[0, c, i, j] += eps
            xm[0, c, i, j] -= eps
            with torch.no_grad():
                fd = float(
                    (net64.embed_chips(xp) @ w).sum() - (net64.embed_chips(xm) @ w).sum()
                ) / (2 * eps)
            assert fd == pytest.approx(float(g[0, c, i, j]), rel=1e-4, abs=1e-7)
    finally:
        net.float()


def test_intermediate_features_shapes(dlib_env):
    with torch.no_grad():
        f = dlib_env["net"].features(dlib_env["net"].preprocess(_to_tensor(dlib_env["chips"][:2])))
    assert f["stem"].shape == (2, 32, 35, 35) and f["level3"].shape == (2, 64, 17, 17)
    assert f["level2"].shape == (2, 128, 8, 8) and f["level1"].shape == (2, 256, 4, 4)
    assert f["level0"].shape == (2, 256, 2, 2) and f["embedding"].shape == (2, 128)


def test_identity_encoder_end_to_end_separates_people(dlib_env):
    from facelab.vision import get_detector
    from facelab.vision.identity import DlibIdentity, load_identity_encoder

    enc = DlibIdentity()
    assert enc.threshold == pytest.approx(0.6)
    det = get_detector("dlib")
    embs, ref_full = [], []
    for img, (f, shape) in zip(dlib_env["images"], dlib_env["shapes"]):
        with torch.no_grad():
            embs.append(enc.embed(img.tensor, f.landmarks[None]))
        ref_full.append(np.array(dlib_env["rec"].compute_face_descriptor(img.to_uint8(), shape)))
    E = torch.cat(embs)
    # our whole pipeline (chip warp in PyTorch + port) vs dlib's compute_face_descriptor(img, shape)
    pipe = np.linalg.norm(E.double().numpy() - np.stack(ref_full), axis=1).max()
    print(f"full pipeline vs dlib: max descriptor distance {pipe:.4f}")
    assert pipe < 0.03
    # three different people: all pairwise distances above dlib's 0.6 threshold
    D = torch.cdist(E, E)
    off = D[torch.triu(torch.ones(3, 3, dtype=torch.bool), 1)]
    print("different-person distances:", [round(float(v), 3) for v in off])
    assert (off > 0.6).all()
    # the same person (mirrored, rescaled photo): below the threshold
    s = samples.astronaut().image.tensor
    flipped = torch.nn.functional.interpolate(
        s.flip(-1), scale_factor=0.8, mode="bilinear", antialias=True
    )
    f2 = det.detect(flipped)[0]
    with torch.no_grad():
        e2 = enc.embed(flipped, f2.landmarks[None])
    same = float(enc.distance(E[:1], e2)[0])
    print(f"same person (mirrored + 0.8x): {same:.3f}")
    assert same < 0.6 and bool(enc.same_person(E[:1], e2)[0])
    # gradients flow from the identity distance back to the photo pixels
    img = samples.takeo().image.tensor.clone().requires_grad_(True)
    lm = dlib_env["shapes"][2][0].landmarks[None]
    enc.distance(enc.embed(img, lm), E[2:3].detach() + 0.1).sum().backward()
    assert img.grad is not None and float(img.grad.abs().sum()) > 0
    with pytest.raises(InvalidInput):
        load_identity_encoder("nope")
    # detect + embed in one call, image shared by all faces of a photo
    with torch.no_grad():
        e_photo, faces = enc.embed_photo(samples.astronaut().image)
    assert len(faces) == 1 and float(enc.distance(e_photo, E[:1])[0]) < 1e-4
    # a fourth person: the man seated behind Einstein (second face of that photo)
    from facelab.vision import DlibConfig

    two = det.with_config(DlibConfig(upsample=1, threshold=-0.5))
    with torch.no_grad():
        e2f, faces = enc.embed_photo(samples.einstein().image, two, "all")
    assert len(faces) == 2
    all4 = torch.cat([E, e2f[:1]])
    d4 = torch.cdist(all4, all4)[torch.triu(torch.ones(4, 4, dtype=torch.bool), 1)]
    print("4 people, min distance:", round(float(d4.min()), 3))
    assert (d4 > 0.6).all()


def test_wrong_dlib_file_is_rejected(dlib_env, tmp_path):
    from facelab.vision.detect import dlib_model_path
    from facelab.vision.dlib_resnet import MODEL_FILE, load_dlib_face_resnet

    data = dlib_model_path(MODEL_FILE).read_bytes()
    bad = tmp_path / "truncated.dat"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError):
        load_dlib_face_resnet(bad)
    # other dlib files: the MMOD CNN detector (another DNN) and a shape predictor (not a DNN)
    with pytest.raises(ModelFormatError, match="loss_mmod"):
        load_dlib_face_resnet(dlib_model_path("mmod_human_face_detector.dat"))
    with pytest.raises(ModelFormatError):
        load_dlib_face_resnet(dlib_model_path("shape_predictor_5_face_landmarks.dat"))


# --------------------------------------------------------------------------------------
# ArcFace: a tiny IResNet exported to ONNX by the test, run by onnxruntime and by facelab


def _tiny_iresnet(seed=0):
    from facelab.vision.arcface import IResNet

    g = torch.Generator().manual_seed(seed)
    net = IResNet((1, 2, 1, 1), (8, 16, 24, 32), embedding_dim=16, input_size=32).eval()
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            m.running_mean.uniform_(-0.5, 0.5, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
            m.weight.data.uniform_(0.5, 1.5, generator=g)
            m.bias.data.uniform_(-0.2, 0.2, generator=g)
        if isinstance(m, torch.nn.PReLU):
            m.weight.data.uniform_(0.0, 0.5, generator=g)
    return net


@pytest.fixture(scope="module", params=["folded", "unfolded"])
def tiny_onnx(request, tmp_path_factory):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    net = _tiny_iresnet()
    path = tmp_path_factory.mktemp("onnx") / f"tiny_{request.param}.onnx"
    fold = request.param == "folded"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                net,
                torch.zeros(1, 3, 32, 32),
                str(path),
                dynamo=False,
                input_names=["data"],
                dynamic_axes={"data": {0: "batch"}},
                do_constant_folding=fold,
                training=torch.onnx.TrainingMode.EVAL if fold else torch.onnx.TrainingMode.PRESERVE,
            )
        except Exception as e:  # pragma: no cover - exporter unavailable
            pytest.skip(f"torch.onnx.export unavailable: {e}")
    return net, path


def test_iresnet_from_onnx_matches_onnxruntime_and_torch(tiny_onnx):
    import onnx

    from facelab.vision.arcface import ArcFaceONNXRuntime, load_iresnet_from_onnx

    net, path = tiny_onnx
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    model, info = load_iresnet_from_onnx(path)
    assert (
        info["layers"] == (1, 2, 1, 1)
        and info["embedding_dim"] == 16
        and info["max_abs_diff"] < 1e-4
    )
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    ref = ArcFaceONNXRuntime(path).run_raw(x.numpy())
    with torch.no_grad():
        got = model(x)
        orig = net(x)
    np.testing.assert_allclose(got.numpy(), ref, atol=2e-5)
    torch.testing.assert_close(got, orig, atol=2e-5, rtol=0)
    if path.name == "tiny_folded.onnx":
        assert ops.count("BatchNormalization") < 10  # the exporter folded conv+BN pairs
    # differentiable, with stage features
    xr = x.clone().requires_grad_(True)
    feats = model.features(xr)
    assert feats["layer4"].shape == (3, 32, 2, 2) and feats["stem"].shape == (3, 8, 32, 32)
    feats["embedding"].pow(2).sum().backward()
    assert xr.grad is not None and float(xr.grad.abs().sum()) > 0


def test_arcface_identity_encoder_with_tiny_onnx(tiny_onnx, monkeypatch):
    from facelab.vision.arcface import ArcFaceIdentity
    from facelab.vision.identity import load_identity_encoder

    _, path = tiny_onnx
    enc = ArcFaceIdentity(path)
    s = samples.takeo()
    crops = enc.align(s.image.tensor, s.landmarks[None].float()).image
    assert crops.shape == (1, 3, 32, 32)
    torch.testing.assert_close(
        enc.embed_crops(crops), enc.embed_crops_onnxruntime(crops), atol=2e-5, rtol=0
    )
    monkeypatch.setenv("FACELAB_ARCFACE_ONNX", str(path))
    assert load_identity_encoder("auto").name == "arcface"


def test_arcface_missing_weights_say_what_to_download(monkeypatch, tmp_path):
    from facelab.vision.arcface import find_arcface_onnx
    from facelab.vision.identity import load_identity_encoder

    monkeypatch.delenv("FACELAB_ARCFACE_ONNX", raising=False)
    monkeypatch.setenv("FACELAB_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(AssetMissing, match="buffalo_l"):
        find_arcface_onnx()
    with pytest.raises(AssetMissing, match="FACELAB_ARCFACE_ONNX"):
        load_identity_encoder("arcface")
    pytest.importorskip("dlib")
    assert load_identity_encoder("auto").name == "dlib"  # offline fallback


def test_non_iresnet_onnx_is_rejected(tmp_path):
    pytest.importorskip("onnx")
    from facelab.vision.arcface import load_iresnet_from_onnx

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 8)
    ).eval()
    p = tmp_path / "other.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 3, 8, 8), str(p), dynamo=False)
    with pytest.raises(ModelFormatError, match="IResNet|stages"):
        load_iresnet_from_onnx(p)
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelFormatError):
        load_iresnet_from_onnx(tmp_path / "junk.onnx")


def test_identity_loss_zero_on_the_photo_and_differentiable(dlib_env):
    from facelab.vision.identity import DlibIdentity, identity_loss

    enc = DlibIdentity()
    s = samples.takeo()
    f = dlib_env["shapes"][2][0]
    crop = enc.align(s.image.tensor, f.landmarks[None])
    with torch.no_grad():
        target = enc.embed_crops(crop.image)
    loss0 = identity_loss(enc, s.image.tensor, target, crop.matrix)
    assert float(loss0) == pytest.approx(0.0, abs=1e-6)
    # a darkened, noisy "render" has a positive loss with gradients on its pixels
    g = torch.Generator().manual_seed(0)
    render = (
        s.image.tensor * 0.7 + 0.1 * torch.rand(s.image.tensor.shape, generator=g)
    ).requires_grad_(True)
    loss = identity_loss(enc, render, target, crop.matrix)
    loss.sum().backward()
    assert float(loss.detach()) > 1e-4 and float(render.grad.abs().sum()) > 0
    feats = enc.features(s.image.tensor, f.landmarks[None])
    assert feats["level2"].shape == (1, 128, 8, 8)
    torch.testing.assert_close(feats["embedding"], target)


def test_onnx_with_input_normalisation_in_the_graph(tiny_onnx, tmp_path):
    """mxnet-converted insightface models normalise inside the graph (Sub, Mul first)."""
    import onnx
    from onnx import helper, numpy_helper

    from facelab.vision.arcface import ArcFaceIdentity

    _, path = tiny_onnx
    m = onnx.load(str(path))
    g = m.graph
    old_in = g.input[0].name
    for n in g.node:
        for i, name in enumerate(n.input):
            if name == old_in:
                n.input[i] = "normed"
    g.initializer.extend(
        [
            numpy_helper.from_array(
                np.array([127.5, 120.0, 110.0], np.float32).reshape(1, 3, 1, 1), "mean_c"
            ),
            numpy_helper.from_array(np.array(1 / 127.5, np.float32), "scale_c"),
        ]
    )
    sub = helper.make_node("Sub", [old_in, "mean_c"], ["centred"], name="_minus0")
    mul = helper.make_node("Mul", ["centred", "scale_c"], ["normed"], name="_mul0")
    nodes = [sub, mul] + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    p2 = tmp_path / "normalising.onnx"
    onnx.save(m, str(p2))
    enc = ArcFaceIdentity(p2)
    assert enc.info["graph_normalises"] and enc.info["max_abs_diff"] < 1e-4
    assert enc.info["graph_sub"] == pytest.approx([127.5, 120.0, 110.0])
    crops = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        enc.embed_crops(crops), enc.embed_crops_onnxruntime(crops), atol=2e-5, rtol=0
    )


def _dint(v: int) -> bytes:
    """dlib's integer encoding (test-side writer)."""
    mag = abs(v)
    b = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little") if mag else b""
    return bytes([len(b) | (0x80 if v < 0 else 0)]) + b


def _dfloat(x: float) -> bytes:
    m, e = np.frexp(np.float64(x))
    mant = int(m * 2**53)
    return _dint(mant) + _dint(int(e) - 53)


def _dstr(s: str) -> bytes:
    return _dint(len(s)) + s.encode()


def _dtensor(a: np.ndarray) -> bytes:
    shape = (list(a.shape) + [1, 1, 1, 1])[:4]
    return _dint(2) + b"".join(_dint(d) for d in shape) + a.astype("<f4").tobytes()


def _dalias(shape) -> bytes:
    return _dint(1) + b"".join(_dint(d) for d in shape)


@pytest.mark.parametrize("use_bias", [True, False])
def test_parse_con_layers_written_by_a_test_serializer(use_bias):
    from facelab.vision.dlib_format import _read_details

    g = np.random.default_rng(0)
    w = g.normal(size=(4, 3, 3, 3)).astype(np.float32)
    b = g.normal(size=4).astype(np.float32)
    params = np.concatenate([w.ravel(), b if use_bias else []]).astype(np.float32)
    blob = (
        _dstr("con_5")
        + _dtensor(params.reshape(-1, 1, 1, 1))
        + b"".join(_dint(v) for v in (4, 3, 3, 2, 2, 0, 0))
        + _dalias((4, 3, 3, 3))
        + _dalias((1, 4, 1, 1))
        + b"".join(_dfloat(v) for v in (1.0, 1.0, 1.0, 0.0))
        + (b"1" if use_bias else b"0")
    )
    r = DlibReader(blob)
    layer = _read_details(r)
    assert r.pos == len(blob) and layer.kind == "con"
    np.testing.assert_array_equal(layer.params["weight"], w)
    np.testing.assert_array_equal(layer.params["bias"], b if use_bias else np.zeros(4, np.float32))
    assert layer.params["stride_y"] == 2 and layer.params["padding_x"] == 0
    assert DlibReader(_dfloat(-0.15625) + _dfloat(1e-5)).float() == -0.15625
