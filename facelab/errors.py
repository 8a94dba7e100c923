"""Exceptions raised by facelab.

Every error facelab raises on bad input derives from :class:`FacelabError`, and its message
says what went wrong *and what to do about it*. Catch the specific types when a script
should react (e.g. skip photos with :class:`NoFaceFound`).
"""

from __future__ import annotations


class FacelabError(Exception):
    """Base class of all facelab errors."""


class InvalidInput(FacelabError, ValueError):
    """An argument has the wrong shape, dtype, range, or contains NaN/Inf."""


class AssetMissing(FacelabError, FileNotFoundError):
    """A model or weight file is not in any data directory; the message says how to get it."""


class AssetCorrupt(FacelabError):
    """A file exists but its checksum or format does not match what facelab expects."""


class DownloadError(FacelabError):
    """A download failed (offline, bad URL, HTTP error); the message says what to fetch by hand."""


class ModelFormatError(FacelabError, ValueError):
    """A model file is readable but is not the model format it claims to be."""


class ImageReadError(FacelabError, ValueError):
    """An image file is unreadable, empty, or not an image."""


class NoFaceFound(FacelabError):
    """No face was detected in an image."""


class MultipleFacesFound(FacelabError):
    """Several faces were detected and the policy asked for exactly one."""


class BackendUnavailable(FacelabError, ImportError):
    """An optional backend (PyTorch3D, dlib, onnxruntime, face-alignment ...) is not installed."""


class FitDiverged(FacelabError, FloatingPointError):
    """An optimisation produced NaN/Inf; the last finite state is attached as ``.last_good``."""

    def __init__(self, message: str, last_good: object | None = None) -> None:
        super().__init__(message)
        self.last_good = last_good


__all__ = [
    "AssetCorrupt",
    "AssetMissing",
    "BackendUnavailable",
    "DownloadError",
    "FacelabError",
    "FitDiverged",
    "ImageReadError",
    "InvalidInput",
    "ModelFormatError",
    "MultipleFacesFound",
    "NoFaceFound",
]
