"""Analysis-by-synthesis fitting of a 3D morphable model to photos.

Two stages (see :mod:`facelab.fit.landmarks` and :mod:`facelab.fit.photometric`):

1. closed-form / linear landmark fitting: pose (POS + Levenberg-Marquardt), identity and
   expression (bounded linear least squares), a sliding jaw contour;
2. photometric refinement with the differentiable renderer: pose, shape, expression, albedo
   and SH light (focal optional), robust photometric + landmark + prior terms, staged
   schedules, Adam or L-BFGS, a NaN guard.

Quick start::

    from facelab.fit import fit
    result = fit("photo.jpg", model="ict-face")     # detect, fit, package
    result.save("out/")                             # mesh.obj, params.json, overlay.png, report.html

Several photos of one person: :func:`facelab.fit.multi.fit_multi` (shared identity).
"""

from __future__ import annotations

from .api import EXTREME_YAW, MIN_FACE_PX, crop_box, crop_image, crop_intrinsics, fast_mode, fit
from .landmarks import (
    LandmarkFit,
    LandmarkFitConfig,
    detected_landmark_config,
    fit_landmarks,
    pos_pose,
    refine_pose,
)
from .losses import charbonnier, gaussian_prior, landmark_loss, photometric_loss, sh_prior
from .multi import fit_multi
from .photometric import (
    FitConfig,
    PhotometricFit,
    Stage,
    default_stages,
    estimate_light,
    fit_photometric,
)
from .render import FaceRender, render_face
from .result import FitResult

__all__ = [
    "EXTREME_YAW",
    "MIN_FACE_PX",
    "FaceRender",
    "FitConfig",
    "FitResult",
    "LandmarkFit",
    "LandmarkFitConfig",
    "PhotometricFit",
    "Stage",
    "charbonnier",
    "crop_box",
    "crop_image",
    "crop_intrinsics",
    "default_stages",
    "detected_landmark_config",
    "estimate_light",
    "fast_mode",
    "fit",
    "fit_landmarks",
    "fit_multi",
    "fit_photometric",
    "gaussian_prior",
    "landmark_loss",
    "photometric_loss",
    "pos_pose",
    "refine_pose",
    "render_face",
    "sh_prior",
]
