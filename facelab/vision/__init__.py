"""Faces in photos: image loading, detection, 68 landmarks, alignment crops, identity.

Heavy backends (dlib, onnxruntime, face-alignment) are imported lazily inside the functions
that need them and raise :class:`~facelab.errors.BackendUnavailable` with an install hint.

Quick start::

    from facelab.vision import load_image, detect_face, align_faces
    img = load_image("photo.jpg")                 # (1, 3, H, W) float in [0, 1], EXIF applied
    face = detect_face(img)                       # dlib HOG + 68 landmarks, offline
    crop = align_faces(img.tensor, face.landmarks[None], "arcface")   # 112x112 + inverse
    enc = load_identity_encoder()                 # dlib ResNet port (offline) or ArcFace
    emb = enc.embed(img.tensor, face.landmarks[None])                 # (1, 128), differentiable
"""

from __future__ import annotations

from . import ibug68, samples
from .align import (
    AlignedCrop,
    align_faces,
    apply_transform,
    crop_transform,
    invert_transform,
    similarity_transform,
    warp_to_crop,
)
from .detect import (
    DETECTOR_NAMES,
    CascadeDetector,
    DlibConfig,
    DlibDetector,
    Face,
    LandmarkDetector,
    detect_face,
    detect_faces,
    dlib_model_path,
    get_detector,
    select_faces,
)
from .ibug68 import landmark_nme, read_pts
from .identity import DlibIdentity, IdentityEncoder, load_identity_encoder, similarity
from .image import Image, load_image, save_image
from .overlay import draw_faces, save_overlay

__all__ = [
    "DETECTOR_NAMES",
    "AlignedCrop",
    "CascadeDetector",
    "DlibConfig",
    "DlibDetector",
    "DlibIdentity",
    "Face",
    "IdentityEncoder",
    "Image",
    "LandmarkDetector",
    "align_faces",
    "apply_transform",
    "crop_transform",
    "detect_face",
    "detect_faces",
    "dlib_model_path",
    "draw_faces",
    "get_detector",
    "ibug68",
    "invert_transform",
    "landmark_nme",
    "load_identity_encoder",
    "load_image",
    "read_pts",
    "samples",
    "save_image",
    "save_overlay",
    "select_faces",
    "similarity",
    "similarity_transform",
    "warp_to_crop",
]
