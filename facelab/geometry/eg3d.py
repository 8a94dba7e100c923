"""EG3D's camera conventions as functions, so that published 3D-GAN camera code carries over.

EG3D (Chan et al., CVPR 2022; NVlabs/eg3d) describes a camera by 25 numbers: a flattened
``4 x 4`` **cam2world** matrix (OpenCV axes: +x right, +y down, +z forward, the same as
:mod:`facelab.geometry.camera`) followed by a flattened ``3 x 3`` **normalised** intrinsic
matrix (focal length and principal point in units of the image size, so the same camera
serves every resolution)::

    K_norm = [[4.2647, 0, 0.5], [0, 4.2647, 0.5], [0, 0, 1]]     K_pixels = diag(W, H, 1) K_norm

The world is a head-centred frame with facelab's *model-space* axes (+y up, +z out of the
face, +x towards the face's left); for FFHQ the cameras sit on a sphere of radius ``2.7``
around the origin and look at ``(0, 0, 0.2)``; the head lives in the box ``[-0.5, 0.5]^3``
(``box_warp = 1``) and rays are sampled between depths ``2.25`` and ``3.3``.

:func:`orbit_cam2world` is EG3D's ``LookAtPoseSampler`` without the randomness (angles in,
matrix out): ``yaw = 0, pitch = 0`` is the frontal camera on the +z axis; positive ``yaw``
moves the camera towards +x (the face's left), positive ``pitch`` moves it up (+y).
(EG3D's angles are ``horizontal = pi/2 + yaw`` and ``vertical = pi/2 - pitch``, and it places
the camera at ``radius`` from the origin along ``(sin(phi) cos(pi - h), cos(phi),
sin(phi) sin(pi - h))`` with ``phi = arccos(1 - 2 v / pi)``; we use ``phi = pi/2 - pitch``
directly, which is the same camera at ``pitch = 0`` and for every yaw.)

:func:`mirror_cam2world` is the camera of the horizontally flipped image,
``S @ cam2world @ S`` with ``S = diag(-1, 1, 1, 1)`` (the symmetry-prior paper's ``c_m``):
mirroring a photo and mirroring its camera about the plane ``x = 0`` describe the same
mirrored face.
"""

from __future__ import annotations

import math

import torch

from .._checks import check_shape
from ..errors import InvalidInput

__all__ = [
    "EG3D_FOCAL",
    "EG3D_LOOKAT",
    "EG3D_RADIUS",
    "EG3D_RAY_END",
    "EG3D_RAY_START",
    "cam2world_to_extrinsics",
    "fov_degrees",
    "camera_params",
    "mirror_cam2world",
    "normalized_intrinsics",
    "orbit_cam2world",
    "pixel_intrinsics",
    "split_camera_params",
]

EG3D_RADIUS = 2.7
"""Distance of EG3D's FFHQ cameras from the world origin."""
EG3D_FOCAL = 4.2647
"""EG3D's normalised focal length (``fx / W``): a field of view of ``2 atan(0.5 / 4.2647)``
= 13.37 degrees."""
EG3D_LOOKAT = (0.0, 0.0, 0.2)
"""The point EG3D's FFHQ cameras look at."""
EG3D_RAY_START = 2.25
EG3D_RAY_END = 3.3


def _vec(x, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, dtype=like.dtype, device=like.device)


def orbit_cam2world(
    yaw: torch.Tensor | float,
    pitch: torch.Tensor | float,
    radius: float = EG3D_RADIUS,
    look_at: tuple[float, float, float] | torch.Tensor = EG3D_LOOKAT,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``(B, 4, 4)`` cam2world matrices of cameras on a sphere looking at ``look_at``.

    The camera centre is ``radius * (cos(pitch) sin(yaw), sin(pitch), cos(pitch) cos(yaw))``
    (around the world origin, as in EG3D); its z axis points at ``look_at``, its x axis is
    horizontal (no roll) and its y axis points down. ``yaw``/``pitch`` in radians, floats or
    ``(B,)`` tensors (device/dtype follow a tensor argument unless ``dtype``/``device`` are
    given).
    """
    like = next((a for a in (yaw, pitch) if isinstance(a, torch.Tensor)), None)
    if like is None:
        like = torch.empty(0, dtype=dtype or torch.get_default_dtype(), device=device)
    elif dtype is not None or device is not None:
        like = like.to(dtype=dtype or like.dtype, device=device or like.device)
    yaw_t = _vec(yaw, like).reshape(-1)
    pitch_t = _vec(pitch, like).reshape(-1)
    yaw_t, pitch_t = torch.broadcast_tensors(yaw_t, pitch_t)
    eye = radius * torch.stack(
        [
            torch.cos(pitch_t) * torch.sin(yaw_t),
            torch.sin(pitch_t),
            torch.cos(pitch_t) * torch.cos(yaw_t),
        ],
        -1,
    )
    target = _vec(look_at, like).reshape(1, 3).expand_as(eye)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    up = torch.zeros_like(eye)
    up[:, 1] = 1.0
    right = -torch.nn.functional.normalize(torch.linalg.cross(up, forward, dim=-1), dim=-1)
    down = torch.nn.functional.normalize(torch.linalg.cross(forward, right, dim=-1), dim=-1)
    c2w = torch.zeros(eye.shape[0], 4, 4, dtype=eye.dtype, device=eye.device)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = right, down, forward, eye
    c2w[:, 3, 3] = 1.0
    return c2w


def normalized_intrinsics(
    focal: float = EG3D_FOCAL,
    batch: int = 1,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``(B, 3, 3)`` EG3D-style intrinsics in units of the image size (centre ``(0.5, 0.5)``)."""
    K = torch.tensor(
        [[focal, 0.0, 0.5], [0.0, focal, 0.5], [0.0, 0.0, 1.0]],
        dtype=dtype or torch.get_default_dtype(),
        device=device,
    )
    return K.expand(batch, 3, 3).clone()


def pixel_intrinsics(K_norm: torch.Tensor, image_size: tuple[int, int] | int) -> torch.Tensor:
    """Normalised ``(B, 3, 3)`` intrinsics -> pixel intrinsics for an ``(H, W)`` image
    (``fx W``, ``fy H``, ``cx W``, ``cy H``; pixel centres at +0.5 as in facelab)."""
    H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
    scale = K_norm.new_tensor([W, H, 1.0]).reshape(1, 3, 1)
    return K_norm * scale


def cam2world_to_extrinsics(cam2world: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, 4, 4)`` cam2world -> facelab's world->camera ``(R (B,3,3), t (B,3))``,
    ``x_cam = R x_world + t`` (so ``R = C^T``, ``t = -C^T o`` for rotation ``C``, centre ``o``)."""
    check_shape("cam2world", cam2world, (None, 4, 4))
    C, o = cam2world[:, :3, :3], cam2world[:, :3, 3]
    R = C.transpose(1, 2)
    return R, -(R @ o.unsqueeze(-1)).squeeze(-1)


def mirror_cam2world(cam2world: torch.Tensor) -> torch.Tensor:
    """The camera of the horizontally mirrored image: ``S cam2world S``, ``S = diag(-1,1,1,1)``.

    Mirroring the world about ``x = 0`` and flipping the camera's x axis keeps the matrix a
    rotation and maps pixel ``u`` to ``W - u``: if ``I`` is the photo of a scene from
    ``cam2world``, ``flip(I)`` is the photo of the mirrored scene from ``mirror_cam2world``.
    """
    check_shape("cam2world", cam2world, (None, 4, 4))
    s = cam2world.new_tensor([-1.0, 1.0, 1.0, 1.0])
    return cam2world * s.reshape(1, 4, 1) * s.reshape(1, 1, 4)


def camera_params(cam2world: torch.Tensor, K_norm: torch.Tensor) -> torch.Tensor:
    """EG3D's 25-number conditioning vector ``(B, 25)`` = flattened cam2world + intrinsics."""
    check_shape("cam2world", cam2world, (None, 4, 4))
    check_shape("K_norm", K_norm, (None, 3, 3))
    if K_norm.shape[0] != cam2world.shape[0]:
        if K_norm.shape[0] != 1:
            raise InvalidInput(
                f"K_norm batch {K_norm.shape[0]} does not match cam2world batch {cam2world.shape[0]}"
            )
        K_norm = K_norm.expand(cam2world.shape[0], 3, 3)
    return torch.cat([cam2world.reshape(-1, 16), K_norm.reshape(-1, 9)], -1)


def split_camera_params(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`camera_params`: ``(B, 25)`` -> ``(cam2world (B,4,4), K_norm (B,3,3))``."""
    check_shape("c", c, (None, 25))
    return c[:, :16].reshape(-1, 4, 4), c[:, 16:].reshape(-1, 3, 3)


def fov_degrees(focal: float = EG3D_FOCAL) -> float:
    """Horizontal field of view (degrees) of a normalised focal length."""
    return math.degrees(2 * math.atan(0.5 / focal))
