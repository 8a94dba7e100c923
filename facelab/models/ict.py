"""ICT-FaceKit ("ICT Face Model Light", MIT license) loader.

The asset ``"ict-facekit"`` holds ``FaceXModel/``: ``generic_neutral_mesh.obj`` (26,719
vertices, mostly quads, 28,911 UVs), ``identity000 ... identity099.obj`` (the neutral mesh
displaced by one identity principal component at one standard deviation) and 53 ARKit-style
expression meshes (``jawOpen.obj`` ...; the full expression applied to the neutral face).
Every ``.obj`` may be stored as ``.obj.gz``. facelab builds::

    mean              = neutral vertices                                 (V, 3), cm
    identity_basis[k] = identity{k:03d} - neutral                        (100, V, 3)
    expression_basis  = <name>.obj - neutral for the 53 names in vertex_indices.json
    identity_std      = ones (ICT publishes the components already scaled to one std)

Parsing 154 OBJ files takes a second or two (only the vertex block of each file is inflated
and parsed); the result is cached as ``<cache>/models/ict-<key>.npz`` where the key hashes the
source files' names, sizes and modification times, so later loads take a fraction of a second.

Coordinate frame: the ICT files are already y up, +z out of the face, in centimetres (the head
is ~18 cm wide), so no conversion is applied. The subject's right eye outer corner (iBUG 36)
has x < 0: +x is the face's left, as in facelab's model space.

Variants: ``"ict"`` (all 26,719 vertices: face, head, mouth socket, teeth, eyeballs ...),
``"ict-face"`` (vertices 0-11,247: face, head and neck; the skin surface) and
``"ict-face-narrow"`` (vertices 0-9,408: the face area only).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .. import data
from ..errors import InvalidInput, ModelFormatError
from ._files import asset_file, read_obj_vertices
from .contours import jaw_contour_candidates
from .morphable import MorphableModel, mirror_symmetry

ASSET = "ict-facekit"
LICENSE = "MIT (ICT-FaceKit, USC Institute for Creative Technologies)"
SOURCE = "https://github.com/ICT-VGL/ICT-FaceKit (FaceXModel/, commit da5f95a6)"
_CACHE_VERSION = 1
N_IDENTITY = 100

# iBUG-68 (Multi-PIE) landmark vertex indices, 0-based, from the ICT-FaceKit upstream README
# (also `idx_to_landmark_verts` in FaceXModel/vertex_indices.json).
ICT_LANDMARKS = [
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272,
    4088, 3443, 268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942,
    4857, 1140, 2075, 1147, 4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756,
    3721, 3725, 3732, 5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841,
    5702, 5711, 5533, 6216, 6207, 6470, 5517, 5966,
]  # fmt: skip

# Vertex ranges (0-based, inclusive) of the model's components, from the ICT-FaceKit README.
ICT_RANGES = {
    "face": (0, 9408),
    "face_narrow": (0, 6705),
    "head_neck": (9409, 11247),
    "mouth_socket": (11248, 13293),
    "eye_sockets": (13294, 14061),
    "gums_tongue": (14062, 17038),
    "teeth": (17039, 21450),
    "eyeballs": (21451, 24590),
    "eye_extras": (24591, 26718),  # lacrimal fluid, eye blend, eye occlusion, eyelashes
}
# Derived regions (unions of the ranges above).
ICT_UNIONS = {
    "skin": ("face", "head_neck"),
    "mouth_interior": ("mouth_socket", "gums_tongue", "teeth"),
    "eyes": ("eye_sockets", "eyeballs", "eye_extras"),
}
VARIANTS = {"ict": None, "ict-face": "skin", "ict-face-narrow": "face"}


def _rel(name: str) -> str:
    return f"FaceXModel/{name}"


def _expression_names() -> list[str]:
    path = asset_file(ASSET, _rel("vertex_indices.json"))
    try:
        info = json.loads(data.read_text(path))
        names = [str(n) for n in info["expressions"]]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ModelFormatError(f"{path}: unexpected vertex_indices.json layout ({e})") from None
    return names


def _source_files() -> tuple[Path, list[Path], list[Path], list[str]]:
    neutral = asset_file(ASSET, _rel("generic_neutral_mesh.obj"))
    ids = [asset_file(ASSET, _rel(f"identity{k:03d}.obj")) for k in range(N_IDENTITY)]
    names = _expression_names()
    exprs = [asset_file(ASSET, _rel(f"{n}.obj")) for n in names]
    return neutral, ids, exprs, names


def cache_key(paths: list[Path]) -> str:
    """Hash of the loader version and each source file's name, size and mtime."""
    h = hashlib.sha256(f"ict-v{_CACHE_VERSION}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def cache_path(paths: list[Path]) -> Path:
    return data.cache_dir() / "models" / f"ict-{cache_key(paths)}.npz"


def build_ict(progress: bool = False, workers: int = 2) -> MorphableModel:
    """Parse the ICT-FaceKit OBJ files into the full model (no cache; ~1-2 s)."""
    from ..geometry.io import load_obj

    neutral_p, id_ps, ex_ps, names = _source_files()
    mesh = load_obj(neutral_p, dtype=torch.float64)  # quads fanned: (a, b, c), (a, c, d)
    neutral = mesh.verts.numpy()
    V = neutral.shape[0]
    if mesh.uvs is None or mesh.uv_faces is None:
        raise ModelFormatError(f"{neutral_p}: the ICT neutral mesh should carry UVs")

    def read(p: Path) -> np.ndarray:
        v = read_obj_vertices(p)
        if v.shape != (V, 3):
            raise ModelFormatError(
                f"{p}: {v.shape[0]} vertices but the neutral mesh has {V}; the ICT files are "
                "from different versions"
            )
        return v

    paths = id_ps + ex_ps
    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        it = pool.map(read, paths)
        meshes = list(tqdm(it, total=len(paths), desc="ICT meshes", disable=not progress))
    stack = np.stack(meshes, 0)
    deltas = (stack - neutral[None]).astype(np.float32)
    id_basis = deltas[:N_IDENTITY]
    ex_basis = deltas[N_IDENTITY:]
    regions = {}
    for k, (a, b) in ICT_RANGES.items():
        m = np.zeros(V, dtype=bool)
        m[a : b + 1] = True
        regions[k] = m
    for k, parts in ICT_UNIONS.items():
        regions[k] = np.logical_or.reduce([regions[p] for p in parts])
    lm = np.asarray(ICT_LANDMARKS, dtype=np.int64)
    contours = jaw_contour_candidates(neutral, lm, np.arange(ICT_RANGES["face"][1] + 1))
    sym = mirror_symmetry(neutral)
    return MorphableModel(
        mean=torch.from_numpy(neutral.astype(np.float32)),
        faces=mesh.faces,
        identity_basis=torch.from_numpy(id_basis),
        identity_std=torch.ones(N_IDENTITY),
        expression_basis=torch.from_numpy(ex_basis),
        expression_kind="blendshapes",
        expression_names=names,
        uvs=mesh.uvs.float(),
        uv_faces=mesh.uv_faces,
        landmarks=torch.from_numpy(lm),
        contour_candidates=contours,
        regions=regions,
        symmetry=torch.from_numpy(sym),
        name="ict",
        units="cm",
        license=LICENSE,
        source=SOURCE,
        meta={"landmarks_source": "ICT-FaceKit README (iBUG-68, Multi-PIE)"},
    )


def load_ict(
    variant: str = "ict",
    cache: bool = True,
    progress: bool = False,
    dtype: torch.dtype | None = None,
) -> MorphableModel:
    """ICT-FaceKit model ``variant`` (``"ict"``, ``"ict-face"``, ``"ict-face-narrow"``).

    With ``cache`` the parsed full model is read from / written to the cache (see module doc).
    Raises :class:`~facelab.errors.AssetMissing` with download instructions when absent.
    """
    if variant not in VARIANTS:
        raise InvalidInput(f"unknown ICT variant {variant!r}; choose one of {list(VARIANTS)}")
    model = None
    cpath = None
    if cache:
        neutral_p, id_ps, ex_ps, _ = _source_files()
        cpath = cache_path([neutral_p, *id_ps, *ex_ps])
        if cpath.is_file():
            try:
                model = MorphableModel.load(cpath)
            except ModelFormatError:
                model = None  # stale or corrupt cache: rebuild
    if model is None:
        model = build_ict(progress=progress)
        if cpath is not None:
            try:
                model.save(cpath)
            except OSError:
                pass  # read-only cache: still return the model
    region = VARIANTS[variant]
    if region is not None:
        model = model.restrict(region, name=variant)
    if dtype is not None:
        model = model.to(dtype=dtype)
    return model


__all__ = ["ICT_LANDMARKS", "ICT_RANGES", "build_ict", "load_ict"]
