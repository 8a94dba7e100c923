"""Tests for facelab.geometry.mesh: Mesh validation, normals, areas, triangulation, submeshes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facelab.errors import InvalidInput
from facelab.geometry.mesh import (
    Mesh,
    face_areas,
    face_normals,
    icosphere,
    quads_to_triangles,
    remove_unreferenced,
    submesh,
    submesh_faces,
    triangulate_polygons,
    unweld_uv_seams,
    vertex_normals,
)

D = torch.float64


def _square():
    v = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=D)
    return v, torch.tensor([[0, 1, 2, 3]])


def test_quads_to_triangles_preserves_orientation_and_area():
    v, q = _square()
    t = quads_to_triangles(q)
    assert t.tolist() == [[0, 1, 2], [0, 2, 3]]
    n = face_normals(v, t)
    torch.testing.assert_close(n, torch.tensor([[0, 0, 1.0], [0, 0, 1.0]], dtype=D))
    assert float(face_areas(v, t).sum()) == pytest.approx(1.0)


def test_triangulate_polygons_mixed_sizes_list_and_padded():
    polys = [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9, 10, 11]]
    tris, owner = triangulate_polygons(polys)
    assert tris.tolist() == [[0, 1, 2], [3, 4, 5], [3, 5, 6], [7, 8, 9], [7, 9, 10], [7, 10, 11]]
    assert owner.tolist() == [0, 1, 1, 2, 2, 2]
    padded = np.array([[0, 1, 2, -1, -1], [3, 4, 5, 6, -1], [7, 8, 9, 10, 11]])
    tris2, owner2 = triangulate_polygons(padded)
    assert torch.equal(tris, tris2) and torch.equal(owner, owner2)
    with pytest.raises(InvalidInput, match="at least 3"):
        triangulate_polygons([[0, 1]])


def test_pentagon_fan_area():
    ang = torch.arange(5, dtype=D) * 2 * math.pi / 5
    v = torch.stack([ang.cos(), ang.sin(), torch.zeros(5, dtype=D)], 1)
    tris, _ = triangulate_polygons([[0, 1, 2, 3, 4]])
    expected = 5 / 2 * math.sin(2 * math.pi / 5)
    assert float(face_areas(v, tris).sum()) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("level", [2, 3])
def test_icosphere_vertex_normals_match_analytic(level):
    v, f = icosphere(level, dtype=D)
    assert f.shape == (20 * 4**level, 3)
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(len(v), dtype=D))
    n = vertex_normals(v, f)
    err = (n - v).norm(dim=-1).max()
    assert err < 0.03  # area weighting on a non-uniform tessellation: small, shrinking error
    # face normals point outwards
    assert (face_normals(v, f) * v[f].mean(1)).sum(-1).min() > 0.9
    # total area converges to 4 pi from below
    area = float(face_areas(v, f).sum())
    assert 4 * math.pi * 0.97 < area < 4 * math.pi


def test_vertex_normal_error_shrinks_with_subdivision():
    errs = []
    for level in (2, 3, 4):
        v, f = icosphere(level, dtype=D)
        errs.append(float((vertex_normals(v, f) - v).norm(dim=-1).max()))
    assert errs[0] > errs[1] > errs[2]


def test_vertex_normals_are_area_weighted():
    # vertex 0 shared by a big face in the xy-plane and a small face in the xz-plane
    v = torch.tensor(
        [[0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 0.0], [1, 0, 0], [0, 0, -1.0]], dtype=D
    )
    v[3] = v[0]
    f = torch.tensor([[0, 1, 2], [0, 5, 4]])
    n = vertex_normals(v, f)[0]
    a_big, a_small = 2.0, 0.5
    expected = torch.tensor([0.0, a_small, a_big], dtype=D)
    # second face normal: (v5 - v0) x (v4 - v0) = (0,0,-1) x (1,0,0) = (0,-1,0)
    expected[1] = -a_small
    torch.testing.assert_close(n, expected / expected.norm())


def test_degenerate_faces_give_finite_normals_and_gradients():
    v = torch.tensor([[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0], [5, 5, 5]], dtype=D)
    f = torch.tensor(
        [[0, 1, 2], [0, 1, 3], [1, 1, 1]]
    )  # collinear face, normal face, collapsed face
    vr = v.clone().requires_grad_(True)
    n = vertex_normals(vr, f)
    assert torch.isfinite(n).all()
    torch.testing.assert_close(n[4], torch.zeros(3, dtype=D))  # unreferenced vertex -> zero
    torch.testing.assert_close(n[3], torch.tensor([0, 0, 1.0], dtype=D))
    fn = face_normals(vr, f)
    assert torch.isfinite(fn).all() and float(fn[0].detach().norm()) == 0.0
    (n.sum() + fn.sum() + face_areas(vr, f).sum()).backward()
    assert torch.isfinite(vr.grad).all()


def test_batched_normals_match_unbatched():
    v, f = icosphere(1, dtype=D)
    g = torch.Generator().manual_seed(0)
    vb = v[None] * (1 + 0.1 * torch.rand(3, len(v), 1, generator=g, dtype=D))
    nb = vertex_normals(vb, f)
    assert nb.shape == (3, len(v), 3)
    for b in range(3):
        torch.testing.assert_close(nb[b], vertex_normals(vb[b], f))
    assert face_areas(vb, f).shape == (3, len(f))


def test_gradcheck_vertex_normals():
    v, f = icosphere(0, dtype=D)
    g = torch.Generator().manual_seed(1)
    v = (v + 0.05 * torch.randn(v.shape, generator=g, dtype=D)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: vertex_normals(x, f), (v,))


def test_mesh_validation_errors():
    v, f = icosphere(0)
    with pytest.raises(InvalidInput, match="empty mesh"):
        Mesh(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long))
    with pytest.raises(InvalidInput, match="out of range"):
        Mesh(v, f + 1)
    with pytest.raises(InvalidInput, match="out of range"):
        Mesh(v, f - 1)
    bad = v.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(InvalidInput, match="NaN"):
        Mesh(bad, f)
    with pytest.raises(InvalidInput, match="quads_to_triangles"):
        Mesh(v, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(InvalidInput, match="uv_faces"):
        Mesh(v, f, uvs=torch.zeros(len(v) + 1, 2))
    with pytest.raises(InvalidInput, match="vertex_colors"):
        Mesh(v, f, vertex_colors=torch.zeros(len(v), 4))
    with pytest.raises(InvalidInput, match=r"\(F, 3\)"):
        vertex_normals(v, torch.zeros(3, 4, dtype=torch.long))


def test_mesh_accepts_numpy_and_per_vertex_uvs():
    v, f = icosphere(0)
    m = Mesh(v.numpy(), f.numpy().astype(np.int32), uvs=np.zeros((len(v), 2)))
    assert m.faces.dtype == torch.long and torch.equal(m.uv_faces, m.faces)
    assert m.num_verts == 12 and m.num_faces == 20
    assert m.to(dtype=D).verts.dtype == D


def _grid(n=4):
    """(n x n) vertex grid in the z=0 plane, two triangles per cell, with per-vertex uvs."""
    ii, jj = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    v = torch.stack([jj, ii, torch.zeros_like(ii)], -1).reshape(-1, 3).float()
    idx = torch.arange(n * n).reshape(n, n)
    q = torch.stack([idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]], -1).reshape(-1, 4)
    f = quads_to_triangles(q)
    return Mesh(v, f, uvs=v[:, :2] / (n - 1), uv_faces=f, vertex_colors=v / n)


def test_submesh_reindexes_faces_uvs_and_returns_map():
    m = _grid(4)
    mask = m.verts[:, 0] <= 1  # left two columns: 8 vertices, 3 cells = 6 triangles
    sub, old_to_new = submesh(m, mask)
    assert sub.num_verts == 8 and sub.num_faces == 6
    assert (old_to_new >= 0).sum() == 8 and (old_to_new[~mask] == -1).all()
    torch.testing.assert_close(sub.verts, m.verts[mask])
    # every new face is an old face mapped through old_to_new
    keep = mask[m.faces].all(1)
    assert torch.equal(sub.faces, old_to_new[m.faces[keep]])
    torch.testing.assert_close(sub.uvs[sub.uv_faces], m.uvs[m.uv_faces[keep]])
    torch.testing.assert_close(sub.vertex_colors, m.vertex_colors[mask])
    # index list form is equivalent
    sub2, map2 = m.submesh(torch.nonzero(mask).squeeze(1))
    assert torch.equal(sub2.faces, sub.faces) and torch.equal(map2, old_to_new)
    f2, map3, kept = submesh_faces(m.faces, mask, m.num_verts)
    assert torch.equal(f2, sub.faces) and torch.equal(kept, torch.nonzero(keep).squeeze(1))
    with pytest.raises(InvalidInput, match="empty"):
        submesh(m, torch.zeros(m.num_verts, dtype=torch.bool))


def test_remove_unreferenced():
    v, f = icosphere(0)
    extra = torch.cat([v[:3] * 10, v, v[:2] * 10])  # 3 junk vertices in front, 2 at the end
    m = Mesh(extra, f + 3)
    clean, old_to_new = remove_unreferenced(m)
    torch.testing.assert_close(clean.verts, v)
    assert torch.equal(clean.faces, f)
    assert old_to_new[:3].tolist() == [-1, -1, -1] and old_to_new[-2:].tolist() == [-1, -1]


def test_unweld_uv_seams():
    # two triangles sharing an edge, with different uvs on the shared edge (a seam)
    v = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.0]])
    f = torch.tensor([[0, 1, 2], [2, 1, 3]])
    uvs = torch.tensor([[0, 0], [0.5, 0], [0, 0.5], [0.6, 0], [0.6, 0.5], [1, 0.5]])
    uf = torch.tensor([[0, 1, 2], [4, 3, 5]])
    m = Mesh(v, f, uvs, uf)
    u, src = unweld_uv_seams(m)
    assert u.num_verts == 6
    torch.testing.assert_close(u.verts, v[src])
    torch.testing.assert_close(u.verts[u.faces], v[f])
    torch.testing.assert_close(u.uvs[u.uv_faces], uvs[uf])
