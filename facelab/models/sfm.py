"""Surrey Face Model (SFM, 3448 vertices) through eos-py.

Files of the asset ``"sfm-eos"`` (from the eos project's ``share/`` folder):
``sfm_shape_3448.bin`` (cereal binary: mean, 63 PCA components, triangles, texture coordinates),
``expression_blendshapes_3448.bin`` (6 blendshapes: anger, disgust, fear, happiness, sadness,
surprise), ``ibug_to_sfm.txt`` (iBUG-68 -> vertex), ``sfm_model_contours.json`` (jaw-contour
candidates), ``sfm_reference_symmetry.txt`` (1-based mirror partner of each of the 845 reference vertices).

facelab reads the binary files with eos-py (``pip install eos-py``; an optional dependency).
The model is built as::

    mean               = shape_model.get_mean()                       (V, 3), millimetres
    identity_basis     = shape_model.get_rescaled_pca_basis()          (63, V, 3): U * sqrt(eigenvalue)
    identity_std       = sqrt(shape_model.get_eigenvalues())           (63,)
    expression_basis   = blendshape deformations                       (6, V, 3), weights in [0, 1]

Frame: the SFM is already y up, +z out of the face (the nose tip has the largest z), +x the
face's left (the right eye outer corner, iBUG 36, has x < 0); millimetres. Texture coordinates
are stored with v pointing down (image rows); facelab flips them to OBJ's v up (``v = 1 - v``).

Landmarks: ``ibug_to_sfm.txt`` leaves out the 16 jaw-contour points (iBUG 1-8 and 10-17,
pose-dependent in eos) and the two inner mouth corners (61, 65). facelab fills the contour
points with a **frontal-pose** choice from the model's contour candidates (evenly spaced by
arc length from eye height down to the chin) and the inner mouth corners with the outer ones
(48, 54); ``model.meta["landmarks_filled"]`` lists the filled (0-based) indices.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

from .. import data
from ..errors import BackendUnavailable, ModelFormatError
from ._files import asset_file
from .morphable import MorphableModel, mirror_symmetry

ASSET = "sfm-eos"
LICENSE = (
    "free for non-commercial use only (Surrey Face Model, University of Surrey; cite Huber et "
    "al., VISAPP 2016)"
)
SOURCE = "https://github.com/patrikhuber/eos share/ (commit ce984207)"


def _eos():
    try:
        import eos  # noqa: F401
        import eos.morphablemodel as mm
    except ImportError as e:
        raise BackendUnavailable(
            f"reading the Surrey Face Model needs eos-py ({e}); install it with "
            "`pip install eos-py` (or `pip install facelab[models]`)"
        ) from None
    return mm


def parse_ibug_mapping(text: str) -> dict[int, int]:
    """``ibug_to_sfm.txt`` -> ``{ibug index (1-based): vertex index}``."""
    out: dict[int, int] = {}
    in_map = False
    for line in text.splitlines():
        s = line.split("#", 1)[0].strip()
        if s.startswith("["):
            in_map = s == "[landmark_mappings]"
            continue
        if not in_map or not s:
            continue
        m = re.fullmatch(r"(\d+)\s*=\s*(\d+)", s)
        if m is None:
            raise ModelFormatError(f"ibug_to_sfm.txt: cannot parse line {line!r}")
        out[int(m.group(1))] = int(m.group(2))
    return out


def parse_symmetry(text: str) -> np.ndarray:
    """``sfm_reference_symmetry.txt`` (one 1-based partner per line) -> 0-based ``(V,)``."""
    vals = []
    for line in text.splitlines():
        s = line.split("#", 1)[0].strip()
        if s:
            vals.append(int(s.split()[0]) - 1)
    return np.asarray(vals, dtype=np.int64)


def _fill_contour(mean: np.ndarray, contour: np.ndarray, chin: int, eye_y: float) -> np.ndarray:
    """8 frontal jaw landmarks from ``contour`` (top to bottom), evenly spaced by arc length
    from the candidate at eye height down to (excluding) the chin."""
    start = int(np.argmin(np.abs(mean[contour, 1] - eye_y)))
    pts = np.concatenate([mean[contour[start:]], mean[[chin]]], 0)
    ids = np.concatenate([contour[start:], [chin]])
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    targets = s[-1] * np.arange(8) / 8.0
    return ids[np.abs(s[None, :-1] - targets[:, None]).argmin(1)]


def load_sfm(
    shape_path: str | Path | None = None,
    blendshapes_path: str | Path | None = None,
) -> MorphableModel:
    """The Surrey Face Model from the ``sfm-eos`` asset (or explicit file paths).

    Raises :class:`BackendUnavailable` without eos-py and :class:`AssetMissing` without the files.
    """
    mm = _eos()
    shape_path = Path(shape_path) if shape_path else asset_file(ASSET, "sfm_shape_3448.bin")
    folder = shape_path.parent

    def side(name: str) -> Path | None:
        p = folder / name
        if p.is_file():
            return p
        try:
            return asset_file(ASSET, name)
        except FileNotFoundError:
            return None

    try:
        model = mm.load_model(str(shape_path))
    except RuntimeError as e:
        raise ModelFormatError(f"{shape_path}: eos could not read it as a model ({e})") from None
    sm = model.get_shape_model()
    mean = np.asarray(sm.get_mean(), dtype=np.float64).reshape(-1, 3)
    V = mean.shape[0]
    basis = np.asarray(sm.get_rescaled_pca_basis(), dtype=np.float64)  # (3V, K)
    eig = np.asarray(sm.get_eigenvalues(), dtype=np.float64)
    id_basis = basis.T.reshape(-1, V, 3)
    faces = np.asarray(sm.get_triangle_list(), dtype=np.int64)
    tc = np.asarray(model.get_texture_coordinates(), dtype=np.float64)
    uvs = uv_faces = None
    if tc.shape == (V, 2):
        uvs = np.stack([tc[:, 0], 1.0 - tc[:, 1]], 1)
        uv_faces = faces
    bpath = Path(blendshapes_path) if blendshapes_path else side("expression_blendshapes_3448.bin")
    names: list[str] = []
    ex_basis = np.zeros((0, V, 3))
    if bpath is not None:
        bs = mm.load_blendshapes(str(bpath))
        names = [b.name for b in bs]
        ex_basis = np.stack([np.asarray(b.deformation).reshape(V, 3) for b in bs], 0)
    # landmarks
    lm_path = side("ibug_to_sfm.txt")
    landmarks = None
    filled: list[int] = []
    contours: dict[str, torch.Tensor] = {}
    cpath = side("sfm_model_contours.json")
    if cpath is not None:
        cj = json.loads(data.read_text(cpath))["model_contour"]
        contours = {
            "right": torch.tensor(cj["right_contour"], dtype=torch.long),
            "left": torch.tensor(cj["left_contour"], dtype=torch.long),
        }
    if lm_path is not None:
        mapping = parse_ibug_mapping(data.read_text(lm_path))
        lm = np.full(68, -1, dtype=np.int64)
        for k, v in mapping.items():
            lm[k - 1] = v
        if lm[8] >= 0 and contours and lm[36] >= 0:
            eye_y = float(mean[[lm[36], lm[45]], 1].mean())
            right = _fill_contour(mean, contours["right"].numpy(), int(lm[8]), eye_y)
            left = _fill_contour(mean, contours["left"].numpy(), int(lm[8]), eye_y)
            for k in range(8):
                if lm[k] < 0:
                    lm[k] = right[k]
                    filled.append(k)
                if lm[16 - k] < 0:
                    lm[16 - k] = left[k]
                    filled.append(16 - k)
        for inner, outer in ((60, 48), (64, 54)):
            if lm[inner] < 0 and lm[outer] >= 0:
                lm[inner] = lm[outer]
                filled.append(inner)
        if (lm < 0).any():
            raise ModelFormatError(
                f"{lm_path}: landmarks {np.nonzero(lm < 0)[0].tolist()} are not defined"
            )
        landmarks = torch.from_numpy(lm)
    sym = None
    spath = side("sfm_reference_symmetry.txt")
    if spath is not None:
        # the file covers the 845 reference vertices shared by every SFM resolution (the
        # first 845); the remaining vertices are paired by nearest mirrored vertex among them
        s = parse_symmetry(data.read_text(spath))
        n = s.shape[0]
        if 0 < n <= V and s.min() >= 0 and s.max() < n and np.array_equal(s[s], np.arange(n)):
            full = np.empty(V, dtype=np.int64)
            full[:n] = s
            if n < V:
                full[n:] = n + mirror_symmetry(mean[n:])
            sym = torch.from_numpy(full)
    return MorphableModel(
        mean=torch.from_numpy(mean.astype(np.float32)),
        faces=torch.from_numpy(faces),
        identity_basis=torch.from_numpy(id_basis.astype(np.float32)),
        identity_std=torch.from_numpy(np.sqrt(np.maximum(eig, 0)).astype(np.float32)),
        expression_basis=torch.from_numpy(ex_basis.astype(np.float32)),
        expression_kind="blendshapes",
        expression_names=names,
        uvs=None if uvs is None else torch.from_numpy(uvs.astype(np.float32)),
        uv_faces=None if uv_faces is None else torch.from_numpy(uv_faces),
        landmarks=landmarks,
        contour_candidates=contours,
        regions={"face": np.ones(V, dtype=bool)},
        symmetry=sym,
        name="sfm",
        units="mm",
        license=LICENSE,
        source=SOURCE,
        meta={"landmarks_filled": sorted(filled)},
    )


__all__ = ["load_sfm", "parse_ibug_mapping", "parse_symmetry"]
