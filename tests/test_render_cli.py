"""Tests of the ``facelab render`` command."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from facelab.cli import main


def _run(capsys, *argv):
    code = main(["render", *argv])
    out = capsys.readouterr()
    return code, out


def test_render_builtin_writes_image_and_maps(tmp_path, capsys):
    paths = {k: tmp_path / f"{k}.png" for k in ("img", "n", "d", "m")}
    code, out = _run(
        capsys, "--model", "builtin", "--seed", "3", "--size", "48", "--out", str(paths["img"]),
        "--normals", str(paths["n"]), "--depth", str(paths["d"]), "--mask", str(paths["m"]),
        "--json",
    )  # fmt: skip
    assert code == 0, out.err
    res = json.loads(out.out)
    assert set(res) == {"model", "seed", "size", "backend", "device", "outputs", "covered_pixels",
                        "depth_range", "seconds"}  # fmt: skip
    assert res["device"] == "cpu" and res["model"] == "builtin"
    assert res["outputs"]["image"] == str(paths["img"]) and res["backend"] == "torch"
    img = np.asarray(Image.open(paths["img"]))
    mask = np.asarray(Image.open(paths["m"]))
    assert img.shape == (48, 48, 3) and mask.shape == (48, 48)
    covered = mask > 127
    assert covered.sum() == res["covered_pixels"] > 0.25 * 48 * 48  # the face fills the frame
    assert (img[~covered] == 0).all() and img[covered].mean() > 40
    normals = np.asarray(Image.open(paths["n"])).astype(float) / 255 * 2 - 1
    assert (normals[covered][:, 2] < 0.1).mean() > 0.95  # facing the camera (-z)
    near, far = res["depth_range"]
    assert 0 < near < far


def test_render_is_deterministic_per_seed(tmp_path, capsys):
    a, b, c = (tmp_path / f"{k}.png" for k in "abc")
    for path, seed in ((a, "1"), (b, "1"), (c, "2")):
        assert _run(capsys, "builtin", "--seed", seed, "--size", "32", "--out", str(path))[0] == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_render_bad_size_is_an_error(tmp_path, capsys):
    code, out = _run(capsys, "builtin", "--size", "2", "--out", str(tmp_path / "x.png"))
    assert code == 1 and "--size" in out.err
