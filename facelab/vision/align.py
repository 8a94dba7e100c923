"""Face alignment: similarity transforms to crop templates, warping, and the way back.

A face crop is defined by a 2-D **similarity transform** :math:`T(p) = s R p + t` that maps
photo pixels to crop pixels. Every crop here keeps its matrix, so results computed on the
crop (landmarks, masks, identity gradients) map back to the original photo exactly with
:math:`T^{-1}(q) = R^\\top (q - t) / s`.

Coordinates follow the library convention: continuous pixel coordinates with pixel
*centres* at ``+0.5`` (pixel ``(i, j)`` covers ``[j, j+1] x [i, i+1]``). Matrices are
``(B, 2, 3)`` with ``[q; 1] = [[A, t]] [p; 1]``.

Templates provided (see :func:`crop_transform`):

* ``"arcface"``: the 112 x 112 five-point template used by ArcFace/insightface
  (eye centres, nose tip, mouth corners), estimated by least squares (Umeyama).
* ``"ffhq"``: the FFHQ dataset's oriented square around eyes and mouth (any size,
  default 256), used by the face generators.
* ``"dlib"``: dlib's 150 x 150 face chip with padding 0.25 (``get_face_chip_details``),
  the input of dlib's face-recognition ResNet. dlib computes it from its own mean face
  shape, so this one asks dlib for the transform (see :func:`dlib_chip_transform`).

Warping (:func:`warp_to_crop`) is bilinear ``grid_sample``: differentiable in the image and
in the matrix. When the crop shrinks the face by more than 2x it first area-averages the
photo by an integer factor (as dlib's pyramid does) so that the crop is not aliased.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .._checks import check_shape
from ..errors import BackendUnavailable, InvalidInput
from ..geometry.alignment import umeyama

# iBUG-68 indices (0-based) used to build the 5 template points.
LEFT_EYE = list(range(36, 42))  # the subject's right eye, on the image's left
RIGHT_EYE = list(range(42, 48))
NOSE_TIP = 30
MOUTH_LEFT = 48
MOUTH_RIGHT = 54

#: insightface's ArcFace 112x112 template (their pixel-index coordinates + 0.5 to put pixel
#: centres at +0.5): left eye, right eye, nose tip, left and right mouth corner.
ARCFACE_112 = (
    (38.2946 + 0.5, 51.6963 + 0.5),
    (73.5318 + 0.5, 51.5014 + 0.5),
    (56.0252 + 0.5, 71.7366 + 0.5),
    (41.5493 + 0.5, 92.3655 + 0.5),
    (70.7299 + 0.5, 92.2041 + 0.5),
)


def five_points(landmarks: torch.Tensor) -> torch.Tensor:
    """The five alignment points from 68 iBUG landmarks.

    Args:
        landmarks: ``(..., 68, 2)``.

    Returns:
        ``(..., 5, 2)``: left-eye centre, right-eye centre, nose tip, left and right
        mouth corner (image left/right).
    """
    if landmarks.shape[-2:] != (68, 2):
        raise InvalidInput(f"landmarks must be (..., 68, 2), got {tuple(landmarks.shape)}")
    le = landmarks[..., LEFT_EYE, :].mean(-2)
    re = landmarks[..., RIGHT_EYE, :].mean(-2)
    return torch.stack(
        [
            le,
            re,
            landmarks[..., NOSE_TIP, :],
            landmarks[..., MOUTH_LEFT, :],
            landmarks[..., MOUTH_RIGHT, :],
        ],
        dim=-2,
    )


def similarity_transform(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Least-squares similarity (no reflection) mapping ``src`` points onto ``dst``, as a
    ``(2, 3)`` matrix: :func:`facelab.geometry.alignment.umeyama` (the one implementation).

    Umeyama (1991) in 2-D: with centred points :math:`\\tilde p_i, \\tilde q_i`, the
    optimum of :math:`\\sum_i \\|s R p_i + t - q_i\\|^2` has
    :math:`R` from the SVD of :math:`\\Sigma = \\frac1n \\sum \\tilde q_i \\tilde p_i^\\top
    = U D V^\\top` (with a sign fix so :math:`\\det R = 1`),
    :math:`s = \\operatorname{tr}(D S) / \\sigma_p^2` and :math:`t = \\bar q - s R \\bar p`.

    Args:
        src: ``(B, N, 2)`` or ``(N, 2)``, N >= 2.
        dst: same shape as ``src``.

    Returns:
        ``(B, 2, 3)`` (or ``(2, 3)`` for unbatched input), dtype/device of ``src``.
    """
    unbatched = src.dim() == 2
    if unbatched:
        src, dst = src[None], dst[None]
    check_shape("src", src, (None, None, 2))
    check_shape("dst", dst, (src.shape[0], src.shape[1], 2))
    if src.shape[1] < 2:
        raise InvalidInput("similarity_transform needs at least 2 point pairs")
    s, R, t = umeyama(src, dst.to(src))
    M = torch.cat([s[:, None, None] * R, t[..., None]], dim=2)
    return M[0] if unbatched else M


def apply_transform(M: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply ``(B, 2, 3)`` affine matrices to ``(B, N, 2)`` points (also ``(2,3)``/``(N,2)``)."""
    return points @ M[..., :2].transpose(-1, -2) + M[..., None, :, 2]


def invert_transform(M: torch.Tensor) -> torch.Tensor:
    """Inverse of ``(..., 2, 3)`` affine matrices: :math:`[A^{-1}, -A^{-1} t]`."""
    A = M[..., :2]
    Ai = torch.linalg.inv(A)
    return torch.cat([Ai, -(Ai @ M[..., 2:])], dim=-1)


def transform_scale(M: torch.Tensor) -> torch.Tensor:
    """Isotropic scale :math:`\\sqrt{|\\det A|}` of ``(..., 2, 3)`` matrices."""
    return torch.linalg.det(M[..., :2]).abs().sqrt()


# --------------------------------------------------------------------------------------
# Templates


def arcface_transform(landmarks: torch.Tensor, size: int = 112) -> torch.Tensor:
    """Photo -> ArcFace crop transform from 68 landmarks ``(B, 68, 2)`` -> ``(B, 2, 3)``.

    The insightface template is defined for 112 x 112; other sizes scale it
    (``size / 112``), as insightface does for 128.
    """
    src = five_points(landmarks)
    tmpl = torch.tensor(ARCFACE_112, dtype=src.dtype, device=src.device) * (size / 112.0)
    return similarity_transform(src, tmpl.expand_as(src))


def ffhq_transform(landmarks: torch.Tensor, size: int = 256) -> torch.Tensor:
    """Photo -> FFHQ-style crop transform from 68 landmarks ``(B, 68, 2)`` -> ``(B, 2, 3)``.

    The FFHQ recipe: with eye centres :math:`e_l, e_r`, mouth corners :math:`m_l, m_r`,
    :math:`\\bar e = (e_l+e_r)/2`, :math:`v_e = e_r - e_l`, :math:`v_m = (m_l+m_r)/2 - \\bar e`,
    the crop's x axis is :math:`x = v_e - \\operatorname{rot}_{90}(v_m)` normalised and scaled
    to :math:`\\max(2\\|v_e\\|, 1.8\\|v_m\\|)`, :math:`y = \\operatorname{rot}_{90}(x)`,
    centre :math:`c = \\bar e + 0.1 v_m`; the square :math:`c \\pm x \\pm y` maps onto
    ``[0, size]^2``.
    """
    fp = five_points(landmarks)
    el, er, ml, mr = fp[..., 0, :], fp[..., 1, :], fp[..., 3, :], fp[..., 4, :]
    eye_avg = (el + er) / 2
    ve = er - el
    vm = (ml + mr) / 2 - eye_avg
    # x = ve - flipud(vm) * [-1, 1]  (FFHQ's expression, in y-down image coordinates)
    x = ve - torch.stack([-vm[..., 1], vm[..., 0]], dim=-1)
    x = x / torch.linalg.norm(x, dim=-1, keepdim=True)
    x = (
        x
        * torch.maximum(torch.linalg.norm(ve, dim=-1) * 2.0, torch.linalg.norm(vm, dim=-1) * 1.8)[
            ..., None
        ]
    )
    y = torch.stack([-x[..., 1], x[..., 0]], dim=-1)
    c = eye_avg + vm * 0.1
    quad = torch.stack([c - x - y, c - x + y, c + x + y, c + x - y], dim=-2)  # TL, BL, BR, TR
    s = float(size)
    tgt = torch.tensor(
        [[0.0, 0.0], [0.0, s], [s, s], [s, 0.0]], dtype=quad.dtype, device=quad.device
    )
    return similarity_transform(quad, tgt.expand_as(quad))


def dlib_chip_transform(
    landmarks: torch.Tensor, size: int = 150, padding: float = 0.25
) -> torch.Tensor:
    """Photo -> dlib face chip transform (``get_face_chip_details``) -> ``(B, 2, 3)``.

    dlib fits its mean face shape to landmarks 17-67 and returns the chip as a rotated
    rectangle; this converts that rectangle into a matrix in facelab pixel coordinates.
    Needs dlib (the mean shape is dlib's); the resulting warp (:func:`warp_to_crop`) is
    pure PyTorch and differentiable.
    """
    try:
        import dlib
    except ImportError as e:
        raise BackendUnavailable("the dlib face chip needs dlib: pip install dlib-bin") from e
    lm = landmarks.detach().cpu().double()
    unbatched = lm.dim() == 2
    if unbatched:
        lm = lm[None]
    out = []
    for b in range(lm.shape[0]):
        pts = lm[b] - 0.5  # facelab -> dlib pixel-index coordinates
        ipts = [dlib.point(int(round(float(x))), int(round(float(y)))) for x, y in pts.tolist()]
        xs, ys = pts[:, 0], pts[:, 1]
        rect = dlib.rectangle(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
        det = dlib.full_object_detection(rect, ipts)
        cd = dlib.get_face_chip_details(det, size, padding)
        out.append(chip_details_to_matrix(cd))
    M = torch.stack(out).to(dtype=landmarks.dtype, device=landmarks.device)
    return M[0] if unbatched else M


def chip_details_to_matrix(cd) -> torch.Tensor:
    """A dlib ``chip_details`` (rotated rectangle, angle, rows x cols) as a ``(2, 3)`` matrix.

    dlib maps chip pixel :math:`(c, r)` to the photo point
    :math:`R(\\theta)\\,(c\\,w/(C-1), r\\,h/(R-1))^\\top + o` around the rectangle's
    top-left corner; here it is inverted and shifted to centre-at-+0.5 coordinates.
    """
    rect = cd.rect
    rows, cols = cd.rows, cd.cols
    w = rect.right() - rect.left()
    h = rect.bottom() - rect.top()
    sx = w / (cols - 1)
    sy = h / (rows - 1)
    th = cd.angle
    c, s = math.cos(th), math.sin(th)
    # chip (dlib index coords) -> photo (dlib index coords):  p = Rot * diag(sx, sy) * q + o
    cx = (rect.left() + rect.right()) / 2.0
    cy = (rect.top() + rect.bottom()) / 2.0
    A = torch.tensor([[c * sx, -s * sy], [s * sx, c * sy]], dtype=torch.float64)
    qc = torch.tensor([(cols - 1) / 2.0, (rows - 1) / 2.0], dtype=torch.float64)
    o = torch.tensor([cx, cy], dtype=torch.float64) - A @ qc
    chip_to_photo = torch.cat([A, o[:, None]], dim=1)
    # shift both sides by +0.5: p' = p + 0.5, q' = q + 0.5
    half = torch.tensor([0.5, 0.5], dtype=torch.float64)
    chip_to_photo[:, 2] = chip_to_photo[:, 2] + half - A @ half
    return invert_transform(chip_to_photo)


def crop_transform(
    landmarks: torch.Tensor, template: str = "arcface", size: int | None = None
) -> torch.Tensor:
    """Photo -> crop matrix ``(B, 2, 3)`` for ``template`` in ``{"arcface", "ffhq", "dlib"}``."""
    if template == "arcface":
        return arcface_transform(landmarks, size or 112)
    if template == "ffhq":
        return ffhq_transform(landmarks, size or 256)
    if template == "dlib":
        return dlib_chip_transform(landmarks, size or 150)
    raise InvalidInput(f"unknown crop template {template!r}; use 'arcface', 'ffhq' or 'dlib'")


# --------------------------------------------------------------------------------------
# Warping


def warp_to_crop(
    image: torch.Tensor,
    M: torch.Tensor,
    size: int | tuple[int, int],
    antialias: bool = True,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Resample ``image`` into crops: ``crop[q] = image[T^{-1}(q)]`` (bilinear).

    Args:
        image: ``(B, C, H, W)`` (or ``(1, C, H, W)`` shared by all matrices).
        M: ``(B, 2, 3)`` photo -> crop matrices (pixel centres at +0.5).
        size: crop size ``S`` or ``(H_out, W_out)``.
        antialias: when the crop shrinks by a factor :math:`k \\geq 2`, area-average the
            photo by :math:`\\lfloor k \\rfloor` first (differentiable).
        padding_mode: ``grid_sample`` padding outside the photo (``"zeros"``, ``"border"``).

    Returns:
        ``(B, C, H_out, W_out)``, differentiable w.r.t. ``image`` and ``M``.
    """
    check_shape("image", image, (None, None, None, None))
    if M.dim() == 2:
        M = M[None]
    check_shape("M", M, (None, 2, 3))
    B = M.shape[0]
    if image.shape[0] not in (1, B):
        raise InvalidInput(f"image batch {image.shape[0]} does not match {B} matrices")
    Ho, Wo = (size, size) if isinstance(size, int) else size
    M = M.to(dtype=image.dtype, device=image.device)
    if antialias:
        k = int(math.floor(float((1.0 / transform_scale(M).detach()).min())))
        if k >= 2:
            H, W = image.shape[-2:]
            ph, pw = (-H) % k, (-W) % k
            img = F.pad(image, (0, pw, 0, ph), mode="replicate") if (ph or pw) else image
            image = F.avg_pool2d(img, k)
            # photo coordinates shrink by k: p_small = p / k  =>  M_small = M @ diag(k, k, 1)
            M = torch.cat([M[..., :2] * k, M[..., 2:]], dim=-1)
    H, W = image.shape[-2:]
    Minv = invert_transform(M)  # crop -> photo
    ys = torch.arange(Ho, dtype=image.dtype, device=image.device) + 0.5
    xs = torch.arange(Wo, dtype=image.dtype, device=image.device) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    q = torch.stack([gx, gy], dim=-1).reshape(1, -1, 2)  # (1, Ho*Wo, 2)
    p = apply_transform(Minv, q.expand(B, -1, -1))  # (B, Ho*Wo, 2)
    grid = torch.stack([2 * p[..., 0] / W - 1, 2 * p[..., 1] / H - 1], dim=-1).reshape(B, Ho, Wo, 2)
    if image.shape[0] == 1 and B > 1:
        image = image.expand(B, -1, -1, -1)
    return F.grid_sample(
        image, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False
    )


@dataclass
class AlignedCrop:
    """Crops of faces with the matrices that made them.

    Attributes:
        image: ``(B, 3, S, S)`` crops.
        matrix: ``(B, 2, 3)`` photo -> crop transforms.
        template: the template name.
    """

    image: torch.Tensor
    matrix: torch.Tensor
    template: str

    def to_crop(self, points: torch.Tensor) -> torch.Tensor:
        """Photo points ``(B, N, 2)`` -> crop points."""
        return apply_transform(self.matrix.to(points), points)

    def to_photo(self, points: torch.Tensor) -> torch.Tensor:
        """Crop points ``(B, N, 2)`` -> photo points (the inverse transform)."""
        return apply_transform(invert_transform(self.matrix.to(points)), points)


def align_faces(
    image: torch.Tensor,
    landmarks: torch.Tensor,
    template: str = "arcface",
    size: int | None = None,
    antialias: bool = True,
) -> AlignedCrop:
    """Align faces to a template: ``image (1|B, 3, H, W)``, ``landmarks (B, 68, 2)``.

    Returns an :class:`AlignedCrop` whose ``to_photo`` maps crop results back.
    """
    if landmarks.dim() == 2:
        landmarks = landmarks[None]
    M = crop_transform(landmarks, template, size)
    S = size or {"arcface": 112, "ffhq": 256, "dlib": 150}[template]
    crop = warp_to_crop(image, M, S, antialias=antialias)
    return AlignedCrop(image=crop, matrix=M, template=template)


__all__ = [
    "ARCFACE_112",
    "AlignedCrop",
    "align_faces",
    "apply_transform",
    "arcface_transform",
    "chip_details_to_matrix",
    "crop_transform",
    "dlib_chip_transform",
    "ffhq_transform",
    "five_points",
    "invert_transform",
    "similarity_transform",
    "transform_scale",
    "warp_to_crop",
]
