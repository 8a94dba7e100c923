"""The asset registry: lookup order, .gz files, checksums, downloads and the offline path."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import http.server
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from facelab import data
from facelab.errors import AssetCorrupt, AssetMissing, DownloadError

CONTENT = {"a/one.txt": b"hello facelab\n" * 100, "two.bin": bytes(range(256)) * 50}


def _asset(base_url: str, compression: str = "", name: str = "toy") -> data.Asset:
    files = []
    for rel, content in CONTENT.items():
        url = f"{base_url}/{rel}" + (".bz2" if compression == "bz2" else "")
        files.append(
            data.AssetFile(
                path=rel,
                sha256=hashlib.sha256(content).hexdigest(),
                size=len(content),
                url=url,
                compression=compression,
            )
        )
    return data.Asset(
        name=name,
        title="toy asset",
        license="CC0",
        source="tests",
        description="made by the tests",
        files=tuple(files),
    )


@pytest.fixture
def server(tmp_path):
    """A local HTTP server serving CONTENT (plain and .bz2) from a temp folder."""
    root = tmp_path / "www"
    for rel, content in CONTENT.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
        p.with_name(p.name + ".bz2").write_bytes(bz2.compress(content))

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *a):  # keep test output quiet
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_registry_lists_the_three_assets_with_pinned_checksums():
    reg = data.registry()
    assert {"ict-facekit", "sfm-eos", "dlib-models"} <= set(reg)
    ict = reg["ict-facekit"]
    assert ict.license == "MIT" and ict.redistributable
    assert not reg["sfm-eos"].redistributable
    paths = {f.path for f in ict.files}
    assert "FaceXModel/generic_neutral_mesh.obj" in paths
    assert sum(p.startswith("FaceXModel/identity") for p in paths) == 100
    for a in reg.values():
        for f in a.files:
            assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0
            assert f.url.startswith("https://") and f.size > 0  # https only (issue 13)
    # upstream URLs are pinned to a commit, not a branch
    assert all("da5f95a607f5e6b37755b38d3385d7f2853732e5" in f.url for f in ict.files)


def test_search_order_env_then_cache(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("FACELAB_DATA", f"{a}:{b}")
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "cache"))
    assert data.data_dirs() == [a, b, tmp_path / "cache"]
    monkeypatch.setenv("FACELAB_DATA", "")
    assert data.data_dirs() == [tmp_path / "cache"]


def test_plain_and_gz_files_are_found_and_verified(tmp_path, monkeypatch):
    asset = _asset("http://unused")
    d = tmp_path / "data" / "toy"
    (d / "a").mkdir(parents=True)
    (d / "a" / "one.txt").write_bytes(CONTENT["a/one.txt"])
    with gzip.open(d / "two.bin.gz", "wb") as fh:  # stored compressed: still the same asset
        fh.write(CONTENT["two.bin"])
    monkeypatch.setenv("FACELAB_DATA", str(tmp_path / "data"))
    st = data.status(asset, verify=True)
    assert st.state == "present" and not st.corrupt
    assert st.location == d
    assert data.find_file(asset, "two.bin").name == "two.bin.gz"
    assert data.open_bytes(data.find_file(asset, "two.bin")) == CONTENT["two.bin"]
    data.verify(asset)


def test_missing_and_corrupt_assets_say_what_to_do(tmp_path, monkeypatch):
    asset = _asset("http://unused")
    monkeypatch.setenv("FACELAB_DATA", str(tmp_path / "data"))
    assert data.status(asset).state == "missing"
    with pytest.raises(AssetMissing, match=r"facelab data fetch toy"):
        data.find_file(asset, "two.bin")
    with pytest.raises(AssetMissing, match="no file"):
        data.find_file(asset, "nope.txt")
    d = tmp_path / "data" / "toy"
    d.mkdir(parents=True)
    (d / "two.bin").write_bytes(b"not the right content")
    st = data.status(asset, verify=True)
    assert st.state == "corrupt" and st.corrupt == ["two.bin"]
    with pytest.raises(AssetMissing):  # one file still missing
        data.verify(asset)
    (d / "a").mkdir()
    (d / "a" / "one.txt").write_bytes(CONTENT["a/one.txt"])
    with pytest.raises(AssetCorrupt, match="sha256 mismatch"):
        data.verify(asset)


def test_fetch_downloads_and_verifies(server, tmp_path, monkeypatch):
    url, _ = server
    monkeypatch.setenv("FACELAB_DATA", "")
    asset = _asset(url)
    root = data.fetch(asset, progress=False)
    assert root == data.cache_dir() / "toy"
    for rel, content in CONTENT.items():
        assert (root / rel).read_bytes() == content
    assert data.status(asset, verify=True).state == "present"
    # a second fetch finds everything and downloads nothing (server gone would not matter)
    assert data.fetch(_asset("http://127.0.0.1:9"), progress=False) == root


def test_fetch_decompresses_bz2(server, tmp_path):
    url, _ = server
    root = data.fetch(_asset(url, compression="bz2"), dest=tmp_path / "out", progress=False)
    assert (root / "two.bin").read_bytes() == CONTENT["two.bin"]


def test_fetch_rejects_wrong_checksum_and_keeps_no_file(server, tmp_path):
    url, www = server
    (www / "two.bin").write_bytes(b"tampered")
    with pytest.raises(AssetCorrupt, match="wrong content"):
        data.fetch(_asset(url), dest=tmp_path / "out", progress=False)
    out = tmp_path / "out" / "toy"
    assert not (out / "two.bin").exists()
    assert not list(out.rglob("*.part"))


def test_fetch_offline_fails_fast_with_instructions(tmp_path):
    asset = _asset(f"http://127.0.0.1:{_closed_port()}")
    t0 = time.perf_counter()
    with pytest.raises(DownloadError, match=r"offline.*save it as"):
        data.fetch(asset, dest=tmp_path / "out", progress=False)
    assert time.perf_counter() - t0 < 10  # connection refused: no hang
    with pytest.raises(DownloadError, match="could not download"):
        data.fetch(_asset("https://no-such-host.invalid"), dest=tmp_path / "o2", progress=False)
    with pytest.raises(DownloadError, match="https only"):  # plain http only from loopback
        data.fetch(_asset("http://example.com"), dest=tmp_path / "o3", progress=False)


def test_import_copies_hand_downloaded_files(tmp_path):
    asset = _asset("http://unused")
    src = tmp_path / "dl"
    (src / "a").mkdir(parents=True)
    (src / "a" / "one.txt").write_bytes(CONTENT["a/one.txt"])
    (src / "two.bin").write_bytes(CONTENT["two.bin"])
    out = data.copy_into(asset, src, tmp_path / "store")
    assert (out / "two.bin").read_bytes() == CONTENT["two.bin"]
    (src / "two.bin").write_bytes(b"bad")
    with pytest.raises(AssetCorrupt):
        data.copy_into(asset, src, tmp_path / "store2")


def test_manifest_json_is_wellformed():
    raw = json.loads((Path(data.__file__).parent / "assets" / "registry.json").read_text())
    names = [a["name"] for a in raw["assets"]]
    assert len(names) == len(set(names))


def test_real_shared_data_matches_registry(with_shared_data):
    """The .obj.gz copies in ../shared/data hash to the registry's upstream .obj checksums."""
    st = data.status("ict-facekit")
    assert st.state == "present", st.missing[:3]
    ict = data.get_asset("ict-facekit")
    for f in [x for x in ict.files if x.path.endswith(("neutral_mesh.obj", "jawOpen.obj"))]:
        p = data.find_file(ict, f.path)
        assert p.suffix == ".gz"
        assert data.sha256_file(p) == f.sha256
    data.verify("sfm-eos")


def test_doctor_reports_what_a_first_run_downloads(tmp_path, monkeypatch):
    from facelab.commands.doctor import _first_run

    monkeypatch.setenv("FACELAB_DATA", str(tmp_path / "empty"))
    fr = _first_run()
    missing = {n: a for n, a in data.registry().items() if data.status(a).state != "present"}
    assert "ict-facekit" in missing  # nothing in the empty folder or the test cache
    assert [p["name"] for p in fr["assets"]] == sorted(missing)
    assert fr["bytes"] == sum(a.size for a in missing.values()) > 400e6
    assert fr["offline"] is True  # the test suite never downloads on first use
    # a partial asset counts only its missing files
    sfm = data.get_asset("sfm-eos")
    d = tmp_path / "empty" / "sfm-eos"
    d.mkdir(parents=True)
    (d / sfm.files[0].path).write_bytes(b"present (unverified: plan checks presence only)")
    row = next(p for p in _first_run()["assets"] if p["name"] == "sfm-eos")
    assert row["files"] == len(sfm.files) - 1
    assert row["bytes"] == sfm.size - sfm.files[0].size
