r"""Cameras for 3D GAN inversion: a photo's camera in EG3D's convention, and its mirror.

**The mirrored camera.** If ``I`` is the photo of a scene taken by a camera with pose
``C = cam2world`` (OpenCV axes), then ``flip(I)`` (columns reversed) is the photo of the
*mirrored* scene (``x -> -x``) taken by

.. math::

    C_m = S\, C\, S, \qquad S = \mathrm{diag}(-1, 1, 1, 1).

Derivation: a world point ``X`` is seen by ``C`` at camera coordinates
``x = C^{-1} X``. The mirrored point ``S X`` seen by ``C_m`` has camera coordinates
``C_m^{-1} S X = S C^{-1} S S X = S x``: the same depth, the same height, the opposite
horizontal offset — pixel ``u`` goes to ``W - u``. Conjugating by ``S`` keeps the rotation
part a proper rotation (``det(S R S) = det R = 1``). A face is nearly symmetric about its
plane ``x = 0``, so ``flip(I)`` seen from ``C_m`` is (nearly) a second photo of *the same*
face: the symmetry-prior paper's pseudo second view. Mirroring twice is the identity; the
mirror of a camera at yaw ``theta`` sits at yaw ``-theta``. The function itself is
:func:`facelab.geometry.eg3d.mirror_cam2world`; :func:`mirror_camera_params` applies it to
EG3D's 25-number camera vectors.

**A photo's camera.** The tri-plane GAN (:mod:`facelab.gan.triplane`) was trained on world
photos whose camera looks at the face centre from distance 2.5 (EG3D units) with EG3D's
normalised focal length, the face filling ``fill = 0.7`` of the image width
(:mod:`facelab.gan.triplane_data`). For a photo we get the head pose from the Part I fitter's
landmark stage (:func:`facelab.fit.fit` with ``photometric=False``: rotation, translation,
focal in photo pixels), then

1. crop the square around the projection of the face centre whose side is
   ``f * face_width / (fill * z_centre)`` (so the face has the training scale) and resample
   it to the GAN's resolution (:func:`photo_crop_box`);
2. aim the fitted camera at the face centre (keeping its roll) and move it into EG3D's head
   frame with :func:`facelab.gan.triplane_data.world_to_eg3d` (:func:`eg3d_camera_from_pose`).

The crop treats the re-aimed camera as if its principal point were the crop's centre, which
is exact when the face is at the photo's centre and a small approximation otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...errors import InvalidInput
from ...geometry.camera import pose_cam2world
from ...geometry.conventions import flip_yz
from ...geometry.eg3d import (
    EG3D_LOOKAT,
    camera_params,
    mirror_cam2world,
    normalized_intrinsics,
    split_camera_params,
)
from ...geometry.rotation import axis_angle_to_matrix

__all__ = [
    "PhotoCamera",
    "camera_yaw_pitch",
    "eg3d_camera_from_pose",
    "estimate_camera",
    "face_frame",
    "mirror_camera_params",
    "mirror_weight",
    "photo_crop_box",
    "pose_cam2world",
]

#: Share of the image width the face fills in the GAN's training photos.
TRAIN_FILL = 0.7


def mirror_camera_params(c: torch.Tensor) -> torch.Tensor:
    """EG3D cameras ``(B, 25)`` of the horizontally flipped photos (``S cam2world S``;
    the intrinsics are unchanged because the principal point is the image centre)."""
    c2w, K = split_camera_params(c)
    return camera_params(mirror_cam2world(c2w), K)


def camera_yaw_pitch(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Yaw and pitch (radians, ``(B,)``) of EG3D cameras ``(B, 25)``: the direction of the
    camera centre seen from the look-at point ``(0, 0, 0.2)`` (yaw > 0: towards +x, the
    face's left; pitch > 0: above)."""
    c2w, _ = split_camera_params(c)
    d = c2w[:, :3, 3] - c2w.new_tensor(EG3D_LOOKAT)
    d = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return torch.atan2(d[:, 0], d[:, 2]), torch.asin(d[:, 1].clamp(-1, 1))


def mirror_weight(
    yaw: torch.Tensor | float, frontal_degrees: float = 10.0, full_degrees: float = 30.0
) -> torch.Tensor:
    """Weight of the mirror term for a photo at ``yaw`` (radians): 0 for
    ``|yaw| <= frontal_degrees`` (a near-frontal photo is its own mirror image: the flip adds
    no new view, only a second copy of the same asymmetries), rising linearly to 1 at
    ``full_degrees`` and beyond."""
    y = torch.as_tensor(yaw).abs() * (180.0 / math.pi)
    return ((y - frontal_degrees) / max(full_degrees - frontal_degrees, 1e-9)).clamp(0.0, 1.0)


def face_frame(model) -> tuple[torch.Tensor, float]:
    """``(face_centre (3,), face_width)`` of a model's mean face, defined as the world does
    (:class:`facelab.world.WorldRenderer`): the centre of the 68 landmarks' box with the
    landmarks' mean depth, the jaw-corner distance (landmarks 0 and 16) times 1.15."""
    if model.landmarks is None or model.landmarks.numel() != 68:
        raise InvalidInput(f"model {model.name!r} needs 68 iBUG landmarks")
    lm = model.mean[model.landmarks].double().cpu()
    c = (lm.amin(0) + lm.amax(0)) / 2
    c[2] = lm[:, 2].mean()
    return c, float((lm[16] - lm[0]).norm()) * 1.15


def eg3d_camera_from_pose(
    rotation: torch.Tensor, translation: torch.Tensor, face_centre: torch.Tensor
) -> torch.Tensor:
    """EG3D camera ``(B, 25)`` of a fitted head pose: the fitted camera aimed at the face
    centre (its x axis kept as close as possible: same roll), moved to distance 2.5 from the
    look-at point (:func:`facelab.gan.triplane_data.world_to_eg3d`)."""
    from ...gan.triplane_data import world_to_eg3d

    c2w = pose_cam2world(rotation.double(), translation.double())
    c = face_centre.to(c2w).clone()
    c[0] = 0.0
    o = c2w[:, :3, 3]
    z = torch.nn.functional.normalize(c - o, dim=-1)
    x = c2w[:, :3, 0]
    x = torch.nn.functional.normalize(x - (x * z).sum(-1, keepdim=True) * z, dim=-1)
    y = torch.linalg.cross(z, x, dim=-1)
    aimed = c2w.clone()
    aimed[:, :3, 0], aimed[:, :3, 1], aimed[:, :3, 2] = x, y, z
    out = []
    for b in range(c2w.shape[0]):
        dist = float((c - o[b]).norm())
        e, _ = world_to_eg3d(aimed[b : b + 1], c, dist)
        out.append(e)
    c2w_e = torch.cat(out)
    K = normalized_intrinsics(batch=c2w_e.shape[0], dtype=c2w_e.dtype, device=c2w_e.device)
    return camera_params(c2w_e, K).to(rotation.dtype)


def photo_crop_box(
    rotation: torch.Tensor,
    translation: torch.Tensor,
    K: torch.Tensor,
    face_centre: torch.Tensor,
    face_width: float,
    fill: float = TRAIN_FILL,
) -> tuple[float, float, float]:
    """The square ``(x0, y0, side)`` of the photo (pixels) that frames the face as in the
    GAN's training photos: centred on the projection of the face centre, side
    ``f face_width / (fill z_centre)`` (batch 1; ``K (3, 3)`` or ``(1, 3, 3)``)."""
    M = axis_angle_to_matrix(rotation.double()) @ flip_yz(rotation.double())
    c = face_centre.double().clone()
    c[0] = 0.0
    xc = (M[0] @ c + translation.double()[0]).reshape(3)
    if float(xc[2]) <= 0:
        raise InvalidInput("the fitted face centre is behind the camera")
    Kd = K.double().reshape(3, 3)
    u = float(Kd[0, 0] * xc[0] / xc[2] + Kd[0, 2])
    v = float(Kd[1, 1] * xc[1] / xc[2] + Kd[1, 2])
    side = float(Kd[0, 0]) * face_width / (fill * float(xc[2]))
    return u - side / 2, v - side / 2, side


@dataclass
class PhotoCamera:
    """A photo prepared for inversion.

    Attributes:
        image: ``(1, 3, R, R)`` the crop in ``[-1, 1]`` at the GAN's resolution.
        camera: ``(1, 25)`` its EG3D camera.
        box: ``(x0, y0, side)`` of the crop in photo pixels.
        landmarks: ``(68, 2)`` detected landmarks (photo pixels).
        crop_landmarks: ``(68, 2)`` the same in crop pixels (for the face-region mask).
        yaw, pitch: camera angles (degrees) in EG3D's frame.
        valid: ``(1, R, R)`` bool, crop pixels inside the photo.
    """

    image: torch.Tensor
    camera: torch.Tensor
    box: tuple[float, float, float]
    landmarks: torch.Tensor
    crop_landmarks: torch.Tensor
    yaw: float
    pitch: float
    valid: torch.Tensor


def estimate_camera(
    photo,
    resolution: int = 32,
    model="ict-face",
    landmarks: torch.Tensor | None = None,
    detector: str = "auto",
    supersample: int = 4,
) -> PhotoCamera:
    """Detect the face (unless ``landmarks (68, 2)`` are given), fit the head pose with the
    Part I fitter's landmark stage, and return the crop and its EG3D camera.

    The crop is resampled at ``supersample x resolution`` and area-averaged down (as the
    GAN's training photos were). Raises :class:`~facelab.errors.NoFaceFound` when no face is
    detected.
    """
    import torch.nn.functional as F

    from ...fit import fit
    from ...fit.api import _load_photo, crop_image
    from ...models import load

    mdl = load(model) if isinstance(model, str) else model
    image, _src = _load_photo(photo)
    if image.dim() == 3:
        image = image[None]
    res = fit(
        image, model=mdl, landmarks=landmarks, photometric=False, detector=detector,
        progress=False, calibration="auto" if landmarks is None else None,
    )  # fmt: skip
    p = res.params
    centre, width = face_frame(mdl)
    box = photo_crop_box(p.rotation, p.translation, res.K, centre, width)
    big, valid = crop_image(image.to(torch.float32), box, resolution * supersample)
    crop = F.adaptive_avg_pool2d(big, resolution) * 2 - 1
    valid = F.adaptive_avg_pool2d(valid[:, None].float(), resolution)[:, 0] > 0.5
    cam = eg3d_camera_from_pose(p.rotation, p.translation, centre).float()
    yaw, pitch = camera_yaw_pitch(cam)
    a = resolution / box[2]
    lm = res.landmarks.to(torch.float64)
    crop_lm = (lm - lm.new_tensor([box[0], box[1]])) * a
    return PhotoCamera(
        image=crop.float(),
        camera=cam,
        box=box,
        landmarks=res.landmarks,
        crop_landmarks=crop_lm.float(),
        yaw=math.degrees(float(yaw[0])),
        pitch=math.degrees(float(pitch[0])),
        valid=valid,
    )
