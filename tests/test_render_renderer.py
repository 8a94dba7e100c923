"""Tests of facelab.render.Renderer: outputs and conventions, shading paths, gradients, backends."""

from __future__ import annotations

import pytest
import torch

from facelab.errors import BackendUnavailable, InvalidInput
from facelab.geometry.camera import Camera, intrinsics, pose_to_camera, project, unproject
from facelab.render import Renderer, pytorch3d_available, rasterize, sh_ambient
from facelab.render.shapes import grid_mesh, ico_sphere

D = torch.float64


@pytest.fixture(scope="module")
def sphere():
    v, f = ico_sphere(3, dtype=D)
    return v, f


def test_outputs_shapes_and_conventions(sphere):
    v, f = sphere
    K = intrinsics(80.0, 80.0, 24.0, 20.0).to(D)
    c = torch.tensor([[0.2, -0.1, 5.0]], dtype=D)
    out = Renderer((40, 48), background=(0.1, 0.2, 0.3)).render(
        v[None] + c, f, K=K, landmarks=torch.tensor([0, 7])
    )
    assert out.image.shape == (1, 3, 40, 48) and out.mask.shape == (1, 1, 40, 48)
    assert out.depth.shape == (1, 1, 40, 48) and out.normals.shape == (1, 3, 40, 48)
    m = out.mask[0, 0] > 0
    assert torch.equal(m, out.fragments.mask[0])
    # unlit white inside, background colour outside
    assert torch.allclose(out.image[0][:, m], torch.ones(3, int(m.sum()), dtype=D))
    assert torch.allclose(
        out.image[0][:, ~m].T, torch.tensor([0.1, 0.2, 0.3], dtype=D).expand(int((~m).sum()), 3)
    )
    assert (out.depth[0, 0][~m] == 0).all() and (out.depth[0, 0][m] > 3.9).all()
    # normals: unit, camera space, facing the camera, match the sphere's analytic normals
    n = out.normals[0].permute(1, 2, 0)[m]
    assert torch.allclose(n.norm(dim=-1), torch.ones(len(n), dtype=D))
    ii, jj = torch.nonzero(m, as_tuple=True)
    pix = torch.stack([jj + 0.5, ii + 0.5], -1).to(D).unsqueeze(0)
    X = unproject(pix, out.depth[0, 0][m].unsqueeze(0), K)[0]
    n_true = torch.nn.functional.normalize(X - c, dim=-1)
    assert (n * n_true).sum(-1).min() > 0.99
    assert (n[:, 2] < 0.2).all()
    nm = out.normal_map()
    assert float(nm.min()) >= 0 and float(nm.max()) <= 1
    assert out.depth_map().shape == (1, 1, 40, 48)
    assert torch.allclose(out.landmarks, project(v[None, [0, 7]] + c, K))


def test_pose_camera_and_camera_space_inputs_agree(sphere):
    v, f = sphere
    verts = v[None] * torch.tensor([1.0, 1.3, 0.8], dtype=D)
    cam = Camera.frontal(distance=6.0, image_size=32, fov_degrees=30.0, dtype=D)
    r = Renderer(32)
    a = r.render(verts, f, camera=cam)
    b = r.render(verts, f, K=cam.K, rotation=torch.zeros(1, 3, dtype=D),
                 translation=torch.tensor([[0.0, 0.0, 6.0]], dtype=D))  # fmt: skip
    c = r.render(cam.to_camera(verts), f, K=cam.K)
    assert torch.allclose(a.image, b.image) and torch.allclose(a.image, c.image)
    assert torch.allclose(a.depth, c.depth)


def test_batch_matches_individual_renders(sphere):
    v, f = sphere
    K = intrinsics(60.0, 60.0, 16.0, 16.0).to(D)
    rot = torch.tensor([[0.0, 0.3, 0.0], [0.2, 0.0, 0.1]], dtype=D)
    tr = torch.tensor([[0.1, 0.0, 5.0], [-0.2, 0.1, 4.0]], dtype=D)
    col = (v[None] + 1) / 2
    sh = sh_ambient(0.5, batch=2, dtype=D)
    sh[1, 3] = 0.8
    r = Renderer(32)
    both = r.render(
        v[None].expand(2, -1, -1), f, K=K, rotation=rot, translation=tr, vertex_colors=col, sh=sh
    )
    for b in range(2):
        one = r.render(v[None], f, K=K, rotation=rot[b : b + 1], translation=tr[b : b + 1],
                       vertex_colors=col, sh=sh[b : b + 1])  # fmt: skip
        assert torch.allclose(both.image[b], one.image[0])


def test_lighting_terms(sphere):
    v, f = sphere
    K = intrinsics(60.0, 60.0, 16.0, 16.0).to(D)
    verts = v[None] + torch.tensor([0.0, 0.0, 5.0], dtype=D)
    r = Renderer(32)
    m = r.render(verts, f, K=K).fragments.mask[0]
    amb = r.render(
        verts, f, K=K, sh=sh_ambient(0.4, dtype=D), vertex_colors=torch.full_like(verts, 0.5)
    )
    assert torch.allclose(
        amb.image[0][:, m], torch.full((3, int(m.sum())), 0.2, dtype=D), atol=1e-5
    )
    # a light from the camera: brightest where the normal faces the camera
    lit = r.render(verts, f, K=K, light_dir=torch.tensor([[0.0, 0.0, -1.0]], dtype=D))
    ndotl = -lit.normals[0, 2]
    assert torch.allclose(lit.image[0, 0][m], ndotl[m].clamp_min(0))
    spec = r.render(
        verts, f, K=K, light_dir=torch.tensor([[0.0, 0.0, -1.0]], dtype=D), specular=0.5
    )
    assert (spec.image[0, 0][m] >= lit.image[0, 0][m] - 1e-12).all()
    assert float((spec.image - lit.image).max()) > 0.3  # highlight near the centre


def test_uniform_texture_equals_vertex_colours():
    verts, faces = grid_mesh(4, 4, dtype=D)
    uvs = verts[:, :2] + 0.5
    cam = Camera.frontal(distance=3.0, image_size=24, fov_degrees=30.0, dtype=D)
    r = Renderer(24)
    tex = torch.tensor([0.2, 0.5, 0.7], dtype=D).reshape(1, 3, 1, 1).expand(1, 3, 8, 8)
    a = r.render(verts[None], faces, camera=cam, texture=tex, uvs=uvs)
    b = r.render(
        verts[None],
        faces,
        camera=cam,
        vertex_colors=torch.tensor([0.2, 0.5, 0.7], dtype=D).expand(len(verts), 3),
    )
    assert a.mask.sum() > 100
    assert torch.allclose(a.image, b.image)
    # a texture gradient reaches the texture image
    tex = tex.clone().requires_grad_()
    r.render(verts[None], faces, camera=cam, texture=tex, uvs=uvs).image.sum().backward()
    assert float(tex.grad.abs().sum()) > 0
    with pytest.raises(InvalidInput, match="uvs"):
        r.render(verts[None], faces, camera=cam, texture=tex)


def test_renderer_gradcheck_lights_colours_pose():
    v, f = ico_sphere(1, dtype=D)
    K = intrinsics(30.0, 30.0, 6.0, 6.0).to(D)
    r = Renderer(12)

    def fn(sh, col, t):
        return r.render(v[None], f, K=K, rotation=torch.zeros(1, 3, dtype=D), translation=t,
                        vertex_colors=col, sh=sh).image  # fmt: skip

    sh = sh_ambient(0.5, dtype=D)
    sh[0, 1:4] = 0.2
    col = torch.rand(1, len(v), 3, dtype=D, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([[0.05, -0.03, 4.0]], dtype=D)
    assert torch.autograd.gradcheck(
        fn, (sh.requires_grad_(), col.requires_grad_(), t.requires_grad_())
    )


def test_soft_mode_gives_silhouette_gradients(sphere):
    v, f = sphere
    K = intrinsics(60.0, 60.0, 16.0, 16.0).to(D)
    t = torch.tensor([[0.0, 0.0, 5.0]], dtype=D, requires_grad=True)
    out = Renderer(32, mode="soft", sigma=1.0).render(
        v[None], f, K=K, rotation=torch.zeros(1, 3, dtype=D), translation=t
    )
    assert float(out.mask.detach().min()) >= 0 and float(out.mask.detach().max()) <= 1
    out.mask.sum().backward()
    assert t.grad[0, 2] < 0  # moving away shrinks the silhouette
    with pytest.raises(InvalidInput, match="vertex_colors"):
        Renderer(32, mode="soft").render(
            v[None], f, K=K, texture=torch.zeros(1, 3, 4, 4), uvs=v[:, :2]
        )


def test_invalid_configuration():
    with pytest.raises(InvalidInput, match="backend"):
        Renderer(32, backend="opengl")
    with pytest.raises(InvalidInput, match="mode"):
        Renderer(32, mode="fuzzy")
    v, f = ico_sphere(0)
    with pytest.raises(InvalidInput, match="camera or intrinsics"):
        Renderer(16).render(v[None], f)
    with pytest.raises(InvalidInput, match="image_size"):
        Renderer(16).render(v[None], f, camera=Camera.frontal(image_size=32))


@pytest.mark.skipif(pytorch3d_available(), reason="PyTorch3D is installed")
def test_pytorch3d_backend_unavailable_message():
    with pytest.raises(BackendUnavailable, match="backend='torch'"):
        Renderer(32, backend="pytorch3d")


@pytest.mark.skipif(not pytorch3d_available(), reason="PyTorch3D not installed")
def test_pytorch3d_backend_matches_torch(sphere):
    v, f = sphere
    K = intrinsics(60.0, 60.0, 20.0, 16.0).to(torch.float32)
    verts = pose_to_camera(
        v[None].float(), torch.tensor([[0.1, 0.4, 0.0]]), torch.tensor([[0.2, 0.0, 5.0]])
    )
    a = Renderer((32, 40)).render(verts, f, K=K, sh=sh_ambient(0.8))
    b = Renderer((32, 40), backend="pytorch3d").render(verts, f, K=K, sh=sh_ambient(0.8))
    same = a.fragments.pix_to_face == b.fragments.pix_to_face
    assert same.float().mean() > 0.99  # up to pixel centres exactly on edges
    assert torch.allclose(a.image[:, :, same[0]], b.image[:, :, same[0]], atol=1e-4)
    assert torch.allclose(a.depth, b.depth, atol=1e-4)


def test_reference_and_fast_agree_on_a_rendered_mesh(sphere):
    from facelab.geometry.camera import project_depth
    from facelab.render import rasterize_reference

    v, f = ico_sphere(1, dtype=D)
    K = intrinsics(25.0, 25.0, 6.0, 7.0).to(D)
    s = project_depth(
        pose_to_camera(
            v[None],
            torch.tensor([[0.3, 0.2, 0.1]], dtype=D),
            torch.tensor([[0.0, 0.0, 4.0]], dtype=D),
        ),
        K,
    )
    p2f, bary, z = rasterize_reference(s, f, (14, 12), cull_backfaces=True)
    fr = rasterize(s, f, (14, 12), cull_backfaces=True)
    assert (
        torch.equal(fr.pix_to_face, p2f)
        and torch.allclose(fr.bary, bary)
        and torch.allclose(fr.zbuf, z)
    )


def test_fit_render_face_is_the_renderer_path():
    """fit.render.render_face is a Renderer render: same image as the dense formula
    ``rho * sh_shading(normalize(interp(n)), L)`` over black, same albedo and normals buffers."""
    from facelab.fit.render import render_face
    from facelab.geometry.camera import intrinsics, pose_to_camera, project_depth
    from facelab.geometry.mesh import vertex_normals
    from facelab.models import load
    from facelab.render import interpolate, rasterize, sh_ambient
    from facelab.render.shading import sh_shading

    m = load("builtin", dtype=torch.float64)
    B, S = 2, 64
    p = m.sample(B, torch.Generator().manual_seed(0))
    vc = pose_to_camera(
        m.vertices(p), p.rotation, p.translation + p.translation.new_tensor([0, 0, 30.0])
    )
    K = intrinsics(torch.full((B,), 150.0, dtype=torch.float64), 150.0, S / 2, S / 2)
    alb = torch.rand(B, m.n_vertices, 3, generator=torch.Generator().manual_seed(1)).double()
    L = sh_ambient(0.8, B, 3, dtype=torch.float64)
    L[:, 1:4] = 0.2
    r = render_face(vc, m.faces, alb, L, K, (S, S))
    frags = rasterize(project_depth(vc, K), m.faces, (S, S), cull_backfaces=True)
    buf = interpolate(torch.cat([alb, vertex_normals(vc, m.faces)], -1), frags, m.faces)
    n = torch.nn.functional.normalize(buf[..., 3:], dim=-1)
    ref = buf[..., :3] * sh_shading(n, L) * frags.mask[..., None]
    assert bool(frags.mask.any())
    assert torch.equal(r.fragments.pix_to_face, frags.pix_to_face)
    torch.testing.assert_close(r.image, ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(r.albedo, buf[..., :3] * frags.mask[..., None], atol=1e-12, rtol=0)
    torch.testing.assert_close(r.normals, n, atol=1e-12, rtol=0)
