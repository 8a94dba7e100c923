"""Exact point-to-triangle distances, batched in torch, with a KD-tree candidate search.

The closest point of a triangle ``(a, b, c)`` to a point ``p`` lies in one of seven Voronoi
regions of the triangle: a vertex, an edge, or the face interior (Ericson, *Real-Time
Collision Detection*, 5.1.5). With ``ab = b - a``, ``ac = c - a``, ``ap = p - a`` and the dot
products ``d1 = ab.ap``, ``d2 = ac.ap`` (and ``d3..d6`` for ``bp``, ``cp``), the region tests
are sign tests on these dot products and on the barycentric "areas"
``vc = d1 d4 - d3 d2``, ``vb = d5 d2 - d1 d6``, ``va = d3 d6 - d5 d4``; inside the face the
closest point is ``a + v ab + w ac`` with ``v = vb / (va + vb + vc)``, ``w = vc / (va+vb+vc)``.

:func:`closest_points_on_mesh` finds, for every query point, the exact closest point on a
triangle mesh. A brute-force search costs ``N x F``; instead we take the ``k`` triangles whose
centroids are nearest (scipy's cKDTree), compute exact distances to them, and *prove* the
answer: any triangle ``t`` is at least ``|p - c_t| - r_t`` away (``c_t`` centroid, ``r_t`` its
circumradius about the centroid), so when the ``k``-th centroid distance minus ``max r`` is
not below the best exact distance, no other triangle can be closer. Points that fail the
test fall back to an exact chunked brute force over all triangles.
"""

from __future__ import annotations

import numpy as np
import torch

from .._checks import check_shape


def closest_point_on_triangles(
    p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    """Closest point on triangle ``(a, b, c)`` to ``p``, elementwise (Ericson's algorithm).

    Args:
        p, a, b, c: broadcastable ``(..., 3)`` tensors.

    Returns:
        ``(..., 3)`` closest points (degenerate triangles are handled: the result is the
        closest point of one of their edges / vertices).
    """
    p, a, b, c = torch.broadcast_tensors(p, a, b, c)
    ab, ac, ap = b - a, c - a, p - a
    d1 = (ab * ap).sum(-1)
    d2 = (ac * ap).sum(-1)
    bp = p - b
    d3 = (ab * bp).sum(-1)
    d4 = (ac * bp).sum(-1)
    cp = p - c
    d5 = (ab * cp).sum(-1)
    d6 = (ac * cp).sum(-1)
    vc = d1 * d4 - d3 * d2
    vb = d5 * d2 - d1 * d6
    va = d3 * d6 - d5 * d4

    tiny = torch.finfo(p.dtype).tiny

    def safe_div(n: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return n / torch.where(d.abs() > tiny, d, torch.ones_like(d))

    # Face interior (default).
    denom = va + vb + vc
    v = safe_div(vb, denom)
    w = safe_div(vc, denom)
    out = a + v[..., None] * ab + w[..., None] * ac
    # Edge BC.
    e_bc = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
    w_bc = safe_div(d4 - d3, (d4 - d3) + (d5 - d6))
    out = torch.where(e_bc[..., None], b + w_bc[..., None] * (c - b), out)
    # Edge AC.
    e_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    w_ac = safe_div(d2, d2 - d6)
    out = torch.where(e_ac[..., None], a + w_ac[..., None] * ac, out)
    # Edge AB.
    e_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    v_ab = safe_div(d1, d1 - d3)
    out = torch.where(e_ab[..., None], a + v_ab[..., None] * ab, out)
    # Vertex regions (tested last so they win).
    out = torch.where(((d6 >= 0) & (d5 <= d6))[..., None], c, out)
    out = torch.where(((d3 >= 0) & (d4 <= d3))[..., None], b, out)
    out = torch.where(((d1 <= 0) & (d2 <= 0))[..., None], a, out)
    # Degenerate triangles (zero area) can land in no region consistently: fall back to the
    # best of the three edges' closest points.
    degenerate = denom.abs() <= tiny
    if bool(degenerate.any()):
        best = out
        best_d = torch.full_like(d1, float("inf"))
        for s, e in ((a, b), (b, c), (a, c)):
            se = e - s
            t = safe_div(((p - s) * se).sum(-1), (se * se).sum(-1)).clamp(0, 1)
            q = s + t[..., None] * se
            dq = (p - q).norm(dim=-1)
            better = degenerate & (dq < best_d)
            best = torch.where(better[..., None], q, best)
            best_d = torch.where(better, dq, best_d)
        out = best
    return out


def point_triangle_distance(
    p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    """Exact Euclidean distance from ``p`` to triangle ``(a, b, c)``; shapes ``(..., 3) -> (...)``."""
    return (p - closest_point_on_triangles(p, a, b, c)).norm(dim=-1)


def brute_force_closest_points(
    points: torch.Tensor, tri: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact closest points over *all* triangles (the slow, obvious twin of
    :func:`closest_points_on_mesh`). points ``(N, 3)``, tri ``(F, 3, 3)`` -> (dist, index, point)."""
    n, f = points.shape[0], tri.shape[0]
    rows = max(1, chunk // max(f, 1))
    dist = points.new_empty(n)
    idx = torch.empty(n, dtype=torch.long, device=points.device)
    cp = points.new_empty(n, 3)
    for s in range(0, n, rows):
        p = points[s : s + rows, None, :]
        q = closest_point_on_triangles(p, tri[None, :, 0], tri[None, :, 1], tri[None, :, 2])
        d = (p - q).norm(dim=-1)
        dm, im = d.min(1)
        dist[s : s + rows] = dm
        idx[s : s + rows] = im
        cp[s : s + rows] = q[torch.arange(len(im), device=q.device), im]
    return dist, idx, cp


def closest_points_on_mesh(
    points: torch.Tensor,
    verts: torch.Tensor,
    faces: torch.Tensor,
    k: int = 16,
    chunk: int = 2_000_000,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact closest points on a triangle mesh surface.

    Args:
        points: ``(N, 3)`` query points.
        verts: ``(V, 3)`` mesh vertices; faces: ``(F, 3)`` long.
        k: number of centroid-nearest candidate triangles tried first.
        chunk: max point-triangle pairs evaluated at once (memory bound).

    Returns:
        ``(dist (N,), face_index (N,) long, closest (N, 3))``: the exact distance, the triangle
        that attains it, and the closest surface point. Not differentiable through the search
        (the distance itself is differentiable w.r.t. ``points`` and ``verts``).
    """
    from scipy.spatial import cKDTree

    check_shape("points", points, (None, 3))
    check_shape("verts", verts, (None, 3))
    check_shape("faces", faces, (None, 3))
    faces = faces.long()
    tri = verts[faces]  # (F, 3, 3)
    n, f = points.shape[0], tri.shape[0]
    if n == 0:
        return points.new_empty(0), faces.new_empty(0), points.new_empty(0, 3)
    k = min(k, f)
    cen = tri.mean(1)
    rad = (tri - cen[:, None]).norm(dim=-1).amax(1)
    tree = cKDTree(cen.detach().cpu().double().numpy())
    cd, ci = tree.query(points.detach().cpu().double().numpy(), k=k)
    cd = np.asarray(cd, dtype=np.float64).reshape(n, k)
    ci = np.asarray(ci, dtype=np.int64).reshape(n, k)
    cand = torch.from_numpy(ci).to(points.device)
    t = tri[cand]  # (N, k, 3, 3)
    p = points[:, None, :]
    q = closest_point_on_triangles(p, t[:, :, 0], t[:, :, 1], t[:, :, 2])
    d = (p - q).norm(dim=-1)
    best, j = d.min(1)
    ar = torch.arange(n, device=points.device)
    idx = cand[ar, j]
    cp = q[ar, j]
    if k < f:
        # Certificate: a triangle outside the candidate set is >= |p - c_t| - r_t >=
        # kth_centroid_dist - r_max away. Points without the certificate get an exact ball
        # query: every triangle with |p - c_t| <= best + r_max is a candidate.
        rmax = float(rad.max())
        lower = torch.from_numpy(cd[:, -1]).to(best) - rmax
        bad = (lower < best.detach()).nonzero().flatten()
        if bad.numel():
            bad_np = bad.cpu().numpy()
            radii = best.detach()[bad].cpu().double().numpy() + rmax + 1e-12
            lists = tree.query_ball_point(
                points.detach()[bad].cpu().double().numpy(), r=radii, return_sorted=False
            )
            lens = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
            pi = np.repeat(np.arange(len(lists)), lens)
            ti = np.fromiter((i for x in lists for i in x), dtype=np.int64, count=int(lens.sum()))
            best, idx, cp = best.clone(), idx.clone(), cp.clone()
            for s in range(0, len(pi), max(1, chunk // 8)):
                pp = torch.from_numpy(bad_np[pi[s : s + chunk // 8]]).to(points.device)
                tt = torch.from_numpy(ti[s : s + chunk // 8]).to(points.device)
                tq = tri[tt]
                qq = closest_point_on_triangles(points[pp], tq[:, 0], tq[:, 1], tq[:, 2])
                dd = (points[pp] - qq).norm(dim=-1)
                # Per-pair update, resolving duplicates of one point by a scatter-min.
                cur = torch.full((n,), float("inf"), dtype=dd.dtype, device=dd.device)
                cur = cur.scatter_reduce(0, pp, dd.detach(), reduce="amin")
                win = (dd.detach() == cur[pp]) & (dd.detach() < best.detach()[pp])
                best[pp[win]] = dd[win]
                idx[pp[win]] = tt[win]
                cp[pp[win]] = qq[win]
    return best, idx, cp


__all__ = [
    "brute_force_closest_points",
    "closest_point_on_triangles",
    "closest_points_on_mesh",
    "point_triangle_distance",
]
