"""Tests of facelab.world: determinism, ground truth vs the rendered pixels, multi-view
geometry, the realism knob and the Lambert-SH special case, caches and files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from facelab.errors import InvalidInput
from facelab.geometry.camera import project
from facelab.geometry.conventions import flip_yz
from facelab.geometry.rotation import axis_angle_to_matrix
from facelab.render.renderer import Renderer
from facelab.render.shading import sh_basis, sh_shading
from facelab.world import (
    ShardDataset,
    WorldConfig,
    WorldDataset,
    WorldRenderer,
    index_seed,
    load_gt,
    render_sample,
    save_sample,
    write_cache,
)
from facelab.world.background import fbm, gaussian_blur, procedural_background
from facelab.world.lighting import (
    environment_values,
    fibonacci_sphere,
    fit_sh,
    key_values,
    rotate_sh,
    sh_of_key,
)
from facelab.world.occlusion import ambient_occlusion, directional_visibility
from facelab.world.sensor import apply_noise, jpeg_roundtrip

SIZE = 64


@pytest.fixture(scope="module")
def model():
    from facelab.models import load

    return load("builtin")


@pytest.fixture(scope="module")
def frontal(model):
    """A near-frontal, effect-free world (geometry tests)."""
    cfg = WorldConfig(
        image_size=96,
        realism=0.0,
        yaw_range=(-5.0, 5.0),
        pitch_range=(-5.0, 5.0),
        roll_range=(0.0, 0.0),
    )
    return WorldRenderer(cfg, model)


# ----------------------------------------------------------------------------- config / seeds


def test_knobs_follow_realism_and_overrides():
    k0 = WorldConfig(realism=0.0).knobs()
    assert k0.is_lambert and k0.background == "none" and not k0.jpeg and not k0.eyes_teeth
    k = WorldConfig(realism=0.5, specular=0.0, background="patches", jpeg_quality=70).knobs()
    assert k.subsurface == 0.5 and k.noise == 0.5 and k.specular == 0.0
    assert k.background == "patches" and k.jpeg and k.jpeg_quality_range == (70.0, 70.0)
    assert not k.is_lambert
    assert WorldConfig(realism=1.0).knobs().jpeg_quality_range == (35.0, 90.0)
    assert not WorldConfig(realism=1.0, jpeg_quality=0).knobs().jpeg


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"realism": 1.5}, "realism"),
        ({"background": "sky"}, "background"),
        ({"jpeg_quality": -1}, "jpeg_quality"),
        ({"yaw_range": (10.0, -10.0)}, "yaw_range"),
        ({"image_size": 4}, "image_size"),
    ],
)
def test_config_validation(kw, match):
    with pytest.raises(InvalidInput, match=match):
        WorldConfig(**kw)


def test_config_dict_roundtrip():
    cfg = WorldConfig(image_size=80, realism=0.3, yaw_range=(-30.0, 30.0))
    d = json.loads(json.dumps(cfg.to_dict()))
    assert WorldConfig.from_dict(d) == cfg
    with pytest.raises(InvalidInput, match="unknown WorldConfig keys"):
        WorldConfig.from_dict({"nope": 1})


def test_index_seed_is_stable_and_independent():
    # A fixed value: SplitMix64 mixing does not depend on the machine or Python's hash salt.
    assert index_seed(0, 0, "scene") == 3400964856525257824
    assert index_seed(12345, 678, "sensor") == 3957111250877993899
    seeds = {
        index_seed(s, i, st) for s in range(3) for i in range(50) for st in ("scene", "sensor")
    }
    assert len(seeds) == 300
    assert all(0 <= s < 2**63 for s in seeds)


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_image_any_order_and_batching(model):
    cfg = WorldConfig(image_size=SIZE, realism=1.0)
    a = WorldDataset(cfg, length=10, seed=7, model=model)
    b = WorldDataset(cfg, length=10, seed=7, model=model)
    x = a[3]
    assert all(torch.equal(x[k], a[3][k]) for k in ("image", "depth", "landmarks2d"))
    batch = b.__getitems__([5, 3, 1])  # another order, batched render
    for key in ("light", "identity", "expression", "rotation", "translation"):
        assert torch.equal(x[key], batch[1][key]), key  # the sampled scene is bit-identical
    # the render is identical up to float rounding (BLAS sums a batch in another order)
    _assert_same_render(x, batch[1])
    other = WorldDataset(cfg, length=10, seed=8, model=model)[3]
    assert (other["image"] - x["image"]).abs().mean() > 0.01
    assert not torch.equal(a[4]["image"], x["image"])


def _assert_same_render(x: dict, y: dict, image_atol: float = 0.0) -> None:
    """Two renders of the same sample, made in different batches: equal up to float rounding.

    Batched matrix products may sum in another order than single ones, so vertex positions
    differ in the last bits; that can flip a pixel exactly on a triangle edge, and JPEG (at
    realism > 0) spreads such a flip over its 8x8 block. Allowed: landmarks within 1e-4 px,
    depth within 1e-4 relative at 99 % of the pixels, and at most 4 % of the pixels (two 8x8 JPEG blocks of a 64 px image) differing by more than one
    8-bit level beyond ``image_atol``, with a mean difference below 1e-3.
    """
    assert torch.allclose(x["landmarks2d"], y["landmarks2d"], atol=1e-4)
    both = (x["depth"] > 0) & (y["depth"] > 0)
    rel = (x["depth"][both] - y["depth"][both]).abs() / x["depth"][both]
    assert float((rel > 1e-4).float().mean()) < 0.01 and float(rel.median()) < 1e-5
    assert float((x["mask_face"] != y["mask_face"]).float().mean()) < 0.01
    d = (x["image"] - y["image"]).abs()
    assert float((d > image_atol + 1.01 / 255).float().mean()) < 0.04  # ~2 JPEG blocks at 64 px
    assert float(d.mean()) < 1e-3 + image_atol


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)


def test_dataloader_with_workers_matches_direct(model):
    cfg = WorldConfig(image_size=48, realism=1.0)
    ds = WorldDataset(cfg, length=4, seed=1)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=2, num_workers=2, worker_init_fn=_one_thread
    )
    got = torch.cat([b["image"] for b in loader])
    want = torch.stack([ds[i]["image"] for i in range(4)])
    assert torch.allclose(got, want, atol=1e-6)


# ----------------------------------------------------------------------------- realism


def test_realism0_is_exactly_the_lambert_sh_render(model):
    cfg = WorldConfig(image_size=SIZE, realism=0.0)
    r = WorldRenderer(cfg, model)
    batch = r.sample([0, 1, 2], seed=3)
    out = r.render(batch)
    P = batch.params
    K = out["K"]
    ref = Renderer(image_size=SIZE).render(
        model.vertices(P),
        model.faces,
        K=K,
        rotation=P.rotation,
        translation=P.translation,
        sh=P.light,
        texture=batch.albedo,
        uvs=model.uvs,
        uv_faces=model.uv_faces,
    )
    assert torch.equal(out["image"], ref.image.clamp(0, 1))
    assert torch.equal(out["mask"], ref.mask[:, 0] > 0)
    # and render_sample of the same explicit parameters gives the same image
    again = render_sample(P, cfg, seed=3, model=model, albedo=batch.albedo)
    assert torch.equal(again["image"], out["image"])


def test_effect_path_reduces_to_lambert_as_effects_vanish(model):
    """The realistic path (own rasterization, packed SH) agrees with the Lambert renderer when
    the effects are scaled towards 0: the gap is continuous at realism 0."""
    base = WorldConfig(image_size=SIZE, realism=0.0)
    tiny = WorldConfig(image_size=SIZE, realism=0.0, specular=1e-6, ambient_occlusion=1e-6)
    a = WorldRenderer(base, model)(list(range(3)), 5)
    b = WorldRenderer(tiny, model)(list(range(3)), 5)
    assert torch.equal(a["mask"], b["mask"])
    assert (a["image"] - b["image"]).abs().max() < 1e-4


def test_domain_gap_grows_with_realism(model):
    idx = list(range(4))
    imgs = {}
    for r in (0.0, 0.3, 0.6, 1.0):
        imgs[r] = WorldRenderer(WorldConfig(image_size=SIZE, realism=r), model)(idx, 11)
    face = imgs[0.0]["mask_face"][:, None]
    gap = [((imgs[r]["image"] - imgs[0.0]["image"]) * face).abs().sum().item() for r in imgs]
    assert gap[0] == 0
    assert gap[1] < gap[2] < gap[3], gap


def test_best_lambert_fit_is_exact_at_realism0_and_worse_with_realism(model):
    """The fitter's image model, given the true geometry and albedo, fits the photo's light by
    least squares (``I_c = rho_c Y(n) L_c``): exact at realism 0, a residual that grows with
    the knob (the part of the photo Lambert-SH cannot explain)."""
    idx = list(range(3))
    batch = WorldRenderer(WorldConfig(image_size=SIZE, realism=1.0), model).sample(idx, 6)
    base = WorldRenderer(WorldConfig(image_size=SIZE, realism=0.0), model)
    frags = base.lambert_render(batch).fragments
    rho, _ = base._albedo_at(batch, frags)
    ref = base.render(batch)
    Y = sh_basis(ref["normals"].reshape(-1, 3)[frags.pix]).double()
    bidx = frags.batch_index
    obs0 = ref["image"].permute(0, 2, 3, 1).reshape(-1, 3)[frags.pix]
    unclipped = ((obs0 > 0) & (obs0 < 1)).all(1)  # clamping to [0, 1] is not Lambert-SH
    residual = []
    for r in (0.0, 0.5, 1.0):
        out = WorldRenderer(WorldConfig(image_size=SIZE, realism=r), model).render(batch)
        obs = out["image"].permute(0, 2, 3, 1).reshape(-1, 3)[frags.pix].double()
        skin = (ref["mask_skin"] & out["mask_skin"]).reshape(-1)[frags.pix] & unclipped
        sq, count = 0.0, 0
        for b in idx:
            sel = skin & (bidx == b)
            for c in range(3):
                A = Y[sel] * rho[sel][:, c : c + 1].double()
                L = torch.linalg.lstsq(A, obs[sel][:, c]).solution
                sq += float(((A @ L - obs[sel][:, c]) ** 2).sum())
                count += int(sel.sum())
        residual.append((sq / count) ** 0.5)
    print("best Lambert-SH light fit residual RMSE at realism 0, 0.5, 1:", residual)
    assert residual[0] < 1e-5, residual
    assert 0.005 < residual[1] < residual[2], residual


def test_albedo_detail_adds_high_frequency_texture(model):
    """``albedo_detail`` puts pores/freckles/stubble into the UV albedo: the median magnitude of
    its high-pass (texture minus a 1-texel Gaussian blur) grows several-fold, the low-pass
    skin colour does not change."""
    from facelab.world.background import gaussian_blur

    stats = {}
    for d in (0.0, 1.0):
        cfg = WorldConfig(image_size=SIZE, realism=0.0, albedo_detail=d, albedo_resolution=256)
        tex = WorldRenderer(cfg, model).sample([0, 1], 3).albedo
        assert tex.shape == (2, 3, 256, 256)
        high = (tex - gaussian_blur(tex, 1.0)).abs().median()
        stats[d] = (float(high), float(gaussian_blur(tex, 8.0).mean()))
    assert stats[1.0][0] > 4 * stats[0.0][0], stats
    assert abs(stats[1.0][1] - stats[0.0][1]) < 0.01, stats


def test_effects_are_physically_sensible(model):
    """Shadows only darken the key light; specular only adds light; AO only darkens."""
    idx = list(range(3))
    base = WorldRenderer(WorldConfig(image_size=SIZE, realism=0.0), model)(idx, 2)
    for knob, sign in (("ambient_occlusion", -1), ("specular", +1)):
        cfg = WorldConfig(image_size=SIZE, realism=0.0, **{knob: 1.0})
        out = WorldRenderer(cfg, model)(idx, 2)
        d = (out["image"] - base["image"])[base["mask"][:, None].expand(-1, 3, -1, -1)]
        assert (sign * d).min() > -1e-5, knob
        assert (sign * d).max() > 1e-3, knob


# ----------------------------------------------------------------------------- ground truth


def test_visible_landmarks_lie_inside_the_face_mask(model):
    ds = WorldDataset(WorldConfig(image_size=SIZE, realism=1.0), length=8, seed=4, model=model)
    inside, total = 0, 0
    for s in ds.__getitems__(list(range(8))):
        m = s["mask_face"].float()[None, None]
        m = torch.nn.functional.max_pool2d(m, 3, 1, 1)[0, 0] > 0  # 1-pixel tolerance
        vis = s["landmarks_visible"]
        uv = s["landmarks2d"][vis].floor().long()
        assert vis.sum() >= 20  # at +-70 deg yaw at least the near half is visible
        inside += int(m[uv[:, 1], uv[:, 0]].sum())
        total += int(vis.sum())
    assert inside == total


def test_profile_view_hides_far_side_landmarks(model):
    r = WorldRenderer(
        WorldConfig(image_size=SIZE, realism=0.0, yaw_range=(70.0, 70.0), pitch_range=(0.0, 0.0)),
        model,
    )
    out = r([0], 0)
    vis = out["landmarks_visible"][0]
    jaw = vis[:17]
    assert 0 < int(jaw.sum()) < 17  # one side of the jaw contour is hidden
    assert not bool(vis.all())


def test_nose_tip_is_where_the_depth_is_nearest(frontal):
    out = frontal(list(range(4)), 0)
    for b in range(4):
        d = torch.where(out["mask"][b], out["depth"][b], torch.full_like(out["depth"][b], 1e9))
        i = int(d.argmin())
        pix = torch.tensor([i % 96 + 0.5, i // 96 + 0.5])
        nose = out["landmarks2d"][b, 30]
        face_px = float(out["landmarks2d"][b, 16, 0] - out["landmarks2d"][b, 0, 0])
        assert (pix - nose).norm() < 0.05 * face_px, (b, pix, nose)


def test_depth_normals_and_vertices_agree(frontal):
    out = frontal([1], 0)
    K = out["K"][0]
    lm3 = out["landmarks3d"][0]
    assert torch.allclose(project(lm3[None], K)[0], out["landmarks2d"][0], atol=1e-4)
    # normals are unit vectors facing the camera where the face is visible
    n = out["normals"][0][out["mask"][0]]
    assert torch.allclose(n.norm(dim=-1), torch.ones(n.shape[0]), atol=1e-4)
    assert (n[:, 2] < 0).float().mean() > 0.95
    # vertices: the pose formula
    P_rot, P_t = out["rotation"][0], out["translation"][0]
    R = axis_angle_to_matrix(P_rot) @ flip_yz(P_rot)
    vm = (out["vertices"][0] - P_t) @ R  # back to model space: R^T (x - t)
    c2w = out["cam2world"][0]
    vm2 = out["vertices"][0] @ c2w[:3, :3].T + c2w[:3, 3]
    assert torch.allclose(vm, vm2, atol=1e-4)
    # the camera centre (origin) sits in front of the face: +z in model space
    assert c2w[2, 3] > vm[:, 2].max()


# ----------------------------------------------------------------------------- multi-view


def test_multiview_depth_warp_is_consistent(model):
    cfg = WorldConfig(image_size=96, realism=0.0)
    r = WorldRenderer(cfg, model)
    out = r.render(r.sample_views(2, seed=5, views=2, yaws=[-25.0, 25.0]))
    assert torch.equal(out["identity"][0], out["identity"][1])
    assert torch.equal(out["expression"][0], out["expression"][1])
    H = W = 96
    M = [axis_angle_to_matrix(out["rotation"][k]) @ flip_yz(out["rotation"][k]) for k in range(2)]
    t = out["translation"]
    K = out["K"]
    # every face pixel of view 0 -> 3D (depth) -> model space -> view 1
    m0 = out["mask_face"][0]
    ii, jj = torch.nonzero(m0, as_tuple=True)
    z0 = out["depth"][0][ii, jj]
    u = (jj.float() + 0.5 - K[0, 0, 2]) / K[0, 0, 0]
    v = (ii.float() + 0.5 - K[0, 1, 2]) / K[0, 1, 1]
    x0 = torch.stack([u * z0, v * z0, z0], -1)
    xm = (x0 - t[0]) @ M[0]  # M^T (x - t), rows
    x1 = xm @ M[1].T + t[1]
    p1 = project(x1[None], K[1])[0]
    c = p1[:, 0].floor().long().clamp(0, W - 1)
    rr = p1[:, 1].floor().long().clamp(0, H - 1)
    d1 = out["depth"][1][rr, c]
    ok = out["mask"][1][rr, c] & ((d1 - x1[:, 2]).abs() < 0.02 * x1[:, 2])
    assert ok.float().mean() > 0.75  # the rest is hidden in view 1 (the nose side)
    # the landmark vertices: warp their view-0 projection and compare with view 1's
    lv = out["landmarks_visible"].all(0)
    assert lv.sum() > 20
    p0 = out["landmarks2d"][0][lv]
    zz = out["landmarks3d"][0][lv][:, 2]
    x0 = torch.cat([(p0 - K[0, :2, 2]) / K[0, 0, 0] * zz[:, None], zz[:, None]], -1)
    x1 = ((x0 - t[0]) @ M[0]) @ M[1].T + t[1]
    assert torch.allclose(project(x1[None], K[1])[0], out["landmarks2d"][1][lv], atol=1e-2)


def test_multiview_light_is_fixed_to_the_head(model):
    cfg = WorldConfig(image_size=SIZE, realism=1.0)
    r = WorldRenderer(cfg, model)
    b = r.sample_views(0, seed=1, views=3)
    M = [
        axis_angle_to_matrix(b.params.rotation[k]) @ flip_yz(b.params.rotation[k]) for k in range(3)
    ]
    nm = fibonacci_sphere(50, torch.float32)  # model-space normals
    shade = [sh_shading((nm @ M[k].T)[None], b.params.light[k : k + 1])[0] for k in range(3)]
    assert torch.allclose(shade[0], shade[1], atol=2e-3)
    assert torch.allclose(shade[0], shade[2], atol=2e-3)
    key_m = [M[k].T @ b.key_dir[k] for k in range(3)]
    assert torch.allclose(key_m[0], key_m[2], atol=1e-5)


# ----------------------------------------------------------------------------- files / caches


def test_shard_cache_roundtrip(tmp_path, model):
    ds = WorldDataset(WorldConfig(image_size=32, realism=0.5), length=5, seed=2, model=model)
    index = write_cache(ds, tmp_path, shard_size=2, batch_size=3, progress=False)
    meta = json.loads(index.read_text())
    assert meta["length"] == 5 and len(meta["shards"]) == 3
    cache = ShardDataset(tmp_path)
    assert len(cache) == 5
    for i in (0, 3, 4):
        a, b = ds[i], cache[i]
        _assert_same_render(a, b, image_atol=0.5 / 255 + 1e-6)  # 8-bit PNG in the shard
    # a second call finds the complete cache and renders nothing
    mtime = (tmp_path / "shard_00000.npz").stat().st_mtime_ns
    write_cache(ds, tmp_path, shard_size=2, progress=False)
    assert (tmp_path / "shard_00000.npz").stat().st_mtime_ns == mtime
    with pytest.raises(IndexError):
        cache[5]
    assert len(ds.cache(tmp_path, shard_size=2, progress=False)) == 5
    with pytest.raises(InvalidInput, match="not a world cache"):
        ShardDataset(tmp_path / "nothing")


def test_save_sample_and_load_gt(tmp_path, model):
    cfg = WorldConfig(image_size=SIZE, realism=1.0)
    s = WorldDataset(cfg, length=2, seed=9, model=model)[1]
    save_sample(s, tmp_path, cfg, 9)
    gt = load_gt(tmp_path)
    assert gt["format"] == "facelab.world.gt/1" and gt["index"] == 1 and gt["seed"] == 9
    v = gt["views"][0]
    assert np.allclose(v["landmarks2d"], s["landmarks2d"].numpy(), atol=1e-4)
    assert v["landmarks_visible"] == s["landmarks_visible"].tolist()
    m = s["mask"].numpy()
    rng = v["depth_encoding"]["far"] - v["depth_encoding"]["near"]
    assert np.abs(v["depth"][m] - s["depth"].numpy()[m]).max() <= rng / 65534 + 1e-4
    assert (v["depth"][~m] == 0).all()
    assert np.array_equal(v["mask_face"], s["mask_face"].numpy())
    assert (
        np.abs(v["image"] / 255.0 - s["image"].permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6
    )
    assert np.array(v["camera"]["K"]).shape == (3, 3)


def test_cli_world_sample(tmp_path):
    from facelab.cli import main

    assert (
        main(["world", "sample", "--seed", "3", "--size", "48", "--out", str(tmp_path / "a")]) == 0
    )
    gt = json.loads((tmp_path / "a" / "gt.json").read_text())
    assert len(gt["views"]) == 1 and (tmp_path / "a" / "image.png").is_file()
    assert gt["albedo_texture"] == "albedo.png" and (tmp_path / "a" / "albedo.png").is_file()
    args = [
        "world",
        "sample",
        "--seed",
        "3",
        "--size",
        "48",
        "--views",
        "3",
        "--out",
        str(tmp_path / "b"),
    ]
    assert main(args) == 0
    gt = json.loads((tmp_path / "b" / "gt.json").read_text())
    assert len(gt["views"]) == 3 and (tmp_path / "b" / "depth_2.png").is_file()
    # same seed -> same image file content
    main(["world", "sample", "--seed", "3", "--size", "48", "--out", str(tmp_path / "c")])
    assert (tmp_path / "a" / "image.png").read_bytes() == (
        tmp_path / "c" / "image.png"
    ).read_bytes()
    assert (
        main(["world", "sample", "--size", "48", "--count", "0", "--out", str(tmp_path / "d")]) == 1
    )


# ----------------------------------------------------------------------------- building blocks


def test_sh_fit_is_exact_for_quadratic_environments_and_rotations():
    g = torch.Generator().manual_seed(0)
    n = fibonacci_sphere(300)
    amb = torch.rand(2, 3, generator=g, dtype=torch.float64)
    d1 = torch.nn.functional.normalize(torch.randn(2, 3, generator=g, dtype=torch.float64), dim=-1)
    d2 = torch.nn.functional.normalize(torch.randn(2, 3, generator=g, dtype=torch.float64), dim=-1)
    s = torch.tensor([0.4, -0.2], dtype=torch.float64)
    vals = environment_values(n.expand(2, -1, -1), amb, d1, s, d2, s.flip(0))
    L = fit_sh(vals, sh_basis, n)
    assert torch.allclose(sh_basis(n) @ L, vals, atol=1e-10)
    # rotate: E'(n) = E(R^T n)
    R = axis_angle_to_matrix(torch.tensor([[0.3, -1.1, 0.4]], dtype=torch.float64)).expand(2, 3, 3)
    L2 = rotate_sh(L, R, sh_basis)
    m = fibonacci_sphere(77)
    assert torch.allclose(sh_basis(m) @ L2, sh_basis(m @ R[0]) @ L, atol=1e-10)
    # a directional light's order-2 fit keeps most of it (the rest is the world's gap)
    ld = torch.tensor([[0.0, 0.0, -1.0]], dtype=torch.float64)
    Lk = sh_of_key(ld, torch.ones(1, 3, dtype=torch.float64), sh_basis)
    e = key_values(n[None], ld, torch.ones(1, 3, dtype=torch.float64))
    rel = ((sh_basis(n) @ Lk[0] - e[0]).norm() / e[0].norm()).item()
    assert 0.01 < rel < 0.2


def test_shadow_map_and_ambient_occlusion():
    from facelab.render.shapes import ico_sphere

    v, f = ico_sphere(3, dtype=torch.float64)
    ao = ambient_occlusion(v, f, n_dirs=16, size=64)
    assert ao.min() > 0.97  # a convex body occludes nothing
    # a small sphere above a big one shadows its top for a light from +y
    v2 = torch.cat([v, 0.5 * v + torch.tensor([0.0, 2.0, 0.0], dtype=torch.float64)])
    f2 = torch.cat([f, f + v.shape[0]])
    vis = directional_visibility(
        v2[None], f2, torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
    )[0]
    top = v[:, 1] > 0.95
    lit_side = (v[:, 1] > 0.2) & (v[:, 1] < 0.5) & (v[:, 0].abs() > 0.8)
    assert vis[: v.shape[0]][top].max() == 0
    assert vis[: v.shape[0]][lit_side].min() == 1


def test_sub_knobs_switch_effects_off_at_full_realism(model):
    """realism=1 with every sub-knob at 0/off is the Lambert render again."""
    off = {
        "specular": 0.0, "subsurface": 0.0, "ambient_occlusion": 0.0, "shadows": 0.0,
        "background": "none", "noise": 0.0, "blur": 0.0, "jpeg_quality": 0, "eyes_teeth": False,
    }  # fmt: skip
    cfg = WorldConfig(image_size=SIZE, realism=1.0, **off)
    assert cfg.knobs().is_lambert
    a = WorldRenderer(cfg, model)([0, 1], 4)
    b = WorldRenderer(WorldConfig(image_size=SIZE, realism=0.0), model)([0, 1], 4)
    assert torch.equal(a["image"], b["image"])
    # the background alone: the face is unchanged, the rest is a texture
    bg = WorldRenderer(
        WorldConfig(image_size=SIZE, realism=0.0, background="patches", background_mix=1.0), model
    )
    c = bg([0, 1], 4)
    m = b["mask"][:, None].expand(-1, 3, -1, -1)
    assert torch.equal(c["image"][m], b["image"][m])
    assert c["image"][~m].std() > 0.02 and b["image"][~m].abs().max() == 0


def test_background_kinds():
    from facelab.world.background import PatchBank, sample_background

    g = torch.Generator().manual_seed(1)
    assert sample_background(32, g, "none") is None
    for kind in ("procedural", "patches", "mixed"):
        img = sample_background((24, 40), g, kind, PatchBank())
        assert img.shape == (3, 24, 40) and 0 <= img.min() and img.max() <= 1
    with pytest.raises(InvalidInput, match="unknown background"):
        sample_background(32, g, "sky")
    with pytest.raises(InvalidInput, match="unknown patch images"):
        PatchBank(("astronaut",))


def test_backgrounds_and_sensor():
    g = torch.Generator().manual_seed(0)
    bg = procedural_background(40, g)
    assert bg.shape == (3, 40, 40) and bg.min() >= 0 and bg.max() <= 1 and bg.std() > 0.01
    n = fbm(16, 16, g)
    assert math.isclose(float(n.min()), 0.0, abs_tol=1e-6) and math.isclose(
        float(n.max()), 1.0, abs_tol=1e-6
    )
    flat = torch.full((2, 3, 20, 20), 0.3)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([0.0, 2.0])), flat, atol=1e-6)
    img = torch.rand(1, 3, 20, 20, generator=g)
    assert torch.equal(gaussian_blur(img, 0.0), img)
    zero = torch.zeros(1)
    noise = torch.randn(1, 3, 20, 20, generator=g)
    assert torch.equal(apply_noise(img, zero, zero, noise), img.clamp(0, 1))
    noisy = apply_noise(torch.full_like(img, 0.5), zero, torch.tensor([0.05]), noise)
    assert abs(float((noisy - 0.5).std()) - 0.05) < 0.01
    smooth = gaussian_blur(torch.rand(3, 32, 32, generator=g), 2.0)
    q100 = jpeg_roundtrip(smooth, 100)
    q10 = jpeg_roundtrip(smooth, 10)
    assert (q100 - smooth).abs().mean() < (q10 - smooth).abs().mean()


# ----------------------------------------------------------------------------- real models


@pytest.mark.slow
def test_ict_face_eyes_and_mouth_are_painted_into_the_holes(with_shared_data):
    from facelab.models import load

    m = load("ict-face")
    kw = {
        "image_size": 96,
        "yaw_range": (0.0, 0.0),
        "pitch_range": (0.0, 0.0),
        "roll_range": (0.0, 0.0),
    }
    r0 = WorldRenderer(WorldConfig(realism=0.0, **kw), m)
    r1 = WorldRenderer(WorldConfig(realism=0.0, eyes_teeth=True, **kw), m)
    b = r0.sample([0], 1)
    a0, a1 = r0.render(b), r1.render(b)
    # the eye openings are holes in the face mesh: background at realism 0, painted eyes after
    gained = a1["mask"] & ~a0["mask"]
    assert gained.sum() > 10
    assert not (a1["mask_skin"] & gained).any()
    assert torch.equal(a1["mask_face"] & gained, gained)
    eye = a1["landmarks2d"][0, 36:48]
    ii, jj = torch.nonzero(gained[0], as_tuple=True)
    near = torch.cdist(torch.stack([jj, ii], 1).float() + 0.5, eye).min(1).values
    assert (near < 6).float().mean() > 0.8  # the new pixels are at the eyes (or mouth)


@pytest.mark.slow
def test_ict_full_model_renders_eyeballs_and_teeth(with_shared_data):
    from facelab.models import load

    m = load("ict")
    cfg = WorldConfig(
        image_size=96, realism=1.0, noise=0.0, blur=0.0, jpeg_quality=None, background="none"
    )
    r = WorldRenderer(cfg, m)
    assert "eye_extras" not in r.model.regions  # the transparent overlays are dropped
    out = r([0], 2)
    from facelab.world.render import PARTS

    frags_part = r.part_faces
    assert int((frags_part == PARTS["eyeballs"]).sum()) > 0
    lm = out["landmarks2d"][0]
    assert out["landmarks_visible"][0, 36:48].any()
    # the pupil is dark: the darkest pixel near each visible eye is much darker than the skin
    img = out["image"][0]
    skin = img[:, out["mask_skin"][0]].mean()
    for eye in (lm[36:42], lm[42:48]):
        c = eye.mean(0).round().long()
        patch = img[:, c[1] - 3 : c[1] + 4, c[0] - 3 : c[0] + 4]
        assert patch.mean(0).min() < 0.5 * skin


def test_gallery_rows_are_realism_levels_of_the_same_samples():
    from facelab.world import gallery, ground_truth_figure

    img = np.asarray(gallery("builtin", size=32, cols=2, seed=0, levels=(0.0, 1.0)))
    assert img.shape == (2 * 34, 64 + 2 * 34, 3)
    tile = lambda r, c: img[r * 34 : r * 34 + 32, 64 + c * 34 : 64 + c * 34 + 32].astype(float)  # noqa: E731
    # realism 0 has a black background; realism 1 a textured one, so the rows differ
    assert tile(0, 0)[0, 0].sum() == 0 and tile(1, 0)[0, 0].sum() > 0
    assert np.abs(tile(0, 0) - tile(1, 0)).mean() > 5
    assert np.abs(tile(0, 0) - tile(0, 1)).mean() > 5  # two different samples
    gt = np.asarray(ground_truth_figure("builtin", size=32, n=2, seed=0))
    assert gt.shape == (14 + 2 * 34, 5 * 34, 3)  # a 14-px row of column labels on top
    assert gt[:14].min() < 100 and gt[:14, :, 0].mean() > 200  # dark label text on white
