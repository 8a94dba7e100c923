"""Small procedural meshes for tests, benchmarks and the book: ico-spheres and grids.

Triangles are counter-clockwise seen from outside (outward normals), in model space.
"""

from __future__ import annotations

import math

import torch

__all__ = ["grid_mesh", "ico_sphere"]


def ico_sphere(
    level: int = 2, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit ico-sphere: ``(verts (V, 3), faces (F, 3) long)``, ``F = 20 * 4**level``.

    Each level splits every triangle in four at its edge midpoints, pushed onto the sphere.
    """
    t = (1.0 + math.sqrt(5.0)) / 2.0
    v = [
        (-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0),
        (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
        (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1),
    ]  # fmt: skip
    f = [
        (0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11),
        (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6), (7, 1, 8),
        (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9),
        (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1),
    ]  # fmt: skip
    verts = [tuple(c / math.sqrt(1 + t * t) for c in p) for p in v]
    faces = list(f)
    for _ in range(level):
        cache: dict[tuple[int, int], int] = {}

        def mid(a: int, b: int, cache: dict[tuple[int, int], int] = cache) -> int:
            key = (min(a, b), max(a, b))
            if key not in cache:
                p = [(x + y) / 2 for x, y in zip(verts[a], verts[b])]
                n = math.sqrt(sum(c * c for c in p))
                verts.append(tuple(c / n for c in p))
                cache[key] = len(verts) - 1
            return cache[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    dtype = dtype or torch.get_default_dtype()
    return (
        torch.tensor(verts, dtype=dtype, device=device),
        torch.tensor(faces, dtype=torch.long, device=device),
    )


def grid_mesh(
    rows: int,
    cols: int,
    size: tuple[float, float] = (1.0, 1.0),
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A flat ``rows x cols`` quad grid in the z = 0 plane, centred, facing +z.

    Returns ``verts ((rows+1)*(cols+1), 3)`` and ``faces (2*rows*cols, 3)`` (each quad split
    along its diagonal).
    """
    dtype = dtype or torch.get_default_dtype()
    ys = torch.linspace(-size[1] / 2, size[1] / 2, rows + 1, dtype=dtype, device=device)
    xs = torch.linspace(-size[0] / 2, size[0] / 2, cols + 1, dtype=dtype, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    verts = torch.stack([xx, yy, torch.zeros_like(xx)], -1).reshape(-1, 3)
    idx = torch.arange((rows + 1) * (cols + 1), device=device).reshape(rows + 1, cols + 1)
    a, b = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1)
    c, d = idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1)
    faces = torch.cat([torch.stack([a, b, d], -1), torch.stack([a, d, c], -1)], 0)
    return verts, faces
