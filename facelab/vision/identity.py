"""Face identity embeddings behind one interface: dlib's ResNet (offline) or ArcFace.

An :class:`IdentityEncoder` turns a photo plus 68 landmarks into an identity descriptor,
differentiably in the photo: it computes the template's similarity transform from the
landmarks, warps the photo into an aligned crop (:func:`~facelab.vision.align.warp_to_crop`)
and runs a PyTorch network. GANFit's identity loss uses it on rendered images:

.. math:: \\mathcal L_{id} = 1 - \\cos\\big(f(\\mathrm{crop}(I_{render})),\\; f(\\mathrm{crop}(I_{photo}))\\big)

Backends (:func:`load_identity_encoder`):

* ``"dlib"`` -- :class:`DlibIdentity`, facelab's PyTorch port of dlib's face-recognition
  ResNet (128-D, Euclidean distance, same person below 0.6). Pretrained weights ship in
  the ``face_recognition_models`` package, so this runs offline.
* ``"arcface"`` -- :class:`~facelab.vision.arcface.ArcFaceIdentity`, insightface's ArcFace
  (512-D, cosine) loaded from an ONNX file you download (non-commercial weights).
* ``"auto"`` -- ArcFace if its weights are found, else dlib.
"""

from __future__ import annotations

import abc

import torch
import torch.nn as nn

from .._checks import check_shape
from ..errors import AssetMissing, InvalidInput
from .align import AlignedCrop, crop_transform, warp_to_crop


class IdentityEncoder(nn.Module, abc.ABC):
    """Aligned crop -> identity embedding, plus the alignment itself.

    Subclasses set :attr:`name`, :attr:`template`, :attr:`input_size`, :attr:`metric`
    (``"euclidean"`` or ``"cosine"``) and :attr:`threshold`, and implement
    :meth:`crop_features`.
    """

    name: str = "base"
    template: str = "arcface"
    input_size: int = 112
    metric: str = "cosine"
    threshold: float = 0.0

    @abc.abstractmethod
    def crop_features(self, crops: torch.Tensor) -> dict[str, torch.Tensor]:
        """Aligned crops ``(B, 3, S, S)`` RGB in [0, 1] -> dict of feature maps including
        ``"embedding" (B, D)``."""

    def embed_crops(self, crops: torch.Tensor) -> torch.Tensor:
        """Aligned crops ``(B, 3, S, S)`` in [0, 1] -> embeddings ``(B, D)``."""
        return self.crop_features(crops)["embedding"]

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.embed_crops(crops)

    def align(
        self, image: torch.Tensor, landmarks: torch.Tensor, matrix: torch.Tensor | None = None
    ) -> AlignedCrop:
        """Crops for this network from ``image (1|B, 3, H, W)`` and ``landmarks (B, 68, 2)``.

        ``matrix (B, 2, 3)`` overrides the transform (e.g. the photo's, reused on a render).
        """
        check_shape("image", image, (None, 3, None, None))
        if matrix is None:
            if landmarks.dim() == 2:
                landmarks = landmarks[None]
            matrix = crop_transform(landmarks.detach().double(), self.template, self.input_size)
        crops = warp_to_crop(image, matrix.to(image), self.input_size)
        return AlignedCrop(image=crops, matrix=matrix, template=self.template)

    def embed(
        self, image: torch.Tensor, landmarks: torch.Tensor, matrix: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Photo ``(1|B, 3, H, W)`` + landmarks ``(B, 68, 2)`` -> embeddings ``(B, D)``."""
        return self.embed_crops(self.align(image, landmarks, matrix).image)

    def embed_photo(self, image, detector="dlib", policy: str | int = "largest"):
        """Detect faces in a photo (anything ``load_image`` takes) and embed them.

        Returns ``(embeddings (N, D), faces)`` for the faces chosen by ``policy``
        (see :func:`~facelab.vision.detect.select_faces`); raises ``NoFaceFound``.
        """
        from .detect import detect_faces
        from .image import load_image

        img = load_image(image)
        faces = detect_faces(img, detector, policy)
        lm = torch.stack([f.landmarks for f in faces])
        return self.embed(img.tensor, lm), faces

    def features(
        self, image: torch.Tensor, landmarks: torch.Tensor, matrix: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Photo + landmarks -> the network's intermediate maps and ``"embedding"``.

        For content/perceptual losses (GANFit): compare the maps of a render and a photo
        cropped with the *same* matrix.
        """
        return self.crop_features(self.align(image, landmarks, matrix).image)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distance of embeddings ``(B, D)``: Euclidean (dlib) or :math:`1 - \\cos` (ArcFace)."""
        if self.metric == "euclidean":
            return torch.linalg.norm(a - b, dim=-1)
        return 1.0 - similarity(a, b)

    def same_person(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``distance < threshold`` (bool ``(B,)``)."""
        return self.distance(a, b) < self.threshold


def similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity :math:`a \\cdot b / (\\|a\\| \\|b\\|)` of ``(..., D)`` embeddings."""
    return torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-12)


def identity_loss(
    encoder: IdentityEncoder,
    image: torch.Tensor,
    target: torch.Tensor,
    matrix: torch.Tensor,
) -> torch.Tensor:
    """GANFit's identity loss :math:`1 - \\cos(f(\\mathrm{crop}_M(I)), e_{target})` per image.

    Args:
        encoder: an :class:`IdentityEncoder` (frozen).
        image: ``(B, 3, H, W)`` rendered images in [0, 1] (gradients flow to them).
        target: ``(B, D)`` embeddings of the photo (computed once, without gradients).
        matrix: ``(B, 2, 3)`` crop transforms of the photo (``encoder.align(photo, lm).matrix``),
            reused so the render is cropped exactly like the photo.

    Returns:
        ``(B,)`` losses in [0, 2].
    """
    emb = encoder.embed_crops(warp_to_crop(image, matrix.to(image), encoder.input_size))
    return 1.0 - similarity(emb, target.to(emb))


class DlibIdentity(IdentityEncoder):
    """dlib's face-recognition ResNet (PyTorch port), 128-D, on dlib's 150x150 chip.

    The chip transform is dlib's ``get_face_chip_details(shape, 150, 0.25)`` (needs dlib to
    compute; the warp and network are PyTorch). Same person iff Euclidean distance < 0.6.
    """

    name = "dlib"
    template = "dlib"
    input_size = 150
    metric = "euclidean"
    threshold = 0.6

    def __init__(self, path=None):
        super().__init__()
        from .dlib_resnet import load_dlib_face_resnet

        self.net = load_dlib_face_resnet(path)
        self.threshold = round(float(self.net.distance_threshold), 6)

    def crop_features(self, crops: torch.Tensor) -> dict[str, torch.Tensor]:
        check_shape("crops", crops, (None, 3, 150, 150))
        return self.net.features(self.net.preprocess(crops))


def load_identity_encoder(backend: str = "auto", **kwargs) -> IdentityEncoder:
    """An identity encoder by name: ``"dlib"``, ``"arcface"`` or ``"auto"``.

    ``"auto"`` uses ArcFace when its ONNX weights are found
    (:func:`facelab.vision.arcface.find_arcface_onnx`), else the offline dlib port.
    ``kwargs`` go to the encoder (e.g. ``path=`` a weights file).
    """
    if backend == "dlib":
        return DlibIdentity(**kwargs)
    if backend in ("arcface", "auto"):
        from .arcface import ArcFaceIdentity, find_arcface_onnx

        path = kwargs.pop("path", None)
        if path is None:
            try:
                path = find_arcface_onnx()
            except AssetMissing:
                if backend == "arcface":
                    raise
                return DlibIdentity(**kwargs)
        return ArcFaceIdentity(path, **kwargs)
    raise InvalidInput(f"unknown identity backend {backend!r}; use 'dlib', 'arcface' or 'auto'")


__all__ = [
    "DlibIdentity",
    "IdentityEncoder",
    "identity_loss",
    "load_identity_encoder",
    "similarity",
]
