"""Tests of facelab.render.soft (SoftRas): limits, gradients at silhouettes, optimisation."""

from __future__ import annotations

import pytest
import torch

from facelab.geometry.camera import intrinsics, pose_to_camera, project_depth
from facelab.render import (
    Renderer,
    interpolate,
    rasterize,
    sh_ambient,
    soft_rasterize,
    soft_silhouette,
)
from facelab.render.shapes import ico_sphere

D = torch.float64


@pytest.fixture(scope="module")
def sphere():
    v, f = ico_sphere(2, dtype=D)
    K = intrinsics(60.0, 60.0, 16.0, 16.0).to(D)
    s = project_depth(v.unsqueeze(0) + torch.tensor([0.1, 0.0, 4.0], dtype=D), K)
    return v, f, K, s


def test_soft_silhouette_tends_to_hard_mask(sphere):
    v, f, K, s = sphere
    hard = rasterize(s, f, 32).mask.to(D)
    errs = [
        float((soft_silhouette(s, f, 32, sigma=sg) - hard).abs().mean()) for sg in (1.0, 1e-2, 1e-4)
    ]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-3
    A = soft_silhouette(s, f, 32, sigma=1.0)
    assert float(A.min()) >= 0 and float(A.max()) <= 1
    # soft coverage spills outside the hard mask and is < 1 just inside
    assert float(A[hard == 0].max()) > 0.05


def test_soft_rasterize_tends_to_hard_image(sphere):
    v, f, K, s = sphere
    col = (v.unsqueeze(0) + 1) / 2
    fr = rasterize(s, f, 32)
    hard = interpolate(col, fr)
    prev = None
    for sg, gm in ((1.0, 1e-2), (1e-2, 1e-3), (1e-6, 1e-5)):
        out = soft_rasterize(s, f, 32, col, sigma=sg, gamma=gm)
        err = float((out[..., :3] - hard).abs().mean())
        assert prev is None or err < prev
        prev = err
    assert prev < 1e-5
    assert torch.allclose(out[..., 3], fr.mask.to(D), atol=1e-4)
    # K nearest faces: K = 1 with tiny softness is the z-buffer too
    out1 = soft_rasterize(s, f, 32, col, sigma=1e-6, gamma=1e-5, faces_per_pixel=1)
    assert float((out1[..., :3] - hard).abs().mean()) < 1e-5


def test_soft_silhouette_gradcheck_vertex_positions():
    v = torch.tensor([[[2.3, 1.7, 2.0], [8.1, 2.9, 2.5], [3.6, 8.4, 3.0]]], dtype=D)
    f = torch.tensor([[0, 1, 2]])
    assert torch.autograd.gradcheck(
        lambda x: soft_silhouette(x, f, 10, sigma=1.5), (v.requires_grad_(),)
    )


def test_soft_rasterize_gradcheck_positions_and_colours():
    v = torch.tensor(
        [[[1.3, 1.2, 2.0], [6.6, 1.9, 2.5], [2.6, 6.4, 3.0], [6.9, 5.8, 4.0]]], dtype=D
    )
    f = torch.tensor([[0, 1, 2], [1, 3, 2]])
    col = torch.rand(1, 4, 2, dtype=D, generator=torch.Generator().manual_seed(0))
    assert torch.autograd.gradcheck(
        lambda x, c: soft_rasterize(x, f, 8, c, 1.0, 0.1, 0.3, z_range=(1.0, 5.0)),
        (v.requires_grad_(), col.requires_grad_()),
    )


def test_silhouette_gradient_points_outward():
    # pulling a silhouette vertex outwards must grow the soft mask (a hard mask has no gradient)
    v = torch.tensor(
        [[[4.0, 4.0, 2.0], [14.0, 5.0, 2.0], [6.0, 14.0, 2.0]]], dtype=D, requires_grad=True
    )
    f = torch.tensor([[0, 1, 2]])
    soft_silhouette(v, f, 18, sigma=1.0).sum().backward()
    g = v.grad[0, 1, :2]
    assert g[0] > 0  # moving vertex 1 to the right grows the area
    hard = rasterize(v, f, 18)
    v.grad = None
    (hard.bary.sum() + hard.mask.sum()).backward()
    assert torch.allclose(v.grad, torch.zeros_like(v.grad), atol=1e-9)


def test_recover_translation_from_silhouette():
    v, f = ico_sphere(2, dtype=D)
    v = v * torch.tensor([1.0, 0.7, 0.8], dtype=D)  # an ellipsoid
    K = intrinsics(50.0, 50.0, 16.0, 16.0).to(D)
    rot = torch.zeros(1, 3, dtype=D)
    t_true = torch.tensor([[0.35, -0.25, 6.0]], dtype=D)
    target = soft_silhouette(project_depth(pose_to_camera(v[None], rot, t_true), K), f, 32)
    t = torch.tensor([[-0.2, 0.2, 6.5]], dtype=D, requires_grad=True)
    opt = torch.optim.Adam([t], lr=0.05)
    for _ in range(80):
        opt.zero_grad()
        A = soft_silhouette(project_depth(pose_to_camera(v[None], rot, t), K), f, 32, sigma=1.0)
        loss = ((A - target) ** 2).mean()
        loss.backward()
        opt.step()
    assert float((t.detach() - t_true).abs().max()) < 0.06


@pytest.mark.parametrize("path", ["soft", "antialias"])
def test_recover_rotation_and_translation_from_silhouette(path):
    # A sheared, bent ellipsoid: no mirror symmetry, so every small rotation (pitch and yaw
    # too, not only roll) changes the silhouette to first order and the pose is identifiable.
    v, f = ico_sphere(2, dtype=D)
    v = v * torch.tensor([1.0, 0.7, 1.2], dtype=D)
    x, y, z = v.unbind(1)
    v = torch.stack([x + 0.5 * z + 0.3 * y**2, y + 0.3 * z + 0.2 * x**2, z], 1)
    K = intrinsics(50.0, 50.0, 16.0, 16.0).to(D)
    aa = Renderer(32, antialias=True)

    def silhouette(rot, t):
        if path == "soft":
            screen = project_depth(pose_to_camera(v[None], rot, t), K)
            return soft_silhouette(screen, f, 32, sigma=1.0)
        return aa.render(v[None], f, K=K, rotation=rot, translation=t).mask

    rot_true = torch.tensor([[0.15, -0.25, 0.3]], dtype=D)
    t_true = torch.tensor([[0.3, -0.2, 6.0]], dtype=D)
    target = silhouette(rot_true, t_true)
    rot = torch.zeros(1, 3, dtype=D, requires_grad=True)
    t = torch.tensor([[-0.1, 0.1, 6.4]], dtype=D, requires_grad=True)
    opt = torch.optim.Adam([rot, t], lr=0.03)
    for _ in range(150):
        opt.zero_grad()
        ((silhouette(rot, t) - target) ** 2).mean().backward()
        opt.step()
    assert float((rot.detach() - rot_true).abs().max()) < 0.01  # radians
    assert float((t.detach() - t_true).abs().max()) < 0.01


def test_recover_pose_from_shaded_image():
    # hard rasterizer: gradients from the interior shading/colour pattern through barycentrics
    v, f = ico_sphere(3, dtype=D)
    col = ((torch.sin(3 * v) + 1) / 2).unsqueeze(0)  # a smooth colour pattern
    K = intrinsics(60.0, 60.0, 20.0, 20.0).to(D)
    r = Renderer(40, cull_backfaces=True)
    sh = sh_ambient(0.6, dtype=D)
    sh[0, 1:4] = torch.tensor([0.4, -0.5, 0.3], dtype=D).unsqueeze(-1)
    rot_true = torch.tensor([[0.15, -0.2, 0.1]], dtype=D)
    t_true = torch.tensor([[0.1, -0.1, 5.0]], dtype=D)
    target = r.render(
        v[None], f, K=K, rotation=rot_true, translation=t_true, vertex_colors=col, sh=sh
    ).image
    rot = torch.zeros(1, 3, dtype=D, requires_grad=True)
    t = torch.tensor([[0.0, 0.0, 5.0]], dtype=D, requires_grad=True)
    opt = torch.optim.Adam([rot, t], lr=0.02)
    for _ in range(100):
        opt.zero_grad()
        img = r.render(v[None], f, K=K, rotation=rot, translation=t, vertex_colors=col, sh=sh).image
        loss = ((img - target) ** 2).mean()
        loss.backward()
        opt.step()
    assert float((rot.detach() - rot_true).abs().max()) < 0.03
    assert float((t.detach() - t_true).abs().max()) < 0.03
