"""Configuration of the synthetic world: what is sampled, and how far the image model is
from the plain Lambert-SH renderer used for fitting.

One knob, :attr:`WorldConfig.realism` in ``[0, 1]``, sets the *domain gap*. Every effect of the
richer image model has a sub-knob; a sub-knob left at ``None`` follows ``realism`` as in the
table below, and a sub-knob set explicitly overrides it.

=====================  ========================================  ===========================
sub-knob               effect                                    value when ``None``
=====================  ========================================  ===========================
``specular``           Blinn-Phong highlights, roughness map     ``realism``
``subsurface``         wrap lighting + red-shifted irradiance    ``realism``
                       blur (skin's soft terminator)
``ambient_occlusion``  per-vertex hemisphere visibility and      ``realism``
                       cavity term, darkens the ambient (SH)
``shadows``            key-light shadow map + exact ``max(0,     ``realism``
                       n.l)`` key light instead of its SH fit
``background``         one of ``"none"``, ``"procedural"``,      ``"none"`` if realism == 0
                       ``"patches"``, ``"mixed"``                else ``"mixed"``
``background_mix``     opacity of the background texture         ``realism``
``noise``              sensor shot + read noise scale            ``realism``
``blur``               optical (Gaussian) blur scale             ``realism``
``jpeg_quality``       JPEG round trip quality in [1, 100];      off if realism == 0 else
                       0 = off                                   sampled in
                                                                 ``[95 - 60 r, 100 - 10 r]``
``eyes_teeth``         eyeballs / teeth, or painted eye and      ``realism > 0``
                       mouth interiors where the model has none
=====================  ========================================  ===========================

At ``realism = 0`` (all sub-knobs resolved to 0/off) the image is *exactly* the Lambert-SH
render of the sampled :class:`~facelab.models.FaceParams`: the fitter's image model is a
special case of the world's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import InvalidInput

BACKGROUNDS = ("none", "procedural", "patches", "mixed")


@dataclass(frozen=True)
class Knobs:
    """The resolved image-model sub-knobs (no ``None`` left); see :class:`WorldConfig`."""

    specular: float
    subsurface: float
    ambient_occlusion: float
    shadows: float
    background: str
    background_mix: float
    noise: float
    blur: float
    jpeg: bool
    jpeg_quality_range: tuple[float, float]
    eyes_teeth: bool

    @property
    def is_lambert(self) -> bool:
        """True when every effect is off, i.e. the image is the plain Lambert-SH render."""
        return (
            self.specular == 0
            and self.subsurface == 0
            and self.ambient_occlusion == 0
            and self.shadows == 0
            and (self.background == "none" or self.background_mix == 0)
            and self.noise == 0
            and self.blur == 0
            and not self.jpeg
            and not self.eyes_teeth
        )


@dataclass
class WorldConfig:
    """Everything that defines a synthetic world; a dataset is ``(config, seed, length)``.

    Sampling ranges (angles in degrees, ``fov`` is the horizontal field of view):

    - pose: ``yaw ~ U(yaw_range)``, ``pitch ~ U(pitch_range)``, ``roll ~ U(roll_range)``;
      ``R = R_y(yaw) R_x(pitch) R_z(roll)`` in camera axes (see
      :mod:`facelab.geometry.conventions`).
    - camera: ``fov ~ U(fov_range)`` gives ``f = (W / 2) / tan(fov / 2)``; the face's width
      fills a fraction ``fill ~ U(fill_range)`` of the image, which fixes the distance
      ``d = f * face_width / (fill * W)``; the face centre is jittered by ``center_jitter`` of
      the image size.
    - light: an SH environment (ambient ``U(ambient_range)``, a first-order "sky" term of
      relative strength ``U(0, env_directional)``, random colour tint ``tint``) plus a directional
      key light of intensity ``U(key_range)`` from within ``key_cone`` degrees of the camera axis.
      The ground-truth SH (``FaceParams.light``) is environment + the best order-2 SH fit of the
      key light; the realistic image model renders the key light exactly (with shadows).
    - identity/expression/albedo: ``model.sample(truncation, expression_scale)`` and a procedural
      albedo texture with ``albedo_detail`` in [0, 1] (pores, freckles, stubble amplitude) of
      ``albedo_resolution`` texels (None: the power of two >= ``image_size``, in [64, 512]).

    ``shadow_map_size`` caps the key light's shadow-map resolution (it is also capped by
    ``image_size``, floor 48).
    """

    model: str = "builtin"
    image_size: int = 128
    realism: float = 1.0
    # --- image-model sub-knobs (None = follow realism; see module docstring) ---
    specular: float | None = None
    subsurface: float | None = None
    ambient_occlusion: float | None = None
    shadows: float | None = None
    background: str | None = None
    background_mix: float | None = None
    noise: float | None = None
    blur: float | None = None
    jpeg_quality: int | None = None
    eyes_teeth: bool | None = None
    # --- scene sampling ---
    truncation: float = 1.0
    expression_scale: float = 1.0
    yaw_range: tuple[float, float] = (-70.0, 70.0)
    pitch_range: tuple[float, float] = (-20.0, 20.0)
    roll_range: tuple[float, float] = (-12.0, 12.0)
    fov_range: tuple[float, float] = (12.0, 45.0)
    fill_range: tuple[float, float] = (0.4, 0.6)
    center_jitter: float = 0.04
    ambient_range: tuple[float, float] = (0.35, 0.75)
    env_directional: float = 0.5
    key_range: tuple[float, float] = (0.2, 0.75)
    key_cone: float = 75.0
    tint: float = 0.12
    albedo_detail: float = 1.0
    albedo_resolution: int | None = None
    # --- output ---
    shadow_map_size: int = 128

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`InvalidInput` for out-of-range values."""
        if not (0.0 <= float(self.realism) <= 1.0) or math.isnan(float(self.realism)):
            raise InvalidInput(f"realism must be in [0, 1], got {self.realism}")
        if int(self.image_size) < 16:
            raise InvalidInput(f"image_size must be >= 16 pixels, got {self.image_size}")
        for name in ("specular", "subsurface", "ambient_occlusion", "shadows", "noise", "blur"):
            v = getattr(self, name)
            if v is not None and not (0.0 <= float(v) <= 4.0):
                raise InvalidInput(f"{name} must be None or in [0, 4], got {v}")
        if self.background is not None and self.background not in BACKGROUNDS:
            raise InvalidInput(
                f"background must be one of {BACKGROUNDS} or None, got {self.background!r}"
            )
        if self.jpeg_quality is not None and not (0 <= int(self.jpeg_quality) <= 100):
            raise InvalidInput(
                f"jpeg_quality must be None, 0 (off) or in [1, 100], got {self.jpeg_quality}"
            )
        for name in ("yaw_range", "pitch_range", "roll_range", "fov_range", "fill_range"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise InvalidInput(f"{name} must be (low, high) with low <= high, got {(lo, hi)}")
        if not (0 < self.fov_range[0] and self.fov_range[1] < 170):
            raise InvalidInput(f"fov_range must lie in (0, 170) degrees, got {self.fov_range}")
        if not (0 < self.fill_range[0] and self.fill_range[1] <= 2):
            raise InvalidInput(f"fill_range must lie in (0, 2], got {self.fill_range}")

    def knobs(self) -> Knobs:
        """Resolve every sub-knob (``None`` -> its function of ``realism``)."""
        r = float(self.realism)

        def pick(v: float | None) -> float:
            return r if v is None else float(v)

        bg = self.background if self.background is not None else ("none" if r == 0 else "mixed")
        if self.jpeg_quality == 0:
            jpeg, qr = False, (100.0, 100.0)
        elif self.jpeg_quality is not None:
            jpeg, qr = True, (float(self.jpeg_quality), float(self.jpeg_quality))
        else:
            jpeg, qr = r > 0, (95.0 - 60.0 * r, 100.0 - 10.0 * r)
        return Knobs(
            specular=pick(self.specular),
            subsurface=pick(self.subsurface),
            ambient_occlusion=pick(self.ambient_occlusion),
            shadows=pick(self.shadows),
            background=bg,
            background_mix=pick(self.background_mix),
            noise=pick(self.noise),
            blur=pick(self.blur),
            jpeg=jpeg,
            jpeg_quality_range=qr,
            eyes_teeth=(r > 0) if self.eyes_teeth is None else bool(self.eyes_teeth),
        )

    @property
    def albedo_size(self) -> int:
        """The UV albedo resolution actually used (see ``albedo_resolution``)."""
        if self.albedo_resolution is not None:
            return int(self.albedo_resolution)
        return int(min(512, max(64, 2 ** math.ceil(math.log2(self.image_size)))))

    def with_realism(self, realism: float) -> WorldConfig:
        """A copy with another ``realism`` (sub-knobs untouched)."""
        return replace(self, realism=float(realism))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorldConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`InvalidInput`."""
        names = set(cls.__dataclass_fields__)
        unknown = set(d) - names
        if unknown:
            raise InvalidInput(
                f"unknown WorldConfig keys {sorted(unknown)}; valid: {sorted(names)}"
            )
        kw = {k: tuple(v) if k.endswith("_range") else v for k, v in d.items()}
        return cls(**kw)
