"""The command-line rules (book appendix "The command line"), checked across every command.

One parametrised test: each case is a command line that must fail (or partly fail) in a
documented way. For every case it checks the exit code, that stderr ends in one
``facelab CMD: error: ...`` line and no traceback, and, run again with ``--json``, that stdout
is exactly the documented error object. Cases marked ``before_work`` replace every expensive
entry point (model loading, detection, rendering, downloads, fitting) by a tripwire: the
error must come before any of them is called.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import facelab.data
import facelab.fit
import facelab.gan.train
import facelab.gan.triplane_train
import facelab.models
import facelab.vision.detect
import facelab.vision.identity
import facelab.viz.report
import facelab.world
from facelab.cli import main
from facelab.errors import NoFaceFound


class WorkStarted(Exception):
    """Raised by a tripwire: the command started work before checking its arguments."""


TRIPWIRES = [
    (facelab.models, "load"),
    (facelab.world, "WorldDataset"),
    (facelab.vision.detect, "get_detector"),
    (facelab.vision.identity, "load_identity_encoder"),
    (facelab.data, "fetch"),
    (facelab.data, "copy_into"),
    (facelab.fit, "fit"),
    (facelab.fit, "fit_multi"),
    (facelab.viz.report, "save_compare_report"),
    (facelab.gan.train, "run"),
    (facelab.gan.train, "train"),
]


def _tripwire(name):
    def f(*a, **k):
        raise WorkStarted(name)

    return f


CUDA = torch.cuda.is_available()

# id, argv ({tmp}, {photo}, {blocked} are filled in), exit code, text expected in the error,
# before_work (tripwires armed), json (the command takes --json)
CASES = [
    # rule 1: usage errors (missing sub-command, bad option) exit 2
    ("usage-data", ["data"], 2, "required", True, False),
    ("usage-model", ["model"], 2, "required", True, False),
    ("usage-world", ["world"], 2, "required", True, False),
    ("usage-train", ["train"], 2, "train", True, False),  # sub-command or (not there) the command
    ("usage-none", [], 2, "sub-command", True, False),
    ("usage-render-bad-int", ["render", "--size", "big", "--out", "{tmp}/x.png"], 2, "invalid int", True, True),
    ("usage-doctor", ["doctor", "--no-such-option"], 2, "unrecognized", True, True),
    ("usage-model-list", ["model", "list", "--no-such-option"], 2, "unrecognized", True, True),
    # rules 2-3: one-line errors, the --json error object, for every command
    ("error-render-model", ["render", "--model", "no-such-model", "--out", "{tmp}/x.png"], 1, "unknown model", False, True),
    ("error-model-info", ["model", "info", "--model", "no-such-model"], 1, "unknown model", False, True),
    ("error-model-sample", ["model", "sample", "--model", "no-such-model", "--seed", "1", "--out", "{tmp}/x.obj"], 1, "unknown model", False, True),
    ("error-model-info-none", ["model", "info"], 1, "--model", True, True),
    ("error-world-sample-model", ["world", "sample", "--model", "no-such-model", "--out", "{tmp}/w"], 1, "unknown model", False, True),
    ("error-landmarks-photo", ["landmarks", "{tmp}/missing.png"], 1, "missing.png", False, True),
    ("error-identity-photo", ["identity", "{photo}", "{tmp}/missing.png"], 1, "missing.png", True, True),
    ("error-fit-photo", ["fit", "{tmp}/missing.png", "--out", "{tmp}/o"], 1, "no such file", True, True),
    ("error-data-fetch", ["data", "fetch", "no-such-asset", "--quiet"], 1, "unknown asset", True, True),
    ("error-data-verify", ["data", "verify", "no-such-asset"], 1, "unknown asset", True, True),
    ("error-data-import", ["data", "import", "no-such-asset", "{tmp}"], 1, "unknown asset", True, True),
    # rule 4: arguments are checked before any work
    ("args-fit-face", ["fit", "{photo}", "--out", "{tmp}/o", "--face", "biggest"], 1, "--face", True, True),
    ("args-fit-threads", ["fit", "{photo}", "--out", "{tmp}/o", "--threads", "-1"], 1, "--threads", True, True),
    ("args-fit-resolution", ["fit", "{photo}", "--out", "{tmp}/o", "--resolution", "8"], 1, "--resolution", True, True),
    ("args-render-size", ["render", "--size", "2", "--out", "{tmp}/x.png"], 1, "--size", True, True),
    ("args-render-threads", ["render", "--threads", "-2", "--out", "{tmp}/x.png"], 1, "--threads", True, True),
    ("args-world-views", ["world", "sample", "--views", "0", "--out", "{tmp}/w"], 1, "--views", True, True),
    ("args-world-cache-length", ["world", "cache", "--length", "0", "--out", "{tmp}/w"], 1, "--length", True, True),
    ("args-world-threads", ["world", "cache", "--length", "2", "--threads", "-1", "--out", "{tmp}/w"], 1, "--threads", True, True),
    ("args-landmarks-max-side", ["landmarks", "{photo}", "--max-side", "3"], 1, "--max-side", True, True),
    ("args-landmarks-threads", ["landmarks", "{photo}", "--threads", "-1"], 1, "--threads", True, True),
    ("args-identity-threads", ["identity", "{photo}", "{photo}", "--threads", "-1"], 1, "--threads", True, True),
    ("args-model-sample-format", ["model", "sample", "--model", "builtin", "--seed", "1", "--out", "{tmp}/x.stl"], 1, "unsupported mesh format", True, True),
    ("args-model-twice", ["model", "info", "builtin", "--model", "ict"], 1, "two models", True, True),
    # rule 5: unwritable outputs are one-line errors before any work
    ("out-render", ["render", "--out", "{blocked}/x.png"], 1, "cannot write there", True, True),
    ("out-render-normals", ["render", "--out", "{tmp}/x.png", "--normals", "{blocked}/n.png"], 1, "--normals", True, True),
    ("out-render-dir", ["render", "--out", "{tmp}"], 1, "is a directory", True, True),
    ("out-model-sample", ["model", "sample", "--model", "builtin", "--seed", "1", "--out", "{blocked}/x.obj"], 1, "cannot write there", True, True),
    ("out-landmarks", ["landmarks", "{photo}", "--out", "{blocked}/o.png"], 1, "cannot write there", True, True),
    ("out-world-sample", ["world", "sample", "--out", "{blocked}/w"], 1, "cannot write there", True, True),
    ("out-world-cache", ["world", "cache", "--length", "2", "--out", "{blocked}/w"], 1, "cannot write there", True, True),
    ("out-fit", ["fit", "{photo}", "--out", "{blocked}/o"], 1, "cannot write there", True, True),
    ("out-fit-is-file", ["fit", "{photo}", "--out", "{blocked}"], 1, "is a file", True, True),
    ("out-data-fetch", ["data", "fetch", "ict-facekit", "--quiet", "--dest", "{blocked}/d"], 1, "--dest", True, True),
    ("out-data-import", ["data", "import", "ict-facekit", "{tmp}", "--dest", "{blocked}/d"], 1, "--dest", True, True),
    ("out-compare", ["compare", "{tmp}", "{tmp}", "--out", "{blocked}/c.html"], 1, "cannot write there", True, True),
    ("error-train-config", ["train", "texture-gan", "--config", "no-such-config", "--out", "{tmp}/g"], 1, "unknown config", True, True),
    ("error-train-set", ["train", "texture-gan", "--set", "no_such_field=1", "--out", "{tmp}/g"], 1, "unknown TrainConfig fields", True, True),
    ("args-train-steps", ["train", "texture-gan", "--steps", "0", "--out", "{tmp}/g"], 1, "--steps", True, True),
    ("args-train-threads", ["train", "texture-gan", "--threads", "-1", "--out", "{tmp}/g"], 1, "--threads", True, True),
    ("usage-train-bad-int", ["train", "texture-gan", "--steps", "many"], 2, "invalid int", True, True),
    ("out-train", ["train", "texture-gan", "--out", "{blocked}/g"], 1, "cannot write there", True, True),
    ("out-train-work-dir", ["train", "texture-gan", "--out", "{tmp}/g", "--work-dir", "{blocked}/w"], 1, "--work-dir", True, True),
    ("args-compare-size", ["compare", "{tmp}", "{tmp}", "--out", "{tmp}/c.html", "--size", "4"], 1, "--size", True, True),
    # rule 7: --device checked before any work
    ("device-render", ["render", "--device", "cuda", "--out", "{tmp}/x.png"], 1, "--device cuda", True, True),
    ("device-fit", ["fit", "{photo}", "--out", "{tmp}/o", "--device", "cuda"], 1, "--device cuda", True, True),
    ("usage-device", ["render", "--device", "tpu", "--out", "{tmp}/x.png"], 2, "invalid choice", True, True),
    # invert3d: arguments, outputs and the device before the GAN is loaded
    ("error-invert3d-photo", ["invert3d", "{tmp}/missing.png", "--out", "{tmp}/o"], 1, "no such file", True, True),
    ("args-invert3d-views", ["invert3d", "{photo}", "--out", "{tmp}/o", "--views", "-45,-30,100"], 1, "--views", True, True),
    ("args-invert3d-steps", ["invert3d", "{photo}", "--out", "{tmp}/o", "--steps", "3"], 1, "--steps", True, True),
    ("args-invert3d-camera", ["invert3d", "{photo}", "--out", "{tmp}/o", "--camera", "120,0"], 1, "--camera", True, True),
    ("args-invert3d-threads", ["invert3d", "{photo}", "--out", "{tmp}/o", "--threads", "-1"], 1, "--threads", True, True),
    ("out-invert3d", ["invert3d", "{photo}", "--out", "{blocked}/o"], 1, "cannot write there", True, True),
    ("device-invert3d", ["invert3d", "{photo}", "--out", "{tmp}/o", "--device", "cuda"], 1, "--device cuda", True, True),
    # rule 9: several photos: each saved as it finishes, failures reported per photo
    ("photos-fit-per-photo", ["fit", "{tmp}/A.png", "{tmp}/B.png", "{tmp}/C.png", "--out", "{tmp}/o", "--quiet"], 1, "B.png", "fake_fit", True),
]  # fmt: skip


class _FakeResult:
    """The FitResult surface the fit command uses (save, summary, face_vertices)."""

    def __init__(self, photo: str) -> None:
        self.photo = photo
        self.face_vertices = torch.zeros(1, dtype=torch.long)
        self.params = None

    def save(self, d, **kw):
        d = Path(d)
        d.mkdir(parents=True, exist_ok=True)
        (d / "params.json").write_text(json.dumps({"photo": self.photo}))
        return {"params": d / "params.json"}

    def summary(self):
        return {
            "image_size": [8, 8],
            "focal": 1.0,
            "ypr_degrees": [0.0, 0.0, 0.0],
            "landmark_nme": 0.01,
            "timings": {"total": 0.0},
            "warnings": [],
        }


def _arm_fake_fit(monkeypatch, tmp: Path, saved_before: list) -> None:
    def fake_fit(photo, **kw):
        # what is already on disk when this photo starts: earlier photos must be saved
        saved_before.append(sorted(p.parent.name for p in (tmp / "o").glob("*/params.json")))
        if "B.png" in str(photo):
            raise NoFaceFound(f"{photo}: no face found")
        return _FakeResult(str(photo))

    monkeypatch.setattr(facelab.fit, "fit", fake_fit)
    monkeypatch.setattr(facelab.models, "load", lambda *a, **k: SimpleNamespace(name="fake"))


@pytest.mark.parametrize("rule", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_cli_rule(rule, as_json, tmp_path, capsys, monkeypatch):
    name, argv, code, expect, before_work, takes_json = rule
    if as_json and not takes_json:
        pytest.skip("the command prints no result (usage only)")
    if name.startswith("device-") and CUDA:
        pytest.skip("CUDA is available here: --device cuda is not an error")
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (128, 128, 128)).save(photo)
    for stem in "ABC":
        Image.new("RGB", (64, 64), (128, 128, 128)).save(tmp_path / f"{stem}.png")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    fill = {"{tmp}": str(tmp_path), "{photo}": str(photo), "{blocked}": str(blocked)}
    args = []
    for a in argv:
        for k, v in fill.items():
            a = a.replace(k, v)
        args.append(a)
    if as_json:
        args.append("--json")
    saved_before: list = []
    if before_work == "fake_fit":
        _arm_fake_fit(monkeypatch, tmp_path, saved_before)
    elif before_work:
        for mod, attr in TRIPWIRES:
            monkeypatch.setattr(mod, attr, _tripwire(f"{mod.__name__}.{attr}"))

    try:
        got = main(args)
    except SystemExit as e:  # argparse usage errors
        got = e.code
    out, err = capsys.readouterr()

    assert got == code, (args, out, err)
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines, "an error must say something on stderr"
    assert expect in lines[-1], lines  # the last line is the one-line error ...
    assert lines[-1].startswith("facelab") and ": error: " in lines[-1]
    if code == 1 and before_work != "fake_fit":
        assert len(lines) == 1, lines  # ... and the only line for a runtime error

    if before_work == "fake_fit":
        # each photo was saved as it finished: C started with A already on disk
        assert saved_before == [[], ["00_A"], ["00_A"]]
        assert (tmp_path / "o" / "00_A" / "params.json").is_file()
        assert (tmp_path / "o" / "02_C" / "params.json").is_file()
        assert not (tmp_path / "o" / "01_B").exists()
        if as_json:
            res = json.loads(out)
            assert [r["photo"] for r in res["results"]] == [args[1], args[2], args[3]]
            assert res["failed"] == [args[2]]
            assert res["results"][1]["error"]["type"] == "NoFaceFound"
            assert "error" not in res["results"][0] and res["results"][2]["dir"].endswith("02_C")
        else:
            assert "2 of 3 photos fitted" in err
        return

    if as_json:
        obj = json.loads(out)  # exactly one JSON document on stdout: the error object
        assert set(obj) == {"error"}
        e = obj["error"]
        assert set(e) == {"command", "type", "message", "exit_code"}
        assert e["exit_code"] == code and expect in e["message"]
        assert e["command"].split()[0] == argv[0]
        assert e["type"] == ("UsageError" if code == 2 else e["type"])
    else:
        assert out == ""  # nothing half-printed on stdout


def test_every_command_has_rule_cases():
    """A new command joins the rules: each registered command appears in CASES."""
    import argparse

    from facelab.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    covered = {argv[0] for _, argv, *_ in CASES if argv}
    missing = sorted(set(sub.choices) - covered)
    assert not missing, f"commands without a case in tests/test_cli_rules.py CASES: {missing}"
