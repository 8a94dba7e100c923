"""Builders of tiny model files in the published layouts (BFM 2009 .mat, BFM 2017 .h5, FLAME
.pkl/.npz) and a tiny hand-checkable MorphableModel, for tests/test_models*.py."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import torch

from facelab.models import MorphableModel

# A square pyramid-ish patch: 5 vertices, 4 triangles, mirror-symmetric in x.
TINY_VERTS = np.array(
    [[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.0, -1.0, 0.5], [0.0, 0.0, 1.0]]
)
TINY_FACES = np.array([[0, 3, 4], [3, 1, 4], [1, 2, 4], [2, 0, 4]])


def tiny_model(dtype: torch.dtype = torch.float64) -> MorphableModel:
    rng = np.random.default_rng(0)
    V = len(TINY_VERTS)
    idb = rng.standard_normal((2, V, 3))
    exb = rng.standard_normal((1, V, 3))
    uvs = np.array([[0, 0], [1, 0], [0.5, 1], [0.5, 0], [0.5, 0.5], [0.0, 1.0]])
    uv_faces = np.array([[0, 3, 4], [3, 1, 4], [1, 2, 4], [5, 0, 4]])
    return MorphableModel(
        mean=torch.tensor(TINY_VERTS, dtype=dtype),
        faces=torch.tensor(TINY_FACES),
        identity_basis=torch.tensor(idb, dtype=dtype),
        identity_std=torch.tensor([2.0, 1.0], dtype=dtype),
        expression_basis=torch.tensor(exb, dtype=dtype),
        expression_names=["smile"],
        uvs=torch.tensor(uvs, dtype=dtype),
        uv_faces=torch.tensor(uv_faces),
        landmarks=torch.tensor([4, 2]),
        regions={"right": torch.tensor([True, False, True, True, True])},
        contour_candidates={"jaw": torch.tensor([0, 3, 1])},
        name="tiny",
        units="mm",
        dtype_=dtype,
    )


# ---------------------------------------------------------------------------------------------
# BFM 2009: 01_MorphableModel.mat (MATLAB v5): shapeMU (3V,1) in micrometres, shapePC (3V,K)
# orthonormal columns, shapeEV (K,1) standard deviations, texMU/texPC/texEV in 0..255,
# tl (F,3) 1-based triangles, segbin (V,4) segment masks.


def grid_mesh(nx: int = 4, ny: int = 3, scale: float = 1.0):
    xs = np.linspace(-1, 1, nx) * scale
    ys = np.linspace(-1, 1, ny) * scale
    X, Y = np.meshgrid(xs, ys)
    Z = (1.0 - 0.3 * X**2 - 0.2 * Y**2) * scale
    verts = np.stack([X, Y, Z], -1).reshape(-1, 3)
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = np.concatenate(
        [np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)]
    )
    return verts, faces


def _orthonormal(n: int, k: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, k)))
    return q


def write_bfm2009(path: Path) -> dict:
    from scipy.io import savemat

    verts, faces = grid_mesh()
    V = len(verts)
    mu = (verts * 1e4).reshape(-1, 1)  # micrometres (1 unit = 1 cm here)
    pc = _orthonormal(3 * V, 3, 1)
    ev = np.array([[3000.0], [2000.0], [1000.0]])
    tex_mu = np.full((3 * V, 1), 128.0)
    tex_pc = _orthonormal(3 * V, 2, 2)
    tex_ev = np.array([[20.0], [10.0]])
    savemat(
        path,
        {
            "shapeMU": mu.astype(np.float32),
            "shapePC": pc.astype(np.float32),
            "shapeEV": ev.astype(np.float32),
            "texMU": tex_mu.astype(np.float32),
            "texPC": tex_pc.astype(np.float32),
            "texEV": tex_ev.astype(np.float32),
            "tl": (faces + 1).astype(np.float64),
            "segbin": np.ones((V, 4), dtype=np.uint8),
        },
    )
    return {"verts_mm": verts * 10.0, "faces": faces, "pc": pc, "ev": ev[:, 0]}


# BFM 2017: model2017-1_bfm_nomouth.h5 (statismo): /shape/model/{mean (3V,), pcaBasis (3V,K)
# orthonormal, pcaVariance (K,)}, /shape/representer/{points (3,V), cells (3,F) 0-based},
# /expression/model/..., /color/model/... (mean in [0,1]); millimetres.


def write_bfm2017(path: Path, prescaled: bool = False) -> dict:
    """``prescaled``: store ``pcaBasis`` already multiplied by sqrt(variance) (some exports)."""
    import h5py

    verts, faces = grid_mesh(scale=50.0)
    V = len(verts)
    pc = _orthonormal(3 * V, 4, 3)
    var = np.array([400.0, 100.0, 25.0, 4.0])
    epc = _orthonormal(3 * V, 2, 4)
    evar = np.array([9.0, 1.0])
    with h5py.File(path, "w") as f:
        f["shape/model/mean"] = verts.reshape(-1).astype(np.float32)
        f["shape/model/pcaBasis"] = (pc * np.sqrt(var) if prescaled else pc).astype(np.float32)
        f["shape/model/pcaVariance"] = var.astype(np.float32)
        f["shape/representer/points"] = verts.T.astype(np.float32)
        f["shape/representer/cells"] = faces.T.astype(np.uint32)
        f["expression/model/mean"] = np.zeros(3 * V, dtype=np.float32)
        f["expression/model/pcaBasis"] = epc.astype(np.float32)
        f["expression/model/pcaVariance"] = evar.astype(np.float32)
        f["color/model/mean"] = np.full(3 * V, 0.5, dtype=np.float32)
        f["color/model/pcaBasis"] = _orthonormal(3 * V, 2, 5).astype(np.float32)
        f["color/model/pcaVariance"] = np.array([0.01, 0.0025], dtype=np.float32)
    return {"verts": verts, "faces": faces, "pc": pc, "var": var, "epc": epc, "evar": evar}


# FLAME: generic_model.pkl, a python-2 pickle of a dict whose arrays are numpy arrays or chumpy
# `Ch` objects (state dict with the array under "x"), J_regressor a scipy.sparse csc_matrix.


def _fake_chumpy(style: str = "reconstructor"):
    """A stand-in ``chumpy.ch.Ch`` that pickles like the real one: protocol-0/1 style
    (``copy_reg._reconstructor``) or protocol-2 style (``NEWOBJ`` + ``__getstate__``)."""
    mod = types.ModuleType("chumpy.ch")
    pkg = types.ModuleType("chumpy")

    class Ch:  # noqa: D401 - mimics chumpy.ch.Ch's pickled form
        def __init__(self, x):
            self.x = np.asarray(x)
            self._dirty_vars = set()

        def __getstate__(self):
            return dict(self.__dict__)

        if style == "reconstructor":

            def __reduce_ex__(self, protocol):
                import copyreg

                return (copyreg._reconstructor, (type(self), object, None), self.__dict__)

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    mod.Ch = Ch
    pkg.ch = mod
    return pkg, mod, Ch


def flame_arrays(n_shape: int = 3, n_expr: int = 2):
    import scipy.sparse as sp

    verts, faces = grid_mesh(scale=0.05)  # metres
    V = len(verts)
    rng = np.random.default_rng(7)
    shapedirs = rng.standard_normal((V, 3, n_shape + n_expr)) * 1e-3
    J = sp.csc_matrix(np.abs(rng.standard_normal((5, V))) / V)
    return {
        "v_template": verts,
        "f": faces.astype(np.uint32),
        "shapedirs": shapedirs,
        "posedirs": rng.standard_normal((V, 3, 36)) * 1e-4,
        "J_regressor": J,
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "weights": np.full((V, 5), 0.2),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def write_flame_pkl(
    path: Path, n_shape: int = 3, n_expr: int = 2, style: str = "reconstructor"
) -> dict:
    arrays = flame_arrays(n_shape, n_expr)
    pkg, mod, Ch = _fake_chumpy(style)
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, mod
    try:
        obj = dict(arrays)
        obj["shapedirs"] = Ch(arrays["shapedirs"])
        obj["v_template"] = Ch(arrays["v_template"])
        with open(path, "wb") as fh:
            pickle.dump(obj, fh, protocol=2)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return arrays


def write_flame_npz(path: Path, n_shape: int = 3, n_expr: int = 2) -> dict:
    arrays = flame_arrays(n_shape, n_expr)
    J = arrays["J_regressor"].toarray()
    np.savez(
        path,
        v_template=arrays["v_template"],
        f=arrays["f"],
        shapedirs=arrays["shapedirs"],
        posedirs=arrays["posedirs"],
        J_regressor=J,
        kintree_table=arrays["kintree_table"],
        weights=arrays["weights"],
    )
    return arrays


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo facelab-pwned > /dev/null",))


def write_malicious_pkl(path: Path) -> None:
    """A pickle that would run ``os.system`` if loaded with plain ``pickle.load``."""
    with open(path, "wb") as fh:
        pickle.dump({"v_template": _Evil()}, fh, protocol=2)
