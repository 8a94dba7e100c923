"""Stage 1 of fitting: pose, identity and expression from 68 2D landmarks.

Given detected landmarks :math:`x_j \\in \\mathbb{R}^2` (pixels) and the model's landmark
vertices :math:`v_j`, find the pose :math:`(R, t)`, identity :math:`\\alpha` and expression
:math:`\\beta` of a pinhole camera with focal :math:`f` and principal point :math:`(c_x, c_y)`:

.. math::
    \\min \\sum_j \\frac{\\lVert \\pi(M S_{v_j}(\\alpha, \\beta) + t) - x_j \\rVert^2}{\\sigma^2}
    + \\lambda_{id} \\lVert \\alpha \\rVert^2 + \\lambda_{exp} \\lVert \\beta \\rVert^2,
    \\qquad M = R \\,\\mathrm{diag}(1, -1, -1)

(``beta`` in [0, 1] for blendshape models). It is solved by alternation, each step in closed
form or nearly so (as in eos, Huber et al. 2016):

1. **Pose, first guess: POS** (scaled orthography). Fit an affine camera
   :math:`x_j = A v_j + b` by linear least squares, take ``s`` and the rotation's first two
   rows from ``A`` (orthonormalised by an SVD), the third row as their cross product; then
   the perspective translation follows from ``t_z = f / s``.
2. **Pose refinement**: a few Gauss-Newton (Levenberg-Marquardt) steps on the perspective
   reprojection error over the 6 pose parameters (68 points: a 136 x 6 Jacobian).
3. **Shape, linear**: with the camera fixed, the projection is linear in the shape after
   multiplying by depth: :math:`f x_c - (u - c_x) z_c = 0`. Divided by the current depth
   :math:`z_j` each row is (to first order) a pixel residual, so
   ``[f M_0 - (u-c_x) M_2] (m_j + B_j c) / z_j + (f t_0 - (u - c_x) t_2) / z_j = 0`` is a linear
   least-squares problem in ``c = (alpha, beta)`` with a Tikhonov prior and box bounds on
   blendshape weights (:func:`scipy.optimize.lsq_linear`).
4. **Sliding jaw contour**: the 17 jaw landmarks of a photo lie on the face's *silhouette*,
   which moves over the surface as the head turns. Each iteration, every jaw landmark is
   re-assigned to the model contour candidate (same side of the face) whose projection is
   closest to the detected point.
5. **Embedded landmarks** (``embedding``, a detector's
   :class:`~facelab.fit.calibration.LandmarkEmbedding`): inner landmark ``j`` is the surface
   point :math:`p_j = \\sum_k b_{jk} v_{t_{jk}}` instead of the vertex ``v_j``. It is linear in
   the shape like a vertex, so every step above holds with its mean and basis rows
   :math:`\\sum_k b_{jk} (\\bar v, B)_{t_{jk}}` (appended to the model's as 68 extra rows).

With several images of one person (``shared_identity``) the unknown vector is
``(alpha, beta_1, ..., beta_N)``: one identity, one expression and one pose per image.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from .._checks import check_finite, check_shape
from ..errors import FitDiverged, InvalidInput
from ..geometry.conventions import flip_yz
from ..geometry.rotation import axis_angle_to_matrix, matrix_to_axis_angle
from ..models.params import FaceParams
from .calibration import LandmarkEmbedding

#: iBUG-68 indices of the jaw contour (0 = subject's right ear side, 8 = chin tip).
JAW = tuple(range(17))


@dataclass
class LandmarkFitConfig:
    """Options of :func:`fit_landmarks` (defaults give the book's result).

    Attributes:
        iterations: pose / shape alternations.
        pose_iterations: Levenberg-Marquardt steps per pose update.
        focal: focal length in pixels; ``None`` uses ``fov_degrees`` over the larger image side.
        fov_degrees: assumed field of view when ``focal`` is None (a typical portrait lens).
        sigma: landmark noise std as a fraction of the face size (sqrt of the 2D landmark box
            area); the data term is divided by ``sigma^2``.
        identity_prior, expression_prior: Tikhonov weights ``lambda``.
        n_identity, n_expression: use only the first components (``None`` = all).
        fit_identity, fit_expression: solve for them (else they stay 0).
        contour: re-select the jaw landmarks on the sliding contour.
        robust: Cauchy scale ``c`` (fraction of the face size) of an iteratively reweighted
            landmark term: after each pose update a point with reprojection error ``r`` gets
            weight ``w / (1 + (r / c)^2)``; ``None`` = plain least squares.
    """

    iterations: int = 6
    pose_iterations: int = 8
    focal: float | None = None
    fov_degrees: float = 18.0
    sigma: float = 0.015
    identity_prior: float = 1.0
    expression_prior: float = 1.0
    n_identity: int | None = None
    n_expression: int | None = None
    fit_identity: bool = True
    fit_expression: bool = True
    contour: bool = True
    robust: float | None = None


def detected_landmark_config(**overrides: Any) -> LandmarkFitConfig:
    """Stage-1 settings for a DETECTOR's landmarks (what :func:`facelab.fit.fit` uses when
    a detector calibration is in play and no ``landmark_config`` is given).

    A detector's points are noisy and defined differently from the model's landmark vertices,
    and the plain least-squares fit explains the difference with identity and, mostly, with
    expression: on the tuning faces (``benchmarks/tune_fit.py``: world seed 5 and the Blender
    tuning half, 24 faces, dlib) the mean identity with the *fitted* expression scored worse
    than the mean face. Stronger Tikhonov priors, chosen there (the landmark-only median s2m,
    as a ratio to the mean face's: 1.11 with ``identity_prior`` 10 alone, 1.05 with
    ``expression_prior`` 10 as well): ``identity_prior=10``, ``expression_prior=10``.
    ``overrides`` replace single fields.
    """
    base = LandmarkFitConfig(identity_prior=10.0, expression_prior=10.0)
    known = set(LandmarkFitConfig.__dataclass_fields__)
    bad = sorted(set(overrides) - known)
    if bad:
        raise InvalidInput(f"unknown LandmarkFitConfig fields {bad}; known {sorted(known)}")
    return replace(base, **overrides)


@dataclass
class LandmarkFit:
    """Result of :func:`fit_landmarks`.

    Attributes:
        params: ``FaceParams`` (identity, expression, rotation, translation, focal) for ``B``
            images (with a shared identity, every row has the same identity).
        landmark_vertices: ``(B, 68)`` long, the model vertex used for each landmark (jaw
            entries slide with the pose; an embedded point gives its heaviest corner).
        projected: ``(B, 68, 2)`` the fitted landmarks' projections in pixels.
        rms_px: ``(B,)`` root-mean-square reprojection error in pixels.
        history: RMS error (pixels, mean over images) after each alternation.
        seconds: wall time.
        landmark_points: the landmarks the fit used as a ``(B, 68, 3)``
            :class:`~facelab.fit.calibration.LandmarkEmbedding` (the ``embedding``'s points,
            or the landmark vertices, with each image's sliding jaw vertices): pass it to
            :func:`facelab.fit.photometric.fit_photometric`.
    """

    params: FaceParams
    landmark_vertices: torch.Tensor
    projected: torch.Tensor
    rms_px: torch.Tensor
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    landmark_points: LandmarkEmbedding | None = None


def default_focal(image_size: tuple[int, int], fov_degrees: float = 18.0) -> float:
    """Focal length (pixels) giving a FOV of ``fov_degrees`` across ``max(H, W)``:
    :func:`facelab.geometry.camera.focal_from_fov` (``f = 0.5 max(H, W) / tan(fov / 2)``)."""
    from ..geometry.camera import focal_from_fov

    return focal_from_fov(image_size, fov_degrees)


def _contour_sides(model, dtype) -> tuple[np.ndarray, np.ndarray]:
    """All contour candidate vertices, split by model-space side: (x < 0, x >= 0)."""
    if not model.contour_candidates:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cand = torch.unique(torch.cat([c.flatten() for c in model.contour_candidates.values()]))
    x = model.mean[cand, 0]
    c = cand.cpu().numpy()
    return c[(x < 0).cpu().numpy()], c[(x >= 0).cpu().numpy()]


def pos_pose(
    points3d: torch.Tensor, points2d: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """POS: scaled-orthographic pose from 2D-3D correspondences, in closed form.

    Fits ``x = A X + b`` (``A (2, 3)``) by weighted linear least squares, then
    ``s = (|A_0| + |A_1|) / 2`` and the nearest rotation rows (SVD polar factor of ``A``),
    completed by their cross product.

    Args:
        points3d: ``(N, 3)`` points in *camera-aligned* axes (apply the model flip first).
        points2d: ``(N, 2)`` pixels.
        weights: ``(N,)`` optional.

    Returns:
        ``(s (), R (3, 3), b (2,))`` with ``x ~ s R[:2] X + b``.
    """
    n = points3d.shape[0]
    w = torch.ones(n, dtype=points3d.dtype, device=points3d.device) if weights is None else weights
    X = torch.cat([points3d, torch.ones_like(points3d[:, :1])], 1)  # (N, 4)
    sw = w.sqrt()[:, None]
    sol = torch.linalg.lstsq(X * sw, points2d * sw).solution  # (4, 2)
    A, b = sol[:3].T, sol[3]  # (2, 3), (2,)
    u, sv, vh = torch.linalg.svd(A, full_matrices=False)
    r12 = u @ vh  # (2, 3) orthonormal rows
    r3 = torch.linalg.cross(r12[0], r12[1])
    R = torch.stack([r12[0], r12[1], r3])
    s = sv.mean()
    return s, R, b


def _project(Xc: torch.Tensor, f: float, cx: float, cy: float) -> torch.Tensor:
    """``(..., 3)`` camera points -> ``(..., 2)`` pixels, ``fx = fy = f``: the one pinhole
    formula, :func:`facelab.geometry.camera.project`."""
    from ..geometry.camera import project

    K = Xc.new_tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    return project(Xc.reshape(1, -1, 3), K).reshape(*Xc.shape[:-1], 2)


def refine_pose(
    points3d: torch.Tensor,
    points2d: torch.Tensor,
    rotation: torch.Tensor,
    translation: torch.Tensor,
    focal: float,
    principal: tuple[float, float],
    weights: torch.Tensor | None = None,
    iterations: int = 8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Levenberg-Marquardt on the perspective reprojection error over ``(rotation, t)``.

    ``points3d (N, 3)`` model space, ``points2d (N, 2)`` pixels, ``rotation (3,)`` axis-angle,
    ``translation (3,)``. Returns the refined ``(rotation, translation)``.
    """
    flip = flip_yz(points3d)
    cx, cy = principal
    w = None if weights is None else weights.sqrt().repeat_interleave(2)

    def resid(theta: torch.Tensor) -> torch.Tensor:
        M = axis_angle_to_matrix(theta[:3]) @ flip
        r = (_project(points3d @ M.T + theta[3:], focal, cx, cy) - points2d).reshape(-1)
        return r if w is None else r * w

    theta = torch.cat([rotation, translation]).detach().clone()
    lam = 1e-3
    r = resid(theta)
    cost = float(r @ r)
    for _ in range(iterations):
        J = torch.func.jacfwd(resid)(theta)  # (2N, 6), six forward-mode passes
        JTJ, JTr = J.T @ J, J.T @ r
        improved = False
        for _ in range(6):
            step = torch.linalg.solve(JTJ + lam * torch.diag(JTJ.diagonal() + 1e-12), -JTr)
            cand = theta + step
            rc = resid(cand)
            cc = float(rc @ rc)
            if math.isfinite(cc) and cc < cost:
                theta, r, cost = cand, rc, cc
                lam = max(lam / 10, 1e-9)
                improved = True
                break
            lam *= 10
        if not improved or float(step.norm()) < 1e-10:
            break
    return theta[:3], theta[3:]


def box_qp(
    Q: np.ndarray, q: np.ndarray, lo: np.ndarray, hi: np.ndarray, x0: np.ndarray | None = None
) -> np.ndarray:
    """``argmin 0.5 x^T Q x - q^T x`` subject to ``lo <= x <= hi`` (``Q`` positive definite).

    Unbounded problems are one Cholesky solve; with bounds (blendshape weights in [0, 1]) we
    run L-BFGS-B (:func:`scipy.optimize.minimize`) from the clipped unconstrained solution --
    a few hundred variables converge in milliseconds.
    """
    from scipy.linalg import cho_factor, cho_solve
    from scipy.optimize import minimize

    x_free = cho_solve(cho_factor(Q), q)
    if not (np.isfinite(lo).any() or np.isfinite(hi).any()):
        return x_free
    start = np.clip(x_free, lo, hi)
    if x0 is not None:
        x0 = np.clip(x0, lo, hi)
        if 0.5 * x0 @ Q @ x0 - q @ x0 < 0.5 * start @ Q @ start - q @ start:
            start = x0
    bounds = list(zip(np.where(np.isfinite(lo), lo, None), np.where(np.isfinite(hi), hi, None)))
    res = minimize(
        lambda x: (0.5 * x @ Q @ x - q @ x, Q @ x - q),
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10},
    )
    return np.clip(res.x, lo, hi)


@dataclass
class _View:
    x2d: torch.Tensor  # (68, 2)
    w: torch.Tensor  # (68,)
    lm: np.ndarray  # (68,) vertex ids (jaw entries slide)
    rot: torch.Tensor  # (3,)
    t: torch.Tensor  # (3,)


def fit_landmarks(
    model,
    landmarks2d: torch.Tensor,
    image_size: tuple[int, int],
    config: LandmarkFitConfig | None = None,
    visible: torch.Tensor | None = None,
    shared_identity: bool = False,
    embedding: LandmarkEmbedding | None = None,
) -> LandmarkFit:
    """Fit pose, identity and expression to 68 2D landmarks (see the module docstring).

    Args:
        model: a :class:`facelab.models.MorphableModel` with 68 ``landmarks``.
        landmarks2d: ``(B, 68, 2)`` or ``(68, 2)`` detected landmarks, pixels (OpenCV).
        image_size: ``(H, W)`` of the photos (principal point at the centre).
        config: :class:`LandmarkFitConfig`.
        visible: optional ``(B, 68)`` bool/float weights (0 = ignore a landmark).
        shared_identity: one identity for all ``B`` images (one person, several photos).
        embedding: a ``(68, 3)`` :class:`~facelab.fit.calibration.LandmarkEmbedding` whose
            points replace the inner landmark vertices (the jaw still slides when
            ``config.contour``); default: the model's landmark vertices.

    Returns:
        :class:`LandmarkFit` (params in the model's dtype and device).

    Raises:
        InvalidInput: wrong shapes, NaN landmarks, model without 68 landmarks.
        FitDiverged: the solution became non-finite.
    """
    cfg = config or LandmarkFitConfig()
    t0 = time.perf_counter()
    if landmarks2d.dim() == 2:
        landmarks2d = landmarks2d[None]
    check_shape("landmarks2d", landmarks2d, (None, 68, 2))
    check_finite("landmarks2d", landmarks2d)
    if model.landmarks is None or model.landmarks.numel() != 68:
        raise InvalidInput(f"model {model.name!r} needs 68 iBUG landmarks to fit landmarks")
    B = landmarks2d.shape[0]
    H, W = int(image_size[0]), int(image_size[1])
    f = float(cfg.focal) if cfg.focal is not None else default_focal((H, W), cfg.fov_degrees)
    cx, cy = W / 2.0, H / 2.0
    dd = torch.float64
    mean = model.mean.detach().to("cpu", dd)
    kid = model.n_identity if cfg.n_identity is None else min(cfg.n_identity, model.n_identity)
    kexp = (
        model.n_expression
        if cfg.n_expression is None
        else min(cfg.n_expression, model.n_expression)
    )
    if not cfg.fit_identity:
        kid = 0
    if not cfg.fit_expression:
        kexp = 0
    Bid = model.identity_basis[:kid].detach().to("cpu", dd)  # (kid, V, 3)
    Bexp = model.expression_basis[:kexp].detach().to("cpu", dd)
    blend = model.expression_kind == "blendshapes"
    lm0 = model.landmarks.cpu().numpy().astype(np.int64)
    V = mean.shape[0]
    inner = [j for j in range(68) if j not in JAW]
    if embedding is not None:
        if tuple(embedding.vertices.shape) != (68, 3):
            raise InvalidInput("embedding must be one (68, 3) LandmarkEmbedding")
        # the 68 embedded points as extra "vertices" V..V+67 (linear in the shape like any)
        eid = embedding.vertices.cpu()
        ew = embedding.bary.to("cpu", dd)[..., None]
        mean = torch.cat([mean, (mean[eid] * ew).sum(-2)])
        Bid = torch.cat([Bid, (Bid[:, eid] * ew).sum(-2)], 1)
        Bexp = torch.cat([Bexp, (Bexp[:, eid] * ew).sum(-2)], 1)
        lm0 = lm0.copy()
        lm0[inner] = V + np.asarray(inner)
    left, right = _contour_sides(model, dd) if cfg.contour else (np.zeros(0), np.zeros(0))
    flip = flip_yz(mean)

    x2d_all = landmarks2d.detach().to("cpu", dd)
    if visible is None:
        wts = torch.ones(B, 68, dtype=dd)
    else:
        check_shape("visible", visible, (B, 68))
        wts = visible.detach().to("cpu", dd)
    # Noise scale: sigma * face size (per image).
    span = x2d_all.amax(1) - x2d_all.amin(1)
    face_size = (span[:, 0] * span[:, 1]).clamp_min(1e-6).sqrt()
    sig = (cfg.sigma * face_size).clamp_min(0.5)  # (B,)

    n_img_exp = B
    alpha = torch.zeros(B if not shared_identity else 1, kid, dtype=dd)
    beta = torch.zeros(n_img_exp, kexp, dtype=dd)

    def shape_at(i: int, idx: np.ndarray) -> torch.Tensor:
        a = alpha[0 if shared_identity else i]
        s = mean[idx].clone()
        if kid:
            s = s + torch.einsum("k,kvc->vc", a, Bid[:, idx])
        if kexp:
            s = s + torch.einsum("k,kvc->vc", beta[i], Bexp[:, idx])
        return s

    # --- initial pose by POS on the mean shape ----------------------------------------------
    views: list[_View] = []
    for i in range(B):
        X = mean[lm0] @ flip.T  # camera-aligned axes
        s, R, b = pos_pose(X, x2d_all[i], wts[i])
        if not bool(torch.isfinite(s)) or float(s) <= 0:
            raise InvalidInput(f"image {i}: landmarks are degenerate (cannot estimate a pose)")
        tz = f / float(s)
        t = torch.tensor(
            [(float(b[0]) - cx) / float(s), (float(b[1]) - cy) / float(s), tz], dtype=dd
        )
        rot = matrix_to_axis_angle(R)
        views.append(_View(x2d_all[i], wts[i], lm0.copy(), rot, t))

    history: list[float] = []
    for _it in range(max(1, cfg.iterations)):
        # --- pose per view (shape fixed) and contour re-selection -------------------------------
        for i, vw in enumerate(views):
            S = shape_at(i, vw.lm)
            vw.rot, vw.t = refine_pose(
                S, vw.x2d, vw.rot, vw.t, f, (cx, cy), vw.w, cfg.pose_iterations
            )
            if cfg.contour and (len(left) or len(right)):
                M = axis_angle_to_matrix(vw.rot) @ flip
                for side, ids in ((left, range(0, 8)), (right, range(9, 17))):
                    if not len(side):
                        continue
                    cand = np.concatenate([side, lm0[list(ids)]])
                    P = _project(shape_at(i, cand) @ M.T + vw.t, f, cx, cy)  # (C, 2)
                    d = torch.cdist(vw.x2d[list(ids)], P)  # (n, C)
                    vw.lm[list(ids)] = cand[d.argmin(1).numpy()]
            if cfg.robust:
                M = axis_angle_to_matrix(vw.rot) @ flip
                P = _project(shape_at(i, vw.lm) @ M.T + vw.t, f, cx, cy)
                r = (P - vw.x2d).norm(dim=-1) / face_size[i]
                vw.w = wts[i] / (1 + (r / cfg.robust).square())
        if kid == 0 and kexp == 0:
            history.append(_rms(views, shape_at, f, cx, cy, flip))
            continue
        # --- linear shape solve (all views at once) ---------------------------------------------
        n_id_cols = kid
        ncols = n_id_cols * (1 if shared_identity else B) + kexp * B
        rows_a, rows_b = [], []
        for i, vw in enumerate(views):
            M = axis_angle_to_matrix(vw.rot) @ flip  # (3, 3)
            m = mean[vw.lm]  # (68, 3)
            Xc = (shape_at(i, vw.lm)) @ M.T + vw.t
            z = Xc[:, 2].clamp_min(1e-6)
            uu = vw.x2d[:, 0] - cx
            vv = vw.x2d[:, 1] - cy
            # Row vectors acting on a 3D model point: (68, 3) each.
            gu = (f * M[0][None] - uu[:, None] * M[2][None]) / z[:, None]
            gv = (f * M[1][None] - vv[:, None] * M[2][None]) / z[:, None]
            cu = (f * vw.t[0] - uu * vw.t[2]) / z
            cv = (f * vw.t[1] - vv * vw.t[2]) / z
            scale = vw.w.sqrt() / sig[i]
            A = torch.zeros(2, 68, ncols, dtype=dd)
            for g, r in ((gu, 0), (gv, 1)):
                if kid:
                    col0 = 0 if shared_identity else i * kid
                    A[r, :, col0 : col0 + kid] = torch.einsum("jc,kjc->jk", g, Bid[:, vw.lm])
                if kexp:
                    col0 = kid * (1 if shared_identity else B) + i * kexp
                    A[r, :, col0 : col0 + kexp] = torch.einsum("jc,kjc->jk", g, Bexp[:, vw.lm])
            bu = -((gu * m).sum(1) + cu)
            bv = -((gv * m).sum(1) + cv)
            rows_a.append((A * scale[None, :, None]).reshape(-1, ncols))
            rows_b.append((torch.stack([bu, bv]) * scale[None]).reshape(-1))
        prior = torch.zeros(ncols, dtype=dd)
        prior[: kid * (1 if shared_identity else B)] = math.sqrt(cfg.identity_prior)
        prior[kid * (1 if shared_identity else B) :] = math.sqrt(cfg.expression_prior)
        A = torch.cat(rows_a)
        b = torch.cat(rows_b)
        Q = A.T @ A + torch.diag(prior.square())
        q = A.T @ b
        lo = np.full(ncols, -np.inf)
        hi = np.full(ncols, np.inf)
        if blend and kexp:
            lo[kid * (1 if shared_identity else B) :] = 0.0
            hi[kid * (1 if shared_identity else B) :] = 1.0
        x0 = torch.cat([alpha.reshape(-1), beta.reshape(-1)])
        sol = box_qp(Q.numpy(), q.numpy(), lo, hi, x0.numpy())
        if not np.isfinite(sol).all():
            raise FitDiverged("landmark fit: the linear shape solve returned NaN/Inf")
        sol_t = torch.from_numpy(sol)
        na = kid * (1 if shared_identity else B)
        if kid:
            alpha = sol_t[:na].reshape(-1, kid)
        if kexp:
            beta = sol_t[na:].reshape(B, kexp)
        history.append(_rms(views, shape_at, f, cx, cy, flip))

    # Final pose with the final shape.
    for i, vw in enumerate(views):
        vw.rot, vw.t = refine_pose(
            shape_at(i, vw.lm), vw.x2d, vw.rot, vw.t, f, (cx, cy), vw.w, cfg.pose_iterations
        )
    projected, rms = [], []
    for i, vw in enumerate(views):
        M = axis_angle_to_matrix(vw.rot) @ flip
        P = _project(shape_at(i, vw.lm) @ M.T + vw.t, f, cx, cy)
        projected.append(P)
        w = vw.w / vw.w.sum().clamp_min(1e-12)
        rms.append(((P - vw.x2d).square().sum(-1) * w).sum().sqrt())
    dev, dt = model.device, model.dtype
    ident = torch.zeros(B, model.n_identity, dtype=dd)
    if kid:
        ident[:, :kid] = alpha.expand(B, kid) if shared_identity else alpha
    expr = torch.zeros(B, model.n_expression, dtype=dd)
    if kexp:
        expr[:, :kexp] = beta
    params = FaceParams(
        identity=ident.to(dev, dt),
        expression=expr.to(dev, dt),
        rotation=torch.stack([v.rot for v in views]).to(dev, dt),
        translation=torch.stack([v.t for v in views]).to(dev, dt),
        focal=torch.full((B,), f, dtype=dt, device=dev),
    )
    for _, tns in params.items():
        if not bool(torch.isfinite(tns).all()):
            raise FitDiverged("landmark fit produced NaN/Inf parameters", last_good=None)
    used = torch.from_numpy(np.stack([v.lm for v in views]))  # (B, 68), >= V: embedded
    base = embedding or LandmarkEmbedding.from_vertices(model.landmarks.cpu())
    base = LandmarkEmbedding(base.vertices.cpu().expand(B, 68, 3), base.bary.expand(B, 68, 3))
    points = base.with_rows(JAW, used[:, list(JAW)])
    real = torch.where(used >= V, points.nearest_vertices(), used)
    return LandmarkFit(
        params=params,
        landmark_vertices=real.to(dev),
        landmark_points=LandmarkEmbedding(points.vertices.to(dev), points.bary.to(dev, dt)),
        projected=torch.stack(projected).to(dev, dt),
        rms_px=torch.stack(rms).to(dev, dt),
        history=history,
        seconds=time.perf_counter() - t0,
    )


def _rms(views, shape_at, f, cx, cy, flip) -> float:
    tot = 0.0
    for i, vw in enumerate(views):
        M = axis_angle_to_matrix(vw.rot) @ flip
        P = _project(shape_at(i, vw.lm) @ M.T + vw.t, f, cx, cy)
        w = vw.w / vw.w.sum().clamp_min(1e-12)
        tot += float(((P - vw.x2d).square().sum(-1) * w).sum().sqrt())
    return tot / len(views)


__all__ = [
    "JAW",
    "LandmarkFit",
    "LandmarkFitConfig",
    "box_qp",
    "default_focal",
    "fit_landmarks",
    "pos_pose",
    "refine_pose",
]
