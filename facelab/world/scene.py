"""Sampling distributions of the world: pose, camera, lights, shading and sensor parameters.

Everything here draws from an explicit ``torch.Generator`` in a fixed order, so a sample is a
pure function of its per-index seeds (:mod:`facelab.world.seeding`). Face shape and albedo
are drawn by the model (:mod:`facelab.world.render`); this module needs only the model's face
centre and width (model units) to frame the face.

Lights are sampled as *functions on the sphere of normals* (camera space, OpenCV axes):

- environment ``E_env(n) = a * (1 + s1 <n, d1> + s2 (3 <n, d2>^2 - 1) / 2)`` with ambient colour
  ``a`` — a quadratic in ``n``, hence exactly an order-2 SH function;
- key light ``E_key(n) = I c max(0, <n, l>)`` from direction ``l`` (pointing *towards* the
  light) within ``key_cone`` of the camera.

:func:`facelab.world.lighting.fit_sh` turns both into SH coefficients in the renderer's basis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..geometry.camera import focal_from_fov
from ..geometry.rotation import matrix_to_axis_angle, yaw_pitch_roll_to_matrix
from .config import WorldConfig


def _u(g: torch.Generator, lo: float, hi: float, *shape: int) -> torch.Tensor:
    shape = shape or (1,)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    return lo + (hi - lo) * x


def _cap_direction(g: torch.Generator, axis: torch.Tensor, cone_deg: float) -> torch.Tensor:
    """A unit vector uniform on the spherical cap of half-angle ``cone_deg`` around ``axis``."""
    cos_max = math.cos(math.radians(cone_deg))
    c = float(_u(g, cos_max, 1.0))
    phi = float(_u(g, 0.0, 2 * math.pi))
    s = math.sqrt(max(0.0, 1 - c * c))
    axis = axis / axis.norm()
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=axis.dtype)
    if abs(float(axis @ helper)) > 0.9:
        helper = torch.tensor([0.0, 1.0, 0.0], dtype=axis.dtype)
    e1 = torch.linalg.cross(axis, helper)
    e1 = e1 / e1.norm()
    e2 = torch.linalg.cross(axis, e1)
    return c * axis + s * (math.cos(phi) * e1 + math.sin(phi) * e2)


def _tint(g: torch.Generator, amount: float) -> torch.Tensor:
    c = 1.0 + amount * (2 * torch.rand(3, generator=g, dtype=torch.float64) - 1)
    return c / c.mean()


@dataclass
class SceneSample:
    """The non-face part of one sample, float64 (cast by the renderer).

    Attributes:
        ypr: ``(3,)`` yaw, pitch, roll in degrees.
        rotation: ``(3,)`` axis-angle of ``R_y(yaw) R_x(pitch) R_z(roll)``.
        translation: ``(3,)`` camera-space translation (model units).
        focal: focal length in pixels; ``fov`` degrees; ``distance`` to the face centre.
        ambient: ``(3,)`` colour ``a``; ``sky_dir (3,)``, ``sky``, ``quad_dir (3,)``, ``quad``:
            the environment's first- and second-order terms.
        key_dir: ``(3,)`` unit vector towards the key light (camera space); ``key_color (3,)``
            colour times intensity.
        specular: Blinn-Phong strength ``k_s`` at specular=1; ``roughness``: base roughness;
        subsurface_radius: irradiance blur radius as a fraction of the face width.
        blur: blur scale in ``[0.2, 1]``; ``shot``, ``read``: noise parameters at noise=1;
        jpeg_quality: quality in the config's range.
    """

    ypr: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    focal: float
    fov: float
    distance: float
    ambient: torch.Tensor
    sky_dir: torch.Tensor
    sky: float
    quad_dir: torch.Tensor
    quad: float
    key_dir: torch.Tensor
    key_color: torch.Tensor
    specular: float
    roughness: float
    subsurface_radius: float
    blur: float
    shot: float
    read: float
    jpeg_quality: int


def pose_translation(
    R: torch.Tensor, center_model: torch.Tensor, target_cam: torch.Tensor
) -> torch.Tensor:
    """The translation ``t`` that puts the model point ``c`` at camera point ``p``:
    ``t = p - R diag(1,-1,-1) c``."""
    flip = torch.tensor([1.0, -1.0, -1.0], dtype=R.dtype)
    return target_cam - R @ (flip * center_model)


def sample_scene(
    config: WorldConfig,
    g_scene: torch.Generator,
    g_sensor: torch.Generator,
    face_center: torch.Tensor,
    face_width: float,
) -> SceneSample:
    """Draw pose, camera, lights and shading parameters for one sample (see module docstring).

    Args:
        config: the world's ranges.
        g_scene: generator of the scene stream; ``g_sensor``: of the sensor stream.
        face_center: ``(3,)`` model-space centre of the face region.
        face_width: the face region's width (x extent) in model units.
    """
    W = config.image_size
    ypr = torch.cat(
        [
            _u(g_scene, *config.yaw_range),
            _u(g_scene, *config.pitch_range),
            _u(g_scene, *config.roll_range),
        ]
    )
    R = yaw_pitch_roll_to_matrix(ypr, degrees=True)
    rotation = matrix_to_axis_angle(R)
    fov = float(_u(g_scene, *config.fov_range))
    focal = focal_from_fov(W, fov)  # square images: the horizontal FOV
    fill = float(_u(g_scene, *config.fill_range))
    distance = focal * face_width / (fill * W)
    jit = _u(g_scene, -config.center_jitter, config.center_jitter, 2) * W * distance / focal
    target = torch.tensor([float(jit[0]), float(jit[1]), distance], dtype=torch.float64)
    translation = pose_translation(R, face_center.to(torch.float64), target)

    # lights
    up = torch.tensor([0.0, -1.0, -0.3], dtype=torch.float64)  # camera y is down
    ambient = float(_u(g_scene, *config.ambient_range)) * _tint(g_scene, config.tint)
    sky_dir = _cap_direction(g_scene, up, 60.0)
    sky = float(_u(g_scene, 0.0, config.env_directional))
    quad_dir = _cap_direction(g_scene, up, 90.0)
    quad = float(_u(g_scene, -0.15, 0.15))
    toward_camera = torch.tensor([0.0, -0.25, -1.0], dtype=torch.float64)
    key_dir = _cap_direction(g_scene, toward_camera, config.key_cone)
    key_color = float(_u(g_scene, *config.key_range)) * _tint(g_scene, config.tint)
    specular = float(_u(g_scene, 0.04, 0.18))
    roughness = float(_u(g_scene, 0.35, 0.65))
    subsurface_radius = float(_u(g_scene, 0.006, 0.014))

    # sensor (separate stream)
    blur = float(_u(g_sensor, 0.2, 1.0))
    shot = float(_u(g_sensor, 0.0, 0.006))
    read = float(_u(g_sensor, 0.002, 0.015))
    qlo, qhi = config.knobs().jpeg_quality_range
    jpeg_quality = int(round(float(_u(g_sensor, qlo, qhi))))
    return SceneSample(
        ypr=ypr,
        rotation=rotation,
        translation=translation,
        focal=focal,
        fov=fov,
        distance=distance,
        ambient=ambient,
        sky_dir=sky_dir,
        sky=sky,
        quad_dir=quad_dir,
        quad=quad,
        key_dir=key_dir,
        key_color=key_color,
        specular=specular,
        roughness=roughness,
        subsurface_radius=subsurface_radius,
        blur=blur,
        shot=shot,
        read=read,
        jpeg_quality=jpeg_quality,
    )
