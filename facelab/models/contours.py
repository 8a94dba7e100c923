"""Jaw-contour candidate vertices for models that do not define them.

The 17 iBUG jaw landmarks (0-16) are not fixed points of the face: in a turned face they lie
on the occluding contour, which slides over the cheek. Fitters therefore pick, per pose, the
candidate vertex that is on the silhouette (eos, 3DDFA). The Surrey Face Model ships its
candidate lists (``sfm_model_contours.json``); for other models facelab derives them as the
vertices within a band around the frontal jaw line, i.e. the polyline through landmarks 0-8
(the subject's right half, ``"right"``, x < 0) and 8-16 (``"left"``).
"""

from __future__ import annotations

import numpy as np
import torch


def _dist_to_polyline(p: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance of points ``p (N, 3)`` to the polyline ``line (L, 3)``."""
    a, b = line[:-1], line[1:]
    ab = b - a  # (S, 3)
    ap = p[:, None, :] - a[None]  # (N, S, 3)
    t = np.clip((ap * ab[None]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12)[None], 0, 1)
    closest = a[None] + t[..., None] * ab[None]
    return np.sqrt(((p[:, None, :] - closest) ** 2).sum(-1)).min(1)


def jaw_contour_candidates(
    mean: np.ndarray,
    landmarks: np.ndarray,
    pool: np.ndarray | None = None,
    band: float = 0.06,
) -> dict[str, torch.Tensor]:
    """``{"right": (n,) long, "left": (m,) long}`` vertices near the frontal jaw line.

    Args:
        mean: ``(V, 3)`` mean shape.
        landmarks: ``(68,)`` iBUG vertex indices.
        pool: vertex indices allowed as candidates (e.g. the face region); default all.
        band: half-width of the band as a fraction of the jaw width ``|lm0 - lm16|``.

    Candidates are sorted along the jaw (from the ear towards the chin).
    """
    mean = np.asarray(mean, dtype=np.float64)
    lm = np.asarray(landmarks, dtype=np.int64)
    pool = np.arange(len(mean)) if pool is None else np.asarray(pool, dtype=np.int64)
    width = float(np.linalg.norm(mean[lm[0]] - mean[lm[16]]))
    radius = band * width
    out = {}
    for name, ids, sign in (("right", lm[0:9], -1.0), ("left", lm[8:17][::-1], 1.0)):
        line = mean[ids]
        d = _dist_to_polyline(mean[pool], line)
        sel = pool[(d < radius) & (sign * mean[pool, 0] >= -0.02 * width)]
        # order along the jaw: by the index of the nearest landmark, then by height
        nearest = ((mean[sel, None, :] - line[None]) ** 2).sum(-1).argmin(1)
        order = np.lexsort((-mean[sel, 1], nearest))
        out[name] = torch.from_numpy(sel[order].astype(np.int64))
    return out


__all__ = ["jaw_contour_candidates"]
