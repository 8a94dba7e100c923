"""3D reconstruction errors: aligned vertex error and the NoW-style scan-to-mesh error.

**Aligned vertex error** (same topology). A reconstruction is only defined up to a similarity
(the camera's depth/scale ambiguity), so first the prediction is aligned to the ground truth by
Umeyama's closed form,

.. math::  (s, R, t) = \\arg\\min \\sum_i \\lVert s R \\hat x_i + t - x_i \\rVert^2,

then the per-vertex distances :math:`e_i = \\lVert s R \\hat x_i + t - x_i \\rVert` are
summarised (mean, median).

**Scan-to-mesh error** (any topology; Sanyal et al., *RingNet*, CVPR 2019, the NoW benchmark):

1. crop the scan to a sphere of ``crop_radius`` around its nose tip;
2. align the predicted mesh to the scan with a similarity fitted to 7 landmarks (eye corners
   36, 39, 42, 45, nose tip 30, mouth corners 48, 54 in iBUG numbering, in this order);
3. refine with rigid ICP: each scan point is matched to its exact closest point on the
   predicted *surface*, and a rigid transform (scale kept) is re-solved, a few times;
4. report the median / mean / std of the scan-point-to-surface distances, in millimetres.

The metric is forgiving (the ICP hides pose and some shape errors), so always report the
model's mean face, aligned the same way, next to any method.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_finite, check_shape
from ..errors import InvalidInput
from ..geometry.alignment import apply_similarity, umeyama
from .distance import closest_points_on_mesh

#: iBUG-68 indices of the 7 NoW landmarks, in the order this module expects them.
NOW_LANDMARKS_IBUG = (36, 39, 42, 45, 30, 48, 54)
#: Position of the nose tip within :data:`NOW_LANDMARKS_IBUG`.
NOSE_TIP = 4


def similarity_transform(
    src: torch.Tensor,
    dst: torch.Tensor,
    weights: torch.Tensor | None = None,
    scale: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Umeyama's least-squares similarity ``dst ~ s R src + t`` (batched): the tuple form of
    :func:`facelab.geometry.alignment.umeyama`, the library's one implementation
    (``apply_similarity`` here is :func:`facelab.geometry.alignment.apply_similarity`).

    With centred point sets :math:`X, Y` (weighted means removed), the cross-covariance
    :math:`\\Sigma = Y^T W X / \\sum w = U D V^T`, :math:`S = \\mathrm{diag}(1, 1, \\det U V^T)`:
    :math:`R = U S V^T`, :math:`s = \\mathrm{tr}(D S) / \\sigma_X^2`, :math:`t = \\mu_Y - s R \\mu_X`.

    Args:
        src, dst: ``(B, N, 3)`` or ``(N, 3)``.
        weights: optional ``(B, N)`` / ``(N,)`` non-negative weights.
        scale: fit ``s`` (else ``s = 1``, a rigid transform).

    Returns:
        ``s (B,)``, ``R (B, 3, 3)``, ``t (B, 3)`` (unbatched inputs give unbatched outputs).
    """
    check_shape("src", src, (None, 3) if src.dim() == 2 else (None, None, 3))
    check_shape("dst", dst, tuple(src.shape))
    if src.shape[-2] < 3:
        raise InvalidInput(f"a 3D similarity needs at least 3 points, got {src.shape[-2]}")
    tf = umeyama(src, dst.to(src), weights, with_scale=scale)
    return tf.scale, tf.rotation, tf.translation


def aligned_vertex_error(
    pred: torch.Tensor,
    gt: torch.Tensor,
    scale: bool = True,
    mask: torch.Tensor | None = None,
    units_to_mm: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Per-vertex error after a similarity (or rigid) alignment of ``pred`` onto ``gt``.

    Args:
        pred, gt: ``(B, V, 3)`` meshes with the same topology (or ``(V, 3)``).
        scale: align with a similarity (``True``) or a rigid transform.
        mask: optional ``(V,)`` bool: the vertices used for both alignment and error.
        units_to_mm: factor from model units to millimetres (ICT is cm: 10).

    Returns:
        dict with ``"mean"``, ``"median"``, ``"rmse"`` ``(B,)`` in mm, ``"per_vertex"``
        ``(B, V')`` in mm and ``"aligned"`` ``(B, V, 3)`` (pred after alignment, model units).
    """
    if pred.dim() == 2:
        pred, gt = pred[None], gt[None]
    check_shape("pred", pred, (None, None, 3))
    check_shape("gt", gt, tuple(pred.shape))
    check_finite("pred", pred)
    check_finite("gt", gt)
    if mask is not None:
        if mask.shape != (pred.shape[1],):
            raise InvalidInput(f"mask must have shape ({pred.shape[1]},), got {tuple(mask.shape)}")
        p_sel, g_sel = pred[:, mask], gt[:, mask]
    else:
        p_sel, g_sel = pred, gt
    s, r, t = similarity_transform(p_sel, g_sel, scale=scale)
    aligned = apply_similarity(pred, s, r, t)
    a_sel = aligned[:, mask] if mask is not None else aligned
    e = (a_sel - g_sel).norm(dim=-1) * units_to_mm
    return {
        "mean": e.mean(1),
        "median": e.median(1).values,
        "rmse": e.square().mean(1).sqrt(),
        "per_vertex": e,
        "aligned": aligned,
    }


@dataclass
class ScanToMeshResult:
    """What :func:`scan_to_mesh_error` measured (distances in mm)."""

    median: float
    mean: float
    std: float
    distances: torch.Tensor  # (N,) mm, cropped scan points
    aligned_verts: torch.Tensor  # (V, 3) predicted mesh after alignment, scan units
    scale: float
    icp_iterations: int

    def as_dict(self) -> dict[str, float]:
        """``{"median", "mean", "std"}`` in mm (plus ``n_points``)."""
        return {
            "median": self.median,
            "mean": self.mean,
            "std": self.std,
            "n_points": int(self.distances.numel()),
        }


def _axis_angle_matrix(w: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula for one axis-angle vector ``w (3,)`` (internal, metrics only)."""
    th = w.norm()
    k = torch.zeros(3, 3, dtype=w.dtype, device=w.device)
    k[0, 1], k[0, 2], k[1, 2] = -w[2], w[1], -w[0]
    k = k - k.T
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    if float(th) < 1e-12:
        return eye + k
    return eye + torch.sin(th) / th * k + (1 - torch.cos(th)) / th**2 * k @ k


def rigid_icp(
    points: torch.Tensor,
    verts: torch.Tensor,
    faces: torch.Tensor,
    iterations: int = 10,
    tol: float = 1e-7,
    trim: float = 1.0,
    method: str = "point_to_plane",
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Rigidly move a mesh onto a point set (ICP, Besl & McKay 1992; Chen & Medioni 1992).

    Each iteration matches every point ``p_i`` to its exact closest surface point ``q_i``
    (triangle normal ``n_i``) and solves for a rigid motion of the mesh:

    * ``"point_to_point"``: ``min sum |R q_i + t - p_i|^2`` in closed form (Umeyama);
    * ``"point_to_plane"`` (default, converges in a few iterations): the linearised
      ``min sum ((q_i - p_i).n_i + w.(q_i x n_i) + t.n_i)^2`` over the small rotation ``w``
      and ``t`` (a 6x6 least squares), then ``R = exp([w]x)``.

    The loop stops when the mean distance improves by less than ``tol`` (relative).

    Args:
        points: ``(N, 3)`` target points (the scan).
        verts: ``(V, 3)`` mesh to move; faces ``(F, 3)``.
        iterations: maximum number of iterations.
        trim: fraction of the closest matches used in each solve (1 = all; 0.9 ignores the
            worst 10 %, robust to scan points beyond the mesh border).
        method: ``"point_to_plane"`` or ``"point_to_point"``.

    Returns:
        ``(moved verts (V, 3), total 4x4 transform (R|t), iterations run)``.
    """
    if method not in ("point_to_plane", "point_to_point"):
        raise InvalidInput(f"method must be 'point_to_plane' or 'point_to_point', got {method!r}")
    faces = faces.long()
    m = torch.eye(4, dtype=verts.dtype, device=verts.device)
    cur = verts
    prev = None
    it = 0
    for it in range(1, iterations + 1):  # noqa: B007
        d, fi, q = closest_points_on_mesh(points, cur, faces)
        meand = float(d.mean())
        if prev is not None and prev - meand <= tol * max(prev, 1e-30):
            break
        prev = meand
        p = points
        if trim < 1.0:
            keep = max(6, int(round(trim * d.numel())))
            sel = d.argsort()[:keep]
            p, q, fi = p[sel], q[sel], fi[sel]
        if method == "point_to_point":
            _, r, t = similarity_transform(q, p, scale=False)
        else:
            tri = cur[faces[fi]]
            n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            n = n / n.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(n.dtype).tiny)
            # Rotate about the matched points' centroid (better conditioned).
            c = q.mean(0)
            qc = q - c
            a = torch.cat([torch.linalg.cross(qc, n), n], 1)  # (N, 6)
            b = -((q - p) * n).sum(-1)
            ata = a.T @ a
            ata = ata + 1e-9 * ata.diagonal().mean() * torch.eye(6, dtype=a.dtype, device=a.device)
            x = torch.linalg.solve(ata, a.T @ b)
            r = _axis_angle_matrix(x[:3])
            t = c + x[3:] - r @ c
        cur = cur @ r.T + t
        step = torch.eye(4, dtype=verts.dtype, device=verts.device)
        step[:3, :3], step[:3, 3] = r, t
        m = step @ m
    return cur, m, it


def scan_to_mesh_error(
    scan: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    pred_verts: torch.Tensor,
    pred_faces: torch.Tensor,
    scan_landmarks7: torch.Tensor,
    pred_landmarks7: torch.Tensor,
    crop_radius: float | None = None,
    units_to_mm: float = 1.0,
    pred_units_to_scan: float = 1.0,
    icp_iterations: int = 10,
    scale: bool = True,
) -> ScanToMeshResult:
    """NoW-style scan-to-mesh error (see the module docstring for the four steps).

    Args:
        scan: the ground truth, ``(N, 3)`` points or a mesh ``(verts (N, 3), faces)`` (its
            vertices are used as the scan points), in scan units.
        pred_verts: ``(V, 3)`` predicted mesh; pred_faces ``(F, 3)`` long. Any topology.
        scan_landmarks7, pred_landmarks7: ``(7, 3)`` the 7 NoW landmarks
            (:data:`NOW_LANDMARKS_IBUG` order: eye corners, nose tip, mouth corners).
        crop_radius: keep scan points within this distance of the scan's nose tip (scan units;
            NoW uses 95 mm); ``None`` keeps all.
        units_to_mm: scan units -> millimetres (ICT cm: 10).
        pred_units_to_scan: prediction units -> scan units, applied before alignment (only
            matters when ``scale=False``).
        icp_iterations: rigid ICP refinements after the landmark alignment (0 = none).
        scale: the landmark alignment estimates a scale (NoW: yes).

    Returns:
        :class:`ScanToMeshResult` (``.as_dict()`` gives median / mean / std in mm).
    """
    if isinstance(scan, tuple | list):
        scan_pts = scan[0]
    else:
        scan_pts = scan
    check_shape("scan", scan_pts, (None, 3))
    check_shape("pred_verts", pred_verts, (None, 3))
    check_shape("pred_faces", pred_faces, (None, 3))
    check_shape("scan_landmarks7", scan_landmarks7, (7, 3))
    check_shape("pred_landmarks7", pred_landmarks7, (7, 3))
    for name, t in (
        ("scan", scan_pts),
        ("pred_verts", pred_verts),
        ("scan_landmarks7", scan_landmarks7),
        ("pred_landmarks7", pred_landmarks7),
    ):
        check_finite(name, t)
    dtype = torch.promote_types(scan_pts.dtype, pred_verts.dtype)
    scan_pts = scan_pts.to(dtype)
    pv = pred_verts.to(dtype) * pred_units_to_scan
    plm = pred_landmarks7.to(dtype) * pred_units_to_scan
    slm = scan_landmarks7.to(dtype)
    if crop_radius is not None:
        keep = (scan_pts - slm[NOSE_TIP]).norm(dim=-1) <= crop_radius
        scan_pts = scan_pts[keep]
        if scan_pts.shape[0] == 0:
            raise InvalidInput(
                f"no scan point lies within crop_radius={crop_radius} of the nose tip "
                f"{slm[NOSE_TIP].tolist()}: check the scan landmarks and units"
            )
    s, r, t = similarity_transform(plm, slm, scale=scale)
    pv = apply_similarity(pv, s, r, t)
    it = 0
    if icp_iterations > 0:
        pv, _, it = rigid_icp(scan_pts, pv, pred_faces, iterations=icp_iterations)
    d, _, _ = closest_points_on_mesh(scan_pts, pv, pred_faces)
    d = d * units_to_mm
    return ScanToMeshResult(
        median=float(d.median()),
        mean=float(d.mean()),
        std=float(d.std()) if d.numel() > 1 else 0.0,
        distances=d,
        aligned_verts=pv,
        scale=float(s),
        icp_iterations=it,
    )


__all__ = [
    "NOSE_TIP",
    "NOW_LANDMARKS_IBUG",
    "ScanToMeshResult",
    "aligned_vertex_error",
    "apply_similarity",
    "rigid_icp",
    "scan_to_mesh_error",
    "similarity_transform",
]
