"""facelab.methods.spi: mirrored camera, depth warping, conflict masks, inversion, the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.geometry.eg3d import (
    camera_params,
    mirror_cam2world,
    normalized_intrinsics,
    orbit_cam2world,
    pixel_intrinsics,
    split_camera_params,
)
from facelab.methods.spi import (
    SPIConfig,
    camera_yaw_pitch,
    depth_warp,
    in_bounds_mask,
    invert_latent,
    mirror_camera_params,
    mirror_weight,
    occlusion_mask,
    symmetry_conflict_mask,
    unproject_depth,
)
from facelab.methods.spi.invert import (
    learning_rate_at,
    orbit_like,
    pivotal_tuning,
    render_views,
    warp_labels,
)
from facelab.methods.spi.losses import mirror_loss, reconstruction_loss

F64 = torch.float64


def _cams(yaws, pitch=0.0):
    y = torch.as_tensor(yaws, dtype=F64)
    c2w = orbit_cam2world(y, torch.full_like(y, pitch))
    return camera_params(c2w, normalized_intrinsics(batch=len(y), dtype=F64))


# ------------------------------------------------------------------ the mirrored camera


def test_mirror_twice_is_identity_and_yaw_flips():
    g = torch.Generator().manual_seed(0)
    yaw = (torch.rand(6, generator=g, dtype=F64) - 0.5) * 1.6
    pitch = (torch.rand(6, generator=g, dtype=F64) - 0.5) * 0.6
    c = camera_params(orbit_cam2world(yaw, pitch), normalized_intrinsics(batch=6, dtype=F64))
    torch.testing.assert_close(mirror_camera_params(mirror_camera_params(c)), c)
    ym, pm = camera_yaw_pitch(mirror_camera_params(c))
    y0, p0 = camera_yaw_pitch(c)
    torch.testing.assert_close(ym, -y0)
    torch.testing.assert_close(pm, p0)
    # it is the orbit camera at -yaw, exactly (rotation and centre)
    torch.testing.assert_close(
        mirror_cam2world(orbit_cam2world(yaw, pitch)), orbit_cam2world(-yaw, pitch)
    )
    R = split_camera_params(mirror_camera_params(c))[0][:, :3, :3]
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(6, dtype=F64))


def test_mirrored_camera_sees_the_mirrored_point_at_the_flipped_pixel():
    c = _cams([0.4], 0.1)
    cm = mirror_camera_params(c)
    X = torch.tensor([[0.13, -0.07, 0.21]], dtype=F64)
    W = 32

    def pix(cam, p):
        c2w, K = split_camera_params(cam)
        x = (p - c2w[:, :3, 3]) @ c2w[0, :3, :3]
        uv = x @ pixel_intrinsics(K, W)[0].T
        return uv[:, :2] / uv[:, 2:]

    u = pix(c, X)
    um = pix(cm, X * X.new_tensor([-1.0, 1.0, 1.0]))
    torch.testing.assert_close(um[:, 0], W - u[:, 0])
    torch.testing.assert_close(um[:, 1], u[:, 1])


def test_mirror_weight_is_zero_near_frontal():
    w = mirror_weight(torch.deg2rad(torch.tensor([0.0, -8.0, 10.0, 20.0, -30.0, 60.0])))
    torch.testing.assert_close(w, torch.tensor([0.0, 0.0, 0.0, 0.5, 1.0, 1.0]))


def test_orbit_like_keeps_distance_and_pitch():
    c = _cams([0.3], 0.1)
    o = orbit_like(c, [-20.0, 0.0, 35.0])
    y, p = camera_yaw_pitch(o)
    torch.testing.assert_close(torch.rad2deg(y), torch.tensor([-20.0, 0.0, 35.0], dtype=F64))
    torch.testing.assert_close(p, camera_yaw_pitch(c)[1].expand(3))
    r = split_camera_params(o)[0][:, :3, 3] - o.new_tensor([0.0, 0.0, 0.2])
    r0 = split_camera_params(c)[0][:, :3, 3] - c.new_tensor([0.0, 0.0, 0.2])
    torch.testing.assert_close(r.norm(dim=-1), r0.norm(dim=-1).expand(3))


# ------------------------------------------------------------------ warping on an analytic plane


def _plane_depth(cam, res, z0=0.0, tilt=0.0):
    """Camera-z depth, seen by cam (B=1), of the plane through (0, 0, z0) with normal
    (sin tilt, 0, cos tilt) (tilt 0: the plane world z = z0), by ray intersection."""
    c2w, K = split_camera_params(cam)
    Kp = pixel_intrinsics(K, res)[0]
    v, u = torch.meshgrid(
        torch.arange(res, dtype=F64) + 0.5, torch.arange(res, dtype=F64) + 0.5, indexing="ij"
    )
    d_cam = torch.stack(
        [(u - Kp[0, 2]) / Kp[0, 0], (v - Kp[1, 2]) / Kp[1, 1], torch.ones_like(u)], -1
    )
    d_w = d_cam @ c2w[0, :3, :3].T
    o = c2w[0, :3, 3]
    n = torch.tensor([math.sin(tilt), 0.0, math.cos(tilt)], dtype=F64)
    t = (n[2] * z0 - o @ n) / (d_w @ n)  # ray o + t d_w; camera z = t since d_cam has z = 1
    return t[None]


def test_warp_of_an_analytic_plane_lands_where_geometry_says():
    """A textured plane z = 0: warping the source view into the target through the target's
    exact depth reproduces the texture; each target pixel lands at the source pixel of the
    same 3D point."""
    res = 24
    src, tgt = _cams([0.25]), _cams([-0.15])
    d_t = _plane_depth(tgt, res)
    X = unproject_depth(d_t, tgt)
    torch.testing.assert_close(X[..., 2], torch.zeros_like(X[..., 2]), atol=1e-9, rtol=0)

    def texture(P):  # a smooth function of the plane's (x, y)
        return torch.stack(
            [torch.sin(6 * P[..., 0]), torch.cos(5 * P[..., 1]), P[..., 0] * P[..., 1] * 4], 1
        )

    img_src = texture(unproject_depth(_plane_depth(src, 96), src)).to(F64)  # fine source image
    d_src = _plane_depth(src, 96)
    w = depth_warp(img_src, d_t, tgt, src, d_src)
    truth = texture(X)
    inb = in_bounds_mask(w.uv, (96, 96))
    assert inb.float().mean() > 0.8
    inner = in_bounds_mask(w.uv - 1.0, (94, 94))  # a pixel from the border: no zero padding
    err = (w.image - truth).abs().amax(1)[inner]
    assert float(err.max()) < 0.05, "bilinear sampling of a smooth texture"
    assert occlusion_mask(w.z, w.source_depth, 0.02)[inb].all(), "a plane occludes nothing"


def test_occlusion_test_finds_the_hidden_part():
    """Synthetic occlusion: the source sees a near square in front of a far wall; target
    points on the wall behind the square fail the depth-agreement test, the rest pass."""
    res = 32
    cam = _cams([0.0])
    d_src = torch.full((1, res, res), 2.8, dtype=F64)
    d_src[:, 12:20, 12:20] = 2.5  # the occluder, seen by the source
    # the target *is* the wall everywhere (same camera, so uv = pixel): z = 2.8
    w = depth_warp(
        torch.zeros(1, 3, res, res, dtype=F64),
        torch.full((1, res, res), 2.8, dtype=F64),
        cam,
        cam,
        d_src,
    )
    vis = occlusion_mask(w.z, w.source_depth, 0.05)
    hidden = torch.zeros(1, res, res, dtype=torch.bool)
    hidden[:, 12:20, 12:20] = True
    assert torch.equal(vis, ~hidden)
    inb = in_bounds_mask(w.uv, (res, res))
    assert inb.all()
    far = in_bounds_mask(w.uv + 100.0, (res, res))
    assert not far.any()


def test_symmetry_conflict_mask_marks_the_asymmetric_patch():
    flipped = torch.zeros(1, 3, 8, 8)
    orig = torch.zeros(1, 3, 8, 8)
    orig[:, :, 2:4, 5:7] = 0.8  # a mole only the photo has ([-1, 1] units: diff 0.4 > 0.15)
    valid = torch.ones(1, 8, 8, dtype=torch.bool)
    valid[:, 2, 5] = False  # not visible there: no conflict can be declared
    m = symmetry_conflict_mask(flipped, orig, valid, 0.15)
    expect = torch.zeros(1, 8, 8, dtype=torch.bool)
    expect[:, 2:4, 5:7] = True
    expect[:, 2, 5] = False
    assert torch.equal(m, expect)
    # the mirror loss ignores conflicting pixels
    render = torch.zeros(1, 3, 8, 8)
    photo = orig.flip(-1)  # the flipped photo is then `orig`
    assert float(mirror_loss(render, photo, 1.0, m, perceptual=0.0)) < float(
        mirror_loss(render, photo, 1.0, None, perceptual=0.0)
    )
    assert float(mirror_loss(render, photo, 0.0, None)) == 0.0


def test_learning_rate_ramp():
    assert learning_rate_at(0.0, 0.1) == 0.0
    assert abs(learning_rate_at(0.5, 0.1) - 0.1) < 1e-12
    assert learning_rate_at(1.0, 0.1) < 1e-12
    assert 0 < learning_rate_at(0.9, 0.1) < 0.1


# ------------------------------------------------------------------ inversion on a tiny generator


@pytest.fixture(scope="module")
def tiny_G():
    from facelab.gan.triplane import TriplaneConfig, TriplaneGenerator

    torch.manual_seed(0)
    cfg = TriplaneConfig(plane_res=16, plane_channels=4, channel_max=16, render_res=16, n_samples=8,
                         n_importance=4, z_dim=16, w_dim=16, mapping_layers=2)  # fmt: skip
    return TriplaneGenerator(cfg).eval().requires_grad_(False)


def test_an_inversion_lowers_the_loss(tiny_G):
    G = tiny_G
    cam = orbit_like(_cams([0.0]).float(), [30.0])
    with torch.no_grad():
        w = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(3)), cam)
        target = render_views(G, w[:, None].expand(-1, G.num_ws, -1), cam)["image"]
    cfg = SPIConfig(w_steps=6, w_lr=0.05, w_avg_samples=64, perceptual=0.0, tune=False)
    lat = invert_latent(G, target, cam, cfg)
    h = lat.history["reconstruction"]
    assert len(lat.history["mirror"]) == 6, "yaw 30: the mirror term is on"
    assert h[-1] < h[0]
    assert lat.ws.shape == (1, G.num_ws, G.config.w_dim)
    lat_w = invert_latent(
        G, target, cam, SPIConfig(**{**cfg.to_dict(), "space": "w", "w_steps": 2})
    )
    assert torch.allclose(lat_w.ws[:, 0], lat_w.ws[:, -1]), "W: one latent for every layer"
    front = SPIConfig(**{**cfg.to_dict(), "w_steps": 1})
    assert invert_latent(G, target, orbit_like(cam, [0.0]), front).history["mirror"] == []
    # pivotal tuning around another pivot (the mean latent) moves G towards the photo and
    # leaves the original G untouched
    from facelab.methods.spi import mean_latent

    pivot = mean_latent(G, 64)[0][:, None].expand(-1, G.num_ws, -1).clone()
    before = [p.clone() for p in G.parameters()]
    grey = torch.full_like(target, 0.2)  # far from anything the untrained G renders
    Gt, hist, extras = pivotal_tuning(
        G, pivot, grey, cam, SPIConfig(pti_steps=4, pti_lr=3e-3, perceptual=0.0)
    )
    assert hist["reconstruction"][-1] < hist["reconstruction"][0]
    assert len(hist["warp"]) == 4 and len(hist["depth"]) == 4
    assert all(torch.equal(a, b) for a, b in zip(before, G.parameters()))
    assert extras["labels"] and extras["conflict"] is not None


def test_warp_labels_use_the_mirror_only_where_the_input_fails(tiny_G):
    res = 16
    cam = _cams([0.5]).float()
    photo = torch.rand(1, 3, res, res) * 2 - 1
    d_in = _plane_depth(cam.double(), res).float()
    tg = _cams([0.2]).float()
    d_t = _plane_depth(tg.double(), res).float()
    fg = torch.ones(1, res, res, dtype=torch.bool)
    labs = warp_labels(photo, cam, d_in, tg, d_t, fg, SPIConfig())
    lab = labs[0]
    assert not (lab.from_input & lab.from_mirror).any()
    assert torch.equal(lab.valid, lab.from_input | lab.from_mirror)
    assert lab.from_input.float().mean() > 0.8, "a plane seen from nearby is mostly visible"
    no_sym = warp_labels(photo, cam, d_in, tg, d_t, fg, SPIConfig(symmetry=False))[0]
    assert not no_sym.from_mirror.any()


def test_reconstruction_loss_is_mse_without_perceptual():
    a, b = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    assert float(reconstruction_loss(a, b, perceptual=0.0)) == 1.0


def test_lpips_adapter_says_what_is_missing():
    from facelab.errors import AssetMissing
    from facelab.methods.spi.losses import LPIPSDistance

    try:
        import lpips  # noqa: F401
    except ImportError:
        with pytest.raises(AssetMissing, match="lpips"):
            LPIPSDistance()
    else:
        pytest.skip("lpips is installed here")


def test_dlib_feature_distance_on_an_untrained_port():
    from facelab.methods.spi.losses import DlibFeatureDistance
    from facelab.vision.dlib_resnet import DlibFaceResNet

    torch.manual_seed(0)
    d = DlibFeatureDistance(DlibFaceResNet(), size=48)
    a = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.allclose(d(a, a), torch.zeros(2), atol=1e-6)
    assert (d(a, a.flip(-1)) > 0).all()
    with pytest.raises(ValueError):
        DlibFeatureDistance(DlibFaceResNet(), layers=("nope",))


# ------------------------------------------------------------------ CLI round trip


def test_cli_round_trip_tiny(tmp_path, tiny_G):
    """invert3d with a given camera, a tiny checkpoint and 2 + 1 steps writes every file."""
    from facelab.cli import main
    from facelab.gan.checkpoint import save_checkpoint
    from facelab.vision import save_image

    pytest.importorskip("skimage")
    photo = tmp_path / "face.png"
    save_image(torch.rand(1, 3, 20, 20), photo)
    stem = tmp_path / "tiny"
    _save_tiny(tiny_G, stem, save_checkpoint)
    out = tmp_path / "o"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["invert3d", str(photo), "--out", str(out), "--camera", "20,0", "--steps", "2,1",
                     "--views", "-30,0,30",  # a negative first yaw reads as a value
 "--perceptual", "none", "--frames", "4",
                     "--checkpoint", str(stem), "--quiet", "--json"])  # fmt: skip
    assert code == 0
    doc = json.loads(buf.getvalue())
    assert doc["camera"] == {"yaw": 20.0, "pitch": 0.0, "source": "given"}
    assert doc["views"] == [-30.0, 0.0, 30.0]
    for key in ("input", "views", "mesh", "turntable", "report", "result", "view_m30", "depth_p30"):
        assert (out / doc["files"][key].split("/")[-1]).is_file(), key
    assert "<img" in (out / "report.html").read_text()
    assert math.isfinite(doc["losses"]["latent"])


def _save_tiny(G, stem, save_checkpoint):
    """A checkpoint in the shipped format holding the tiny generator (as G_ema)."""
    from facelab.gan.triplane_train import TriplaneTrainConfig

    d = TriplaneTrainConfig().to_dict()
    d["generator"] = G.config.to_dict()
    tensors = {f"G_ema.{k}": v for k, v in G.state_dict().items()}
    save_checkpoint(stem, tensors, {"kind": "triplane-gan", "config": d, "status": "tiny test G"})


# ------------------------------------------------------------------ normals from depth maps


def test_depth_normals_of_a_plane_and_the_angle_between_two_planes():
    from facelab.methods.spi.evaluate import depth_normals, normal_error

    res = 20
    for yaw in (0.0, 0.3, -0.25):
        cam = _cams([yaw])
        n = depth_normals(_plane_depth(cam, res), cam)
        inner = n[0, 1:-1, 1:-1].reshape(-1, 3)
        # the plane z = 0 seen from the front (cameras at z > 0): normal +z everywhere
        torch.testing.assert_close(inner, torch.tensor([[0.0, 0.0, 1.0]], dtype=F64).expand_as(inner),
                                   atol=1e-9, rtol=0)  # fmt: skip
        assert n[0, 0].abs().sum() == 0  # border: no central difference
        for deg in (0.0, 10.0, 25.0):
            tilted = _plane_depth(cam, res, tilt=math.radians(deg))
            err = normal_error(tilted, _plane_depth(cam, res), cam)
            assert err.shape == (1,) and float(err) == pytest.approx(deg, abs=1e-6)
    # the mask: pixels whose 4 neighbours are all inside; an empty mask gives NaN
    cam = _cams([0.1])
    d0, d1 = _plane_depth(cam, res), _plane_depth(cam, res, tilt=math.radians(15))
    m = torch.zeros(1, res, res, dtype=torch.bool)
    m[:, 5:9, 5:9] = True
    assert float(normal_error(d1, d0, cam, m)) == pytest.approx(15.0, abs=1e-6)
    assert math.isnan(float(normal_error(d1, d0, cam, torch.zeros_like(m))))
    with pytest.raises(InvalidInput, match=r"\(B, H, W\)"):
        normal_error(d1[0], d0[0], cam)


def test_normal_error_is_differentiable():
    from facelab.methods.spi.evaluate import normal_error

    cam = _cams([0.2])
    d = _plane_depth(cam, 8, tilt=math.radians(20)).requires_grad_(True)
    normal_error(d, _plane_depth(cam, 8), cam).sum().backward()
    assert d.grad is not None and torch.isfinite(d.grad).all() and d.grad.abs().sum() > 0


def test_side_light_lights_one_half_of_the_face_in_every_view(with_shared_data):
    """WorldFaces' side key light is fixed to the head: the lit half stays lit from -30 to
    +30 degrees, and only the light changes (same depth, same masks)."""
    from facelab.methods.spi.evaluate import WorldFaces

    W = WorldFaces()
    yaws = [-30.0, 0.0, 30.0]
    plain, side = W.render(1000, yaws), W.render(1000, yaws, side_light=True)
    torch.testing.assert_close(side["depth"], plain["depth"])
    assert torch.equal(side["face"], plain["face"])

    def halves(v):
        img, m = (v["image"] + 1) / 2, v["face"].float()
        cols = torch.arange(img.shape[-1], dtype=torch.float32)
        out = []
        for k in range(len(yaws)):
            cx = float((m[k] * cols).sum() / m[k].sum())  # the face's centre column
            left, right = m[k] * (cols < cx), m[k] * (cols >= cx)
            g = img[k].mean(0)
            out.append(
                (float((g * left).sum() / left.sum()), float((g * right).sum() / right.sum()))
            )
        return out

    hs = halves(side)
    contrast = [abs(a - b) / (a + b) for a, b in hs]
    base = [abs(a - b) / (a + b) for a, b in halves(plain)]
    assert min(contrast) > 0.1 and min(c - b for c, b in zip(contrast, base)) > 0
    # the same half is the bright one in every view (the light turns with the head)
    assert len({a > b for a, b in hs}) == 1
