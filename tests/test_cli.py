"""The CLI contracts: `facelab doctor`, `facelab data ...` (other commands test themselves)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from facelab import data
from facelab.cli import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_doctor_json_has_the_documented_keys(capsys):
    code, out, _ = _run(capsys, "doctor", "--json")
    assert code == 0
    r = json.loads(out)
    assert {"facelab", "python", "torch", "backends", "assets", "book", "data_dirs"} <= set(r)
    assert r["torch"]["device"] in {"cpu", "cuda", "mps"}
    assert r["backends"]["pytorch3d"]["available"] in (True, False)
    assert {a["name"] for a in r["assets"]} >= {"ict-facekit", "sfm-eos", "dlib-models"}
    assert set(r["book"]) >= {"jupyter_book", "node", "npm", "js_assets"}


def test_doctor_text_report(capsys):
    code, out, _ = _run(capsys, "doctor")
    assert code == 0
    for word in ("torch", "optional backends", "assets", "book toolchain"):
        assert word in out


def test_data_list_json(capsys, with_shared_data):
    code, out, _ = _run(capsys, "data", "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["ict-facekit"]["state"] == "present"
    assert rows["ict-facekit"]["license"] == "MIT"
    keys = {
        "name",
        "title",
        "license",
        "redistributable",
        "source",
        "size_bytes",
        "files",
        "state",
        "location",
        "missing",
        "corrupt",
        "verified",
    }
    assert keys <= set(rows["sfm-eos"])


def test_data_list_reports_missing(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("FACELAB_DATA", str(tmp_path))
    code, out, _ = _run(capsys, "data", "list")
    assert code == 0
    assert "facelab data fetch ict-facekit" in out


def test_data_fetch_offline_exits_1_with_message(capsys, monkeypatch, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    asset = data.Asset(
        name="toy",
        title="toy",
        license="CC0",
        source="tests",
        description="",
        files=(data.AssetFile("x.bin", "0" * 64, 1, f"http://127.0.0.1:{port}/x.bin"),),
    )
    monkeypatch.setattr(data, "_REGISTRY", {"toy": asset})
    code, _, err = _run(capsys, "data", "fetch", "toy", "--quiet", "--dest", str(tmp_path))
    assert code == 1
    assert "could not download" in err and "save it as" in err


def test_unknown_asset_is_a_clear_error(capsys):
    code, _, err = _run(capsys, "data", "fetch", "no-such-model", "--quiet")
    assert code == 1 and "unknown asset 'no-such-model'" in err


def test_usage_error_exit_code_2():
    r = subprocess.run([sys.executable, "-m", "facelab", "data"], capture_output=True, text=True)
    assert r.returncode == 2
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
