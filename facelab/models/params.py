"""``FaceParams``: the named coefficients of one batch of faces.

Deep3DFaceRecon packs every coefficient into one flat vector and slices it by index; facelab
keeps them as named, batch-first tensors instead::

    identity    (B, K_id)     standard-normal identity weights (prior ||w||^2)
    expression  (B, K_exp)    blendshape weights in [0, 1] or standard-normal PCA weights
    rotation    (B, 3)        axis-angle (radians), model -> camera
    translation (B, 3)        camera-space translation, model units
    albedo      (B, K_alb)    optional, standard-normal albedo weights
    light       (B, 9, 3)     optional, 2nd-order spherical-harmonics coefficients per RGB channel
    focal       (B,)          optional, focal length in pixels

The pose maps model space to camera space (see :mod:`facelab.geometry.conventions`)::

    x_cam = R(rotation) @ diag(1, -1, -1) @ x_model + translation

so ``rotation = 0`` is a frontal face looking into the camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InvalidInput

if TYPE_CHECKING:  # pragma: no cover
    from .morphable import MorphableModel

_REQUIRED = ("identity", "expression", "rotation", "translation")
_OPTIONAL = ("albedo", "light", "focal")
_FIELDS = _REQUIRED + _OPTIONAL


@dataclass
class FaceParams:
    """Named, batch-first coefficients of a face model (see the module docstring for shapes)."""

    identity: torch.Tensor
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    albedo: torch.Tensor | None = None
    light: torch.Tensor | None = None
    focal: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.validate()

    # ---------------------------------------------------------------------------------------
    # construction

    @classmethod
    def zeros(
        cls,
        model: MorphableModel,
        batch: int = 1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        n_albedo: int | None = None,
        light: bool = True,
        focal: float | None = None,
    ) -> FaceParams:
        """All-zero parameters for ``batch`` faces of ``model`` (the mean face, frontal, at the origin).

        Args:
            model: the morphable model (gives ``K_id`` and ``K_exp``).
            batch: number of faces ``B``.
            device, dtype: default to the model's.
            n_albedo: number of albedo weights; defaults to the model's per-vertex albedo
                basis size (``None`` field if the model has none and ``n_albedo`` is not given).
            light: include an all-zero ``light (B, 9, 3)``.
            focal: if given, ``focal`` is filled with this value (pixels); else ``None``.
        """
        if batch < 1:
            raise InvalidInput(f"batch must be >= 1, got {batch}")
        device = model.device if device is None else device
        dtype = model.dtype if dtype is None else dtype
        kw = {"device": device, "dtype": dtype}
        if n_albedo is None and model.albedo_basis is not None:
            n_albedo = int(model.albedo_basis.shape[0])
        return cls(
            identity=torch.zeros(batch, model.n_identity, **kw),
            expression=torch.zeros(batch, model.n_expression, **kw),
            rotation=torch.zeros(batch, 3, **kw),
            translation=torch.zeros(batch, 3, **kw),
            albedo=torch.zeros(batch, n_albedo, **kw) if n_albedo else None,
            light=torch.zeros(batch, 9, 3, **kw) if light else None,
            focal=torch.full((batch,), float(focal), **kw) if focal is not None else None,
        )

    # ---------------------------------------------------------------------------------------
    # validation

    @property
    def batch_size(self) -> int:
        """``B``."""
        return int(self.identity.shape[0])

    @property
    def device(self) -> torch.device:
        return self.identity.device

    @property
    def dtype(self) -> torch.dtype:
        return self.identity.dtype

    def validate(self, model: MorphableModel | None = None) -> FaceParams:
        """Check shapes (and, given ``model``, sizes against it); raise :class:`InvalidInput`.

        Returns ``self`` so it can be chained: ``model.vertices(params.validate(model))``.
        """
        for name in _FIELDS:
            t = getattr(self, name)
            if t is None:
                if name in _REQUIRED:
                    raise InvalidInput(f"FaceParams.{name} is required (got None)")
                continue
            if not isinstance(t, torch.Tensor):
                raise InvalidInput(
                    f"FaceParams.{name} must be a torch.Tensor, got {type(t).__name__}; "
                    "use FaceParams.from_dict for lists"
                )
            if not t.is_floating_point():
                raise InvalidInput(f"FaceParams.{name} must be a floating tensor, got {t.dtype}")
        if self.identity.dim() != 2:
            raise InvalidInput(
                f"FaceParams.identity must have shape (B, K_id), got {tuple(self.identity.shape)}"
            )
        b = self.identity.shape[0]
        want = {
            "expression": (b, None),
            "rotation": (b, 3),
            "translation": (b, 3),
            "albedo": (b, None),
            "light": (b, 9, 3),
            "focal": (b,),
        }
        for name, shape in want.items():
            t = getattr(self, name)
            if t is None:
                continue
            if t.dim() != len(shape) or any(
                s is not None and s != d for s, d in zip(shape, t.shape)
            ):
                spec = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
                raise InvalidInput(
                    f"FaceParams.{name} must have shape {spec} for batch size B={b} "
                    f"(from identity), got {tuple(t.shape)}"
                )
            if t.device != self.identity.device:
                raise InvalidInput(
                    f"FaceParams.{name} is on {t.device} but identity is on "
                    f"{self.identity.device}; call params.to(device)"
                )
        if model is not None:
            if self.identity.shape[1] != model.n_identity:
                raise InvalidInput(
                    f"FaceParams.identity has {self.identity.shape[1]} components but model "
                    f"{model.name!r} has {model.n_identity}; build params with "
                    "FaceParams.zeros(model, ...)"
                )
            if self.expression.shape[1] != model.n_expression:
                raise InvalidInput(
                    f"FaceParams.expression has {self.expression.shape[1]} components but "
                    f"model {model.name!r} has {model.n_expression}; build params with "
                    "FaceParams.zeros(model, ...)"
                )
            if (
                self.albedo is not None
                and model.albedo_basis is not None
                and self.albedo.shape[1] != model.albedo_basis.shape[0]
            ):
                raise InvalidInput(
                    f"FaceParams.albedo has {self.albedo.shape[1]} components but model "
                    f"{model.name!r} has a per-vertex albedo basis of {model.albedo_basis.shape[0]}"
                )
        return self

    # ---------------------------------------------------------------------------------------
    # tensor plumbing

    def _map(self, fn) -> FaceParams:
        kw = {}
        for f in fields(self):
            t = getattr(self, f.name)
            kw[f.name] = None if t is None else fn(t)
        return FaceParams(**kw)

    def items(self) -> list[tuple[str, torch.Tensor]]:
        """``(name, tensor)`` for every field that is not ``None``."""
        return [(n, getattr(self, n)) for n in _FIELDS if getattr(self, n) is not None]

    def tensors(self) -> list[torch.Tensor]:
        """The non-``None`` tensors (e.g. to hand to an optimiser)."""
        return [t for _, t in self.items()]

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> FaceParams:
        """A copy on ``device`` with floating fields cast to ``dtype``."""
        return self._map(lambda t: t.to(device=device, dtype=dtype))

    def detach(self) -> FaceParams:
        return self._map(lambda t: t.detach())

    def clone(self) -> FaceParams:
        return self._map(lambda t: t.clone())

    def requires_grad_(
        self, requires_grad: bool = True, names: tuple[str, ...] | list[str] | None = None
    ) -> FaceParams:
        """Set ``requires_grad`` in place on all fields (or only ``names``); returns ``self``."""
        for n, t in self.items():
            if names is None or n in names:
                t.requires_grad_(requires_grad)
        return self

    def __getitem__(self, index: int | slice | torch.Tensor) -> FaceParams:
        """Select faces along the batch: ``params[0:2]``, ``params[mask]`` (int keeps the dim)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return self._map(lambda t: t[index])

    @staticmethod
    def cat(items: list[FaceParams]) -> FaceParams:
        """Concatenate along the batch (fields must be present in all or none)."""
        if not items:
            raise InvalidInput("FaceParams.cat needs at least one FaceParams")
        kw: dict[str, Any] = {}
        for n in _FIELDS:
            vals = [getattr(p, n) for p in items]
            if all(v is None for v in vals):
                kw[n] = None
            elif any(v is None for v in vals):
                raise InvalidInput(f"FaceParams.cat: field {n!r} is None in some items only")
            else:
                kw[n] = torch.cat(vals, dim=0)
        return FaceParams(**kw)

    # ---------------------------------------------------------------------------------------
    # JSON

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of nested lists (``None`` fields are omitted)."""
        out: dict[str, Any] = {}
        for n, t in self.items():
            vals = t.detach().cpu().double().tolist()
            if not all(math.isfinite(v) for v in t.detach().cpu().double().flatten().tolist()):
                raise InvalidInput(f"FaceParams.{n} contains NaN/Inf; cannot write it as JSON")
            out[n] = vals
        return out

    @classmethod
    def from_dict(
        cls,
        d: dict[str, Any],
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> FaceParams:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        if not isinstance(d, dict):
            raise InvalidInput(f"FaceParams.from_dict needs a dict, got {type(d).__name__}")
        unknown = set(d) - set(_FIELDS)
        if unknown:
            raise InvalidInput(
                f"FaceParams.from_dict: unknown keys {sorted(unknown)}; known: {list(_FIELDS)}"
            )
        missing = [n for n in _REQUIRED if n not in d]
        if missing:
            raise InvalidInput(f"FaceParams.from_dict: missing keys {missing}")
        kw = {}
        for n in _FIELDS:
            if d.get(n) is None:
                kw[n] = None
                continue
            try:
                kw[n] = torch.tensor(d[n], device=device, dtype=dtype)
            except (TypeError, ValueError) as e:
                raise InvalidInput(
                    f"FaceParams.from_dict: field {n!r} is not numeric: {e}"
                ) from None
        return cls(**kw)


__all__ = ["FaceParams"]
