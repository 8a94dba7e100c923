"""Small helpers shared by the exercise checkers."""

from __future__ import annotations

from typing import Any

import torch

#: Checkers compare in float64, whatever dtype a student's function returns.
F64 = torch.float64


def as_f64(x: Any) -> torch.Tensor:
    """``x`` (tensor, array, number or nested list) as a float64 tensor."""
    return torch.as_tensor(x, dtype=F64)
