"""``facelab fit``: the command line contract (files, --json keys, exit codes)."""

from __future__ import annotations

import json

import pytest
import torch

from facelab.cli import main
from facelab.models import FaceParams
from facelab.vision import save_image
from facelab.world import WorldConfig, WorldDataset

torch.set_num_threads(1)

RESULT_KEYS = {
    "photo", "dir", "files", "image_size", "focal", "ypr_degrees", "landmark_nme", "timings",
    "warnings",
}  # fmt: skip
TOP_KEYS = {
    "out",
    "model",
    "fast",
    "photometric",
    "shared_identity",
    "seconds",
    "results",
    "failed",
}
FILES = ("mesh.obj", "mesh.mtl", "mesh.png", "params.json", "overlay.png", "report.html")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def world_photos(tmp_path_factory, shared_data):
    """Two views of one synthetic ICT person, written as PNG files (dlib does not detect the
    built-in model's cartoon face; the fits below use the built-in model for speed)."""
    d = tmp_path_factory.mktemp("photos")
    cfg = WorldConfig(
        model="ict-face", image_size=192, realism=0.3, yaw_range=(-30.0, 30.0),
        pitch_range=(-10.0, 10.0),
    )  # fmt: skip
    s = WorldDataset(cfg, length=2, seed=3).multiview(0, 2)  # dlib finds both faces
    paths = []
    for k in range(2):
        p = d / f"view{k}.png"
        save_image(s["image"][k], p)
        paths.append(str(p))
    return paths


def test_fit_cli_writes_the_files_and_documented_json(tmp_path, capsys, world_photos):
    out = tmp_path / "fit"
    code, stdout, _ = _run(
        capsys, "fit", world_photos[0], "--out", str(out), "--model", "builtin", "--fast",
        "--json", "--quiet",
    )  # fmt: skip
    assert code == 0
    r = json.loads(stdout)
    assert set(r) == TOP_KEYS
    assert r["fast"] is True and r["photometric"] is True and r["shared_identity"] is False
    assert len(r["results"]) == 1
    row = r["results"][0]
    assert set(row) == RESULT_KEYS
    assert set(row["files"]) == {"mesh", "texture", "params", "overlay", "report"}
    assert row["dir"] == str(out) and row["image_size"] == [192, 192]
    assert {"detect", "landmarks", "photometric", "total"} <= set(row["timings"])
    assert row["landmark_nme"] < 0.1
    for name in FILES:
        assert (out / name).is_file(), name
    p = json.loads((out / "params.json").read_text())
    FaceParams.from_dict(p["params"])  # valid parameters


def test_fit_cli_text_output_and_progress_bar(tmp_path, capsys, world_photos):
    code, stdout, err = _run(
        capsys, "fit", world_photos[0], "--out", str(tmp_path), "--model", "builtin", "--fast",
        "--resolution", "48",
    )  # fmt: skip
    assert code == 0
    assert "yaw" in stdout and "wrote mesh.obj" in stdout
    assert "fit:" in err and "stage=shape" in err  # the tqdm bar, on stderr
    assert (tmp_path / "mesh.obj").is_file()


def test_fit_cli_landmarks_only(tmp_path, capsys, world_photos):
    code, stdout, _ = _run(
        capsys, "fit", world_photos[1], "--out", str(tmp_path), "--model", "builtin",
        "--landmarks-only", "--json",
    )  # fmt: skip
    assert code == 0
    r = json.loads(stdout)
    assert r["photometric"] is False and "photometric" not in r["results"][0]["timings"]
    assert (tmp_path / "overlay.png").is_file()


def test_fit_cli_shared_identity(tmp_path, capsys, world_photos):
    code, stdout, _ = _run(
        capsys, "fit", *world_photos, "--shared-identity", "--out", str(tmp_path), "--model",
        "builtin", "--fast", "--json", "--quiet", "--resolution", "64",
    )  # fmt: skip
    assert code == 0
    r = json.loads(stdout)
    assert r["shared_identity"] is True and len(r["results"]) == 2
    dirs = [row["dir"] for row in r["results"]]
    assert dirs == [str(tmp_path / "00_view0"), str(tmp_path / "01_view1")]
    ids = [json.loads((tmp_path / d / "params.json").read_text())["params"] for d in dirs]
    assert ids[0]["identity"] == ids[1]["identity"]
    assert ids[0]["rotation"] != ids[1]["rotation"]


def test_fit_cli_real_photo(tmp_path, capsys):
    from facelab.vision import samples

    photo = tmp_path / "astronaut.png"
    save_image(samples.astronaut().image.tensor[0], photo)
    code, stdout, _ = _run(
        capsys, "fit", str(photo), "--out", str(tmp_path / "o"), "--model", "builtin", "--fast",
        "--json", "--quiet",
    )  # fmt: skip
    assert code == 0
    row = json.loads(stdout)["results"][0]
    assert abs(row["ypr_degrees"][0]) < 20  # a near-frontal portrait
    assert row["landmark_nme"] < 0.1
    assert (tmp_path / "o" / "mesh.obj").is_file()


def test_fit_cli_errors(tmp_path, capsys):
    blank = tmp_path / "blank.png"
    save_image(torch.full((3, 120, 120), 0.5), blank)
    code, _, err = _run(capsys, "fit", str(blank), "--out", str(tmp_path / "o"), "--quiet")
    assert code == 1 and "no face" in err and "blank.png" in err
    code, _, err = _run(capsys, "fit", str(tmp_path / "missing.jpg"), "--out", str(tmp_path))
    assert code == 1 and "no such file" in err
    code, _, err = _run(capsys, "fit", str(blank), "--shared-identity", "--out", str(tmp_path))
    assert code == 1 and "at least two photos" in err
    code, _, err = _run(capsys, "fit", str(blank), "--out", str(tmp_path), "--resolution", "8")
    assert code == 1 and "--resolution" in err
    with pytest.raises(SystemExit) as e:
        main(["fit", str(blank)])  # --out is required
    assert e.value.code == 2
