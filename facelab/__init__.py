"""facelab: monocular 3D face reconstruction, taught by an executable book.

Sub-packages (a lower layer never imports a higher one)::

    geometry  rotations, cameras, meshes, alignment
    models    3D morphable models and their loaders, albedo
    render    differentiable rasterization and shading
    vision    images, detection, landmarks, identity networks
    world     the synthetic photo simulator
    fit       analysis-by-synthesis fitting
    metrics   evaluation
    viz       plotly figures and widgets

Base modules every layer may use: ``errors`` (exception types), ``color`` (sRGB encoding).

Conventions (the full text is in the book's appendix "Conventions"):

* Tensors are batch-first. Images passed between modules are ``(B, 3, H, W)`` float RGB in
  ``[0, 1]``; render buffers (rasterizer output, interpolated attributes) are channel-last
  ``(B, H, W, C)`` as in nvdiffrast.
* Camera: OpenCV — x right, y down, z forward (into the scene); pixel ``(u, v)`` has its centre
  at ``(u + 0.5, v + 0.5)``; the image covers ``[0, W] x [0, H]``.
* Model space: right-handed, y up, +z out of the face (the face looks down +z), in the model's
  own units (``model.units``); metrics report millimetres.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: The sub-packages, imported on first use: ``import facelab; facelab.models.load("ict")``
#: works without importing torch-heavy modules that a script does not use.
SUBPACKAGES = (
    "geometry", "models", "render", "vision", "world", "fit", "metrics", "viz", "data",
    "errors", "color", "exercises",
)  # fmt: skip

__all__ = ["__version__", *SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'facelab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(SUBPACKAGES))
