"""Several photos of one person: one identity, one expression / pose / light per photo.

The identity is the same person's shape, so it is shared: stage 1 solves one linear system
with unknowns ``(alpha, beta_1, ..., beta_N)`` (:func:`facelab.fit.landmarks.fit_landmarks`
with ``shared_identity=True``); stage 2 renders the ``N`` crops as one batch whose identity
(and albedo) coefficients are a single row broadcast over the batch. More views constrain the
shape better than any one of them (the depth ambiguity of one view is resolved by another).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ..errors import InvalidInput
from ..geometry.camera import intrinsics
from .api import (
    EXTREME_YAW,
    MIN_FACE_PX,
    _fit_config,
    _resolve_model,
    _ypr,
    crop_face,
    package_result,
    prepare_photos,
)
from .calibration import LandmarkEmbedding
from .landmarks import LandmarkFitConfig, fit_landmarks
from .photometric import FitConfig, fit_photometric
from .result import FitResult


def fit_multi(
    photos: list[Any],
    model: Any = "ict-face",
    landmarks: list[torch.Tensor] | None = None,
    config: FitConfig | None = None,
    landmark_config: LandmarkFitConfig | None = None,
    face: str | int = "largest",
    detector: Any = "dlib",
    photometric: bool = True,
    fast: bool | None = None,
    progress: bool | None = None,
    min_face_px: float = MIN_FACE_PX,
    calibration: Any = "auto",
    calibration_weights: bool = True,
    calibration_offsets: bool = True,
) -> list[FitResult]:
    """Fit one identity to several photos of the same person.

    Arguments as :func:`facelab.fit.fit`, with lists of photos (and optional ``(68, 2)``
    landmarks per photo); the pipeline is :func:`~facelab.fit.fit`'s: the detector's
    calibration (its 3D landmark embedding and per-point weights) and, for a detector's
    landmarks, :func:`~facelab.fit.detected_landmark_config` for stage 1 unless
    ``landmark_config`` is given. Returns one :class:`FitResult` per photo; all share
    ``params.identity`` (and the albedo coefficients).
    """
    t_all = time.perf_counter()
    mdl = _resolve_model(model)
    cfg = _fit_config(config, fast, progress)
    preps = prepare_photos(
        photos, mdl, landmarks, face, detector, min_face_px, calibration,
        calibration_weights, calibration_offsets, use_embedding=True,
    )  # fmt: skip
    imgs = [p.image for p in preps]  # photos follow the model
    srcs = [p.source for p in preps]
    lms = [p.landmarks for p in preps]  # as detected: the crops are placed on them
    targets = [p.target for p in preps]  # what the fit aims at (calibrated)
    embedding = preps[0].embedding  # one detector, one calibration: the same for every photo
    if any((p.embedding is None) != (embedding is None) for p in preps):
        raise InvalidInput("fit_multi: the photos' landmarks need one calibration (mixed sources)")
    wts = None if preps[0].weights is None else torch.stack([p.weights for p in preps])
    lm_config = preps[0].landmark_config(landmark_config)
    # Stage 1, shared identity. Different photo sizes: fit each in its own pixel frame by
    # normalising to a common focal convention (principal point at each photo's centre).
    t0 = time.perf_counter()
    sizes = [tuple(im.shape[-2:]) for im in imgs]
    # Map every photo to the first photo's frame by a scale about the centre (same FOV).
    H0, W0 = sizes[0]
    scaled = []
    for (H, W), lm in zip(sizes, targets):
        s = max(H0, W0) / max(H, W)
        c, c0 = lm.new_tensor([W / 2, H / 2]), lm.new_tensor([W0 / 2, H0 / 2])
        scaled.append((lm - c) * s + c0)
    lf = fit_landmarks(
        mdl, torch.stack(scaled).to(mdl.dtype), (H0, W0), lm_config, visible=wts,
        shared_identity=True, embedding=embedding,
    )  # fmt: skip
    idx = list(range(len(imgs)))
    t_lm = time.perf_counter() - t0
    params = lf.params
    focal_full = []
    for (H, W), i in zip(sizes, idx):
        s = max(H, W) / max(sizes[0])
        focal_full.append(params.focal[i] * s)
    focal_full = torch.stack(focal_full)
    Ks = [
        intrinsics(focal_full[i : i + 1], focal_full[i : i + 1], W / 2.0, H / 2.0)[0]
        for i, (H, W) in enumerate(sizes)
    ]
    warnings: list[list[str]] = [[] for _ in imgs]
    for i in range(len(imgs)):
        yaw = _ypr(params.rotation[i])[0]
        if abs(yaw) > EXTREME_YAW:
            warnings[i].append(f"extreme pose: |yaw| = {abs(yaw):.0f} deg > {EXTREME_YAW:.0f}")
    history: dict[str, list[float]] = {"landmarks": list(lf.history)}
    timings = {"landmarks": t_lm}
    albedos = None
    if photometric:
        R = cfg.resolution
        crops = [
            crop_face(img.to(mdl.dtype), lm, K, R, cfg.crop_scale)
            for img, lm, K in zip(imgs, lms, Ks)
        ]
        t0 = time.perf_counter()
        lmc = torch.stack([c.to_crop(lm) for c, lm in zip(crops, targets)])
        ph = fit_photometric(
            mdl, torch.cat([c.image for c in crops]), lmc, params, torch.cat([c.K for c in crops]),
            lf.landmark_vertices, cfg, shared_identity=True,
            target_valid=torch.cat([c.valid for c in crops]), landmark_weights=wts,
            landmark_points=lf.landmark_points,
        )  # fmt: skip
        timings["photometric"] = time.perf_counter() - t0
        timings.update({f"stage_{k}": v for k, v in ph.stage_seconds.items()})
        for rec in ph.history:
            history.setdefault(str(rec["stage"]), []).append(float(rec["loss"]))
        params = ph.params
        params.focal = torch.stack([ph.K[i, 0, 0] / c.scale for i, c in enumerate(crops)])
        Ks = [
            intrinsics(params.focal[i : i + 1], params.focal[i : i + 1], W / 2.0, H / 2.0)[0]
            for i, (H, W) in enumerate(sizes)
        ]
        albedos = ph.vertex_albedo
        for w in warnings:
            w += ph.warnings
    else:
        from ..render.shading import sh_ambient

        params.light = sh_ambient(1.0, len(imgs), 3, dtype=mdl.dtype, device=mdl.device)
        albedos = torch.full(
            (len(imgs), mdl.n_vertices, 3), 0.5, dtype=mdl.dtype, device=mdl.device
        )
    timings["total"] = time.perf_counter() - t_all
    out = []
    for i in range(len(imgs)):
        out.append(
            package_result(
                mdl, imgs[i], lms[i], params[i], Ks[i], lf.landmark_vertices[i], albedos[i],
                history, dict(timings), warnings[i], srcs[i],
                landmark_points=_row(lf.landmark_points, i),
            )
        )  # fmt: skip
    return out


def _row(points: LandmarkEmbedding | None, i: int) -> LandmarkEmbedding | None:
    """Photo ``i``'s ``(68, 3)`` embedding of a batched ``(B, 68, 3)`` one."""
    if points is None or points.vertices.dim() == 2:
        return points
    return LandmarkEmbedding(points.vertices[i], points.bary[i])


__all__ = ["fit_multi"]
