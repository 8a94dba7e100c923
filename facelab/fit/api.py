"""``fit(photo)``: detect, fit landmarks, fit photometrically, package a :class:`FitResult`.

The pipeline for one photo:

1. **Detect** the face and its 68 landmarks (dlib, :mod:`facelab.vision`), unless landmarks are
   given. No face -> :class:`~facelab.errors.NoFaceFound` naming the photo; several faces ->
   the ``face`` policy (``"largest"`` by default, ``"single"`` raises
   :class:`~facelab.errors.MultipleFacesFound`, an int picks one left to right); a face
   smaller than ``min_face_px`` -> :class:`~facelab.errors.InvalidInput`.
2. **Landmark fit** on the full photo (:func:`facelab.fit.landmarks.fit_landmarks`): pose,
   identity, expression, with a focal length from an assumed field of view.
3. **Crop** a square around the face (``crop_scale`` x the landmark box), resampled to
   ``resolution`` pixels; the intrinsics follow the crop (``u' = a (u - x_0)``:
   ``f' = a f``, ``c' = a (c - x_0)``), the pose does not change.
4. **Photometric fit** in the crop (:func:`facelab.fit.photometric.fit_photometric`).
5. **Package**: full-resolution render and overlay, texture unwrapped from the photo,
   landmark error, timings, warnings (an absolute yaw above 60 degrees is reported as an extreme pose).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import FitDiverged, InvalidInput, NoFaceFound
from ..geometry.camera import intrinsics, project
from ..geometry.rotation import axis_angle_to_matrix, matrix_to_yaw_pitch_roll
from ..models.morphable import pose_points
from ..models.params import FaceParams
from .calibration import LandmarkEmbedding
from .landmarks import LandmarkFitConfig, detected_landmark_config, fit_landmarks
from .photometric import FitConfig, fit_photometric, linear_to_srgb
from .render import render_face
from .result import FitResult, face_region

#: Faces whose landmark box is smaller than this (pixels) are refused.
MIN_FACE_PX = 40
#: An absolute yaw above this (degrees) is reported as an extreme pose.
EXTREME_YAW = 60.0


def fast_mode(fast: bool | None = None) -> bool:
    """``fast`` if given, else the environment variable ``FACELAB_FAST=1``."""
    if fast is not None:
        return bool(fast)
    return os.environ.get("FACELAB_FAST", "").strip().lower() in ("1", "true", "yes", "on")


def _fit_config(
    config: Any, fast: bool | None, progress: bool | None, kind: type = FitConfig
) -> Any:
    """The config a fit runs (:func:`fit`, :func:`~facelab.fit.multi.fit_multi`, GANFit's
    ``fit_multi`` with ``kind=GanFitConfig``): ``config`` or ``kind()``, with FAST mode
    (:func:`fast_mode`: a crop of at most 128 px, the short schedule) and ``progress`` applied."""
    cfg = config or kind()
    if fast_mode(fast):
        cfg = replace(cfg, fast=True, resolution=min(cfg.resolution, 128))
    if progress is not None:
        cfg = replace(cfg, progress=progress)
    return cfg


def _given_landmarks(landmarks: Any, src: str) -> torch.Tensor:
    """User-given landmarks as ``(68, 2)`` float32, or :class:`InvalidInput` saying why not."""
    lm = torch.as_tensor(landmarks, dtype=torch.float32)
    if lm.shape != (68, 2):
        raise InvalidInput(f"{src}: landmarks must be (68, 2), got {tuple(lm.shape)}")
    if not bool(torch.isfinite(lm).all()):
        raise InvalidInput(f"{src}: landmarks contain NaN/Inf")
    return lm


def _resolve_model(model: Any):
    if isinstance(model, str):
        from ..models import load

        return load(model)
    return model


def _load_photo(photo: Any) -> tuple[torch.Tensor, str]:
    from ..vision import load_image

    img = load_image(photo)
    src = img.source if isinstance(img.source, str) else ""
    if isinstance(photo, str | os.PathLike):
        src = str(photo)
    return img.tensor, src


def detect_landmarks(
    image: torch.Tensor, source: str = "", face: str | int = "largest", detector: Any = "dlib"
) -> torch.Tensor:
    """``(68, 2)`` landmarks of the face chosen by the ``face`` policy (see module doc)."""
    from ..vision import detect_faces

    try:
        faces = detect_faces(image, detector=detector, policy=face)
    except NoFaceFound as e:
        raise NoFaceFound(f"{source or 'photo'}: {e}") from None
    return faces[0].landmarks.to(torch.float32)


def check_face_size(
    landmarks: torch.Tensor, source: str = "", min_px: float = MIN_FACE_PX
) -> float:
    """Raise :class:`InvalidInput` when the landmark box is smaller than ``min_px``."""
    span = landmarks.amax(0) - landmarks.amin(0)
    size = float(span.max())
    if size < min_px:
        raise InvalidInput(
            f"{source or 'photo'}: the face is only {size:.0f} px wide; facelab needs at least "
            f"{min_px} px: use a larger or less down-scaled photo"
        )
    return size


@dataclass
class PreparedPhoto:
    """A photo ready to fit (:func:`prepare_photo`), on the model's device.

    Attributes:
        image: ``(1, 3, H, W)`` float in [0, 1].
        landmarks: ``(68, 2)`` detected (or given) landmarks, photo pixels, model dtype.
        target: ``(68, 2)`` the landmarks the fit aims at: ``landmarks`` with the
            calibration's offsets removed (``landmarks`` without a calibration).
        weights: ``(68,)`` the calibration's per-point weights, or None.
        embedding: the calibration's 3D landmark embedding when the caller asked for it
            (``use_embedding``) and it has one (then ``target`` is ``landmarks`` as they are:
            the fit projects the embedding's points instead of the landmark vertices).
        source: the photo's name in messages.
        detected: the landmarks came from the detector (not given).
        calibrated: a detector calibration is in use (the landmarks are a detector's points,
            detected here or given with ``calibration``), so the fit takes
            :func:`facelab.fit.detected_landmark_config` by default.
        detect_seconds: time of detection (or of checking the given landmarks).
    """

    image: torch.Tensor
    landmarks: torch.Tensor
    target: torch.Tensor
    weights: torch.Tensor | None
    source: str
    detected: bool
    detect_seconds: float
    embedding: LandmarkEmbedding | None = None
    calibrated: bool = False

    def landmark_config(self, config: LandmarkFitConfig | None) -> LandmarkFitConfig | None:
        """``config``, or for a detector's landmarks the tuned
        :func:`~facelab.fit.detected_landmark_config` (``None``: the defaults)."""
        if config is None and self.calibrated:
            return detected_landmark_config()
        return config


def prepare_photo(
    photo: Any,
    model: Any,
    landmarks: Any = None,
    face: str | int = "largest",
    detector: Any = "dlib",
    min_face_px: float = MIN_FACE_PX,
    calibration: Any = "auto",
    source: str | None = None,
    fallback_source: str = "photo",
    calibration_weights: bool = True,
    calibration_offsets: bool = True,
    use_embedding: bool = False,
) -> PreparedPhoto:
    """Load ``photo``, detect its 68 landmarks (or check the given ``(68, 2)``), refuse a face
    smaller than ``min_face_px``, and apply the detector's calibration
    (:func:`facelab.fit.calibration.resolve_calibration`): ``target = correct(landmarks)``
    (computed in float64, stored as float32 values), ``weights`` its per-point weights
    (``calibration_weights`` / ``calibration_offsets`` switch either off).

    ``use_embedding``: a caller whose fit projects a
    :class:`~facelab.fit.calibration.LandmarkEmbedding`'s points (:func:`fit`) gets the
    calibration's embedding instead of its offsets (``target = landmarks``) and the weights
    of the spread after it (``LandmarkCalibration.fit_weights``); with
    ``calibration_offsets=False`` neither the offsets nor the embedding are used.

    ``source`` names the photo in messages (default: its path, else ``fallback_source``).
    The image and landmarks move to ``model``'s device (landmarks in its dtype).

    Raises:
        NoFaceFound, MultipleFacesFound: as :func:`detect_landmarks`.
        InvalidInput: landmarks not finite ``(68, 2)``, a face too small, a bad calibration.
    """
    from .calibration import resolve_calibration

    img, src = _load_photo(photo)
    src = source or src or fallback_source
    t0 = time.perf_counter()
    if landmarks is None:
        lm = detect_landmarks(img, src, face, detector)
    else:
        lm = _given_landmarks(landmarks, src)
    seconds = time.perf_counter() - t0
    check_face_size(lm, src, min_face_px)
    cal = resolve_calibration(calibration, detector, model, detected=landmarks is None)
    weights, target, embedding = None, lm, None
    if cal is not None:
        embed = use_embedding and calibration_offsets and cal.embedding is not None
        if calibration_weights:
            weights = cal.fit_weights(use_embedding=embed).to(model.device, model.dtype)
        if embed:
            embedding = cal.embedding
        elif calibration_offsets:
            target = cal.correct(lm.double()).to(torch.float32)
    return PreparedPhoto(
        image=img.to(model.device),
        landmarks=lm.to(model.device, model.dtype),
        target=target.to(model.device, model.dtype),
        weights=weights,
        source=src,
        detected=landmarks is None,
        detect_seconds=seconds,
        embedding=embedding,
        calibrated=cal is not None,
    )


def crop_box(landmarks: torch.Tensor, scale: float) -> tuple[float, float, float]:
    """Square crop ``(x0, y0, side)`` around ``(68, 2)`` landmarks: centre of the box, side =
    ``scale`` x its larger side."""
    lo, hi = landmarks.amin(0), landmarks.amax(0)
    c = (lo + hi) / 2
    side = float((hi - lo).max()) * scale
    return float(c[0]) - side / 2, float(c[1]) - side / 2, side


def crop_image(
    image: torch.Tensor, box: tuple[float, float, float], size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample the square ``box = (x0, y0, side)`` of ``image (1, 3, H, W)`` to
    ``size x size`` (bilinear, antialiased by area pre-filtering when shrinking), through
    :func:`facelab.vision.align.warp_to_crop` (the library's one crop resampler).

    Returns ``(crop (1, 3, size, size), valid (1, size, size) bool)`` (False outside the photo).
    """
    from ..vision.align import warp_to_crop

    _, _, H, W = image.shape
    x0, y0, side = box
    a = size / side
    # photo -> crop: q = a (p - x0), pixel centres at +0.5 on both sides
    M = torch.tensor([[a, 0.0, -a * x0], [0.0, a, -a * y0]], dtype=image.dtype, device=image.device)
    crop = warp_to_crop(image, M[None], size, antialias=True, padding_mode="border")
    j = torch.arange(size, dtype=image.dtype, device=image.device) + 0.5
    u = x0 + j / a  # original pixel coordinates of the crop's pixel centres
    v = y0 + j / a
    valid = ((u >= 0) & (u <= W))[None, :] & ((v >= 0) & (v <= H))[:, None]
    return crop, valid[None]


def crop_intrinsics(K: torch.Tensor, box: tuple[float, float, float], size: int) -> torch.Tensor:
    """Intrinsics ``(B, 3, 3)`` of the crop: ``f' = a f``, ``c' = a (c - x0)``, ``a = size/side``."""
    x0, y0, side = box
    a = size / side
    S = torch.tensor(
        [[a, 0.0, -a * x0], [0.0, a, -a * y0], [0.0, 0.0, 1.0]], dtype=K.dtype, device=K.device
    )
    return S @ K


@dataclass
class FaceCrop:
    """A square crop of a photo (:func:`crop_face`).

    Attributes:
        image: ``(1, 3, S, S)`` the resampled crop.
        valid: ``(1, S, S)`` bool, False where the crop reaches beyond the photo.
        K: ``(1, 3, 3)`` the crop's intrinsics.
        box: ``(x0, y0, side)`` of the crop in photo pixels.
        scale: ``a = S / side`` (crop pixels per photo pixel).
    """

    image: torch.Tensor
    valid: torch.Tensor
    K: torch.Tensor
    box: tuple[float, float, float]
    scale: float

    def to_crop(self, points: torch.Tensor) -> torch.Tensor:
        """Photo pixels ``(..., 2)`` -> crop pixels: ``q = a (p - (x0, y0))`` (in ``points``'
        dtype and device)."""
        return (points - points.new_tensor(self.box[:2])) * self.scale


def crop_face(
    image: torch.Tensor, landmarks: torch.Tensor, K: torch.Tensor, size: int, scale: float
) -> FaceCrop:
    """The square crop of ``image (1, 3, H, W)`` around ``landmarks (68, 2)``
    (:func:`crop_box` with ``scale``) resampled to ``size`` pixels (:func:`crop_image`), and
    its intrinsics from the photo's ``K (3, 3)`` or ``(1, 3, 3)`` (:func:`crop_intrinsics`,
    in ``image``'s dtype)."""
    box = crop_box(landmarks, scale)
    crop, valid = crop_image(image, box, size)
    Kc = crop_intrinsics(K.to(image.dtype), box, size).reshape(1, 3, 3)
    return FaceCrop(image=crop, valid=valid, K=Kc, box=box, scale=size / box[2])


def draw_points(
    img: torch.Tensor, pts: torch.Tensor, colour: tuple[float, float, float], r: int = 1
) -> torch.Tensor:
    """Draw ``(N, 2)`` points as small squares on ``img (3, H, W)`` (returns a copy)."""
    out = img.clone()
    _, H, W = out.shape
    col = torch.tensor(colour, dtype=out.dtype, device=out.device)[:, None]
    for x, y in pts.tolist():
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        j, i = int(x), int(y)
        i0, i1, j0, j1 = max(i - r, 0), min(i + r + 1, H), max(j - r, 0), min(j + r + 1, W)
        if i0 < i1 and j0 < j1:
            out[:, i0:i1, j0:j1] = col[..., None]
    return out


@torch.no_grad()
def unwrap_texture(
    model,
    posed: torch.Tensor,
    K: torch.Tensor,
    image: torch.Tensor,
    zbuf: torch.Tensor,
    albedo: torch.Tensor,
    size: int = 512,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Texture unwrapped from the photo.

    For every texel of the UV layout, its surface point ``x = sum_k b_k x_{f_k}`` (UV-space
    rasterization gives the triangle and barycentrics) is projected into the photo; if it is
    the visible surface there (its depth within 1 % of the photo's z-buffer) the texel takes
    the photo colour, else the fitted albedo (sRGB).

    Args:
        posed: ``(V, 3)`` camera-space vertices; K ``(3, 3)``; image ``(1, 3, H, W)`` photo;
            zbuf ``(H, W)`` depth of the fitted render (-1 = background); albedo ``(V, 3)``.

    Returns:
        ``texture (3, S, S)`` sRGB, ``visible (S, S)`` bool.
    """
    from ..render import rasterize

    uvs, uvf = model.uvs.to(posed.dtype), model.uv_faces
    screen = torch.stack([uvs[:, 0] * size, (1 - uvs[:, 1]) * size, torch.ones_like(uvs[:, 0])], -1)
    frags = rasterize(screen[None], uvf, (size, size))
    # per-texel attributes through the vertex faces: position and albedo
    f = frags.pix_to_face[0]
    cov = f >= 0
    tri = model.faces[f.clamp_min(0)]  # (S, S, 3)
    b = frags.bary[0]
    pos = (posed[tri] * b[..., None]).sum(-2)
    alb = (albedo.to(posed.dtype)[tri] * b[..., None]).sum(-2)
    H, W = image.shape[-2:]
    uv = project(pos.reshape(1, -1, 3), K[None]).reshape(size, size, 2)
    ix = uv[..., 0].floor().long().clamp(0, W - 1)
    iy = uv[..., 1].floor().long().clamp(0, H - 1)
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H)
    zb = zbuf[iy, ix]
    visible = cov & inside & (zb > 0) & ((pos[..., 2] - zb).abs() <= 0.01 * zb.abs())
    grid = torch.stack([2 * uv[..., 0] / W - 1, 2 * uv[..., 1] / H - 1], -1)[None].to(image.dtype)
    photo = F.grid_sample(image, grid, mode="bilinear", align_corners=False)[0]  # (3, S, S)
    tex = linear_to_srgb(alb.clamp(0, 1)).permute(2, 0, 1).to(image.dtype)
    tex = torch.where(visible[None], photo, tex)
    tex = torch.where(cov[None], tex, torch.zeros_like(tex))
    return tex, visible


def _ypr(rotation: torch.Tensor) -> tuple[float, float, float]:
    a = matrix_to_yaw_pitch_roll(axis_angle_to_matrix(rotation.double()), degrees=True)
    return float(a[0]), float(a[1]), float(a[2])


@torch.no_grad()
def package_result(
    model,
    image: torch.Tensor,
    landmarks: torch.Tensor,
    params: FaceParams,
    K: torch.Tensor,
    landmark_vertices: torch.Tensor,
    vertex_albedo: torch.Tensor,
    history: dict[str, list[float]],
    timings: dict[str, float],
    warnings: list[str],
    source: str,
    texture_size: int = 512,
    landmark_points: LandmarkEmbedding | None = None,
) -> FitResult:
    """Render the fit over the full photo and build the :class:`FitResult` (one image).

    ``projected_landmarks`` are the projections of ``landmark_points`` (a ``(68, 3)`` or
    ``(1, 68, 3)`` :class:`~facelab.fit.calibration.LandmarkEmbedding`, the points the fit
    used) when given, else of ``landmark_vertices``."""
    from ..metrics import landmark_nme

    dt = model.dtype
    verts = model.forward(params.identity, params.expression)
    posed = pose_points(verts, params.rotation, params.translation)
    for name, t in (("vertices", verts), ("posed vertices", posed)):
        if not bool(torch.isfinite(t).all()):
            raise FitDiverged(
                f"{source or 'photo'}: the fitted {name} contain NaN/Inf", last_good=params
            )
    _, _, H, W = image.shape
    light = params.light if params.light is not None else None
    r = render_face(
        posed, model.faces, vertex_albedo[None].to(dt), light.to(dt), K[None].to(dt), (H, W)
    )
    render = linear_to_srgb(r.image[0].clamp(0, 1)).permute(2, 0, 1).to(image.dtype)
    m = r.fragments.mask[0]
    # Blend the face region only (ICT's neck and scalp would paint over collars and hair).
    region = face_region(model)
    blend = m
    if region is not None:
        on_face = region.to(model.faces.device)[model.faces].all(-1)
        p2f = r.fragments.pix_to_face[0]
        blend = m & on_face[p2f.clamp(min=0)] & (p2f >= 0)
    overlay = torch.where(blend[None], 0.25 * image[0] + 0.75 * render, image[0])
    pts = (
        posed[:, landmark_vertices.to(posed.device)]
        if landmark_points is None
        else landmark_points.points(posed)
    )
    proj = project(pts, K[None].to(dt))[0]
    overlay = draw_points(overlay, landmarks.to(overlay.dtype), (0.1, 0.9, 0.1))
    overlay = draw_points(overlay, proj.to(overlay.dtype), (0.95, 0.15, 0.1))
    nme = float(landmark_nme(proj[None].double(), landmarks[None].double(), "outer_eye")[0])
    tex = tmask = None
    if model.uvs is not None and texture_size > 0:
        tex, tmask = unwrap_texture(
            model,
            posed[0],
            K.to(dt),
            image.to(dt),
            r.fragments.zbuf[0],
            vertex_albedo,
            texture_size,
        )
    ypr = _ypr(params.rotation[0])
    return FitResult(
        params=params, vertices=verts[0], posed_vertices=posed[0], faces=model.faces, K=K,
        image=image[0], overlay=overlay, render=render, mask=m, landmarks=landmarks,
        projected_landmarks=proj, landmark_vertices=landmark_vertices, vertex_albedo=vertex_albedo,
        uvs=model.uvs, uv_faces=model.uv_faces, texture=tex, texture_mask=tmask, history=history,
        timings=timings, ypr=ypr, landmark_nme=nme, warnings=warnings, model_name=model.name,
        source=source, units=model.units, face_vertices=region,
    )  # fmt: skip


def prepare_photos(
    photos: list[Any],
    model: Any,
    landmarks: list[Any] | None = None,
    face: str | int = "largest",
    detector: Any = "dlib",
    min_face_px: float = MIN_FACE_PX,
    calibration: Any = "auto",
    calibration_weights: bool = True,
    calibration_offsets: bool = True,
    use_embedding: bool = False,
) -> list[PreparedPhoto]:
    """:func:`prepare_photo` for each of several photos of one person (the multi-photo fits):
    ``landmarks`` is None or one ``(68, 2)`` per photo; a photo without a path is named
    ``photo i`` in messages (``photo`` when it is the only one).

    Raises:
        InvalidInput: no photos, or a landmark list of another length (and what
            :func:`prepare_photo` raises).
    """
    if len(photos) < 1:
        raise InvalidInput("fit_multi needs at least one photo")
    if landmarks is not None and len(landmarks) != len(photos):
        raise InvalidInput(f"{len(landmarks)} landmark sets for {len(photos)} photos")
    return [
        prepare_photo(
            ph,
            model,
            None if landmarks is None else landmarks[i],
            face,
            detector,
            min_face_px,
            calibration,
            fallback_source=f"photo {i}" if len(photos) > 1 else "photo",
            calibration_weights=calibration_weights,
            calibration_offsets=calibration_offsets,
            use_embedding=use_embedding,
        )  # fmt: skip
        for i, ph in enumerate(photos)
    ]


def fit(
    photo: Any,
    model: Any = "ict-face",
    landmarks: torch.Tensor | None = None,
    config: FitConfig | None = None,
    landmark_config: LandmarkFitConfig | None = None,
    face: str | int = "largest",
    detector: Any = "dlib",
    photometric: bool = True,
    fast: bool | None = None,
    progress: bool | None = None,
    source: str | None = None,
    min_face_px: float = MIN_FACE_PX,
    calibration: Any = "auto",
    calibration_weights: bool = True,
    calibration_offsets: bool = True,
) -> FitResult:
    """Fit a 3DMM to one photo (see the module docstring for the pipeline).

    Args:
        photo: path, :class:`facelab.vision.Image`, tensor ``(1, 3, H, W)`` / ``(3, H, W)`` in
            [0, 1], numpy array or PIL image.
        model: a model name for :func:`facelab.models.load` or a ``MorphableModel``.
        landmarks: ``(68, 2)`` landmarks in photo pixels (skips detection).
        config: :class:`FitConfig` (photometric stage); ``landmark_config`` for stage 1.
        face: several-faces policy (``"largest"``, ``"single"``, or an index left to right).
        detector: detector name or instance (:func:`facelab.vision.get_detector`).
        photometric: run stage 2 (``False``: the landmark-only fit).
        fast: FAST mode (128-px crop, short schedule); default ``FACELAB_FAST``.
        progress: show a progress bar (default: the config's).
        source: name of the photo in messages (default: its path).
        min_face_px: smallest accepted face (landmark box side, pixels).
        calibration: the detector's measured landmark offsets and spreads
            (:class:`facelab.fit.calibration.LandmarkCalibration`): ``"auto"`` = the shipped
            calibration of ``detector`` when the landmarks come from it (none for given
            ``landmarks``), ``None`` = trust every point as the model's landmark vertex.
        calibration_weights, calibration_offsets: use its per-point weights / offsets.

    Returns:
        :class:`FitResult`.

    Raises:
        NoFaceFound: no face was detected in the photo.
        MultipleFacesFound: several faces and ``face="single"``.
        InvalidInput: a tiny face, or landmarks of the wrong shape or with NaN.
        FitDiverged: NaN during the fit (a NaN mesh is never returned).
    """
    t_all = time.perf_counter()
    mdl = _resolve_model(model)
    prep = prepare_photo(
        photo, mdl, landmarks, face, detector, min_face_px, calibration, source,
        calibration_weights=calibration_weights, calibration_offsets=calibration_offsets,
        use_embedding=True,
    )  # fmt: skip
    timings: dict[str, float] = {}
    if prep.detected:
        timings["detect"] = prep.detect_seconds
    # the photo and its landmarks follow the model (a CUDA model renders on CUDA)
    img, lm, lm_target, src = prep.image, prep.landmarks, prep.target, prep.source
    lm_weights = None if prep.weights is None else prep.weights[None]
    cfg = _fit_config(config, fast, progress)
    _, _, H, W = img.shape
    t0 = time.perf_counter()
    lf = fit_landmarks(
        mdl, lm_target[None], (H, W), prep.landmark_config(landmark_config), visible=lm_weights,
        embedding=prep.embedding,
    )  # fmt: skip
    timings["landmarks"] = time.perf_counter() - t0
    history: dict[str, list[float]] = {"landmarks": list(lf.history)}
    warnings: list[str] = []
    yaw = _ypr(lf.params.rotation[0])[0]
    if abs(yaw) > EXTREME_YAW:
        warnings.append(
            f"extreme pose: |yaw| = {abs(yaw):.0f} deg > {EXTREME_YAW:.0f}; the fit is unreliable "
            "(half the face is hidden and the landmarks are poorly defined)"
        )
    f = lf.params.focal
    K_full = intrinsics(f, f, W / 2.0, H / 2.0)[0]
    params = lf.params
    albedo = None
    if photometric:
        cr = crop_face(img.to(mdl.dtype), lm, K_full, cfg.resolution, cfg.crop_scale)
        t0 = time.perf_counter()
        ph = fit_photometric(
            mdl, cr.image, cr.to_crop(lm_target)[None], lf.params, cr.K, lf.landmark_vertices,
            cfg, target_valid=cr.valid, landmark_weights=lm_weights,
            landmark_points=lf.landmark_points,
        )  # fmt: skip
        timings["photometric"] = time.perf_counter() - t0
        timings.update({f"stage_{k}": v for k, v in ph.stage_seconds.items()})
        warnings += ph.warnings
        for rec in ph.history:
            history.setdefault(str(rec["stage"]), []).append(float(rec["loss"]))
        params = ph.params
        params.focal = ph.K[:, 0, 0] / cr.scale
        K_full = intrinsics(params.focal, params.focal, W / 2.0, H / 2.0)[0]
        albedo = ph.vertex_albedo[0]
    else:
        from ..render.shading import sh_ambient
        from .photometric import estimate_light, skin_vertex_mask, srgb_to_linear

        tgt = srgb_to_linear(img.to(mdl.dtype).permute(0, 2, 3, 1))
        colour, light = estimate_light(
            mdl, params, K_full[None].to(mdl.dtype), tgt, skin_vertex_mask(mdl)
        )
        params.light = (
            light
            if bool(torch.isfinite(light).all())
            else sh_ambient(1.0, 1, 3, dtype=mdl.dtype, device=mdl.device)
        )
        albedo = colour[0][None].expand(mdl.n_vertices, 3)
    timings["total"] = time.perf_counter() - t_all
    res = package_result(
        mdl,
        img,
        lm,
        params,
        K_full,
        lf.landmark_vertices[0],
        albedo,
        history,
        timings,
        warnings,
        src,
        landmark_points=lf.landmark_points,
    )
    res.timings["total"] = time.perf_counter() - t_all
    return res


__all__ = [
    "EXTREME_YAW",
    "MIN_FACE_PX",
    "FaceCrop",
    "PreparedPhoto",
    "check_face_size",
    "crop_box",
    "crop_image",
    "crop_intrinsics",
    "crop_face",
    "detect_landmarks",
    "fast_mode",
    "fit",
    "package_result",
    "prepare_photo",
    "prepare_photos",
    "unwrap_texture",
]
