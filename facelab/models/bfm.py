"""Basel Face Model loaders: BFM 2009 (``01_MorphableModel.mat``) and BFM 2017 (``.h5``).

Neither model may be redistributed: each user registers at the University of Basel and puts
the file in a data directory (``<data>/bfm2009/01_MorphableModel.mat``,
``<data>/bfm2017/model2017-1_bfm_nomouth.h5``) or passes its path to
``facelab.models.load(path)``.

**BFM 2009** (MATLAB v5 ``.mat``, read with :func:`scipy.io.loadmat`)::

    shapeMU (3V, 1)   mean shape, coordinates interleaved x1 y1 z1 x2 ..., micrometres
    shapePC (3V, K)   orthonormal principal components (columns)
    shapeEV (K, 1)    per-component standard deviations (the model's own sampler draws
                      shape = shapeMU + shapePC @ (alpha * shapeEV), alpha ~ N(0, I))
    texMU, texPC, texEV   the same for per-vertex RGB colour in 0..255
    tl (F, 3)         triangles, 1-based
    segbin (V, 4)     optional segment masks (kept as regions segment_1 .. segment_4)

facelab converts to millimetres (``1e-3``), to a basis at one std
(``identity_basis[k] = shapePC[:, k] * shapeEV[k]``), and colours to ``[0, 1]``
(``albedo_mean = texMU / 255``, ``albedo_basis = texPC * texEV / 255``). The BFM has no
expression model and no landmark list in the file: pass ``landmarks=`` (68 vertex indices) if
you have them.

**BFM 2017** (statismo HDF5, read with ``h5py``)::

    /shape/model/mean (3V,)  /pcaBasis (3V, K)  /pcaVariance (K,)     millimetres
    /shape/representer/points (3, V)  /cells (3, F) 0-based triangles
    /expression/model/...   a second PCA model (expressions, standard-normal weights)
    /color/model/...        per-vertex RGB in [0, 1]

statismo stores ``pcaBasis`` with orthonormal columns; facelab scales them by
``sqrt(pcaVariance)``. (If a file's columns already have norm ``sqrt(variance)`` it is used
as is.) The expression mean, when non-zero, is added to the shape mean.

Frames: both Basel models are y up with the face looking down +z, which is facelab's model
space; the coordinates are kept (not re-centred).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import BackendUnavailable, ModelFormatError
from .morphable import MorphableModel, mirror_symmetry

LICENSE = "Basel Face Model license: non-commercial research use, University of Basel"


def _interleaved_basis(pc: np.ndarray, V: int) -> np.ndarray:
    """``(3V, K)`` columns (x1 y1 z1 x2 ...) -> ``(K, V, 3)``."""
    return np.ascontiguousarray(pc.T.reshape(pc.shape[1], V, 3))


def _landmarks(landmarks, V: int):
    if landmarks is None:
        return None
    lm = np.asarray(landmarks, dtype=np.int64).reshape(-1)
    if lm.size and (lm.min() < 0 or lm.max() >= V):
        raise ModelFormatError(f"landmarks must be vertex indices in [0, {V})")
    return torch.from_numpy(lm)


def load_bfm2009(path: str | Path, landmarks=None) -> MorphableModel:
    """BFM 2009 from ``01_MorphableModel.mat`` (see the module doc for the conversion)."""
    from scipy.io import loadmat

    path = Path(path)
    try:
        m = loadmat(str(path))
    except (ValueError, OSError, TypeError, NotImplementedError) as e:
        raise ModelFormatError(f"{path}: not a readable MATLAB .mat file ({e})") from None
    need = ("shapeMU", "shapePC", "shapeEV", "tl")
    missing = [k for k in need if k not in m]
    if missing:
        raise ModelFormatError(
            f"{path}: missing {missing}; expected the BFM 2009 01_MorphableModel.mat layout"
        )
    mu = np.asarray(m["shapeMU"], dtype=np.float64).reshape(-1)
    if mu.size % 3:
        raise ModelFormatError(f"{path}: shapeMU has {mu.size} entries, not a multiple of 3")
    V = mu.size // 3
    pc = np.asarray(m["shapePC"], dtype=np.float64)
    ev = np.asarray(m["shapeEV"], dtype=np.float64).reshape(-1)
    if pc.shape[0] != 3 * V or pc.shape[1] != ev.size:
        raise ModelFormatError(f"{path}: shapePC {pc.shape} does not match shapeMU/shapeEV")
    scale = 1e-3  # micrometres -> millimetres
    mean = mu.reshape(V, 3) * scale
    id_basis = _interleaved_basis(pc * ev[None, :], V) * scale
    tl = np.asarray(m["tl"]).astype(np.int64)
    if tl.ndim != 2 or tl.shape[1] != 3 or tl.min() < 1 or tl.max() > V:
        raise ModelFormatError(f"{path}: tl must be (F, 3) 1-based triangle indices")
    faces = tl - 1
    albedo_mean = albedo_basis = albedo_std = None
    if all(k in m for k in ("texMU", "texPC", "texEV")):
        tmu = np.asarray(m["texMU"], dtype=np.float64).reshape(V, 3) / 255.0
        tpc = np.asarray(m["texPC"], dtype=np.float64)
        tev = np.asarray(m["texEV"], dtype=np.float64).reshape(-1)
        albedo_mean = tmu
        albedo_basis = _interleaved_basis(tpc * tev[None, :], V) / 255.0
        albedo_std = tev / 255.0
    regions = {"face": np.ones(V, dtype=bool)}
    if "segbin" in m:
        seg = np.asarray(m["segbin"])
        if seg.shape[0] == V:
            for j in range(seg.shape[1]):
                regions[f"segment_{j + 1}"] = seg[:, j] > 0
    return MorphableModel(
        mean=torch.from_numpy(mean.astype(np.float32)),
        faces=torch.from_numpy(faces),
        identity_basis=torch.from_numpy(id_basis.astype(np.float32)),
        identity_std=torch.from_numpy((ev * scale).astype(np.float32)),
        expression_basis=None,
        expression_kind="pca",
        albedo_mean=None
        if albedo_mean is None
        else torch.from_numpy(albedo_mean.astype(np.float32)),
        albedo_basis=None
        if albedo_basis is None
        else torch.from_numpy(albedo_basis.astype(np.float32)),
        albedo_std=None if albedo_std is None else torch.from_numpy(albedo_std.astype(np.float32)),
        landmarks=_landmarks(landmarks, V),
        regions=regions,
        symmetry=torch.from_numpy(mirror_symmetry(mean, center_x=None)),
        name="bfm2009",
        units="mm",
        license=LICENSE,
        source=f"Basel Face Model 2009 ({path.name})",
    )


def _h5_pca(f, group: str, path: Path, V: int | None):
    g = f.get(f"{group}/model")
    if g is None:
        return None
    try:
        mean = np.asarray(g["mean"], dtype=np.float64).reshape(-1)
        basis = np.asarray(g["pcaBasis"], dtype=np.float64)
        var = np.asarray(g["pcaVariance"], dtype=np.float64).reshape(-1)
    except KeyError as e:
        raise ModelFormatError(f"{path}: /{group}/model lacks {e}") from None
    n = mean.size // 3 if V is None else V
    if basis.shape == (var.size, 3 * n):  # stored transposed
        basis = basis.T
    if basis.shape != (3 * n, var.size) or mean.size != 3 * n:
        raise ModelFormatError(
            f"{path}: /{group}/model pcaBasis {basis.shape} does not match mean "
            f"({mean.size},) and pcaVariance ({var.size},)"
        )
    std = np.sqrt(np.maximum(var, 0.0))
    norms = np.linalg.norm(basis, axis=0)
    if np.allclose(norms, 1.0, rtol=1e-3):
        scaled = basis * std[None, :]
    elif np.allclose(norms, std, rtol=1e-3):
        scaled = basis
    else:
        raise ModelFormatError(
            f"{path}: /{group}/model pcaBasis columns are neither orthonormal nor scaled by "
            "sqrt(pcaVariance)"
        )
    return mean.reshape(n, 3), _interleaved_basis(scaled, n), std


def load_bfm2017(path: str | Path, landmarks=None) -> MorphableModel:
    """BFM 2017 from its statismo ``.h5`` file (see the module doc)."""
    try:
        import h5py
    except ImportError:
        raise BackendUnavailable(
            "reading BFM 2017 needs h5py: pip install h5py (or facelab[models])"
        ) from None
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ModelFormatError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        shape = _h5_pca(f, "shape", path, None)
        if shape is None:
            raise ModelFormatError(f"{path}: no /shape/model group; not a BFM 2017 file")
        mean, id_basis, id_std = shape
        V = mean.shape[0]
        try:
            cells = np.asarray(f["shape/representer/cells"]).astype(np.int64)
        except KeyError:
            raise ModelFormatError(f"{path}: no /shape/representer/cells (triangles)") from None
        faces = cells.T if cells.shape[0] == 3 and cells.shape[1] != 3 else cells
        if faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= V:
            raise ModelFormatError(f"{path}: cells must be 0-based triangles (3, F)")
        expr = _h5_pca(f, "expression", path, V)
        color = _h5_pca(f, "color", path, V)
    if expr is not None:
        emean, ex_basis, _ = expr
        mean = mean + emean
    else:
        ex_basis = np.zeros((0, V, 3))
    albedo_mean = albedo_basis = albedo_std = None
    if color is not None:
        albedo_mean, albedo_basis, albedo_std = color
    f32 = np.float32

    def t(x):
        return None if x is None else torch.from_numpy(np.asarray(x, dtype=f32))

    return MorphableModel(
        mean=t(mean),
        faces=torch.from_numpy(np.ascontiguousarray(faces)),
        identity_basis=t(id_basis),
        identity_std=t(id_std),
        expression_basis=t(ex_basis),
        expression_kind="pca",
        albedo_mean=t(albedo_mean),
        albedo_basis=t(albedo_basis),
        albedo_std=t(albedo_std),
        landmarks=_landmarks(landmarks, V),
        regions={"face": np.ones(V, dtype=bool)},
        symmetry=torch.from_numpy(mirror_symmetry(mean, center_x=None)),
        name="bfm2017",
        units="mm",
        license=LICENSE,
        source=f"Basel Face Model 2017 ({path.name})",
    )


__all__ = ["load_bfm2009", "load_bfm2017"]
