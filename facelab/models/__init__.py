"""3D morphable face models: the :class:`MorphableModel` class, loaders, and the built-in model.

Short API::

    from facelab.models import load, available, MorphableModel, FaceParams

    model = load("builtin")               # synthetic, no download
    model = load("ict-face")              # ICT-FaceKit face + head region (needs the asset)
    params = model.sample(4, generator=torch.Generator().manual_seed(0))
    verts = model.vertices(params)        # (4, V, 3) model space
    cam = model.posed_vertices(params)    # (4, V, 3) camera space

See :mod:`facelab.models.morphable` for the formula and :mod:`facelab.models.loaders` for the
list of models and where their files come from.
"""

from __future__ import annotations

from .loaders import available, load
from .morphable import MorphableModel
from .params import FaceParams

__all__ = ["FaceParams", "MorphableModel", "available", "load"]
