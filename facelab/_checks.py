"""Small input-validation helpers shared by all modules (internal)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .errors import InvalidInput


def check_shape(name: str, t: torch.Tensor, shape: Sequence[int | None]) -> None:
    """Raise :class:`InvalidInput` unless ``t`` has ``len(shape)`` dims matching ``shape``.

    ``None`` entries match any size. Example: ``check_shape("verts", v, (None, None, 3))``.
    """
    if not isinstance(t, torch.Tensor):
        raise InvalidInput(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise InvalidInput(f"{name} must have shape {want}, got {tuple(t.shape)}")


def check_finite(name: str, t: torch.Tensor) -> None:
    """Raise :class:`InvalidInput` if ``t`` contains NaN or Inf."""
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        n = int((~torch.isfinite(t)).sum())
        raise InvalidInput(f"{name} contains {n} NaN/Inf values")
