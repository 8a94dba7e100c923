"""Tests of facelab.metrics: analytic known answers for every error measure."""

from __future__ import annotations

import math

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.metrics import (
    NOW_LANDMARKS_IBUG,
    aligned_vertex_error,
    apply_similarity,
    brute_force_closest_points,
    closest_point_on_triangles,
    closest_points_on_mesh,
    landmark_nme,
    point_triangle_distance,
    rigid_icp,
    scan_to_mesh_error,
    similarity_transform,
)

D = torch.float64


def _rot(axis, angle_deg):
    a = torch.tensor(axis, dtype=D)
    a = a / a.norm()
    th = math.radians(angle_deg)
    k = torch.tensor([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]], dtype=D)
    return torch.eye(3, dtype=D) + math.sin(th) * k + (1 - math.cos(th)) * k @ k


def _grid(n=21, size=2.0, height=None):
    """A triangulated grid over [-size/2, size/2]^2, z = height(x, y)."""
    xs = torch.linspace(-size / 2, size / 2, n, dtype=D)
    yy, xx = torch.meshgrid(xs, xs, indexing="ij")
    zz = torch.zeros_like(xx) if height is None else height(xx, yy)
    v = torch.stack([xx, yy, zz], -1).reshape(-1, 3)
    i = torch.arange(n * n).reshape(n, n)
    a, b, c, d = i[:-1, :-1], i[:-1, 1:], i[1:, :-1], i[1:, 1:]
    f = torch.cat([torch.stack([a, b, d], -1), torch.stack([a, d, c], -1)]).reshape(-1, 3)
    return v, f


def _face_like(n=31):
    """A curved, asymmetric surface (a bumpy cap) with 7 'landmark' vertices."""
    v, f = _grid(
        n,
        2.0,
        lambda x, y: (
            0.6 * torch.exp(-(x**2 + y**2) * 1.5)
            + 0.15 * torch.exp(-((x - 0.3) ** 2 + (y + 0.2) ** 2) * 10)
            + 0.1 * x * y
        ),
    )
    pick = [(-0.6, 0.4), (-0.2, 0.4), (0.2, 0.4), (0.6, 0.4), (0.0, 0.0), (-0.4, -0.5), (0.4, -0.5)]
    lm_idx = [int(((v[:, :2] - torch.tensor(p, dtype=D)) ** 2).sum(-1).argmin()) for p in pick]
    return v, f, torch.tensor(lm_idx)


# --------------------------------------------------------------------------- landmark NME


def _ibug68(seed=0):
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(68, 2, generator=g, dtype=D) * 100
    # Place the eyes deterministically: left eye points around (30, 40), right eye around (70, 40).
    ang = torch.linspace(0, 2 * math.pi, 7, dtype=D)[:6]
    ring = torch.stack([torch.cos(ang), torch.sin(ang)], -1) * 5
    pts[36:42] = ring + torch.tensor([30.0, 40.0], dtype=D)
    pts[42:48] = ring + torch.tensor([70.0, 40.0], dtype=D)
    return pts


def test_nme_constant_offset_known_answer():
    gt = _ibug68()[None]
    pred = gt + torch.tensor([3.0, 4.0], dtype=D)  # every point off by 5 px
    # Eye centres at (30,40) and (70,40): inter-ocular 40 px.
    assert landmark_nme(pred, gt, "inter_ocular").item() == pytest.approx(5 / 40)
    # Outer corners 36 = (35, 40), 45 = (70 + 5 cos(180 deg), 40) = (65, 40): 30 px.
    assert landmark_nme(pred, gt, "outer_eye").item() == pytest.approx(5 / 30)
    span = gt[0].amax(0) - gt[0].amin(0)
    assert landmark_nme(pred, gt, "bbox").item() == pytest.approx(5 / math.sqrt(span[0] * span[1]))


def test_nme_visibility_and_batch():
    gt = torch.stack([_ibug68(0), _ibug68(1)])
    pred = gt.clone()
    pred[0, 0] += torch.tensor([40.0, 0.0], dtype=D)
    vis = torch.ones(2, 68, dtype=torch.bool)
    nme = landmark_nme(pred, gt)
    assert nme[0].item() == pytest.approx(40 / 68 / 40)
    assert nme[1].item() == 0
    vis[0, 0] = False
    assert landmark_nme(pred, gt, visible=vis)[0].item() == 0


def test_nme_errors():
    gt = torch.rand(1, 5, 2)
    with pytest.raises(InvalidInput, match="68 iBUG"):
        landmark_nme(gt, gt, "inter_ocular")
    with pytest.raises(InvalidInput, match="normalization"):
        landmark_nme(gt, gt, "pupils")
    with pytest.raises(InvalidInput, match="shape"):
        landmark_nme(gt, torch.rand(1, 6, 2), "bbox")
    bad = gt.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(InvalidInput, match="NaN"):
        landmark_nme(bad, gt, "bbox")
    assert landmark_nme(gt + 1, gt, "bbox").shape == (1,)


# --------------------------------------------------------------------------- point-triangle


TRI = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=D)


@pytest.mark.parametrize(
    "p,expected",
    [
        ((0.2, 0.2, 0.7), 0.7),  # above the interior
        ((0.2, 0.2, -0.3), 0.3),  # below
        ((-1.0, -1.0, 0.0), math.sqrt(2)),  # vertex a region
        ((2.0, -0.5, 0.0), math.sqrt(1 + 0.25)),  # vertex b region
        ((0.5, -1.0, 2.0), math.sqrt(1 + 4)),  # edge ab region
        ((1.0, 1.0, 0.0), 1 / math.sqrt(2)),  # edge bc (hypotenuse)
        ((-0.5, 0.5, 0.0), 0.5),  # edge ac
        ((-0.5, 2.0, 0.0), math.sqrt(0.25 + 1)),  # vertex c region
    ],
)
def test_point_triangle_distance_regions(p, expected):
    d = point_triangle_distance(torch.tensor(p, dtype=D), TRI[0], TRI[1], TRI[2])
    assert d.item() == pytest.approx(expected, abs=1e-12)


def test_closest_point_is_optimal_on_random_triangles():
    g = torch.Generator().manual_seed(1)
    p = torch.randn(500, 3, generator=g, dtype=D) * 2
    a, b, c = (torch.randn(500, 3, generator=g, dtype=D) for _ in range(3))
    q = closest_point_on_triangles(p, a, b, c)
    d = (p - q).norm(dim=-1)
    # q lies on the triangle: barycentric coordinates in [0, 1].
    m = torch.stack([b - a, c - a], -1)
    uv = torch.linalg.lstsq(m, (q - a)[..., None]).solution[..., 0]
    assert bool((uv >= -1e-9).all()) and bool((uv.sum(-1) <= 1 + 1e-9).all())
    # No sampled triangle point is closer.
    w = torch.rand(500, 400, 3, generator=g, dtype=D)
    w = w / w.sum(-1, keepdim=True)
    samples = w[..., 0:1] * a[:, None] + w[..., 1:2] * b[:, None] + w[..., 2:3] * c[:, None]
    ds = (samples - p[:, None]).norm(dim=-1).amin(1)
    assert bool((d <= ds + 1e-12).all())


def test_degenerate_triangle_is_a_segment():
    a = torch.tensor([0.0, 0, 0], dtype=D)
    b = torch.tensor([2.0, 0, 0], dtype=D)
    d = point_triangle_distance(torch.tensor([1.0, 3.0, 0.0], dtype=D), a, b, b)
    assert d.item() == pytest.approx(3.0)


def test_distance_gradient_matches_finite_differences():
    p = torch.tensor([[0.2, 0.3, 0.5], [1.5, -0.2, 0.4]], dtype=D, requires_grad=True)
    tri = (TRI + 0.01 * torch.arange(9, dtype=D).reshape(3, 3)).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda p, t: point_triangle_distance(p, t[0], t[1], t[2]), (p, tri)
    )


def test_kdtree_search_equals_brute_force():
    g = torch.Generator().manual_seed(2)
    v, f, _ = _face_like(15)
    # Add a few huge triangles so the centroid certificate fails for some points.
    v = torch.cat([v, torch.tensor([[-5.0, -5, 1], [5, -5, 1.2], [0, 6, 0.8]], dtype=D)])
    n = v.shape[0]
    f = torch.cat([f, torch.tensor([[n - 3, n - 2, n - 1]])])
    pts = torch.randn(400, 3, generator=g, dtype=D)
    d, idx, cp = closest_points_on_mesh(pts, v, f, k=4)
    d0, _, cp0 = brute_force_closest_points(pts, v[f], chunk=10_000)
    assert torch.allclose(d, d0, atol=1e-12)
    assert torch.allclose(cp, cp0, atol=1e-9)
    # The reported triangle attains the distance.
    t = v[f[idx]]
    assert torch.allclose(point_triangle_distance(pts, t[:, 0], t[:, 1], t[:, 2]), d)


# --------------------------------------------------------------------------- alignment


def test_similarity_transform_recovers_known_transform():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 50, 3, generator=g, dtype=D)
    r = torch.stack([_rot((1, 2, 3), 40), _rot((0, 1, 0), -120)])
    s = torch.tensor([1.7, 0.4], dtype=D)
    t = torch.tensor([[1.0, -2, 3], [0.5, 0.5, 0.5]], dtype=D)
    y = apply_similarity(x, s, r, t)
    s2, r2, t2 = similarity_transform(x, y)
    assert torch.allclose(s2, s) and torch.allclose(r2, r) and torch.allclose(t2, t)
    # Rigid mode keeps s = 1 and a proper rotation, even for a mirrored target.
    _, rr, _ = similarity_transform(x[0], x[0] * torch.tensor([-1.0, 1, 1], dtype=D), scale=False)
    assert torch.det(rr).item() == pytest.approx(1.0)


def test_aligned_vertex_error():
    g = torch.Generator().manual_seed(4)
    gt = torch.randn(1, 200, 3, generator=g, dtype=D)
    moved = apply_similarity(
        gt, torch.tensor([2.5], dtype=D), _rot((1, 1, 0), 30)[None], torch.ones(1, 3, dtype=D)
    )
    out = aligned_vertex_error(moved, gt, units_to_mm=10)
    assert out["mean"].item() == pytest.approx(0, abs=1e-9)
    assert torch.allclose(out["aligned"], gt, atol=1e-9)
    # Rigid alignment cannot undo the scale: a 2x copy of a centred cloud keeps |x| error.
    gt0 = gt - gt.mean(1, keepdim=True)
    out = aligned_vertex_error(2 * gt0, gt0, scale=False)
    assert out["mean"].item() == pytest.approx(gt0.norm(dim=-1).mean().item(), rel=1e-9)
    # A single displaced vertex: median stays 0 with a similarity fit on the others (mask).
    noisy = gt.clone()
    noisy[0, 0] += 1.0
    mask = torch.ones(200, dtype=torch.bool)
    mask[0] = False
    out = aligned_vertex_error(noisy, gt, mask=mask)
    assert out["median"].item() == pytest.approx(0, abs=1e-9)
    assert out["per_vertex"].shape == (1, 199)


# --------------------------------------------------------------------------- scan-to-mesh


def test_plane_and_points_at_known_heights():
    v, f = _grid(11, 4.0)
    g = torch.Generator().manual_seed(5)
    xy = torch.rand(300, 2, generator=g, dtype=D) * 3 - 1.5
    h = torch.rand(300, generator=g, dtype=D) * 0.2 - 0.1
    pts = torch.cat([xy, h[:, None]], -1)
    d, _, _ = closest_points_on_mesh(pts, v, f)
    assert torch.allclose(d, h.abs(), atol=1e-12)
    # Through the full metric, with the identity landmark alignment and no ICP, in mm (x10).
    lm = torch.tensor(
        [
            [-1, 1, 0],
            [-0.5, 1, 0],
            [0.5, 1, 0],
            [1, 1, 0],
            [0, 0, 0.0],
            [-0.7, -1, 0],
            [0.7, -1, 0],
        ],
        dtype=D,
    )
    # Coplanar landmarks are fine for Umeyama (rank-2 covariance, det fix).
    res = scan_to_mesh_error(pts, v, f, lm, lm, icp_iterations=0, units_to_mm=10.0)
    assert res.median == pytest.approx(float((h.abs() * 10).median()), abs=1e-9)
    assert res.mean == pytest.approx(float((h.abs() * 10).mean()), abs=1e-9)
    assert res.std == pytest.approx(float((h.abs() * 10).std()), abs=1e-9)


def test_mesh_vs_itself_is_zero():
    v, f, lm = _face_like()
    res = scan_to_mesh_error((v, f), v, f, v[lm], v[lm], crop_radius=0.9)
    assert res.median == pytest.approx(0, abs=1e-9) and res.mean == pytest.approx(0, abs=1e-9)
    # The crop kept only points near the nose tip (landmark 4).
    assert res.distances.numel() < v.shape[0]
    assert res.distances.numel() == int(((v - v[lm[4]]).norm(dim=-1) <= 0.9).sum())


def test_icp_recovers_rigid_motion_from_noisy_landmarks():
    v, f, lm = _face_like()
    r = _rot((0.3, 1, 0.2), 25)
    t = torch.tensor([3.0, -1.0, 2.0], dtype=D)
    moved = v @ r.T + t  # the prediction lives in another frame
    g = torch.Generator().manual_seed(6)
    noisy_lm = moved[lm] + 0.04 * torch.randn(7, 3, generator=g, dtype=D)
    no_icp = scan_to_mesh_error(v, moved, f, v[lm], noisy_lm, icp_iterations=0, scale=False)
    with_icp = scan_to_mesh_error(
        v, moved, f, v[lm], noisy_lm, icp_iterations=10, scale=False, crop_radius=0.8
    )
    assert no_icp.median > 0.01
    assert with_icp.median < 1e-8
    assert torch.allclose(with_icp.aligned_verts, v, atol=1e-6)


def test_rigid_icp_reports_transform():
    v, f, _ = _face_like(21)
    r = _rot((1, 0, 0), 4)
    t = torch.tensor([0.02, 0.0, -0.03], dtype=D)
    moved, m, it = rigid_icp(v, v @ r.T + t, f, iterations=40)
    assert 2 <= it < 40
    assert torch.allclose(moved, v, atol=1e-8)
    assert torch.allclose(m[:3, :3] @ r, torch.eye(3, dtype=D), atol=1e-8)
    assert torch.allclose(m[:3, :3] @ t + m[:3, 3], torch.zeros(3, dtype=D), atol=1e-8)
    # The closed-form point-to-point variant converges too, only more slowly.
    moved2, _, _ = rigid_icp(v, v @ r.T + t, f, iterations=200, method="point_to_point")
    assert (moved2 - v).norm(dim=-1).max() < 0.2 * (v @ r.T + t - v).norm(dim=-1).max()
    with pytest.raises(InvalidInput, match="method"):
        rigid_icp(v, v, f, method="nearest")


def test_scan_to_mesh_errors():
    v, f, lm = _face_like(11)
    with pytest.raises(InvalidInput, match="crop_radius"):
        # Scan landmarks far from the scan (wrong units, say): nothing survives the crop.
        scan_to_mesh_error(v + 100, v, f, v[lm], v[lm], crop_radius=1.0, icp_iterations=0)
    with pytest.raises(InvalidInput, match=r"\(7, 3\)"):
        scan_to_mesh_error(v, v, f, v[:6], v[:6])
    assert NOW_LANDMARKS_IBUG == (36, 39, 42, 45, 30, 48, 54)
