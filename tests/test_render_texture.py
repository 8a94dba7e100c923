"""Tests of facelab.render.texture: UV convention, bilinear known answers, mipmapping, gradients."""

from __future__ import annotations

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.render import (
    interpolate,
    mipmap_pyramid,
    rasterize,
    sample_points,
    sample_vertex_albedo,
    texture,
    uv_footprint,
)

D = torch.float64


def _uv_grid(S_out: int, lo=0.0, hi=1.0):
    c = lo + (torch.arange(S_out, dtype=D) + 0.5) / S_out * (hi - lo)
    v, u = torch.meshgrid(1 - c, c, indexing="ij")  # row 0 is the top (v near 1)
    return torch.stack([u, v], -1).unsqueeze(0)


def test_texel_centres_and_v_up_convention():
    g = torch.Generator().manual_seed(0)
    tex = torch.rand(1, 3, 4, 6, generator=g, dtype=D)
    for i in range(4):
        for j in range(6):
            uv = torch.tensor([[[[(j + 0.5) / 6, 1 - (i + 0.5) / 4]]]], dtype=D)
            assert torch.allclose(texture(tex, uv, mip=False)[0, 0, 0], tex[0, :, i, j])


def test_bilinear_is_exact_on_a_linear_ramp():
    # f(x, y) = 2x + 3y over texel centres; bilinear reproduces it anywhere between centres
    Ht, Wt = 8, 10
    i, j = torch.meshgrid(torch.arange(Ht, dtype=D), torch.arange(Wt, dtype=D), indexing="ij")
    tex = (2 * j + 3 * i).reshape(1, 1, Ht, Wt)
    g = torch.Generator().manual_seed(1)
    x = 0.5 + torch.rand(1, 5, 7, generator=g, dtype=D) * (Wt - 1)  # continuous texel coords
    y = 0.5 + torch.rand(1, 5, 7, generator=g, dtype=D) * (Ht - 1)
    uv = torch.stack([x / Wt, 1 - y / Ht], -1)
    out = texture(tex, uv, mip=False)[..., 0]
    assert torch.allclose(out, 2 * (x - 0.5) + 3 * (y - 0.5), atol=1e-10)


def test_mipmapping_removes_aliasing_of_a_minified_checkerboard():
    S = 64
    i, j = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    tex = ((i + j) % 2).to(D).reshape(1, 1, S, S)  # 1-texel checks, mean 0.5
    uv = _uv_grid(8) + 0.3 / S  # 8x8 pixels, each covering 8x8 texels, off texel corners
    fp = uv_footprint(uv, torch.ones(1, 8, 8, dtype=torch.bool), S)
    assert torch.allclose(fp, torch.full_like(fp, 8.0))
    aliased = texture(tex, uv, mip=False)
    filtered = texture(tex, uv)
    assert (aliased - 0.5).abs().min() > 0.1  # bilinear point samples alias (wrong mean)
    assert torch.allclose(filtered, torch.full_like(filtered, 0.5), atol=1e-6)
    # magnification (footprint < 1): mipmapping changes nothing
    uv_mag = _uv_grid(16, 0.25, 0.5)
    assert torch.allclose(texture(tex, uv_mag), texture(tex, uv_mag, mip=False))


def test_mipmap_pyramid_levels_preserve_the_mean():
    tex = torch.rand(2, 3, 16, 12, dtype=D, generator=torch.Generator().manual_seed(2))
    pyr = mipmap_pyramid(tex)
    assert [p.shape[-2:] for p in pyr[:3]] == [(16, 12), (8, 6), (4, 3)]
    assert min(pyr[-1].shape[-2:]) == 1
    assert torch.allclose(pyr[1].mean((-1, -2)), tex.mean((-1, -2)))


def test_footprint_is_not_inflated_at_uv_seams():
    # Two screen squares side by side, each its own UV chart: the left maps to u in [0, .5],
    # the right to u in [.5, 1] mirrored, so along the shared edge u jumps by up to 0.5
    # between neighbouring pixels. Inside each chart u and v change by exactly
    # 0.5 * 256 / 12 = 1 * 256 / 24 = 32 / 3 texels per pixel; the seam pixels must read the
    # same, not the jump across the seam (which would pick a needlessly blurred mip level).
    v = torch.tensor(
        [[[4, 4, 2], [16, 4, 2], [16, 28, 2], [4, 28, 2], [28, 4, 2], [28, 28, 2]]], dtype=D
    )
    f = torch.tensor([[0, 2, 1], [0, 3, 2], [1, 5, 4], [1, 2, 5]])
    uvs = torch.tensor(
        [[0, 1], [0.5, 1], [0.5, 0], [0, 0], [1.0, 1], [1.0, 0], [0.5, 1], [0.5, 0]], dtype=D
    )
    uv_faces = torch.tensor([[0, 2, 1], [0, 3, 2], [4, 7, 6], [4, 5, 7]])
    fr = rasterize(v, f, 32)
    uv = interpolate(uvs, fr, faces=uv_faces)
    seam = (uv[0, 16, 15] - uv[0, 16, 16]).norm() * 256
    assert seam > 100  # the neighbours across the seam are far apart in the texture
    fp = uv_footprint(uv, fr.mask, 256)
    torch.testing.assert_close(fp[fr.mask], torch.full_like(fp[fr.mask], 32 / 3), rtol=1e-9, atol=0)
    assert bool((fp[~fr.mask] == 1).all())


def test_texture_gradcheck():
    g = torch.Generator().manual_seed(3)
    tex = torch.rand(1, 2, 6, 6, generator=g, dtype=D, requires_grad=True)
    uv = (0.1 + 0.8 * torch.rand(1, 3, 4, 2, generator=g, dtype=D)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t, u: texture(t, u, mip=False), (tex, uv))
    fp = torch.full((1, 3, 4), 2.7, dtype=D)
    assert torch.autograd.gradcheck(lambda t, u: texture(t, u, footprint=fp), (tex, uv))


def test_texture_bad_inputs():
    with pytest.raises(InvalidInput, match="uv"):
        texture(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, 3))
    with pytest.raises(InvalidInput, match="batch"):
        texture(torch.zeros(2, 3, 4, 4), torch.zeros(3, 4, 4, 2))


def test_sample_points_is_texture_at_scattered_points():
    from facelab.render.texture import sample_points, texture

    g = torch.Generator().manual_seed(0)
    tex = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64)
    uv = torch.rand(2, 5, 2, generator=g, dtype=torch.float64)
    pts = sample_points(tex, uv)
    assert pts.shape == (2, 5, 3)
    torch.testing.assert_close(pts, texture(tex, uv[:, None], mip=False)[:, 0])
    # texel centre (i, j) at ((j + 0.5) / W, 1 - (i + 0.5) / H): exact texel value
    c = torch.tensor([[(2 + 0.5) / 8, 1 - (5 + 0.5) / 8]], dtype=torch.float64)
    torch.testing.assert_close(sample_points(tex, c)[:, 0], tex[:, :, 5, 2])


def test_vertex_uvs_is_deterministic_last_corner():
    from facelab.fit.albedo import vertex_uvs
    from facelab.models import load

    m = load("builtin")
    uv = vertex_uvs(m)
    ref = torch.zeros_like(uv)
    fv, ft = m.faces.reshape(-1).tolist(), m.uv_faces.reshape(-1).tolist()
    for v, t in zip(fv, ft):  # the last corner of each vertex wins, in face order
        ref[v] = m.uvs[t]
    torch.testing.assert_close(uv, ref, rtol=0, atol=0)


def test_shared_texture_pyramid_is_built_once(monkeypatch):
    import importlib

    T = importlib.import_module("facelab.render.texture")

    tex = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    y, x = torch.meshgrid(torch.linspace(0, 1, 8), torch.linspace(0, 1, 8), indexing="ij")
    uv = torch.stack([x, y], -1)[None].expand(4, -1, -1, -1).contiguous()  # minified 8x
    ref = torch.cat([T.texture(tex, uv[i : i + 1]) for i in range(4)])
    seen = []
    orig = T.mipmap_pyramid

    def spy(t, levels=None):
        seen.append(t.shape[0])
        return orig(t, levels)

    monkeypatch.setattr(T, "mipmap_pyramid", spy)
    out = T.texture(tex, uv)
    assert seen == [1]  # one pyramid for the batch of 4, not four
    torch.testing.assert_close(out, ref)


# ---------------------------------------------------------------------------- point lookups


def test_sample_points_bilinear_known_answer_and_border():
    s = 8
    j = torch.arange(s, dtype=torch.float64)
    u_img = ((j + 0.5) / s).expand(s, s)  # value = u of the texel centre
    v_img = (1 - (j + 0.5) / s)[:, None].expand(s, s)
    img = torch.stack([u_img, v_img, torch.ones(s, s, dtype=torch.float64)])[None]
    uv = torch.tensor([[0.3, 0.7], [0.5, 0.5], [0.2, 0.9]], dtype=torch.float64)
    out = sample_points(img, uv)
    torch.testing.assert_close(out[0, :, :2], uv)  # bilinear is exact on a linear ramp
    torch.testing.assert_close(sample_points(img, torch.tensor([[1.5, -0.2]], dtype=torch.float64))[0, 0, :2],
                               torch.tensor([(s - 0.5) / s, 0.5 / s], dtype=torch.float64))  # fmt: skip


def test_sample_vertex_albedo_seams_and_unused_vertices():
    img = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    img[0, :, :, :2] = 0.2  # left half (u < 0.5)
    img[0, :, :, 2:] = 0.8  # right half
    img[1] = 0.5
    # texel centres are at u = 0.125, 0.375, 0.625, 0.875
    uvs = torch.tensor(
        [[0.125, 0.5], [0.375, 0.5], [0.875, 0.5], [0.625, 0.5], [0.3, 0.2]], dtype=torch.float64
    )
    # vertex 0 appears with uv 0 in one face and uv 2 in another (a seam); vertex 3 unused
    faces = torch.tensor([[0, 1, 2], [0, 2, 1], [1, 2, 4]])
    uv_faces = torch.tensor([[0, 1, 4], [2, 4, 1], [1, 4, 4]])
    out = sample_vertex_albedo(img, uvs, uv_faces, faces, num_vertices=5)
    assert out.shape == (2, 5, 3)
    torch.testing.assert_close(
        out[0, 0], torch.full((3,), 0.5, dtype=torch.float64)
    )  # mean(0.2, 0.8)
    torch.testing.assert_close(out[0, 1], torch.full((3,), 0.2, dtype=torch.float64))
    torch.testing.assert_close(out[0, 3], torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(out[1, [0, 1, 2, 4]], torch.full((4, 3), 0.5, dtype=torch.float64))
    with pytest.raises(InvalidInput, match="num_vertices"):
        sample_vertex_albedo(img, uvs, uv_faces, faces, num_vertices=3)
