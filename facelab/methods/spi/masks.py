r"""Where a pseudo label may be trusted: the conflict masks of the symmetry-prior paper.

A warped pixel (:func:`facelab.methods.spi.warp.depth_warp`) is a valid label only if

- it lands **inside** the source image (:func:`in_bounds_mask`);
- the 3D point is what the source camera **sees**, not something behind the surface: its
  depth in the source camera agrees with the source's depth map there
  (:func:`occlusion_mask`, ``|z - z_s(q)| < tol``);
- it lands on the **face region** of the source (:func:`face_region_mask`: the world's
  semantic face mask, or for a photo the region of its landmarks, :func:`landmark_face_mask`);
  background and hair are not mirrored or warped onto the face.

And the flipped photo is a valid label for the mirrored view only where it does not
**conflict** with the photo itself: where the original photo is visible in the mirrored view
too (the middle of a face), the two must agree; where they differ by more than a threshold
(one-sided light, a parting, a mole), the face is *not* symmetric there and the mirror term
is switched off (:func:`symmetry_conflict_mask`).
"""

from __future__ import annotations

import torch

from .warp import sample_at

__all__ = [
    "face_region_mask",
    "in_bounds_mask",
    "landmark_face_mask",
    "occlusion_mask",
    "symmetry_conflict_mask",
]


def in_bounds_mask(uv: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, H, W)`` bool: ``uv (B, H, W, 2)`` lies inside an ``(h, w)`` image."""
    h, w = size
    u, v = uv[..., 0], uv[..., 1]
    return (u >= 0) & (u <= w) & (v >= 0) & (v <= h)


def occlusion_mask(z: torch.Tensor, source_depth_at_uv: torch.Tensor, tol: float) -> torch.Tensor:
    """``(B, H, W)`` bool, True where the warped point is visible in the source: its depth
    ``z`` in the source camera agrees with the source depth map read there within ``tol``
    (a point behind the source's surface is occluded; one in front of it is an error of the
    target depth)."""
    return (z - source_depth_at_uv).abs() < tol


def face_region_mask(source_face_mask: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` bool: the source's face-region mask ``(B, h, w)`` read at ``uv``
    (nearest)."""
    m = sample_at(source_face_mask[:, None].to(uv.dtype), uv, mode="nearest")[:, 0]
    return m > 0.5


def landmark_face_mask(
    landmarks: torch.Tensor, size: tuple[int, int], forehead: float = 0.6
) -> torch.Tensor:
    """``(H, W)`` bool face region of a photo from its 68 landmarks: the convex hull of the
    landmarks and of the eyebrow points raised by ``forehead`` x the brow-to-chin distance /
    2 (a parser-free stand-in for a face parser)."""
    from scipy.spatial import ConvexHull

    from ...world.effects import polygon_inside

    lm = landmarks.detach().double().cpu()
    brow = lm[17:27]
    up = (lm[8] - brow.mean(0)) * (-0.5 * forehead)
    pts = torch.cat([lm, brow + up]).numpy()
    hull = torch.as_tensor(pts[ConvexHull(pts).vertices])
    H, W = size
    v, u = torch.meshgrid(
        torch.arange(H, dtype=torch.float64) + 0.5,
        torch.arange(W, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    inside = polygon_inside(torch.stack([u, v], -1).reshape(1, -1, 2), hull[None])
    return inside.reshape(H, W).to(landmarks.device)


def symmetry_conflict_mask(
    flipped: torch.Tensor,
    original_warped: torch.Tensor,
    original_valid: torch.Tensor,
    threshold: float = 0.15,
) -> torch.Tensor:
    """``(B, H, W)`` bool, True where the flipped photo and the original photo disagree in
    the mirrored view: ``original_valid`` (the original is visible there, from the occlusion
    and bounds tests) and the mean absolute colour difference (images in ``[-1, 1]``, the
    difference measured in ``[0, 1]`` units) exceeds ``threshold``."""
    diff = (flipped - original_warped).abs().mean(1) / 2
    return original_valid.bool() & (diff > threshold)
