"""``load(name_or_path)`` and ``available()``: every model facelab can read, by name or file.

=================  ===========================================  ===================================
name               source (files looked up in the data dirs)    license
=================  ===========================================  ===================================
builtin            built by facelab's own code (synthetic)      MIT
ict                ``ict-facekit/FaceXModel/*.obj[.gz]``        MIT
ict-face           ICT, vertices 0-11247 (face, head, neck)     MIT
ict-face-narrow    ICT, vertices 0-9408 (face area)             MIT
sfm                ``sfm-eos/sfm_shape_3448.bin`` + eos-py      non-commercial (Univ. of Surrey)
bfm2009            ``bfm2009/01_MorphableModel.mat``            BFM license (Univ. of Basel)
bfm2017            ``bfm2017/model2017-1_bfm_nomouth.h5``       BFM license (Univ. of Basel)
flame              ``flame/generic_model.pkl`` (or ``.npz``)    FLAME license (MPI-IS)
=================  ===========================================  ===================================

A path is dispatched on its suffix: ``.npz`` (a facelab model file written by
:meth:`facelab.models.morphable.MorphableModel.save`, or a FLAME ``.npz``), ``.mat`` (BFM 2009), ``.h5`` (BFM 2017),
``.pkl`` (FLAME, read by a restricted unpickler), ``.bin`` (SFM through eos-py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import AssetMissing, InvalidInput, ModelFormatError
from ._files import asset_present
from .morphable import MorphableModel

# name -> (title, source, license, (asset, probe file) or None)
_MODELS: dict[str, tuple[str, str, str, tuple[str, str] | None]] = {
    "builtin": (
        "facelab built-in synthetic head",
        "facelab.models.builtin (no download)",
        "MIT",
        None,
    ),
    "ict": (
        "ICT Face Model Light (full: face, head, mouth, teeth, eyes)",
        "ICT-VGL/ICT-FaceKit FaceXModel",
        "MIT",
        ("ict-facekit", "FaceXModel/generic_neutral_mesh.obj"),
    ),
    "ict-face": (
        "ICT Face Model Light, face + head + neck (vertices 0-11247)",
        "ICT-VGL/ICT-FaceKit FaceXModel",
        "MIT",
        ("ict-facekit", "FaceXModel/generic_neutral_mesh.obj"),
    ),
    "ict-face-narrow": (
        "ICT Face Model Light, face area (vertices 0-9408)",
        "ICT-VGL/ICT-FaceKit FaceXModel",
        "MIT",
        ("ict-facekit", "FaceXModel/generic_neutral_mesh.obj"),
    ),
    "sfm": (
        "Surrey Face Model 3448 (shape + 6 expression blendshapes), via eos-py",
        "patrikhuber/eos share/",
        "non-commercial use only (University of Surrey)",
        ("sfm-eos", "sfm_shape_3448.bin"),
    ),
    "bfm2009": (
        "Basel Face Model 2009",
        "faces.dmi.unibas.ch (registration required)",
        "BFM license: non-commercial, University of Basel",
        ("bfm2009", "01_MorphableModel.mat"),
    ),
    "bfm2017": (
        "Basel Face Model 2017 (with expressions)",
        "faces.dmi.unibas.ch/bfm/bfm2017.html (registration required)",
        "BFM license: non-commercial, University of Basel",
        ("bfm2017", "model2017-1_bfm_nomouth.h5"),
    ),
    "flame": (
        "FLAME 2020 (linear part: shape + expression)",
        "flame.is.tue.mpg.de (registration required)",
        "FLAME license: non-commercial, MPI-IS",
        ("flame", "generic_model.pkl"),
    ),
}


def _probe(name: str) -> Path | None:
    spec = _MODELS[name][3]
    if spec is None:
        return None
    asset, rel = spec
    p = asset_present(asset, rel)
    if p is None and name == "flame":
        p = asset_present("flame", "generic_model.npz")
    if p is None and name == "bfm2017":
        p = asset_present("bfm2017", "model2017-1_face12_nomouth.h5")
    return p


def available() -> list[dict[str, Any]]:
    """Every known model: ``name, title, source, license, present, location``."""
    out = []
    for name, (title, source, lic, spec) in _MODELS.items():
        p = _probe(name)
        present = spec is None or p is not None
        note = ""
        if name == "sfm":
            import importlib.util

            if importlib.util.find_spec("eos") is None:
                note = "needs eos-py: pip install eos-py"
        out.append(
            {
                "name": name,
                "title": title,
                "source": source,
                "license": lic,
                "present": present,
                "location": str(p) if p is not None else None,
                "note": note,
            }
        )
    return out


def _need(name: str) -> Path:
    p = _probe(name)
    if p is not None:
        return p
    asset, rel = _MODELS[name][3]  # type: ignore[misc]
    from .. import data

    if asset in data.registry():
        from ._files import asset_file

        return asset_file(asset, rel)  # raises AssetMissing with fetch instructions
    title, source, lic, _ = _MODELS[name]
    where = "\n".join(f"    {d / asset / rel}" for d in data.data_dirs())
    raise AssetMissing(
        f"model {name!r} ({title}) is not installed and facelab cannot download it: "
        f"register and download it from {source} ({lic}), then save it as one of:\n{where}\n"
        f"  (set FACELAB_DATA to a folder holding {asset}/{rel}), or pass the file's path to "
        "facelab.models.load(path)."
    )


def load(
    name_or_path: str | os.PathLike,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    **kw: Any,
) -> MorphableModel:
    """Load a model by name (see the table in the module doc) or from a file path.

    ``device`` and ``dtype`` place every tensor of the returned model (floating tensors are
    cast to ``dtype``; index tensors keep their integer type), e.g.
    ``load("builtin", device="cuda", dtype=torch.float64)``. Other keyword arguments go to the
    specific loader (e.g. ``cache=False`` or ``progress=True`` for ICT, ``landmarks=...`` for
    FLAME).
    """
    key = str(name_or_path)
    model: MorphableModel
    if isinstance(name_or_path, str) and key in _MODELS:
        if key == "builtin":
            from .builtin import build_builtin

            model = build_builtin(dtype=dtype or torch.float32)  # ~25 ms, no cache needed
            dtype = None
        elif key.startswith("ict"):
            from .ict import load_ict

            model = load_ict(key, **kw)
        elif key == "sfm":
            from .sfm import load_sfm

            _need("sfm")
            model = load_sfm(**kw)
        elif key == "bfm2009":
            from .bfm import load_bfm2009

            model = load_bfm2009(_need(key), **kw)
        elif key == "bfm2017":
            from .bfm import load_bfm2017

            model = load_bfm2017(_need(key), **kw)
        elif key == "flame":
            from .flame import load_flame

            model = load_flame(_need(key), **kw)
        else:  # pragma: no cover
            raise InvalidInput(key)
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise InvalidInput(
                f"unknown model {key!r}: not a model name ({', '.join(_MODELS)}) nor a file"
            )
        model = _load_path(path, **kw)
    if dtype is not None or device is not None:
        model = model.to(device=device, dtype=dtype)
    return model


def _load_path(path: Path, **kw: Any) -> MorphableModel:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
        if "__meta__" in files:
            return MorphableModel.load(path)
        from .flame import load_flame

        return load_flame(path, **kw)
    if suffix == ".mat":
        from .bfm import load_bfm2009

        return load_bfm2009(path, **kw)
    if suffix in (".h5", ".hdf5"):
        from .bfm import load_bfm2017

        return load_bfm2017(path, **kw)
    if suffix == ".pkl":
        from .flame import load_flame

        return load_flame(path, **kw)
    if suffix == ".bin":
        from .sfm import load_sfm

        return load_sfm(shape_path=path, **kw)
    raise ModelFormatError(
        f"{path}: unknown model file type {suffix!r}; expected .npz, .mat, .h5, .pkl or .bin"
    )


def model_names() -> list[str]:
    """The names :func:`load` accepts."""
    return list(_MODELS)


__all__ = ["available", "load", "model_names"]
