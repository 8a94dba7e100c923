"""Tests of facelab.render.rasterize / interpolate: known answers, fill rule, oracle, gradients."""

from __future__ import annotations

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.geometry.camera import Camera, intrinsics, project_depth, unproject
from facelab.render import interpolate, rasterize, rasterize_reference
from facelab.render.shapes import grid_mesh, ico_sphere

D = torch.float64


def _tri(pts, z=(2.0, 2.0, 2.0)):
    v = torch.tensor([[[p[0], p[1], zz] for p, zz in zip(pts, z)]], dtype=D)
    return v, torch.tensor([[0, 1, 2]])


def _screen_bary(p, a, b, c):
    """Analytic barycentrics of 2D point p in triangle abc (solve the 2x2 system)."""
    T = torch.tensor([[a[0] - c[0], b[0] - c[0]], [a[1] - c[1], b[1] - c[1]]], dtype=D)
    l01 = torch.linalg.solve(T, torch.tensor([p[0] - c[0], p[1] - c[1]], dtype=D))
    return torch.tensor([l01[0], l01[1], 1 - l01[0] - l01[1]], dtype=D)


def test_single_triangle_coverage_and_barycentrics_analytic():
    pts = [(1.3, 1.1), (13.7, 3.2), (4.1, 10.6)]
    v, f = _tri(pts)
    fr = rasterize(v, f, (12, 16))
    n_cov = 0
    for i in range(12):
        for j in range(16):
            lam = _screen_bary((j + 0.5, i + 0.5), *pts)
            inside = bool((lam > 0).all())
            assert bool(fr.mask[0, i, j]) == inside, (i, j)
            if inside:
                n_cov += 1
                assert torch.allclose(fr.bary[0, i, j], lam, atol=1e-12)
                assert fr.zbuf[0, i, j].item() == pytest.approx(2.0)
            else:
                assert fr.pix_to_face[0, i, j] == -1 and fr.zbuf[0, i, j] == -1
    assert n_cov > 30
    assert fr.pix.numel() == n_cov and torch.equal(fr.face, torch.zeros(n_cov, dtype=torch.long))


def test_perspective_correct_barycentrics_hit_the_3d_triangle():
    # A slanted triangle in camera space: interpolating its 3D vertices with the barycentrics
    # must give the point where the pixel's ray meets the triangle's plane, at depth zbuf.
    K = intrinsics(40.0, 40.0, 16.0, 16.0).to(D)
    P = torch.tensor([[[-1.0, -1.0, 3.0], [1.5, -0.5, 6.0], [0.0, 1.2, 4.0]]], dtype=D)
    fr = rasterize(project_depth(P, K), torch.tensor([[0, 1, 2]]), 32)
    assert fr.pix.numel() > 50
    X = interpolate(P, fr)[fr.mask]  # (P, 3) interpolated camera-space points
    ii, jj = torch.nonzero(fr.mask[0], as_tuple=True)
    pix = torch.stack([jj + 0.5, ii + 0.5], -1).to(D).unsqueeze(0)
    ray_pts = unproject(pix, fr.zbuf[fr.mask].unsqueeze(0), K)[0]
    assert torch.allclose(X, ray_pts, atol=1e-10)
    n = torch.linalg.cross(P[0, 1] - P[0, 0], P[0, 2] - P[0, 0])
    assert torch.allclose((ray_pts - P[0, 0]) @ n, torch.zeros(len(X), dtype=D), atol=1e-10)
    # screen-space (affine) barycentrics would be wrong here: depth varies 3..6
    assert fr.bary.sum(-1)[fr.mask].sub(1).abs().max() < 1e-12


def test_overlapping_triangles_resolve_by_depth():
    near = [(1.0, 1.0), (15.0, 1.5), (2.0, 15.0)]
    far = [(15.0, 15.0), (0.5, 14.0), (14.0, 0.5)]
    v = torch.tensor([[[*p, 3.0] for p in near] + [[*p, 5.0] for p in far]], dtype=D)
    for faces in ([[0, 1, 2], [3, 4, 5]], [[3, 4, 5], [0, 1, 2]]):
        f = torch.tensor(faces)
        fr = rasterize(v, f, 16)
        near_id = faces.index([0, 1, 2])
        ref = rasterize(v, f[near_id : near_id + 1], 16)
        # wherever the near triangle covers, it wins, at its depth
        assert (fr.pix_to_face[ref.mask] == near_id).all()
        assert torch.allclose(fr.zbuf[ref.mask], torch.full_like(fr.zbuf[ref.mask], 3.0))
        only_far = fr.mask & ~ref.mask
        assert only_far.any() and torch.allclose(fr.zbuf[only_far], torch.tensor(5.0, dtype=D))
    # the far triangle in front now: flip depths
    v2 = v.clone()
    v2[0, :3, 2], v2[0, 3:, 2] = 5.0, 3.0
    fr = rasterize(v2, torch.tensor([[0, 1, 2], [3, 4, 5]]), 16)
    far_only = rasterize(v2, torch.tensor([[3, 4, 5]]), 16)
    assert (fr.pix_to_face[far_only.mask] == 1).all()


def test_coplanar_overlap_ties_go_to_the_lowest_face_index():
    # A big and a small triangle in the same plane z = 2: every overlapped pixel is a depth
    # tie (up to rounding in the last bit). The big one falls in a later size bucket of the
    # fast rasterizer, so candidate order alone would not give the reference's rule (nearest
    # wins, exact ties to the lowest face index).
    big = [[0.2, 0.3, 2.0], [15.7, 0.1, 2.0], [0.4, 15.9, 2.0]]
    small = [[2.1, 2.2, 2.0], [4.9, 2.3, 2.0], [2.2, 4.8, 2.0]]
    v = torch.tensor([big + small], dtype=D)
    small_mask = rasterize(v, torch.tensor([[3, 4, 5]]), 16).mask
    assert small_mask.sum() >= 3
    for faces in ([[0, 1, 2], [3, 4, 5]], [[3, 4, 5], [0, 1, 2]]):
        f = torch.tensor(faces)
        fr = rasterize(v, f, 16)
        torch.testing.assert_close(fr.zbuf[fr.mask], torch.full_like(fr.zbuf[fr.mask], 2.0))
        p2f, bary, zbuf = rasterize_reference(v, f, 16)
        assert torch.equal(fr.pix_to_face, p2f)
        torch.testing.assert_close(fr.bary, bary, atol=1e-12, rtol=0)


@pytest.mark.parametrize("jitter", [0.0, 0.37])
def test_adjacent_triangles_no_cracks_no_double_coverage(jitter):
    # A 6x6 grid whose vertices sit exactly on pixel centres (jitter 0: many edges pass
    # through pixel centres; every interior vertex is a pixel centre) or randomly jittered.
    g = torch.Generator().manual_seed(3)
    verts, faces = grid_mesh(6, 6, (18.0, 18.0), dtype=D)
    verts = verts[:, :2] + 9.0 + 3.5  # grid spans [3.5, 21.5]^2: corners at pixel centres
    if jitter:
        interior = ((verts > 3.6) & (verts < 21.4)).all(-1)
        verts[interior] += jitter * torch.randn(int(interior.sum()), 2, generator=g, dtype=D)
    # mirror some triangles' winding: the fill rule must not depend on it
    faces = faces.clone()
    faces[::3] = faces[::3].flip(1)
    v = torch.cat([verts, torch.full_like(verts[:, :1], 2.0)], -1).unsqueeze(0)
    count = torch.zeros(25, 25, dtype=torch.long)
    for k in range(faces.shape[0]):
        count += rasterize(v, faces[k : k + 1], 25).mask[0].long()
    assert count.max() == 1, "a pixel centre was covered by two triangles"
    # every pixel centre strictly inside the outer square is covered exactly once
    inner = torch.zeros(25, 25, dtype=torch.bool)
    inner[4:21, 4:21] = True
    assert (count[inner] == 1).all(), "crack between adjacent triangles"
    full = rasterize(v, faces, 25)
    assert torch.equal(full.mask[0].long(), count)


def _random_mesh(g, B=2, V=14, F=14, size=12.0):
    v = torch.rand(B, V, 3, generator=g, dtype=D)
    v[..., :2] = v[..., :2] * (size + 4) - 2
    v[..., 2] = 1 + 3 * v[..., 2]
    faces = set()
    while len(faces) < F:
        t = torch.randperm(V, generator=g)[:3].tolist()
        if tuple(sorted(t)) not in {tuple(sorted(x)) for x in faces}:
            faces.add(tuple(t))
    return v, torch.tensor(sorted(faces))


@pytest.mark.parametrize("cull", [False, True])
@pytest.mark.parametrize("size", [(11, 13), (26, 21)])  # small and large (> 16 px) triangles
def test_fast_matches_reference_rasterizer(cull, size):
    g = torch.Generator().manual_seed(7)
    v, f = _random_mesh(g, size=float(max(size)))
    v[1, :2, 2] = -0.5  # some triangles behind the camera in image 1
    v[0, 3] = (v[0, 4] + v[0, 5]) / 2  # and a degenerate one if (3,4,5) exists
    fr = rasterize(v, f, size, cull_backfaces=cull)
    p2f, bary, z = rasterize_reference(v, f, size, cull_backfaces=cull)
    assert fr.mask.sum() > 40
    assert torch.equal(fr.pix_to_face, p2f)
    assert torch.allclose(fr.bary, bary, atol=1e-12)
    assert torch.allclose(fr.zbuf, z, atol=1e-12)


def test_behind_camera_and_degenerate_triangles_dropped():
    v, f = _tri([(1.0, 1.0), (10.0, 2.0), (3.0, 9.0)], z=(2.0, -1.0, 2.0))
    assert not rasterize(v, f, 12).mask.any()
    v, f = _tri([(1.0, 1.0), (5.0, 5.0), (9.0, 9.0)])  # collinear
    fr = rasterize(v.requires_grad_(), f, 12)
    assert not fr.mask.any()
    fr.bary.sum().backward()  # empty output still backpropagates (zero gradient)
    assert torch.equal(v.grad, torch.zeros_like(v))


def test_backface_culling_uses_viewer_counter_clockwise_as_front():
    verts, faces = grid_mesh(1, 1, dtype=D)
    cam = Camera.frontal(distance=3.0, image_size=16, dtype=D)
    s = cam.to_screen(verts.unsqueeze(0))
    assert rasterize(s, faces, 16, cull_backfaces=True).mask.sum() > 20
    assert not rasterize(s, faces.flip(1), 16, cull_backfaces=True).mask.any()


def test_batch_items_are_independent():
    g = torch.Generator().manual_seed(11)
    v, f = _random_mesh(g, B=3)
    fr = rasterize(v, f, 12)
    for b in range(3):
        one = rasterize(v[b : b + 1], f, 12)
        assert torch.equal(fr.pix_to_face[b], one.pix_to_face[0])
        assert torch.allclose(fr.bary[b], one.bary[0])


def test_sphere_normals_match_analytic():
    verts, faces = ico_sphere(4, dtype=D)
    K = intrinsics(100.0, 100.0, 32.0, 32.0).to(D)
    center = torch.tensor([0.1, -0.2, 4.0], dtype=D)
    fr = rasterize(project_depth(verts.unsqueeze(0) + center, K), faces, 64)
    n = torch.nn.functional.normalize(interpolate(verts.unsqueeze(0), fr), dim=-1)[fr.mask]
    # analytic: intersect each pixel's ray with the unit sphere, normal = (x - c)
    ii, jj = torch.nonzero(fr.mask[0], as_tuple=True)
    pix = torch.stack([jj + 0.5, ii + 0.5], -1).to(D).unsqueeze(0)
    d = torch.nn.functional.normalize(unproject(pix, torch.ones(1, len(ii), dtype=D), K)[0], dim=-1)
    bq = d @ center
    disc = bq**2 - (center @ center - 1)
    hit = disc > 0.05  # away from the rim, where the polyhedron and the sphere differ most
    tnear = bq[hit] - disc[hit].sqrt()
    n_true = d[hit] * tnear.unsqueeze(1) - center
    cos = (n[hit] * n_true).sum(-1)
    assert hit.sum() > 1000
    assert torch.rad2deg(torch.acos(cos.clamp(max=1))).max() < 2.0
    # coverage matches the analytic disc up to the polyhedral rim
    assert abs(int(fr.mask.sum()) - int((disc > 0).sum())) < 0.03 * int((disc > 0).sum())


def test_interpolate_gradcheck_attributes_and_positions():
    v = torch.tensor(
        [[[1.3, 0.9, 2.0], [7.6, 1.7, 3.0], [2.2, 7.4, 2.5], [7.9, 7.1, 4.0]]], dtype=D
    )
    f = torch.tensor([[0, 1, 2], [1, 3, 2]])
    attrs = torch.randn(1, 4, 2, dtype=D, generator=torch.Generator().manual_seed(0))

    def fn(verts, a):
        fr = rasterize(verts, f, 9)
        return interpolate(a, fr), fr.zbuf

    assert torch.autograd.gradcheck(fn, (v.requires_grad_(), attrs.requires_grad_()))


def test_interpolate_shared_attrs_and_uv_topology():
    v, f = _tri([(1.0, 1.0), (10.0, 2.0), (3.0, 9.0)])
    fr = rasterize(v, f, 12)
    a = torch.tensor([[1.0], [2.0], [3.0]], dtype=D)
    img = interpolate(a, fr, background=-1.0)
    assert img.shape == (1, 12, 12, 1)
    assert (img[~fr.mask] == -1).all()
    # per-wedge attributes with another index buffer of the same number of faces
    a4 = torch.tensor([[9.0], [1.0], [2.0], [3.0]], dtype=D)
    assert torch.allclose(interpolate(a4, fr, faces=torch.tensor([[1, 2, 3]])), interpolate(a, fr))
    with pytest.raises(InvalidInput, match="triangles"):
        interpolate(a4, fr, faces=torch.tensor([[1, 2, 3], [0, 1, 2]]))


def test_invalid_inputs():
    with pytest.raises(InvalidInput, match="verts_screen"):
        rasterize(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), 8)
    with pytest.raises(InvalidInput, match="outside"):
        rasterize(torch.zeros(1, 3, 3), torch.tensor([[0, 1, 3]]), 8)
    with pytest.raises(InvalidInput, match="integer"):
        rasterize(torch.zeros(1, 3, 3), torch.tensor([[0.0, 1.0, 2.0]]), 8)
