"""``facelab model list|info|sample``."""

from __future__ import annotations

import json

import pytest
import torch

from facelab.cli import main


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_model_list_json(capsys):
    rc, out, _ = _run(capsys, "model", "list", "--json")
    assert rc == 0
    rows = json.loads(out)
    names = [r["name"] for r in rows]
    assert names[0] == "builtin" and "ict-face" in names and "flame" in names
    for r in rows:
        assert set(r) == {"name", "title", "source", "license", "present", "location", "note"}
    rc, out, _ = _run(capsys, "model", "list")
    assert rc == 0 and "builtin" in out and "license" in out


def test_model_info_json(capsys):
    rc, out, _ = _run(capsys, "model", "info", "builtin", "--json")
    assert rc == 0
    info = json.loads(out)
    for k in ("name", "vertices", "triangles", "identity_components", "expression_components",
              "expression_names", "landmarks", "has_uv", "units", "license", "source"):  # fmt: skip
        assert k in info
    assert info["landmarks"] == 68 and info["has_uv"] is True and info["units"] == "cm"
    assert info["expression_components"] == len(info["expression_names"])


def test_model_info_ict(capsys, with_shared_data):
    if not (with_shared_data / "ict-facekit").is_dir():
        pytest.skip("no ict-facekit")
    rc, out, _ = _run(capsys, "model", "info", "ict-face-narrow", "--json")
    assert rc == 0
    info = json.loads(out)
    assert info["vertices"] == 9409 and info["identity_components"] == 100
    assert info["expression_components"] == 53 and info["landmarks"] == 68


def test_model_sample_writes_meshes(capsys, tmp_path):
    from facelab.geometry.io import load_mesh
    from facelab.models import load

    model = load("builtin")
    out = tmp_path / "face.obj"
    rc, stdout, _ = _run(
        capsys, "model", "sample", "builtin", "--seed", "5", "--truncation", "0.5",
        "--expression-scale", "0.8", "--out", str(out), "--json",
    )  # fmt: skip
    assert rc == 0
    rep = json.loads(stdout)
    mesh = load_mesh(out)
    assert mesh.verts.shape == (model.n_vertices, 3) and mesh.faces.shape == model.faces.shape
    # the file holds exactly model.sample(seed) evaluated
    p = model.sample(1, generator=torch.Generator().manual_seed(5), truncation=0.5,
                     expression_scale=0.8)  # fmt: skip
    torch.testing.assert_close(mesh.verts, model.vertices(p)[0], atol=1e-5, rtol=0)
    assert rep["identity"] == pytest.approx(p.identity[0].tolist())
    assert max(abs(x) for x in rep["identity"]) <= 1.5 + 1e-6
    rc, _, _ = _run(capsys, "model", "sample", "builtin", "--seed", "5", "--out",
                    str(tmp_path / "face.ply"))  # fmt: skip
    assert rc == 0 and load_mesh(tmp_path / "face.ply").verts.shape[0] == model.n_vertices
    pytest.importorskip("trimesh")
    rc, _, _ = _run(capsys, "model", "sample", "builtin", "--seed", "5", "--out",
                    str(tmp_path / "face.glb"))  # fmt: skip
    glb = load_mesh(tmp_path / "face.glb")  # UV seams unwelded: same corners, maybe more verts
    assert rc == 0 and glb.num_faces == model.n_faces
    ref = model.vertices(model.sample(1, generator=torch.Generator().manual_seed(5)))[0]
    torch.testing.assert_close(glb.verts[glb.faces], ref[model.faces], atol=1e-5, rtol=0)
    # a different seed gives a different face
    _run(capsys, "model", "sample", "builtin", "--seed", "6", "--out", str(tmp_path / "b.obj"))
    assert not torch.allclose(load_mesh(tmp_path / "b.obj").verts, mesh.verts)


def test_model_errors(capsys, tmp_path):
    rc, _, err = _run(capsys, "model", "info", "no-such-model")
    assert rc == 1 and "not a model name" in err
    rc, _, err = _run(
        capsys, "model", "sample", "builtin", "--seed", "1", "--out", str(tmp_path / "x.stl")
    )
    assert rc == 1 and "unsupported mesh format" in err
