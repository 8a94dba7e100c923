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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InvalidInput

#: where the measured calibrations live (package data)
ASSET_DIR = Path(__file__).resolve().parent.parent / "assets"
#: iBUG-68 jaw contour indices (they slide on the silhouette; no constant offset)
JAW = tuple(range(17))


@dataclass
class LandmarkCalibration:
    """Per-landmark offset ``(68, 2)`` and spread ``(68,)`` of a detector vs a model.

    Both are in units of the face size ``s = sqrt(landmark box area)``.
    """

    detector: str
    model: str
    offset: torch.Tensor
    spread: torch.Tensor
    n_faces: int = 0
    note: str = ""

    def __post_init__(self) -> None:
        self.offset = torch.as_tensor(self.offset, dtype=torch.float64).reshape(68, 2)
        self.spread = torch.as_tensor(self.spread, dtype=torch.float64).reshape(68)
        if not bool(torch.isfinite(self.offset).all() and (self.spread > 0).all()):
            raise InvalidInput("calibration offsets must be finite and spreads positive")

    def weights(self, w_min: float = 0.05, w_max: float = 4.0) -> torch.Tensor:
        """``(68,)`` inverse-variance weights ``(median spread / spread_j)^2`` (median 1),
        clipped to ``[w_min, w_max]``."""
        w = (self.spread.median() / self.spread).square()
        return w.clamp(w_min, w_max)

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
        return {
            "detector": self.detector,
            "model": self.model,
            "n_faces": self.n_faces,
            "note": self.note,
            "offset": [[round(float(v), 5) for v in p] for p in self.offset.tolist()],
            "spread": [round(float(v), 5) for v in self.spread.tolist()],
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def from_json(cls, d: dict) -> LandmarkCalibration:
        return cls(
            detector=d["detector"], model=d["model"], offset=torch.tensor(d["offset"]),
            spread=torch.tensor(d["spread"]), n_faces=int(d.get("n_faces", 0)),
            note=d.get("note", ""),
        )  # fmt: skip


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


__all__ = [
    "LandmarkCalibration",
    "calibration_path",
    "load_calibration",
    "measure_calibration",
    "resolve_calibration",
]
