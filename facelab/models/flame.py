"""FLAME loader (the linear part: template, shape and expression bases).

FLAME (Li et al., "Learning a model of facial shape and expression from 4D scans", SIGGRAPH
Asia 2017) is distributed after registration (non-commercial license, MPI-IS) as
``generic_model.pkl``: a Python-2 pickle of a dict whose arrays are numpy arrays, ``chumpy``
objects, or ``scipy.sparse`` matrices::

    v_template    (5023, 3)        template mesh, metres
    f             (9976, 3)        triangles, 0-based
    shapedirs     (5023, 3, 400)   first 300 identity ("shape") components, last 100 expression
    posedirs      (5023, 3, 36)    pose-corrective blendshapes
    J_regressor   (5, 5023)        sparse joint regressor
    kintree_table (2, 5)           kinematic tree
    weights       (5023, 5)        linear blend skinning weights

The components are already scaled so the weights are standard-normal (``identity_std`` is
ones). A ``.npz`` with the same keys (as some re-distributions use) is read with
``np.load(allow_pickle=False)``.

**Security**: a pickle can run arbitrary code when loaded. facelab never calls
``pickle.load`` on a model file; :class:`RestrictedUnpickler` resolves only the globals needed
to rebuild numpy arrays, ``chumpy.ch.Ch`` (mapped to an inert stand-in that keeps its stored
array ``x``) and ``scipy.sparse`` csc/csr matrices (mapped to a stand-in rebuilt from
``data/indices/indptr``); any other global (``os.system``, ``builtins.eval`` ...) raises
:class:`~facelab.errors.ModelFormatError` before anything runs. chumpy need not be installed.

**Scope**: facelab keeps FLAME's linear model (``mean + shape + expression``). The jaw, neck
and eye articulation (linear blend skinning with ``J_regressor``, ``weights``, ``posedirs``)
is out of scope for now; those arrays are kept in ``model.extras`` for users who want them.
FLAME's 68 landmarks are barycentric points on triangles (``landmark_embedding.npy``), not
vertices; pass ``landmarks=`` (68 vertex indices) to attach an approximation.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInput, ModelFormatError
from .morphable import MorphableModel, mirror_symmetry

LICENSE = "FLAME license: non-commercial scientific research use, MPI-IS"


class _ChStandIn:
    """Inert replacement for ``chumpy.ch.Ch``: keeps the pickled state, exposes ``x``."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slotstate)
            state = state[0] or {}
        if not isinstance(state, dict):
            raise ModelFormatError("chumpy object with an unexpected pickled state")
        self.__dict__["_state"] = state

    def array(self) -> np.ndarray:
        st = self.__dict__.get("_state", {})
        if "x" not in st:
            raise ModelFormatError(
                "a chumpy object in the pickle has no stored array 'x' (a derived chumpy "
                "expression); re-export the model with plain numpy arrays"
            )
        return np.asarray(_plain(st["x"]))


class _SparseStandIn:
    """Inert replacement for scipy.sparse csc/csr matrices (rebuilt from their arrays)."""

    fmt = "csc"

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:
            state = state[0] or {}
        if not isinstance(state, dict):
            raise ModelFormatError("sparse matrix with an unexpected pickled state")
        self.__dict__["_state"] = state

    def array(self) -> np.ndarray:
        import scipy.sparse as sp

        st = self.__dict__["_state"]
        try:
            shape = tuple(st.get("_shape") or st["shape"])
            ctor = sp.csc_matrix if self.fmt == "csc" else sp.csr_matrix
            mat = ctor((st["data"], st["indices"], st["indptr"]), shape=shape)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFormatError(f"sparse matrix in the pickle is malformed ({e})") from None
        return mat.toarray()


class _CsrStandIn(_SparseStandIn):
    fmt = "csr"


_STANDINS = (_ChStandIn, _SparseStandIn, _CsrStandIn)


def _safe_reconstructor(cls, base, state):
    """``copyreg._reconstructor`` restricted to the stand-ins (protocol 0/1 pickles)."""
    if cls not in _STANDINS or base is not object or state is not None:
        raise ModelFormatError("pickle tries to reconstruct a disallowed object")
    return cls.__new__(cls)


def _safe_encode(obj, encoding="latin1"):
    """``_codecs.encode`` as used by protocol-2 pickles of bytes (str -> bytes only)."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise ModelFormatError("pickle uses _codecs.encode in an unexpected way")
    return obj.encode("latin1")


def _allowed() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray as ma
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core import multiarray as ma
    allowed: dict[tuple[str, str], Any] = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = ma._reconstruct
        allowed[(mod, "scalar")] = ma.scalar
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    for mod in ("chumpy.ch", "chumpy"):
        allowed[(mod, "Ch")] = _ChStandIn
    for mod in ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse"):
        allowed[(mod, "csc_matrix")] = _SparseStandIn
    for mod in ("scipy.sparse.csr", "scipy.sparse._csr", "scipy.sparse"):
        allowed[(mod, "csr_matrix")] = _CsrStandIn
    for mod in ("copy_reg", "copyreg"):
        allowed[(mod, "_reconstructor")] = _safe_reconstructor
    for mod in ("__builtin__", "builtins"):
        allowed[(mod, "object")] = object
        allowed[(mod, "set")] = set
        allowed[(mod, "frozenset")] = frozenset
    allowed[("_codecs", "encode")] = _safe_encode
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that only rebuilds numpy arrays, chumpy ``Ch`` and scipy sparse matrices.

    ``find_class`` is the only way a pickle can reach code; it returns inert stand-ins for
    chumpy/scipy classes and raises :class:`ModelFormatError` for anything else.
    """

    def __init__(self, file, **kw):
        super().__init__(file, encoding="latin1", **kw)
        self._allowed = _allowed()

    def find_class(self, module: str, name: str):
        obj = self._allowed.get((module, name))
        if obj is None:
            raise ModelFormatError(
                f"refusing to load {module}.{name} from a pickle: only numpy arrays, chumpy "
                "arrays and scipy sparse matrices are allowed in a model file"
            )
        return obj

    def persistent_load(self, pid):
        raise ModelFormatError("pickle uses persistent ids; refusing to load it")


def _plain(x: Any) -> Any:
    if isinstance(x, (_ChStandIn, _SparseStandIn)):
        return x.array()
    return x


def restricted_load(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; any failure is a ModelFormatError."""
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except ModelFormatError:
        raise
    except Exception as e:  # malformed pickles raise many types
        raise ModelFormatError(f"not a readable model pickle ({type(e).__name__}: {e})") from None


def read_flame_arrays(path: str | Path) -> dict[str, Any]:
    """The FLAME dict from ``.pkl`` (restricted) or ``.npz`` (no pickle) as plain arrays."""
    path = Path(path)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise ModelFormatError(f"{path}: not a readable .npz ({e})") from None
    obj = restricted_load(path.read_bytes())
    if not isinstance(obj, dict):
        raise ModelFormatError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {str(k): _plain(v) for k, v in obj.items()}


def load_flame(
    path: str | Path,
    n_shape: int | None = None,
    n_expression: int | None = None,
    landmarks=None,
) -> MorphableModel:
    """FLAME's linear model from ``generic_model.pkl`` or an ``.npz`` with the same keys.

    Args:
        n_shape: number of identity components at the front of ``shapedirs`` (default 300
            when ``shapedirs`` has 400 components, as in FLAME 2020/2023).
        n_expression: expression components after them (default: all the rest).
        landmarks: optional ``(68,)`` vertex indices.
    """
    path = Path(path)
    d = read_flame_arrays(path)
    for k in ("v_template", "f", "shapedirs"):
        if k not in d:
            raise ModelFormatError(f"{path}: missing {k!r}; not a FLAME model file")
    v = np.asarray(d["v_template"], dtype=np.float64)
    faces = np.asarray(d["f"]).astype(np.int64)
    sd = np.asarray(d["shapedirs"], dtype=np.float64)
    V = v.shape[0]
    if v.shape != (V, 3) or sd.ndim != 3 or sd.shape[:2] != (V, 3):
        raise ModelFormatError(
            f"{path}: v_template {v.shape} / shapedirs {sd.shape} are not (V, 3) / (V, 3, K)"
        )
    K = sd.shape[2]
    if n_shape is None:
        if K != 400:
            raise InvalidInput(
                f"{path}: shapedirs has {K} components; say how many are identity with n_shape="
            )
        n_shape = 300
    if not 0 <= n_shape <= K:
        raise InvalidInput(f"n_shape={n_shape} outside [0, {K}]")
    n_expression = K - n_shape if n_expression is None else n_expression
    if n_shape + n_expression > K:
        raise InvalidInput(f"n_shape + n_expression = {n_shape + n_expression} > {K}")
    id_basis = np.ascontiguousarray(sd[:, :, :n_shape].transpose(2, 0, 1))
    ex_basis = np.ascontiguousarray(sd[:, :, n_shape : n_shape + n_expression].transpose(2, 0, 1))
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= V:
        raise ModelFormatError(f"{path}: f must be (F, 3) 0-based triangles")
    extras = {}
    for k in ("posedirs", "J_regressor", "kintree_table", "weights"):
        if k in d and isinstance(d[k], np.ndarray) and d[k].dtype != object:
            arr = d[k]
            if k == "kintree_table":
                arr = arr.astype(np.int64)
            extras[k] = torch.from_numpy(np.ascontiguousarray(arr))
    lm = None
    if landmarks is not None:
        lm = torch.as_tensor(np.asarray(landmarks, dtype=np.int64))
    return MorphableModel(
        mean=torch.from_numpy(v.astype(np.float32)),
        faces=torch.from_numpy(faces),
        identity_basis=torch.from_numpy(id_basis.astype(np.float32)),
        expression_basis=torch.from_numpy(ex_basis.astype(np.float32)),
        expression_kind="pca",
        expression_names=[],
        landmarks=lm,
        regions={"face": np.ones(V, dtype=bool)},
        symmetry=torch.from_numpy(mirror_symmetry(v, center_x=None)),
        extras=extras,
        name="flame",
        units="m",
        license=LICENSE,
        source=f"FLAME ({path.name}); linear part only",
        meta={"articulation": "not applied (jaw/neck/eyes LBS out of scope)"},
    )


__all__ = ["RestrictedUnpickler", "load_flame", "read_flame_arrays", "restricted_load"]
