"""Mesh files: Wavefront OBJ (plain or ``.gz``), PLY (ASCII / binary) and glTF binary (GLB).

* :func:`load_obj` reads ``v`` (optionally ``v x y z r g b``), ``vt`` and ``f`` in all four forms
  (``f v``, ``f v/vt``, ``f v//vn``, ``f v/vt/vn``), 1-based or negative (relative) indices, and
  polygons of any size (fan-triangulated in file order). UV faces are kept separately from
  vertex faces so that texture seams survive (a seam vertex has one position, several UVs).
  Normals (``vn``) are ignored: compute them with :func:`facelab.geometry.vertex_normals`.
  The parser works on the whole text with numpy (no Python loop per line); ICT-FaceKit's
  neutral head (26,719 vertices, 26,384 polygons) parses in about 0.1 s.
* :func:`load_obj_vertices` reads only the ``v`` lines -- the fast path for loading many
  files that share one topology (blendshapes, PCA components).
* :func:`save_obj` writes ``v``/``vt``/``f v/vt`` and, with a texture, an ``.mtl`` and ``.png``
  next to it.
* :func:`load_ply` / :func:`save_ply`: ``ascii``, ``binary_little_endian`` (and reading
  ``binary_big_endian``), vertex colours as ``uchar`` ``red green blue``.
* :func:`save_glb` exports through ``trimesh`` (vertices split on UV seams, since glTF has one
  UV per vertex).
* :func:`load_mesh` / :func:`save_mesh` dispatch on the suffix.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import BackendUnavailable, InvalidInput, ModelFormatError
from .mesh import Mesh, _fan, unweld_uv_seams

__all__ = [
    "load_mesh",
    "load_obj",
    "load_obj_vertices",
    "parse_obj_vertices",
    "load_ply",
    "save_glb",
    "save_mesh",
    "save_obj",
    "save_ply",
]

PathLike = str | os.PathLike


def _read_bytes(path: PathLike) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"mesh file not found: {p}")
    if p.suffix == ".gz":
        with gzip.open(p, "rb") as fh:
            return fh.read()
    return p.read_bytes()


def _write_bytes(path: PathLike, data: bytes) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix == ".gz":
        with gzip.open(p, "wb", compresslevel=6) as fh:
            fh.write(data)
    else:
        p.write_bytes(data)


def _suffix(path: PathLike) -> str:
    """Lower-case suffix without ``.gz`` (``a.obj.gz`` -> ``.obj``)."""
    p = Path(path)
    suf = p.suffix.lower()
    if suf == ".gz":
        suf = Path(p.stem).suffix.lower()
    return suf


def _stem(path: PathLike) -> str:
    p = Path(path)
    return Path(p.stem).stem if p.suffix.lower() == ".gz" else p.stem


# --------------------------------------------------------------------------------------------
# OBJ
# --------------------------------------------------------------------------------------------
_V_RE = re.compile(rb"^v[ \t]+([^\r\n#]*)", re.M)
_VT_RE = re.compile(rb"^vt[ \t]+([^\r\n#]*)", re.M)
_F_RE = re.compile(rb"^f[ \t]+([^\r\n#]*)", re.M)
_V_START_RE = re.compile(rb"^v[ \t]", re.M)
_V_BLOCK_RE = re.compile(rb"(?:v[ \t][^\r\n#]*\r?\n)+")


def _parse_floats(lines: list[bytes], what: str, path: PathLike) -> np.ndarray:
    """Rows of whitespace-separated floats -> ``(N, K)``; K = width of the first row."""
    if not lines:
        return np.zeros((0, 3))
    width = len(lines[0].split())
    try:
        flat = np.array(b" ".join(lines).split(), dtype=np.float64)
        if flat.size != width * len(lines):
            # rows of different widths (e.g. some `vt u v w`): keep the common first columns
            rows = [ln.split() for ln in lines]
            width = min(len(r) for r in rows)
            flat = np.array([r[:width] for r in rows], dtype=np.float64).reshape(-1)
    except ValueError as e:
        raise ModelFormatError(f"{path}: a `{what}` line has a non-numeric value ({e})") from e
    if width == 0:
        raise ModelFormatError(f"{path}: empty `{what}` line")
    return flat.reshape(len(lines), width)


_WARNINGS_LOCK = threading.Lock()


def _fromstring(text: bytes) -> np.ndarray | None:
    """Whitespace-separated floats in one ``np.fromstring`` call, or ``None`` if some token is
    not a number.

    Thread-safe: ``warnings.catch_warnings`` saves and restores the process-wide filter list,
    so two threads interleaving it (the ICT loader parses in a thread pool) can leave a filter
    installed for the rest of the process; the lock serialises it.
    """
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return np.fromstring(text, dtype=np.float64, sep=" ")  # noqa: NPY201 - text mode
        except (ValueError, DeprecationWarning):  # a token that is not a number
            return None


def _vertex_block(data: bytes) -> np.ndarray | None:
    """Fast path: when all ``v`` lines form one contiguous block, parse it in one numpy call."""
    first = _V_START_RE.search(data)
    if first is None:
        return None
    block = _V_BLOCK_RE.match(data, first.start())
    if block is None:
        return None
    blk = block.group(0)
    n = blk.count(b"\n")
    total = len(_V_START_RE.findall(data))
    if n != total:
        return None
    width = len(blk[: blk.index(b"\n")].split()) - 1
    flat = _fromstring(blk.replace(b"v", b" "))
    if flat is None or width < 3 or flat.size != n * width:
        return None
    return flat.reshape(n, width)


def _vertex_rows(data: bytes, path: PathLike) -> np.ndarray:
    """All columns of the ``v`` lines, ``(V, K)`` with ``K >= 3``."""
    v = _vertex_block(data)
    if v is None:
        lines = _V_RE.findall(data)
        if not lines:
            raise ModelFormatError(
                f"{path}: no vertices (no `v` lines); is this a Wavefront OBJ file?"
            )
        v = _parse_floats(lines, "v", path)
    if v.shape[1] < 3:
        raise ModelFormatError(f"{path}: `v` lines need 3 coordinates, found {v.shape[1]}")
    return v


def parse_obj_vertices(data: bytes, path: PathLike = "<bytes>", strict: bool = False) -> np.ndarray:
    """The ``v`` lines of OBJ text ``data`` as ``(V, 3) float64``: the library's one OBJ vertex
    parser (:func:`load_obj`, :func:`load_obj_vertices` and the ICT loader use it).

    Fast path: all ``v`` lines in one contiguous block (as every exporter writes them) are
    parsed by a single ``np.fromstring`` call; else a regex collects them (interleaved
    objects, comments). Extra columns (vertex colours) are dropped, or raise
    :class:`ModelFormatError` when ``strict``.
    """
    v = _vertex_rows(data, path)
    if strict and v.shape[1] != 3:
        raise ModelFormatError(
            f"{path}: expected 3 numbers on each of {v.shape[0]} `v` lines, found "
            f"{v.shape[1]} (vertex colours are not supported here)"
        )
    return np.ascontiguousarray(v[:, :3])


def load_obj_vertices(path: PathLike, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Only the vertex positions ``(V, 3)`` of an OBJ file (``.obj`` or ``.obj.gz``).

    Skips everything but ``v`` lines (:func:`parse_obj_vertices`). For loading many meshes
    that share a topology (blendshapes, PCA components). Extra columns (vertex colours) are
    ignored.
    """
    return torch.from_numpy(parse_obj_vertices(_read_bytes(path), path)).to(dtype)


def _parse_faces_fast(face_lines: list[bytes]):
    """Vectorised face parsing; returns None when the file mixes index forms or uses negatives."""
    first = face_lines[0].split()[0]
    nslash = first.count(b"/")
    has_vt = nslash >= 1 and b"//" not in first
    nfields = 1 if nslash == 0 else (2 if (nslash == 1 or b"//" in first) else 3)
    sizes = np.fromiter(
        (len(ln.split()) for ln in face_lines), dtype=np.int64, count=len(face_lines)
    )
    blob = b" ".join(face_lines)
    if blob.count(b"/") != int(sizes.sum()) * nslash or (b"//" in blob) != (b"//" in first):
        return None
    blob = blob.replace(b"//", b" ").replace(b"/", b" ")
    try:
        flat = np.array(blob.split(), dtype=np.int64)
    except ValueError:
        return None
    if flat.size != int(sizes.sum()) * nfields or (flat.size and flat.min() <= 0):
        return None
    flat = flat.reshape(-1, nfields) - 1
    vidx = flat[:, 0]
    tidx = flat[:, 1] if has_vt else None
    return sizes, vidx, tidx


def _parse_faces_slow(data: bytes, path: PathLike):
    """Line-by-line parser handling mixed forms and negative (relative) indices."""
    sizes, vidx, tidx = [], [], []
    nv = nt = 0
    all_vt = True
    for raw in data.splitlines():
        ln = raw.strip()
        if ln.startswith(b"v "):
            nv += 1
        elif ln.startswith(b"vt ") or ln.startswith(b"vt\t"):
            nt += 1
        elif ln.startswith(b"f ") or ln.startswith(b"f\t"):
            toks = ln.split(b"#")[0].split()[1:]
            sizes.append(len(toks))
            for tok in toks:
                parts = tok.split(b"/")
                try:
                    i = int(parts[0])
                    vidx.append(i - 1 if i > 0 else nv + i)
                    if len(parts) > 1 and parts[1]:
                        j = int(parts[1])
                        tidx.append(j - 1 if j > 0 else nt + j)
                    else:
                        all_vt = False
                        tidx.append(-1)
                except ValueError as e:
                    raise ModelFormatError(f"{path}: bad face token {tok!r}") from e
    return (
        np.asarray(sizes, dtype=np.int64),
        np.asarray(vidx, dtype=np.int64),
        np.asarray(tidx, dtype=np.int64) if all_vt else None,
    )


def load_obj(path: PathLike, dtype: torch.dtype = torch.float32) -> Mesh:
    """Read a Wavefront OBJ (``.obj`` or gzip ``.obj.gz``) into a triangle :class:`Mesh`.

    Polygons are fan-triangulated (``(p0, pi, pi+1)``) in file order. ``vt`` become ``uvs (T, 2)``
    with ``uv_faces (F, 3)`` (only if every face has UV indices). ``v x y z r g b`` lines give
    ``vertex_colors`` (values > 1 are taken as 0-255). Materials, groups and normals are ignored.

    Raises:
        FileNotFoundError: no such file.
        ModelFormatError: not parseable as OBJ, or indices out of range.
    """
    data = _read_bytes(path)
    v = _vertex_rows(data, path)
    colors = None
    if v.shape[1] >= 6:
        colors = v[:, 3:6]
        if colors.max(initial=0.0) > 1.0:
            colors = colors / 255.0
    vt = _parse_floats(_VT_RE.findall(data), "vt", path)
    flines = _F_RE.findall(data)
    if not flines:
        raise ModelFormatError(f"{path}: no `f` lines (a point cloud is not a mesh)")
    parsed = _parse_faces_fast(flines)
    if parsed is None:
        parsed = _parse_faces_slow(data, path)
    sizes, vidx, tidx = parsed
    if vidx.size and (vidx.min() < 0 or vidx.max() >= len(v)):
        raise ModelFormatError(
            f"{path}: face vertex index out of range (file has {len(v)} vertices)"
        )
    tris, _ = _fan(vidx, sizes)
    uvs = uv_faces = None
    if tidx is not None and len(vt):
        if tidx.min() < 0 or tidx.max() >= len(vt):
            raise ModelFormatError(f"{path}: face uv index out of range (file has {len(vt)} vt)")
        uv_faces, _ = _fan(tidx, sizes)
        uvs = vt[:, :2]
    return Mesh(
        torch.from_numpy(np.ascontiguousarray(v[:, :3])).to(dtype),
        torch.from_numpy(tris),
        None if uvs is None else torch.from_numpy(np.ascontiguousarray(uvs)).to(dtype),
        None if uv_faces is None else torch.from_numpy(uv_faces),
        None if colors is None else torch.from_numpy(np.ascontiguousarray(colors)).to(dtype),
        name=_stem(path),
    )


def _rows(fmt: str, arr: np.ndarray) -> bytes:
    buf = io.StringIO()
    np.savetxt(buf, arr, fmt=fmt)
    return buf.getvalue().encode()


def _texture_to_pil(image):
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3:
        raise InvalidInput(f"texture_image must be (3, H, W) or (H, W, 3), got shape {arr.shape}")
    if arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
        arr = np.moveaxis(arr, 0, -1)
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr), "RGB")


def save_obj(path: PathLike, mesh: Mesh, texture_image=None) -> None:
    """Write ``mesh`` as OBJ (gzip when ``path`` ends in ``.gz``).

    Vertex colours are written as ``v x y z r g b``; UVs as ``vt`` and faces as ``f v/vt``.
    With ``texture_image`` (``(3, H, W)`` / ``(H, W, 3)`` float in [0, 1], uint8 array or PIL
    image) the files ``<stem>.mtl`` and ``<stem>.png`` are written next to it and referenced via
    ``mtllib`` / ``usemtl`` (the mesh needs UVs).
    """
    if not isinstance(mesh, Mesh):
        raise InvalidInput(f"save_obj expects a Mesh, got {type(mesh).__name__}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    stem = _stem(p)
    parts = [b"# written by facelab\n"]
    if texture_image is not None:
        if mesh.uvs is None:
            raise InvalidInput("save_obj: a texture_image needs a mesh with uvs")
        _texture_to_pil(texture_image).save(p.parent / f"{stem}.png")
        (p.parent / f"{stem}.mtl").write_text(
            f"newmtl material0\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nillum 1\nmap_Kd {stem}.png\n"
        )
        parts.append(f"mtllib {stem}.mtl\n".encode())
    v = mesh.verts.detach().cpu().double().numpy()
    if mesh.vertex_colors is not None:
        c = mesh.vertex_colors.detach().cpu().double().numpy()
        parts.append(_rows("v %.9g %.9g %.9g %.6g %.6g %.6g", np.concatenate([v, c], 1)))
    else:
        parts.append(_rows("v %.9g %.9g %.9g", v))
    f = mesh.faces.cpu().numpy() + 1
    if mesh.uvs is not None:
        parts.append(_rows("vt %.9g %.9g", mesh.uvs.detach().cpu().double().numpy()))
        if texture_image is not None:
            parts.append(b"usemtl material0\n")
        uf = mesh.uv_faces.cpu().numpy() + 1
        inter = np.stack([f, uf], axis=2).reshape(-1, 6)
        parts.append(_rows("f %d/%d %d/%d %d/%d", inter))
    else:
        parts.append(_rows("f %d %d %d", f))
    _write_bytes(p, b"".join(parts))


# --------------------------------------------------------------------------------------------
# PLY
# --------------------------------------------------------------------------------------------
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def _parse_ply_header(data: bytes, path: PathLike):
    if not data.startswith(b"ply"):
        raise ModelFormatError(f"{path}: not a PLY file (no 'ply' magic)")
    end = data.find(b"end_header")
    if end < 0:
        raise ModelFormatError(f"{path}: PLY header has no end_header")
    body_start = data.index(b"\n", end) + 1
    header = data[:end].decode("ascii", errors="replace").splitlines()
    fmt = None
    elements: list[tuple[str, int, list]] = []
    for ln in header:
        t = ln.split()
        if not t:
            continue
        if t[0] == "format":
            fmt = t[1]
        elif t[0] == "element":
            elements.append((t[1], int(t[2]), []))
        elif t[0] == "property":
            if not elements:
                raise ModelFormatError(f"{path}: PLY property before any element")
            if t[1] == "list":
                elements[-1][2].append((t[4], "list", _PLY_TYPES[t[2]], _PLY_TYPES[t[3]]))
            else:
                if t[1] not in _PLY_TYPES:
                    raise ModelFormatError(f"{path}: unknown PLY type {t[1]!r}")
                elements[-1][2].append((t[2], _PLY_TYPES[t[1]]))
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise ModelFormatError(f"{path}: unsupported PLY format {fmt!r}")
    return fmt, elements, body_start


def _read_binary_element(data, offset, count, props, endian, path):
    """Returns (dict name -> array or list-array, new offset)."""
    if all(len(p) == 2 for p in props):
        dt = np.dtype([(p[0], endian + p[1]) for p in props])
        arr = np.frombuffer(data, dtype=dt, count=count, offset=offset)
        return {p[0]: arr[p[0]] for p in props}, offset + count * dt.itemsize
    # try the common case: every list has the same length as the first record's
    dt_fields, k = [], None
    if count:
        off = offset
        for p in props:
            if len(p) == 2:
                off += np.dtype(p[1]).itemsize
            else:
                k = int(np.frombuffer(data, dtype=endian + p[2], count=1, offset=off)[0])
                break
    if k is not None:
        for p in props:
            if len(p) == 2:
                dt_fields.append((p[0], endian + p[1]))
            else:
                dt_fields.append((p[0] + "__n", endian + p[2]))
                dt_fields.append((p[0], endian + p[3], (k,)))
        dt = np.dtype(dt_fields)
        if offset + count * dt.itemsize <= len(data):
            arr = np.frombuffer(data, dtype=dt, count=count, offset=offset)
            if all((arr[p[0] + "__n"] == k).all() for p in props if len(p) == 4):
                return {p[0]: arr[p[0]] for p in props}, offset + count * dt.itemsize
    # general case: record by record
    out: dict[str, list] = {p[0]: [] for p in props}
    off = offset
    for _ in range(count):
        for p in props:
            if len(p) == 2:
                d = np.dtype(endian + p[1])
                out[p[0]].append(np.frombuffer(data, d, 1, off)[0])
                off += d.itemsize
            else:
                dn, dv = np.dtype(endian + p[2]), np.dtype(endian + p[3])
                n = int(np.frombuffer(data, dn, 1, off)[0])
                off += dn.itemsize
                out[p[0]].append(np.frombuffer(data, dv, n, off))
                off += n * dv.itemsize
    return {k_: (v if any(len(p) == 4 and p[0] == k_ for p in props) else np.array(v))
            for k_, v in out.items()}, off  # fmt: skip


def _read_ascii_elements(body: bytes, elements, path):
    lines = body.splitlines()
    pos = 0
    result = {}
    for name, count, props in elements:
        chunk = [ln for ln in lines[pos : pos + count]]
        pos += count
        if len(chunk) < count:
            raise ModelFormatError(f"{path}: PLY element {name!r} truncated")
        if all(len(p) == 2 for p in props):
            arr = np.array(b" ".join(chunk).split(), dtype=np.float64).reshape(count, len(props))
            result[name] = {p[0]: arr[:, i] for i, p in enumerate(props)}
            continue
        rows = [np.array(ln.split(), dtype=np.float64) for ln in chunk]
        cols: dict[str, list] = {p[0]: [] for p in props}
        for r in rows:
            i = 0
            for p in props:
                if len(p) == 2:
                    cols[p[0]].append(r[i])
                    i += 1
                else:
                    n = int(r[i])
                    cols[p[0]].append(r[i + 1 : i + 1 + n].astype(np.int64))
                    i += 1 + n
        result[name] = {p[0]: (cols[p[0]] if len(p) == 4 else np.array(cols[p[0]])) for p in props}
    return result


def load_ply(path: PathLike, dtype: torch.dtype = torch.float32) -> Mesh:
    """Read a PLY mesh (ascii / binary little or big endian; ``.ply.gz`` accepted).

    Uses ``vertex`` ``x y z`` (+ ``red green blue``, uchar 0-255 or float 0-1, as vertex
    colours) and ``face`` ``vertex_indices`` / ``vertex_index`` (polygons fan-triangulated).
    """
    data = _read_bytes(path)
    fmt, elements, start = _parse_ply_header(data, path)
    if fmt == "ascii":
        els = _read_ascii_elements(data[start:], elements, path)
    else:
        endian = "<" if fmt == "binary_little_endian" else ">"
        els, off = {}, start
        for name, count, props in elements:
            els[name], off = _read_binary_element(data, off, count, props, endian, path)
    if "vertex" not in els or not all(k in els["vertex"] for k in "xyz"):
        raise ModelFormatError(f"{path}: PLY has no vertex x/y/z")
    vert = els["vertex"]
    v = np.stack([np.asarray(vert[k], dtype=np.float64) for k in "xyz"], 1)
    colors = None
    if all(k in vert for k in ("red", "green", "blue")):
        c = np.stack([np.asarray(vert[k], dtype=np.float64) for k in ("red", "green", "blue")], 1)
        props = dict((p[0], p) for p in next(e for e in elements if e[0] == "vertex")[2])
        colors = c / 255.0 if props["red"][1] == "u1" or c.max(initial=0) > 1.0 else c
    face = els.get("face", {})
    key = "vertex_indices" if "vertex_indices" in face else "vertex_index"
    if key not in face:
        raise ModelFormatError(f"{path}: PLY has no face element with vertex_indices")
    lists = face[key]
    if isinstance(lists, np.ndarray) and lists.ndim == 2:
        tris, _ = _fan(lists.astype(np.int64).reshape(-1), np.full(len(lists), lists.shape[1]))
    else:
        sizes = np.array([len(x) for x in lists], dtype=np.int64)
        flat = (
            np.concatenate([np.asarray(x, dtype=np.int64) for x in lists])
            if len(lists)
            else np.zeros(0, np.int64)
        )
        tris, _ = _fan(flat, sizes)
    if tris.size and (tris.min() < 0 or tris.max() >= len(v)):
        raise ModelFormatError(f"{path}: face index out of range ({len(v)} vertices)")
    return Mesh(
        torch.from_numpy(v).to(dtype),
        torch.from_numpy(tris.astype(np.int64)),
        vertex_colors=None if colors is None else torch.from_numpy(colors).to(dtype),
        name=_stem(path),
    )


def save_ply(path: PathLike, mesh: Mesh, binary: bool = True) -> None:
    """Write ``mesh`` as PLY: ``binary_little_endian`` (default) or ``ascii``.

    Vertices are ``float x, y, z`` (+ ``uchar red, green, blue`` from ``vertex_colors``);
    faces ``list uchar int vertex_indices``. UVs are not written (use OBJ or GLB for textures).
    """
    if not isinstance(mesh, Mesh):
        raise InvalidInput(f"save_ply expects a Mesh, got {type(mesh).__name__}")
    v = mesh.verts.detach().cpu().numpy().astype(np.float32)
    f = mesh.faces.cpu().numpy().astype(np.int32)
    c = None
    if mesh.vertex_colors is not None:
        c = (mesh.vertex_colors.detach().cpu().double().numpy().clip(0, 1) * 255 + 0.5).astype(
            np.uint8
        )
    head = [
        "ply",
        f"format {'binary_little_endian' if binary else 'ascii'} 1.0",
        "comment written by facelab",
        f"element vertex {len(v)}",
        "property float x",
        "property float y",
        "property float z",
    ]
    if c is not None:
        head += ["property uchar red", "property uchar green", "property uchar blue"]
    head += [f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    out = [("\n".join(head) + "\n").encode()]
    if binary:
        vfields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
        if c is not None:
            vfields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        va = np.empty(len(v), dtype=vfields)
        va["x"], va["y"], va["z"] = v[:, 0], v[:, 1], v[:, 2]
        if c is not None:
            va["red"], va["green"], va["blue"] = c[:, 0], c[:, 1], c[:, 2]
        fa = np.empty(len(f), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
        fa["n"] = 3
        fa["idx"] = f
        out += [va.tobytes(), fa.tobytes()]
    else:
        if c is not None:
            buf = io.StringIO()
            for row, col in zip(v, c):
                buf.write(f"{row[0]:.9g} {row[1]:.9g} {row[2]:.9g} {col[0]} {col[1]} {col[2]}\n")
            out.append(buf.getvalue().encode())
        else:
            out.append(_rows("%.9g %.9g %.9g", v.astype(np.float64)))
        out.append(_rows("3 %d %d %d", f))
    _write_bytes(path, b"".join(out))


# --------------------------------------------------------------------------------------------
# GLB (via trimesh)
# --------------------------------------------------------------------------------------------
def _trimesh():
    try:
        import trimesh
    except ImportError as e:  # pragma: no cover - trimesh is in the models extra
        raise BackendUnavailable(
            "GLB export needs trimesh: pip install 'facelab[models]' (or pip install trimesh)"
        ) from e
    return trimesh


def save_glb(path: PathLike, mesh: Mesh, texture_image=None) -> None:
    """Export ``mesh`` to binary glTF (``.glb``) with trimesh.

    With UVs, vertices are split on seams (:func:`~facelab.geometry.mesh.unweld_uv_seams`) because
    glTF stores one UV per vertex; with ``texture_image`` it becomes the base-colour texture.
    Vertex colours are exported when there is no texture.
    """
    trimesh = _trimesh()
    if not isinstance(mesh, Mesh):
        raise InvalidInput(f"save_glb expects a Mesh, got {type(mesh).__name__}")
    m = mesh
    if mesh.uvs is not None:
        m, _ = unweld_uv_seams(mesh)
    v = m.verts.detach().cpu().double().numpy()
    f = m.faces.cpu().numpy()
    visual = None
    if texture_image is not None:
        if m.uvs is None:
            raise InvalidInput("save_glb: a texture_image needs a mesh with uvs")
        img = _texture_to_pil(texture_image)
        material = trimesh.visual.material.PBRMaterial(baseColorTexture=img)
        visual = trimesh.visual.TextureVisuals(
            uv=m.uvs.detach().cpu().double().numpy(), material=material
        )
    elif m.vertex_colors is not None:
        c = (m.vertex_colors.detach().cpu().double().numpy().clip(0, 1) * 255 + 0.5).astype(
            np.uint8
        )
        visual = trimesh.visual.ColorVisuals(
            vertex_colors=np.concatenate([c, np.full((len(c), 1), 255, np.uint8)], 1)
        )
    elif m.uvs is not None:
        visual = trimesh.visual.TextureVisuals(uv=m.uvs.detach().cpu().double().numpy())
    tm = trimesh.Trimesh(vertices=v, faces=f, visual=visual, process=False)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    data = tm.export(file_type="glb")
    Path(path).write_bytes(data)


def _load_glb(path: PathLike, dtype: torch.dtype) -> Mesh:
    trimesh = _trimesh()
    scene = trimesh.load(str(path), force="mesh", process=False)
    v = np.asarray(scene.vertices, dtype=np.float64)
    f = np.asarray(scene.faces, dtype=np.int64)
    uvs = getattr(scene.visual, "uv", None)
    colors = None
    if uvs is None and getattr(scene.visual, "kind", None) == "vertex":
        colors = np.asarray(scene.visual.vertex_colors, dtype=np.float64)[:, :3] / 255.0
    return Mesh(
        torch.from_numpy(v).to(dtype),
        torch.from_numpy(f),
        None if uvs is None else torch.from_numpy(np.asarray(uvs, dtype=np.float64)).to(dtype),
        None,
        None if colors is None else torch.from_numpy(colors).to(dtype),
        name=_stem(path),
    )


# --------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------
def load_mesh(path: PathLike, dtype: torch.dtype = torch.float32) -> Mesh:
    """Load ``.obj``, ``.obj.gz``, ``.ply`` (``.ply.gz``) or ``.glb`` by suffix."""
    suf = _suffix(path)
    if suf == ".obj":
        return load_obj(path, dtype)
    if suf == ".ply":
        return load_ply(path, dtype)
    if suf in (".glb", ".gltf"):
        return _load_glb(path, dtype)
    raise InvalidInput(f"unsupported mesh format {suf!r} ({path}); use .obj, .obj.gz, .ply or .glb")


def save_mesh(path: PathLike, mesh: Mesh, texture_image=None, binary: bool = True) -> None:
    """Save by suffix: ``.obj``/``.obj.gz`` (:func:`save_obj`), ``.ply`` (:func:`save_ply`,
    ``binary`` chooses the encoding) or ``.glb`` (:func:`save_glb`)."""
    suf = _suffix(path)
    if suf == ".obj":
        return save_obj(path, mesh, texture_image)
    if suf == ".ply":
        if texture_image is not None:
            raise InvalidInput("PLY does not store textures; save as .obj or .glb")
        return save_ply(path, mesh, binary=binary)
    if suf == ".glb":
        return save_glb(path, mesh, texture_image)
    raise InvalidInput(f"unsupported mesh format {suf!r} ({path}); use .obj, .obj.gz, .ply or .glb")
