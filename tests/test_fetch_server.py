"""The download path end to end, against a local HTTP server on 127.0.0.1 that the test starts.

Each case checks what the user is told and that the cache stays consistent: a file appears under
its final name only when complete and verified; an interrupted plain download leaves a
``.part`` that the next run resumes (HTTP ``Range``).
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import http.server
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from facelab import data
from facelab.errors import AssetCorrupt, AssetMissing, DownloadError

REPO = Path(__file__).resolve().parents[1]

PLAIN = bytes(range(256)) * 400  # 102,400 bytes: several reads
TEXT = b"a small text file\n" * 50
PACKED = b"compressed on the server, stored plain\n" * 300


class Server:
    """Serves ``files`` (path -> bytes) with optional faults per path:

    ``truncate``: path -> n   send the full Content-Length but only ``n`` bytes, then close;
    ``stall``:    path -> n   send ``n`` bytes, then stop answering (until the test ends);
    ``stall_headers``: paths  accept the connection and never answer;
    ``no_range``: paths       ignore ``Range`` requests (answer 200 with the whole file);
    ``redirect``: path -> url answer 302 to ``url``;
    ``delay``:    path -> s   wait ``s`` seconds before answering.

    ``requests`` records ``(path, Range header)`` of every GET.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate: dict[str, int] = {}
        self.stall: dict[str, int] = {}
        self.stall_headers: set[str] = set()
        self.no_range: set[str] = set()
        self.redirect: dict[str, str] = {}
        self.delay: dict[str, float] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.release = threading.Event()
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # keep the test output quiet
                pass

            def do_GET(self):  # noqa: N802 (http.server's naming)
                path = self.path.lstrip("/")
                rng = self.headers.get("Range")
                srv.requests.append((path, rng))
                if path in srv.redirect:
                    self.send_response(302)
                    self.send_header("Location", srv.redirect[path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path in srv.stall_headers:
                    srv.release.wait(30)
                    return
                time.sleep(srv.delay.get(path, 0.0))
                body = srv.files.get(path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                if m and path not in srv.no_range:
                    start = int(m.group(1))
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Connection", "close")
                self.end_headers()
                body = body[start:]
                if path in srv.truncate:
                    self.wfile.write(body[: srv.truncate.pop(path)])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if path in srv.stall:
                    self.wfile.write(body[: srv.stall.pop(path)])
                    self.wfile.flush()
                    srv.release.wait(30)
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def online(monkeypatch, tmp_path):
    """First-use downloads allowed, no other data directory, an empty cache."""
    monkeypatch.delenv("FACELAB_OFFLINE", raising=False)
    monkeypatch.setenv("FACELAB_DATA", "")
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "cache"))
    data._ANNOUNCED.discard("toy")
    return tmp_path / "cache"


def _file(path: str, content: bytes, url: str, compression: str = "", size: int | None = None):
    return data.AssetFile(
        path=path,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content) if size is None else size,
        url=url,
        compression=compression,
    )


def _toy(server: Server, *, name: str = "toy") -> data.Asset:
    """Three files: plain, plain in a sub-folder, and bz2 on the server (stored plain)."""
    server.files.update(
        {
            "up/plain.bin": PLAIN,
            "up/sub/text.txt": TEXT,
            "up/packed.txt.bz2": bz2.compress(PACKED),
        }
    )
    u = server.url
    files = (
        _file("plain.bin", PLAIN, f"{u}/up/plain.bin"),
        _file("sub/text.txt", TEXT, f"{u}/up/sub/text.txt"),
        _file("packed.txt", PACKED, f"{u}/up/packed.txt.bz2", "bz2"),
    )
    return data.Asset(
        name=name,
        title="toy asset",
        license="CC0 (test licence text)",
        source="tests",
        description="made by the tests",
        files=files,
        citation="Nobody, A toy, 2026.",
    )


def _listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _consistent(root: Path, asset: data.Asset) -> None:
    """Every file under its final name is complete and verified; only ``.part`` files besides."""
    want = {f.path: f for f in asset.files}
    for rel, content in _listing(root).items():
        if rel.endswith(".part"):
            assert rel[: -len(".part")] in want
            continue
        assert rel in want, rel
        assert hashlib.sha256(content).hexdigest() == want[rel].sha256, rel


# --------------------------------------------------------------------------------------------


def test_good_download_on_first_use_prints_license_once(server, online, monkeypatch, capsys):
    asset = _toy(server)
    monkeypatch.setattr(data, "_REGISTRY", {"toy": asset})
    p = data.require("toy", "sub/text.txt")  # first use: the whole asset is fetched
    root = online / "toy"
    assert p == root / "sub" / "text.txt" and p.read_bytes() == TEXT
    assert _listing(root) == {"plain.bin": PLAIN, "sub/text.txt": TEXT, "packed.txt": PACKED}
    assert data.status("toy", verify=True).state == "present"
    err = capsys.readouterr().err
    assert err.count("license: CC0 (test licence text)") == 1 and "Cite: Nobody" in err
    assert "3 file(s)" in err and str(root) in err
    # second use: found in the cache, no request, no notice
    n = len(server.requests)
    assert data.require("toy", "packed.txt").read_bytes() == PACKED
    assert len(server.requests) == n
    data.fetch("toy", force=True, progress=False)  # a forced re-download: no second notice
    assert "license" not in capsys.readouterr().err


def test_wrong_checksum_saves_nothing_and_keeps_the_good_files(server, online):
    asset = _toy(server)
    server.files["up/sub/text.txt"] = TEXT.replace(b"small", b"SMALL")  # same size, other bytes
    with pytest.raises(AssetCorrupt, match=r"wrong content.*sha256.*not saved"):
        data.fetch(asset, progress=False)
    root = online / "toy"
    _consistent(root, asset)
    assert not (root / "sub" / "text.txt").exists() and not list(root.rglob("*.part"))
    assert (root / "plain.bin").read_bytes() == PLAIN  # downloaded before: kept, verified
    assert data.status(asset).state == "partial"
    server.files["up/sub/text.txt"] = TEXT  # the source is fixed: the next run completes it
    n = len(server.requests)
    data.fetch(asset, progress=False)
    assert [r[0] for r in server.requests[n:]] == ["up/sub/text.txt", "up/packed.txt.bz2"]
    assert data.status(asset, verify=True).state == "present"


def test_truncated_transfer_is_resumed_with_a_range_request(server, online):
    asset = _toy(server)
    server.truncate["up/plain.bin"] = 30_000
    with pytest.raises(DownloadError, match=r"ended early: got 30000 of 102400 bytes.*resumes it"):
        data.fetch(asset, progress=False)
    root = online / "toy"
    _consistent(root, asset)
    assert not (root / "plain.bin").exists()
    assert (root / "plain.bin.part").read_bytes() == PLAIN[:30_000]  # kept for the resume
    data.fetch(asset, progress=False)
    assert ("up/plain.bin", "bytes=30000-") in server.requests
    assert _listing(root) == {"plain.bin": PLAIN, "sub/text.txt": TEXT, "packed.txt": PACKED}


def test_server_that_stops_answering_times_out_and_the_next_run_resumes(server, online):
    asset = _toy(server)
    server.stall["up/plain.bin"] = 40_000
    with pytest.raises(DownloadError, match=r"stopped: no data for 1 s after 40000 of 102400"):
        data.fetch(asset, progress=False, timeout=1)
    root = online / "toy"
    _consistent(root, asset)
    assert (root / "plain.bin.part").stat().st_size == 40_000
    data.fetch(asset, progress=False, timeout=1)  # interrupted run resumed
    assert ("up/plain.bin", "bytes=40000-") in server.requests
    assert data.status(asset, verify=True).state == "present"
    assert not list(root.rglob("*.part"))


def test_server_that_never_answers_fails_fast_and_names_the_host(server, online):
    asset = _toy(server)
    server.stall_headers.add("up/plain.bin")
    with pytest.raises(
        DownloadError, match=r"no answer from 127\.0\.0\.1 within 1 s[\s\S]*save it as"
    ):
        data.fetch(asset, progress=False, timeout=1)
    assert not list((online / "toy").rglob("*.bin*"))  # nothing at all for that file


def test_server_ignoring_range_restarts_cleanly(server, online):
    asset = _toy(server)
    server.truncate["up/plain.bin"] = 10_000
    with pytest.raises(DownloadError, match="ended early"):
        data.fetch(asset, progress=False)
    server.no_range.add("up/plain.bin")
    data.fetch(asset, progress=False)
    assert ("up/plain.bin", "bytes=10000-") in server.requests  # asked, got a 200: restarted
    assert (online / "toy" / "plain.bin").read_bytes() == PLAIN


def test_stale_complete_part_is_verified_without_a_request(server, online):
    """A crash between the checksum and the rename leaves a complete ``.part``: it is used."""
    asset = _toy(server)
    root = online / "toy"
    root.mkdir(parents=True)
    (root / "plain.bin.part").write_bytes(PLAIN)
    (root / "sub").mkdir()
    (root / "sub" / "text.txt.part").write_bytes(b"x" * (len(TEXT) + 5))  # too long: restarted
    data.fetch(asset, progress=False)
    assert "up/plain.bin" not in [r[0] for r in server.requests]
    assert _listing(root) == {"plain.bin": PLAIN, "sub/text.txt": TEXT, "packed.txt": PACKED}


@pytest.mark.parametrize("kind", ["bz2", "gz"])
def test_decompression_bomb_stops_just_past_the_registry_size(server, online, kind):
    """16 MB of zeros in ~100 bytes (bz2) claims to be a 1,000-byte file: the fetch stops after
    at most one decompression step (1 MB), long before the 16 MB."""
    bomb = b"\0" * (16 << 20)
    packed = bz2.compress(bomb) if kind == "bz2" else gzip.compress(bomb)
    server.files[f"bomb.{kind}"] = packed
    f = _file("bomb.dat", bomb[:1000], f"{server.url}/bomb.{kind}", kind, size=1000)
    asset = data.Asset("toy", "bomb", "CC0", "tests", "", (f,))
    with pytest.raises(AssetCorrupt, match=r"larger than the registry's 1000 bytes") as e:
        data.fetch(asset, progress=False)
    stopped = int(re.search(r"stopped after (\d+) bytes", str(e.value)).group(1))
    assert 1000 < stopped <= 1000 + data._INFLATE_STEP < len(bomb)
    assert not list((online / "toy").rglob("*bomb*"))


def test_inflater_bounds_every_piece():
    bomb = b"\0" * (5 << 20)
    for kind, packed in (("bz2", bz2.compress(bomb)), ("gz", gzip.compress(bomb))):
        pieces = list(data._Inflater(kind).feed(packed))
        assert max(len(p) for p in pieces) <= data._INFLATE_STEP
        assert b"".join(pieces) == bomb


def test_corrupt_archive_is_reported_as_such(server, online):
    server.files["bad.bz2"] = b"BZh9" + b"this is not bzip2 data" * 20
    f = _file("bad.dat", PACKED, f"{server.url}/bad.bz2", "bz2")
    asset = data.Asset("toy", "bad", "CC0", "tests", "", (f,))
    with pytest.raises(AssetCorrupt, match=r"not a valid bz2 archive") as e:
        data.fetch(asset, progress=False)
    assert "offline" not in str(e.value)
    assert not list((online / "toy").rglob("*bad*"))


def test_disk_full_is_reported_as_disk_full(server, online, monkeypatch):
    asset = _toy(server)
    real_open = open

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, k):
            return getattr(self.fh, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

    def fake_open(path, mode="r", *a, **k):
        fh = real_open(path, mode, *a, **k)
        return Full(fh) if str(path).endswith(".part") and "b" in mode and "r" not in mode else fh

    monkeypatch.setattr(data, "open", fake_open, raising=False)
    with pytest.raises(
        DownloadError, match=r"could not write .*plain\.bin\.part.*disk is full"
    ) as e:
        data.fetch(asset, progress=False)
    assert "offline" not in str(e.value) and "FACELAB_CACHE" in str(e.value)
    assert not list((online / "toy").rglob("*plain*"))


def test_offline_first_use_is_todays_clear_error_without_a_request(server, online, monkeypatch):
    asset = _toy(server)
    monkeypatch.setattr(data, "_REGISTRY", {"toy": asset})
    monkeypatch.setenv("FACELAB_OFFLINE", "1")
    with pytest.raises(AssetMissing, match=r"facelab data fetch toy[\s\S]*FACELAB_OFFLINE=1"):
        data.require("toy", "plain.bin")
    assert server.requests == []
    assert data.plan(["toy"]) == [
        {
            "name": "toy",
            "title": "toy asset",
            "license": "CC0 (test licence text)",
            "files": 3,
            "bytes": len(PLAIN) + len(TEXT) + len(PACKED),
        }
    ]


def test_unreachable_first_use_is_an_asset_missing_error(online, monkeypatch):
    f = _file("x.bin", b"x", "http://127.0.0.1:9/x.bin")  # port 9 (discard): refused
    asset = data.Asset("toy", "toy", "CC0", "tests", "", (f,))
    monkeypatch.setattr(data, "_REGISTRY", {"toy": asset})
    with pytest.raises(AssetMissing, match=r"facelab data fetch toy[\s\S]*tried to download"):
        data.require("toy", "x.bin")


def test_mirror_layout_and_https_only(server, monkeypatch):
    asset = _toy(server)
    f = asset.files[2]
    assert data.file_url(asset, f) == f.url
    monkeypatch.setenv("FACELAB_MIRROR", "https://mirror.example/facelab/")
    assert data.file_url(asset, f) == "https://mirror.example/facelab/toy/packed.txt.bz2"
    assert data.file_url(asset, f, base_url="http://127.0.0.1:1") == (
        "http://127.0.0.1:1/toy/packed.txt.bz2"
    )
    with pytest.raises(DownloadError, match="https only"):
        data._check_scheme("http://dlib.net/files/x.bz2")
    for a in data.registry().values():  # every pinned upstream URL is https
        assert all(x.url.startswith("https://") for x in a.files), a.name


def test_real_model_downloads_on_first_use_from_a_mirror(server, online, monkeypatch, shared_data):
    """``models.load("sfm")`` on a fresh cache fetches ``sfm-eos`` (3 MB) from a local mirror
    holding the real files, then loads it; the cache holds exactly the verified files."""
    pytest.importorskip("eos")
    src = shared_data / "sfm-eos"
    asset = data.get_asset("sfm-eos")
    for f in asset.files:
        p = src / f.path
        server.files[f"sfm-eos/{f.path}"] = (
            p.read_bytes()
            if p.is_file()
            else gzip.decompress((src / (f.path + ".gz")).read_bytes())
        )
    monkeypatch.setenv("FACELAB_MIRROR", server.url)
    data._ANNOUNCED.discard("sfm-eos")
    from facelab import models

    model = models.load("sfm")
    assert model.mean.shape[0] == 3448
    assert data.status("sfm-eos", verify=True).location == online / "sfm-eos"
    assert sorted(_listing(online / "sfm-eos")) == sorted(f.path for f in asset.files)


def test_book_preflight_lists_the_assets_the_chapters_load():
    sys.path.insert(0, str(REPO / "book" / "tools"))
    try:
        import preflight
    finally:
        sys.path.pop(0)
    text = "\n".join(p.read_text() for p in sorted((REPO / "book" / "chapters").glob("*.md")))
    needs = {
        "ict-facekit": re.search(r'load\("ict', text) is not None,
        "sfm-eos": re.search(r'load\("sfm', text) is not None,
        "dlib-models": re.search(r"detect_faces|get_detector\(\"dlib|identity\(", text) is not None,
    }
    assert {k for k, v in needs.items() if v} == set(preflight.BOOK_ASSETS)


def test_book_build_stops_at_once_with_one_line_offline(tmp_path):
    """``make book`` with no FACELAB_DATA, an empty HOME and FACELAB_OFFLINE=1: one line,
    exit 1, before the JS assets or any chapter."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FACELAB_OFFLINE": "1",
        "FACELAB_CACHE": str(tmp_path / "cache"),
    }
    r = subprocess.run(
        [sys.executable, str(REPO / "book" / "tools" / "build.py"), "--fast"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "ict-facekit" in lines[0] and "FACELAB_DATA" in lines[0]


def test_redirects_are_followed_but_never_to_plain_http(server, online):
    asset = _toy(server)
    server.redirect["up/plain.bin"] = f"{server.url}/moved/plain.bin"  # loopback: fine
    server.files["moved/plain.bin"] = PLAIN
    data.fetch(asset, progress=False)
    assert (online / "toy" / "plain.bin").read_bytes() == PLAIN
    server.redirect["up/sub/text.txt"] = "http://example.com/text.txt"  # a downgrade
    with pytest.raises(DownloadError, match=r"refusing to download http://example\.com.*https"):
        data.fetch(asset, force=True, progress=False)
    _consistent(online / "toy", asset)


def test_stall_before_any_byte_leaves_no_part_file(server, online):
    asset = _toy(server)
    server.stall["up/plain.bin"] = 0
    with pytest.raises(
        DownloadError, match=r"no data for 1 s after 0 of 102400.*nothing was saved"
    ):
        data.fetch(asset, progress=False, timeout=1)
    assert not (online / "toy").exists() or not list((online / "toy").rglob("*"))


def test_two_concurrent_fetches_download_each_file_once(server, online):
    """The second process (here: thread) waits for the first one's lock, then finds the files."""
    asset = _toy(server)
    server.delay["up/plain.bin"] = 0.3
    errors: list[BaseException] = []

    def run():
        try:
            data.fetch(asset, progress=False)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    paths = [r[0] for r in server.requests]
    assert sorted(paths) == sorted(set(paths)) and len(paths) == 3
    assert data.status(asset, verify=True).state == "present"


def test_unusable_cache_folder_is_reported_as_such(server, online, monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "a-file" / "cache"))
    with pytest.raises(DownloadError, match=r"could not write .*a-file.*ENOTDIR") as e:
        data.fetch(_toy(server), progress=False)
    assert "offline" not in str(e.value)
    assert server.requests == []  # nothing was downloaded into nowhere
