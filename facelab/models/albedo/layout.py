"""UV layouts: soft facial-region masks from the UV positions of the 68 landmark vertices (:class:`UVLayout`, ``uv_layout_from_model``), and the texel coverage of a UV mesh (``uv_coverage``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..._checks import check_finite, check_shape
from ...errors import InvalidInput
from ...geometry.raster import triangle_coverage

# --------------------------------------------------------------------------------------------
# UV layout: soft region masks from landmark UVs
# --------------------------------------------------------------------------------------------

#: Region masks a :class:`UVLayout` holds, in this order.
REGION_NAMES = ("lips", "brows", "eyes", "lash_line", "cheeks", "nose", "beard", "forehead")

# UV positions of the 68 iBUG landmarks on the ICT-FaceKit face chart (v up), rounded: the
# canonical layout used when no mesh is at hand (UVLayout.canonical).
_CANONICAL_LMK_UV = (
    (0.140, 0.711), (0.160, 0.615), (0.173, 0.534), (0.182, 0.456), (0.209, 0.368),
    (0.276, 0.297), (0.346, 0.275), (0.433, 0.285), (0.500, 0.283), (0.567, 0.285),
    (0.654, 0.275), (0.724, 0.297), (0.791, 0.368), (0.818, 0.456), (0.827, 0.534),
    (0.840, 0.615), (0.860, 0.711), (0.243, 0.796), (0.298, 0.814), (0.353, 0.814),
    (0.415, 0.809), (0.460, 0.802), (0.540, 0.802), (0.585, 0.809), (0.647, 0.814),
    (0.702, 0.814), (0.757, 0.796), (0.500, 0.723), (0.500, 0.680), (0.500, 0.650),
    (0.500, 0.607), (0.433, 0.543), (0.470, 0.541), (0.500, 0.541), (0.530, 0.541),
    (0.567, 0.543), (0.315, 0.719), (0.339, 0.723), (0.368, 0.722), (0.401, 0.714),
    (0.368, 0.712), (0.330, 0.712), (0.599, 0.714), (0.632, 0.722), (0.661, 0.723),
    (0.685, 0.719), (0.670, 0.712), (0.632, 0.712), (0.388, 0.442), (0.424, 0.493),
    (0.469, 0.510), (0.500, 0.510), (0.531, 0.510), (0.576, 0.493), (0.612, 0.442),
    (0.594, 0.385), (0.556, 0.363), (0.500, 0.359), (0.444, 0.363), (0.406, 0.385),
    (0.411, 0.434), (0.455, 0.466), (0.500, 0.469), (0.545, 0.466), (0.589, 0.434),
    (0.556, 0.395), (0.500, 0.391), (0.444, 0.395),
)  # fmt: skip


def _texel_centres(size: int, device=None, dtype=None) -> torch.Tensor:
    """``(S*S, 2)`` UV coordinates of texel centres, row-major (row 0 is v = 1)."""
    c = (torch.arange(size, device=device, dtype=dtype) + 0.5) / size
    v, u = torch.meshgrid(1.0 - c, c, indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], -1)


def _segment_distance(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
    """Distance from points ``p (P, 2)`` to segments ``a -> b (N, 2)``: ``(P, N)`` and ``t``."""
    ab = b - a
    ap = p[:, None, :] - a[None]
    t = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-20)).clamp(0.0, 1.0)
    d = (ap - t[..., None] * ab).norm(dim=-1)
    return d, t


def _polygon_sdf(p: torch.Tensor, poly: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) from ``p (P, 2)`` to a closed polygon ``(N, 2)``."""
    a, b = poly, poly.roll(-1, 0)
    d, _ = _segment_distance(p, a, b)
    dist = d.min(1).values
    # even-odd crossing test of a horizontal ray
    py, px = p[:, None, 1], p[:, None, 0]
    cond = (a[None, :, 1] > py) != (b[None, :, 1] > py)
    dy = b[:, 1] - a[:, 1]
    dy = torch.where(dy.abs() < 1e-20, torch.full_like(dy, 1e-20), dy)
    x_int = a[None, :, 0] + (py - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / dy[None]
    inside = ((cond & (px < x_int)).sum(1) % 2) == 1
    return torch.where(inside, -dist, dist)


def _soft(sd: torch.Tensor, sigma: float) -> torch.Tensor:
    """A step blurred by a Gaussian of std ``sigma``: ``0.5 erfc(sd / (sqrt(2) sigma))``."""
    return 0.5 * torch.erfc(sd / (math.sqrt(2.0) * sigma))


def _capsules(p: torch.Tensor, pts: torch.Tensor, widths: torch.Tensor, sigma: float):
    """Soft union of tapered capsules along the polyline ``pts (N, 2)``, widths ``(N,)``."""
    d, t = _segment_distance(p, pts[:-1], pts[1:])
    w = widths[:-1] + t * (widths[1:] - widths[:-1])
    return _soft(d - w, sigma).amax(1)


def _region_masks(lmk: torch.Tensor, size: int) -> torch.Tensor:
    """Soft masks ``(R, S, S)`` of :data:`REGION_NAMES` from landmark UVs ``(68, 2)``.

    All distances scale with the inter-ocular distance ``iod`` in UV, and "up" is the
    direction chin (8) -> nose bridge (27), so any upright-ish UV chart works.
    """
    p = _texel_centres(size, lmk.device, lmk.dtype)
    eye_r, eye_l = lmk[36:42].mean(0), lmk[42:48].mean(0)
    iod = float((eye_l - eye_r).norm())
    if not iod > 0:
        raise InvalidInput("landmark UVs are degenerate (both eyes at the same UV position)")
    up = lmk[27] - lmk[8]
    up = up / up.norm().clamp_min(1e-12)
    s = iod

    lips = _soft(_polygon_sdf(p, lmk[48:60]) - 0.01 * s, 0.035 * s)

    def brow(idx: list[int], inner_last: bool) -> torch.Tensor:
        pts = lmk[idx] - 0.05 * s * up
        w = torch.linspace(0.045, 0.075, len(idx), dtype=lmk.dtype, device=lmk.device) * s
        return _capsules(p, pts, w if inner_last else w.flip(0), 0.025 * s)

    brows = torch.maximum(brow(list(range(17, 22)), True), brow(list(range(22, 27)), False))

    eyes_sd = torch.minimum(_polygon_sdf(p, lmk[36:42]), _polygon_sdf(p, lmk[42:48]))
    eyes = _soft(eyes_sd - 0.06 * s, 0.05 * s)
    lash = torch.exp(-0.5 * (eyes_sd / (0.018 * s)) ** 2)

    def blob(c: torch.Tensor, r: float) -> torch.Tensor:
        return torch.exp(-0.5 * ((p - c) ** 2).sum(-1) / r**2)

    c_r = 0.5 * (lmk[2:4].mean(0) + lmk[31]) + 0.12 * s * up
    c_l = 0.5 * (lmk[13:15].mean(0) + lmk[35]) + 0.12 * s * up
    cheeks = torch.maximum(blob(c_r, 0.22 * s), blob(c_l, 0.22 * s))

    bridge = _capsules(p, lmk[27:31], torch.tensor([0.06, 0.07, 0.09, 0.12], dtype=lmk.dtype,
                                                   device=lmk.device) * s, 0.04 * s)  # fmt: skip
    wings = _soft(_polygon_sdf(p, lmk[[30, 35, 34, 33, 32, 31]]) - 0.09 * s, 0.04 * s)
    nose = torch.maximum(bridge, wings)

    centre = lmk[30]
    jaw = lmk[2:15]
    out = jaw - centre
    jaw_out = jaw + 0.3 * s * out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    nose_base = lmk[[35, 34, 33, 32, 31]] - 0.04 * s * up
    poly = torch.cat([jaw_out, (0.5 * (lmk[14] + lmk[35]))[None], nose_base,
                      (0.5 * (lmk[2] + lmk[31]))[None]])  # fmt: skip
    beard = _soft(_polygon_sdf(p, poly), 0.07 * s)
    beard = beard * (1 - _soft(_polygon_sdf(p, lmk[48:60]) - 0.02 * s, 0.02 * s))

    brow_pts = lmk[17:27]
    top = torch.cat([brow_pts + 0.15 * s * up, (brow_pts + 1.2 * s * up).flip(0)])
    forehead = _soft(_polygon_sdf(p, top), 0.12 * s)

    masks = torch.stack([lips, brows, eyes, lash, cheeks, nose, beard, forehead])
    return masks.reshape(len(REGION_NAMES), size, size).clamp(0.0, 1.0)


#: Relative growth of each UV triangle about its centroid in :func:`uv_coverage` (the closed-
#: triangle edge rule): large enough to beat float64 rounding of the edge functions, far too
#: small to reach the next texel centre.
_CLOSED_GROWTH = 1e-6


def uv_coverage(uvs: torch.Tensor, uv_faces: torch.Tensor, size: int) -> torch.Tensor:
    """Binary ``(S, S)`` mask of texels whose centre lies in some UV triangle, edges included.

    Args:
        uvs: ``(T, 2)`` texture coordinates (v up, the texel convention of this module).
        uv_faces: ``(F, 3) long`` triangles indexing ``uvs`` (either winding).
        size: ``S``.

    The rasterizer's coverage step (:func:`facelab.geometry.raster.triangle_coverage`, the
    top-left rule of :func:`facelab.render.rasterize`) applied to the chart drawn as a 2D mesh
    in texels (``x = u S``, ``y = (1 - v) S``: texel ``(i, j)`` is sampled at its centre), with
    one explicit **edge rule**: a texel centre exactly on an edge or corner of a chart triangle
    counts as covered (closed triangles). The top-left rule gives a centre on an edge to one
    triangle only — right inside a chart, where the triangle across the edge takes it, but on
    the chart's boundary (its outline, seams, the mouth) it drops the centres on bottom and
    right edges, and a texture painted where the coverage is would leave them dark for the
    bilinear lookups at the seam to read. Implementation: each triangle, with its own copy of
    its corners, is grown about its centroid by a relative ``1e-6`` before the same rule, so a
    centre on the closed triangle is strictly inside. Degenerate triangles cover nothing.
    Device follows ``uvs``; the mask has ``uvs``' dtype.
    """
    check_shape("uvs", uvs, (None, 2))
    check_shape("uv_faces", uv_faces, (None, 3))
    dev = uvs.device
    tri = uvs.detach().to(torch.float64)[uv_faces.long().to(dev)]  # (F, 3, 2)
    pts = torch.stack([tri[..., 0] * size, (1.0 - tri[..., 1]) * size], -1)
    centroid = pts.mean(1, keepdim=True)
    pts = centroid + (pts - centroid) * (1.0 + _CLOSED_GROWTH)
    corners = torch.arange(pts.shape[0] * 3, device=dev).view(-1, 3)
    cov = triangle_coverage(pts.reshape(-1, 2), corners, size)
    dtype = uvs.dtype if uvs.is_floating_point() else torch.get_default_dtype()
    return cov.to(dtype)


@dataclass
class UVLayout:
    """Where facial features lie in a model's UV space, as soft masks in an ``S x S`` image.

    Attributes:
        size: ``S``, texels per side.
        landmarks_uv: ``(68, 2)`` UV of the iBUG-68 landmarks (v up).
        coverage: ``(S, S)`` 1 where a UV triangle of the face chart covers the texel centre
            (all ones for :meth:`canonical`).
        masks: ``(R, S, S)`` soft masks in [0, 1], one per :data:`REGION_NAMES` entry.

    Build it with :func:`uv_layout_from_model`, :func:`uv_layout_from_mesh` or
    :meth:`canonical`; get one mask with :meth:`mask`.
    """

    size: int
    landmarks_uv: torch.Tensor
    coverage: torch.Tensor
    masks: torch.Tensor
    names: tuple[str, ...] = REGION_NAMES

    def mask(self, name: str) -> torch.Tensor:
        """The ``(S, S)`` soft mask of region ``name`` (one of :data:`REGION_NAMES`)."""
        if name == "coverage":
            return self.coverage
        if name not in self.names:
            raise InvalidInput(f"unknown region {name!r}; choose from {self.names + ('coverage',)}")
        return self.masks[self.names.index(name)]

    def to(self, device=None, dtype=None) -> UVLayout:
        """A copy on ``device`` / ``dtype``."""
        return UVLayout(
            self.size,
            self.landmarks_uv.to(device=device, dtype=dtype),
            self.coverage.to(device=device, dtype=dtype),
            self.masks.to(device=device, dtype=dtype),
            self.names,
        )

    @property
    def device(self) -> torch.device:
        return self.masks.device

    @property
    def dtype(self) -> torch.dtype:
        return self.masks.dtype

    @classmethod
    def from_landmarks(
        cls, landmarks_uv: torch.Tensor, size: int = 256, coverage: torch.Tensor | None = None
    ) -> UVLayout:
        """Layout from landmark UVs ``(68, 2)``; ``coverage (S, S)`` defaults to all ones."""
        check_shape("landmarks_uv", landmarks_uv, (68, 2))
        check_finite("landmarks_uv", landmarks_uv)
        if size < 8:
            raise InvalidInput(f"size must be >= 8, got {size}")
        lmk = landmarks_uv if landmarks_uv.is_floating_point() else landmarks_uv.double()
        masks = _region_masks(lmk, size)
        if coverage is None:
            coverage = torch.ones(size, size, dtype=lmk.dtype, device=lmk.device)
        check_shape("coverage", coverage, (size, size))
        return cls(size, lmk, coverage.to(lmk.dtype), masks)

    @classmethod
    def canonical(cls, size: int = 256, dtype: torch.dtype | None = None, device=None) -> UVLayout:
        """A model-free layout: the ICT-FaceKit landmark UVs, full coverage."""
        lmk = torch.tensor(
            _CANONICAL_LMK_UV, dtype=dtype or torch.get_default_dtype(), device=device
        )
        return cls.from_landmarks(lmk, size)


def _connected_faces(faces: np.ndarray, seeds: np.ndarray, num_vertices: int) -> np.ndarray:
    """Bool mask of faces in the vertex-connected components that contain ``seeds``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(num_vertices, num_vertices))
    _, label = connected_components(g, directed=False)
    keep = np.isin(label, label[seeds])
    return keep[faces[:, 0]]


def uv_layout_from_mesh(
    uvs: torch.Tensor,
    uv_faces: torch.Tensor,
    faces: torch.Tensor,
    landmarks: torch.Tensor | Sequence[int],
    size: int = 256,
    face_mask: torch.Tensor | None = None,
) -> UVLayout:
    """A :class:`UVLayout` for any mesh with UVs.

    Args:
        uvs: ``(T, 2)`` texture coordinates (v up, OBJ convention).
        uv_faces: ``(F, 3) long``, the UV index of each face corner.
        faces: ``(F, 3) long``, the vertex index of each face corner (same faces, same order).
        landmarks: ``(68,)`` vertex indices of the iBUG-68 landmarks.
        size: ``S`` of the layout's images.
        face_mask: optional ``(F,) bool`` — the faces forming the skin chart. Default: faces
            whose three UVs lie in the unit square *and* that are vertex-connected to a
            landmark (this drops eyeballs, teeth and UDIM tiles that share or sit beside
            the face's UV square, e.g. in ICT-FaceKit).

    A landmark vertex's UV is that of its first corner in a chart face (a vertex on a UV
    seam has several UVs; landmarks are interior to the face chart in practice).
    """
    check_shape("uvs", uvs, (None, 2))
    check_shape("uv_faces", uv_faces, (None, 3))
    check_shape("faces", faces, (uv_faces.shape[0], 3))
    lm = torch.as_tensor(landmarks).long().reshape(-1).cpu().numpy()
    if lm.shape != (68,):
        raise InvalidInput(f"landmarks must be 68 iBUG vertex indices, got shape {tuple(lm.shape)}")
    uv_np = uvs.detach().cpu().double().numpy()
    ft = uv_faces.detach().long().cpu().numpy()
    fv = faces.detach().long().cpu().numpy()
    nv = int(max(fv.max(), lm.max())) + 1
    if face_mask is None:
        in_tile = np.all((uv_np[ft] >= 0.0) & (uv_np[ft] <= 1.0), axis=(1, 2))
        sel = in_tile.copy()
        sel[in_tile] = _connected_faces(fv[in_tile], lm, nv)
    else:
        sel = torch.as_tensor(face_mask).bool().cpu().numpy()
        if sel.shape != (len(fv),):
            raise InvalidInput(f"face_mask must have shape ({len(fv)},), got {sel.shape}")
    cv, ct = fv[sel].reshape(-1), ft[sel].reshape(-1)
    first = np.full(nv, -1, dtype=np.int64)
    order = np.arange(len(cv))[::-1]  # assign in reverse so the first corner wins
    first[cv[order]] = ct[order]
    missing = lm[first[lm] < 0]
    if len(missing):
        raise InvalidInput(
            f"landmark vertices {missing.tolist()[:8]} are not on any face of the UV chart; "
            "check the landmark indices or pass face_mask"
        )
    lmk_uv = torch.as_tensor(uv_np[first[lm]], dtype=uvs.dtype if uvs.is_floating_point()
                             else torch.get_default_dtype(), device=uvs.device)  # fmt: skip
    cov = uv_coverage(lmk_uv.new_tensor(uv_np), torch.as_tensor(ft[sel]), size)
    return UVLayout.from_landmarks(lmk_uv, size, cov.to(lmk_uv.device))


def uv_layout_from_model(
    model: Any, size: int = 256, face_mask: torch.Tensor | None = None
) -> UVLayout:
    """:func:`uv_layout_from_mesh` with ``model.uvs``, ``model.uv_faces``, ``model.faces``,
    ``model.landmarks`` (a facelab ``MorphableModel`` or anything with those attributes)."""
    missing = [
        a for a in ("uvs", "uv_faces", "faces", "landmarks") if getattr(model, a, None) is None
    ]
    if missing:
        raise InvalidInput(
            f"the model has no {', '.join(missing)}; a UV layout needs UVs and the 68 iBUG "
            "landmark vertex indices (use UVLayout.canonical(size) for a model-free layout)"
        )
    return uv_layout_from_mesh(
        torch.as_tensor(model.uvs), torch.as_tensor(model.uv_faces), torch.as_tensor(model.faces),
        torch.as_tensor(model.landmarks), size=size, face_mask=face_mask,
    )  # fmt: skip
