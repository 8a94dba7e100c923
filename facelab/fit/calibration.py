"""A detector's landmarks are not the model's landmark vertices: measured offsets and weights.

A landmark detector is trained on human annotations; the model's 68 landmark vertices were
picked on a template mesh. The two disagree by a *definition offset* (dlib's eye corners sit
inside the model's, its nose tip lower, ...) and a detector is noisier on some points (jaw,
brows) than on others (eye corners, nose). The fitter used to trust every detected point as
if it were exactly the projection of its vertex, and the identity coefficients bent to explain
the difference.

:class:`LandmarkCalibration` holds, for one detector and one model, per landmark ``j``:

* ``offset[j] (2,)``: the mean of ``(detected - projected vertex) / s`` on faces with
  ``|yaw| < 20`` deg (``s`` = sqrt of the landmark box area), in image axes;
* ``spread[j]``: a robust root-mean-square of the residual after removing the offset, in units
  of ``s``, over faces with ``|yaw| < 45`` deg (see :func:`measure_calibration`).

They are measured on :mod:`facelab.world` images with exact ground truth by
``scripts/calibrate_detector.py`` (real detector, real images of the simulator, never the
benchmark's seeds) and used by :func:`facelab.fit.fit` as

* the landmark term's mean: the fitter compares its projections with
  ``detected - offset * s`` (inner points only: the jaw contour slides, its offset is not a
  constant);
* per-point weights ``w_j = (median_k spread_k / spread_j)^2`` (the inverse measured variance,
  median 1, clipped to ``[0.05, 4]``) in both stages' landmark terms.

**A 3D embedding** (as DECA and FLAME learn theirs). A definition difference lives on the
surface, not in the image: dlib's inner eye corner is a point of the skin a few millimetres
from the model's vertex, and its image offset turns and foreshortens with the head, which a
constant 2D offset cannot follow. :class:`LandmarkEmbedding` gives each landmark a point on
the mesh, ``p_j = sum_k b_jk v_{t_jk}`` (three vertices ``t_j`` of a triangle, barycentric
``b_j``), chosen by :func:`fit_embedding` to explain the detector on many world faces with
exact ground truth:

.. math::
    p_j = \\arg\\min_{p \\in \\mathcal{N}_j} \\frac{1}{N} \\sum_i
          \\rho_\\delta\\!\\left(\\frac{\\lVert \\pi_i(p) - d_{ij} \\rVert}{s_i}\\right)

(``pi_i`` projects the ground-truth surface of face ``i`` exactly as the world projects its
landmarks, ``d_ij`` the detector's point, ``s_i`` the face size, ``rho_delta`` Huber's loss,
``N_j`` the triangles within ``radius`` of the model's landmark vertex, searched on a
barycentric grid; faces with ``|yaw| < 45`` deg). A calibration with an embedding is used by
the fitter *instead of* the offsets: the fit projects ``p_j`` and compares it with the
detected point as it is; its weights come from ``embedding_spread``, the spread of the
residual after the embedding (:meth:`LandmarkCalibration.fit_weights`). The jaw still slides.

Measured for dlib on ``ict-face`` (seed 101, 77 detected faces; radius 15 mm): the points move
3 mm (median) and the residual on held-out world faces drops a little (inner points, x face
size, seed 303: ``|yaw| < 20`` 0.033 -> 0.032, 20-45 0.046 -> 0.045, against the offsets), but
the fit from detected landmarks got *worse* on the benchmark's reporting faces than with the
offsets, and so did the landmark-only fit on the calibration faces themselves (27 of them,
median s2m x the mean face: ``|yaw| < 20`` 1.08 vs 0.88, 20-45 1.14 vs 1.01; radius 5 mm:
0.96, 1.10), so the shipped calibration has no embedding: dlib's error is mostly not a fixed
surface point (probably: its shape prior pulls a turned face's points towards a frontal
layout).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidInput

#: where the measured calibrations live (package data)
ASSET_DIR = Path(__file__).resolve().parent.parent / "assets"
#: iBUG-68 jaw contour indices (they slide on the silhouette; no constant offset)
JAW = tuple(range(17))


@dataclass
class LandmarkEmbedding:
    """Landmarks as points on the mesh: ``p_j = sum_k bary[j, k] * verts[vertices[j, k]]``.

    Attributes:
        vertices: ``(..., 68, 3)`` long, the corners of the triangle holding each point
            (a landmark on a vertex ``v`` is ``(v, v, v)`` with ``bary = (1, 0, 0)``).
        bary: ``(..., 68, 3)`` barycentric weights (non-negative, summing to 1).

    The leading dimensions are empty (one embedding) or ``(B,)`` (one per image, as the
    fitter returns them: the jaw entries slide with each image's pose).
    """

    vertices: torch.Tensor
    bary: torch.Tensor

    def __post_init__(self) -> None:
        self.vertices = torch.as_tensor(self.vertices).long()
        self.bary = torch.as_tensor(self.bary)
        if not self.bary.is_floating_point():
            self.bary = self.bary.double()
        if self.vertices.shape != self.bary.shape or tuple(self.vertices.shape[-2:]) != (68, 3):
            raise InvalidInput(
                f"embedding vertices and bary must both be (..., 68, 3), got "
                f"{tuple(self.vertices.shape)} and {tuple(self.bary.shape)}"
            )
        b = self.bary.double()
        if not bool(torch.isfinite(b).all() and (b >= -1e-6).all()) or not bool(
            torch.allclose(b.sum(-1), torch.ones_like(b[..., 0]), atol=1e-4)
        ):
            raise InvalidInput("embedding bary weights must be non-negative and sum to 1")

    @classmethod
    def from_vertices(cls, vertices: torch.Tensor) -> LandmarkEmbedding:
        """The embedding of landmark vertices ``(..., 68)``: every point on its vertex."""
        v = torch.as_tensor(vertices).long()
        bary = torch.zeros(*v.shape, 3, dtype=torch.float64, device=v.device)
        bary[..., 0] = 1.0
        return cls(v[..., None].expand(*v.shape, 3).clone(), bary)

    def points(self, verts: torch.Tensor) -> torch.Tensor:
        """``(B, V, 3)`` vertices -> ``(B, 68, 3)`` landmark points
        ``sum_k b_jk verts[:, t_jk]`` (differentiable in ``verts``; an embedding with a batch
        dimension must have ``B`` rows)."""
        B = verts.shape[0]
        ids = self.vertices.to(verts.device)
        w = self.bary.to(verts.device, verts.dtype)
        if ids.dim() == 2:
            ids, w = ids.expand(B, 68, 3), w.expand(B, 68, 3)
        g = torch.gather(verts, 1, ids.reshape(B, 68 * 3, 1).expand(-1, -1, 3))
        return (g.reshape(B, 68, 3, 3) * w[..., None]).sum(-2)

    def nearest_vertices(self) -> torch.Tensor:
        """``(..., 68)`` long: the corner with the largest weight (the vertex a fit built on
        vertex indices would use)."""
        k = self.bary.argmax(-1, keepdim=True)
        return torch.gather(self.vertices, -1, k.to(self.vertices.device))[..., 0]

    def with_rows(self, rows: Any, vertices: torch.Tensor) -> LandmarkEmbedding:
        """A copy whose landmarks ``rows`` sit on ``vertices (..., len(rows))`` (e.g. the
        sliding jaw)."""
        out = LandmarkEmbedding(self.vertices.clone(), self.bary.clone())
        rows = list(rows)
        out.vertices[..., rows, :] = torch.as_tensor(vertices).long()[..., None]
        out.bary[..., rows, :] = 0.0
        out.bary[..., rows, 0] = 1.0
        return out

    def to_json(self) -> dict:
        return {
            "vertices": self.vertices.tolist(),
            "bary": [[round(float(v), 6) for v in p] for p in self.bary.reshape(-1, 3).tolist()],
        }

    @classmethod
    def from_json(cls, d: dict) -> LandmarkEmbedding:
        return cls(torch.tensor(d["vertices"]), torch.tensor(d["bary"], dtype=torch.float64))


@dataclass
class LandmarkCalibration:
    """Per-landmark offset ``(68, 2)`` and spread ``(68,)`` of a detector vs a model, and
    optionally a 3D :class:`LandmarkEmbedding` with the spread after it.

    Offsets and spreads are in units of the face size ``s = sqrt(landmark box area)``; the
    offsets and ``spread`` are relative to the model's landmark vertices (what a fit without
    the embedding uses), ``embedding_spread`` to the embedding's points.
    """

    detector: str
    model: str
    offset: torch.Tensor
    spread: torch.Tensor
    n_faces: int = 0
    note: str = ""
    embedding: LandmarkEmbedding | None = None
    embedding_spread: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.offset = torch.as_tensor(self.offset, dtype=torch.float64).reshape(68, 2)
        self.spread = torch.as_tensor(self.spread, dtype=torch.float64).reshape(68)
        if not bool(torch.isfinite(self.offset).all() and (self.spread > 0).all()):
            raise InvalidInput("calibration offsets must be finite and spreads positive")
        if self.embedding is not None:
            if self.embedding.vertices.dim() != 2:
                raise InvalidInput("a calibration's embedding is one (68, 3) embedding")
            if self.embedding_spread is None:
                raise InvalidInput("a calibration with an embedding needs embedding_spread")
        if self.embedding_spread is not None:
            es = torch.as_tensor(self.embedding_spread, dtype=torch.float64).reshape(68)
            if not bool((es > 0).all()):
                raise InvalidInput("calibration embedding spreads must be positive")
            self.embedding_spread = es

    def fit_weights(self, use_embedding: bool = True) -> torch.Tensor:
        """The weights a fit uses: those of ``embedding_spread`` when the calibration has an
        embedding and ``use_embedding``, else :meth:`weights` (same formula and clip)."""
        if use_embedding and self.embedding is not None:
            return _inverse_variance(self.embedding_spread)
        return self.weights()

    def weights(self, w_min: float = 0.05, w_max: float = 4.0) -> torch.Tensor:
        """``(68,)`` inverse-variance weights ``(median spread / spread_j)^2`` (median 1),
        clipped to ``[w_min, w_max]``."""
        return _inverse_variance(self.spread, w_min, w_max)

    def correct(self, landmarks: torch.Tensor, jaw: bool = False) -> torch.Tensor:
        """``detected - offset * s`` for ``(..., 68, 2)`` pixels (jaw points unchanged unless
        ``jaw``)."""
        lm = landmarks
        span = lm.amax(-2) - lm.amin(-2)
        s = (span[..., 0] * span[..., 1]).clamp_min(1e-6).sqrt()[..., None, None]
        off = self.offset.to(lm.device, lm.dtype).clone()
        if not jaw:
            off[list(JAW)] = 0.0
        return lm - off * s

    def to_json(self) -> dict:
        d = {
            "detector": self.detector,
            "model": self.model,
            "n_faces": self.n_faces,
            "note": self.note,
            "offset": [[round(float(v), 5) for v in p] for p in self.offset.tolist()],
            "spread": [round(float(v), 5) for v in self.spread.tolist()],
        }
        if self.embedding is not None:
            d["embedding"] = self.embedding.to_json()
            d["embedding_spread"] = [round(float(v), 5) for v in self.embedding_spread.tolist()]
        return d

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def from_json(cls, d: dict) -> LandmarkCalibration:
        return cls(
            detector=d["detector"], model=d["model"], offset=torch.tensor(d["offset"]),
            spread=torch.tensor(d["spread"]), n_faces=int(d.get("n_faces", 0)),
            note=d.get("note", ""),
            embedding=LandmarkEmbedding.from_json(d["embedding"]) if "embedding" in d else None,
            embedding_spread=(torch.tensor(d["embedding_spread"]) if "embedding_spread" in d
                              else None),
        )  # fmt: skip


def _inverse_variance(spread: torch.Tensor, w_min: float = 0.05, w_max: float = 4.0):
    """``(median spread / spread_j)^2`` clipped to ``[w_min, w_max]``."""
    return (spread.median() / spread).square().clamp(w_min, w_max)


def calibration_path(detector: str, model: str = "ict-face") -> Path:
    """Package path of the calibration of ``detector`` (``"dlib"`` for all dlib detectors:
    HOG and CNN share the 68-point predictor) for ``model``."""
    det = "dlib" if detector.startswith("dlib") or detector in ("auto", "cascade") else detector
    return ASSET_DIR / f"landmark_calibration_{det}_{model}.json"


def load_calibration(detector: str, model: str = "ict-face") -> LandmarkCalibration | None:
    """The shipped calibration of ``detector`` for ``model``, or ``None`` if none was measured."""
    p = calibration_path(detector, model)
    if not p.is_file():
        return None
    return LandmarkCalibration.from_json(json.loads(p.read_text()))


def resolve_calibration(
    calibration: object, detector: object, model: object, detected: bool
) -> LandmarkCalibration | None:
    """The calibration a fit uses: ``"auto"`` = the shipped one of ``detector`` for ``model``
    when the landmarks were ``detected`` (none for given landmarks), ``None`` = none, or a
    :class:`LandmarkCalibration` as it is."""
    if calibration is None or isinstance(calibration, LandmarkCalibration):
        return calibration
    if calibration != "auto":
        raise InvalidInput(
            f"calibration must be 'auto', None or a LandmarkCalibration, got {calibration!r}"
        )
    if not detected:
        return None
    name = detector if isinstance(detector, str) else getattr(detector, "name", "")
    return load_calibration(name, getattr(model, "name", ""))


def measure_calibration(
    detected: torch.Tensor,
    exact: torch.Tensor,
    yaw: torch.Tensor,
    detector: str,
    model: str,
    frontal_deg: float = 20.0,
    valid_deg: float = 45.0,
) -> LandmarkCalibration:
    """Offsets and spreads from ``N`` faces: ``detected, exact (N, 68, 2)`` pixels, ``yaw (N,)``.

    ``exact`` are the projections of the model's landmark vertices (fixed jaw vertices).

    * offsets: the mean residual on faces with ``|yaw| < frontal_deg``;
    * spreads: a robust RMS, ``1.2011 * median_i |r_ij - offset_j|`` (for a 2D Gaussian the
      median of the residual's length is ``1.1774 sigma`` and its RMS ``1.4142 sigma``), over
      faces with ``|yaw| < valid_deg``. Beyond that the detector's 68-point model often fails
      outright (residuals of a fifth of the face on every point): pooling those faces made every
      inner point look three times noisier than the jaw and inverted the weights.
    """
    if detected.shape != exact.shape or detected.dim() != 3 or detected.shape[1:] != (68, 2):
        raise InvalidInput("detected and exact must both be (N, 68, 2)")
    if yaw.shape != detected.shape[:1]:
        raise InvalidInput(f"yaw must be (N,) = ({detected.shape[0]},), got {tuple(yaw.shape)}")
    d, e = detected.double(), exact.double()
    span = e.amax(1) - e.amin(1)
    s = (span[:, 0] * span[:, 1]).sqrt()[:, None, None]
    r = (d - e) / s  # (N, 68, 2)
    front = yaw.abs() < frontal_deg
    valid = yaw.abs() < valid_deg
    if int(front.sum()) < 2 or int(valid.sum()) < 3:
        raise InvalidInput(
            f"need at least 2 faces with |yaw| < {frontal_deg:g} deg and 3 with |yaw| < "
            f"{valid_deg:g} deg, got {int(front.sum())} and {int(valid.sum())}"
        )
    offset = r[front].mean(0)
    spread = 1.2011 * (r[valid] - offset).norm(dim=-1).median(0).values
    return LandmarkCalibration(
        detector=detector, model=model, offset=offset, spread=spread.clamp_min(1e-4),
        n_faces=int(valid.sum()),
    )  # fmt: skip


def barycentric_grid(n: int) -> torch.Tensor:
    """``((n + 1)(n + 2) / 2, 3)`` float64: all ``(i, j, k) / n`` with ``i + j + k = n``."""
    pts = [(i, j, n - i - j) for i in range(n + 1) for j in range(n + 1 - i)]
    return torch.tensor(pts, dtype=torch.float64) / n


def _project_camera(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``(N, ..., 3)`` camera-space points, ``K (N, 3, 3)`` -> ``(N, ..., 2)`` pixels by
    :func:`facelab.geometry.camera.project` (the world's landmark projection)."""
    from ..geometry.camera import project

    N = points.shape[0]
    return project(points.reshape(N, -1, 3), K).reshape(*points.shape[:-1], 2)


def _face_sizes(points2d: torch.Tensor) -> torch.Tensor:
    """``(N, 68, 2)`` -> ``(N,)`` ``s = sqrt`` of the landmark box area."""
    span = points2d.amax(1) - points2d.amin(1)
    return (span[:, 0] * span[:, 1]).clamp_min(1e-12).sqrt()


def huber(r: torch.Tensor, delta: float) -> torch.Tensor:
    """Huber's loss ``0.5 r^2`` for ``|r| <= delta``, ``delta (|r| - delta / 2)`` beyond."""
    a = r.abs()
    return torch.where(a <= delta, 0.5 * a.square(), delta * (a - 0.5 * delta))


def fit_embedding(
    detected: torch.Tensor,
    vertices: torch.Tensor,
    K: torch.Tensor,
    yaw: torch.Tensor,
    faces: torch.Tensor,
    reference: torch.Tensor,
    landmarks: torch.Tensor,
    radius: float,
    rows: Any = range(17, 68),
    valid_deg: float = 45.0,
    delta: float | None = None,
    grid: int = 6,
    refine: int = 4,
    geodesic: bool = True,
    balance: tuple[float, ...] = (20.0,),
) -> LandmarkEmbedding:
    """The surface point of each landmark in ``rows`` that best explains a detector.

    Minimises, per landmark ``j``, the mean Huber loss (``delta``, in face sizes) of the
    reprojection residual ``|pi_i(p) - d_ij| / s_i`` over the faces ``i`` with
    ``|yaw| < valid_deg`` whose point was detected (module docstring). ``p`` runs over a
    barycentric grid (``grid`` steps per edge) on every triangle whose three corners lie
    within ``radius`` of ``reference[landmarks[j]]``, then over a ``refine`` times finer grid
    on the best triangle and the triangles sharing a corner with it.

    ``geodesic``: the neighbourhood is the vertices whose shortest path along the mesh's
    edges from the landmark vertex is at most ``radius`` (not across the lips or an eyelid
    gap); else every vertex within ``radius`` in space. ``balance``: yaw bin edges (deg) whose
    bins weigh the same in the mean (the calibration world has more turned than frontal
    faces; unbalanced, the turned faces would choose the point for the frontal ones).

    ``delta=None`` scales the loss to each point's noise (Huber's rule, ``delta ~ 1.5``
    typical residuals): a first search with ``delta = 0.05`` gives the median residual
    ``m_j``, the searches are then run with ``delta_j = 1.5 m_j``. A fixed ``delta`` lets a
    few failed detections pull the point by about (outlier fraction) x ``delta``.

    Args:
        detected: ``(N, 68, 2)`` the detector's points in pixels (NaN = missed).
        vertices: ``(N, V, 3)`` each face's exact camera-space vertices (OpenCV axes).
        K: ``(N, 3, 3)`` intrinsics; ``pi_i`` is :func:`facelab.geometry.camera.project`.
        yaw: ``(N,)`` degrees.
        faces: ``(F, 3)`` the mesh's triangles.
        reference: ``(V, 3)`` the shape that defines the neighbourhoods (the mean shape).
        landmarks: ``(68,)`` the model's landmark vertices; rows not in ``rows`` keep them.
        radius: neighbourhood radius in ``reference``'s units.

    Returns:
        :class:`LandmarkEmbedding` ``(68, 3)``. ``s_i`` is the face size of the projected
        landmark vertices.
    """
    if detected.dim() != 3 or tuple(detected.shape[1:]) != (68, 2):
        raise InvalidInput(f"detected must be (N, 68, 2), got {tuple(detected.shape)}")
    N = detected.shape[0]
    if vertices.shape[0] != N or K.shape[0] != N or yaw.shape != (N,):
        raise InvalidInput("detected, vertices, K and yaw must describe the same N faces")
    d = detected.double()
    Vt = vertices.double()
    Kd = K.double()
    lm = torch.as_tensor(landmarks).long()
    s = _face_sizes(_project_camera(Vt[:, lm], Kd))  # (N,)
    valid = (yaw.abs() < valid_deg) & torch.isfinite(d).all(-1).all(-1)
    if int(valid.sum()) < 3:
        raise InvalidInput(f"need at least 3 detected faces with |yaw| < {valid_deg:g} deg")
    d, Vt, Kd, s = d[valid], Vt[valid], Kd[valid], s[valid]
    ref = reference.double()
    F = faces.long()
    emb = LandmarkEmbedding.from_vertices(lm)
    # per-face weights: every yaw bin of ``balance`` weighs the same
    edges = torch.tensor([0.0, *sorted(balance), float("inf")], dtype=torch.float64)
    b = torch.bucketize(yaw[valid].abs().double(), edges[1:-1], right=True)
    counts = torch.bincount(b, minlength=len(edges) - 1).double()
    wf = 1.0 / counts[b]
    wf = wf / wf.sum()
    graph = _edge_graph(ref, F) if geodesic else None

    def best(tris: torch.Tensor, bary: torch.Tensor, j: int, dl: float) -> tuple[int, int, float]:
        """(triangle, grid point, median residual) of the least mean Huber cost of ``j``."""
        P = torch.einsum("ntkc,gk->ntgc", Vt[:, F[tris]], bary)  # (n, T, G, 3)
        r = (_project_camera(P, Kd) - d[:, j, None, None]).norm(dim=-1) / s[:, None, None]
        cost = torch.einsum("n,ntg->tg", wf, huber(r, dl))  # (T, G) weighted mean
        t, g = divmod(int(cost.argmin()), bary.shape[0])
        return t, g, float(r[:, t, g].median())

    coarse, fine = barycentric_grid(grid), barycentric_grid(grid * max(1, refine))
    for j in rows:
        if graph is None:
            near = (ref - ref[lm[j]]).norm(dim=-1) <= radius
        else:
            from scipy.sparse.csgraph import dijkstra

            dist = dijkstra(graph, indices=int(lm[j]), limit=radius * (1 + 1e-9))
            near = torch.from_numpy(dist <= radius)
        tris = torch.nonzero(near[F].all(-1)).squeeze(1)
        if tris.numel() == 0:
            continue  # no triangle inside the radius: keep the vertex
        dl = 0.05 if delta is None else float(delta)
        t, g, med = best(tris, coarse, j, dl)
        if delta is None:
            dl = max(1.5 * med, 1e-6)
            t, g, _ = best(tris, coarse, j, dl)
        tri = tris[t]
        if refine > 1:
            nb = torch.nonzero(torch.isin(F, F[tri]).any(-1) & near[F].all(-1)).squeeze(1)
            t2, g2, _ = best(nb, fine, j, dl)
            tri, bary = nb[t2], fine[g2]
        else:
            bary = coarse[g]
        emb.vertices[j] = F[tri]
        emb.bary[j] = bary
    return emb


def _edge_graph(verts: torch.Tensor, faces: torch.Tensor):
    """The mesh's edges as a symmetric sparse ``(V, V)`` matrix of their lengths."""
    import numpy as np
    from scipy.sparse import coo_matrix

    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = torch.unique(torch.sort(e, 1).values, dim=0)
    w = (verts[e[:, 0]] - verts[e[:, 1]]).norm(dim=-1).numpy()
    i, j = e[:, 0].numpy(), e[:, 1].numpy()
    V = verts.shape[0]
    return coo_matrix(
        (np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(V, V)
    ).tocsr()


def embedding_residuals(
    detected: torch.Tensor,
    vertices: torch.Tensor,
    K: torch.Tensor,
    points: LandmarkEmbedding,
    sizes: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(N, 68)`` reprojection residual ``|pi_i(p_ij) - d_ij| / s_i`` of an embedding (NaN
    where a point was missed); ``s_i = sizes`` ``(N,)``, default the face size of the
    projected points."""
    P = _project_camera(points.points(vertices.double()), K.double())
    s = _face_sizes(P) if sizes is None else sizes.double()
    return (detected.double() - P).norm(dim=-1) / s[:, None]


def measure_embedding_spread(
    detected: torch.Tensor,
    vertices: torch.Tensor,
    K: torch.Tensor,
    yaw: torch.Tensor,
    points: LandmarkEmbedding,
    valid_deg: float = 45.0,
    sizes: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(68,)`` robust RMS ``1.2011 * median_i |r_ij|`` of the residual after the embedding
    (:func:`embedding_residuals`; not centred: the fitter applies no offset with an
    embedding) over detected faces with ``|yaw| < valid_deg`` (``sizes`` as there)."""
    r = embedding_residuals(detected, vertices, K, points, sizes)
    keep = (yaw.abs() < valid_deg) & torch.isfinite(r).all(-1)
    if int(keep.sum()) < 3:
        raise InvalidInput(f"need at least 3 detected faces with |yaw| < {valid_deg:g} deg")
    return (1.2011 * r[keep].median(0).values).clamp_min(1e-4)


__all__ = [
    "LandmarkCalibration",
    "LandmarkEmbedding",
    "barycentric_grid",
    "calibration_path",
    "embedding_residuals",
    "fit_embedding",
    "huber",
    "load_calibration",
    "measure_calibration",
    "measure_embedding_spread",
    "resolve_calibration",
]
