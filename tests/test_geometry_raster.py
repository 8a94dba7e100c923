"""Tests of facelab.geometry.raster: the top-left fill rule shared by the rasterizer and UV coverage."""

from __future__ import annotations

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.geometry.raster import covered_pixels, edge_table, gather_triangles, triangle_coverage
from facelab.render import rasterize


def _grid(n: int, size: float, jitter: float = 0.0, seed: int = 0):
    """A closed 2D triangle grid over ``[0, size]^2`` with ``n x n`` quads (vertex grid step
    ``size / n``); interior vertices moved by up to ``jitter`` pixels."""
    g = torch.Generator().manual_seed(seed)
    xs = torch.linspace(0, size, n + 1, dtype=torch.float64)
    y, x = torch.meshgrid(xs, xs, indexing="ij")
    pts = torch.stack([x.reshape(-1), y.reshape(-1)], -1)
    inner = ((pts > 0) & (pts < size)).all(1)
    pts[inner] += (torch.rand(int(inner.sum()), 2, generator=g, dtype=torch.float64) - 0.5) * jitter
    q = torch.arange((n + 1) ** 2).view(n + 1, n + 1)[:-1, :-1].reshape(-1)
    faces = torch.cat(
        [torch.stack([q, q + 1, q + n + 2], 1), torch.stack([q, q + n + 2, q + n + 1], 1)]
    )
    return pts, faces


def test_a_closed_mesh_covers_every_centre_exactly_once():
    # vertices on pixel centres (grid step 2 px starting at 0.5): many centres lie exactly on
    # shared edges and corners; the rule gives each to exactly one triangle
    pts, faces = _grid(6, 12.0)
    pts = pts + 0.5
    tri = gather_triangles(pts[None], faces)
    _, edges = edge_table(pts[None], faces, tri)
    tf, row, col = covered_pixels(tri, edges, torch.ones(1, len(faces), dtype=torch.bool), (13, 13))
    flat = row * 13 + col
    assert flat.numel() == flat.unique().numel()  # no pixel twice
    cov = triangle_coverage(pts, faces, 13)
    # centres (j + 0.5) with 0.5 <= j + 0.5 <= 12.5 lie in the closed square; the top-left
    # rule keeps the left and top borders and drops the right and bottom ones
    expect = torch.zeros(13, 13, dtype=torch.bool)
    expect[:12, :12] = True
    torch.testing.assert_close(cov, expect)
    assert flat.numel() == 144


def test_coverage_is_what_the_rasterizer_covers():
    pts, faces = _grid(7, 20.0, jitter=2.0, seed=3)
    pts = pts * torch.tensor([1.0, 0.8], dtype=torch.float64) + 1.7
    verts = torch.cat([pts, torch.ones(len(pts), 1, dtype=torch.float64)], 1)[None]
    frag = rasterize(verts, faces, (19, 23))
    torch.testing.assert_close(triangle_coverage(pts, faces, (19, 23)), frag.pix_to_face[0] >= 0)
    # winding does not change coverage; float32 follows the input
    torch.testing.assert_close(
        triangle_coverage(pts.float(), faces.flip(1), (19, 23)), frag.pix_to_face[0] >= 0
    )


def test_bad_inputs():
    pts, faces = _grid(2, 4.0)
    with pytest.raises(InvalidInput, match="integer"):
        triangle_coverage(pts, faces.double(), 4)
    with pytest.raises(InvalidInput, match="outside"):
        triangle_coverage(pts, faces + 100, 4)
    with pytest.raises(InvalidInput, match="positive"):
        triangle_coverage(pts, faces, 0)
    with pytest.raises(InvalidInput, match="floating"):
        triangle_coverage(pts.long(), faces, 4)
