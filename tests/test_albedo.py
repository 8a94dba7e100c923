"""Tests of facelab.models.albedo: skin colour model, UV layout, generator, PCA, vertex colours."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from facelab.errors import InvalidInput, ModelFormatError
from facelab.geometry.raster import triangle_coverage
from facelab.models.albedo import (
    REGION_NAMES,
    AlbedoConfig,
    AlbedoParams,
    AlbedoPCA,
    ProceduralAlbedo,
    UVLayout,
    build_albedo_pca,
    hair_reflectance,
    linear_to_srgb,
    skin_reflectance,
    srgb_to_linear,
    uv_coverage,
    uv_layout_from_mesh,
    uv_layout_from_model,
)
from facelab.render import sample_vertex_albedo

ICT_LANDMARKS = [
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088,
    3443, 268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140,
    2075, 1147, 4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732,
    5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216,
    6207, 6470, 5517, 5966,
]  # fmt: skip

S = 64


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def layout() -> UVLayout:
    return UVLayout.canonical(S)


@pytest.fixture(scope="module")
def batch(layout):
    gen = ProceduralAlbedo(layout)
    img, params = gen.sample(8, torch.Generator().manual_seed(3))
    return gen, img, params


def _grid_mesh(n: int = 33, lo=(0.1, 0.1), hi=(0.9, 0.95)):
    """A planar grid whose UVs are its (x, y): vertices, faces (F, 3), uvs (V, 2)."""
    xs = torch.linspace(lo[0], hi[0], n, dtype=torch.float64)
    ys = torch.linspace(lo[1], hi[1], n, dtype=torch.float64)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    uv = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = torch.cat(
        [torch.stack([a, b, d], -1).reshape(-1, 3), torch.stack([a, d, c], -1).reshape(-1, 3)]
    )
    return uv, faces


# ---------------------------------------------------------------------------- skin model


def test_more_melanin_is_darker_in_every_channel():
    cm = torch.logspace(np.log10(0.002), np.log10(0.5), 12, dtype=torch.float64)
    rgb = skin_reflectance(cm, 0.015)
    assert rgb.shape == (12, 3)
    assert bool((rgb[1:] < rgb[:-1]).all())


def test_more_haemoglobin_is_redder():
    ch = torch.logspace(np.log10(0.002), np.log10(0.1), 10, dtype=torch.float64)  # skin range
    for cm in (0.005, 0.05, 0.3):
        rgb = skin_reflectance(cm, ch)
        ratio = rgb[:, 0] / rgb[:, 1]
        assert bool((ratio[1:] > ratio[:-1]).all())
        assert bool((rgb[1:, 1] < rgb[:-1, 1]).all())  # blood absorbs green


def test_skin_ranges_are_plausible():
    cm = torch.rand(2000, dtype=torch.float64) * 0.9 + 1e-4
    ch = torch.rand(2000, dtype=torch.float64) * 0.4 + 1e-4
    rgb = skin_reflectance(
        cm, ch, torch.rand(2000, dtype=torch.float64), torch.rand(2000, dtype=torch.float64)
    )
    assert rgb.min() >= 0 and rgb.max() <= 1
    light = skin_reflectance(0.003, 0.01)
    dark = skin_reflectance(0.45, 0.01)
    # light skin ~ (0.6, 0.45, 0.35) linear; very dark ~ (0.05, 0.03, 0.02); always R > G > B
    assert 0.45 < light[0] < 0.75 and 0.25 < light[2] < 0.5
    assert 0.02 < dark[0] < 0.1 and dark[2] < 0.04
    for c in (light, dark):
        assert c[0] > c[1] > c[2]
    # pheomelanin is yellower/redder than eumelanin at equal concentration: lower B/R
    eu, ph = skin_reflectance(0.1, 0.01, 1.0), skin_reflectance(0.1, 0.01, 0.0)
    assert ph[2] / ph[0] < eu[2] / eu[0]


def test_skin_follows_dtype_and_perfect_white():
    out = skin_reflectance(torch.tensor([0.01], dtype=torch.float32), 0.01)
    assert out.dtype == torch.float32


def test_srgb_round_trip_and_known_values():
    x = torch.linspace(0, 1, 101, dtype=torch.float64)
    torch.testing.assert_close(srgb_to_linear(linear_to_srgb(x)), x, atol=1e-9, rtol=0)
    assert abs(float(linear_to_srgb(torch.tensor(0.214041140))) - 0.5) < 1e-6


def test_hair_reflectance_darker_with_melanin():
    h = hair_reflectance(torch.tensor([0.5, 2.0, 8.0]))
    assert h.shape == (3, 3)
    assert bool((h[1:] < h[:-1]).all())


# ---------------------------------------------------------------------------- layout


def test_coverage_of_one_triangle_is_exact():
    uvs = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2]])
    cov = uv_coverage(uvs, tri, 8)
    # texel (i, j) has u = (j+.5)/8, v = 1-(i+.5)/8; inside iff u + v <= 1 iff j <= i: the
    # closed-triangle edge rule keeps the centres on the hypotenuse (j == i) ...
    i, j = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    torch.testing.assert_close(cov, (j <= i).to(cov.dtype))
    torch.testing.assert_close(uv_coverage(uvs, tri.flip(1), 8), cov)  # orientation
    # ... which the rasterizer's top-left rule alone gives away (the hypotenuse is a right
    # edge here): the rule is the canonical one plus exactly those edge centres
    pts = torch.stack([uvs[:, 0] * 8, (1 - uvs[:, 1]) * 8], -1)
    torch.testing.assert_close(triangle_coverage(pts, tri, 8), j < i)
    square = torch.tensor([[0, 1, 3], [0, 3, 2]])
    uvs4 = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    assert float(uv_coverage(uvs4, square, 16).sum()) == 256
    # a chart with a boundary through texel centres: every centre on its outline is covered
    small = torch.tensor([[0.5, 0.5], [6.5, 0.5], [0.5, 6.5]], dtype=torch.float64) / 8
    c = uv_coverage(small, tri, 8)
    assert float(c.sum()) == 28  # 7 + 6 + ... + 1 centres on or inside the closed triangle
    assert float(uv_coverage(small[[0, 0, 1]], tri, 8).sum()) == 0  # degenerate: nothing


def test_canonical_layout_masks(layout):
    assert layout.masks.shape == (len(REGION_NAMES), S, S)
    assert float(layout.masks.min()) >= 0 and float(layout.masks.max()) <= 1

    def at(name, uv):
        u, v = uv.tolist()
        return float(layout.mask(name)[int((1 - v) * S), int(u * S)])

    lmk = layout.landmarks_uv
    lip_centre = lmk[[51, 57]].mean(0)
    brow_mid = lmk[19] - torch.tensor([0.0, 0.015], dtype=lmk.dtype)  # brow centre line
    assert at("lips", lip_centre) > 0.9 and at("lips", brow_mid) < 0.01
    assert at("brows", brow_mid) > 0.5 and at("brows", lip_centre) < 0.01
    assert at("forehead", brow_mid + torch.tensor([0.0, 0.2], dtype=lmk.dtype)) > 0.9
    assert at("beard", lmk[8] + torch.tensor([0.0, 0.03], dtype=lmk.dtype)) > 0.9  # chin
    assert at("beard", lip_centre) < 0.05  # lips are cut out of the beard
    with pytest.raises(InvalidInput, match="unknown region"):
        layout.mask("ears")


def test_layout_from_constructed_mesh_filters_charts():
    uv, faces = _grid_mesh()
    nv = uv.shape[0]
    canon = torch.tensor(UVLayout.canonical(8).landmarks_uv.tolist(), dtype=torch.float64)
    lm = torch.cdist(canon, uv).argmin(1)
    # an "eyeball": a disconnected triangle whose UVs overlap the face square's corner,
    # and a UDIM patch (u in [1, 2]) attached to the face: both must be left out
    extra_uv = torch.tensor(
        [[0.0, 0.0], [0.08, 0.0], [0.0, 0.08], [1.2, 0.5], [1.3, 0.5]], dtype=torch.float64
    )
    uvs = torch.cat([uv, extra_uv])
    eyeball = torch.tensor([[nv, nv + 1, nv + 2]])
    udim = torch.tensor([[0, nv + 3, nv + 4]])
    all_faces = torch.cat([faces, eyeball, udim])
    layout = uv_layout_from_mesh(uvs, all_faces, all_faces, lm, size=32)
    torch.testing.assert_close(layout.landmarks_uv, uv[lm])
    assert float(layout.coverage[-1, 0]) == 0.0  # the eyeball corner (u, v ~ 0)
    frac = float(layout.coverage.mean())
    assert abs(frac - 0.8 * 0.85) < 0.06
    # a model object with the models-module attribute names gives the same layout
    model = SimpleNamespace(uvs=uvs.float(), uv_faces=all_faces, faces=all_faces, landmarks=lm)
    lay2 = uv_layout_from_model(model, size=32)
    torch.testing.assert_close(lay2.coverage, layout.coverage.float())
    with pytest.raises(InvalidInput, match="uvs"):
        uv_layout_from_model(SimpleNamespace(uvs=None, uv_faces=None, faces=faces, landmarks=lm))
    with pytest.raises(InvalidInput, match="68"):
        uv_layout_from_mesh(uv, faces, faces, lm[:60])
    with pytest.raises(InvalidInput, match="not on any face"):
        uv_layout_from_mesh(uvs, faces, faces, torch.cat([lm[:67], torch.tensor([nv + 1])]))


@pytest.fixture(scope="module")
def ict_mesh(shared_data):
    from facelab.geometry.io import load_obj

    path = shared_data / "ict-facekit" / "FaceXModel" / "generic_neutral_mesh.obj.gz"
    if not path.is_file():
        pytest.skip("ICT-FaceKit neutral mesh not in the shared data")
    return load_obj(path)


def test_layout_from_ict_uvs(ict_mesh):
    m = ict_mesh
    lay = uv_layout_from_mesh(m.uvs, m.uv_faces, m.faces, ICT_LANDMARKS, size=S)
    lmk = lay.landmarks_uv
    assert bool(((lmk >= 0) & (lmk <= 1)).all())
    lips = lmk[48:68]
    assert float(torch.cdist(lips, lips).max()) < 0.3
    assert float((lips.mean(0) - lmk[51]).norm()) < 0.1
    # an upright chart: brows above eyes above nose tip above mouth above chin (v up)
    v = lmk[:, 1]
    assert (
        float(v[17:27].mean())
        > float(v[36:48].mean())
        > float(v[30])
        > float(v[48:68].mean())
        > float(v[8])
    )
    assert float(lmk[36:42, 0].mean()) < 0.5 < float(lmk[42:48, 0].mean())
    # the face chart covers most of the unit square; the eyeballs/irises sharing the square
    # are not part of it, and the mouth opening is a hole
    assert 0.8 < float(lay.coverage.mean()) < 1.0
    mouth = lmk[[62, 66]].mean(0)
    assert float(lay.coverage[int((1 - mouth[1]) * S), int(mouth[0] * S)]) == 0.0
    # the generator runs on it, and vertex colours come out for the face vertices
    gen = ProceduralAlbedo(lay)
    img, _ = gen.sample(2, torch.Generator().manual_seed(0))
    cols = sample_vertex_albedo(img, m.uvs, m.uv_faces, m.faces)
    assert cols.shape == (2, m.verts.shape[0], 3)
    assert float(cols[:, :9409].min()) > 0.0


# ---------------------------------------------------------------------------- generator


def test_sample_shape_range_and_determinism(layout, batch):
    gen, img, params = batch
    assert img.shape == (8, 3, S, S) and len(params) == 8
    assert float(img.min()) >= 0 and float(img.max()) <= 1
    img2, params2 = gen.sample(8, torch.Generator().manual_seed(3))
    assert torch.equal(img, img2)
    for k, v in params.to_dict().items():
        assert torch.equal(v, params2.to_dict()[k])
    img3, _ = gen.sample(8, torch.Generator().manual_seed(4))
    assert not torch.equal(img, img3)


def test_batch_equals_single_and_params_reproduce(batch):
    gen, img, params = batch
    for i in (0, 5):
        torch.testing.assert_close(gen.render(params[i]), img[i : i + 1], atol=1e-6, rtol=0)
    again = gen.render(AlbedoParams.from_dict({k: v.tolist() for k, v in params.to_dict().items()}))
    torch.testing.assert_close(again, img, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        gen.render(AlbedoParams.cat([params[:3], params[3:]])), img, atol=1e-6, rtol=0
    )


def _region_mean(img, mask):
    w = mask / mask.sum()
    return (img * w).sum((-1, -2))  # (B, 3)


def test_lips_redder_than_cheeks_and_brows_darker_than_forehead(layout, batch):
    _, img, params = batch
    lips = _region_mean(img, layout.mask("lips"))
    cheeks = _region_mean(img, layout.mask("cheeks") * (1 - layout.mask("beard")))
    redness = lambda c: c[:, 0] / c[:, 1]  # noqa: E731
    assert bool((redness(lips) > redness(cheeks)).all())
    brow_core = (layout.mask("brows") > 0.9).to(img.dtype)
    brows = _region_mean(img, brow_core).mean(1)
    forehead = _region_mean(img, layout.mask("forehead")).mean(1)
    dense = params.brow_density > 0.6
    assert bool((brows < forehead).all()) and bool((brows[dense] < 0.9 * forehead[dense]).all())


def test_skin_tone_follows_melanin(layout):
    gen = ProceduralAlbedo(layout, AlbedoConfig(detail=False))
    p = gen.sample_params(2, torch.Generator().manual_seed(1))
    p.melanin = torch.tensor([0.004, 0.3], dtype=torch.float64)
    img = gen.render(p)
    fore = _region_mean(img, layout.mask("forehead"))
    assert bool((fore[1] < fore[0]).all())
    torch.testing.assert_close(fore[0], skin_reflectance(0.004 * 1.05, p.haemoglobin[0],
                                                         p.eumelanin_ratio[0], p.oxy_ratio[0]).float(),
                               atol=0.06, rtol=0)  # fmt: skip


def test_detail_switches_and_encoding(layout, batch):
    gen, img, params = batch
    smooth = ProceduralAlbedo(layout, AlbedoConfig(detail=False)).render(params)
    assert not torch.equal(smooth, img)
    # stubble only changes samples that have it
    no_st = ProceduralAlbedo(layout, AlbedoConfig(stubble=False)).render(params)
    has = params.stubble > 0
    diff = (no_st - img).abs().amax((1, 2, 3))
    assert bool((diff[~has] < 1e-6).all()) and bool((diff[has] > 1e-3).all())
    srgb = ProceduralAlbedo(layout, AlbedoConfig(encoding="srgb")).render(params)
    torch.testing.assert_close(srgb, linear_to_srgb(img), atol=1e-5, rtol=0)
    with pytest.raises(InvalidInput, match="encoding"):
        AlbedoConfig(encoding="gamma")


def test_freckles_add_melanin_spots(layout):
    gen = ProceduralAlbedo(layout)
    p = gen.sample_params(1, torch.Generator().manual_seed(2))
    p.melanin[:] = 0.005
    p.freckle_density[:] = 0.0
    clean = gen.render(p)
    p.freckle_density[:] = 3000.0
    freck = gen.render(p)
    d = (freck - clean).mean(1)[0]
    assert float(d.max()) <= 1e-6  # freckles only darken
    cheeks = layout.mask("cheeks") > 0.5
    assert float(d[cheeks].mean()) < float(d[~cheeks].mean())


# ---------------------------------------------------------------------------- PCA


@pytest.fixture(scope="module")
def smooth_samples():
    lay = UVLayout.canonical(16)
    gen = ProceduralAlbedo(lay, AlbedoConfig(detail=False))
    img, _ = gen.sample(40, torch.Generator().manual_seed(0))
    return img


@pytest.mark.parametrize("n", [40, 300])  # D = 768: N=40 takes the Gram path, N=300 the SVD
def test_pca_properties(n, smooth_samples):
    x = smooth_samples
    if n > x.shape[0]:
        g = torch.Generator().manual_seed(1)
        x = torch.cat(
            [
                x,
                x[torch.randint(0, 40, (n - 40,), generator=g)]
                + 0.01 * torch.randn(n - 40, *x.shape[1:], generator=g),
            ]
        )
    pca = AlbedoPCA.fit(x, 10)
    assert pca.basis.shape == (10, 3, 16, 16) and pca.mean.shape == (3, 16, 16)
    b = pca.basis.reshape(10, -1).double()
    torch.testing.assert_close(
        b @ b.T, torch.diag(pca.std.double() ** 2), atol=1e-4 * float(pca.std[0]) ** 2, rtol=0
    )
    assert bool((pca.std[1:] <= pca.std[:-1]).all())
    evr = pca.explained_variance_ratio()
    assert 0 < float(evr.sum()) <= 1 + 1e-6
    # coefficients of the fitted samples are standardised
    c = pca.project(x)
    torch.testing.assert_close(c.mean(0), torch.zeros(10), atol=1e-3, rtol=0)
    torch.testing.assert_close(c.var(0), torch.ones(10), atol=1e-3, rtol=0)
    errs = [float((pca(pca.project(x, k)) - x).pow(2).mean()) for k in (1, 3, 6, 10)]
    assert all(a > b for a, b in zip(errs, errs[1:]))
    # variance left = total - explained
    resid = float((pca(c) - x).pow(2).sum() / (x.shape[0] - 1))
    assert abs(resid - float(pca.total_variance - (pca.std**2).sum())) < 1e-3 * float(
        pca.total_variance
    )


def test_pca_round_trip_and_save_load(tmp_path, smooth_samples):
    pca = AlbedoPCA.fit(smooth_samples, 8)
    coeffs = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    img = pca(coeffs)
    torch.testing.assert_close(pca.project(img), coeffs, atol=1e-4, rtol=0)
    torch.testing.assert_close(
        pca(coeffs[:, :3]), pca(torch.cat([coeffs[:, :3], torch.zeros(3, 5)], 1))
    )
    pca.save(tmp_path / "a.npz")
    back = AlbedoPCA.load(tmp_path / "a.npz")
    for name in ("mean", "basis", "std", "total_variance"):
        assert torch.equal(getattr(back, name), getattr(pca, name))
    np.savez(tmp_path / "bad.npz", mean=np.zeros((3, 4, 4)))
    with pytest.raises(ModelFormatError, match="AlbedoPCA"):
        AlbedoPCA.load(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelFormatError):
        AlbedoPCA.load(tmp_path / "junk.npz")
    with pytest.raises(InvalidInput, match="k must be"):
        AlbedoPCA.fit(smooth_samples[:5], 5)
    with pytest.raises(InvalidInput, match="components"):
        pca(torch.zeros(1, 9))


def test_build_albedo_pca_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    lay = UVLayout.canonical(16)
    a = build_albedo_pca(lay, n=12, k=4, seed=5, progress=False)
    files = list((tmp_path / "albedo").glob("albedo_pca_*.npz"))
    assert len(files) == 1
    b = build_albedo_pca(lay, n=12, k=4, seed=5, progress=False)
    assert torch.equal(a.basis, b.basis) and a.k == 4
    build_albedo_pca(lay, n=12, k=4, seed=6, progress=False)
    assert len(list((tmp_path / "albedo").glob("albedo_pca_*.npz"))) == 2
    s = a.sample(2, torch.Generator().manual_seed(0))
    assert s.shape == (2, 3, 16, 16) and float(s.min()) >= 0


def test_render_is_differentiable_in_the_chromophores(layout):
    gen = ProceduralAlbedo(layout, AlbedoConfig(detail=False))
    p = gen.sample_params(2, torch.Generator().manual_seed(0))
    p.melanin = p.melanin.clone().requires_grad_(True)
    p.haemoglobin = p.haemoglobin.clone().requires_grad_(True)
    img = gen.render(p)
    img.mean().backward()
    assert bool((p.melanin.grad < 0).all())  # more melanin -> darker
    green = gen.render(p)[:, 1].mean()
    (g_h,) = torch.autograd.grad(green, p.haemoglobin)
    assert bool((g_h < 0).all())  # more blood -> less green


def test_layout_for_the_builtin_model():
    models = pytest.importorskip("facelab.models")
    model = models.load("builtin")  # cached per process by the models package
    lay = uv_layout_from_model(model, size=32)
    lmk = lay.landmarks_uv
    assert bool(((lmk >= 0) & (lmk <= 1)).all())
    v = lmk[:, 1]
    assert float(v[17:27].mean()) > float(v[36:48].mean()) > float(v[48:68].mean()) > float(v[8])
    img, _ = ProceduralAlbedo(lay).sample(1, torch.Generator().manual_seed(0))
    cols = sample_vertex_albedo(img, model.uvs, model.uv_faces, model.faces)
    assert cols.shape[1] == int(model.faces.max()) + 1 and float(cols.min()) > 0


def test_fft_hair_strokes_match_direct_convolution(layout):
    """The FFT stroke path equals zero-padded conv2d away from the image border."""
    import torch.nn.functional as F

    from facelab.models.albedo import _stroke_kernels

    gen = ProceduralAlbedo(layout)
    unif = torch.ones(1, S, S)
    unif[0, 20, 30] = 0.0  # one seed on the left of the nose bridge, one on the right
    unif[0, 40, 50] = 0.0
    out = gen._strokes(unif, torch.full((S, S), 0.5), "brows", torch.float32)
    kern = _stroke_kernels(max(5.0 * S / 256, 1.0), [np.pi + 0.35, -0.35], torch.float32, None)
    seeds = (unif < 0.5).float()[:, None]
    direct = F.conv2d(seeds, kern.flip(-1, -2), padding=kern.shape[-1] // 2)  # correlation -> conv
    right = ((torch.arange(S) + 0.5) / S >= float(layout.landmarks_uv[27, 0])).float()
    want = (direct[:, 0] * (1 - right) + direct[:, 1] * right).clamp(0, 1)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)


def test_generator_sizes_and_model_constructor():
    gen = ProceduralAlbedo(config=AlbedoConfig(size=24, detail=False))
    assert gen.size == 24 and gen.sample(1)[0].shape == (1, 3, 24, 24)
    with pytest.raises(InvalidInput, match="config.size"):
        ProceduralAlbedo(UVLayout.canonical(16), AlbedoConfig(size=24))
    uv, faces = _grid_mesh(17)
    lm = torch.cdist(UVLayout.canonical(8).landmarks_uv.double(), uv).argmin(1)
    model = SimpleNamespace(uvs=uv, uv_faces=faces, faces=faces, landmarks=lm)
    assert ProceduralAlbedo.from_model(model, size=16).size == 16
