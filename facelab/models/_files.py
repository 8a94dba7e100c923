"""File helpers shared by the model loaders (internal): asset lookup and fast OBJ vertex reading."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from .. import data
from ..errors import AssetMissing, ModelFormatError
from ..geometry.io import _fromstring as _parse_floats  # noqa: F401  (the one, thread-safe)


def asset_file(asset: str, rel: str, download: bool = True) -> Path:
    """Path of ``rel`` (plain or ``.gz``) inside asset ``asset`` in the data directories.

    Uses :func:`facelab.data.find_file`; when the registry does not list the file (or is not
    available), falls back to looking for ``<data dir>/<asset>/<rel>[.gz]`` directly. A
    registry file found nowhere is downloaded on first use (:func:`facelab.data.require`)
    when ``download`` (and ``FACELAB_OFFLINE`` is not set).
    """
    try:
        return data.find_file(asset, rel)
    except (AssetMissing, OSError, KeyError, ValueError) as first:
        for d in data.data_dirs():
            for p in (d / asset / rel, d / asset / (rel + ".gz")):
                if p.is_file():
                    return p
        if download and isinstance(first, AssetMissing) and asset in data.registry():
            if rel in {f.path for f in data.get_asset(asset).files}:
                return data.require(asset, rel)  # first use: fetch, or AssetMissing
        try:
            msg = data.missing_message(data.get_asset(asset), [rel])
        except (AssetMissing, OSError, KeyError, ValueError):
            where = ", ".join(str(d / asset) for d in data.data_dirs())
            msg = (
                f"asset {asset!r} is missing {rel}. Get it with `facelab data fetch {asset}` "
                f"or put its files in one of: {where} (set FACELAB_DATA)."
            )
        raise AssetMissing(msg) from (first if not isinstance(first, AssetMissing) else None)


def asset_present(asset: str, rel: str) -> Path | None:
    """Like :func:`asset_file` but ``None`` when absent (never downloads)."""
    try:
        return asset_file(asset, rel, download=False)
    except AssetMissing:
        return None


def _vertex_span(buf: bytes, final: bool) -> tuple[int, int] | None:
    """``(start, end)`` of the block of ``v`` lines in ``buf`` (from the first ``v`` line to the
    newline ending the last one), or ``None`` if ``buf`` may end inside the block (when not
    ``final``) or has no vertices. One forward and one backward search: cheap on 1 MB."""
    first = 0 if buf.startswith(b"v ") else buf.find(b"\nv ")
    if first < 0:
        return None
    last = max(buf.rfind(b"\nv "), first)
    nl = buf.find(b"\n", last + 1)
    if final:
        return first, (len(buf) if nl < 0 else nl)
    if nl < 0 or len(buf) < nl + 3 or buf[nl + 1 : nl + 3] == b"v ":
        return None
    return first, nl


def _read_vertex_prefix(path: Path) -> tuple[bytes, tuple[int, int] | None]:
    """The (decompressed) beginning of an OBJ file holding its vertex block, and the block.

    For ``.gz`` files only the needed prefix is inflated, 1 MB at a time (the vertex block of an
    ICT file is its first ~30 %), which is what makes reading 154 ICT meshes fast.
    """
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw, _vertex_span(raw, final=True)
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    step = 1 << 20
    try:
        buf = d.decompress(raw, step)
        while True:
            if not d.unconsumed_tail:
                buf += d.flush()
                return buf, _vertex_span(buf, final=True)
            blk = _vertex_span(buf, final=False)
            if blk is not None:
                return buf, blk
            buf += d.decompress(d.unconsumed_tail, step)
    except zlib.error as e:
        raise ModelFormatError(f"{path}: corrupt gzip data ({e})") from None


def read_obj_vertices(path: str | os.PathLike) -> np.ndarray:
    """Only the ``v x y z`` lines of an OBJ (``.obj`` or ``.obj.gz``) as ``(V, 3) float64``.

    Reads (for ``.gz``: inflates) only the prefix of the file holding its vertex block, then
    parses it with :func:`facelab.geometry.io.parse_obj_vertices` (the one OBJ vertex parser;
    contiguous block in one ``np.fromstring``, interleaved ``v`` lines by a regex). Lines with
    more than three numbers (vertex colours) raise :class:`ModelFormatError`.
    """
    from ..geometry.io import parse_obj_vertices

    path = Path(path)
    text, blk = _read_vertex_prefix(path)
    end = len(text) if blk is None else blk[1] + 1  # no block: the parser says "no vertices"
    return parse_obj_vertices(text[:end], path, strict=True)


__all__ = ["asset_file", "asset_present", "read_obj_vertices"]
