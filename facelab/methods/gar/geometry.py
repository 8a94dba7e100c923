"""The geometry side of GAR: 3DMM parameters -> the crop camera -> a normal map.

GAR's generator never sees a mesh, only its **normal map**: the unit camera-space normal
``n = (n_x, n_y, n_z)`` of the visible surface at every pixel (OpenCV axes, 0 on the
background), rendered by facelab's rasterizer (:class:`facelab.render.Renderer`). The same
function makes the training conditions (:mod:`facelab.methods.gar.data`) and the inversion's
differentiable path (:mod:`facelab.methods.gar.invert`): gradients flow from the normal map back
to identity, expression and pose through the rasterizer's interpolation of vertex normals.

Every image GAR handles is a **face crop** made as Part I's photometric stage makes it
(:func:`facelab.fit.api.crop_box`: a square of ``crop_scale`` x the landmark box, centred on
it), resampled to the generator's resolution; its intrinsics follow the crop
(:func:`facelab.fit.api.crop_intrinsics`). Training crops use the exact landmarks, inversion
the detected ones.
"""

from __future__ import annotations

import torch

from ...errors import InvalidInput
from ...fit.api import crop_box, crop_intrinsics
from ...render import Renderer

__all__ = [
    "CONDITIONS",
    "CROP_SCALE",
    "DEPTH_SCALE_M",
    "condition_channels",
    "crop_camera",
    "params_condition",
    "pose_crop_camera",
    "render_condition",
    "render_normals",
]

#: Side of the square crop as a multiple of the landmark box's larger side.
CROP_SCALE = 1.6

#: What the generator is told of the geometry (chapter 8's condition ablation): the normal map
#: (the paper's choice), a relative depth map, or the 3DMM parameters themselves.
CONDITIONS = ("normals", "depth", "params")

#: Depth maps are ``(t_z - z) / DEPTH_SCALE_M`` (in metres): about 0..1 from the head's centre
#: to the nose tip.
DEPTH_SCALE_M = 0.1

#: Rotation (axis-angle, radians) is multiplied by this in the parameter condition, so its
#: three entries have about the unit spread of the identity coefficients.
ROTATION_SCALE = 3.0

_RENDERERS: dict[int, Renderer] = {}


def _renderer(size: int) -> Renderer:
    if size not in _RENDERERS:
        _RENDERERS[size] = Renderer(image_size=size, cull_backfaces=True)
    return _RENDERERS[size]


def crop_camera(
    landmarks2d: torch.Tensor, K: torch.Tensor, size: int, scale: float = CROP_SCALE
) -> tuple[tuple[float, float, float], torch.Tensor]:
    """``(box, K_crop (3, 3))`` of the face crop around ``landmarks2d (68, 2)`` (photo pixels)
    for a photo with intrinsics ``K (3, 3)``."""
    box = crop_box(landmarks2d, scale)
    return box, crop_intrinsics(K[None], box, size)[0]


def render_normals(
    model,
    identity: torch.Tensor,
    expression: torch.Tensor,
    rotation: torch.Tensor,
    translation: torch.Tensor,
    K: torch.Tensor,
    size: int,
    landmark_vertices: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normal maps of ``B`` faces.

    Args:
        model: a :class:`facelab.models.MorphableModel`.
        identity, expression: ``(B, k_id)``, ``(B, k_exp)`` (prefixes of the model's bases).
        rotation, translation: ``(B, 3)`` pose (``x_cam = R diag(1,-1,-1) x + t``).
        K: ``(B, 3, 3)`` or ``(3, 3)`` crop intrinsics.
        size: square image size.
        landmark_vertices: ``(68,)`` vertex ids to project (default ``model.landmarks``).

    Returns:
        ``normals (B, 3, size, size)`` unit camera-space normals (0 on background),
        ``mask (B, 1, size, size)`` and ``landmarks (B, 68, 2)`` (crop pixels).
        Differentiable w.r.t. the parameters.
    """
    _, normals, mask, landmarks = render_condition(
        "normals", model, identity, expression, rotation, translation, K, size, landmark_vertices
    )
    return normals, mask, landmarks


def condition_channels(kind: str, n_identity: int = 40, n_expression: int = 53) -> int:
    """Channels of a condition: normals 3, depth 1, params ``n_identity + n_expression + 3``."""
    if kind not in CONDITIONS:
        raise InvalidInput(f"condition must be one of {CONDITIONS}, got {kind!r}")
    return {"normals": 3, "depth": 1, "params": n_identity + n_expression + 3}[kind]


def params_condition(
    identity: torch.Tensor,
    expression: torch.Tensor,
    rotation: torch.Tensor,
    n_identity: int = 40,
    n_expression: int = 53,
) -> torch.Tensor:
    """The parameter condition ``(B, n_identity + n_expression + 3)``:
    ``[alpha_{1..n_id}, beta_{1..n_exp}, ROTATION_SCALE * r]`` (missing coefficients are 0, extra
    ones dropped). Translation is left out: the crop camera puts every face in the same place.
    The generator broadcasts it to a constant map (:meth:`facelab.methods.gar.renderer.GARGenerator.synthesis`)."""

    def first(x: torch.Tensor, k: int) -> torch.Tensor:  # the first k columns, 0-padded
        x = x[:, :k]
        return torch.cat([x, x.new_zeros(x.shape[0], k - x.shape[1])], 1) if x.shape[1] < k else x

    return torch.cat(
        [first(identity, n_identity), first(expression, n_expression), ROTATION_SCALE * rotation],
        1,
    )


def render_condition(
    kind: str,
    model,
    identity: torch.Tensor,
    expression: torch.Tensor,
    rotation: torch.Tensor,
    translation: torch.Tensor,
    K: torch.Tensor,
    size: int,
    landmark_vertices: torch.Tensor | None = None,
    n_identity: int = 40,
    n_expression: int = 53,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(condition, normals, mask, landmarks)`` of ``B`` posed faces (arguments as
    :func:`render_normals`), all differentiable w.r.t. the parameters.

    ``condition``: ``kind="normals"`` the normal map ``(B, 3, S, S)``; ``"depth"`` the relative
    depth ``(t_z - z) / DEPTH_SCALE_M`` on the face, 0 on the background, ``(B, 1, S, S)``
    (``t_z``: the head origin's camera depth, so the map does not depend on the distance);
    ``"params"`` :func:`params_condition` ``(B, P)``.
    """
    condition_channels(kind, n_identity, n_expression)  # validates kind
    dt = model.dtype
    verts = model.forward(identity.to(dt), expression.to(dt))
    lmv = model.landmarks if landmark_vertices is None else landmark_vertices
    out = _renderer(int(size)).render(
        verts,
        model.faces,
        K=K.to(dt),
        rotation=rotation.to(dt),
        translation=translation.to(dt),
        landmarks=lmv,
    )
    if kind == "normals":
        cond = out.normals
    elif kind == "depth":
        scale = DEPTH_SCALE_M * 1000.0 / model.mm_per_unit  # in model units
        tz = translation.to(dt)[:, 2, None, None, None]
        cond = (tz - out.depth) / scale * out.mask
    else:
        cond = params_condition(identity, expression, rotation, n_identity, n_expression).to(dt)
    return cond, out.normals, out.mask, out.landmarks


def pose_crop_camera(
    model,
    identity: torch.Tensor,
    expression: torch.Tensor,
    rotation: torch.Tensor,
    translation: torch.Tensor,
    K: torch.Tensor,
    size: int,
    scale: float = CROP_SCALE,
) -> torch.Tensor:
    """``(B, 3, 3)`` crop intrinsics of posed faces seen by photo intrinsics ``K (B, 3, 3)``:
    the crop is made around the projections of the model's 68 landmark vertices, as a
    training crop is made around a photo's exact landmarks."""
    from ...geometry.camera import project
    from ...models.morphable import pose_points

    dt = model.dtype
    posed = pose_points(model.forward(identity.to(dt), expression.to(dt)), rotation.to(dt),
                        translation.to(dt))  # fmt: skip
    K = K.to(dt).expand(posed.shape[0], 3, 3)
    lm = project(posed[:, model.landmarks], K)
    return torch.stack([crop_camera(lm[i], K[i], size, scale)[1] for i in range(lm.shape[0])])
