"""The 68-point iBUG / Multi-PIE landmark scheme, ``.pts`` files, and landmark NME.

Index groups (0-based): jaw 0-16, right brow 17-21, left brow 22-26, nose bridge 27-30,
nostrils 31-35, right eye 36-41, left eye 42-47, outer lips 48-59, inner lips 60-67
("right"/"left" are the subject's; the subject's right eye is on the image's left).

Coordinates in facelab are continuous pixels with pixel centres at ``+0.5``. iBUG ``.pts``
files are 1-based (the first pixel's centre is ``(1, 1)``), so
:math:`p_{facelab} = p_{pts} - 0.5`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import InvalidInput, ModelFormatError

JAW = tuple(range(0, 17))
RIGHT_BROW = tuple(range(17, 22))
LEFT_BROW = tuple(range(22, 27))
NOSE = tuple(range(27, 36))
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
OUTER_LIPS = tuple(range(48, 60))
INNER_LIPS = tuple(range(60, 68))
#: outer eye corners (subject's right eye outer corner 36, left eye outer corner 45)
OUTER_EYE_CORNERS = (36, 45)

#: polylines for drawing (closed ones repeat their first index)
CONTOURS: tuple[tuple[int, ...], ...] = (
    JAW,
    RIGHT_BROW,
    LEFT_BROW,
    tuple(range(27, 31)),
    tuple(range(31, 36)),
    RIGHT_EYE + (36,),
    LEFT_EYE + (42,),
    OUTER_LIPS + (48,),
    INNER_LIPS + (60,),
)


def read_pts(path: str | os.PathLike) -> torch.Tensor:
    """Read an iBUG ``.pts`` file -> ``(N, 2)`` float64 in facelab pixel coordinates."""
    text = Path(path).read_text()
    try:
        body = text[text.index("{") + 1 : text.index("}")]
        pts = np.array(
            [[float(v) for v in ln.split()] for ln in body.strip().splitlines() if ln.strip()]
        )
    except ValueError as e:
        raise ModelFormatError(f"{path}: not a .pts landmark file ({e})") from None
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ModelFormatError(f"{path}: expected 2 numbers per point, got shape {pts.shape}")
    return torch.from_numpy(pts - 0.5)


def read_ljson(path: str | os.PathLike, group: str | None = None) -> torch.Tensor:
    """Read menpo's ``.ljson`` landmarks (versions 2/3) -> ``(N, 2)`` float64, facelab coords.

    menpo stores image points 0-based as ``(y, x)``; this returns ``(x + 0.5, y + 0.5)``.
    ``group`` selects a landmark group (default: the first).
    """
    import json

    try:
        d = json.loads(Path(path).read_text())
        groups = d["groups"] if "groups" in d else {"default": d}
        g = groups[group] if group is not None else next(iter(groups.values()))
        pts = np.array(g["landmarks"]["points"], dtype=np.float64)
    except (ValueError, KeyError, StopIteration, TypeError) as e:
        raise ModelFormatError(f"{path}: not a menpo .ljson landmark file ({e})") from None
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ModelFormatError(f"{path}: expected 2-D points, got shape {pts.shape}")
    return torch.from_numpy(pts[:, ::-1] + 0.5)


def write_pts(path: str | os.PathLike, landmarks: torch.Tensor) -> Path:
    """Write ``(N, 2)`` facelab-coordinate landmarks as a 1-based iBUG ``.pts`` file."""
    pts = landmarks.detach().cpu().double().numpy() + 0.5
    lines = [f"{x:.6f} {y:.6f}" for x, y in pts]
    p = Path(path)
    p.write_text(f"version: 1\nn_points:  {len(lines)}\n{{\n" + "\n".join(lines) + "\n}\n")
    return p


def interocular_distance(landmarks: torch.Tensor) -> torch.Tensor:
    """Outer-eye-corner distance :math:`\\|p_{36} - p_{45}\\|` of ``(..., 68, 2)`` -> ``(...)``."""
    if landmarks.shape[-2:] != (68, 2):
        raise InvalidInput(f"landmarks must be (..., 68, 2), got {tuple(landmarks.shape)}")
    return torch.linalg.norm(landmarks[..., 36, :] - landmarks[..., 45, :], dim=-1)


def landmark_nme(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Normalised mean error, 300-W style, normalised by the outer eye corners:

    .. math:: \\mathrm{NME} = \\frac{1}{N}\\sum_i \\frac{\\|\\hat p_i - p_i\\|}{\\|p_{36} - p_{45}\\|}

    A shape-flexible shortcut for :func:`facelab.metrics.landmark_nme` with
    ``normalization="outer_eye"``.

    Args:
        pred, gt: ``(..., 68, 2)``.

    Returns:
        ``(...)`` NME as a fraction (multiply by 100 for percent).
    """
    from ..metrics import landmark_nme as _nme

    if pred.shape != gt.shape or pred.shape[-2:] != (68, 2):
        raise InvalidInput(
            f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must both be (..., 68, 2)"
        )
    lead = pred.shape[:-2]
    out = _nme(pred.reshape(-1, 68, 2), gt.to(pred).reshape(-1, 68, 2), normalization="outer_eye")
    return out.reshape(lead)


__all__ = [
    "CONTOURS",
    "INNER_LIPS",
    "JAW",
    "LEFT_BROW",
    "LEFT_EYE",
    "NOSE",
    "OUTER_EYE_CORNERS",
    "OUTER_LIPS",
    "RIGHT_BROW",
    "RIGHT_EYE",
    "interocular_distance",
    "landmark_nme",
    "read_ljson",
    "read_pts",
    "write_pts",
]
