"""Tests of facelab.render.antialias (nvdiffrast-style analytic antialiasing)."""

from __future__ import annotations

import math

import pytest
import torch

from facelab.geometry.camera import intrinsics, pose_to_camera, project_depth
from facelab.render import Renderer, antialias, face_adjacency, rasterize
from facelab.render.shapes import grid_mesh, ico_sphere

D = torch.float64


def test_face_adjacency_closed_and_open_meshes():
    v, f = ico_sphere(1)
    adj = face_adjacency(f)
    assert (adj >= 0).all()  # closed surface: every edge has a neighbour
    for face in range(len(f)):
        for k in range(3):
            nb = int(adj[face, k])
            edge = {int(f[face, (k + 1) % 3]), int(f[face, (k + 2) % 3])}
            assert face in adj[nb].tolist() and edge <= set(f[nb].tolist())
    v, f = grid_mesh(3, 4)
    adj = face_adjacency(f)
    assert int((adj < 0).sum()) == 2 * (3 + 4)  # the boundary edges


def _square(angle: float, side: float, z: torch.Tensor, size: int = 48):
    """A fronto-parallel square (4x4 grid) turned in-plane by ``angle``, at depth ``z``."""
    v, f = grid_mesh(4, 4, (side, side), dtype=D)
    c, s = math.cos(angle), math.sin(angle)
    R = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=D)
    K = intrinsics(40.0, 40.0, size / 2, size / 2).to(D)
    t = torch.stack([torch.zeros_like(z), torch.zeros_like(z), z]).reshape(1, 3)
    cam = pose_to_camera((v @ R.T).unsqueeze(0), torch.zeros(1, 3, dtype=D), t)
    return project_depth(cam, K), f


@pytest.mark.parametrize("angle", [0.3, 0.9])
def test_coverage_and_its_gradient_match_the_analytic_area(angle):
    z = torch.tensor(4.0, dtype=D, requires_grad=True)
    s, f = _square(angle, 3.0, z)
    fr = rasterize(s, f, 48)
    mask = fr.mask.unsqueeze(-1).to(D)
    aa = antialias(mask, fr, s)
    area = (40.0 * 3.0 / 4.0) ** 2  # (f * side / z)^2 pixels
    assert abs(float(aa.detach().sum()) - area) < 0.01 * area
    (g,) = torch.autograd.grad(aa.sum(), z)
    assert float(g) == pytest.approx(-2 * area / 4.0, rel=0.05)  # d(area)/dz = -2 area / z


def test_interior_pixels_are_untouched_and_values_stay_in_range():
    z = torch.tensor(4.0, dtype=D)
    s, f = _square(0.5, 3.0, z)
    fr = rasterize(s, f, 48)
    img = torch.rand(1, 48, 48, 3, dtype=D, generator=torch.Generator().manual_seed(0))
    img = torch.where(fr.mask.unsqueeze(-1), img, torch.zeros_like(img))
    out = antialias(img, fr, s)
    m = fr.mask[0].float()
    core = torch.nn.functional.max_pool2d((1 - m)[None, None], 3, 1, 1)[0, 0] == 0
    assert core.sum() > 300
    assert torch.equal(out[0][core], img[0][core])  # interior edges are not silhouettes
    changed = (out - img).abs().sum(-1)[0] > 0
    assert changed.any() and not (changed & core).any()
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_antialias_gradcheck():
    v = torch.tensor(
        [[[2.3, 1.7, 2.0], [9.1, 2.9, 2.5], [3.7, 8.4, 3.0]]], dtype=D
    )  # no pixel centre on an edge
    f = torch.tensor([[0, 1, 2]])
    col = torch.rand(1, 10, 10, 2, dtype=D, generator=torch.Generator().manual_seed(1))

    def fn(verts, c):
        fr = rasterize(verts, f, 10)
        return antialias(c, fr, verts)

    assert torch.autograd.gradcheck(fn, (v.requires_grad_(), col.requires_grad_()))


def test_coverage_is_continuous_as_an_edge_sweeps_over_pixel_centres():
    f = torch.tensor([[0, 1, 2]])
    sums, hard, area = [], [], []
    for dx in torch.linspace(0.0, 1.0, 21, dtype=D):
        # a vertical right edge (rows 2.4..13): it passes all its pixel centres at once
        v = torch.tensor([[[3.0, 2.0, 2.0], [11.32, 2.4, 2.0], [11.32, 13.0, 2.0]]], dtype=D)
        v[0, 1:, 0] += dx  # slide the right edge across a column of pixel centres
        fr = rasterize(v, f, 16)
        m = fr.mask.unsqueeze(-1).to(D)
        sums.append(float(antialias(m, fr, v).sum()))
        hard.append(float(m.sum()))
        p = v[0, :, :2]
        e1, e2 = p[1] - p[0], p[2] - p[0]
        area.append(0.5 * float(e1[0] * e2[1] - e1[1] * e2[0]))
    jumps = torch.tensor(sums).diff().abs()
    assert torch.tensor(hard).diff().abs().max() >= 8  # the hard mask jumps by a whole column
    assert jumps.max() < 1.0  # the antialiased coverage moves smoothly (~0.53 px per step)
    # and it follows the analytic area better than the hard mask does
    err_aa = (torch.tensor(sums) - torch.tensor(area)).abs().max()
    err_hard = (torch.tensor(hard) - torch.tensor(area)).abs().max()
    assert err_aa < 0.5 * err_hard


def test_recover_translation_from_antialiased_silhouette():
    v, f = ico_sphere(2, dtype=D)
    v = v * torch.tensor([1.0, 0.7, 0.8], dtype=D)
    K = intrinsics(50.0, 50.0, 16.0, 16.0).to(D)
    r = Renderer(32, antialias=True)
    rot = torch.zeros(1, 3, dtype=D)
    t_true = torch.tensor([[0.35, -0.25, 6.0]], dtype=D)
    target = r.render(v[None], f, K=K, rotation=rot, translation=t_true).mask
    t = torch.tensor([[-0.2, 0.2, 6.5]], dtype=D, requires_grad=True)
    opt = torch.optim.Adam([t], lr=0.05)
    for _ in range(80):
        opt.zero_grad()
        mask = r.render(v[None], f, K=K, rotation=rot, translation=t).mask
        ((mask - target) ** 2).mean().backward()
        opt.step()
    assert float((t.detach() - t_true).abs().max()) < 0.05


def test_renderer_antialias_only_changes_silhouette_pixels():
    v, f = ico_sphere(3, dtype=D)
    K = intrinsics(60.0, 60.0, 16.0, 16.0).to(D)
    kw = dict(
        K=K,
        rotation=torch.zeros(1, 3, dtype=D),
        translation=torch.tensor([[0.1, 0.0, 5.0]], dtype=D),
    )
    hard = Renderer(32).render(v[None], f, **kw)
    soft = Renderer(32, antialias=True).render(v[None], f, **kw)
    diff = (hard.image - soft.image).abs().sum(1)[0] > 0
    m = hard.fragments.mask[0].float()
    edge = torch.nn.functional.max_pool2d(m[None, None], 3, 1, 1)[0, 0] - (
        -torch.nn.functional.max_pool2d(-m[None, None], 3, 1, 1)[0, 0]
    )
    assert diff.any() and not (diff & (edge == 0)).any()
