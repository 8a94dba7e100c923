"""facelab.gan.triplane (+ triplane_train, triplane_data): tri-plane lookup, the 3D generator,
mirroring with the mirrored camera, density regulariser, resumable training."""

from __future__ import annotations

import copy

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.gan.checkpoint import save_checkpoint
from facelab.gan.triplane import (
    TriplaneConfig,
    TriplaneGenerator,
    density_tv_loss,
    make_discriminator,
    sample_triplanes,
)
from facelab.gan.triplane_train import (
    CONFIGS,
    export_generator,
    load_triplane_generator,
    real_batch,
    seed_run,
    train,
)
from facelab.geometry.eg3d import (
    camera_params,
    mirror_cam2world,
    normalized_intrinsics,
    orbit_cam2world,
    split_camera_params,
)

D64 = torch.float64
TINY = dict(CONFIGS["tiny"].generator)


def _linear_planes(P: int = 16, dtype=D64) -> torch.Tensor:
    """Plane k holds, in channel 0, its first coordinate, in channel 1 its second (at texel
    centres, box [-0.5, 0.5]), so bilinear lookup reproduces them exactly inside."""
    c = (torch.arange(P, dtype=dtype) + 0.5) / P - 0.5
    first = c.view(1, P).expand(P, P)  # varies along width
    second = c.view(P, 1).expand(P, P)  # along height
    plane = torch.stack([first, second], 0)
    return plane.expand(1, 3, 2, P, P).clone()


def test_triplane_lookup_is_the_mean_of_three_projections():
    planes = _linear_planes()
    g = torch.Generator().manual_seed(0)
    p = (torch.rand(1, 50, 3, generator=g, dtype=D64) - 0.5) * 0.8  # inside the texel centres
    f = sample_triplanes(planes, p)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    torch.testing.assert_close(f[..., 0], (x + x + y) / 3)  # planes (x,y), (x,z), (y,z)
    torch.testing.assert_close(f[..., 1], (y + z + z) / 3)
    # box_warp scales the box: the same point in a box twice as large reads half the value
    f2 = sample_triplanes(planes, p, box_warp=2.0)
    torch.testing.assert_close(f2[..., 0], (x + x + y) / 6)
    with pytest.raises(InvalidInput):
        sample_triplanes(planes[:, :2], p)


def _cams(B: int, dtype=torch.float32) -> torch.Tensor:
    yaw = torch.linspace(-0.5, 0.5, B, dtype=dtype)
    c2w = orbit_cam2world(yaw, torch.zeros(B, dtype=dtype))
    return camera_params(c2w, normalized_intrinsics(batch=B, dtype=dtype))


def test_generator_outputs_and_depth_range():
    torch.manual_seed(0)
    G = TriplaneGenerator(TriplaneConfig(**TINY)).eval()
    c = _cams(3)
    out = G(torch.randn(3, G.z_dim), c, noise_mode="const")
    R = G.config.render_res
    assert out["image"].shape == (3, 3, R, R) and out["depth"].shape == (3, 1, R, R)
    assert out["planes"].shape == (
        3,
        3,
        G.config.plane_channels,
        G.config.plane_res,
        G.config.plane_res,
    )
    assert out["image"].min() >= -1.01 and out["image"].max() <= 1.01
    # camera z of anything rendered lies inside the sampled range (times cos of the ray angle)
    assert out["depth"].min() > 2.0 and out["depth"].max() <= G.config.ray_end + 1e-4
    assert ((out["opacity"] >= 0) & (out["opacity"] <= 1)).all()
    # eval mode is deterministic (no stratified jitter), and D takes the image with its camera
    again = G(
        torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(1)), c, noise_mode="const"
    )
    assert again["image"].shape == out["image"].shape
    D = make_discriminator(G.config, channel_max=16, channel_base=64)
    assert D(out["image"], c).shape == (3,)
    with pytest.raises(InvalidInput):
        G(torch.randn(3, G.z_dim), c[:, :24])


def test_generator_runs_in_float64_and_is_differentiable():
    torch.manual_seed(0)
    G = TriplaneGenerator(TriplaneConfig(**TINY)).double()
    c = _cams(2, D64)
    out = G(torch.randn(2, G.z_dim, dtype=D64), c)
    assert out["image"].dtype == D64 and out["depth"].dtype == D64
    out["image"].mean().backward()
    assert G.decoder.fc0.weight.grad is not None and G.decoder.fc0.weight.grad.abs().sum() > 0
    assert G.backbone.const.grad is not None


def test_super_resolution_is_bilinear_at_init():
    torch.manual_seed(0)
    cfg = TriplaneConfig(**{**TINY, "features": 6, "sr_res": 2 * TINY["render_res"]})
    G = TriplaneGenerator(cfg).eval()
    out = G(torch.randn(2, G.z_dim), _cams(2), noise_mode="const")
    assert out["image"].shape[-1] == 2 * out["image_raw"].shape[-1]
    up = torch.nn.functional.interpolate(
        out["image_raw"], scale_factor=2, mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(out["image"], up)
    with pytest.raises(InvalidInput):
        TriplaneConfig(sr_res=48)


def test_density_regulariser_is_zero_for_constant_planes_and_positive_otherwise():
    torch.manual_seed(0)
    G = TriplaneGenerator(TriplaneConfig(**TINY))
    C, P = G.config.plane_channels, G.config.plane_res
    flat = torch.zeros(2, 3, C, P, P)  # zeros: constant even in grid_sample's zero padding
    assert density_tv_loss(G, flat, n_points=200).item() == pytest.approx(0.0, abs=1e-7)
    rough = torch.randn(2, 3, C, P, P, generator=torch.Generator().manual_seed(0)) * 5
    assert density_tv_loss(G, rough, n_points=200).item() > 1e-4


class _Views:
    """A stand-in for TriplaneViews: 4 asymmetric images with orbit cameras."""

    def __init__(self) -> None:
        self.image = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
        self.image[:, 0, :, :3] = 255  # red stripe on the left
        self.c2w = orbit_cam2world(torch.tensor([0.3, -0.2, 0.0, 0.5]), torch.zeros(4))
        self.K_norm = normalized_intrinsics()[0]

    def __len__(self) -> int:
        return 4


def test_real_batch_mirrors_image_and_camera_together():
    v = _Views()
    idx = torch.arange(4)
    mir = torch.tensor([True, False, True, False])
    img, c = real_batch(v, idx, 8, mir)
    assert img.shape == (4, 3, 8, 8)
    assert (img[0, 0, :, -3:] == 1).all() and (img[0, 0, :, :3] == -1).all()  # flipped
    assert (img[1, 0, :, :3] == 1).all()  # not flipped
    c2w, K = split_camera_params(c)
    torch.testing.assert_close(c2w[0], mirror_cam2world(v.c2w[:1])[0])
    torch.testing.assert_close(c2w[1], v.c2w[1])
    # the mirrored camera's yaw is the negated yaw: its centre's x changes sign
    assert c2w[0, 0, 3].item() == pytest.approx(-v.c2w[0, 0, 3].item())


def test_training_resumes_exactly(tmp_path):
    cfg = copy.deepcopy(CONFIGS["tiny"])
    views = tmp_path / "views"
    cfg.steps = 2
    train(cfg, tmp_path / "a", views, progress=False)
    cfg.steps = 4
    train(cfg, tmp_path / "a", views, resume=True, progress=False)
    train(cfg, tmp_path / "b", views, resume=False, progress=False)
    Ga, meta = load_triplane_generator(tmp_path / "a" / "last")
    Gb, _ = load_triplane_generator(tmp_path / "b" / "last")
    assert meta["step"] == 4 and meta["steps_planned"] == 4
    for (k, a), (_, b) in zip(Ga.state_dict().items(), Gb.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    # the generator learned something different from its initialisation
    G0 = TriplaneGenerator(cfg.gen_config())
    assert not torch.equal(G0.decoder.fc0.weight, Ga.decoder.fc0.weight)
    # an exported checkpoint says how far it got, and a new run continues from it
    export_generator(tmp_path / "a", tmp_path / "ship" / "tiny")
    _, meta_ship = load_triplane_generator(tmp_path / "ship" / "tiny")
    assert meta_ship["status"].startswith("4 of 4 planned steps (complete")
    assert (tmp_path / "ship" / "tiny.log.jsonl").read_text().count("\n") == 4
    cfg.steps = 6
    train(cfg, tmp_path / "planned6", views, progress=False)
    assert seed_run(tmp_path / "ship" / "tiny", tmp_path / "c")
    assert not seed_run(tmp_path / "ship" / "tiny", tmp_path / "c")  # never overwrites a run
    train(cfg, tmp_path / "c", views, resume=True, progress=False)
    Gc, meta_c = load_triplane_generator(tmp_path / "c" / "last")
    G6, _ = load_triplane_generator(tmp_path / "planned6" / "last")
    assert meta_c["step"] == 6
    for (k, a), (_, b) in zip(Gc.state_dict().items(), G6.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)


def test_loading_a_non_triplane_checkpoint_fails_clearly(tmp_path):
    save_checkpoint(tmp_path / "x", {"a": torch.zeros(1)}, {"kind": "texture-gan"})
    with pytest.raises(InvalidInput, match="tri-plane"):
        load_triplane_generator(tmp_path / "x")


def test_world_views_sit_in_the_eg3d_frame(tmp_path):
    from facelab.gan.triplane_data import TriplaneViews, ViewsConfig, build_views
    from facelab.geometry.eg3d import EG3D_RAY_END, EG3D_RAY_START, pixel_intrinsics
    from facelab.render.volume import camera_rays

    cfg = ViewsConfig(model="builtin", realism=0.0, image_size=32, length=4, chunk=4)
    v = TriplaneViews(build_views(tmp_path, cfg, progress=False))
    assert len(v) == 4 and v.image.dtype == torch.uint8
    # the look-at point projects to the image centre: the optical axis passes through it
    axis = v.c2w[:, :3, 2]
    to_lookat = torch.tensor([0.0, 0.0, 0.2]) - v.c2w[:, :3, 3]
    cos = (torch.nn.functional.normalize(to_lookat, dim=-1) * axis).sum(-1)
    torch.testing.assert_close(cos, torch.ones(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(to_lookat.norm(dim=-1), torch.full((4,), 2.5), atol=1e-4, rtol=0)
    # every surface point lies inside the box and between EG3D's ray bounds
    rays = camera_rays(v.c2w, pixel_intrinsics(v.K_norm[None], 32), 32)
    t = v.depth.reshape(4, -1) / rays.z_per_t
    pts = (rays.origins + t[..., None] * rays.directions)[v.mask.reshape(4, -1)]
    assert pts.shape[0] > 100
    assert (pts.abs() < 0.5).all()
    assert (t[v.mask.reshape(4, -1)] > EG3D_RAY_START).all() and (
        t[v.mask.reshape(4, -1)] < EG3D_RAY_END
    ).all()


def test_extract_mesh_and_turntable():
    from facelab.gan.triplane_eval import extract_mesh, turntable

    torch.manual_seed(0)
    G = TriplaneGenerator(TriplaneConfig(**TINY)).eval()
    z = torch.randn(1, G.z_dim)
    verts, faces, level = extract_mesh(G, z, resolution=12)
    assert verts.shape[1] == 3 and faces.shape[1] == 3 and len(faces) > 0
    assert (verts.abs() <= 0.5).all() and int(faces.max()) < len(verts)
    out = turntable(G, z, [-0.3, 0.0, 0.3])
    assert out["image"].shape[0] == 3 and out["cameras"].shape == (3, 25)
    # one face: the conditioning camera is shared, so the frontal view does not depend on
    # which other views are rendered with it
    single = turntable(G, z, [0.0])
    torch.testing.assert_close(single["image"][0], out["image"][1], atol=1e-5, rtol=0)
