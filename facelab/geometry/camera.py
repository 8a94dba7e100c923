"""Cameras: pinhole (perspective) and scaled-orthographic projection, in OpenCV axes.

This module is the one place where facelab's camera conventions are written as code
(the prose is in :mod:`facelab.geometry.conventions`):

* **Camera space** (OpenCV): +x right, +y down, +z forward. A point is in front of the
  camera when ``z > 0``.
* **Pixels**: ``(u, v)`` = (column, row). Pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``;
  its centre is ``(j + 0.5, i + 0.5)``. The image covers ``[0, W] x [0, H]``.
* **Pinhole projection** with intrinsics ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``::

      u = fx * x / z + cx,        v = fy * y / z + cy

  A centred principal point is ``(cx, cy) = (W / 2, H / 2)``.
* **Extrinsics**: ``x_cam = R @ x_world + t`` (world -> camera), ``R`` a rotation matrix.
* **Pose of a face**: ``x_cam = R(rotation) @ FLIP @ x_model + translation``, with
  ``FLIP = diag(1, -1, -1)`` (:func:`facelab.geometry.conventions.flip_yz`); rotation 0 is a
  frontal face looking into the camera (:func:`pose_to_camera`).
* **NDC** (used only to talk to other libraries): ``x_ndc = 2 u / W - 1``,
  ``y_ndc = 2 v / H - 1`` — so ``(-1, -1)`` is the top-left image corner and y points down,
  like ``torch.nn.functional.grid_sample(align_corners=False)``.

All functions are batch-first and follow the device and dtype of their inputs.
Reference: Hartley & Zisserman, *Multiple View Geometry*, ch. 6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._checks import check_shape
from ..errors import InvalidInput
from .conventions import flip_yz
from .rotation import axis_angle_to_matrix

__all__ = [
    "Camera",
    "focal_from_fov",
    "intrinsics",
    "look_at",
    "ndc_to_pixels",
    "perspective_clip",
    "pixels_to_ndc",
    "pose_cam2world",
    "pose_to_camera",
    "project",
    "project_depth",
    "transform_points",
    "unproject",
    "weak_perspective_project",
]


def _as_batch(x: torch.Tensor | float, batch: int, like: torch.Tensor | None) -> torch.Tensor:
    kw = {} if like is None else {"device": like.device, "dtype": like.dtype}
    t = torch.as_tensor(x, **kw) if not isinstance(x, torch.Tensor) else x
    if like is None and not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t.reshape(-1).expand(batch) if t.numel() == 1 else t.reshape(batch)


def focal_from_fov(image_size: tuple[int, int] | int, fov_degrees: float) -> float:
    """Focal length (pixels) whose field of view across the image's longer side is
    ``fov_degrees``: ``f = 0.5 max(H, W) / tan(fov / 2)`` (the horizontal FOV for landscape
    and square images). The library's one focal convention (``Camera.frontal``, the landmark
    fit's ``default_focal``, the world's cameras).
    """
    H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
    return 0.5 * max(int(H), int(W)) / math.tan(math.radians(fov_degrees) / 2)


def intrinsics(
    fx: torch.Tensor | float,
    fy: torch.Tensor | float,
    cx: torch.Tensor | float,
    cy: torch.Tensor | float,
    batch: int | None = None,
) -> torch.Tensor:
    """Pinhole intrinsic matrices ``K (B, 3, 3) = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.

    Each argument is a float or a tensor of shape ``()`` or ``(B,)``; ``B`` is the largest size
    given (or ``batch``). Device/dtype follow the first tensor argument. Differentiable in all
    four arguments (use it to optimise a focal length).
    """
    args = (fx, fy, cx, cy)
    like = next((a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()), None)
    sizes = [a.numel() for a in args if isinstance(a, torch.Tensor)]
    b = batch if batch is not None else max(sizes + [1])
    fx_, fy_, cx_, cy_ = (_as_batch(a, b, like) for a in args)
    zero, one = torch.zeros_like(fx_), torch.ones_like(fx_)
    rows = [
        torch.stack([fx_, zero, cx_], -1),
        torch.stack([zero, fy_, cy_], -1),
        torch.stack([zero, zero, one], -1),
    ]
    return torch.stack(rows, -2)


def project(points_cam: torch.Tensor, K: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Pinhole projection of camera-space points to pixels.

    ``u = fx x / z + s y / z + cx``, ``v = fy y / z + cy`` (``s = K[0, 1]``, usually 0).

    Args:
        points_cam: ``(B, N, 3)`` camera-space points (OpenCV axes).
        K: ``(B, 3, 3)`` or ``(3, 3)`` intrinsics.
        eps: ``|z|`` is clamped to at least ``eps`` (sign kept) to avoid division by zero;
            points with ``z <= 0`` are behind the camera and project meaninglessly.

    Returns:
        ``(B, N, 2)`` pixel coordinates ``(u, v)``, pixel centres at ``+0.5``.
    """
    check_shape("points_cam", points_cam, (None, None, 3))
    K = K if K.dim() == 3 else K.unsqueeze(0)
    z = points_cam[..., 2:3]
    e = torch.full_like(z, eps)
    z = torch.where(z.abs() < eps, torch.where(z < 0, -e, e), z)  # dtype follows z
    x = points_cam[..., 0] / z[..., 0]
    y = points_cam[..., 1] / z[..., 0]
    k = K[:, :2, :].reshape(K.shape[0], 1, 6)  # [fx, s, cx, k10, fy, cy] per camera
    u = k[..., 0] * x + k[..., 1] * y + k[..., 2]
    v = k[..., 3] * x + k[..., 4] * y + k[..., 5]
    return torch.stack([u, v], -1)


def project_depth(points_cam: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``(B, N, 3)`` camera points -> ``(B, N, 3)`` screen points ``(u, v, z)``.

    The screen-space form the rasterizer (:func:`facelab.render.rasterize`) takes: pixel
    coordinates plus camera depth ``z`` (used for the z-buffer and perspective correction).
    """
    return torch.cat([project(points_cam, K), points_cam[..., 2:3]], -1)


def unproject(pixels: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Back-project pixels with known depth to camera space (inverse of :func:`project`).

    ``[x, y, z] = z K^{-1} [u, v, 1]^T`` (zero skew: ``x = (u - cx) z / fx``, ``y = (v - cy) z / fy``).

    Args:
        pixels: ``(B, N, 2)`` pixel coordinates.
        depth: ``(B, N)`` or ``(B, N, 1)`` camera depth ``z``.
        K: ``(B, 3, 3)`` or ``(3, 3)``.

    Returns:
        ``(B, N, 3)`` camera-space points.
    """
    check_shape("pixels", pixels, (None, None, 2))
    K = K if K.dim() == 3 else K.unsqueeze(0)
    if depth.dim() == 2:
        depth = depth.unsqueeze(-1)
    uv1 = torch.cat([pixels, torch.ones_like(pixels[..., :1])], -1)
    rays = uv1 @ torch.linalg.inv(K).transpose(1, 2)  # (B, N, 3), z = 1
    return rays * depth


def transform_points(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
    """Rigid transform ``x' = R x + t``.

    Args:
        points: ``(B, N, 3)``.
        R: ``(B, 3, 3)`` or ``(3, 3)``.
        t: ``(B, 3)``, ``(3,)`` or ``None``.
    """
    check_shape("points", points, (None, None, 3))
    R = R if R.dim() == 3 else R.unsqueeze(0)
    out = points @ R.transpose(1, 2)
    if t is not None:
        out = out + (t if t.dim() == 2 else t.unsqueeze(0)).unsqueeze(1)
    return out


def pose_to_camera(
    verts_model: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor
) -> torch.Tensor:
    """Model space -> camera space: ``x_cam = R(rotation) @ diag(1,-1,-1) @ x_model + t``.

    The library's one model-to-camera transform (``facelab.models.morphable.pose_points`` is
    this function). ``rotation`` and ``translation`` are cast to the points' dtype.

    Args:
        verts_model: ``(B, V, 3)`` in model space (y up, +z out of the face).
        rotation: ``(B, 3)`` axis-angle (rotation 0 = frontal, looking into the camera).
        translation: ``(B, 3)`` camera-space translation (model units).
    """
    check_shape("rotation", rotation, (None, 3))
    check_shape("verts_model", verts_model, (None, None, 3))
    dt = verts_model.dtype
    R = axis_angle_to_matrix(rotation.to(dt))
    M = R * flip_yz(R).diagonal()  # R @ diag(1, -1, -1): scales the columns
    t = translation.to(dt)
    if verts_model.shape[0] == M.shape[0] and t.dim() == 2 and t.shape[0] == M.shape[0]:
        return torch.baddbmm(t.unsqueeze(1), verts_model, M.transpose(1, 2))  # one fused op
    return transform_points(verts_model, M, t)


def pose_cam2world(rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`pose_to_camera` as ``(B, 4, 4)`` camera-to-model transforms:
    with ``M = R(rotation) diag(1, -1, -1)`` and ``x_cam = M x_model + t``,

    .. math::
        T = \\begin{pmatrix} M^\\top & -M^\\top t \\\\ 0 & 1 \\end{pmatrix},

    the camera's pose in model space with OpenCV camera axes (what 3D-aware GANs call
    cam2world). ``rotation (B, 3)`` axis-angle and ``translation (B, 3)``; the result has their
    dtype and device.
    """
    M = axis_angle_to_matrix(rotation) @ flip_yz(rotation)
    out = rotation.new_zeros(rotation.shape[0], 4, 4)
    out[:, :3, :3] = M.transpose(1, 2)
    out[:, :3, 3] = -(M.transpose(1, 2) @ translation.unsqueeze(-1)).squeeze(-1)
    out[:, 3, 3] = 1
    return out


def look_at(
    eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """World -> camera extrinsics ``(R (B,3,3), t (B,3))`` of a camera at ``eye`` looking at
    ``target``, in OpenCV axes.

    The camera's z axis points from ``eye`` to ``target``; its y axis (down in the image) is
    ``-up`` made orthogonal to z; ``x = y x z``. Rows of ``R`` are the camera axes in world
    coordinates and ``t = -R eye``, so ``R @ eye + t = 0``. ``up`` defaults to world +y.
    """
    eye = eye if eye.dim() == 2 else eye.unsqueeze(0)
    target = target if target.dim() == 2 else target.unsqueeze(0)
    target = target.expand_as(eye)
    if up is None:
        up = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype, device=eye.device)
    up = (up if up.dim() == 2 else up.unsqueeze(0)).expand_as(eye)
    z = torch.nn.functional.normalize(target - eye, dim=-1)
    down = -up
    y = down - (down * z).sum(-1, keepdim=True) * z
    if bool((y.norm(dim=-1) < 1e-9).any()):
        raise InvalidInput("look_at: `up` is parallel to the viewing direction; pass another up")
    y = torch.nn.functional.normalize(y, dim=-1)
    x = torch.linalg.cross(y, z, dim=-1)
    R = torch.stack([x, y, z], -2)
    t = -(R @ eye.unsqueeze(-1)).squeeze(-1)
    return R, t


def weak_perspective_project(
    points: torch.Tensor, scale: torch.Tensor, R: torch.Tensor, t2d: torch.Tensor
) -> torch.Tensor:
    """Scaled orthographic ("weak perspective") projection to pixels.

    ``[u, v] = s * (R x)[:2] + t2d`` — drops depth after rotating (the 3DDFA / DECA camera).
    ``R`` is used as given: for model-space faces pass ``R(rotation) @ flip_yz()`` so that the
    image is y-down.

    Args:
        points: ``(B, N, 3)``.
        scale: ``(B,)`` or ``(B, 1)`` pixels per model unit.
        R: ``(B, 3, 3)``.
        t2d: ``(B, 2)`` pixel offset.
    """
    check_shape("points", points, (None, None, 3))
    s = scale.reshape(-1, 1, 1)
    return s * transform_points(points, R, None)[..., :2] + t2d.unsqueeze(1)


def pixels_to_ndc(pixels: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """``(..., 2)`` pixels ``(u, v)`` -> NDC ``(2u/W - 1, 2v/H - 1)`` (``grid_sample`` style)."""
    H, W = image_size
    scale = pixels.new_tensor([2.0 / W, 2.0 / H])
    return pixels * scale - 1.0


def ndc_to_pixels(ndc: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`pixels_to_ndc`: ``u = (x + 1) W / 2``, ``v = (y + 1) H / 2``."""
    H, W = image_size
    scale = ndc.new_tensor([W / 2.0, H / 2.0])
    return (ndc + 1.0) * scale


def perspective_clip(
    points_cam: torch.Tensor,
    K: torch.Tensor,
    image_size: tuple[int, int],
    near: float = 0.01,
    far: float = 1000.0,
) -> torch.Tensor:
    """OpenGL-style clip coordinates ``(B, N, 4)`` of OpenCV camera points.

    ``clip = P [x, y, z, 1]`` with ``x_clip / w = x_ndc``, ``y_clip / w = y_ndc`` (y down, as
    :func:`pixels_to_ndc`), ``z_clip / w`` mapping ``near -> -1``, ``far -> 1``, and ``w = z``.
    Only needed to feed clip-space rasterizers (nvdiffrast); facelab's rasterizer takes
    screen coordinates (:func:`project_depth`).
    """
    H, W = image_size
    K = K if K.dim() == 3 else K.unsqueeze(0)
    fx, fy, cx, cy, s = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 0, 1]
    z0 = torch.zeros_like(fx)
    P = torch.stack(
        [
            torch.stack([2 * fx / W, 2 * s / W, 2 * cx / W - 1, z0], -1),
            torch.stack([z0, 2 * fy / H, 2 * cy / H - 1, z0], -1),
            torch.stack(
                [z0, z0, z0 + (far + near) / (far - near), z0 - 2 * far * near / (far - near)], -1
            ),
            torch.stack([z0, z0, z0 + 1, z0], -1),
        ],
        -2,
    )
    homo = torch.cat([points_cam, torch.ones_like(points_cam[..., :1])], -1)
    return homo @ P.transpose(1, 2)


@dataclass
class Camera:
    """A batch of pinhole cameras: extrinsics ``(R, t)`` (world -> camera) and intrinsics ``K``.

    Attributes:
        R: ``(B, 3, 3)`` rotation, ``x_cam = R x_world + t``.
        t: ``(B, 3)``.
        K: ``(B, 3, 3)`` intrinsics.
        image_size: ``(H, W)`` in pixels.
    """

    R: torch.Tensor
    t: torch.Tensor
    K: torch.Tensor
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        check_shape("Camera.R", self.R, (None, 3, 3))
        check_shape("Camera.t", self.t, (None, 3))
        check_shape("Camera.K", self.K, (None, 3, 3))
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise InvalidInput(f"image_size must be (H, W) > 0, got {self.image_size}")
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))

    @property
    def batch_size(self) -> int:
        return int(self.K.shape[0])

    def to_camera(self, points_world: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` world points -> camera space ``R x + t``."""
        return transform_points(points_world, self.R, self.t)

    def project(self, points_world: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` world points -> ``(B, N, 2)`` pixels."""
        return project(self.to_camera(points_world), self.K)

    def to_screen(self, points_world: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` world points -> ``(B, N, 3)`` ``(u, v, z)`` for the rasterizer."""
        return project_depth(self.to_camera(points_world), self.K)

    def to(self, *args, **kwargs) -> Camera:
        return Camera(
            self.R.to(*args, **kwargs),
            self.t.to(*args, **kwargs),
            self.K.to(*args, **kwargs),
            self.image_size,
        )

    @classmethod
    def frontal(
        cls,
        distance: float = 50.0,
        focal: float | None = None,
        image_size: tuple[int, int] | int = 256,
        batch: int = 1,
        fov_degrees: float = 15.0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Camera:
        """A camera on the +z axis of *model space* looking at the origin, upright.

        World = model space (y up, +z out of the face), so ``R = diag(1, -1, -1)`` and
        ``t = (0, 0, distance)``: a face at the origin is seen frontally, ``distance`` model
        units away. ``focal`` (pixels) defaults to :func:`focal_from_fov` (a field of view of
        ``fov_degrees`` across the longer image side). The principal point is the image centre.
        """
        H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
        dtype = dtype or torch.get_default_dtype()
        if focal is None:
            focal = focal_from_fov((H, W), fov_degrees)
        R = flip_yz(torch.empty(0, dtype=dtype, device=device)).expand(batch, 3, 3).clone()
        t = torch.tensor([0.0, 0.0, distance], dtype=dtype, device=device).expand(batch, 3).clone()
        fl = torch.full((batch,), float(focal), dtype=dtype, device=device)
        K = intrinsics(fl, fl, W / 2.0, H / 2.0)
        return cls(R, t, K, (H, W))
